//! Uploads over HTTP: tus 1.0.0 at `/files/` (core, creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! expiration, concatenation) and a one-shot `POST /api/uploads` for curl.
//!
//! The protocol rules come from `streamforge_protocols::tus`; the bytes go
//! to the upload's `UploadSession` actor in chunks of at most [`CHUNK`], one
//! at a time, so an upload holds at most about one chunk in memory however
//! large the file. An offset is acknowledged only after the session has
//! made it durable.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use streamforge_actors::uploads::{
    CALL_TIMEOUT, ConcatKind, NewUpload, UploadError, UploadSessionMsg, UploadStatus,
};
use streamforge_protocols::tus::{
    self, Checksum, ChecksumVerifier, Concat, CreationRequest, PatchRequest, TusError, UploadState,
};

use super::AppState;
use super::error::ApiError;

/// Bytes handed to the session per call.
const CHUNK: usize = 1024 * 1024;

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

/// An error answer: the status the spec asks for, our JSON body, and the
/// `Tus-Resumable` header every tus response carries.
pub struct TusReply(ApiError);

impl From<TusError> for TusReply {
    fn from(err: TusError) -> Self {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
        TusReply(ApiError::new(status, err.code(), err.to_string()))
    }
}

impl From<UploadError> for TusReply {
    fn from(err: UploadError) -> Self {
        TusReply(upload_error(err))
    }
}

impl From<ApiError> for TusReply {
    fn from(err: ApiError) -> Self {
        TusReply(err)
    }
}

impl IntoResponse for TusReply {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION));
        if response.status() == StatusCode::PRECONDITION_FAILED {
            response
                .headers_mut()
                .insert("tus-version", HeaderValue::from_static(tus::TUS_VERSION));
        }
        response
    }
}

pub fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::NotFound(_) => ApiError::not_found(err.to_string()),
        UploadError::Expired(_) => ApiError::new(StatusCode::GONE, "expired", err.to_string()),
        UploadError::Busy => ApiError::new(StatusCode::LOCKED, "upload_busy", err.to_string()),
        UploadError::Completed => {
            ApiError::new(StatusCode::FORBIDDEN, "upload_complete", err.to_string())
        }
        UploadError::OffsetMismatch { .. } => {
            ApiError::new(StatusCode::CONFLICT, "offset_mismatch", err.to_string())
        }
        UploadError::PartialIncomplete(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "partial_incomplete",
            err.to_string(),
        ),
        UploadError::Io { ref source, .. } if is_out_of_space(source) => {
            tracing::error!(%err, "upload storage full");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the server is out of space for uploads; the upload can resume once space is freed",
            )
        }
        other => {
            tracing::error!(err = %other, "upload failed");
            ApiError::unavailable(
                "storage_unavailable",
                "the upload could not be stored right now; resume it later",
            )
        }
    }
}

fn is_out_of_space(err: &std::io::Error) -> bool {
    let out_of_space = [
        nix::errno::Errno::ENOSPC as i32,
        nix::errno::Errno::EDQUOT as i32,
    ];
    err.raw_os_error()
        .is_some_and(|code| out_of_space.contains(&code))
}

/// Header lookup for the tus rules, which ask with lower-case names.
fn lookup<'a>(headers: &'a HeaderMap) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| headers.get(name).and_then(|v| v.to_str().ok())
}

fn expires(state: &AppState, created_at_ms: i64) -> Option<HeaderValue> {
    let seconds =
        u64::try_from(created_at_ms / 1000).ok()? + state.uploads.expire_after().as_secs();
    HeaderValue::from_str(&tus::http_date(seconds)).ok()
}

fn max_size(state: &AppState) -> u64 {
    state.upload_max_size
}

/// `OPTIONS /files/`: what this server supports.
pub async fn options(State(state): State<AppState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION));
    headers.insert("tus-version", HeaderValue::from_static(tus::TUS_VERSION));
    headers.insert(
        "tus-extension",
        HeaderValue::from_static(tus::TUS_EXTENSIONS),
    );
    headers.insert("tus-max-size", HeaderValue::from(max_size(&state)));
    headers.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(tus::CHECKSUM_ALGORITHMS),
    );
    (StatusCode::NO_CONTENT, headers).into_response()
}

async fn call<T: Send + 'static>(
    session: &ActorRef<UploadSessionMsg>,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> UploadSessionMsg,
) -> Result<T, UploadError> {
    session
        .call(message, Some(CALL_TIMEOUT))
        .await
        .map_err(|e| UploadError::Unreachable(e.to_string()))?
        .success_or(UploadError::Unreachable("no answer in time".into()))
}

/// A body without a checksum is made durable every this many bytes…
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// …or this often, whichever comes first.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How a body ended.
enum BodyEnd {
    Complete,
    /// The client went away mid-body; what arrived is kept unless a checksum
    /// must cover the whole body.
    Interrupted,
}

/// Streams `body` into the session's open PATCH, at most `limit` bytes;
/// returns how it ended and how many bytes it carried.
async fn write_body<E: std::fmt::Display>(
    session: &ActorRef<UploadSessionMsg>,
    body: impl futures::Stream<Item = Result<Bytes, E>>,
    limit: u64,
    mut verifier: Option<&mut ChecksumVerifier>,
) -> Result<(BodyEnd, u64), TusReply> {
    let mut stream = std::pin::pin!(body);
    let mut buffer = BytesMut::new();
    let mut received = 0u64;
    let mut end = BodyEnd::Complete;
    // Without a checksum to verify first, a long body is made durable as it
    // goes: processing reads the upload while it arrives, and a crash loses
    // at most the bytes since the last checkpoint.
    let checkpoints = verifier.is_none();
    let mut unsynced = 0u64;
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        let frame = match stream.next().await {
            Some(Ok(frame)) => Some(frame),
            Some(Err(err)) => {
                tracing::debug!(%err, "upload body ended early");
                end = BodyEnd::Interrupted;
                None
            }
            None => None,
        };
        if let Some(frame) = &frame {
            received += frame.len() as u64;
            if received > limit {
                return Err(TusError::LengthExceeded {
                    offset: 0,
                    body: received,
                    limit,
                }
                .into());
            }
            if let Some(verifier) = verifier.as_deref_mut() {
                verifier.update(frame);
            }
            buffer.extend_from_slice(frame);
        }
        let slow = checkpoints && last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if buffer.len() >= CHUNK || ((frame.is_none() || slow) && !buffer.is_empty()) {
            let chunk: Bytes = buffer.split().freeze();
            unsynced += chunk.len() as u64;
            call(session, |reply| UploadSessionMsg::Append {
                bytes: chunk,
                reply,
            })
            .await?
            .map_err(TusReply::from)?;
            let due = unsynced >= CHECKPOINT_BYTES
                || (last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL && unsynced > 0);
            if checkpoints && frame.is_some() && due {
                call(session, UploadSessionMsg::Checkpoint)
                    .await?
                    .map_err(TusReply::from)?;
                unsynced = 0;
                last_checkpoint = tokio::time::Instant::now();
            }
        }
        if frame.is_none() {
            return Ok((end, received));
        }
    }
}

/// Runs one PATCH-shaped write: begin at `offset`, stream the body, verify,
/// commit (or roll back on any refusal).
async fn patch_session(
    session: &ActorRef<UploadSessionMsg>,
    offset: u64,
    declared_length: Option<u64>,
    checksum: Option<Checksum>,
    body: Body,
    limit: u64,
) -> Result<UploadStatus, TusReply> {
    call(session, |reply| UploadSessionMsg::Begin { offset, reply })
        .await?
        .map_err(TusReply::from)?;
    let mut verifier = checksum.as_ref().map(Checksum::verifier);
    let written = write_body(session, body.into_data_stream(), limit, verifier.as_mut()).await;
    let verdict = match written {
        Ok((BodyEnd::Interrupted, _)) if verifier.is_some() => {
            Err(TusReply(ApiError::bad_request(
                "the body ended before its checksum could be verified; nothing of it was kept",
            )))
        }
        Ok(_) => match verifier {
            Some(verifier) => verifier.finish().map_err(TusReply::from),
            None => Ok(()),
        },
        Err(err) => Err(err),
    };
    match verdict {
        Ok(()) => Ok(call(session, |reply| UploadSessionMsg::Commit {
            length: declared_length,
            reply,
        })
        .await?
        .map_err(TusReply::from)?),
        Err(err) => {
            call(session, UploadSessionMsg::Rollback)
                .await?
                .map_err(TusReply::from)?;
            Err(err)
        }
    }
}

fn progress_headers(state: &AppState, status: &UploadStatus, created_at_ms: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION));
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(status.offset));
    match &status.asset_id {
        // Not part of tus: where the finished upload can be found.
        Some(asset) => {
            headers.insert("x-asset-id", header_value(asset));
        }
        None => {
            if let Some(expires) = expires(state, created_at_ms) {
                headers.insert(UPLOAD_EXPIRES, expires);
            }
        }
    }
    headers
}

/// `POST /files/`: creation, creation-with-upload, deferred length, concatenation.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    let request = CreationRequest::from_headers(lookup(&headers), max_size(&state))?;
    let filename = request
        .metadata
        .get_str("filename")
        .unwrap_or("")
        .to_owned();
    let filetype = request
        .metadata
        .get_str("filetype")
        .or_else(|| request.metadata.get_str("type"))
        .unwrap_or("")
        .to_owned();
    let (concat, parts) = match &request.concat {
        None => (None, Vec::new()),
        Some(Concat::Partial) => (Some(ConcatKind::Partial), Vec::new()),
        Some(Concat::Final(parts)) => (Some(ConcatKind::Final), parts.clone()),
    };
    let record = state
        .uploads
        .create(NewUpload {
            length: request.length,
            metadata: request.metadata.encode(),
            filename,
            filetype,
            concat,
            parts,
        })
        .await?;
    let location = format!("/files/{}", record.id);
    let mut response_headers = HeaderMap::new();
    response_headers.insert(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response_headers.insert(header::LOCATION, value);
    }

    if record.concat == Some(ConcatKind::Final) {
        let mut record = record;
        match state.uploads.create_final(&mut record).await {
            Ok(Some(asset)) => {
                let length = state.uploads.status(&record.id).await?.length.unwrap_or(0);
                response_headers.insert(UPLOAD_OFFSET, HeaderValue::from(length));
                response_headers.insert("x-asset-id", header_value(&asset));
            }
            // concatenation-unfinished: complete when its last partial is.
            Ok(None) => {
                if let Some(asset) = &record.asset_id {
                    response_headers.insert("x-asset-id", header_value(asset));
                }
            }
            Err(err) => {
                // A final upload that cannot be assembled is not kept.
                let _ = state.uploads.terminate(&record.id).await;
                return Err(err.into());
            }
        }
        return Ok((StatusCode::CREATED, response_headers).into_response());
    }

    // creation-with-upload: the body is the first PATCH.
    let has_body = headers.get(header::CONTENT_TYPE).is_some()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() != b"0");
    if has_body {
        tus::check_offset_content_type(lookup(&headers)("content-type"))?;
        let checksum = lookup(&headers)("upload-checksum")
            .map(Checksum::parse)
            .transpose()?;
        let limit = record.length.unwrap_or(max_size(&state));
        let session = state.uploads.session(&record.id).await?;
        let status = patch_session(&session, 0, None, checksum, body, limit).await?;
        response_headers.extend(progress_headers(&state, &status, record.created_at_ms));
    } else {
        // An empty upload is complete at creation: its session stores it on start.
        let status = state.uploads.status(&record.id).await?;
        response_headers.extend(progress_headers(&state, &status, record.created_at_ms));
    }
    Ok((StatusCode::CREATED, response_headers).into_response())
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `HEAD /files/{id}`: the durable offset, so the client resumes from there.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    let record = state.uploads.record(&id).await?;
    let status = state.uploads.status(&id).await?;
    let mut out = progress_headers(&state, &status, record.created_at_ms);
    match status.length {
        Some(length) => {
            out.insert(UPLOAD_LENGTH, HeaderValue::from(length));
        }
        None => {
            out.insert("upload-defer-length", HeaderValue::from_static("1"));
        }
    }
    if !record.metadata.is_empty() {
        out.insert("upload-metadata", header_value(&record.metadata));
    }
    match record.concat {
        Some(ConcatKind::Partial) => {
            out.insert("upload-concat", HeaderValue::from_static("partial"));
        }
        Some(ConcatKind::Final) => {
            let urls: Vec<String> = record.parts.iter().map(|p| format!("/files/{p}")).collect();
            out.insert(
                "upload-concat",
                header_value(&format!("final;{}", urls.join(" "))),
            );
        }
        None => {}
    }
    // tus core: HEAD answers must not be cached.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::OK, out).into_response())
}

/// `PATCH /files/{id}`: appends the body at `Upload-Offset`.
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    let record = state.uploads.record(&id).await?;
    let session = state.uploads.session(&id).await?;
    let status = call(&session, UploadSessionMsg::Status).await?;
    let upload = UploadState {
        offset: status.offset,
        length: status.length,
        is_final_concat: record.concat == Some(ConcatKind::Final),
    };
    let request = PatchRequest::from_headers(lookup(&headers), &upload, max_size(&state))?;
    let limit = request.max_body(&upload, max_size(&state));
    let status = patch_session(
        &session,
        request.offset,
        request.declared_length,
        request.checksum,
        body,
        limit,
    )
    .await?;
    let out = progress_headers(&state, &status, record.created_at_ms);
    Ok((StatusCode::NO_CONTENT, out).into_response())
}

/// `DELETE /files/{id}`: tus termination.
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    state.uploads.terminate(&id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION))],
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct OneShotQuery {
    filename: Option<String>,
}

#[derive(Serialize)]
struct OneShotAnswer {
    upload_id: String,
    asset_id: Option<String>,
    size: u64,
}

/// `POST /api/uploads?filename=NAME`: the whole file as the raw body
/// (`curl --data-binary @FILE URL`), or as the file field of a multipart
/// form (`curl -F file=@FILE URL`), for curl and scripts. Streamed like a
/// tus PATCH, never held whole.
pub async fn one_shot(
    State(state): State<AppState>,
    Query(query): Query<OneShotQuery>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?
                .ok_or_else(|| ApiError::bad_request("the form has no file field"))?;
            let Some(name) = field.file_name().map(str::to_owned) else {
                continue;
            };
            let filename = query.filename.clone().unwrap_or(name);
            let filetype = field.content_type().unwrap_or("").to_owned();
            return store_one_shot(&state, filename, filetype, None, field).await;
        }
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| tus::parse_u64_header("content-length", v))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let filename = query.filename.unwrap_or_default();
    let body = request.into_body().into_data_stream();
    store_one_shot(&state, filename, content_type, length, body).await
}

/// Stores `body` as a new upload of `length` bytes (the body's own length
/// when `None`) and answers with the asset it became.
async fn store_one_shot<E: std::fmt::Display>(
    state: &AppState,
    filename: String,
    filetype: String,
    length: Option<u64>,
    body: impl futures::Stream<Item = Result<Bytes, E>>,
) -> Result<Response, ApiError> {
    let max = max_size(state);
    if length.is_some_and(|l| l > max) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("uploads are limited to {max} bytes"),
        ));
    }
    if filename.len() > 255 || filename.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(
            "filename must be a plain name of at most 255 bytes",
        ));
    }
    let record = state
        .uploads
        .create(NewUpload {
            length,
            filename,
            filetype,
            ..NewUpload::default()
        })
        .await
        .map_err(upload_error)?;
    let session = state
        .uploads
        .session(&record.id)
        .await
        .map_err(upload_error)?;
    let limit = length.unwrap_or(max);
    let result = async {
        call(&session, |reply| UploadSessionMsg::Begin {
            offset: 0,
            reply,
        })
        .await?
        .map_err(TusReply::from)?;
        let written = write_body(&session, body, limit, None).await;
        match written {
            Ok((BodyEnd::Complete, received)) => {
                // Without a declared length, the length is what the body carried.
                let declared = Some(length.unwrap_or(received));
                Ok(call(&session, |reply| UploadSessionMsg::Commit {
                    length: declared,
                    reply,
                })
                .await?
                .map_err(TusReply::from)?)
            }
            Ok((BodyEnd::Interrupted, _)) => Err(TusReply(ApiError::bad_request(
                "the body ended early; send the file again, or use tus at /files/ to resume",
            ))),
            Err(err) => Err(err),
        }
    }
    .await;
    match result {
        Ok(status) if status.asset_id.is_some() => Ok((
            StatusCode::CREATED,
            Json(OneShotAnswer {
                upload_id: record.id,
                asset_id: status.asset_id,
                size: status.offset,
            }),
        )
            .into_response()),
        Ok(status) => {
            let _ = state.uploads.terminate(&record.id).await;
            Err(ApiError::bad_request(format!(
                "the body had {} bytes but Content-Length said {}",
                status.offset,
                length.unwrap_or(0)
            )))
        }
        Err(TusReply(err)) => {
            let _ = state.uploads.terminate(&record.id).await;
            Err(err)
        }
    }
}

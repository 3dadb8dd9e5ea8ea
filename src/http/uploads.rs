//! Uploads over HTTP: tus 1.0.0 at `/files/` (core, creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! expiration, concatenation) and a one-shot `POST /api/uploads` for curl.
//!
//! The protocol rules come from `streamforge_protocols::tus`; the bytes of
//! every kind of request take the one write path of the actors' uploads
//! ([`Uploads::write`](streamforge_actors::uploads::Uploads::write): one
//! chunk in memory at a time, checkpointed as it goes, verified, committed
//! or rolled back). An offset is acknowledged only after the session has
//! made it durable.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use streamforge_actors::uploads::{
    ConcatKind, Holder, NewUpload, UploadError, UploadRecord, UploadStatus, Write, WriteError,
};
use streamforge_protocols::tus::{
    self, Checksum, Concat, CreationRequest, PatchRequest, TusError, UploadState,
};

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;

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

impl From<WriteError> for TusReply {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Upload(err) => err.into(),
            WriteError::Tus(err) => err.into(),
            err @ (WriteError::Unverified | WriteError::Incomplete) => {
                TusReply(ApiError::bad_request(err.to_string()))
            }
        }
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
        UploadError::HeldElsewhere(_) => ApiError::unavailable("upload_elsewhere", err.to_string()),
        UploadError::TakenOver(_) => {
            ApiError::new(StatusCode::CONFLICT, "upload_taken_over", err.to_string())
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

/// `OPTIONS /files/`: what this server supports (tus discovery).
#[utoipa::path(options, path = "/files/", tag = "uploads", responses(
    (status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm headers"),
))]
pub async fn options_root(state: State<AppState>) -> Response {
    options(state).await
}

/// `OPTIONS /files/{id}`: as `OPTIONS /files/`.
#[utoipa::path(options, path = "/files/{id}", tag = "uploads",
    params(("id" = String, Path, description = "The upload's id")),
    responses(
        (status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm headers"),
    ))]
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
#[utoipa::path(post, path = "/files/", tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = Option<u64>, Header, description = "The upload's size, unless Upload-Defer-Length: 1"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "1: the length comes with a later PATCH"),
        ("Upload-Metadata" = Option<String>, Header, description = "filename and filetype, base64 (tus)"),
        ("Upload-Concat" = Option<String>, Header, description = "partial, or final;/files/a /files/b"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream",
        description = "Optional: the first bytes (creation-with-upload)"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created: Location of the upload, Upload-Offset"),
        (status = 400, description = "A missing or malformed tus header", body = ErrorEnvelope),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorEnvelope),
        (status = 413, description = "Larger than Tus-Max-Size", body = ErrorEnvelope),
        (status = 429, description = "Too many uploads or requests from this address", body = ErrorEnvelope),
    ))]
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
        let write = Write {
            offset: 0,
            limit: record.length.unwrap_or(max_size(&state)),
            checksum,
            length: None,
            whole: false,
        };
        let status = state
            .uploads
            .write(&record.id, write, body.into_data_stream())
            .await?;
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
#[utoipa::path(head, path = "/files/{id}", tag = "uploads",
    params(("id" = String, Path, description = "The upload's id"), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Upload-Offset, Upload-Length (or Upload-Defer-Length), Upload-Metadata, Upload-Concat; X-Asset-Id once complete"),
        (status = 404, description = "No such upload (HEAD answers carry no body)"),
        (status = 410, description = "The upload expired"),
        (status = 412, description = "Tus-Resumable is not 1.0.0"),
    ))]
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
#[utoipa::path(patch, path = "/files/{id}", tag = "uploads",
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where the body goes: the upload's offset now"),
        ("Upload-Checksum" = Option<String>, Header, description = "sha1|sha256|md5 and the body's digest in base64"),
        ("Upload-Length" = Option<u64>, Header, description = "The length, for a deferred-length upload"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Upload-Offset: the new durable offset; X-Asset-Id once complete"),
        (status = 400, description = "A missing or malformed tus header", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 409, description = "Upload-Offset is not the upload's offset, or another PATCH is open", body = ErrorEnvelope),
        (status = 410, description = "The upload expired", body = ErrorEnvelope),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorEnvelope),
        (status = 413, description = "Past the upload's length or the size limit", body = ErrorEnvelope),
        (status = 415, description = "Content-Type is not application/offset+octet-stream", body = ErrorEnvelope),
        (status = 460, description = "Checksum mismatch: nothing of the body was kept", body = ErrorEnvelope),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    let record = state.uploads.record(&id).await?;
    let body = match held_here(&state, &record, Method::PATCH, &uri, &headers, body).await? {
        Ok(body) => body,
        Err(forwarded) => return Ok(forwarded),
    };
    let status = state.uploads.status(&id).await?;
    let upload = UploadState {
        offset: status.offset,
        length: status.length,
        is_final_concat: record.concat == Some(ConcatKind::Final),
    };
    let request = PatchRequest::from_headers(lookup(&headers), &upload, max_size(&state))?;
    let write = Write {
        offset: request.offset,
        limit: request.max_body(&upload, max_size(&state)),
        checksum: request.checksum,
        length: request.declared_length,
        whole: false,
    };
    let status = state
        .uploads
        .write(&id, write, body.into_data_stream())
        .await?;
    let out = progress_headers(&state, &status, record.created_at_ms);
    Ok((StatusCode::NO_CONTENT, out).into_response())
}

/// A write of `record` goes on here when this node holds its bytes
/// (`Ok(body)` hands the body back), or is forwarded to the node that
/// does (`Err(its answer)`).
async fn held_here(
    state: &AppState,
    record: &UploadRecord,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Result<Body, Response>, TusReply> {
    match state.uploads.holder(record).await? {
        Holder::Here => Ok(Ok(body)),
        Holder::Elsewhere { node, advertise } => {
            tracing::debug!(upload = %record.id, %node, "forwarding a write to the node holding the upload");
            let answer = state
                .forwarder
                .forward(&advertise, method, uri, headers, body)
                .await?;
            Ok(Err(answer))
        }
        // Its bytes are in the store: this node takes the upload over.
        Holder::Away { .. } if state.uploads.in_store() => Ok(Ok(body)),
        Holder::Away { node } => Err(UploadError::HeldElsewhere(node).into()),
    }
}

/// `DELETE /files/{id}`: tus termination.
#[utoipa::path(delete, path = "/files/{id}", tag = "uploads",
    params(("id" = String, Path, description = "The upload's id"), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Terminated: its bytes are removed"),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 410, description = "The upload expired", body = ErrorEnvelope),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorEnvelope),
    ))]
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, TusReply> {
    tus::check_resumable(lookup(&headers)("tus-resumable"))?;
    let record = state.uploads.record(&id).await?;
    if let Err(forwarded) = held_here(
        &state,
        &record,
        Method::DELETE,
        &uri,
        &headers,
        Body::empty(),
    )
    .await?
    {
        return Ok(forwarded);
    }
    state.uploads.terminate(&id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(TUS_RESUMABLE, HeaderValue::from_static(tus::TUS_VERSION))],
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneShotQuery {
    /// The asset's file name.
    filename: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OneShotAnswer {
    upload_id: String,
    asset_id: Option<String>,
    size: u64,
}

/// `POST /api/uploads?filename=NAME`: the whole file as the raw body
/// (`curl --data-binary @FILE URL`), or as the file field of a multipart
/// form (`curl -F file=@FILE URL`), for curl and scripts. Streamed like a
/// tus PATCH, never held whole.
#[utoipa::path(post, path = "/api/uploads", tag = "uploads",
    params(OneShotQuery),
    request_body(content = Vec<u8>, description = "The file (any content type), or a multipart/form-data form with a file field"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Stored; its asset is processing", body = OneShotAnswer),
        (status = 400, description = "bad_request: a body shorter than Content-Length, a form without a file, a bad filename", body = ErrorEnvelope),
        (status = 413, description = "too_large: over uploads.max_size", body = ErrorEnvelope),
        (status = 429, description = "too_many_requests", body = ErrorEnvelope),
        (status = 503, description = "The upload could not be stored now", body = ErrorEnvelope),
    ))]
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
    if length == Some(0) {
        return Err(ApiError::bad_request(
            "the body is empty: there is no file to store",
        ));
    }
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
    let write = Write {
        offset: 0,
        limit: length.unwrap_or(max),
        checksum: None,
        length,
        whole: true,
    };
    let result = state
        .uploads
        .write(&record.id, write, body)
        .await
        .map_err(TusReply::from);
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

//! The growing source over HTTP: uploads still arriving, readable by ffmpeg
//! and ffprobe on loopback, so processing starts with the first bytes.
//!
//! `GET /uploads/{id}?secret=…` answers with the upload's full length and
//! honours `Range` (ffmpeg seeks by range, e.g. to an MP4 index at the end).
//! The body is sent as far as the bytes are durable and then held: each
//! time the upload's session commits more, the response goes on, until the
//! range is complete ([`Uploads::open_growing`], in the actors' uploads).
//! The listener is bound to 127.0.0.1 only and every request needs the
//! per-process secret, so other local users cannot read uploads.

use crate::http::delivery::{RangeAnswer, byte_range};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use streamforge_actors::transcode::GrowingSource;
use streamforge_actors::uploads::{UploadError, Uploads};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct SourceState {
    uploads: Uploads,
    secret: String,
}

/// Binds the loopback listener and makes the secret; the transcoder gets
/// the returned [`GrowingSource`].
pub async fn bind() -> std::io::Result<(TcpListener, GrowingSource)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let source = GrowingSource {
        base_url: format!("http://{addr}"),
        secret: uuid::Uuid::new_v4().simple().to_string(),
    };
    Ok((listener, source))
}

/// Serves the growing source until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    source: GrowingSource,
    uploads: Uploads,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/uploads/{id}", get(read))
        .with_state(SourceState {
            uploads,
            secret: source.secret,
        });
    // At shutdown the reads in flight are dropped, not awaited: they wait
    // for bytes that will not come, and their readers (ffmpeg children)
    // are killed right after.
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(err) = served {
                tracing::error!(%err, "growing source stopped");
            }
        }
        () = shutdown.cancelled() => {}
    }
}

#[derive(Deserialize)]
struct Secret {
    secret: String,
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn read(
    State(state): State<SourceState>,
    Path(id): Path<String>,
    Query(secret): Query<Secret>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if secret.secret != state.secret {
        return plain(StatusCode::FORBIDDEN, "wrong secret");
    }
    let upload = match state.uploads.open_growing(&id).await {
        Ok(upload) => upload,
        Err(UploadError::NotFound(_)) => return plain(StatusCode::NOT_FOUND, "no such upload"),
        Err(err) => return plain(StatusCode::GONE, err.to_string()),
    };
    let Some(length) = upload.length else {
        return plain(StatusCode::CONFLICT, "the upload's length is not known yet");
    };
    let range = match headers.get(header::RANGE).map(|r| byte_range(r, length)) {
        None | Some(RangeAnswer::Full) => None,
        Some(RangeAnswer::Partial(range)) => Some((range.start, range.end)),
        Some(RangeAnswer::Unsatisfiable) => {
            let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
    };
    let (start, end) = range.unwrap_or((0, length));
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start);
    if range.is_some() {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{length}", end - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(upload.read(start..end))
    };
    builder
        .body(body)
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

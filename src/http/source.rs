//! The growing source over HTTP: uploads still arriving, readable by ffmpeg
//! and ffprobe on loopback, so processing starts with the first bytes.
//!
//! `GET /uploads/{id}?secret=…` answers with the upload's full length and
//! honours `Range` (ffmpeg seeks by range, e.g. to an MP4 index at the end).
//! The body is sent as far as the bytes are durable and then held: each
//! time the upload's session commits more, the response goes on, until the
//! range is complete ([`Uploads::open_growing`], in the actors' uploads).
//! `GET /originals/{asset}?secret=…` serves a stored original the same
//! way, from any storage backend: ffmpeg reads originals in a remote store
//! (S3) through it.
//!
//! The listener is bound to 127.0.0.1 only and every request needs the
//! per-process secret, so other local users cannot read uploads. The same
//! routes are served under `/internal/` of the public listener to the
//! other nodes, behind the secret they share (`Database::internal_secret`).

use crate::http::delivery::{RangeAnswer, byte_range};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use streamforge_actors::assets::keys;
use streamforge_actors::storage::Storage;
use streamforge_actors::transcode::GrowingSource;
use streamforge_actors::uploads::{UploadError, Uploads};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct SourceState {
    uploads: Uploads,
    storage: Storage,
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
    let app = app(uploads, source.secret);
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

/// The source server's routes, each behind `secret`: on the loopback
/// listener with this process's secret, and under `/internal/` of the
/// public listener with the secret the nodes share, for a worker on
/// another node reading an upload that arrives here.
pub fn app(uploads: Uploads, secret: String) -> Router {
    let state = SourceState {
        storage: uploads.storage().clone(),
        uploads,
        secret,
    };
    Router::new()
        .route("/uploads/{id}", get(read))
        .route("/originals/{asset}", get(original))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_secret,
        ))
        .with_state(state)
}

#[derive(Deserialize)]
struct Secret {
    secret: String,
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// Every request carries the per-process secret.
async fn require_secret(
    State(state): State<SourceState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match Query::<Secret>::try_from_uri(request.uri()) {
        Ok(Query(secret)) if secret.secret == state.secret => next.run(request).await,
        _ => plain(StatusCode::FORBIDDEN, "wrong secret"),
    }
}

async fn read(
    State(state): State<SourceState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let upload = match state.uploads.open_growing(&id).await {
        Ok(upload) => upload,
        Err(UploadError::NotFound(_)) => return plain(StatusCode::NOT_FOUND, "no such upload"),
        Err(err) => return plain(StatusCode::GONE, err.to_string()),
    };
    let Some(length) = upload.length else {
        return plain(StatusCode::CONFLICT, "the upload's length is not known yet");
    };
    let range = match requested_range(&headers, length) {
        Ok(range) => range,
        Err(refused) => return refused.into_response(),
    };
    let body = |start, end| upload.read(start..end);
    ranged(&method, length, range, body)
}

/// The stored original of `asset`, by range.
async fn original(
    State(state): State<SourceState>,
    Path(asset): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(key) = keys::original(&asset) else {
        return plain(StatusCode::NOT_FOUND, "no such asset");
    };
    let object = match state.storage.open(&key).await {
        Ok(Some(object)) => object,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such original"),
        Err(err) => return plain(StatusCode::BAD_GATEWAY, err.to_string()),
    };
    let length = object.info.size;
    let range = match requested_range(&headers, length) {
        Ok(range) => range,
        Err(refused) => return refused.into_response(),
    };
    if method == Method::HEAD || length == 0 {
        return ranged(&method, length, range, |_, _| futures::stream::empty());
    }
    let (start, end) = range.unwrap_or((0, length));
    tracing::debug!(%asset, start, end, "source: reading a stored original");
    match object.read(Some(start..end)).await {
        Ok(read) => {
            let body = read.body.map_err(std::io::Error::other);
            ranged(&method, length, range, move |_, _| body)
        }
        Err(err) => plain(StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

/// The byte range a request asks of `length` bytes: `None` for all of
/// them.
fn requested_range(headers: &HeaderMap, length: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    match headers.get(header::RANGE).map(|r| byte_range(r, length)) {
        None | Some(RangeAnswer::Full) => Ok(None),
        Some(RangeAnswer::Partial(range)) => Ok(Some((range.start, range.end))),
        Some(RangeAnswer::Unsatisfiable) => Err(Unsatisfiable(length)),
    }
}

/// A range outside the resource: `416`, with the resource's length.
struct Unsatisfiable(u64);

impl IntoResponse for Unsatisfiable {
    fn into_response(self) -> Response {
        let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", self.0)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        response
    }
}

/// A `200` or `206` answer of `length` bytes whose body `body(start, end)`
/// streams (none for `HEAD`).
fn ranged<S>(
    method: &Method,
    length: u64,
    range: Option<(u64, u64)>,
    body: impl FnOnce(u64, u64) -> S,
) -> Response
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
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
        Body::from_stream(body(start, end))
    };
    builder
        .body(body)
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use streamforge_actors::db::Database;
    use streamforge_actors::events::EventBus;
    use streamforge_actors::process::Processes;
    use streamforge_actors::supervision::Supervision;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn originals_are_read_by_range_with_the_secret_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap();
        let storage = Storage::local(&dir.path().join("media")).unwrap();
        let key = keys::original("a1").unwrap();
        storage
            .put(&key, bytes::Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let tree = Supervision::start(Processes::new()).await.unwrap();
        let uploads = Uploads::new(
            db,
            storage,
            tree.clone(),
            dir.path().join("uploads"),
            Duration::from_secs(60),
            None,
            EventBus::default(),
        )
        .unwrap();
        let app = app(uploads, "s3cret".to_owned());
        let get = |uri: &str, range: Option<&str>| {
            let mut request = http::Request::get(uri);
            if let Some(range) = range {
                request = request.header(header::RANGE, range);
            }
            app.clone().oneshot(request.body(Body::empty()).unwrap())
        };
        for uri in ["/originals/a1", "/originals/a1?secret=wrong", "/uploads/u1"] {
            let answer = get(uri, None).await.unwrap();
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{uri}");
        }
        let answer = get("/originals/a1?secret=s3cret", Some("bytes=2-5"))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(answer.headers()[header::CONTENT_RANGE], "bytes 2-5/10");
        let body = axum::body::to_bytes(answer.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"2345");
        let answer = get("/originals/a1?secret=s3cret", Some("bytes=20-"))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(answer.headers()[header::CONTENT_RANGE], "bytes */10");
        let answer = get("/originals/a2?secret=s3cret", None).await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

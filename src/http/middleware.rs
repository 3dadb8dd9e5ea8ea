//! Middleware every request passes through: admission (path safety, node
//! role, rate and upload limits, tokens), metrics and request logging, CORS,
//! compression, and turning a handler panic into a 500.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Extensions, HeaderMap, HeaderName, Method, StatusCode, Version, header};
use std::time::Duration;
use tower_http::cors::{self, CorsLayer};

use super::AppState;
use super::error::ApiError;
use crate::config::AuthMode;
use crate::metrics::RequestLabels;

/// The checks a request passes before it is routed, in this order:
/// [`unsafe_path_refusal`], [`api_role_refusal`], [`rate_limit_refusal`],
/// [`upload_slot`] (held until the response is made), [`token_refusal`].
/// One middleware for all of them: each `from_fn` layer costs a clone of
/// the boxed service below it and a boxed future on every request, which
/// was a measurable share of a cached playlist's time.
async fn admit(state: &AppState, request: Request, next: Next) -> Response {
    if let Some(refusal) = unsafe_path_refusal(&request)
        .or_else(|| api_role_refusal(state, &request))
        .or_else(|| rate_limit_refusal(state, &request))
    {
        return refusal;
    }
    let _slot = match upload_slot(state, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(refusal) =
        token_refusal(state, request.method(), request.uri(), request.headers()).await
    {
        return refusal;
    }
    next.run(request).await
}

/// On a node without the `api` role (`node.roles`), everything but the
/// operational endpoints answers `503`: a load balancer sends API, upload
/// and playback requests to the nodes that have it.
fn api_role_refusal(state: &AppState, request: &Request) -> Option<Response> {
    let operational = matches!(
        request.uri().path(),
        "/healthz" | "/readyz" | "/metrics" | "/api/server" | "/api/nodes"
    );
    if operational || state.node.has(streamforge_actors::cluster::Role::Api) {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_served",
            format!(
                "node {} does not have the api role (node.roles); ask a node that has it",
                state.node.id
            ),
        )
        .into_response(),
    )
}

/// Rejects request paths that could name something outside their route's
/// namespace: dot segments (plain or percent-encoded), encoded slashes and
/// backslashes, NUL, and empty segments. Every later route parameter can
/// then be used as an identifier without re-checking for traversal.
fn unsafe_path_refusal(request: &Request) -> Option<Response> {
    unsafe_path(request.uri().path())
        .map(|reason| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", reason).into_response())
}

pub(crate) fn unsafe_path(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("path must start with '/'");
    }
    let encoded_separator = path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                [w[1], w[2].to_ascii_lowercase()],
                [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
            )
    });
    if encoded_separator {
        return Some("percent-encoded '.', '/', '\\' or NUL in path");
    }
    if path.contains('\\') || path.contains('\0') {
        return Some("'\\' or NUL in path");
    }
    // Skip the empty segment before the leading '/'; allow one trailing '/'.
    let inner = path[1..].strip_suffix('/').unwrap_or(&path[1..]);
    if path.len() > 1
        && inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("empty, '.' or '..' path segment");
    }
    None
}

/// With `auth.mode = "token"`, `/api/` and `/files/` need a live token as
/// `Authorization: Bearer TOKEN` (or `?access_token=TOKEN`, for EventSource
/// and WebSocket clients that cannot set headers). Preflights and tus
/// discovery (OPTIONS), playback, health and metrics stay open.
/// (Takes the request's parts, not the request: its body is not `Sync`, so
/// a reference to it could not be held across the database check.)
async fn token_refusal(
    state: &AppState,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Option<Response> {
    let path = uri.path();
    let protected = path.starts_with("/api/") || path == "/files" || path.starts_with("/files/");
    if state.auth == AuthMode::None || !protected || method == Method::OPTIONS {
        return None;
    }
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = uri.query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
    });
    let message = match from_header.or(from_query) {
        None => {
            "this endpoint needs `Authorization: Bearer TOKEN` (see `streamforge token create`)"
        }
        Some(token) => match state.db.token_is_valid(token).await {
            Ok(true) => return None,
            Ok(false) => "the token is unknown or revoked",
            Err(err) => {
                tracing::error!(%err, "cannot check a token");
                return Some(
                    ApiError::unavailable("database_unavailable", "retry later").into_response(),
                );
            }
        },
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"streamforge\""),
    );
    Some(response)
}

/// Requests per client address, for [`rate_limit_refusal`].
pub type RateLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// The limiter for `limits`, or `None` when turned off.
pub fn rate_limiter(limits: &crate::config::LimitsConfig) -> Option<std::sync::Arc<RateLimiter>> {
    let per_second = std::num::NonZeroU32::new(limits.api_per_second)?;
    let burst = std::num::NonZeroU32::new(limits.api_burst)?;
    let quota = governor::Quota::per_second(per_second).allow_burst(burst);
    Some(std::sync::Arc::new(governor::RateLimiter::keyed(quota)))
}

/// Per-address rate limit on `/api/` and on upload creation (`POST /files/`):
/// over it, 429 with `Retry-After`. Uploading bytes (PATCH), playback and
/// health are never limited here.
fn rate_limit_refusal(state: &AppState, request: &Request) -> Option<Response> {
    let limiter = state.rate_limiter.as_ref()?;
    let path = request.uri().path();
    let limited = path.starts_with("/api/")
        || (request.method() == Method::POST && (path == "/files" || path == "/files/"));
    if !limited {
        return None;
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let not_until = limiter.check_key(&peer).err()?;
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    let seconds = wait.as_secs() + 1;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        format!("too many requests from {peer}; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
    Some(response)
}

/// The outer middleware of every request: the [`Observation`] of the
/// request around [`admit`] and everything after it. One `from_fn` layer
/// for both (see [`admit`] for why that matters).
pub async fn observe_and_admit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let observation = Observation::of(&request);
    let response = admit(&state, request, next).await;
    observation.record(&state, &response);
    response
}

/// What is logged and counted of a request: by route and status, its
/// count and latency; in the access log (when on), path, version and id.
struct Observation {
    started: Instant,
    method: Method,
    route: String,
    /// Path, version and request id, copied only when the access log is on.
    logged: Option<(String, Version, String)>,
}

impl Observation {
    fn of(request: &Request) -> Self {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let logged = tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO).then(|| {
            let path = clip(request.uri().path()).to_owned();
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (path, request.version(), request_id)
        });
        Observation {
            started: Instant::now(),
            method: request.method().clone(),
            route,
            logged,
        }
    }

    fn record(self, state: &AppState, response: &Response) {
        let elapsed = self.started.elapsed();
        let status = response.status();
        if let Some((path, version, request_id)) = &self.logged {
            let line = AccessLine {
                method: &self.method,
                path,
                route: &self.route,
                version: *version,
                request_id,
            };
            line.write(status, elapsed);
        }
        state.metrics.observe_request(
            RequestLabels {
                method: self.method.as_str().to_owned(),
                route: self.route,
                status: status.as_u16(),
            },
            elapsed,
        );
    }
}

/// The access log's target: on when it is enabled at `info` (the default
/// `log.filter` is `info`).
pub(crate) const ACCESS_LOG: &str = "streamforge::access";

/// The first 200 characters of a path, as the access log writes it.
fn clip(path: &str) -> &str {
    match path.char_indices().nth(200) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}

/// One request's line in the access log.
pub(crate) struct AccessLine<'a> {
    pub method: &'a Method,
    /// At most its first 200 characters are written.
    pub path: &'a str,
    pub route: &'a str,
    pub version: Version,
    pub request_id: &'a str,
}

impl AccessLine<'_> {
    pub(crate) fn write(&self, status: StatusCode, elapsed: Duration) {
        let path = clip(self.path);
        tracing::info!(
            target: ACCESS_LOG,
            method = %self.method,
            path,
            route = self.route,
            version = ?self.version,
            status = status.as_u16(),
            micros = elapsed.as_micros() as u64,
            request_id = self.request_id,
            "request"
        );
    }
}

/// CORS for browsers on other origins, applied only to requests that carry
/// `Origin`: tower-http answers every OPTIONS as a preflight, and a tus
/// client's OPTIONS (no `Origin`) must reach the tus handler instead.
#[derive(Clone)]
pub struct BrowserCors(Arc<CorsLayer>);

pub fn browser_cors() -> BrowserCors {
    BrowserCors(Arc::new(cors()))
}

impl<S: Clone> tower::Layer<S> for BrowserCors {
    type Service = BrowserCorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserCorsService {
            cors: self.0.clone(),
            inner,
        }
    }
}

/// The service is cloned for every request; the CORS configuration (header
/// lists, allocated) is shared, and a `Cors` service is made from it only
/// for a request that carries `Origin`.
#[derive(Clone)]
pub struct BrowserCorsService<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

impl<S> tower::Service<Request> for BrowserCorsService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Both paths are clones of a router, which is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use tower::{Layer, ServiceExt};
        if request.headers().contains_key(header::ORIGIN) {
            Box::pin(self.cors.layer(self.inner.clone()).oneshot(request))
        } else {
            Box::pin(self.inner.clone().oneshot(request))
        }
    }
}

/// CORS for browser players and uploaders on other origins: simple and
/// preflighted requests with the headers they send, and the response
/// headers they read.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(cors::Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            // tus 1.0 request headers, for browser uploads.
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-checksum"),
            HeaderName::from_static("upload-concat"),
            HeaderName::from_static("upload-defer-length"),
            HeaderName::from_static("x-http-method-override"),
            HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            header::DATE,
            HeaderName::from_static("x-request-id"),
            header::LOCATION,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("tus-version"),
            HeaderName::from_static("tus-extension"),
            HeaderName::from_static("tus-max-size"),
            HeaderName::from_static("tus-checksum-algorithm"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-expires"),
            HeaderName::from_static("upload-concat"),
            HeaderName::from_static("upload-defer-length"),
            HeaderName::from_static("x-asset-id"),
        ])
        .max_age(Duration::from_secs(86_400))
}

/// Compress text answers (playlists, manifests, JSON, WebVTT) of a useful
/// size; never media, which is already compressed, nor partial content.
pub fn compressible(
    status: StatusCode,
    _version: Version,
    headers: &HeaderMap,
    _extensions: &Extensions,
) -> bool {
    const MIN_BYTES: u64 = 256;
    if status != StatusCode::OK {
        return false;
    }
    let large_enough = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_none_or(|n| n >= MIN_BYTES);
    let textual = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("application/vnd.apple.mpegurl")
                || t.starts_with("application/dash+xml")
                || t.starts_with("application/json")
                // Event streams must reach the client event by event; a
                // compressor would hold them back until its buffer fills.
                || (t.starts_with("text/") && !t.starts_with("text/event-stream"))
        });
    large_enough && textual
}

/// A handler panic becomes a 500 with the standard body; the detail goes to the log only.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    tracing::error!(detail, "handler panicked");
    ApiError::internal("internal error; see the server log").into_response()
}

#[cfg(test)]
mod tests {
    use super::unsafe_path;

    #[test]
    fn traversal_in_any_spelling_is_refused() {
        for bad in [
            "/vod/../etc/passwd",
            "/vod/%2e%2e/x",
            "/vod/%2E%2E/x",
            "/vod/.%2e/x",
            "/vod/a%2fb",
            "/vod/a%5cb",
            "/vod/a%2Fb",
            "/vod/a%5Cb",
            "/vod/a\\b",
            "/vod//x",
            "/vod/./x",
            "/files/abc/..",
            "/x%00",
        ] {
            assert!(unsafe_path(bad).is_some(), "{bad} should be refused");
        }
        for good in [
            "/",
            "/healthz",
            "/vod/a1/master.m3u8",
            "/files/abc/",
            "/a/b.c-d_e",
        ] {
            assert_eq!(unsafe_path(good), None, "{good} should pass");
        }
    }
}

/// Requests in progress per client address, for limits on concurrency.
#[derive(Debug, Default)]
pub struct ClientSlots {
    limit: usize,
    busy: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// A slot held until dropped.
pub struct SlotGuard<'a> {
    slots: &'a ClientSlots,
    peer: std::net::IpAddr,
}

impl ClientSlots {
    /// At most `limit` at once per address; 0 turns the limit off.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            busy: std::sync::Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `peer`, or `None` when it holds `limit` already.
    pub fn acquire(&self, peer: std::net::IpAddr) -> Option<SlotGuard<'_>> {
        if self.limit == 0 {
            return Some(SlotGuard { slots: self, peer });
        }
        let mut busy = self.lock();
        let count = busy.entry(peer).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(SlotGuard { slots: self, peer })
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if self.slots.limit == 0 {
            return;
        }
        let mut busy = self.slots.lock();
        if let Some(count) = busy.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                busy.remove(&self.peer);
            }
        }
    }
}

/// Limits how many upload bodies (tus PATCH, creation with data, one-shot
/// uploads) one client address sends at once (`limits.uploads_per_client`):
/// 429 beyond it, so one client cannot hold every upload session and disk
/// stream of the server.
fn upload_slot<'a>(
    state: &'a AppState,
    request: &Request,
) -> Result<Option<SlotGuard<'a>>, TooManyUploads> {
    let path = request.uri().path();
    let method = request.method();
    let carries_upload = (*method == Method::PATCH && path.starts_with("/files/"))
        || (*method == Method::POST
            && (path == "/files/" || path == "/files" || path == "/api/uploads"));
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let (true, Some(peer)) = (carries_upload, peer) else {
        return Ok(None);
    };
    state
        .upload_slots
        .acquire(peer)
        .map(Some)
        .ok_or(TooManyUploads)
}

/// [`upload_slot`]'s refusal: the client sends as many uploads as it may.
struct TooManyUploads;

impl IntoResponse for TooManyUploads {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            "this address already sends as many uploads at once as it may; retry when one ends",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        response
    }
}

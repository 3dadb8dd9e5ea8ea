//! The request a VOD origin answers most, answered before the router: a
//! player reloading a playlist or manifest that is in the memory cache.
//!
//! Over a socket, axum's routing and extractors and the eight middleware
//! layers cost such a request more than hyper and the kernel do
//! (docs/PERFORMANCE.md, "Playlists"). Here the connection's service takes
//! the request first: when it is a plain `GET`/`HEAD` of
//! `/vod/{asset}/{path}.m3u8|.mpd` whose copy is cached, the answer comes
//! from [`delivery::respond_from_memory`] (the handler's own code) with
//! what the layers would have added — `x-request-id`, the request's
//! metrics under the route's label. Every request the layers would treat
//! differently goes to the router unchanged: anything with `Origin` (CORS),
//! `Range`, a body, a percent-encoded or unsafe path, an `Accept-Encoding`
//! the cached gzip copy does not answer (the compression layer's case);
//! and every request while signed playback is on or on a node without the
//! `api` role. It writes the access log line the router would.
//! `tests/fast_path.rs` checks the two answers are the same.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Body;
use streamforge_actors::assets::keys;
use streamforge_actors::cluster::Role;
use tower_http::request_id::{MakeRequestId, MakeRequestUuid};

use super::AppState;
use super::delivery::{self, Kind};
use super::middleware::{ACCESS_LOG, AccessLine, unsafe_path};
use crate::metrics::{RequestLabels, RequestSeries};

/// The route whose requests the fast path answers, as its metrics label.
pub(crate) const VOD_FILE_ROUTE: &str = "/vod/{asset}/{*path}";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Answers cached playlist reloads without the router; off (every request
/// to the router) when signed playback is on.
#[derive(Clone, Debug)]
pub struct FastPath(Option<Arc<On>>);

#[derive(Debug)]
struct On {
    state: AppState,
    /// The request series of `GET`/`HEAD` × 200/304, the answers given here
    /// (ranges, which make 206 and 416, go to the router), looked up once.
    series: [OnceLock<RequestSeries>; 4],
}

impl FastPath {
    pub fn new(state: &AppState) -> Self {
        // Signed playback checks and rewrites every manifest answer; a node
        // without the `api` role refuses playback (roles are fixed at start).
        if state.signer.is_some() || !state.node.has(Role::Api) {
            return FastPath(None);
        }
        FastPath(Some(Arc::new(On {
            state: state.clone(),
            series: Default::default(),
        })))
    }

    /// The answer to `request`, or `None` when the router must answer it.
    pub fn answer<B: Body>(&self, request: &Request<B>) -> Option<Response> {
        let On { state, series } = self.0.as_deref()?;
        let method = request.method();
        if (method != Method::GET && method != Method::HEAD) || !request.body().is_end_stream() {
            return None;
        }
        let headers = request.headers();
        if headers.contains_key(header::ORIGIN) || headers.contains_key(header::RANGE) {
            return None;
        }
        let path = request.uri().path();
        let (asset, file) = path.strip_prefix("/vod/")?.split_once('/')?;
        if path.contains('%') || unsafe_path(path).is_some() || asset.is_empty() {
            return None;
        }
        let (content_type, kind) = delivery::classify(file);
        if kind != Kind::Manifest {
            return None;
        }
        let started = Instant::now();
        let key = keys::media(asset, file).ok()?;
        let object = state.cache.peek(&key, delivery::MANIFEST_MAX_AGE)?;
        let mut response = delivery::respond_from_memory(
            object,
            HeaderValue::from_static(content_type),
            kind,
            method,
            headers,
        );
        // An identity body for a client that accepts some encoding is the
        // compression layer's to judge (a 304 has no body to compress).
        if headers.contains_key(header::ACCEPT_ENCODING)
            && response.status() != StatusCode::NOT_MODIFIED
            && !response.headers().contains_key(header::CONTENT_ENCODING)
        {
            return None;
        }
        let id = match headers.get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => MakeRequestUuid
                .make_request_id(request)?
                .into_header_value(),
        };
        response
            .headers_mut()
            .insert(REQUEST_ID.clone(), id.clone());
        let status = response.status();
        let elapsed = started.elapsed();
        if tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO) {
            let line = AccessLine {
                method,
                path,
                route: VOD_FILE_ROUTE,
                version: request.version(),
                request_id: id.to_str().unwrap_or(""),
            };
            line.write(status, elapsed);
        }
        let not_modified = status == StatusCode::NOT_MODIFIED;
        if status == StatusCode::OK || not_modified {
            let index = 2 * usize::from(method == Method::HEAD) + usize::from(not_modified);
            series[index]
                .get_or_init(|| state.metrics.request_series(&labels(method, status)))
                .observe(elapsed);
        } else {
            state
                .metrics
                .observe_request(labels(method, status), elapsed);
        }
        Some(response)
    }
}

fn labels(method: &Method, status: StatusCode) -> RequestLabels {
    RequestLabels {
        method: method.as_str().to_owned(),
        route: VOD_FILE_ROUTE.to_owned(),
        status: status.as_u16(),
    }
}

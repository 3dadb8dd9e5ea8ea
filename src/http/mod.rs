//! The HTTP front: one router, served over HTTP/1.1 and HTTP/2 (h2c with
//! prior knowledge) on a TCP listener, with limits on header size, body size,
//! and idle and header-read time.
//!
//! Accept loop → one task per connection → hyper runs one future per request,
//! so an error stays with its request or connection. On shutdown the listener
//! closes first, then open connections get `shutdown_grace` to finish.

pub mod api_doc;
mod assets;
pub mod cache;
pub mod delivery;
pub mod edge;
mod error;
mod events;
pub mod fast;
pub mod forward;
pub mod gzip;
pub mod h3;
mod idle;
mod imports;
mod live;
pub mod middleware;
pub mod playback;
mod routes;
pub use routes::openapi_json;
pub mod source;
pub mod tls;
mod uploads;
mod web;
mod webhooks;
mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use futures::FutureExt;
use futures::future::Either;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::ApiError;
use streamforge_actors::db::Database;
use streamforge_actors::storage::Storage;
use streamforge_actors::supervision::Supervision;

use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// What every handler can reach: one shared [`Services`] behind an `Arc`.
///
/// axum clones the state for every request (and every middleware layer
/// that takes it); with the services behind one `Arc` that is a single
/// reference-count increment instead of one per field, which under load
/// was a third of the server's CPU time for a cached playlist.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services and settings behind [`AppState`].
#[derive(Debug)]
pub struct Services {
    pub db: Database,
    pub storage: Storage,
    pub supervision: Supervision,
    pub metrics: Arc<Metrics>,
    pub cache: cache::ObjectCache,
    /// The compressed copy of each live playlist's last answer.
    pub live_gzip: gzip::SharedGzip,
    pub uploads: streamforge_actors::uploads::Uploads,
    /// Downloads from URLs into uploads (`/api/imports`).
    pub imports: streamforge_actors::imports::Imports,
    /// Where endpoints made through `/api/webhooks` may point.
    pub webhook_guard: Arc<streamforge_actors::imports::guard::Guard>,
    pub live: streamforge_actors::live::Live,
    /// The RTMP port, for publish URLs handed out by the API.
    pub rtmp_port: Option<u16>,
    pub rtsp_port: Option<u16>,
    pub srt_port: Option<u16>,
    /// WHIP sessions, when WebRTC ingest is on.
    pub whip: Option<streamforge_actors::live::whip::Whip>,
    /// Upload bodies in progress per client address.
    pub upload_slots: Arc<middleware::ClientSlots>,
    /// Signs and checks playback URLs when `auth.playback = "signed"`.
    pub signer: Option<Arc<playback::Signer>>,
    /// Status events for the SSE and WebSocket endpoints.
    pub events: streamforge_actors::events::EventBus,
    /// Largest upload accepted (tus `Tus-Max-Size`).
    pub upload_max_size: u64,
    pub auth: crate::config::AuthMode,
    /// Per-address limit on the API and upload creation; `None` when off.
    pub rate_limiter: Option<Arc<middleware::RateLimiter>>,
    pub started: Instant,
    /// This node, as the node registry knows it.
    pub node: streamforge_actors::cluster::NodeIdentity,
    /// Sends writes of uploads other nodes hold to them.
    pub forwarder: forward::Forwarder,
    /// Relays live streams other nodes own.
    pub edge: edge::EdgeRelay,
    /// Set once shutdown begins: `/readyz` turns 503 so load balancers drain us.
    pub draining: Arc<AtomicBool>,
    /// Cancelled when shutdown begins: long-lived responses (event streams) end.
    pub shutdown: CancellationToken,
}

/// The application's routes and middleware: every [`Layer`].
pub fn router(state: AppState, http: &HttpConfig) -> Router {
    router_with_layers(state, http, Layer::ALL.len())
}

/// A middleware layer around the routes, in [`Layer::ALL`]'s order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Signed playback URLs checked; error answers given the JSON body.
    JsonErrorsOfSigned,
    /// gzip / brotli for text the client accepts compressed.
    Compression,
    /// `http.max_body_bytes` on request bodies (uploads disable it).
    BodyLimit,
    /// Metrics and the access log, around auth, rate limits and draining.
    ObserveAndAdmit,
    /// CORS for requests with `Origin` (outside admission, so that browser
    /// apps on another origin can read its refusals: 401, 429, 503).
    BrowserCors,
    /// `x-request-id` copied onto the response.
    PropagateRequestId,
    /// `x-request-id` made for requests without one.
    SetRequestId,
    /// A panicking handler answers 500 and the connection goes on.
    CatchPanic,
}

impl Layer {
    /// Innermost first: the order [`router`] wraps the routes in.
    pub const ALL: [Layer; 8] = [
        Layer::JsonErrorsOfSigned,
        Layer::Compression,
        Layer::BodyLimit,
        Layer::ObserveAndAdmit,
        Layer::BrowserCors,
        Layer::PropagateRequestId,
        Layer::SetRequestId,
        Layer::CatchPanic,
    ];

    /// A short name (benches list the overhead of each).
    pub fn name(self) -> &'static str {
        match self {
            Layer::JsonErrorsOfSigned => "json_errors_of_signed",
            Layer::Compression => "compression",
            Layer::BodyLimit => "body_limit",
            Layer::ObserveAndAdmit => "observe_and_admit",
            Layer::BrowserCors => "browser_cors",
            Layer::PropagateRequestId => "propagate_request_id",
            Layer::SetRequestId => "set_request_id",
            Layer::CatchPanic => "catch_panic",
        }
    }

    fn wrap(self, app: Router<AppState>, state: &AppState, http: &HttpConfig) -> Router<AppState> {
        let request_id = || http::HeaderName::from_static("x-request-id");
        match self {
            Layer::JsonErrorsOfSigned => app.layer(axum::middleware::from_fn_with_state(
                state.clone(),
                error::json_errors_of_signed,
            )),
            Layer::Compression => {
                app.layer(CompressionLayer::new().compress_when(middleware::compressible))
            }
            Layer::BodyLimit => app.layer(DefaultBodyLimit::max(http.max_body_bytes)),
            Layer::ObserveAndAdmit => app.layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::observe_and_admit,
            )),
            Layer::BrowserCors => app.layer(middleware::browser_cors()),
            Layer::PropagateRequestId => app.layer(PropagateRequestIdLayer::new(request_id())),
            Layer::SetRequestId => app.layer(SetRequestIdLayer::new(request_id(), MakeRequestUuid)),
            Layer::CatchPanic => app.layer(CatchPanicLayer::custom(middleware::panic_response)),
        }
    }
}

/// The routes wrapped in the first `layers` of [`Layer::ALL`] (innermost
/// first); [`router`] is all of them. `benches/middleware_layers.rs` adds
/// them one at a time to measure what each costs a request.
pub fn router_with_layers(state: AppState, http: &HttpConfig, layers: usize) -> Router {
    let mut app = routes::routes()
        .merge(web::routes(&http.web_dir))
        .fallback(error::not_found);
    for layer in Layer::ALL.iter().take(layers) {
        app = layer.wrap(app, &state, http);
    }
    app.with_state(state)
}

/// What a TCP listener speaks.
#[derive(Clone)]
pub enum Transport {
    /// HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
    Plain,
    /// TLS with ALPN `h2` / `http/1.1`; responses advertise HTTP/3 on the same
    /// port with `Alt-Svc` when it runs.
    Tls {
        acceptor: tokio_rustls::TlsAcceptor,
        alt_svc: Option<HeaderValue>,
    },
}

impl Transport {
    fn protocol(&self) -> &'static str {
        match self {
            Transport::Plain => "tcp",
            Transport::Tls { .. } => "tls",
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open
/// connections finish for up to `http.shutdown_grace` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    app: Router,
    fast: fast::FastPath,
    http: HttpConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout)
        .max_buf_size(http.max_header_bytes.max(8192))
        .max_headers(http.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(http.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));

    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
        }
        let guard = metrics.connection_opened(transport.protocol());
        let connection = Connection {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            app: app.clone(),
            fast: fast.clone(),
            peer,
            idle_timeout: http.idle_timeout,
        };
        let transport = transport.clone();
        let handshake_timeout = http.header_timeout;
        connections.spawn(async move {
            let _guard = guard;
            match transport {
                Transport::Plain => connection.run(stream, None).await,
                Transport::Tls { acceptor, alt_svc } => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection.run(tls, alt_svc).await,
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!(open = connections.len(), grace = ?http.shutdown_grace, "listener closed; draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(http.shutdown_grace) => {
            tracing::warn!(open = connections.len(), "grace period over; closing remaining connections");
        }
    }
    connections.shutdown().await;
}

/// What every answer gets on its way out, whichever path made it: no
/// `Content-Length` on a 304. axum's router marks an empty answer
/// `content-length: 0`, which a 304 must not carry (RFC 9110 §8.6: it
/// would be the length of the 200), and which hyper sends over HTTP/2 and
/// for a `HEAD`.
pub fn outgoing(response: &mut axum::response::Response) {
    if response.status() == http::StatusCode::NOT_MODIFIED {
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
    }
}

/// One accepted connection, before its transport is known.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    app: Router,
    fast: fast::FastPath,
    peer: SocketAddr,
    idle_timeout: Duration,
}

impl Connection {
    async fn run<IO>(self, io: IO, alt_svc: Option<HeaderValue>)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            watcher,
            app,
            fast,
            peer,
            idle_timeout,
        } = self;
        let io = TokioIo::new(idle::IdleTimeout::new(io, idle_timeout));
        let with_alt_svc = move |mut response: axum::response::Response| {
            outgoing(&mut response);
            if let Some(alt_svc) = &alt_svc {
                response
                    .headers_mut()
                    .insert(http::header::ALT_SVC, alt_svc.clone());
            }
            response
        };
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            // A panic in the fast path leaves the request to the router,
            // whose panic layer answers 500 if it happens there too.
            let answered =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fast.answer(&request)));
            if let Ok(Some(response)) = answered {
                return Either::Left(std::future::ready(Ok(with_alt_svc(response))));
            }
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let with_alt_svc = with_alt_svc.clone();
            Either::Right(
                app.clone()
                    .oneshot(request)
                    .map(move |response| response.map(with_alt_svc)),
            )
        });
        let connection = watcher.watch(
            builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        if let Err(err) = connection.await {
            tracing::debug!(%peer, err = %err, "connection ended with an error");
        }
    }
}

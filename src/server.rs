//! Start-up and shutdown of the whole server.
//!
//! Start: data directory → database (migrations) → storage → supervision tree
//! → every listener bound → services (uploads, transcoder, live, HTTP
//! router, periodic tasks) → one task serving them all. Shutdown (a signal, or [`Running::shutdown`]): readiness
//! turns 503, the listener closes, in-flight requests get the grace period,
//! the actor tree stops and child processes are killed and reaped, and the
//! run is recorded as cleanly stopped before the database closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamforge_actors::cluster::{self, NodeIdentity, Role};
use streamforge_actors::db::{Database, DbError, Dialect};
use streamforge_actors::events::EventBus;
use streamforge_actors::live::{Live, LiveOptions};
use streamforge_actors::process::Processes;
use streamforge_actors::storage::{Storage, StorageError};
use streamforge_actors::supervision::{PeriodicTask, Supervision, SupervisionError};
use streamforge_actors::transcode::{GrowingSource, Transcoder};
use streamforge_actors::uploads::{UploadError, Uploads};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthMode, Config, StorageLocation, TlsMode};
use crate::http::tls::{self, Identity};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use ::http as http_types;

/// How often unfinished uploads past their expiry are removed.
const UPLOAD_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// How often the rate limiter forgets clients whose limit recovered.
const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Time the actor tree gets to stop before its stragglers are abandoned.
const ACTOR_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create or read in the data directory ({path}): {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Join(#[from] cluster::nodes::JoinError),
    #[error(transparent)]
    Relay(#[from] cluster::relay::RelayError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Supervision(#[from] SupervisionError),
    #[error(transparent)]
    Uploads(#[from] UploadError),
    #[error(transparent)]
    Tls(#[from] http::tls::TlsError),
    #[error("imports: {0}")]
    Imports(#[from] streamforge_actors::imports::ImportError),
    #[error("webhooks: {0}")]
    Webhooks(#[from] streamforge_actors::webhooks::EndpointError),
    #[error(transparent)]
    WebhookClient(#[from] streamforge_actors::webhooks::sender::ClientError),
    #[error("cannot start HTTP/3 on {addr}: {reason}")]
    Http3 { addr: SocketAddr, reason: String },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        addr: SocketAddr,
        /// The listener and the flag that moves it.
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    rtmp_addr: Option<SocketAddr>,
    rtsp_addr: Option<SocketAddr>,
    srt_addr: Option<SocketAddr>,
    webrtc_addr: Option<SocketAddr>,
    certificate: Option<std::path::PathBuf>,
    state: AppState,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address HTTP is served on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address HTTPS (TCP) and HTTP/3 (UDP) are served on, when TLS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The address RTMP is accepted on, when on.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp_addr
    }

    /// The address RTSP pushes are accepted on, when on.
    pub fn rtsp_addr(&self) -> Option<SocketAddr> {
        self.rtsp_addr
    }

    /// The UDP address SRT callers are accepted on, when on.
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.srt_addr
    }

    /// The UDP address WHIP sessions' WebRTC media arrives at, when on.
    pub fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.webrtc_addr
    }

    /// The self-signed certificate clients can trust, in `--tls self-signed` mode.
    pub fn certificate(&self) -> Option<&std::path::Path> {
        self.certificate.as_deref()
    }

    /// The state the HTTP routes are served with, for building the router
    /// in-process (`http::router_with_layers`, as the middleware bench does).
    pub fn app_state(&self) -> AppState {
        self.state.clone()
    }

    /// A token that starts shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts shutdown and waits until it is complete.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server has stopped (after a shutdown began).
    pub async fn wait(self) {
        // The services behind the state must not outlive the server's run.
        let Running { state, task, .. } = self;
        drop(state);
        if let Err(err) = task.await {
            tracing::error!(%err, "server task failed");
        }
    }
}

/// Starts every part of the server and returns once HTTP is accepting:
/// the state and the actor tree ([`Core::open`]), every listener
/// ([`Listeners::bind`]), the services on them ([`Services::build`]), and a
/// task that serves until shutdown ([`run`]).
pub async fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let core = Core::open(&config).await?;
    let listeners = Listeners::bind(&config).await?;
    let node = join_cluster(&config, &core, listeners.http_addr).await?;
    let shutdown = CancellationToken::new();
    let services = Services::build(&config, &core, &listeners, &node, &shutdown).await?;
    if config.auth.mode == AuthMode::None && !listeners.http_addr.ip().is_loopback() {
        tracing::warn!(
            http = %listeners.http_addr,
            "auth.mode is none on a non-loopback address: anyone who reaches it can upload and delete"
        );
    }
    tracing::info!(
        http = %listeners.http_addr,
        https = listeners.secure.as_ref().map_or_else(String::new, |s| s.addr.to_string()),
        rtmp = listeners.rtmp_addr().map_or_else(String::new, |a| a.to_string()),
        rtsp = listeners.rtsp_addr().map_or_else(String::new, |a| a.to_string()),
        srt = listeners.srt_addr().map_or_else(String::new, |a| a.to_string()),
        webrtc = listeners.webrtc_addr().map_or_else(String::new, |a| a.to_string()),
        data_dir = %config.data_dir.display(),
        storage = %core.storage.backend(),
        run = core.run_id,
        "streamforge listening"
    );
    let running = Running {
        http_addr: listeners.http_addr,
        https_addr: listeners.secure.as_ref().map(|s| s.addr),
        rtmp_addr: listeners.rtmp_addr(),
        rtsp_addr: listeners.rtsp_addr(),
        srt_addr: listeners.srt_addr(),
        webrtc_addr: listeners.webrtc_addr(),
        certificate: listeners
            .secure
            .as_ref()
            .and_then(|s| s.certificate.clone()),
        state: services.state.clone(),
        shutdown: shutdown.clone(),
        task: tokio::spawn(run(
            config.http.clone(),
            core,
            listeners,
            services,
            node,
            shutdown,
        )),
    };
    Ok(running)
}

/// What every service stands on: the state database (this run recorded in
/// it), byte storage, the actor tree, metrics and events.
struct Core {
    db: Database,
    run_id: i64,
    storage: Storage,
    supervision: Supervision,
    metrics: Arc<Metrics>,
    events: EventBus,
}

impl Core {
    async fn open(config: &Config) -> Result<Self, StartError> {
        let db = Database::open(&config.database_url()).await?;
        let (run_id, unclean) = db.begin_run(env!("CARGO_PKG_VERSION")).await?;
        for run in &unclean {
            tracing::warn!(
                run = run.id,
                version = %run.version,
                started_at_ms = run.started_at_ms,
                "an earlier run did not shut down cleanly"
            );
        }
        let storage = match config.storage_location() {
            StorageLocation::Local(path) => Storage::local(&path)?,
            StorageLocation::Url(url) => Storage::from_url(&url)?,
        };
        Ok(Core {
            db,
            run_id,
            storage,
            supervision: Supervision::start(Processes::new()).await?,
            metrics: Metrics::new(),
            events: EventBus::default(),
        })
    }
}

/// Every socket the server listens on, bound before anything is served so
/// that a taken port fails the start with the flag that moves it.
struct Listeners {
    http: TcpListener,
    http_addr: SocketAddr,
    secure: Option<Secure>,
    ingest: IngestListeners,
    /// Where ffmpeg reads uploads still arriving and originals in a bucket
    /// (loopback, ephemeral).
    growing: Option<(TcpListener, GrowingSource)>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self, StartError> {
        let (http, http_addr) = bind_tcp(config.http.listen, "HTTP, --listen").await?;
        let ingest = config.node.roles.contains(&Role::Ingest);
        let rtmp = match config.live.rtmp && ingest {
            true => Some(bind_tcp(config.live.rtmp_listen, "RTMP, --rtmp-listen").await?),
            false => None,
        };
        let rtsp = match config.live.rtsp && ingest {
            true => {
                let listen = config.live.rtsp_listen;
                let (listener, addr) = bind_tcp(listen, "RTSP, --rtsp-listen").await?;
                let udp = match config.live.rtsp_udp {
                    true => {
                        let ports = config.live.rtsp_udp_ports;
                        let udp =
                            streamforge_actors::live::rtsp::UdpPorts::bind(listen.ip(), ports)
                                .await
                                .map_err(|source| StartError::Listen {
                                    what: "RTSP over UDP, --rtsp-udp-ports",
                                    addr: SocketAddr::new(listen.ip(), ports[0]),
                                    source,
                                })?;
                        Some(udp)
                    }
                    false => None,
                };
                Some((listener, addr, udp))
            }
            false => None,
        };
        let srt = match config.live.srt && ingest {
            true => Some(
                streamforge_actors::live::srt::bind(config.live.srt_listen, &srt_options(config))
                    .await
                    .map_err(|source| StartError::Listen {
                        what: "SRT (UDP), --srt-listen",
                        addr: config.live.srt_listen,
                        source,
                    })?,
            ),
            false => None,
        };
        let whip = match config.live.webrtc && ingest {
            true => Some(
                streamforge_actors::live::whip::bind(
                    config.live.webrtc_listen,
                    streamforge_actors::live::whip::WhipOptions {
                        candidates: config.live.webrtc_candidates.clone(),
                        max_sessions: config.live.max_connections,
                    },
                )
                .await
                .map_err(|source| StartError::Listen {
                    what: "WebRTC for WHIP (UDP), --webrtc-listen",
                    addr: config.live.webrtc_listen,
                    source,
                })?,
            ),
            false => None,
        };
        let secure = bind_secure(config).await?;
        // Always: it also serves stored originals from a bucket to ffmpeg.
        let growing = Some(
            http::source::bind()
                .await
                .map_err(|source| StartError::Listen {
                    what: "the source server, an ephemeral port",
                    addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    source,
                })?,
        );
        Ok(Listeners {
            http,
            http_addr,
            secure,
            ingest: IngestListeners {
                rtmp,
                rtsp,
                srt,
                whip,
            },
            growing,
        })
    }

    fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.ingest.rtmp.as_ref().map(|(_, addr)| *addr)
    }

    fn rtsp_addr(&self) -> Option<SocketAddr> {
        self.ingest.rtsp.as_ref().map(|(_, addr, _)| *addr)
    }

    fn srt_addr(&self) -> Option<SocketAddr> {
        self.ingest
            .srt
            .as_ref()
            .map(streamforge_actors::live::srt::Bound::local_addr)
    }

    fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.ingest
            .whip
            .as_ref()
            .map(streamforge_actors::live::whip::Whip::local_addr)
    }
}

fn srt_options(config: &Config) -> streamforge_actors::live::srt::SrtOptions {
    streamforge_actors::live::srt::SrtOptions {
        latency: config.live.srt_latency,
        passphrase: config.live.srt_passphrase.clone(),
    }
}

async fn bind_tcp(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |source| StartError::Listen { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    Ok((listener, local))
}

/// The work the listeners are served with.
struct Services {
    app: axum::Router,
    /// Cached playlist reloads answered before `app` (plain HTTP/1.1 and h2c, TLS).
    fast: http::fast::FastPath,
    /// The state `app` is served with.
    state: AppState,
    uploads: Uploads,
    live: Live,
    /// Set once shutdown begins: readiness answers 503.
    draining: Arc<AtomicBool>,
}

impl Services {
    async fn build(
        config: &Config,
        core: &Core,
        listeners: &Listeners,
        node: &NodeIdentity,
        shutdown: &CancellationToken,
    ) -> Result<Self, StartError> {
        let Core {
            db,
            storage,
            supervision,
            events,
            ..
        } = core;
        let transcoder = start_transcoder(config, core, listeners, node).await?;
        match db.fail_stale_recordings(&node.id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                recordings = n,
                "recordings cut short by the previous run are failed"
            ),
            Err(err) => tracing::error!(%err, "cannot check for unfinished recordings"),
        }
        let uploads = Uploads::new(
            db.clone(),
            storage.clone(),
            supervision.clone(),
            config.data_dir.join("uploads"),
            config.uploads.expire_after,
            Some(transcoder),
            events.clone(),
        )?
        .with_node(&node.id);
        let signer = match config.auth.playback {
            crate::config::PlaybackMode::Public => None,
            crate::config::PlaybackMode::Signed => Some(Arc::new(
                http::playback::Signer::load(
                    &config.auth.playback_secret,
                    &config.data_dir,
                    config.auth.playback_ttl,
                )
                .map_err(|source| StartError::DataDir {
                    path: config.data_dir.join("playback.key"),
                    source,
                })?,
            )),
        };
        let live = Live::new(
            db.clone(),
            supervision.clone(),
            LiveOptions {
                node: node.id.clone(),
                ..live_options(config)
            },
            Some(
                streamforge_actors::live::record::Recording::new(
                    db.clone(),
                    storage.clone(),
                    events.clone(),
                )
                .with_node(&node.id),
            ),
        );
        if node.has(Role::Ingest) {
            streamforge_actors::live::rtsp_pull::start_pulls(&live, &config.live.pull).await;
        }
        let imports = start_imports(config, core, node, &uploads).await?;
        let rate_limiter = http::middleware::rate_limiter(&config.limits);
        start_periodic_tasks(supervision, &uploads, rate_limiter.clone()).await?;
        supervision.every(live.owners_task()).await?;
        start_webhooks(config, core, node).await?;
        let draining = Arc::new(AtomicBool::new(false));
        let state = AppState::new(http::Services {
            db: db.clone(),
            storage: storage.clone(),
            supervision: supervision.clone(),
            metrics: core.metrics.clone(),
            cache: http::cache::ObjectCache::new(
                config.http.cache_bytes,
                config.http.cache_max_object_bytes,
            ),
            // A few renditions for each of hundreds of live streams, in
            // at most 32 MiB of playlists.
            live_gzip: http::gzip::SharedGzip::new(4096, 32 << 20),
            uploads: uploads.clone(),
            imports,
            webhook_guard: Arc::new(config.webhook_delivery.guard()),
            live: live.clone(),
            rtmp_port: listeners.rtmp_addr().map(|a| a.port()),
            rtsp_port: listeners.rtsp_addr().map(|a| a.port()),
            srt_port: listeners.srt_addr().map(|a| a.port()),
            whip: listeners.ingest.whip.clone(),
            signer,
            upload_slots: Arc::new(http::middleware::ClientSlots::new(
                config.limits.uploads_per_client,
            )),
            events: events.clone(),
            upload_max_size: config.uploads.max_size,
            auth: config.auth.mode,
            rate_limiter,
            started: Instant::now(),
            node: node.clone(),
            forwarder: http::forward::Forwarder::new(&node.id),
            edge: http::edge::EdgeRelay::new(&node.id),
            draining: draining.clone(),
            shutdown: shutdown.clone(),
        });
        // Workers on other nodes read the uploads arriving here.
        let internal = http::source::app(uploads.clone(), db.internal_secret().await?);
        Ok(Services {
            app: http::router(state.clone(), &config.http).nest_service("/internal", internal),
            fast: http::fast::FastPath::new(&state),
            state,
            uploads,
            live,
            draining,
        })
    }
}

/// Registers this node in the database's node registry (refusing an id a
/// live node holds) and starts its heartbeat; on PostgreSQL, also the
/// relay that shares its events with the other nodes.
async fn join_cluster(
    config: &Config,
    core: &Core,
    http_addr: SocketAddr,
) -> Result<NodeIdentity, StartError> {
    let id = config.node_id().map_err(|source| StartError::DataDir {
        path: config.data_dir.join("node-id"),
        source,
    })?;
    let advertise = match config.node.advertise.as_str() {
        "" => format!("http://{http_addr}"),
        url => url.to_owned(),
    };
    let instance = config
        .node_instance()
        .map_err(|source| StartError::DataDir {
            path: config.data_dir.join("node-instance"),
            source,
        })?;
    let node = NodeIdentity {
        id,
        advertise,
        instance,
        roles: config.node.roles.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_ms: streamforge_actors::clock::now_ms(),
    };
    core.db
        .join(&node, &cluster::nodes::load_of(&core.supervision))
        .await?;
    core.supervision
        .every(cluster::nodes::heartbeat_task(
            core.db.clone(),
            node.clone(),
            core.supervision.clone(),
        ))
        .await?;
    if core.db.dialect() == Dialect::Postgres {
        let relay =
            cluster::relay::relay_task(&config.database_url(), &node.id, &core.events).await?;
        core.supervision.every(relay).await?;
    }
    tracing::info!(node = %node.id, advertise = %node.advertise, "joined the node registry");
    Ok(node)
}

/// Imports from URLs, with those a stopped run left downloading resumed.
async fn start_imports(
    config: &Config,
    core: &Core,
    node: &NodeIdentity,
    uploads: &Uploads,
) -> Result<streamforge_actors::imports::Imports, StartError> {
    let imports = streamforge_actors::imports::Imports::new(
        core.db.clone(),
        uploads.clone(),
        core.supervision.clone(),
        streamforge_actors::imports::guard::Guard {
            allow_private: config.imports.allow_private,
            trusted_hosts: config.imports.trusted_hosts.clone(),
        },
        match config.imports.max_size {
            0 => config.uploads.max_size,
            max => max,
        },
        &node.id,
        config.imports.yt_dlp,
    )?;
    imports.resume_unfinished().await;
    Ok(imports)
}

/// Webhooks: the configured endpoints recorded (the database's follow the
/// file), and this node's sender of deliveries.
async fn start_webhooks(
    config: &Config,
    core: &Core,
    node: &NodeIdentity,
) -> Result<(), StartError> {
    core.db.sync_config_endpoints(&config.webhooks).await?;
    let sender = streamforge_actors::webhooks::Sender::new(
        core.db.clone(),
        &node.id,
        core.events.clone(),
        config.webhook_delivery.settings(),
        config.webhook_delivery.guard(),
    )?;
    core.supervision.every(sender.task()).await?;
    Ok(())
}

/// The server's housekeeping, as periodic tasks of the actor tree:
/// removing uploads past their expiry, and forgetting the rate limiter's
/// clients whose limit has fully recovered (so its memory follows active
/// clients, not every client ever).
async fn start_periodic_tasks(
    supervision: &Supervision,
    uploads: &Uploads,
    rate_limiter: Option<Arc<http::middleware::RateLimiter>>,
) -> Result<(), StartError> {
    let uploads = uploads.clone();
    supervision
        .every(PeriodicTask {
            name: "upload-expiry",
            every: UPLOAD_SWEEP_INTERVAL,
            job: Arc::new(move || {
                let uploads = uploads.clone();
                Box::pin(async move {
                    match uploads.sweep_expired().await {
                        Ok(0) => {}
                        Ok(removed) => tracing::info!(removed, "expired uploads removed"),
                        Err(err) => tracing::warn!(%err, "cannot remove expired uploads"),
                    }
                })
            }),
        })
        .await?;
    if let Some(limiter) = rate_limiter {
        supervision
            .every(PeriodicTask {
                name: "rate-limit-pruning",
                every: RATE_LIMIT_PRUNE_INTERVAL,
                job: Arc::new(move || {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                    Box::pin(std::future::ready(()))
                }),
            })
            .await?;
    }
    Ok(())
}

/// Serves every listener until shutdown (the token, or the actor tree
/// stopping by itself, which is fatal), then stops in order: listeners and
/// in-flight requests, the actor tree and its child processes, and the run
/// recorded as cleanly stopped.
async fn run(
    http_config: crate::config::HttpConfig,
    core: Core,
    listeners: Listeners,
    services: Services,
    node: NodeIdentity,
    token: CancellationToken,
) {
    let Core {
        db,
        run_id,
        supervision,
        metrics,
        ..
    } = core;
    let Services {
        app,
        fast,
        state: _,
        uploads,
        live,
        draining,
    } = services;
    let tree_stopped = {
        let (supervision, token) = (supervision.clone(), token.clone());
        async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = supervision.stopped() => {
                    tracing::error!("actor tree stopped unexpectedly; shutting down");
                    token.cancel();
                }
            }
        }
    };
    let draining_on_cancel = async {
        token.cancelled().await;
        draining.store(true, Ordering::Relaxed);
    };
    let plain = http::serve(
        listeners.http,
        http::Transport::Plain,
        app.clone(),
        fast.clone(),
        http_config.clone(),
        metrics.clone(),
        token.clone(),
    );
    let secure = async {
        let Some(secure) = listeners.secure else {
            return;
        };
        let tls = http::serve(
            secure.tcp,
            http::Transport::Tls {
                acceptor: secure.acceptor,
                alt_svc: Some(secure.alt_svc),
            },
            app.clone(),
            fast.clone(),
            http_config.clone(),
            metrics.clone(),
            token.clone(),
        );
        let quic = http::h3::serve(
            secure.quic,
            app.clone(),
            http_config.clone(),
            metrics.clone(),
            token.clone(),
        );
        tokio::join!(tls, quic);
    };
    let growing = async {
        if let Some((listener, source)) = listeners.growing {
            http::source::serve(listener, source, uploads, token.clone()).await;
        }
    };
    let ingest = serve_ingest(listeners.ingest, &live, &token);
    tokio::join!(
        tree_stopped,
        draining_on_cancel,
        plain,
        secure,
        ingest,
        growing
    );
    supervision.shutdown(ACTOR_STOP_TIMEOUT).await;
    // Its jobs' ffmpeg children are gone: the jobs go back to the queue now
    // rather than when their leases run out.
    match db.release_jobs_of(&node.id).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "processing jobs back in the queue"),
        Err(err) => {
            tracing::warn!(%err, "cannot give processing jobs back; their leases will run out")
        }
    }
    if let Err(err) = db.leave(&node.id).await {
        tracing::error!(%err, "cannot record the node's stop");
    }
    if let Err(err) = db.end_run(run_id).await {
        tracing::error!(%err, "cannot record the clean stop");
    }
    db.close().await;
    tracing::info!("streamforge stopped");
}

/// The live ingest listeners that are on (WHIP: its WebRTC socket).
struct IngestListeners {
    rtmp: Option<(TcpListener, SocketAddr)>,
    rtsp: Option<(
        TcpListener,
        SocketAddr,
        Option<streamforge_actors::live::rtsp::UdpPorts>,
    )>,
    srt: Option<streamforge_actors::live::srt::Bound>,
    whip: Option<streamforge_actors::live::whip::Whip>,
}

/// Serves RTMP, RTSP, SRT and WHIP's WebRTC socket (those that are on)
/// until `token` is cancelled.
async fn serve_ingest(ingest: IngestListeners, live: &Live, token: &CancellationToken) {
    let rtmp = async {
        if let Some((listener, _)) = ingest.rtmp {
            streamforge_actors::live::rtmp::serve(listener, live.clone(), token.clone()).await;
        }
    };
    let rtsp = async {
        if let Some((listener, _, udp)) = ingest.rtsp {
            streamforge_actors::live::rtsp::serve(listener, udp, live.clone(), token.clone()).await;
        }
    };
    let srt = async {
        if let Some(bound) = ingest.srt {
            streamforge_actors::live::srt::serve(bound, live.clone(), token.clone()).await;
        }
    };
    let whip = async {
        if let Some(whip) = ingest.whip {
            streamforge_actors::live::whip::serve(whip, token.clone()).await;
        }
    };
    tokio::join!(rtmp, rtsp, srt, whip);
}

/// The transcoder of this node: its unfinished jobs resumed and, on a
/// worker, the periodic claims of queued jobs and chunks.
async fn start_transcoder(
    config: &Config,
    core: &Core,
    listeners: &Listeners,
    node: &NodeIdentity,
) -> Result<Transcoder, StartError> {
    let mut transcoder = Transcoder::new(
        core.db.clone(),
        core.storage.clone(),
        core.supervision.clone(),
        core.events.clone(),
        &config.transcode.ladder,
        &node.id,
        node.has(Role::Worker),
    )
    .with_chunks(
        config.transcode.chunk_seconds * 1000,
        config.transcode.chunk_slots,
    )
    .with_claims_every(config.transcode.claim_every);
    if let Some((_, source)) = &listeners.growing {
        transcoder =
            transcoder.with_growing_source(source.clone(), config.uploads.process_while_uploading);
    }
    transcoder.resume_unfinished().await;
    if node.has(Role::Worker) {
        core.supervision.every(transcoder.claims_task()).await?;
        if core.db.dialect() == Dialect::Postgres {
            let wake = transcoder.wake_task(&config.database_url()).await?;
            core.supervision.every(wake).await?;
        }
    }
    Ok(transcoder)
}

fn live_options(config: &Config) -> LiveOptions {
    use streamforge_protocols::cmaf::TargetDuration;
    let millis =
        |d: Duration| TargetDuration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let live = &config.live;
    LiveOptions {
        packaging: streamforge_protocols::live::LivePackaging {
            segment: millis(live.segment_duration),
            part: millis(live.part_duration),
            window_segments: (!live.dvr).then_some(live.window_segments),
            retained_segments: live.window_segments,
            presentation_id: "live".to_owned(),
            // Each presentation picks its own (`LiveStream`).
            first_msn: 1,
            time_url: "/time".to_owned(),
        },
        open_publish: live.open_publish,
        replace_publisher: live.replace_publisher,
        idle_timeout: live.idle_timeout,
        max_connections: live.max_connections,
        streams_per_client: config.limits.streams_per_client,
        reconnect_grace: live.reconnect_grace,
        record: live.record,
        // The resolved id (`node.id` may be empty: generated at start).
        node: String::new(),
        ladders: live
            .streams
            .iter()
            .filter(|s| !s.ladder.is_empty())
            .map(|s| (s.name.clone(), s.ladder.clone()))
            .collect(),
    }
}

/// The TLS listener, its QUIC twin on the same port, and what they need.
struct Secure {
    addr: SocketAddr,
    tcp: TcpListener,
    quic: quinn::Endpoint,
    acceptor: tokio_rustls::TlsAcceptor,
    alt_svc: http_types::HeaderValue,
    certificate: Option<std::path::PathBuf>,
}

async fn bind_secure(config: &Config) -> Result<Option<Secure>, StartError> {
    let (identity, certificate) = match config.tls.mode {
        TlsMode::Off => return Ok(None),
        TlsMode::SelfSigned => {
            let (identity, path) = Identity::self_signed(&config.data_dir.join("tls"))?;
            (identity, Some(path))
        }
        TlsMode::Files => {
            // Validation guarantees both paths in this mode.
            let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
                return Ok(None);
            };
            (Identity::from_files(cert, key)?, None)
        }
    };
    tls::install_crypto_provider();
    let listen = config.tls.listen;
    // HTTP/3 on the same port number, over UDP. With port 0 the port the
    // system gives TCP may be taken on UDP: then another one is tried.
    let attempts = if listen.port() == 0 { 16 } else { 1 };
    let mut attempt = 0;
    let (tcp, addr, quic) = loop {
        attempt += 1;
        let tcp = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen {
                what: "HTTPS and HTTP/3, --tls-listen",
                addr: listen,
                source,
            })?;
        let addr = tcp.local_addr().map_err(|source| StartError::Listen {
            what: "HTTPS and HTTP/3, --tls-listen",
            addr: listen,
            source,
        })?;
        let quic_config =
            http::h3::endpoint_config(&identity, &config.http).map_err(|e| StartError::Http3 {
                addr,
                reason: e.to_string(),
            })?;
        match http::h3::bind(addr, quic_config) {
            Ok(quic) => break (tcp, addr, quic),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && attempt < attempts => {
                tracing::debug!(%addr, "UDP port taken; trying another port");
            }
            Err(err) => {
                return Err(StartError::Http3 {
                    addr,
                    reason: err.to_string(),
                });
            }
        }
    };
    let acceptor =
        tokio_rustls::TlsAcceptor::from(tls::server_config(&identity, &[b"h2", b"http/1.1"])?);
    let alt_svc = http_types::HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", addr.port()))
        .map_err(|e| StartError::Http3 {
            addr,
            reason: e.to_string(),
        })?;
    Ok(Some(Secure {
        addr,
        tcp,
        quic,
        acceptor,
        alt_svc,
        certificate,
    }))
}

/// SIGINT and SIGTERM, watched from the moment this is made: make it
/// before the server starts, so a signal sent as soon as the server
/// announces itself is not missed (the default action would kill it).
pub struct TerminationSignal {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl TerminationSignal {
    pub fn watch() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(%err, "cannot watch SIGINT/SIGTERM; only ctrl-c stops the server");
                    None
                }
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if let Some((interrupt, terminate)) = self.streams.as_mut() {
                tokio::select! {
                    _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
                    _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! Server configuration: embedded defaults, then `STREAMFORGE_*` environment
//! variables, then the TOML file given by `--config`, then command-line flags;
//! each layer overrides the ones before it.
//!
//! Environment variables name a key with its section: `STREAMFORGE_DATA_DIR`
//! sets `data_dir`, `STREAMFORGE_HTTP_LISTEN` sets `http.listen`. Every value
//! is checked at start-up; an invalid one stops the server with a message that
//! names the key and the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use streamforge_actors::live::ladder::LiveLadderRung;
use streamforge_actors::live::rtsp_pull::PullSource;
use streamforge_actors::transcode::{DEFAULT_LADDER, LadderRung, check_vod_ladder};

/// Sections of the configuration; an environment variable whose name (after
/// the prefix) starts with one of these followed by `_` sets a key in it.
const SECTIONS: &[&str] = &[
    "http",
    "tls",
    "uploads",
    "transcode",
    "auth",
    "limits",
    "live",
    "log",
    "node",
    "webhook_delivery",
    "imports",
];
const ENV_PREFIX: &str = "STREAMFORGE_";

pub mod reference;

/// How a duration is written in the configuration (`10s`, `500ms`, `6h`):
/// its JSON Schema, for the reference.
struct HumanDuration;

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for local state: the database, and stored media unless
    /// `storage` points elsewhere.
    pub data_dir: PathBuf,
    /// Where media bytes are stored: empty for `<data_dir>/media`, or a URL
    /// (`file:///abs/path`, `s3://bucket/prefix?endpoint=…&region=…`).
    pub storage: String,
    /// Database URL: empty for `sqlite://<data_dir>/streamforge.db`, or
    /// `postgres://user:password@host/database` for state shared by
    /// several nodes.
    pub database: String,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub uploads: UploadsConfig,
    pub transcode: TranscodeConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub live: LiveConfig,
    pub log: LogConfig,
    pub node: NodeConfig,
    /// Webhook endpoints (Standard Webhooks): `[[webhooks]] url =
    /// "https://…", events = ["asset.ready", "live.started"], secret =
    /// "whsec_…"`. More can be added through `POST /api/webhooks`.
    pub webhooks: Vec<streamforge_actors::webhooks::EndpointSpec>,
    pub webhook_delivery: WebhookDeliveryConfig,
    pub imports: ImportsConfig,
}

/// Imports from a URL (`POST /api/imports`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ImportsConfig {
    /// Allow sources on loopback, private, link-local and other
    /// non-public addresses (refused by default: an import must not reach
    /// into the server's own network).
    pub allow_private: bool,
    /// Hosts (names or addresses, as URLs spell them) imported from
    /// whatever their address, e.g. an internal object store.
    pub trusted_hosts: Vec<String>,
    /// Largest source imported, in bytes; 0 for `uploads.max_size`.
    pub max_size: u64,
    /// Hand a URL that answers with an HTML page to `yt-dlp` (when one is
    /// on the PATH) to find the media on it, which is then fetched like
    /// any import. Off by default: yt-dlp's own requests (the page again,
    /// redirects, what its extractors fetch) are not held to the address
    /// guard, so turn it on where the server's network has nothing a page
    /// could reach that it should not.
    pub yt_dlp: bool,
}

/// How webhooks are delivered and retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookDeliveryConfig {
    /// How long a receiver has to answer a delivery.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub timeout: Duration,
    /// The wait before a failed delivery is sent again; each further wait
    /// is five times the one before (±20 % jitter), up to
    /// `max_retry_interval`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub first_retry: Duration,
    /// The longest wait between two attempts at a delivery.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub max_retry_interval: Duration,
    /// A delivery still failing this long after its first failure is given
    /// up and its endpoint disabled (a `webhook.disabled` event); enabling
    /// it again (`POST /api/webhooks/{id}/enable`) sends what waits.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub give_up_after: Duration,
    /// Let endpoints made through the API be on loopback, private or
    /// link-local addresses (refused by default, as for imports; endpoints
    /// of this file are trusted with any address).
    pub allow_private: bool,
    /// Hosts API-made endpoints may be on whatever their address.
    pub trusted_hosts: Vec<String>,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        let settings = streamforge_actors::webhooks::DeliverySettings::default();
        WebhookDeliveryConfig {
            timeout: settings.timeout,
            first_retry: settings.first_retry,
            max_retry_interval: settings.max_retry_interval,
            give_up_after: settings.give_up_after,
            allow_private: false,
            trusted_hosts: Vec::new(),
        }
    }
}

impl WebhookDeliveryConfig {
    /// The address guard for endpoints made through the API.
    pub fn guard(&self) -> streamforge_actors::imports::guard::Guard {
        streamforge_actors::imports::guard::Guard {
            allow_private: self.allow_private,
            trusted_hosts: self.trusted_hosts.clone(),
        }
    }

    pub fn settings(&self) -> streamforge_actors::webhooks::DeliverySettings {
        streamforge_actors::webhooks::DeliverySettings {
            timeout: self.timeout,
            first_retry: self.first_retry,
            max_retry_interval: self.max_retry_interval,
            give_up_after: self.give_up_after,
        }
    }
}

/// The `[node]` section: who this server is to the other nodes sharing
/// its database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's name among the nodes of one database: empty for an id
    /// generated at the first start and kept in `<data_dir>/node-id`.
    pub id: String,
    /// The URL other nodes reach this node's HTTP listener on: empty for
    /// `http://` and the address `http.listen` bound.
    pub advertise: String,
    /// What this node does: `api` (the API, tus, `/vod/`, `/live/`),
    /// `ingest` (RTMP, RTSP, camera pulls), `worker` (claims processing
    /// jobs). All three by default.
    pub roles: Vec<streamforge_actors::cluster::Role>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            advertise: String::new(),
            roles: streamforge_actors::cluster::Role::ALL.to_vec(),
        }
    }
}

/// The HTTP listener (HTTP/1.1 and HTTP/2) and what it serves from
/// memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address for HTTP/1.1 and HTTP/2 (h2c with prior knowledge).
    pub listen: SocketAddr,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Largest request body accepted by the API, in bytes (uploads have their own limit).
    pub max_body_bytes: usize,
    /// A connection with no bytes moving either way for this long is closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub idle_timeout: Duration,
    /// Time a client has to send a complete request head.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub header_timeout: Duration,
    /// How long in-flight requests may run on after a shutdown signal.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub shutdown_grace: Duration,
    /// Memory for hot segments and init segments from a remote store (S3)
    /// and for playlists, in bytes; 0 turns the cache off. Segments on local
    /// storage are served from mappings of their files (the page cache).
    pub cache_bytes: u64,
    /// Objects larger than this stream from storage instead of being cached.
    pub cache_max_object_bytes: u64,
    /// The built browser UI (`web/dist`, made by `scripts/setup`), served at `/`.
    pub web_dir: PathBuf,
}

/// Resumable uploads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Largest upload accepted, in bytes (tus `Tus-Max-Size`).
    pub max_size: u64,
    /// An unfinished upload is deleted this long after it was created.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub expire_after: Duration,
    /// Start processing (probe, poster, preview, ladder) with an upload's
    /// first bytes, reading it as it arrives, instead of after the last.
    pub process_while_uploading: bool,
}

/// Who may use the API and upload.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone who can reach the port (the default listens on localhost only).
    None,
    /// `Authorization: Bearer TOKEN` on /api/ and /files/ (tokens from
    /// `streamforge token create`); playback and health stay public.
    Token,
}

/// Who may use the API, upload and play.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Who may play: anyone (`public`), or only holders of an HMAC-signed,
    /// expiring URL (`signed`) for `/vod/` and `/live/`.
    pub playback: PlaybackMode,
    /// The HMAC key for signed playback URLs; empty: a random key kept in
    /// `<data_dir>/playback.key`.
    pub playback_secret: String,
    /// How long the playback URLs the API hands out stay valid.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub playback_ttl: Duration,
}

/// Who may play media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackMode {
    Public,
    Signed,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            playback: PlaybackMode::Public,
            playback_secret: String::new(),
            playback_ttl: Duration::from_secs(6 * 3600),
        }
    }
}

/// Per-client-address request rates on the API and upload creation
/// (uploading bytes and playback are not limited here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second per IP address; 0 turns the limit off.
    pub api_per_second: u32,
    /// Requests an address may send at once above the sustained rate.
    pub api_burst: u32,
    /// Upload bodies one address may send at once; 0 turns the limit off.
    pub uploads_per_client: usize,
    /// Live streams one address may publish at once; 0 turns the limit off.
    pub streams_per_client: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            api_per_second: 20,
            api_burst: 100,
            uploads_per_client: 16,
            streams_per_client: 4,
        }
    }
}

/// Live ingest and its LL-HLS / DASH output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Accept RTMP pushes.
    pub rtmp: bool,
    /// Address encoders push RTMP to (`rtmp://host:1935/live/{stream}`).
    pub rtmp_listen: SocketAddr,
    /// Accept RTSP pushes (ANNOUNCE/RECORD).
    pub rtsp: bool,
    /// Address encoders push RTSP to (`rtsp://host:8554/live/{stream}`).
    pub rtsp_listen: SocketAddr,
    /// Offer UDP transport to RTSP senders (TCP interleaved is always on).
    pub rtsp_udp: bool,
    /// The server's RTP and RTCP ports for UDP transport, on the
    /// `rtsp_listen` address (0: any free port).
    pub rtsp_udp_ports: [u16; 2],
    /// Accept SRT publishers (MPEG-TS in caller mode).
    pub srt: bool,
    /// UDP address encoders push SRT to
    /// (`srt://host:8890?streamid=publish:live/{stream}`).
    pub srt_listen: SocketAddr,
    /// SRT receiver latency: the time SRT has to recover a lost packet
    /// (a caller asking for more gets more). Three to four round trips on
    /// a lossy link.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub srt_latency: Duration,
    /// SRT callers must encrypt (AES) with this passphrase, 10 to 79
    /// characters; unset: callers must not encrypt.
    pub srt_passphrase: Option<String>,
    /// Accept WHIP publishers (WebRTC: browsers, OBS, GStreamer) at
    /// `POST /whip/{stream}` on the HTTP server.
    pub webrtc: bool,
    /// The UDP address WebRTC media arrives at, one port for every WHIP
    /// session.
    pub webrtc_listen: SocketAddr,
    /// Addresses publishers are told to send WebRTC media to (ICE host
    /// candidates on the `webrtc_listen` port): the server's public
    /// addresses behind NAT. Empty: the `webrtc_listen` address, or when
    /// that is unspecified (0.0.0.0, ::), the address the publisher reached
    /// the HTTP server at.
    pub webrtc_candidates: Vec<std::net::IpAddr>,
    /// Segments are cut at the first keyframe at least this long after the
    /// segment start.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub segment_duration: Duration,
    /// LL-HLS part (CMAF chunk) target.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub part_duration: Duration,
    /// Segments listed in the live window.
    pub window_segments: usize,
    /// Keep every segment listed for the whole stream (an EVENT playlist)
    /// instead of a sliding window.
    pub dvr: bool,
    /// Any stream name may publish without a key (streams with a key
    /// still need it). For a lab; keep off on a reachable address.
    pub open_publish: bool,
    /// A second publisher of a live stream replaces the first instead of
    /// being refused.
    pub replace_publisher: bool,
    /// An ingest connection with no bytes for this long is closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub idle_timeout: Duration,
    /// Most concurrent ingest connections.
    pub max_connections: usize,
    /// A stream whose publisher left waits this long for it to come back
    /// (viewers keep their playlists; the stream continues after a
    /// discontinuity) before its playlists end.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub reconnect_grace: Duration,
    /// Record each publish as a VOD asset (`/vod/{asset}/…`, listed in
    /// `/api/assets`), ready when the publish ends.
    pub record: bool,
    /// RTSP sources (cameras) pulled as live streams:
    /// `[[live.pull]] name = "door", url = "rtsp://…", username, password,
    /// transport = "tcp" | "udp"`.
    pub pull: Vec<PullSource>,
    /// Settings of named streams (pushed or pulled):
    /// `[[live.streams]] name = "main", ladder = [{ height = 360, video_kbps = 800 }]`
    /// re-encodes the published video to each lower rung, keyframe-aligned
    /// with it, as more renditions of the stream.
    pub streams: Vec<LiveStreamConfig>,
}

/// `[[live.streams]]`: one named stream's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveStreamConfig {
    /// The stream these settings apply to.
    pub name: String,
    /// The live ladder; rungs not below the published video are skipped.
    #[serde(default)]
    pub ladder: Vec<LiveLadderRung>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            rtmp: true,
            rtmp_listen: SocketAddr::from(([127, 0, 0, 1], 1935)),
            rtsp: true,
            rtsp_listen: SocketAddr::from(([127, 0, 0, 1], 8554)),
            rtsp_udp: true,
            rtsp_udp_ports: [8000, 8001],
            srt: true,
            srt_listen: SocketAddr::from(([127, 0, 0, 1], 8890)),
            srt_latency: Duration::from_millis(120),
            srt_passphrase: None,
            webrtc: true,
            webrtc_listen: SocketAddr::from(([127, 0, 0, 1], 8189)),
            webrtc_candidates: Vec::new(),
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(333),
            window_segments: 6,
            dvr: false,
            open_publish: false,
            replace_publisher: false,
            idle_timeout: Duration::from_secs(10),
            max_connections: 64,
            reconnect_grace: Duration::from_secs(10),
            record: false,
            pull: Vec::new(),
            streams: Vec::new(),
        }
    }
}

/// Processing of uploaded media.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeConfig {
    /// The ladder (`[[transcode.ladder]]` tables, by increasing height); each
    /// upload gets the rungs no taller than its source.
    pub ladder: Vec<LadderRung>,
    /// Segment-parallel encoding: while other workers are up, the video
    /// rungs and the storyboard of a complete source at least twice this
    /// long are cut into spans of about this many seconds (whole segments,
    /// as many as a multiple of the workers up), which any worker encodes
    /// (each at most one per core at a time). A multiple of the segment
    /// duration (4 s); 0 turns it off.
    pub chunk_seconds: u64,
    /// Chunks a worker encodes at once; 0: one per core it may use.
    pub chunk_slots: usize,
    /// How often a worker renews its leases and looks for work it was not
    /// woken for (a node that died). On PostgreSQL, workers are woken as
    /// soon as work is queued (`LISTEN`/`NOTIFY`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub claim_every: Duration,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        TranscodeConfig {
            ladder: DEFAULT_LADDER.to_vec(),
            chunk_seconds: 20,
            chunk_slots: 0,
            claim_every: streamforge_actors::transcode::queue::CLAIM_EVERY,
        }
    }
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            max_size: 16 * 1024 * 1024 * 1024,
            expire_after: Duration::from_secs(24 * 3600),
            process_while_uploading: true,
        }
    }
}

/// Where the TLS listener's certificate comes from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// No TLS listener, no HTTP/3.
    Off,
    /// A certificate for localhost generated on first start and kept in
    /// `<data_dir>/tls/` (for development).
    SelfSigned,
    /// The PEM files named by `tls.cert` and `tls.key`.
    Files,
}

/// HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on TCP and HTTP/3 on UDP, both on
/// `listen`'s port. HTTP/3 runs whenever TLS does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// Address for HTTPS on TCP and HTTP/3 on UDP.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first (mode `files`).
    pub cert: Option<PathBuf>,
    /// PEM private key (mode `files`).
    pub key: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Off,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert: None,
            key: None,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the server logs, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `streamforge=debug,tower_http=info`.
    /// `RUST_LOG`, when set, takes precedence.
    pub filter: String,
    /// Log lines as text for people, or as JSON objects for a collector.
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            storage: String::new(),
            database: String::new(),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            uploads: UploadsConfig::default(),
            transcode: TranscodeConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            live: LiveConfig::default(),
            log: LogConfig::default(),
            node: NodeConfig::default(),
            webhooks: Vec::new(),
            webhook_delivery: WebhookDeliveryConfig::default(),
            imports: ImportsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            cache_bytes: 256 * 1024 * 1024,
            cache_max_object_bytes: 16 * 1024 * 1024,
            web_dir: PathBuf::from("web/dist"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration problem, naming the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", describe(.0))]
    Load(Box<figment::Error>),
    #[error("invalid value for `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Load(Box::new(err))
    }
}

/// "invalid value for `http.listen` (from STREAMFORGE_HTTP_LISTEN): …", one
/// line per problem, naming the key as the TOML file spells it and where the
/// value came from.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let origin = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(path)) => format!(" (from {})", path.display()),
                _ if e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains(ENV_PREFIX)) =>
                {
                    format!(
                        " (from {ENV_PREFIX}{})",
                        key.replace('.', "_").to_ascii_uppercase()
                    )
                }
                _ if e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("Serialized")) =>
                {
                    " (from a command-line flag)".to_owned()
                }
                _ => String::new(),
            };
            if key.is_empty() {
                format!("{}{origin}", e.kind)
            } else {
                format!("invalid value for `{key}`{origin}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A configuration error for `key`.
fn invalid(key: &'static str, problem: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem: problem.to_owned(),
    })
}

impl Config {
    /// Loads the layered configuration from the process environment, `file`
    /// (`--config`) and `overrides`: the command-line flags that were given,
    /// as a partial TOML table.
    pub fn load(file: Option<&Path>, overrides: toml::Table) -> Result<Config, ConfigError> {
        let mut figment =
            Figment::from(Serialized::defaults(Config::default())).merge(env_provider());
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment.merge(Serialized::globals(overrides)).extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if !self.storage.is_empty() {
            streamforge_actors::storage::Storage::check_url(&self.storage).map_err(|e| {
                ConfigError::Invalid {
                    key: "storage",
                    problem: e.to_string(),
                }
            })?;
        }
        if !self.database.is_empty()
            && streamforge_actors::db::Dialect::of_url(&self.database).is_none()
        {
            return invalid(
                "database",
                "a database URL starts with sqlite: (e.g. sqlite://./data/streamforge.db) or \
                 postgres:// (e.g. postgres://streamforge@db.internal/streamforge)",
            );
        }
        self.validate_live()?;
        self.validate_node()?;
        self.validate_webhooks()?;
        self.validate_http()?;
        self.validate_tls()?;
        if self.uploads.max_size == 0 {
            return invalid("uploads.max_size", "must be greater than 0");
        }
        if self.uploads.expire_after < Duration::from_secs(60) {
            return invalid("uploads.expire_after", "must be at least 1m");
        }
        check_vod_ladder(&self.transcode.ladder).map_err(|problem| ConfigError::Invalid {
            key: "transcode.ladder",
            problem: problem.to_string(),
        })?;
        if self.transcode.claim_every < Duration::from_millis(100)
            || self.transcode.claim_every > streamforge_actors::transcode::queue::LEASE / 2
        {
            return invalid(
                "transcode.claim_every",
                "must be from 100ms to half the 15 s lease (7500ms): leases are renewed at that pace",
            );
        }
        if !self.transcode.chunk_seconds.is_multiple_of(4) {
            return invalid(
                "transcode.chunk_seconds",
                "must be a multiple of the segment duration, 4",
            );
        }
        if self.limits.api_per_second > 0 && self.limits.api_burst == 0 {
            return invalid(
                "limits.api_burst",
                "must be at least 1 when limits.api_per_second is set",
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return invalid(
                "log.filter",
                "not a tracing filter (examples: `info`, `streamforge=debug,info`)",
            );
        }
        Ok(())
    }

    /// `[[webhooks]]` and `[webhook_delivery]`.
    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut urls = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for spec in &self.webhooks {
            if let Some(name) = &spec.name
                && (name.trim().is_empty() || !names.insert(name.as_str()))
            {
                return invalid(
                    "webhooks",
                    &format!("the name {name:?} is empty or given to two endpoints"),
                );
            }
            spec.check().map_err(|problem| ConfigError::Invalid {
                key: "webhooks",
                problem: problem.to_string(),
            })?;
            if !urls.insert(spec.url.as_str()) {
                return invalid(
                    "webhooks",
                    &format!(
                        "{} is listed twice; one endpoint takes a list of events",
                        spec.url
                    ),
                );
            }
        }
        let delivery = &self.webhook_delivery;
        // A node's claim on an endpoint (90 s) must outlast any attempt.
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&delivery.timeout) {
            return invalid("webhook_delivery.timeout", "must be between 1s and 60s");
        }
        if delivery.first_retry < Duration::from_millis(100)
            || delivery.first_retry > delivery.max_retry_interval
        {
            return invalid(
                "webhook_delivery.first_retry",
                "must be at least 100ms and at most webhook_delivery.max_retry_interval",
            );
        }
        if delivery.give_up_after < delivery.first_retry {
            return invalid(
                "webhook_delivery.give_up_after",
                "must be at least webhook_delivery.first_retry",
            );
        }
        Ok(())
    }

    /// The `[live]` section: packaging targets, ports, pulls and ladders.
    fn validate_live(&self) -> Result<(), ConfigError> {
        let live = &self.live;
        if !(Duration::from_millis(500)..=Duration::from_secs(10)).contains(&live.segment_duration)
        {
            return invalid("live.segment_duration", "must be between 500ms and 10s");
        }
        if live.part_duration < Duration::from_millis(100)
            || live.part_duration > live.segment_duration
        {
            return invalid(
                "live.part_duration",
                "must be at least 100ms and at most live.segment_duration",
            );
        }
        if !(3..=1000).contains(&live.window_segments) {
            return invalid("live.window_segments", "must be between 3 and 1000");
        }
        if live.idle_timeout < Duration::from_secs(1) {
            return invalid("live.idle_timeout", "must be at least 1s");
        }
        if live.srt_latency > Duration::from_secs(10) {
            return invalid("live.srt_latency", "must be at most 10s");
        }
        if let Some(p) = &live.srt_passphrase
            && !(10..=79).contains(&p.len())
        {
            return invalid(
                "live.srt_passphrase",
                "must be 10 to 79 characters (SRT's limits)",
            );
        }
        if live.rtsp_udp
            && live.rtsp_udp_ports[0] == live.rtsp_udp_ports[1]
            && live.rtsp_udp_ports[0] != 0
        {
            return invalid(
                "live.rtsp_udp_ports",
                "RTP and RTCP need two different ports (or 0, 0 for any free ports)",
            );
        }
        if live.max_connections == 0 {
            return invalid("live.max_connections", "must be at least 1");
        }
        for (i, source) in live.pull.iter().enumerate() {
            streamforge_actors::live::rtsp_pull::check_source(source).map_err(|problem| {
                ConfigError::Invalid {
                    key: "live.pull",
                    problem: problem.to_string(),
                }
            })?;
            if live.pull[..i].iter().any(|s| s.name == source.name) {
                return invalid("live.pull", "two sources have the same name");
            }
        }
        for (i, stream) in live.streams.iter().enumerate() {
            if !streamforge_actors::live::valid_stream_name(&stream.name) {
                return invalid(
                    "live.streams",
                    "a stream name must be [A-Za-z0-9_-], 1 to 64 bytes",
                );
            }
            if live.streams[..i].iter().any(|s| s.name == stream.name) {
                return invalid("live.streams", "two entries have the same name");
            }
            streamforge_actors::live::ladder::check_live_ladder(&stream.ladder).map_err(
                |problem| ConfigError::Invalid {
                    key: "live.streams.ladder",
                    problem: problem.to_string(),
                },
            )?;
        }
        Ok(())
    }

    /// The `[node]` section: a usable id and an absolute http(s) URL.
    fn validate_node(&self) -> Result<(), ConfigError> {
        let node = &self.node;
        if !node.id.is_empty() && !valid_node_id(&node.id) {
            return invalid("node.id", "1 to 64 characters of [A-Za-z0-9_.-]");
        }
        if node.roles.is_empty() {
            return invalid("node.roles", "at least one of api, ingest, worker");
        }
        if !node.advertise.is_empty() {
            let url: http::Uri = node.advertise.parse().map_err(|e: http::uri::InvalidUri| {
                ConfigError::Invalid {
                    key: "node.advertise",
                    problem: e.to_string(),
                }
            })?;
            if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
                return invalid("node.advertise", "an http:// or https:// URL with a host");
            }
        }
        Ok(())
    }

    /// This node's id: `node.id`, or the one generated at the first start
    /// and kept in `<data_dir>/node-id`.
    pub fn node_id(&self) -> std::io::Result<String> {
        if !self.node.id.is_empty() {
            return Ok(self.node.id.clone());
        }
        kept_token(&self.data_dir.join("node-id"), || {
            format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
        })
    }

    /// The token that tells this node's data directory from another's
    /// (`<data_dir>/node-instance`): a node restarting after a crash keeps
    /// its registry row, another node given the same id is refused.
    pub fn node_instance(&self) -> std::io::Result<String> {
        kept_token(&self.data_dir.join("node-instance"), || {
            uuid::Uuid::new_v4().simple().to_string()
        })
    }

    /// The `[http]` section's limits.
    fn validate_http(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        if !(1024..=1024 * 1024).contains(&http.max_header_bytes) {
            return invalid("http.max_header_bytes", "must be between 1024 and 1048576");
        }
        if !(1..=1000).contains(&http.max_headers) {
            return invalid("http.max_headers", "must be between 1 and 1000");
        }
        if http.max_body_bytes == 0 {
            return invalid("http.max_body_bytes", "must be greater than 0");
        }
        if http.idle_timeout < Duration::from_secs(1) {
            return invalid("http.idle_timeout", "must be at least 1s");
        }
        if http.header_timeout < Duration::from_millis(100) {
            return invalid("http.header_timeout", "must be at least 100ms");
        }
        if http.cache_max_object_bytes == 0 {
            return invalid(
                "http.cache_max_object_bytes",
                "must be greater than 0 (set http.cache_bytes = 0 to turn caching off)",
            );
        }
        Ok(())
    }

    /// The `[tls]` section: certificate files and the listener.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        if self.tls.mode == TlsMode::Files {
            for (key, path) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
                match path {
                    None => {
                        return Err(ConfigError::Invalid {
                            key,
                            problem: "required when tls.mode is \"files\"".to_owned(),
                        });
                    }
                    Some(path) if !path.is_file() => {
                        return Err(ConfigError::Invalid {
                            key,
                            problem: format!("{} is not a readable file", path.display()),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        if self.tls.mode != TlsMode::Off
            && self.tls.listen.port() != 0
            && self.tls.listen == self.http.listen
        {
            return invalid(
                "tls.listen",
                "must differ from http.listen (TCP cannot serve plain and TLS on one port)",
            );
        }
        Ok(())
    }

    /// The storage URL in effect.
    pub fn storage_location(&self) -> StorageLocation {
        if self.storage.is_empty() {
            StorageLocation::Local(self.data_dir.join("media"))
        } else {
            StorageLocation::Url(self.storage.clone())
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        if self.database.is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("streamforge.db").display()
            )
        } else {
            self.database.clone()
        }
    }

    /// The configuration as TOML, for `streamforge config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Where media bytes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    Url(String),
}

/// The token in `path`, made by `make` and written there the first time.
fn kept_token(path: &std::path::Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(token) if valid_node_id(token.trim()) => Ok(token.trim().to_owned()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} does not hold a node token", path.display()),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let token = make();
            std::fs::write(path, format!("{token}\n"))?;
            Ok(token)
        }
        Err(err) => Err(err),
    }
}

fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `STREAMFORGE_HTTP_LISTEN` → `http.listen`; `STREAMFORGE_DATA_DIR` → `data_dir`.
fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).map(|key| {
        let lower = key.as_str().to_ascii_lowercase();
        SECTIONS
            .iter()
            .find_map(|section| {
                let rest = lower.strip_prefix(section)?.strip_prefix('_')?;
                Some(format!("{section}.{rest}"))
            })
            .unwrap_or(lower)
            .into()
    })
}

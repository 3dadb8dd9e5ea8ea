//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{AuthMode, LogFormat, TlsMode};
use crate::package::PackageArgs;

/// StreamForge media server: resumable uploads processed while they arrive,
/// live ingest, and HLS/DASH delivery from one set of CMAF segments.
///
/// Settings come from, highest precedence first: command-line flags, the
/// TOML file given by --config, STREAMFORGE_* environment variables
/// (STREAMFORGE_DATA_DIR, STREAMFORGE_HTTP_LISTEN, …: the key in capitals with
/// its section as a prefix), and built-in defaults.
#[derive(Debug, Parser)]
#[command(name = "streamforge", version, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file (see `streamforge config` for every key).
    #[arg(long, global = true, value_name = "FILE", env = "STREAMFORGE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve(Overrides),
    /// Print the effective configuration as TOML (defaults, environment, file
    /// and flags merged) and exit; fails with the reason if it is invalid.
    Config(Overrides),
    /// Create, list or revoke API tokens (for auth.mode = "token").
    Token(TokenCommand),
    /// Package an MP4/MOV file as HLS and DASH in a directory (CMAF segments
    /// shared by both manifests, I-frame playlists) and exit; no server needed.
    Package(PackageArgs),
}

#[derive(Debug, Args)]
pub struct TokenCommand {
    #[command(subcommand)]
    pub action: TokenAction,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it once; only its SHA-256 is stored.
    Create {
        /// What the token is for, shown by `token list`.
        #[arg(long)]
        name: String,
    },
    /// List tokens (ids, names, dates; never the secrets).
    List,
    /// Revoke a token by id; requests with it are refused from then on.
    Revoke { id: String },
}

/// `--rtsp-udp-ports`: two ports, or UDP off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPorts {
    Off,
    Ports(u16, u16),
}

/// Why `--rtsp-udp-ports` was refused.
#[derive(Debug, thiserror::Error)]
pub enum UdpPortsError {
    #[error("{0:?} is not a port number")]
    NotAPort(String),
    #[error("expected RTP,RTCP (two port numbers, e.g. 8000,8001) or off")]
    Shape,
}

fn parse_udp_ports(value: &str) -> Result<UdpPorts, UdpPortsError> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(UdpPorts::Off);
    }
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| UdpPortsError::NotAPort(p.to_owned()))
    };
    match value.split_once(',') {
        Some((rtp, rtcp)) => Ok(UdpPorts::Ports(port(rtp)?, port(rtcp)?)),
        None => Err(UdpPortsError::Shape),
    }
}

/// Flags that override configuration keys; each names its key.
#[derive(Debug, Default, Args)]
pub struct Overrides {
    /// Directory for the database and, by default, stored media [key: data_dir; default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Media storage URL: file:///abs/path or s3://bucket/prefix?endpoint=URL&region=R;
    /// S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [key: storage;
    /// default: <data_dir>/media].
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,

    /// Database URL [key: database; default: sqlite://<data_dir>/streamforge.db].
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// Address for HTTP/1.1 and HTTP/2 [key: http.listen; default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address encoders push RTMP to [key: live.rtmp_listen; default: 127.0.0.1:1935].
    #[arg(long, value_name = "ADDR")]
    pub rtmp_listen: Option<SocketAddr>,

    /// Address encoders push RTSP to [key: live.rtsp_listen; default: 127.0.0.1:8554].
    #[arg(long, value_name = "ADDR")]
    pub rtsp_listen: Option<SocketAddr>,

    /// UDP ports for RTSP over UDP, server RTP and RTCP, as RTP,RTCP (0,0: any
    /// free ports), or off for TCP-interleaved RTSP only [keys: live.rtsp_udp_ports,
    /// live.rtsp_udp; default: 8000,8001].
    #[arg(long, value_name = "RTP,RTCP|off", value_parser = parse_udp_ports)]
    pub rtsp_udp_ports: Option<UdpPorts>,

    /// Largest request head in bytes [key: http.max_header_bytes; default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,

    /// Most header fields per request [key: http.max_headers; default: 100].
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,

    /// Largest API request body in bytes [key: http.max_body_bytes; default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Close connections with no traffic for this long, e.g. 60s [key: http.idle_timeout].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Time allowed to send a request head, e.g. 10s [key: http.header_timeout].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,

    /// Time in-flight requests get after a shutdown signal, e.g. 10s [key: http.shutdown_grace].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// Memory for hot segments in bytes; 0 turns the cache off [key: http.cache_bytes;
    /// default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub cache_bytes: Option<u64>,

    /// TLS for HTTPS (h1/h2) and HTTP/3: off, self-signed (development) or files
    /// [key: tls.mode; default: off].
    #[arg(long, value_name = "MODE")]
    pub tls: Option<TlsMode>,

    /// Address for HTTPS on TCP and HTTP/3 on UDP [key: tls.listen; default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain for --tls files [key: tls.cert].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls files [key: tls.key].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Who may use /api/ and /files/: none, or token (Bearer tokens from
    /// `streamforge token create`) [key: auth.mode; default: none].
    #[arg(long, value_name = "MODE")]
    pub auth: Option<AuthMode>,

    /// Largest upload in bytes [key: uploads.max_size; default: 17179869184].
    #[arg(long, value_name = "BYTES")]
    pub upload_max_size: Option<u64>,

    /// Log filter such as info or streamforge=debug,info; RUST_LOG wins when set [key: log.filter].
    #[arg(long, value_name = "FILTER")]
    pub log_filter: Option<String>,

    /// Log line format [key: log.format; default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    /// The flags that were given, as a partial configuration table.
    pub fn to_table(&self) -> toml::Table {
        use toml::Value;
        let mut root = toml::Table::new();
        let mut http = toml::Table::new();
        let mut log = toml::Table::new();
        let mut tls = toml::Table::new();
        let mut uploads = toml::Table::new();
        let duration = |d: &Duration| Value::String(humantime::format_duration(*d).to_string());
        let size = |n: &usize| Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX));
        if let Some(v) = &self.data_dir {
            root.insert("data_dir".into(), Value::String(v.display().to_string()));
        }
        if let Some(v) = &self.storage {
            root.insert("storage".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.database {
            root.insert("database".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.listen {
            http.insert("listen".into(), Value::String(v.to_string()));
        }
        let mut live = toml::Table::new();
        if let Some(v) = &self.rtmp_listen {
            live.insert("rtmp_listen".into(), Value::String(v.to_string()));
        }
        if let Some(v) = &self.rtsp_listen {
            live.insert("rtsp_listen".into(), Value::String(v.to_string()));
        }
        match &self.rtsp_udp_ports {
            Some(UdpPorts::Off) => {
                live.insert("rtsp_udp".into(), Value::Boolean(false));
            }
            Some(UdpPorts::Ports(rtp, rtcp)) => {
                live.insert("rtsp_udp".into(), Value::Boolean(true));
                live.insert(
                    "rtsp_udp_ports".into(),
                    Value::Array(vec![
                        Value::Integer(i64::from(*rtp)),
                        Value::Integer(i64::from(*rtcp)),
                    ]),
                );
            }
            None => {}
        }
        if !live.is_empty() {
            root.insert("live".into(), Value::Table(live));
        }
        if let Some(v) = &self.max_header_bytes {
            http.insert("max_header_bytes".into(), size(v));
        }
        if let Some(v) = &self.max_headers {
            http.insert("max_headers".into(), size(v));
        }
        if let Some(v) = &self.max_body_bytes {
            http.insert("max_body_bytes".into(), size(v));
        }
        if let Some(v) = &self.idle_timeout {
            http.insert("idle_timeout".into(), duration(v));
        }
        if let Some(v) = &self.header_timeout {
            http.insert("header_timeout".into(), duration(v));
        }
        if let Some(v) = &self.shutdown_grace {
            http.insert("shutdown_grace".into(), duration(v));
        }
        if let Some(v) = &self.cache_bytes {
            http.insert(
                "cache_bytes".into(),
                Value::Integer(i64::try_from(*v).unwrap_or(i64::MAX)),
            );
        }
        if let Some(v) = &self.tls {
            let name = match v {
                TlsMode::Off => "off",
                TlsMode::SelfSigned => "self-signed",
                TlsMode::Files => "files",
            };
            tls.insert("mode".into(), Value::String(name.into()));
        }
        if let Some(v) = &self.tls_listen {
            tls.insert("listen".into(), Value::String(v.to_string()));
        }
        if let Some(v) = &self.tls_cert {
            tls.insert("cert".into(), Value::String(v.display().to_string()));
        }
        if let Some(v) = &self.tls_key {
            tls.insert("key".into(), Value::String(v.display().to_string()));
        }
        if let Some(v) = &self.auth {
            let mode = match v {
                AuthMode::None => "none",
                AuthMode::Token => "token",
            };
            let mut auth = toml::Table::new();
            auth.insert("mode".into(), Value::String(mode.into()));
            root.insert("auth".into(), Value::Table(auth));
        }
        if let Some(v) = &self.upload_max_size {
            uploads.insert(
                "max_size".into(),
                Value::Integer(i64::try_from(*v).unwrap_or(i64::MAX)),
            );
        }
        if let Some(v) = &self.log_filter {
            log.insert("filter".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.log_format {
            let name = match v {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            log.insert("format".into(), Value::String(name.into()));
        }
        if !http.is_empty() {
            root.insert("http".into(), Value::Table(http));
        }
        if !tls.is_empty() {
            root.insert("tls".into(), Value::Table(tls));
        }
        if !uploads.is_empty() {
            root.insert("uploads".into(), Value::Table(uploads));
        }
        if !log.is_empty() {
            root.insert("log".into(), Value::Table(log));
        }
        root
    }
}

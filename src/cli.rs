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
    Config(ConfigArgs),
    /// Create, list or revoke API tokens (for auth.mode = "token").
    Token(TokenCommand),
    /// Package an MP4/MOV file as HLS and DASH in a directory (CMAF segments
    /// shared by both manifests, I-frame playlists) and exit; no server needed.
    Package(PackageArgs),
    /// Print the HTTP API's OpenAPI 3.1 description (what /api/openapi.json
    /// serves) and exit: for client generators, without a server.
    Openapi,
}

/// `streamforge config`: the effective configuration, or what it can be.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print every key with its default value, each explained in a comment:
    /// a configuration file to start from.
    #[arg(long, conflicts_with = "reference")]
    pub default: bool,
    /// Print the configuration reference (docs/CONFIG.md): every key with
    /// its type, default, environment variable, flag and meaning.
    #[arg(long)]
    pub reference: bool,
    #[command(flatten)]
    pub overrides: Overrides,
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
    /// S3 credentials from the URL (access_key_id, secret_access_key) or
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [key: storage; default:
    /// <data_dir>/media].
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,

    /// Database URL: sqlite:… or postgres://… [key: database; default:
    /// sqlite://<data_dir>/streamforge.db].
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

    /// UDP address encoders push SRT to [key: live.srt_listen; default: 127.0.0.1:8890].
    #[arg(long, value_name = "ADDR")]
    pub srt_listen: Option<SocketAddr>,

    /// UDP address WHIP (WebRTC) media arrives at [key: live.webrtc_listen; default: 127.0.0.1:8189].
    #[arg(long, value_name = "ADDR")]
    pub webrtc_listen: Option<SocketAddr>,

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
        let text = |v: &dyn std::fmt::Display| Value::String(v.to_string());
        let path = |v: &PathBuf| Value::String(v.display().to_string());
        let duration = |d: &Duration| text(&humantime::format_duration(*d));
        let size = |n: &usize| Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX));
        let bytes = |n: &u64| Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX));
        let mut t = Partial::default();
        t.set("data_dir", self.data_dir.as_ref().map(path));
        t.set("storage", self.storage.as_ref().map(|v| text(v)));
        t.set("database", self.database.as_ref().map(|v| text(v)));
        t.set("http.listen", self.listen.as_ref().map(|v| text(v)));
        t.set(
            "http.max_header_bytes",
            self.max_header_bytes.as_ref().map(size),
        );
        t.set("http.max_headers", self.max_headers.as_ref().map(size));
        t.set(
            "http.max_body_bytes",
            self.max_body_bytes.as_ref().map(size),
        );
        t.set(
            "http.idle_timeout",
            self.idle_timeout.as_ref().map(duration),
        );
        t.set(
            "http.header_timeout",
            self.header_timeout.as_ref().map(duration),
        );
        t.set(
            "http.shutdown_grace",
            self.shutdown_grace.as_ref().map(duration),
        );
        t.set("http.cache_bytes", self.cache_bytes.as_ref().map(bytes));
        t.set(
            "live.rtmp_listen",
            self.rtmp_listen.as_ref().map(|v| text(v)),
        );
        t.set(
            "live.rtsp_listen",
            self.rtsp_listen.as_ref().map(|v| text(v)),
        );
        t.set("live.srt_listen", self.srt_listen.as_ref().map(|v| text(v)));
        t.set(
            "live.webrtc_listen",
            self.webrtc_listen.as_ref().map(|v| text(v)),
        );
        match &self.rtsp_udp_ports {
            Some(UdpPorts::Off) => t.set("live.rtsp_udp", Some(Value::Boolean(false))),
            Some(UdpPorts::Ports(rtp, rtcp)) => {
                t.set("live.rtsp_udp", Some(Value::Boolean(true)));
                let ports = [rtp, rtcp].map(|p| Value::Integer(i64::from(*p)));
                t.set("live.rtsp_udp_ports", Some(Value::Array(ports.to_vec())));
            }
            None => {}
        }
        t.set("tls.mode", self.tls.and_then(serde_name));
        t.set("tls.listen", self.tls_listen.as_ref().map(|v| text(v)));
        t.set("tls.cert", self.tls_cert.as_ref().map(path));
        t.set("tls.key", self.tls_key.as_ref().map(path));
        t.set("auth.mode", self.auth.and_then(serde_name));
        t.set("uploads.max_size", self.upload_max_size.as_ref().map(bytes));
        t.set("log.filter", self.log_filter.as_ref().map(|v| text(v)));
        t.set("log.format", self.log_format.and_then(serde_name));
        t.0
    }
}

/// A configuration enum's value as the configuration file spells it.
fn serde_name(value: impl serde::Serialize) -> Option<toml::Value> {
    toml::Value::try_from(value).ok()
}

/// A partial configuration table, filled key by key.
#[derive(Default)]
struct Partial(toml::Table);

impl Partial {
    /// Sets `key` (`section.name` or `name`) when a value was given.
    fn set(&mut self, key: &str, value: Option<toml::Value>) {
        let Some(value) = value else {
            return;
        };
        match key.split_once('.') {
            Some((section, name)) => {
                let table = self
                    .0
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(table) = table {
                    table.insert(name.to_owned(), value);
                }
            }
            None => {
                self.0.insert(key.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_keys_they_name() {
        let overrides = Overrides {
            data_dir: Some(PathBuf::from("/srv/media")),
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            idle_timeout: Some(Duration::from_secs(7)),
            rtsp_udp_ports: Some(UdpPorts::Ports(7000, 7001)),
            tls: Some(TlsMode::SelfSigned),
            auth: Some(AuthMode::Token),
            log_format: Some(LogFormat::Json),
            upload_max_size: Some(1 << 20),
            ..Overrides::default()
        };
        let expected: toml::Table = toml::from_str(
            r#"
            data_dir = "/srv/media"
            http = { listen = "127.0.0.1:9000", idle_timeout = "7s" }
            live = { rtsp_udp = true, rtsp_udp_ports = [7000, 7001] }
            tls = { mode = "self-signed" }
            auth = { mode = "token" }
            uploads = { max_size = 1048576 }
            log = { format = "json" }
            "#,
        )
        .unwrap();
        assert_eq!(overrides.to_table(), expected);
        assert!(Overrides::default().to_table().is_empty());
    }
}

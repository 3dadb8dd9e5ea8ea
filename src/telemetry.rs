//! Logging through `tracing`: human-readable or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid {origin} {directives:?}: {source}")]
    Filter {
        /// `RUST_LOG` or `log.filter`.
        origin: &'static str,
        directives: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a logger is installed already: {0}")]
    Installed(String),
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured filter. Returns an error if a subscriber is already installed.
pub fn init(log: &LogConfig) -> Result<(), LogError> {
    let (origin, directives) = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => ("RUST_LOG", directives),
        _ => ("log.filter", log.filter.clone()),
    };
    // srt-tokio's protocol crate logs a warning per malformed datagram (a
    // flood on a port anyone can reach) and chatter per connection; the
    // server's own `srt:` lines say what matters. Unless asked for by name:
    let directives = match directives.trim() {
        d if d.contains("srt_protocol") => directives,
        "" => "srt_protocol=error".to_owned(),
        d => format!("{d},srt_protocol=error"),
    };
    let filter = EnvFilter::try_new(&directives).map_err(|source| LogError::Filter {
        origin,
        directives,
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| LogError::Installed(e.to_string()))
}

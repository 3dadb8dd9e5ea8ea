//! Pages rather than files: when an import's URL answers with an HTML page
//! and a `yt-dlp` binary is on the PATH, yt-dlp finds the media the page
//! carries and names a direct URL for it, which the import then downloads
//! itself (through the address guard, with ranges and resumes).
//!
//! yt-dlp is run only to resolve (`-J`: metadata, no download), with a
//! time limit, without user configuration, as a tracked child process
//! (killed and reaped whatever happens), two at a time at most. Its own
//! requests (the page again, what its extractors fetch) do not go through
//! the address guard, which is why `imports.yt_dlp` is off by default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::process::Processes;

/// How long yt-dlp may take to resolve a page.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest metadata document read from yt-dlp.
const MAX_METADATA_BYTES: usize = 16 * 1024 * 1024;
/// Formats the import can fetch itself: one file over HTTP(S), the best.
const FORMAT: &str = "b[protocol=https]/b[protocol=http]";

/// What yt-dlp found on a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageMedia {
    /// The media file's own URL.
    pub url: url::Url,
    /// Headers the site wants on requests for it (user agent, referer).
    pub headers: Vec<(String, String)>,
    /// `title.ext`, as the page names the media.
    pub filename: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("cannot run yt-dlp: {0}")]
    Spawn(std::io::Error),
    #[error("yt-dlp took longer than {}s to read the page", RESOLVE_TIMEOUT.as_secs())]
    Timeout,
    /// (What yt-dlp said is logged, not answered: its messages about the
    /// requests it made would tell a caller about networks it reached.)
    #[error("yt-dlp found no media on the page that can be fetched as one file")]
    NoMedia,
    #[error("yt-dlp answered what is not its metadata: {0}")]
    Metadata(String),
}

/// The metadata fields used, from `yt-dlp -J`.
#[derive(Deserialize)]
struct Metadata {
    url: Option<String>,
    title: Option<String>,
    ext: Option<String>,
    #[serde(default)]
    http_headers: HashMap<String, String>,
}

/// The `yt-dlp` executable on `PATH`, if there is one.
pub fn find_yt_dlp() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("yt-dlp"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks yt-dlp for the media of the page at `page`.
pub async fn resolve(
    yt_dlp: &Path,
    processes: &Processes,
    page: &url::Url,
) -> Result<PageMedia, PageError> {
    let mut command = Command::new(yt_dlp);
    command
        .args([
            "--ignore-config",
            "--no-update",
            "--no-warnings",
            "--no-playlist",
        ])
        .args(["--socket-timeout", "20", "-J", "-f", FORMAT, "--"])
        .arg(page.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = processes
        .spawn("yt-dlp", command)
        .map_err(PageError::Spawn)?;
    let output = tokio::time::timeout(RESOLVE_TIMEOUT, child.output())
        .await
        .map_err(|_| PageError::Timeout)?
        .map_err(PageError::Spawn)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        tracing::info!(reason = last.trim(), "yt-dlp found no media on a page");
        return Err(PageError::NoMedia);
    }
    if output.stdout.len() > MAX_METADATA_BYTES {
        return Err(PageError::Metadata("more than 16 MiB".to_owned()));
    }
    let metadata: Metadata =
        serde_json::from_slice(&output.stdout).map_err(|e| PageError::Metadata(e.to_string()))?;
    media_of(metadata)
}

fn media_of(metadata: Metadata) -> Result<PageMedia, PageError> {
    let url = metadata.url.ok_or(PageError::NoMedia)?;
    let url = url::Url::parse(&url).map_err(|e| PageError::Metadata(e.to_string()))?;
    let title = metadata.title.unwrap_or_else(|| "media".to_owned());
    let filename = match metadata.ext {
        Some(ext) => format!("{title}.{ext}"),
        None => title,
    };
    let mut headers: Vec<(String, String)> = metadata.http_headers.into_iter().collect();
    headers.sort();
    Ok(PageMedia {
        url,
        headers,
        filename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_file_and_keeps_the_sites_headers() {
        let metadata: Metadata = serde_json::from_str(
            r#"{"url": "https://cdn.example.com/v/1.mp4", "title": "A talk", "ext": "mp4",
                "http_headers": {"Referer": "https://example.com/watch"}, "formats": []}"#,
        )
        .unwrap();
        let media = media_of(metadata).unwrap();
        assert_eq!(media.url.as_str(), "https://cdn.example.com/v/1.mp4");
        assert_eq!(media.filename, "A talk.mp4");
        assert_eq!(
            media.headers,
            [("Referer".to_owned(), "https://example.com/watch".to_owned())]
        );
        let streaming_only: Metadata =
            serde_json::from_str(r#"{"title": "Live", "ext": "mp4"}"#).unwrap();
        assert!(matches!(media_of(streaming_only), Err(PageError::NoMedia)));
    }
}

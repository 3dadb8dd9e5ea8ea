//! Signed playback URLs (`auth.playback = "signed"`).
//!
//! A signature covers one asset or one live stream (its scope, `vod/{id}`
//! or `live/{name}`) until an expiry: `?exp=UNIX_SECONDS&sig=HEX` with
//! `sig = HMAC-SHA256(key, "{scope}\n{exp}")`. Every request under the
//! scope is checked (403 with the reason otherwise), and the playlists,
//! MPDs and storyboard tracks served under it get the same query appended
//! to every URI they name, so a player that follows them presents the
//! signature with each segment, part and init request.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http::{StatusCode, header};
use http_body_util::BodyExt;
use sha2::Sha256;

use super::AppState;
use super::error::ApiError;

/// Largest playlist or MPD rewritten (a DVR playlist can be long).
const MAX_REWRITTEN: usize = 16 << 20;

/// Signs and checks playback URLs.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Invalid,
    Expired,
}

impl Signer {
    /// The key from the configuration, or the one kept in `data_dir`
    /// (made on first use, readable by its owner only).
    pub fn load(secret: &str, data_dir: &Path, ttl: Duration) -> std::io::Result<Self> {
        if !secret.is_empty() {
            return Ok(Self {
                key: secret.as_bytes().to_vec(),
                ttl,
            });
        }
        let path = data_dir.join("playback.key");
        let key = match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => key,
            _ => {
                let key: Vec<u8> = uuid::Uuid::new_v4()
                    .as_bytes()
                    .iter()
                    .chain(uuid::Uuid::new_v4().as_bytes())
                    .copied()
                    .collect();
                std::fs::write(&path, &key)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                }
                key
            }
        };
        Ok(Self { key, ttl })
    }

    fn mac(&self, scope: &str, exp: u64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any size");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        mac
    }

    /// `exp=…&sig=…` for `scope`, valid for `ttl` (the configured one when `None`).
    pub fn query(&self, scope: &str, ttl: Option<Duration>) -> String {
        let exp = (streamforge_actors::clock::now_ms() / 1000).unsigned_abs()
            + ttl.unwrap_or(self.ttl).as_secs();
        let sig = hex::encode(self.mac(scope, exp).finalize().into_bytes());
        format!("exp={exp}&sig={sig}")
    }

    /// Appends the signature to a URL under `/vod/` or `/live/`.
    pub fn sign_url(&self, url: &str) -> String {
        match scope_of(url.split('?').next().unwrap_or(url)) {
            Some(scope) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}{}", self.query(&scope, None))
            }
            None => url.to_owned(),
        }
    }

    /// Checks the `exp` and `sig` of `query` for `scope`.
    pub fn verify(&self, scope: &str, query: Option<&str>) -> Result<(u64, String), Refusal> {
        let pairs = query.unwrap_or("").split('&');
        let (mut exp, mut sig) = (None, None);
        for pair in pairs {
            match pair.split_once('=') {
                Some(("exp", v)) => exp = Some(v),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        let (Some(exp), Some(sig)) = (exp, sig) else {
            return Err(Refusal::Missing);
        };
        let exp: u64 = exp.parse().map_err(|_| Refusal::Invalid)?;
        let bytes = hex::decode(sig).map_err(|_| Refusal::Invalid)?;
        self.mac(scope, exp)
            .verify_slice(&bytes)
            .map_err(|_| Refusal::Invalid)?;
        if exp < (streamforge_actors::clock::now_ms() / 1000).unsigned_abs() {
            return Err(Refusal::Expired);
        }
        Ok((exp, sig.to_owned()))
    }
}

/// `vod/{asset}` or `live/{stream}` for a path under them.
pub fn scope_of(path: &str) -> Option<String> {
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    let kind = segments.next()?;
    let id = segments.next()?;
    segments.next()?;
    (matches!(kind, "vod" | "live") && !id.is_empty()).then(|| format!("{kind}/{id}"))
}

/// Refuses unsigned playback requests, and signs the URIs inside the
/// playlists, MPDs and storyboards it lets through.
pub async fn require_signature(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(signer) = state.signer.clone() else {
        return next.run(request).await;
    };
    let Some(scope) = scope_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let (exp, sig) = match signer.verify(&scope, request.uri().query()) {
        Ok(valid) => valid,
        Err(refusal) => {
            let (code, message) = match refusal {
                Refusal::Missing => (
                    "signature_required",
                    "playback needs a signed URL (exp and sig query parameters)",
                ),
                Refusal::Invalid => ("signature_invalid", "the URL's signature does not match"),
                Refusal::Expired => ("signature_expired", "the signed URL has expired"),
            };
            return ApiError::new(StatusCode::FORBIDDEN, code, message).into_response();
        }
    };
    // A manifest is rewritten whole: a range of it (ffmpeg asks for
    // `bytes=0-`) would come back unsigned as a 206. The path is judged
    // decoded, as the routes see it (`master.m3u%38` is a playlist too).
    let mut request = request;
    let path = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8_lossy();
    if path.ends_with(".m3u8") || path.ends_with(".mpd") || path.ends_with(".vtt") {
        request.headers_mut().remove(header::RANGE);
        request.headers_mut().remove(header::IF_RANGE);
    }
    // The text must come plain to be rewritten: a handler's own gzip copy
    // (shared by every viewer) would be unreadable here. The compression
    // layer outside, which read the header already, compresses the
    // rewritten answer; media is never compressed.
    request.headers_mut().remove(header::ACCEPT_ENCODING);
    let response = next.run(request).await;
    if response.status() != StatusCode::OK
        || response.headers().contains_key(header::CONTENT_ENCODING)
    {
        return response;
    }
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            if t.starts_with("application/vnd.apple.mpegurl") {
                Some(Rewrite::Playlist)
            } else if t.starts_with("application/dash+xml") {
                Some(Rewrite::Mpd)
            } else if t.starts_with("text/vtt") {
                Some(Rewrite::Vtt)
            } else {
                None
            }
        })
        .unwrap_or(None);
    let Some(kind) = kind else {
        return response;
    };
    let query = format!("exp={exp}&sig={sig}");
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_REWRITTEN)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            tracing::error!(%err, "cannot read a playlist to sign it");
            return ApiError::internal("the playlist could not be signed").into_response();
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let signed = match kind {
        Rewrite::Playlist => streamforge_protocols::hls::uri_query::append_query(&text, &query),
        Rewrite::Mpd => streamforge_protocols::dash::append_query_to_templates(&text, &query),
        Rewrite::Vtt => sign_vtt(&text, &query),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::ETAG);
    parts.headers.remove(header::LAST_MODIFIED);
    // Each viewer's playlist carries its own signature.
    parts.headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-cache"),
    );
    Response::from_parts(parts, Body::from(signed))
}

enum Rewrite {
    Playlist,
    Mpd,
    Vtt,
}

/// Storyboard cues name a sprite (`storyboard.webp#xywh=…`): the query goes
/// before the fragment.
fn sign_vtt(vtt: &str, query: &str) -> String {
    vtt.lines()
        .map(|line| match line.split_once("#xywh=") {
            Some((image, rect)) if !line.contains("-->") => format!("{image}?{query}#xywh={rect}"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer {
            key: b"test key".to_vec(),
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn signatures_cover_one_scope_until_they_expire() {
        let s = signer();
        let query = s.query("vod/abc", None);
        assert!(s.verify("vod/abc", Some(&query)).is_ok());
        assert_eq!(s.verify("vod/other", Some(&query)), Err(Refusal::Invalid));
        assert_eq!(s.verify("vod/abc", None), Err(Refusal::Missing));
        let tampered = query.replace("exp=", "exp=1");
        assert_eq!(s.verify("vod/abc", Some(&tampered)), Err(Refusal::Invalid));
        let past = (streamforge_actors::clock::now_ms() / 1000).unsigned_abs() - 10;
        let sig = hex::encode(s.mac("vod/abc", past).finalize().into_bytes());
        assert_eq!(
            s.verify("vod/abc", Some(&format!("exp={past}&sig={sig}"))),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn scopes_and_urls() {
        assert_eq!(scope_of("/vod/a1/master.m3u8").as_deref(), Some("vod/a1"));
        assert_eq!(scope_of("/live/cam/v1/3.m4s").as_deref(), Some("live/cam"));
        assert_eq!(scope_of("/api/assets/a1"), None);
        assert_eq!(scope_of("/vod/a1"), None);
        assert!(signer().sign_url("/vod/a1/master.m3u8").contains("?exp="));
        assert_eq!(signer().sign_url("/api/x"), "/api/x");
        let vtt = sign_vtt(
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\ns.webp#xywh=0,0,160,90\n",
            "sig=1",
        );
        assert!(vtt.contains("s.webp?sig=1#xywh=0,0,160,90"));
    }
}

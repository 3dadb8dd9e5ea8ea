//! Edge relay of live streams another node owns (`live_owners`): a request
//! for `/live/{stream}/…` that this node cannot answer itself goes to the
//! owner, **once per edge** however many viewers ask for the same URL at
//! the same time: the first request fetches, the others wait for its
//! answer (a blocking playlist reload or a preload-hinted part held at the
//! owner is held once). Answers the owner marks cacheable are kept for as
//! long as its `Cache-Control` says (media is immutable, the newest
//! playlist a second), weighed by their bytes, and served to every viewer
//! as the same `Bytes`. The owner's URLs, numbers and bytes reach the
//! viewers unchanged. When the owner is gone, the edge's viewers get the
//! last playlists it relayed, ended, and the last MPD, static.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use http::{HeaderValue, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use streamforge_actors::db::Database;
use streamforge_actors::live::owners::StreamOwner;
use streamforge_protocols::dash::ended_mpd;
use streamforge_protocols::hls::ended_playlist;

use self::growing::Growing;
use super::error::ApiError;
use super::forward::FORWARDED_BY;
use super::live::{MPD, PLAYLIST};

mod growing;

/// Longest wait for the owner: above the 6 s it holds a request for media
/// not made yet (and longest silence of a segment relayed as it grows).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stream's owner, once looked up, is trusted.
const OWNER_TTL: Duration = Duration::from_secs(1);
/// Bytes of relayed answers kept (parts and segments of the live window).
const CACHE_BYTES: u64 = 256 << 20;
/// Largest answer relayed: a live segment is a few MB.
const MAX_BODY: usize = 64 << 20;
/// How long after its owner is gone a stream's last playlists are served
/// ended to the edge's viewers.
const ENDED_FOR: Duration = Duration::from_secs(60);

/// An answer from the owner, as every viewer of this edge gets it.
#[derive(Clone)]
pub struct Relayed {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
    body: RelayedBody,
    /// Kept until then (`None`: not kept).
    fresh_until: Option<Instant>,
    /// A playlist's or MPD's bytes gzipped, made by the first viewer that
    /// accepts gzip and shared by the others (compressing per viewer cost
    /// ten times the rest of a playlist request); `None` inside when it
    /// would not be smaller.
    gzipped: std::sync::OnceLock<Option<Bytes>>,
}

/// The owner's bytes: whole, or a segment still being written.
#[derive(Clone)]
enum RelayedBody {
    Whole(Bytes),
    Growing(Arc<Growing>),
}

impl Relayed {
    /// The whole body (empty for a segment still growing).
    fn whole(&self) -> &[u8] {
        match &self.body {
            RelayedBody::Whole(bytes) => bytes,
            RelayedBody::Growing(_) => &[],
        }
    }

    /// The compressed copy of a whole playlist or MPD, when it has one.
    fn gzipped(&self) -> Option<&Bytes> {
        let RelayedBody::Whole(bytes) = &self.body else {
            return None;
        };
        let manifest = self
            .content_type
            .as_ref()
            .is_some_and(|t| t.as_bytes() == PLAYLIST.as_bytes() || t.as_bytes() == MPD.as_bytes());
        if self.status != StatusCode::OK || !manifest || bytes.len() < super::gzip::MIN_BYTES {
            return None;
        }
        self.gzipped
            .get_or_init(|| super::gzip::compress(bytes))
            .as_ref()
    }

    /// The answer for a viewer; `gzip`: one that accepts it compressed.
    fn response(&self, gzip: bool) -> Response {
        let gzipped = gzip.then(|| self.gzipped()).flatten();
        let body = match (&self.body, gzipped) {
            (_, Some(gzipped)) => Body::from(gzipped.clone()),
            (RelayedBody::Whole(bytes), None) => Body::from(bytes.clone()),
            (RelayedBody::Growing(growing), None) => growing.body(),
        };
        let mut response = (self.status, body).into_response();
        if let Some(gzipped) = gzipped {
            super::gzip::mark(response.headers_mut(), gzipped.len());
        }
        let headers = response.headers_mut();
        if let Some(v) = &self.content_type {
            headers.insert(header::CONTENT_TYPE, v.clone());
        }
        if let Some(v) = &self.cache_control {
            headers.insert(header::CACHE_CONTROL, v.clone());
        }
        response
    }
}

/// Why the owner could not be relayed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the stream's owner, node {node} at {advertise}, did not answer: {reason}")]
    Unreachable {
        node: String,
        advertise: String,
        reason: String,
    },
    #[error("the stream's owner, node {node}, is at {advertise}; only http:// nodes are relayed")]
    Unsupported { node: String, advertise: String },
}

impl From<RelayError> for ApiError {
    fn from(err: RelayError) -> Self {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "owner_unreachable",
            err.to_string(),
        )
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Relayed>, RelayError>>>;

/// The relay of one node; cheap to clone.
#[derive(Clone)]
pub struct EdgeRelay {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Body>,
    node: String,
    /// Requests to the owner under way, by owner and path with query.
    fetching: Mutex<HashMap<String, Fetch>>,
    kept: quick_cache::sync::Cache<String, Arc<Relayed>, Weight>,
    owners: Lookups<StreamOwner>,
    /// Nodes' `advertise` URLs, by node id, for media relayed from the
    /// node that made it (same lifetime as the owners).
    addresses: Lookups<String>,
    /// The last full playlist or MPD relayed at each path (no query):
    /// what the edge's viewers get, ended, when the owner is gone.
    playlists: Mutex<HashMap<String, (Instant, Bytes)>>,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Arc<Relayed>> for Weight {
    fn weight(&self, key: &String, value: &Arc<Relayed>) -> u64 {
        (key.len() + value.whole().len() + 256) as u64
    }
}

impl std::fmt::Debug for EdgeRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeRelay")
            .field("node", &self.inner.node)
            .field("kept", &self.inner.kept.len())
            .finish_non_exhaustive()
    }
}

impl EdgeRelay {
    pub fn new(node: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self {
            inner: Arc::new(Inner {
                client: Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector),
                node: node.to_owned(),
                fetching: Mutex::new(HashMap::new()),
                kept: quick_cache::sync::Cache::with_weighter(4096, CACHE_BYTES, Weight),
                owners: Mutex::new(HashMap::new()),
                addresses: Mutex::new(HashMap::new()),
                playlists: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The node that owns `stream`, when it is another one (looked up at
    /// most once a second per stream).
    pub async fn owner(
        &self,
        db: &Database,
        stream: &str,
    ) -> Result<Option<StreamOwner>, ApiError> {
        if let Some(owner) = recalled(&self.inner.owners, stream) {
            return Ok(owner);
        }
        let owner = db
            .live_owner(stream)
            .await
            .map_err(|e| ApiError::database("live stream owner", &e))?
            .filter(|o| o.node != self.inner.node);
        remember(&self.inner.owners, stream, owner.clone());
        Ok(owner)
    }

    /// Answers `uri` from node `node` (not the owner: a node that made
    /// the media asked for before the stream moved on).
    pub async fn relay_to_node(
        &self,
        db: &Database,
        node: &str,
        uri: &Uri,
        gzip: bool,
    ) -> Result<Response, ApiError> {
        let advertise = match recalled(&self.inner.addresses, node) {
            Some(advertise) => advertise,
            None => {
                let advertise = db
                    .node_advertise(node)
                    .await
                    .map_err(|e| ApiError::database("node lookup", &e))?;
                remember(&self.inner.addresses, node, advertise.clone());
                advertise
            }
        };
        let advertise = advertise.ok_or_else(|| {
            ApiError::not_found(format!(
                "{} was made by node {node:?}, which is gone",
                uri.path()
            ))
        })?;
        let node = StreamOwner {
            node: node.to_owned(),
            advertise,
        };
        self.relay(&node, uri, gzip).await
    }

    /// Answers `uri` from `owner`: from what this edge keeps, by joining a
    /// request for it under way, or by sending one. `gzip`: the viewer
    /// accepts a playlist or MPD compressed (the owner is asked for it
    /// plain; one compressed copy serves every viewer of the same answer).
    pub async fn relay(
        &self,
        owner: &StreamOwner,
        uri: &Uri,
        gzip: bool,
    ) -> Result<Response, ApiError> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let key = format!("{}{path}", owner.node);
        if let Some(kept) = self.inner.kept.get(&key)
            && kept.fresh_until.is_some_and(|t| Instant::now() < t)
        {
            return Ok(kept.response(gzip));
        }
        let fetch = {
            let mut fetching = lock(&self.inner.fetching);
            match fetching.get(&key) {
                Some(fetch) => fetch.clone(),
                None => {
                    let fetch = self
                        .clone()
                        .fetch(owner.clone(), path.to_owned(), key.clone());
                    let fetch = fetch.boxed().shared();
                    fetching.insert(key, fetch.clone());
                    fetch
                }
            }
        };
        match fetch.await {
            Ok(answer) => Ok(answer.response(gzip)),
            // The owner is gone: its viewers here get the end of what it
            // served rather than an error.
            Err(err) => self.ended(uri).ok_or_else(|| err.into()),
        }
    }

    /// The stream's end as this edge last saw it, for a playlist or MPD of
    /// a stream whose owner is gone (died, or stopped): the last media
    /// playlist relayed with its complete segments and `EXT-X-ENDLIST`
    /// (see [`ended_playlist`]), the last multivariant playlist, or the
    /// last MPD made static (see [`ended_mpd`]). `None` for anything else,
    /// or when nothing was relayed in [`ENDED_FOR`].
    pub fn ended(&self, uri: &Uri) -> Option<Response> {
        let (at, body) = lock(&self.inner.playlists).get(uri.path()).cloned()?;
        if at.elapsed() > ENDED_FOR {
            return None;
        }
        let text = std::str::from_utf8(&body).ok()?;
        let path = uri.path();
        let (ended, content_type) = if path.ends_with("/media.m3u8") {
            (ended_playlist(text)?, PLAYLIST)
        } else if path.ends_with(".mpd") {
            (ended_mpd(text).ok()?, MPD)
        } else {
            (text.to_owned(), PLAYLIST)
        };
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        Some((headers, ended).into_response())
    }

    /// Notes a full playlist relayed at `path` (with its query) for
    /// [`Self::ended`].
    fn remember_playlist(&self, path: &str, answer: &Relayed) {
        let path = path.split('?').next().unwrap_or(path);
        let RelayedBody::Whole(body) = &answer.body else {
            return;
        };
        let full = answer.status == StatusCode::OK
            && (path.ends_with(".mpd")
                || path.ends_with(".m3u8") && !body.windows(11).any(|w| w == b"#EXT-X-SKIP"));
        if !full {
            return;
        }
        let now = Instant::now();
        let mut playlists = lock(&self.inner.playlists);
        playlists.retain(|_, (at, _)| now.duration_since(*at) < ENDED_FOR);
        playlists.insert(path.to_owned(), (now, body.clone()));
    }

    async fn fetch(
        self,
        owner: StreamOwner,
        path: String,
        key: String,
    ) -> Result<Arc<Relayed>, RelayError> {
        let answer = match self.request(&owner, &path, &key).await {
            Ok(answer) => answer,
            Err(err) => {
                lock(&self.inner.fetching).remove(&key);
                return Err(err);
            }
        };
        let answer = Arc::new(answer);
        match answer.body {
            // Viewers keep joining it through `fetching` while it grows.
            RelayedBody::Growing(_) => {}
            RelayedBody::Whole(_) => {
                lock(&self.inner.fetching).remove(&key);
                self.remember_playlist(&path, &answer);
                if answer.fresh_until.is_some() {
                    self.inner.kept.insert(key, answer.clone());
                }
            }
        }
        Ok(answer)
    }

    /// Reads a segment the owner is still writing for every viewer that
    /// joins it, then keeps it whole (as the owner's `Cache-Control`
    /// allows).
    fn follow(&self, key: String, body: Incoming, growing: Arc<Growing>, answer: Relayed) {
        let relay = self.clone();
        tokio::spawn(async move {
            let read = growing.read(body, FETCH_TIMEOUT, MAX_BODY).await;
            match read {
                Ok(whole) if answer.fresh_until.is_some() => {
                    let whole = Relayed {
                        body: RelayedBody::Whole(whole),
                        ..answer
                    };
                    relay.inner.kept.insert(key.clone(), Arc::new(whole));
                }
                Ok(_) => {}
                Err(reason) => tracing::info!(%key, %reason, "relayed segment broke off"),
            }
            lock(&relay.inner.fetching).remove(&key);
        });
    }

    async fn request(
        &self,
        owner: &StreamOwner,
        path: &str,
        key: &str,
    ) -> Result<Relayed, RelayError> {
        let unreachable = |reason: String| RelayError::Unreachable {
            node: owner.node.clone(),
            advertise: owner.advertise.clone(),
            reason,
        };
        let target: Uri = format!("{}{path}", owner.advertise.trim_end_matches('/'))
            .parse()
            .map_err(|e| unreachable(format!("{e}")))?;
        if target.scheme_str() != Some("http") {
            return Err(RelayError::Unsupported {
                node: owner.node.clone(),
                advertise: owner.advertise.clone(),
            });
        }
        let request = http::Request::get(target)
            .header(FORWARDED_BY, &self.inner.node)
            .header(
                header::USER_AGENT,
                format!(
                    "streamforge-edge/{} ({})",
                    env!("CARGO_PKG_VERSION"),
                    self.inner.node
                ),
            )
            .body(Body::empty())
            .map_err(|e| unreachable(e.to_string()))?;
        let timed_out = || unreachable(format!("no answer within {} s", FETCH_TIMEOUT.as_secs()));
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.inner.client.request(request))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| unreachable(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let cache_control = parts.headers.get(header::CACHE_CONTROL).cloned();
        let fresh_until = (parts.status == StatusCode::OK)
            .then(|| cache_control.as_ref().and_then(shared_lifetime))
            .flatten()
            .map(|ttl| Instant::now() + ttl);
        let mut answer = Relayed {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            cache_control,
            body: RelayedBody::Whole(Bytes::new()),
            fresh_until,
            gzipped: std::sync::OnceLock::new(),
        };
        // A segment sent as it is written (no length yet): relayed as it
        // grows. Anything else is relayed whole.
        let growing = parts.status == StatusCode::OK
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
            && path.split('?').next().is_some_and(|p| p.ends_with(".m4s"));
        if growing {
            let growing = Growing::new();
            self.follow(key.to_owned(), body, growing.clone(), answer.clone());
            answer.body = RelayedBody::Growing(growing);
            return Ok(answer);
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            http_body_util::Limited::new(body, MAX_BODY).collect(),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
        answer.body = RelayedBody::Whole(body);
        Ok(answer)
    }
}

/// How long a shared cache may keep a response with `cache_control`
/// (`s-maxage`, else `max-age`); `None` when it may not keep it at all.
fn shared_lifetime(cache_control: &HeaderValue) -> Option<Duration> {
    let value = cache_control.to_str().ok()?.to_ascii_lowercase();
    let directives: Vec<&str> = value.split(',').map(str::trim).collect();
    if directives
        .iter()
        .any(|d| matches!(*d, "private" | "no-store" | "no-cache"))
    {
        return None;
    }
    let seconds = |name: &str| {
        directives
            .iter()
            .find_map(|d| d.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
    };
    let secs = seconds("s-maxage").or_else(|| seconds("max-age"))?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Database answers by key, trusted for [`OWNER_TTL`] (`None`: none).
type Lookups<T> = Mutex<HashMap<String, (Instant, Option<T>)>>;

/// What `lookups` holds for `key` while it is fresh.
fn recalled<T: Clone>(lookups: &Lookups<T>, key: &str) -> Option<Option<T>> {
    lock(lookups)
        .get(key)
        .filter(|(at, _)| at.elapsed() < OWNER_TTL)
        .map(|(_, value)| value.clone())
}

/// Notes `value` for `key`, dropping what went stale.
fn remember<T>(lookups: &Lookups<T>, key: &str, value: Option<T>) {
    let now = Instant::now();
    let mut held = lock(lookups);
    held.retain(|_, (at, _)| now.duration_since(*at) < OWNER_TTL);
    held.insert(key.to_owned(), (now, value));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_shared_cache_may_keep() {
        let of = |v: &'static str| shared_lifetime(&HeaderValue::from_static(v));
        assert_eq!(
            of("public, max-age=31536000, immutable"),
            Some(Duration::from_secs(31_536_000))
        );
        assert_eq!(
            of("public, max-age=0, s-maxage=1"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(of("public, max-age=6"), Some(Duration::from_secs(6)));
        assert_eq!(of("private, no-cache"), None);
        assert_eq!(of("no-store"), None);
        assert_eq!(of("public"), None);
    }
}

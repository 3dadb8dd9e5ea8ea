//! Live playback (`/live/{stream}/…`), the stream list and stream keys
//! (`/api/live`), and the clock DASH clients synchronise with (`/time`).
//!
//! Every response comes from the stream's packager. A request for
//! something not produced yet (a blocking playlist reload, the preload-hinted
//! part, the segment being written) is held until the packager announces
//! new media, then answered at once; a segment in progress is sent part by
//! part as each part completes (chunked transfer, for low-latency DASH).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures::stream;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use streamforge_actors::live::viewers::{
    COOKIE, HoldGuard, MAX_HELD, ViewerRequest, ViewerSession, ViewerSummary, cookie_value,
};
use streamforge_actors::live::{LiveStream, StreamSummary, valid_stream_name};
use streamforge_protocols::hls::PlaylistQuery;
use streamforge_protocols::live::{LivePackager, Reply, parse_media_name};

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;
use super::forward::FORWARDED_BY;

/// Longest a request for media not produced yet is held. RFC 8216bis
/// §6.2.5.2 asks for an answer within three target durations; the default
/// segment is 2 s.
const HOLD: Duration = Duration::from_secs(6);

pub(super) const PLAYLIST: &str = "application/vnd.apple.mpegurl";
pub(super) const MPD: &str = "application/dash+xml";
const SEGMENT: &str = "video/mp4";

fn find(state: &AppState, name: &str) -> Result<Arc<LiveStream>, ApiError> {
    state
        .live
        .stream(name)
        .ok_or_else(|| ApiError::not_found(format!("no live stream {name:?}")))
}

/// This node's stream `name` (`Ok`), or, when another node owns it (it
/// took the publish, or took the stream over while it waited here for its
/// publisher), that node's answer to `uri` relayed by this one as an edge
/// (`Err`). A request another node relayed here is never relayed on to
/// the owner.
///
/// Media (`media`: the rendition and file of an init section, part or
/// segment) never changes: this node serves what it made, whoever owns
/// the stream now, and relays what the node it took the stream over from
/// made to that node (which serves it itself: the relay ends there).
async fn local_or_relayed(
    state: &AppState,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    media: Option<(&str, &str)>,
) -> Result<Result<Arc<LiveStream>, Response>, ApiError> {
    let local = state.live.stream(name);
    if let (Some(stream), Some((rendition, file))) = (&local, media) {
        if stream.made(rendition, file) {
            return Ok(Ok(stream.clone()));
        }
        if let Some(node) = stream.earlier_owner(rendition, file) {
            let gzip = super::gzip::accepted(headers);
            return Ok(Err(state
                .edge
                .relay_to_node(&state.db, &node, uri, gzip)
                .await?));
        }
    }
    let here = local.as_ref().is_some_and(|s| s.is_live());
    if !here && !headers.contains_key(FORWARDED_BY) {
        if let Some(owner) = state.edge.owner(&state.db, name).await? {
            let gzip = super::gzip::accepted(headers);
            return Ok(Err(state.edge.relay(&owner, uri, gzip).await?));
        }
        if local.is_none()
            && let Some(ended) = state.edge.ended(uri)
        {
            return Ok(Err(ended));
        }
    }
    local
        .map(Ok)
        .ok_or_else(|| ApiError::not_found(format!("no live stream {name:?}")))
}

/// Answers `ask` from the packager, holding the request while the answer
/// is `Wait`, for at most `hold`, as one of its viewer session's held
/// requests (`429` when the session holds too many already).
async fn answer<T>(
    stream: &LiveStream,
    hold: Duration,
    viewer: Option<&ViewerSession>,
    mut ask: impl FnMut(&LivePackager) -> Reply<T>,
) -> Result<Reply<T>, ApiError> {
    let mut changes = stream.subscribe();
    let deadline = tokio::time::Instant::now() + hold;
    let mut held: Option<HoldGuard> = None;
    loop {
        changes.borrow_and_update();
        let reply = stream.with_packager(&mut ask).unwrap_or_else(|| {
            // Publishing, but no sample yet.
            if stream.is_live() {
                Reply::Wait
            } else {
                Reply::NotFound
            }
        });
        if !matches!(reply, Reply::Wait) {
            return Ok(reply);
        }
        if held.is_none()
            && let Some(viewer) = viewer
        {
            held = Some(viewer.hold().ok_or_else(|| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_held",
                    format!(
                        "this playback session already has {MAX_HELD} requests waiting for media"
                    ),
                )
            })?);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Ok(Reply::Wait),
        }
    }
}

/// The viewer session of a request to `stream`, when it can be tracked.
async fn viewer(
    state: &AppState,
    stream: &str,
    headers: &HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Option<ViewerSession> {
    let remote = connect.map_or_else(String::new, |Extension(ConnectInfo(peer))| {
        peer.ip().to_string()
    });
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, COOKIE));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    state
        .live
        .viewers()
        .session(stream, cookie, &remote, user_agent)
        .await
}

/// Reports the request to its session.
fn tracked(viewer: Option<&ViewerSession>, request: ViewerRequest, response: Response) -> Response {
    if let Some(viewer) = viewer {
        viewer.saw(request);
    }
    response
}

/// A viewer's first request (the multivariant playlist or the MPD, without
/// the session cookie) starts its session: the cookie is set, and that one
/// response is private. No cacheable response ever sets a cookie, so a
/// shared cache neither refuses the media nor hands one viewer's session
/// to another (docs/SCALING.md).
fn starts_session(viewer: Option<&ViewerSession>, mut response: Response) -> Response {
    if let Some(cookie) = viewer.and_then(|v| v.set_cookie.as_deref())
        && let Ok(value) = HeaderValue::from_str(cookie)
    {
        let headers = response.headers_mut();
        headers.insert(header::SET_COOKIE, value);
        headers.insert(header::CACHE_CONTROL, Caching::Private.header());
    }
    response
}

/// How long a shared cache (a CDN, nginx `proxy_cache`) and a player may
/// keep a live response; errors are never kept (`no-store`, from
/// [`ApiError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caching {
    /// Parts, segments and init sections: a name is never reused, in this
    /// presentation or a later one (numbers start at the wall clock).
    Immutable,
    /// The newest playlist or MPD, asked for without delivery directives:
    /// it changes with every part. A shared cache keeps it for a second
    /// (the least `s-maxage` says; RFC 8216bis Appendix C lets a player
    /// make up for the `Age` of a cached copy), so its viewers' reloads
    /// reach the origin about once a second; the player's own cache keeps
    /// none (an LL-DASH player reloads the MPD three times a segment and
    /// would otherwise see the same one, a second behind).
    Latest,
    /// A blocking playlist reload: any answer to `_HLS_msn`/`_HLS_part`
    /// has what the query asks for, so it stays good for as long as the
    /// media it lists is served (three target durations; caches key on the
    /// whole query, `_HLS_skip` included).
    Blocking { target: Duration },
    /// A response that starts a viewer session (sets its cookie).
    Private,
}

impl Caching {
    fn header(self) -> HeaderValue {
        match self {
            Caching::Immutable => HeaderValue::from_static("public, max-age=31536000, immutable"),
            Caching::Latest => HeaderValue::from_static("public, max-age=0, s-maxage=1"),
            Caching::Blocking { target } => {
                let secs = (target.as_secs_f64() * 3.0).ceil().max(1.0) as u64;
                HeaderValue::from_str(&format!("public, max-age={secs}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=1"))
            }
            Caching::Private => HeaderValue::from_static("private, no-cache"),
        }
    }
}

fn request(rendition: Option<&str>, file: &str, bytes: u64) -> ViewerRequest {
    let (msn, part) = parse_media_name(file).map_or((None, None), |(m, p)| (Some(m), p));
    ViewerRequest {
        rendition: rendition.map(str::to_owned),
        file: file.to_owned(),
        msn,
        part,
        bytes,
    }
}

fn into_result<T>(reply: Reply<T>, what: &str) -> Result<T, ApiError> {
    match reply {
        Reply::Ready(v) => Ok(v),
        Reply::Wait => Err(ApiError::unavailable(
            "not_ready",
            format!("{what} was not produced within {} s; retry", HOLD.as_secs()),
        )),
        Reply::NotFound => Err(ApiError::not_found(format!(
            "{what} does not exist (any more)"
        ))),
        Reply::BadRequest(why) => Err(ApiError::bad_request(why)),
    }
}

fn text(body: impl Into<Body>, content_type: &'static str, caching: Caching) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, caching.header()),
        ],
        body.into(),
    )
        .into_response()
}

/// A playlist or MPD answer: gzipped for a client that accepts it, with
/// the copy made for the previous identical answer under `key` (viewers
/// at the live edge are answered alike) instead of compressing it again;
/// without a key (an MPD, whose `publishTime` is the time of the request),
/// compressed for this answer alone.
fn playlist(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&str>,
    body: String,
    content_type: &'static str,
    caching: Caching,
) -> Response {
    if body.len() < super::gzip::MIN_BYTES || !super::gzip::accepted(headers) {
        return text(body, content_type, caching);
    }
    let body = Bytes::from(body);
    let gzipped = match key {
        Some(key) => state.live_gzip.compress(key, &body),
        None => super::gzip::compress(&body),
    };
    let Some(gzipped) = gzipped else {
        return text(body, content_type, caching);
    };
    let length = gzipped.len();
    let mut response = text(gzipped, content_type, caching);
    super::gzip::mark(response.headers_mut(), length);
    response
}

/// Media (init sections, parts, segments): immutable, see [`Caching`].
fn media(body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(SEGMENT)),
            (header::CACHE_CONTROL, Caching::Immutable.header()),
        ],
        body.into(),
    )
        .into_response()
}

/// `GET /live/{stream}/master.m3u8` and `/live/{stream}/manifest.mpd`.
#[utoipa::path(get, path = "/live/{stream}/{file}", tag = "playback",
    params(
        ("stream" = String, Path, description = "The stream's name"),
        ("file" = String, Path, description = "master.m3u8 or manifest.mpd"),
    ),
    security((), ("signed" = [])),
    responses(
        (status = 200, description = "The multivariant playlist or the MPD", content(("application/vnd.apple.mpegurl"), ("application/dash+xml"))),
        (status = 403, description = "forbidden: a missing or expired signature", body = ErrorEnvelope),
        (status = 404, description = "not_found: no such stream or file", body = ErrorEnvelope),
        (status = 429, description = "too_many_viewers", body = ErrorEnvelope),
        (status = 502, description = "The node that owns the stream did not answer", body = ErrorEnvelope),
        (status = 503, description = "Not playable yet", body = ErrorEnvelope),
    ))]
pub async fn top(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    let stream = match local_or_relayed(&state, &name, &uri, &headers, None).await? {
        Ok(stream) => stream,
        Err(relayed) => return Ok(relayed),
    };
    let session = viewer(&state, &name, &headers, connect).await;
    let session = session.as_ref();
    let response = match file.as_str() {
        "master.m3u8" => {
            let reply = answer(&stream, HOLD, session, |p| match p.multivariant() {
                Ok(reply) => reply,
                Err(err) => {
                    tracing::error!(%err, "live multivariant playlist");
                    Reply::NotFound
                }
            })
            .await?;
            let body = into_result(reply, "the stream's first segment")?;
            let key = format!("{name}/master.m3u8");
            let answer = playlist(
                &state,
                &headers,
                Some(&key),
                body,
                PLAYLIST,
                Caching::Latest,
            );
            starts_session(session, answer)
        }
        "manifest.mpd" => {
            let reply = answer(&stream, HOLD, session, |p| {
                match p.mpd(streamforge_actors::clock::now()) {
                    Ok(reply) => reply,
                    Err(err) => {
                        tracing::error!(%err, "live MPD");
                        Reply::NotFound
                    }
                }
            })
            .await?;
            let body = into_result(reply, "the stream's first segment")?;
            let answer = playlist(&state, &headers, None, body, MPD, Caching::Latest);
            starts_session(session, answer)
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "no file {file:?} in a live stream"
            )));
        }
    };
    Ok(tracked(session, request(None, &file, 0), response))
}

/// `GET /live/{stream}/{rendition}/{file}`: media playlists (with
/// `_HLS_msn`, `_HLS_part`, `_HLS_skip`), the init segment, segments and parts.
#[utoipa::path(get, path = "/live/{stream}/{rendition}/{file}", tag = "playback",
    params(
        ("stream" = String, Path, description = "The stream's name"),
        ("rendition" = String, Path, description = "A rendition (video, audio, a ladder rung)"),
        ("file" = String, Path, description = "media.m3u8, init.mp4, a segment or a part"),
        ("_HLS_msn" = Option<u64>, Query, description = "Blocking playlist reload: the media sequence number awaited"),
        ("_HLS_part" = Option<u32>, Query, description = "With _HLS_msn: the part awaited"),
        ("_HLS_skip" = Option<String>, Query, description = "YES or v2: a delta playlist"),
    ),
    security((), ("signed" = [])),
    responses(
        (status = 200, description = "A media playlist, init section, segment or part", content(("application/vnd.apple.mpegurl"), ("video/mp4"))),
        (status = 400, description = "bad_request: malformed blocking-reload parameters", body = ErrorEnvelope),
        (status = 403, description = "forbidden: a missing or expired signature", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 429, description = "too_many_viewers", body = ErrorEnvelope),
        (status = 502, description = "The node that owns the stream did not answer", body = ErrorEnvelope),
        (status = 503, description = "The part or segment did not come in time", body = ErrorEnvelope),
    ))]
pub async fn rendition_file(
    State(state): State<AppState>,
    Path((name, rendition, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    let media_file = (file != "media.m3u8").then_some((rendition.as_str(), file.as_str()));
    let stream = match local_or_relayed(&state, &name, &uri, &headers, media_file).await? {
        Ok(stream) => stream,
        Err(relayed) => return Ok(relayed),
    };
    let session = viewer(&state, &name, &headers, connect).await;
    let viewer = session.as_ref();
    if file == "media.m3u8" {
        let query = PlaylistQuery::parse(query.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let reply = answer(&stream, HOLD, viewer, |p| {
            p.media_playlist(&rendition, &query)
        })
        .await?;
        let mut seen = request(Some(&rendition), &file, 0);
        (seen.msn, seen.part) = (query.msn, query.part);
        let caching = match query.msn {
            Some(_) => Caching::Blocking {
                target: stream.segment_target(),
            },
            None => Caching::Latest,
        };
        let body = into_result(reply, "the requested media sequence")?;
        // Full and delta (`_HLS_skip`) playlists apart: both are asked
        // for at the live edge.
        let delta = if query.skip.is_some() {
            "delta"
        } else {
            "full"
        };
        let key = format!("{name}/{rendition}/{delta}");
        let response = playlist(&state, &headers, Some(&key), body, PLAYLIST, caching);
        return Ok(tracked(viewer, seen, response));
    }
    if file.starts_with("init") && file.ends_with(".mp4") {
        let reply = answer(&stream, HOLD, viewer, |p| {
            p.init_named(&rendition, &file)
                .map_or(Reply::NotFound, Reply::Ready)
        })
        .await?;
        let init = into_result(reply, "the init segment")?;
        let seen = request(Some(&rendition), &file, init.len() as u64);
        return Ok(tracked(viewer, seen, media(init)));
    }
    let Some((msn, part)) = parse_media_name(&file) else {
        return Err(ApiError::not_found(format!(
            "no file {file:?} in a live rendition"
        )));
    };
    if let Some(part) = part {
        let reply = answer(&stream, HOLD, viewer, |p| p.part(&rendition, msn, part)).await?;
        let part = into_result(reply, "the part")?;
        let seen = request(Some(&rendition), &file, part.len() as u64);
        return Ok(tracked(viewer, seen, media(part)));
    }
    let (first, complete) = into_result(
        answer(&stream, HOLD, viewer, |p| {
            p.segment_parts(&rendition, msn, 0)
        })
        .await?,
        "the segment",
    )?;
    let len: usize = first.iter().map(Bytes::len).sum();
    let seen = request(Some(&rendition), &file, len as u64);
    if complete {
        let body = Body::from_stream(stream::iter(first.into_iter().map(Ok::<_, std::io::Error>)));
        let mut response = media(body);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(tracked(viewer, seen, response));
    }
    // In progress: what exists now, then each part as it completes.
    let growing = stream::unfold(
        GrowingSegment {
            first: Some(first),
            live: stream.clone(),
            rendition,
            msn,
            sent: 0,
            done: false,
            viewer: session.clone(),
        },
        GrowingSegment::next,
    );
    // Its bytes are final as they are sent: a cache that stores the whole
    // response keeps the same segment everyone else gets (a transfer cut
    // short is an error, never stored).
    let response = media(Body::from_stream(futures::StreamExt::flatten(growing)));
    Ok(tracked(viewer, seen, response))
}

type Chunks = stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>>;

/// A segment response that follows the segment as it is written.
struct GrowingSegment {
    first: Option<Vec<Bytes>>,
    live: Arc<LiveStream>,
    rendition: String,
    msn: u64,
    sent: usize,
    done: bool,
    /// Told of the bytes sent after the first.
    viewer: Option<ViewerSession>,
}

impl GrowingSegment {
    fn chunk(&mut self, parts: Vec<Bytes>) -> Chunks {
        self.sent += parts.len();
        stream::iter(parts.into_iter().map(Ok).collect::<Vec<_>>())
    }

    async fn next(mut self) -> Option<(Chunks, Self)> {
        if let Some(parts) = self.first.take() {
            let chunk = self.chunk(parts);
            return Some((chunk, self));
        }
        if self.done {
            return None;
        }
        let (rendition, msn, sent) = (self.rendition.clone(), self.msn, self.sent);
        let reply = answer(&self.live, HOLD, self.viewer.as_ref(), |p| {
            match p.segment_parts(&rendition, msn, sent) {
                Reply::Ready((parts, false)) if parts.is_empty() => Reply::Wait,
                other => other,
            }
        })
        .await
        .unwrap_or(Reply::Wait);
        match reply {
            Reply::Ready((parts, complete)) => {
                if parts.is_empty() {
                    return None;
                }
                self.done = complete;
                if let Some(viewer) = &self.viewer {
                    viewer.sent(parts.iter().map(|p| p.len() as u64).sum());
                }
                let chunk = self.chunk(parts);
                Some((chunk, self))
            }
            // The body is cut short with an error, so the client sees a
            // failed transfer rather than a short segment.
            _ => {
                tracing::warn!(stream = %self.live.name(), msn, "segment stalled or evicted while sent");
                self.done = true;
                let error = std::io::Error::other("the live segment stopped growing");
                Some((stream::iter(vec![Err(error)]), self))
            }
        }
    }
}

/// `GET /time`: the server's clock as an `xs:dateTime`, the DASH
/// `UTCTiming` source (`urn:mpeg:dash:utc:http-xsdate:2014`).
#[utoipa::path(get, path = "/time", tag = "playback", responses(
    (status = 200, description = "Now, as an xs:dateTime", content_type = "text/plain", body = String),
))]
pub async fn time() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        streamforge_actors::clock::now().iso8601().to_string(),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamList {
    streams: Vec<StreamSummary>,
}

/// `GET /api/live`: every stream with a key or published since start-up.
#[utoipa::path(get, path = "/api/live", tag = "live", security((), ("bearer" = [])), responses(
    (status = 200, description = "The streams", body = StreamList),
    (status = 503, description = "database_unavailable", body = ErrorEnvelope),
))]
pub async fn list(State(state): State<AppState>) -> Result<Json<StreamList>, ApiError> {
    let streams = state
        .live
        .list()
        .await
        .map_err(|e| ApiError::database("live list", &e))?;
    let streams = streams
        .into_iter()
        .map(|s| sign_summary(&state, s))
        .collect();
    Ok(Json(StreamList { streams }))
}

/// `GET /api/live/{stream}`.
#[utoipa::path(get, path = "/api/live/{stream}", tag = "live",
    params(("stream" = String, Path, description = "The stream's name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The stream: codecs, bit rate, viewers, latency", body = StreamSummary),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StreamSummary>, ApiError> {
    state
        .live
        .summary(&name)
        .await
        .map_err(|e| ApiError::database("live stream", &e))?
        .map(|s| Json(sign_summary(&state, s)))
        .ok_or_else(|| ApiError::not_found(format!("no live stream {name:?}")))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ViewerList {
    viewers: Vec<ViewerSummary>,
}

/// `GET /api/live/{stream}/viewers`: the stream's playback sessions.
#[utoipa::path(get, path = "/api/live/{stream}/viewers", tag = "live",
    params(("stream" = String, Path, description = "The stream's name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Its playback sessions", body = ViewerList),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn viewers(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ViewerList>, ApiError> {
    find(&state, &name)?;
    Ok(Json(ViewerList {
        viewers: state.live.viewers().list(&name).await,
    }))
}

/// With signed playback, a stream's URLs carry their signature.
fn sign_summary(state: &AppState, mut summary: StreamSummary) -> StreamSummary {
    if let Some(signer) = &state.signer {
        summary.hls = signer.sign_url(&summary.hls);
        summary.dash = signer.sign_url(&summary.dash);
    }
    summary
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    asset: Option<String>,
    stream: Option<String>,
    /// Seconds the URLs stay valid; the configured `auth.playback_ttl` by default.
    ttl_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedUrls {
    hls: String,
    dash: String,
    /// `exp=…&sig=…`, for any other file of the asset or stream.
    query: String,
}

/// `POST /api/playback/sign` `{"asset": id}` or `{"stream": name}`: playback
/// URLs signed for `ttl_secs` (404 when playback is public: nothing to sign).
#[utoipa::path(post, path = "/api/playback/sign", tag = "live",
    request_body = SignRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Signed URLs", body = SignedUrls),
        (status = 400, description = "bad_request: neither or both of asset and stream", body = ErrorEnvelope),
        (status = 404, description = "not_found: playback is public, or no such asset", body = ErrorEnvelope),
    ))]
pub async fn sign(
    State(state): State<AppState>,
    Json(body): Json<SignRequest>,
) -> Result<Json<SignedUrls>, ApiError> {
    let Some(signer) = &state.signer else {
        return Err(ApiError::not_found(
            "playback is public (auth.playback = \"public\"): URLs need no signature",
        ));
    };
    let scope = match (&body.asset, &body.stream) {
        (Some(asset), None) => format!("vod/{asset}"),
        (None, Some(stream)) => format!("live/{stream}"),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of asset and stream",
            ));
        }
    };
    if !scope
        .split_once('/')
        .is_some_and(|(_, id)| valid_stream_name(id))
    {
        return Err(ApiError::bad_request("not a valid asset id or stream name"));
    }
    let ttl = body
        .ttl_secs
        .map(|s| std::time::Duration::from_secs(s.clamp(1, 7 * 24 * 3600)));
    let query = signer.query(&scope, ttl);
    Ok(Json(SignedUrls {
        hls: format!("/{scope}/master.m3u8?{query}"),
        dash: format!("/{scope}/manifest.mpd?{query}"),
        query,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    stream: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    stream: String,
    /// Shown once; only its digest is stored.
    key: String,
    /// What to give an encoder: server URL and stream-name field.
    rtmp_url: String,
    rtmp_stream_name: String,
    /// The whole RTSP push URL (ANNOUNCE/RECORD), when RTSP is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtsp_url: Option<String>,
    /// The whole SRT push URL (MPEG-TS, the key in the stream id), when
    /// SRT is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    srt_url: Option<String>,
    /// The WHIP endpoint (a path on this server), the key as its bearer
    /// token, when WebRTC ingest is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    whip_url: Option<String>,
    hls: String,
    dash: String,
}

/// `POST /api/live/keys` `{"stream": "name"}`: creates (or rotates) the
/// stream's publish key.
#[utoipa::path(post, path = "/api/live/keys", tag = "live",
    request_body = NewKey,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "The key, shown once, with the URLs to publish to", body = CreatedKey),
        (status = 400, description = "bad_request: an invalid stream name", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn create_key(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    if !valid_stream_name(&body.stream) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_stream_name",
            "a stream name is 1 to 64 characters of [A-Za-z0-9_-]",
        ));
    }
    let key = state
        .live
        .db()
        .create_stream_key(&body.stream)
        .await
        .map_err(|e| ApiError::database("create stream key", &e))?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':').map_or(Some(h), |(host, _)| Some(host)))
        .unwrap_or("localhost")
        .to_owned();
    let port = state.rtmp_port.unwrap_or(1935);
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            rtmp_url: format!("rtmp://{host}:{port}/live"),
            rtmp_stream_name: format!("{}?key={key}", body.stream),
            rtsp_url: state
                .rtsp_port
                .map(|p| format!("rtsp://{host}:{p}/live/{}?key={key}", body.stream)),
            srt_url: state
                .srt_port
                .map(|p| format!("srt://{host}:{p}?streamid=publish:live/{key}")),
            whip_url: state
                .whip
                .as_ref()
                .map(|_| format!("/whip/{}", body.stream)),
            hls: format!("/live/{}/master.m3u8", body.stream),
            dash: format!("/live/{}/manifest.mpd", body.stream),
            stream: body.stream,
            key,
        }),
    ))
}

/// `GET /api/live/keys`: the streams that have a key (never the keys).
#[utoipa::path(get, path = "/api/live/keys", tag = "live", security((), ("bearer" = [])), responses(
    (status = 200, description = "The streams with a key", body = Vec<streamforge_actors::live::StreamKeyInfo>),
    (status = 503, description = "database_unavailable", body = ErrorEnvelope),
))]
pub async fn keys(
    State(state): State<AppState>,
) -> Result<Json<Vec<streamforge_actors::live::StreamKeyInfo>>, ApiError> {
    state
        .live
        .db()
        .stream_keys()
        .await
        .map(Json)
        .map_err(|e| ApiError::database("list stream keys", &e))
}

/// `DELETE /api/live/keys/{stream}`: revokes the key and ends a publish
/// that used it.
#[utoipa::path(delete, path = "/api/live/keys/{stream}", tag = "live",
    params(("stream" = String, Path, description = "The stream's name")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "not_found: the stream has no key", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(stream): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .live
        .db()
        .revoke_stream_key(&stream)
        .await
        .map_err(|e| ApiError::database("revoke stream key", &e))?;
    if !revoked {
        return Err(ApiError::not_found(format!("stream {stream:?} has no key")));
    }
    state.live.kick(&stream);
    Ok(StatusCode::NO_CONTENT)
}

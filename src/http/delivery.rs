//! Serving stored media with the HTTP semantics players and CDNs rely on:
//! `Range` (one range; 206 / 416), `HEAD`, `ETag` + `If-None-Match` (304),
//! `Last-Modified` + `If-Modified-Since`, `If-Range`, `Cache-Control` by kind
//! of file, and the right `Content-Type`.
//!
//! Segments and init segments never change once written. On local storage
//! they are served from read-only mappings of their files
//! (`Storage::open_mapped`): every viewer shares the page cache's pages and
//! the kernel copies them into the socket, once. From a remote store, small
//! ones are kept in the [`ObjectCache`] (shared `Bytes`, one copy for every
//! viewer). Playlists and manifests are cached for half a second (they may
//! still grow); everything else, and anything too large for the cache,
//! streams from storage in bounded chunks without being read whole.

use std::ops::Range;
use std::time::SystemTime;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use streamforge_actors::storage::{ObjectInfo, ObjectKey, Storage, StorageError};

use super::cache::{CachedObject, ObjectCache};
use super::error::ApiError;

/// How long a cached playlist or manifest is served before storage is read
/// again: within the `max-age=1` every client and CDN is already allowed.
pub(crate) const MANIFEST_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(500);

/// How a file may be cached downstream, by what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Media segments, parts and init segments: written once, never changed.
    Immutable,
    /// Playlists and manifests that may still grow (EVENT playlists, MPDs).
    Manifest,
    /// Anything else (posters, storyboards, captions).
    Asset,
}

impl Kind {
    fn cache_control(self) -> &'static str {
        match self {
            Kind::Immutable => "public, max-age=31536000, immutable",
            // Short enough that a growing VOD playlist is seen within a
            // segment; long enough that a CDN collapses a crowd of viewers.
            Kind::Manifest => "public, max-age=1",
            Kind::Asset => "public, max-age=3600",
        }
    }
}

/// Content type and caching kind from a file name's extension.
pub fn classify(name: &str) -> (&'static str, Kind) {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "m3u8" => ("application/vnd.apple.mpegurl", Kind::Manifest),
        "mpd" => ("application/dash+xml", Kind::Manifest),
        "m4s" => ("video/iso.segment", Kind::Immutable),
        "mp4" | "m4v" | "cmfv" => ("video/mp4", Kind::Immutable),
        "m4a" | "cmfa" => ("audio/mp4", Kind::Immutable),
        "ts" => ("video/mp2t", Kind::Immutable),
        "aac" => ("audio/aac", Kind::Immutable),
        "vtt" => ("text/vtt; charset=utf-8", Kind::Asset),
        "webp" => ("image/webp", Kind::Asset),
        "avif" => ("image/avif", Kind::Asset),
        "jpg" | "jpeg" => ("image/jpeg", Kind::Asset),
        "png" => ("image/png", Kind::Asset),
        "json" => ("application/json", Kind::Asset),
        _ => ("application/octet-stream", Kind::Asset),
    }
}

/// What the response describes, whether its bytes come from memory or storage.
#[derive(Debug)]
struct Representation {
    size: u64,
    etag: HeaderValue,
    last_modified: SystemTime,
}

impl Representation {
    fn of(info: &ObjectInfo) -> Self {
        // A strong validator: the backend's entity tag, or size and mtime.
        let tag = match &info.e_tag {
            Some(tag) => tag.trim_matches('"').to_owned(),
            None => {
                let mtime = info
                    .last_modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                format!("{:x}-{mtime:x}", info.size)
            }
        };
        let etag = HeaderValue::from_str(&format!("\"{tag}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Representation {
            size: info.size,
            etag,
            last_modified: info.last_modified,
        }
    }
}

/// A cached copy's validators and base headers for one content type and
/// kind, made once per copy (`CachedObject::prepared`): a playlist reload
/// then clones a header map instead of formatting its `ETag` and
/// `Last-Modified` and hashing every header into a new map.
#[derive(Debug)]
pub(crate) struct Prepared {
    rep: Representation,
    content_type: HeaderValue,
    kind: Kind,
    base: HeaderMap,
}

impl Prepared {
    fn new(info: &ObjectInfo, content_type: HeaderValue, kind: Kind) -> Self {
        let rep = Representation::of(info);
        let base = base_headers(&rep, content_type.clone(), kind);
        Prepared {
            rep,
            content_type,
            kind,
            base,
        }
    }
}

/// Serves `key` from `storage` (through `cache` for immutable objects) as a
/// response to a request with `method` and `headers`.
pub async fn serve(
    storage: &Storage,
    cache: &ObjectCache,
    key: &ObjectKey,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (content_type, kind) = classify(key.as_str());
    let content_type = HeaderValue::from_static(content_type);
    serve_as(storage, cache, key, content_type, kind, method, headers).await
}

/// [`serve`] with the content type and kind given by the caller (an
/// original upload keeps the type its uploader declared).
pub async fn serve_as(
    storage: &Storage,
    cache: &ObjectCache,
    key: &ObjectKey,
    content_type: HeaderValue,
    kind: Kind,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let max_age = match kind {
        // A local segment is served from its file's mapping: the page cache
        // is its memory cache, with no copy of its own.
        Kind::Immutable if storage.is_local() => None,
        Kind::Immutable => Some(None),
        Kind::Manifest => Some(Some(MANIFEST_MAX_AGE)),
        Kind::Asset => None,
    };
    if let Some(max_age) = max_age
        && let Some(object) = cache
            .get_or_load(storage, key, max_age)
            .await
            .map_err(storage_error)?
    {
        return Ok(respond_from_memory(
            object,
            content_type,
            kind,
            method,
            headers,
        ));
    }
    let opened = if kind == Kind::Immutable {
        storage.open_mapped(key).await
    } else {
        storage.open(key).await
    };
    let Some(object) = opened.map_err(storage_error)? else {
        return Err(ApiError::not_found("no such file"));
    };
    let rep = Representation::of(&object.info);
    let base = base_headers(&rep, content_type, kind);
    let range = match preconditions(&rep, headers) {
        Outcome::NotModified => return Ok(not_modified(base)),
        Outcome::Unsatisfiable => return Ok(unsatisfiable(base, rep.size)),
        Outcome::Full => None,
        Outcome::Partial(range) => Some(range),
    };
    if *method == Method::HEAD {
        return Ok(head_response(base, &rep, range));
    }
    let read = match object.read(range.clone()).await {
        Ok(read) => read,
        // A remote object changed size between HEAD and GET: a concurrent rewrite.
        Err(StorageError::RangeNotSatisfiable { size, .. }) => {
            return Ok(unsatisfiable(base, size));
        }
        Err(err) => return Err(storage_error(err)),
    };
    let served = read.range.clone();
    let body = Body::from_stream(read.body.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok(with_body(base, range.map(|_| served), rep.size, body))
}

/// Serves bytes already in memory (a cached segment, or a live part).
///
/// A playlist or manifest whose client accepts gzip gets the cached
/// object's compressed copy, made once for every request while it is
/// cached (compressing it per request cost ten times the rest of the
/// request, `benches/middleware_layers.rs`), with a weak `ETag` as the
/// gzip variant of the same content; the compression layer then leaves it
/// alone. Ranges are served from the identity bytes.
pub fn respond_from_memory(
    object: CachedObject,
    content_type: HeaderValue,
    kind: Kind,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let prepared = object.prepared(|| Prepared::new(&object.info, content_type.clone(), kind));
    // Another type for the same bytes (not a case the routes make): no sharing.
    let other;
    let prepared = if prepared.kind == kind && prepared.content_type == content_type {
        prepared
    } else {
        other = Prepared::new(&object.info, content_type, kind);
        &other
    };
    let rep = &prepared.rep;
    let mut base = prepared.base.clone();
    let gzipped = (kind == Kind::Manifest
        && !headers.contains_key(header::RANGE)
        && rep.size >= super::gzip::MIN_BYTES as u64
        && super::gzip::accepted(headers))
    .then(|| object.gzipped())
    .flatten();
    if let Some(gzipped) = gzipped {
        base.insert(header::ETAG, weak(&rep.etag));
        base.remove(header::ACCEPT_RANGES);
        if let Outcome::NotModified = preconditions(rep, headers) {
            return not_modified(base);
        }
        super::gzip::mark(&mut base, gzipped.len());
        if *method == Method::HEAD {
            return response(StatusCode::OK, base, Body::empty());
        }
        return response(StatusCode::OK, base, Body::from(gzipped.clone()));
    }
    let range = match preconditions(rep, headers) {
        Outcome::NotModified => return not_modified(base),
        Outcome::Unsatisfiable => return unsatisfiable(base, rep.size),
        Outcome::Full => None,
        Outcome::Partial(range) => Some(range),
    };
    if *method == Method::HEAD {
        return head_response(base, rep, range);
    }
    let bytes = match &range {
        // Both ends were validated against the object's size.
        Some(range) => object.bytes.slice(range.start as usize..range.end as usize),
        None => object.bytes.clone(),
    };
    with_body(base, range, rep.size, Body::from(bytes))
}

/// `W/"tag"` for a strong `"tag"`: the gzip variant's validator.
fn weak(etag: &HeaderValue) -> HeaderValue {
    let mut tag = Vec::with_capacity(etag.len() + 2);
    tag.extend_from_slice(b"W/");
    tag.extend_from_slice(etag.as_bytes());
    HeaderValue::from_bytes(&tag).unwrap_or_else(|_| etag.clone())
}

enum Outcome {
    NotModified,
    Unsatisfiable,
    Full,
    Partial(Range<u64>),
}

/// RFC 9110 §13.2.2: evaluate If-None-Match (or, without it,
/// If-Modified-Since), then If-Range, then Range.
fn preconditions(rep: &Representation, headers: &HeaderMap) -> Outcome {
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(candidates) => etag_matches(candidates, &rep.etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| truncate_to_seconds(rep.last_modified) <= since),
    };
    if not_modified {
        return Outcome::NotModified;
    }
    let Some(range) = headers.get(header::RANGE) else {
        return Outcome::Full;
    };
    // RFC 9110 §13.1.5: a Range with a stale If-Range gets the whole representation.
    if headers
        .get(header::IF_RANGE)
        .is_some_and(|if_range| if_range.as_bytes() != rep.etag.as_bytes())
    {
        return Outcome::Full;
    }
    match byte_range(range, rep.size) {
        RangeAnswer::Full => Outcome::Full,
        RangeAnswer::Partial(range) => Outcome::Partial(range),
        RangeAnswer::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

/// What a `Range` header asks of a representation of `size` bytes.
pub(crate) enum RangeAnswer {
    /// The whole representation: another range unit, or several ranges.
    Full,
    /// One range, end exclusive.
    Partial(Range<u64>),
    /// 416, with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// The one `Range` parser of the server (RFC 9110 §14.1.2, with
/// `http-range-header`): a single range is served, several ranges get the
/// whole representation (§14.2 allows it), another unit is ignored.
pub(crate) fn byte_range(range: &HeaderValue, size: u64) -> RangeAnswer {
    let Ok(range) = range.to_str() else {
        return RangeAnswer::Unsatisfiable;
    };
    if !range.trim_start().starts_with("bytes=") {
        // RFC 9110 §14.2: ignore a range unit we do not support.
        return RangeAnswer::Full;
    }
    match http_range_header::parse_range_header(range).map(|parsed| parsed.validate(size)) {
        Ok(Ok(ranges)) if ranges.len() == 1 => {
            let range = &ranges[0];
            if size == 0 || range.start() > range.end() {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial(*range.start()..range.end() + 1)
            }
        }
        Ok(Ok(_)) => RangeAnswer::Full,
        // A suffix longer than the representation selects all of it (§14.1.3).
        Ok(Err(http_range_header::RangeUnsatisfiableError::FileSuffixOutOfBounds)) if size > 0 => {
            RangeAnswer::Partial(0..size)
        }
        _ => RangeAnswer::Unsatisfiable,
    }
}

fn etag_matches(candidates: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(candidates) = candidates.to_str() else {
        return false;
    };
    let ours = etag.as_bytes();
    candidates.split(',').map(str::trim).any(|candidate| {
        // Weak comparison (RFC 9110 §13.1.2): W/ prefixes do not matter.
        candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == ours
    })
}

fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)
}

fn base_headers(rep: &Representation, content_type: HeaderValue, kind: Kind) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control()),
    );
    headers.insert(header::ETAG, rep.etag.clone());
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(rep.last_modified)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if kind == Kind::Manifest && rep.size >= super::gzip::MIN_BYTES as u64 {
        // Served gzipped to clients that accept it (by us or the
        // compression layer): every answer says so, 304s included.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers
}

/// A response with exactly `headers` (axum's tuple responses would hash
/// every header into a new map again).
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn not_modified(mut headers: HeaderMap) -> Response {
    // RFC 9110 §15.4.5: a 304 carries validators and caching headers, no content headers.
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::ACCEPT_RANGES);
    response(StatusCode::NOT_MODIFIED, headers, Body::empty())
}

fn unsatisfiable(headers: HeaderMap, size: u64) -> Response {
    let mut response = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the requested range is not within the {size} bytes of this file"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    if let Some(etag) = headers.get(header::ETAG) {
        response.headers_mut().insert(header::ETAG, etag.clone());
    }
    response
}

fn content_range(range: &Range<u64>, size: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1)).ok()
}

fn head_response(
    mut headers: HeaderMap,
    rep: &Representation,
    range: Option<Range<u64>>,
) -> Response {
    let (status, length) = match &range {
        Some(range) => {
            if let Some(value) = content_range(range, rep.size) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, range.end - range.start)
        }
        None => (StatusCode::OK, rep.size),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response(status, headers, Body::empty())
}

fn with_body(mut headers: HeaderMap, range: Option<Range<u64>>, size: u64, body: Body) -> Response {
    let (status, length) = match &range {
        Some(range) => {
            if let Some(value) = content_range(range, size) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, range.end - range.start)
        }
        None => (StatusCode::OK, size),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response(status, headers, body)
}

fn storage_error(err: StorageError) -> ApiError {
    match err {
        StorageError::NotFound(_) => ApiError::not_found("no such file"),
        StorageError::InvalidKey { .. } => ApiError::bad_request(err.to_string()),
        other => {
            tracing::error!(err = %other, "storage read failed");
            ApiError::unavailable("storage_unavailable", "storage did not answer; retry later")
        }
    }
}

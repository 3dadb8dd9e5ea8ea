//! The growing source: uploads still arriving, readable by ffmpeg and
//! ffprobe over HTTP on loopback, so processing starts with the first bytes.
//!
//! `GET /uploads/{id}?secret=…` answers with the upload's full length and
//! honours `Range` (ffmpeg seeks by range, e.g. to an MP4 index at the end).
//! The body is sent as far as the bytes are durable and then held: each
//! time the upload's session commits more, the response goes on, until the
//! range is complete. A finished upload reads from its stored original (the
//! append file, renamed into storage, stays readable through the open
//! handle). The listener is bound to 127.0.0.1 only and every request needs
//! the per-process secret, so other local users cannot read uploads.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::delivery::{RangeAnswer, byte_range};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use streamforge_actors::assets::keys;
use streamforge_actors::events::{Event, EventBus};
use streamforge_actors::storage::Storage;
use streamforge_actors::transcode::GrowingSource;
use streamforge_actors::uploads::{UploadError, Uploads};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Bytes per body chunk.
const CHUNK: usize = 256 * 1024;
/// How long a read waits for the upload to move before checking again.
const RECHECK: Duration = Duration::from_secs(15);
/// A read held this long without a new byte fails: the upload stalled.
const STALLED: Duration = Duration::from_secs(3600);

#[derive(Clone)]
struct SourceState {
    uploads: Uploads,
    storage: Storage,
    events: EventBus,
    secret: String,
}

/// Binds the loopback listener and makes the secret; the transcoder gets
/// the returned [`GrowingSource`].
pub async fn bind() -> std::io::Result<(TcpListener, GrowingSource)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let source = GrowingSource {
        base_url: format!("http://{addr}"),
        secret: uuid::Uuid::new_v4().simple().to_string(),
    };
    Ok((listener, source))
}

/// Serves the growing source until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    source: GrowingSource,
    uploads: Uploads,
    storage: Storage,
    events: EventBus,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/uploads/{id}", get(read))
        .with_state(SourceState {
            uploads,
            storage,
            events,
            secret: source.secret,
        });
    // At shutdown the reads in flight are dropped, not awaited: they wait
    // for bytes that will not come, and their readers (ffmpeg children)
    // are killed right after.
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(err) = served {
                tracing::error!(%err, "growing source stopped");
            }
        }
        () = shutdown.cancelled() => {}
    }
}

#[derive(Deserialize)]
struct Secret {
    secret: String,
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn read(
    State(state): State<SourceState>,
    Path(id): Path<String>,
    Query(secret): Query<Secret>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if secret.secret != state.secret {
        return plain(StatusCode::FORBIDDEN, "wrong secret");
    }
    // Subscribed before the first look, so no commit goes unnoticed.
    let events = state.events.subscribe();
    let status = match state.uploads.status(&id).await {
        Ok(status) => status,
        Err(UploadError::NotFound(_)) => return plain(StatusCode::NOT_FOUND, "no such upload"),
        Err(err) => return plain(StatusCode::GONE, err.to_string()),
    };
    let Some(length) = status.length else {
        return plain(StatusCode::CONFLICT, "the upload's length is not known yet");
    };
    let range = match headers.get(header::RANGE).map(|r| byte_range(r, length)) {
        None | Some(RangeAnswer::Full) => None,
        Some(RangeAnswer::Partial(range)) => Some((range.start, range.end)),
        Some(RangeAnswer::Unsatisfiable) => {
            let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
    };
    let (start, end) = range.unwrap_or((0, length));
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start);
    if range.is_some() {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{length}", end - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let reader = Growing {
            state,
            id,
            events,
            file: None,
            parts: None,
            known: None,
            pos: start,
            end,
        };
        Body::from_stream(futures::stream::unfold(reader, Growing::next))
    };
    builder
        .body(body)
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// One response body following an upload as it grows.
struct Growing {
    state: SourceState,
    id: String,
    events: broadcast::Receiver<Event>,
    /// The open file, which file it is, and the position it is read at.
    file: Option<(PathBuf, tokio::fs::File, u64)>,
    /// A final concatenation still arriving: its partials, in order, with
    /// their lengths (loaded on first use).
    parts: Option<Vec<(String, u64)>>,
    /// The durable span last found: bytes `[from, to)` of the upload are at
    /// `file_at…` of `path`. Reads inside it need no new status lookup.
    known: Option<Known>,
    pos: u64,
    end: u64,
}

struct Known {
    path: PathBuf,
    from: u64,
    to: u64,
    file_at: u64,
}

/// Where the next bytes come from.
enum Place {
    /// Read `path` at `at`, at most `max` bytes.
    Read { path: PathBuf, at: u64, max: u64 },
    /// Not durable yet.
    Wait,
}

impl Growing {
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        if self.pos >= self.end {
            return None;
        }
        match self.chunk().await {
            Ok(bytes) => {
                self.pos += bytes.len() as u64;
                Some((Ok(bytes), self))
            }
            Err(err) => {
                tracing::info!(upload = %self.id, %err, "growing source read ended");
                // The error ends the body; the next poll ends the stream.
                self.end = self.pos;
                Some((Err(err), self))
            }
        }
    }

    /// The next bytes at `pos`, waiting until they are durable.
    async fn chunk(&mut self) -> std::io::Result<Bytes> {
        let waited_since = tokio::time::Instant::now();
        loop {
            let place = match &self.known {
                Some(k) if (k.from..k.to).contains(&self.pos) => Place::Read {
                    path: k.path.clone(),
                    at: k.file_at + (self.pos - k.from),
                    max: k.to - self.pos,
                },
                _ => self.place().await?,
            };
            if let Place::Read { path, at, max } = place {
                self.known = Some(Known {
                    path: path.clone(),
                    from: self.pos,
                    to: self.pos + max,
                    file_at: at,
                });
                let want = max.min(self.end - self.pos).min(CHUNK as u64) as usize;
                return self.read_at(path, at, want).await;
            }
            if waited_since.elapsed() > STALLED {
                return Err(std::io::Error::other("the upload stalled"));
            }
            // Wait for this upload (or one of its partials) to commit more.
            let watched: Vec<String> = std::iter::once(self.id.clone())
                .chain(self.parts.iter().flatten().map(|(p, _)| p.clone()))
                .collect();
            let _ = tokio::time::timeout(RECHECK, async {
                loop {
                    match self.events.recv().await {
                        Ok(event) if watched.iter().any(|id| event.concerns(id)) => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            })
            .await;
        }
    }

    /// Where the byte at `pos` is, if it is durable.
    async fn place(&mut self) -> std::io::Result<Place> {
        let gone = |e: UploadError| std::io::Error::other(format!("the upload is gone: {e}"));
        let status = self.state.uploads.status(&self.id).await.map_err(gone)?;
        let length = status.length.unwrap_or(0);
        if status.offset == length && length > 0 {
            // Complete: the stored original (or the append file, if the
            // rename has not happened yet).
            let path = self.own_path(status.asset_id.as_deref()).await?;
            return Ok(Place::Read {
                path,
                at: self.pos,
                max: length - self.pos,
            });
        }
        if self.parts.is_none() {
            let record = self.state.uploads.record(&self.id).await.map_err(gone)?;
            let mut parts = Vec::with_capacity(record.parts.len());
            for part in &record.parts {
                let partial = self.state.uploads.record(part).await.map_err(gone)?;
                parts.push((part.clone(), partial.length.unwrap_or(0)));
            }
            self.parts = Some(parts);
        }
        let parts = self.parts.as_deref().unwrap_or(&[]);
        if parts.is_empty() {
            if self.pos < status.offset {
                let path = self.own_path(None).await?;
                return Ok(Place::Read {
                    path,
                    at: self.pos,
                    max: status.offset - self.pos,
                });
            }
            return Ok(Place::Wait);
        }
        // A final concatenation: the partial holding `pos`.
        let mut start = 0u64;
        for (part, part_length) in parts {
            if self.pos < start + part_length {
                let inner = self.pos - start;
                let durable = self.state.uploads.status(part).await.map_err(gone)?.offset;
                if inner < durable {
                    return Ok(Place::Read {
                        path: self.state.uploads.file_path(part),
                        at: inner,
                        max: durable - inner,
                    });
                }
                return Ok(Place::Wait);
            }
            start += part_length;
        }
        Err(std::io::Error::other("read past the partial uploads"))
    }

    async fn read_at(&mut self, path: PathBuf, at: u64, want: usize) -> std::io::Result<Bytes> {
        let reuse = matches!(&self.file, Some((p, _, pos)) if *p == path && *pos == at);
        if !reuse {
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(SeekFrom::Start(at)).await?;
            self.file = Some((path, file, at));
        }
        let Some((_, file, pos)) = self.file.as_mut() else {
            return Err(std::io::Error::other("no file"));
        };
        let mut buffer = BytesMut::zeroed(want);
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the upload's file is shorter than its offset",
            ));
        }
        buffer.truncate(n);
        *pos += n as u64;
        Ok(buffer.freeze())
    }

    /// The upload's append file, or its stored original once it was moved.
    async fn own_path(&self, asset: Option<&str>) -> std::io::Result<PathBuf> {
        let append = self.state.uploads.file_path(&self.id);
        if tokio::fs::try_exists(&append).await.unwrap_or(false)
            && tokio::fs::metadata(&append)
                .await
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            return Ok(append);
        }
        let asset = match asset {
            Some(asset) => Some(asset.to_owned()),
            None => self
                .state
                .uploads
                .status(&self.id)
                .await
                .ok()
                .and_then(|s| s.asset_id),
        };
        asset
            .and_then(|asset| keys::original(&asset).ok())
            .and_then(|key| self.state.storage.local_path(&key))
            .ok_or_else(|| std::io::Error::other("the upload's bytes are not on local storage"))
    }
}

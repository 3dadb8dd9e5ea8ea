//! Reading an upload while it arrives (the growing source): the bytes of
//! a range as they become durable, waiting for each commit of the upload's
//! session (or of its partial uploads, for a final concatenation) and
//! reading its append file or its pieces in the store, then its stored
//! original once it is complete.
//! `src/http/source.rs` serves this to ffmpeg and ffprobe over loopback
//! HTTP, so processing starts with the first bytes.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::broadcast;

use super::{UploadError, UploadRecord, Uploads};
use crate::assets::keys;
use crate::events::Event;
use crate::storage::ObjectKey;

/// Bytes per read.
const CHUNK: usize = 256 * 1024;
/// How long a read waits for the upload to move before checking again.
const RECHECK: Duration = Duration::from_secs(15);
/// A read held this long without a new byte fails: the upload stalled.
const STALLED: Duration = Duration::from_secs(3600);

/// An upload opened for reading as it grows.
pub struct GrowingUpload {
    uploads: Uploads,
    id: String,
    events: broadcast::Receiver<Event>,
    /// The upload's length.
    pub length: Option<u64>,
}

impl Uploads {
    /// Opens upload `id` for reading while it arrives. Its length may not
    /// be known yet (a deferred length).
    pub async fn open_growing(&self, id: &str) -> Result<GrowingUpload, UploadError> {
        // Subscribed before the first look, so no commit goes unnoticed.
        let events = self.events.subscribe();
        let status = self.status(id).await?;
        Ok(GrowingUpload {
            uploads: self.clone(),
            id: id.to_owned(),
            events,
            length: status.length,
        })
    }
}

impl GrowingUpload {
    /// Bytes `range` of the upload, each chunk as soon as it is durable. An
    /// upload that stalls for an hour, or goes away, ends the stream with
    /// an error.
    pub fn read(self, range: Range<u64>) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
        let reader = GrowingRead {
            uploads: self.uploads,
            id: self.id,
            events: self.events,
            file: None,
            parts: None,
            known: None,
            pos: range.start,
            end: range.end,
        };
        futures::stream::unfold(reader, GrowingRead::next)
    }
}

/// One response body following an upload as it grows.
struct GrowingRead {
    uploads: Uploads,
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
    path: Origin,
    from: u64,
    to: u64,
    file_at: u64,
}

/// Where an upload's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// An append file, or an original in local storage.
    File(PathBuf),
    /// The original in a remote store.
    Stored(ObjectKey),
}

/// Where byte `pos` of upload `record`, still arriving, is: in its
/// append file or in one of its pieces in the store, if it is durable.
fn durable_place(uploads: &Uploads, record: &UploadRecord, pos: u64) -> std::io::Result<Place> {
    if pos >= record.offset {
        return Ok(Place::Wait);
    }
    let Some(pieces) = &record.pieces else {
        return Ok(Place::Read {
            path: Origin::File(uploads.file_path(&record.id)),
            at: pos,
            max: record.offset - pos,
        });
    };
    let (piece, span) = pieces
        .locate(pos, record.offset)
        .ok_or_else(|| std::io::Error::other("the upload's pieces do not cover its offset"))?;
    let key = keys::upload_piece(&record.id, piece.start, &piece.writer)
        .map_err(std::io::Error::other)?;
    Ok(Place::Read {
        path: Origin::Stored(key),
        at: pos - span.start,
        max: span.end - pos,
    })
}

/// Where the next bytes come from.
enum Place {
    /// Read `path` at `at`, at most `max` bytes.
    Read { path: Origin, at: u64, max: u64 },
    /// Not durable yet.
    Wait,
}

impl GrowingRead {
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
        let mut retries = 0;
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
                match self.read_at(path.clone(), at, want).await {
                    Ok(bytes) => return Ok(bytes),
                    // A piece removed once the upload was stored: the
                    // original has the bytes now.
                    Err(err) if matches!(path, Origin::Stored(_)) && retries < 2 => {
                        tracing::debug!(upload = %self.id, %err, "reading the upload again from where it is now");
                        self.known = None;
                        retries += 1;
                        continue;
                    }
                    Err(err) => return Err(err),
                }
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
        let record = self.uploads.record(&self.id).await.map_err(gone)?;
        let length = record.length.unwrap_or(0);
        let stored = record.completed_at_ms.is_some() && record.asset_id.is_some();
        let appended = record.pieces.is_none() && record.offset == length && length > 0;
        if stored || appended {
            // Complete: the stored original (or the append file, if the
            // rename has not happened yet).
            let path = self.own_path(record.asset_id.as_deref()).await?;
            return Ok(Place::Read {
                path,
                at: self.pos,
                max: length.saturating_sub(self.pos),
            });
        }
        if self.parts.is_none() {
            let mut parts = Vec::with_capacity(record.parts.len());
            for part in &record.parts {
                let partial = self.uploads.record(part).await.map_err(gone)?;
                parts.push((part.clone(), partial.length.unwrap_or(0)));
            }
            self.parts = Some(parts);
        }
        let parts = self.parts.as_deref().unwrap_or(&[]);
        if parts.is_empty() {
            return durable_place(&self.uploads, &record, self.pos);
        }
        // A final concatenation: the partial holding `pos`.
        let mut start = 0u64;
        for (part, part_length) in parts {
            if self.pos < start + part_length {
                let partial = self.uploads.record(part).await.map_err(gone)?;
                return durable_place(&self.uploads, &partial, self.pos - start);
            }
            start += part_length;
        }
        Err(std::io::Error::other("read past the partial uploads"))
    }

    async fn read_at(&mut self, path: Origin, at: u64, want: usize) -> std::io::Result<Bytes> {
        let path = match path {
            Origin::File(path) => path,
            Origin::Stored(key) => return self.read_stored(&key, at, want).await,
        };
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

    /// `want` bytes at `at` of a stored object (one ranged `GET`).
    async fn read_stored(&self, key: &ObjectKey, at: u64, want: usize) -> std::io::Result<Bytes> {
        let read = self
            .uploads
            .storage
            .read(key, Some(at..at + want as u64))
            .await
            .map_err(std::io::Error::other)?;
        let mut buffer = BytesMut::with_capacity(want);
        let mut body = read.body;
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk.map_err(std::io::Error::other)?);
        }
        if buffer.is_empty() {
            return Err(std::io::Error::other(
                "the stored original is shorter than the upload",
            ));
        }
        Ok(buffer.freeze())
    }

    /// The upload's append file, or its stored original once it was moved
    /// (a local file, or an object in a remote store).
    async fn own_path(&self, asset: Option<&str>) -> std::io::Result<Origin> {
        let append = self.uploads.file_path(&self.id);
        if tokio::fs::try_exists(&append).await.unwrap_or(false)
            && tokio::fs::metadata(&append)
                .await
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            return Ok(Origin::File(append));
        }
        let asset = match asset {
            Some(asset) => Some(asset.to_owned()),
            None => self
                .uploads
                .status(&self.id)
                .await
                .ok()
                .and_then(|s| s.asset_id),
        };
        let key = asset
            .and_then(|asset| keys::original(&asset).ok())
            .ok_or_else(|| std::io::Error::other("the upload has no stored original"))?;
        Ok(match self.uploads.storage.local_path(&key) {
            Some(path) => Origin::File(path),
            None => Origin::Stored(key),
        })
    }
}

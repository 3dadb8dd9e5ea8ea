//! Where an upload session writes the bytes of an upload in progress: an
//! append file on this node's disk when storage is local, or pieces in the
//! object store when it is remote, so that any node can take the upload
//! over and read it while it arrives.
//!
//! Both are written the same way by the session: `append` the bytes of the
//! open PATCH, `prepare` makes them durable in the spool (fsync, or the
//! objects written), the session records the new offset in the database,
//! then `settled` makes the spool's durable state the new one — or
//! `discard` goes back to it (a failed check, a refused commit).

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::pieces::{PIECE_MIN, Piece, Pieces};
use super::{UploadError, UploadRecord, Uploads};
use crate::assets::keys;
use crate::storage::Storage;

/// Bytes of an open PATCH kept in memory before they are written to the
/// store as a sealed piece (they count once the PATCH commits).
pub(super) const STAGE_BYTES: u64 = 6 << 20;

pub(super) enum Spool {
    File(FileSpool),
    Bucket(BucketSpool),
}

pub(super) struct FileSpool {
    file: tokio::fs::File,
    path: PathBuf,
    durable: u64,
    pending: u64,
}

/// Pieces of the upload in the store; see [`super::pieces`].
pub(super) struct BucketSpool {
    storage: Storage,
    upload: String,
    /// This session's name in its pieces' keys.
    writer: String,
    durable: u64,
    /// The pieces that hold the durable bytes.
    pieces: Pieces,
    /// The durable bytes not in a sealed piece, from `tail_start`.
    tail_start: u64,
    tail: Vec<Bytes>,
    /// The tail's object and length, until it is read back.
    unread_tail: Option<(crate::storage::ObjectKey, u64)>,
    /// The same for the open PATCH: the bytes it will make durable.
    work_start: u64,
    work: Vec<Bytes>,
    work_len: u64,
    /// Bytes appended by the open PATCH.
    appended: u64,
    /// Pieces the open PATCH wrote, and the list they make.
    staged: Vec<Piece>,
    prepared: Option<Pieces>,
}

impl Spool {
    /// Opens `record`'s spool at its durable offset; bytes of a PATCH
    /// interrupted before its commit (a crash) are dropped.
    pub async fn open(uploads: &Uploads, record: &UploadRecord) -> Result<Spool, UploadError> {
        match &record.pieces {
            None => FileSpool::open(uploads.file_path(&record.id), record)
                .await
                .map(Spool::File),
            Some(pieces) => BucketSpool::open(uploads.storage.clone(), record, pieces.clone())
                .await
                .map(Spool::Bucket),
        }
    }

    /// Bytes appended since the last commit.
    pub fn pending(&self) -> u64 {
        match self {
            Spool::File(f) => f.pending,
            Spool::Bucket(b) => b.appended,
        }
    }

    pub async fn append(&mut self, bytes: Bytes) -> Result<(), UploadError> {
        match self {
            Spool::File(f) => {
                f.file
                    .write_all(&bytes)
                    .await
                    .map_err(|e| UploadError::io(&f.path, e))?;
                f.pending += bytes.len() as u64;
                Ok(())
            }
            Spool::Bucket(b) => b.append(bytes).await,
        }
    }

    /// Makes the appended bytes durable where they are kept; answers the
    /// pieces that will hold them, for the database.
    pub async fn prepare(&mut self) -> Result<Option<Pieces>, UploadError> {
        match self {
            Spool::File(f) => {
                f.file
                    .flush()
                    .await
                    .map_err(|e| UploadError::io(&f.path, e))?;
                f.file
                    .sync_data()
                    .await
                    .map_err(|e| UploadError::io(&f.path, e))?;
                Ok(None)
            }
            Spool::Bucket(b) => b.prepare().await.map(Some),
        }
    }

    /// The database recorded the commit: the appended bytes are durable.
    pub fn settled(&mut self) {
        match self {
            Spool::File(f) => {
                f.durable += f.pending;
                f.pending = 0;
            }
            Spool::Bucket(b) => b.settled(),
        }
    }

    /// Drops whatever was appended since the last commit.
    pub async fn discard(&mut self) -> Result<(), UploadError> {
        match self {
            Spool::File(f) => f.truncate().await,
            Spool::Bucket(b) => {
                b.discard();
                Ok(())
            }
        }
    }

    /// The append file, which a finished upload leaves behind.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Spool::File(f) => Some(&f.path),
            Spool::Bucket(_) => None,
        }
    }
}

impl FileSpool {
    async fn open(path: PathBuf, record: &UploadRecord) -> Result<FileSpool, UploadError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| UploadError::io(&path, e))?;
        let on_disk = file
            .metadata()
            .await
            .map_err(|e| UploadError::io(&path, e))?
            .len();
        let mut spool = FileSpool {
            file,
            path,
            durable: record.offset,
            pending: 0,
        };
        if record.completed_at_ms.is_none() {
            if on_disk < record.offset {
                return Err(UploadError::Corrupt {
                    id: record.id.clone(),
                    reason: format!(
                        "the file holds {on_disk} bytes but {} were acknowledged",
                        record.offset
                    ),
                });
            }
            if on_disk > record.offset {
                tracing::info!(upload = %record.id, durable = record.offset, on_disk, "dropping bytes of an interrupted PATCH");
                spool.truncate().await?;
            }
        }
        Ok(spool)
    }

    async fn truncate(&mut self) -> Result<(), UploadError> {
        self.file
            .set_len(self.durable)
            .await
            .map_err(|e| UploadError::io(&self.path, e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| UploadError::io(&self.path, e))?;
        self.pending = 0;
        Ok(())
    }
}

impl BucketSpool {
    /// Opens the upload's pieces: the tail, if any, is read back into
    /// memory to be extended (at most [`PIECE_MIN`] bytes) before the
    /// first write.
    async fn open(
        storage: Storage,
        record: &UploadRecord,
        pieces: Pieces,
    ) -> Result<BucketSpool, UploadError> {
        let writer = new_writer();
        let mut tail_start = record.offset;
        let mut unread_tail = None;
        // (A stored upload's pieces are gone: nothing is read.)
        if let Some((piece, span)) = pieces.spans(record.offset).last()
            && span.end - span.start < PIECE_MIN
            && record.completed_at_ms.is_none()
        {
            let key = keys::upload_piece(&record.id, piece.start, &piece.writer)?;
            unread_tail = Some((key, span.end - span.start));
            tail_start = span.start;
        }
        let work_len = record.offset - tail_start;
        Ok(BucketSpool {
            storage,
            upload: record.id.clone(),
            writer,
            durable: record.offset,
            pieces,
            tail_start,
            work_start: tail_start,
            work: Vec::new(),
            tail: Vec::new(),
            unread_tail,
            work_len,
            appended: 0,
            staged: Vec::new(),
            prepared: None,
        })
    }

    /// Reads the tail back before the first write (not at open: a session
    /// that only answers `HEAD` holds no bytes).
    async fn read_tail(&mut self) -> Result<(), UploadError> {
        let Some((key, want)) = self.unread_tail.take() else {
            return Ok(());
        };
        let bytes = read_exactly(&self.storage, &key, want)
            .await
            .map_err(|reason| UploadError::Corrupt {
                id: self.upload.clone(),
                reason: format!("its tail {key}: {reason}"),
            })?;
        self.tail = vec![bytes];
        self.work = self.tail.clone();
        Ok(())
    }

    async fn append(&mut self, bytes: Bytes) -> Result<(), UploadError> {
        self.read_tail().await?;
        self.appended += bytes.len() as u64;
        self.work_len += bytes.len() as u64;
        self.work.push(bytes);
        if self.work_len >= STAGE_BYTES {
            self.write_work().await?;
        }
        Ok(())
    }

    /// Writes the bytes not yet in a sealed piece as this session's piece
    /// at `work_start`; seals it when it is large enough.
    async fn write_work(&mut self) -> Result<(), UploadError> {
        if self.work.is_empty() {
            return Ok(());
        }
        let piece = Piece {
            start: self.work_start,
            writer: self.writer.clone(),
        };
        let key = keys::upload_piece(&self.upload, piece.start, &piece.writer)?;
        self.storage.put_chunks(&key, self.work.clone()).await?;
        if self.staged.last() != Some(&piece) {
            self.staged.push(piece);
        }
        if self.work_len >= PIECE_MIN {
            self.work_start += self.work_len;
            self.work.clear();
            self.work_len = 0;
        }
        Ok(())
    }

    async fn prepare(&mut self) -> Result<Pieces, UploadError> {
        self.read_tail().await?;
        if self.appended > 0 {
            self.write_work().await?;
        }
        let pieces = match self.staged.first() {
            Some(first) => self.pieces.replaced_from(first.start, &self.staged),
            None => self.pieces.clone(),
        };
        self.prepared = Some(pieces.clone());
        Ok(pieces)
    }

    fn settled(&mut self) {
        if let Some(pieces) = self.prepared.take() {
            self.pieces = pieces;
        }
        self.durable += self.appended;
        self.appended = 0;
        self.tail_start = self.work_start;
        self.tail = self.work.clone();
        self.staged.clear();
    }

    fn discard(&mut self) {
        self.work_start = self.tail_start;
        self.work = self.tail.clone();
        self.work_len = self.durable - self.tail_start;
        self.appended = 0;
        self.prepared = None;
        // Pieces the dropped bytes were written to are left alone (they go
        // with the upload's other objects when it ends): a commit that
        // failed with an error may have been recorded after all, and a
        // delete sent now could land after a later write of the same key.
        // Later writes go under a new name instead.
        if !self.staged.is_empty() {
            self.staged.clear();
            self.writer = new_writer();
        }
    }
}

/// A session's name in its pieces' keys.
fn new_writer() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Why a piece could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadBackError {
    #[error(transparent)]
    Store(#[from] crate::storage::StorageError),
    #[error("{got} bytes where {want} were acknowledged")]
    Short { got: u64, want: u64 },
}

/// The first `want` bytes of `key`.
pub(super) async fn read_exactly(
    storage: &Storage,
    key: &crate::storage::ObjectKey,
    want: u64,
) -> Result<Bytes, ReadBackError> {
    let read = storage.read(key, Some(0..want)).await?;
    let mut buffer = BytesMut::with_capacity(want as usize);
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
    }
    let got = buffer.len() as u64;
    if got != want {
        return Err(ReadBackError::Short { got, want });
    }
    Ok(buffer.freeze())
}

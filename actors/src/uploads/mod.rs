//! Resumable uploads: one [`UploadSession`] actor per upload in progress,
//! spawned on demand under the `uploads` branch, and the move of a finished
//! upload's bytes into storage as an asset's original.
//!
//! Where bytes in progress live follows the storage ([`spool`]): with local
//! storage, in append files under `<data_dir>/uploads/`, fsynced at each
//! commit and moved into place when complete; with a remote store, in
//! pieces under `uploads/<upload>/` in it, so any node can read them and
//! take the upload over when its holder is gone. A finished upload becomes
//! `assets/<asset>/original`, byte for byte, and its bytes in progress are
//! removed.

mod growing;
mod pieces;
mod records;
mod session;
mod spool;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::{Actor, ActorId, ActorRef};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

pub use pieces::{PIECE_MIN, Piece, Pieces};
pub use records::{ConcatKind, UploadRecord};

use crate::assets::{AssetRecord, AssetStatus, Stage, keys};
pub use growing::GrowingUpload;
pub use session::{UploadSession, UploadSessionMsg, UploadStatus};
pub use write::{CHUNK, Write, WriteError};

use crate::clock;
use crate::db::{Database, DbError};
use crate::events::{Event, EventBus};
use crate::storage::{ObjectKey, Storage, StorageError};
use crate::supervision::{BranchKind, Supervision};
use crate::transcode::Transcoder;

/// How long a caller waits for a session to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size when moving a finished upload into storage.
const COPY_CHUNK: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no upload {0}")]
    NotFound(String),
    #[error("upload {0} has expired")]
    Expired(String),
    #[error("another PATCH to this upload is in progress")]
    Busy,
    #[error("the upload is already complete")]
    Completed,
    #[error("no PATCH is open on this upload")]
    NoPatch,
    #[error("Upload-Offset {got} does not match the upload's offset {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    #[error("partial upload {0} is not complete")]
    PartialIncomplete(String),
    #[error("upload {id} is damaged: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("upload storage failed on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the upload session did not answer: {0}")]
    Unreachable(String),
    #[error("the upload's bytes are on node {0}, which is not up; resume when it is back")]
    HeldElsewhere(String),
    #[error("upload {0} is now written by another node; ask for its offset again (HEAD)")]
    TakenOver(String),
}

impl UploadError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        UploadError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What a creation request asks for.
#[derive(Clone, Debug, Default)]
pub struct NewUpload {
    pub length: Option<u64>,
    pub metadata: String,
    pub filename: String,
    pub filetype: String,
    pub concat: Option<ConcatKind>,
    pub parts: Vec<String>,
}

#[derive(Clone)]
pub struct Uploads {
    db: Database,
    storage: Storage,
    supervision: Supervision,
    dir: PathBuf,
    expire_after: Duration,
    sessions: Arc<Mutex<HashMap<String, ActorRef<UploadSessionMsg>>>>,
    /// Where stored originals go next.
    transcoder: Option<Transcoder>,
    events: EventBus,
    /// This node's id: new uploads' bytes are held here.
    node: Option<Arc<str>>,
}

/// Where an upload's bytes are while it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// On this node: it writes them.
    Here,
    /// On another node, up at `advertise`: requests that write go there.
    Elsewhere { node: String, advertise: String },
    /// On another node that is not up (stopped, or lost).
    Away { node: String },
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Upload ids: 32 lower-case hex digits from a v4 UUID.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Uploads {
    pub fn new(
        db: Database,
        storage: Storage,
        supervision: Supervision,
        dir: PathBuf,
        expire_after: Duration,
        transcoder: Option<Transcoder>,
        events: EventBus,
    ) -> Result<Self, UploadError> {
        std::fs::create_dir_all(&dir).map_err(|e| UploadError::io(&dir, e))?;
        Ok(Uploads {
            db,
            storage,
            supervision,
            dir,
            expire_after,
            sessions: Arc::default(),
            transcoder,
            events,
            node: None,
        })
    }

    pub fn expire_after(&self) -> Duration {
        self.expire_after
    }

    /// Where an upload in progress keeps its bytes.
    /// New uploads are held by node `node` (this one): the others forward
    /// their writes here.
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The other node holding `record`'s bytes, if it is not this one.
    fn held_elsewhere<'a>(&self, record: &'a UploadRecord) -> Option<&'a str> {
        match (record.node.as_deref(), self.node.as_deref()) {
            (Some(holder), Some(me)) if holder != me && record.completed_at_ms.is_none() => {
                Some(holder)
            }
            _ => None,
        }
    }

    /// Where `record`'s bytes are while it arrives.
    pub async fn holder(&self, record: &UploadRecord) -> Result<Holder, UploadError> {
        let Some(node) = self.held_elsewhere(record) else {
            return Ok(Holder::Here);
        };
        let nodes = self.db.nodes().await?;
        Ok(match nodes.into_iter().find(|n| n.id == node) {
            Some(n) if n.state == crate::cluster::NodeState::Up => Holder::Elsewhere {
                node: n.id,
                advertise: n.advertise,
            },
            _ => Holder::Away {
                node: node.to_owned(),
            },
        })
    }

    /// Where completed uploads' originals are stored.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn file_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    /// Whether uploads in progress are kept in the (remote) object store,
    /// where every node reaches them, rather than in append files.
    pub fn in_store(&self) -> bool {
        !self.storage.is_local()
    }

    /// Records a new upload and creates its (empty) append file.
    pub async fn create(&self, new: NewUpload) -> Result<UploadRecord, UploadError> {
        let now = clock::now_ms();
        let record = UploadRecord {
            id: new_id(),
            length: new.length,
            offset: 0,
            metadata: new.metadata,
            filename: new.filename,
            filetype: new.filetype,
            concat: new.concat,
            parts: new.parts,
            created_at_ms: now,
            expires_at_ms: now
                .saturating_add(i64::try_from(self.expire_after.as_millis()).unwrap_or(i64::MAX)),
            completed_at_ms: None,
            asset_id: None,
            node: self.node.as_deref().map(str::to_owned),
            pieces: self.in_store().then(Pieces::default),
        };
        if !self.in_store() {
            let path = self.file_path(&record.id);
            tokio::fs::File::create(&path)
                .await
                .map_err(|e| UploadError::io(&path, e))?;
        }
        self.db.insert_upload(&record).await?;
        Ok(record)
    }

    /// The stored record of an upload that has not expired.
    pub async fn record(&self, id: &str) -> Result<UploadRecord, UploadError> {
        let record = self
            .db
            .upload(id)
            .await?
            .filter(|_| valid_id(id))
            .ok_or_else(|| UploadError::NotFound(id.to_owned()))?;
        if record.completed_at_ms.is_none() && record.expires_at_ms < clock::now_ms() {
            return Err(UploadError::Expired(id.to_owned()));
        }
        Ok(record)
    }

    /// The live session of an upload, spawned if it is not running.
    pub async fn session(&self, id: &str) -> Result<ActorRef<UploadSessionMsg>, UploadError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(id)
            && ractor::ACTIVE_STATES.contains(&session.get_status())
        {
            return Ok(session.clone());
        }
        let mut record = self.record(id).await?;
        // Only the node holding the bytes may write them.
        if self.held_elsewhere(&record).is_some() {
            self.take_over(&mut record).await?;
        }
        let branch = self
            .supervision
            .branch(BranchKind::Uploads)
            .await
            .map_err(|e| UploadError::Unreachable(e.to_string()))?;
        let (session, _) = Actor::spawn_linked(
            None,
            UploadSession,
            session::UploadSessionArgs {
                record,
                uploads: self.clone(),
            },
            branch.get_cell(),
        )
        .await
        .map_err(|e| UploadError::Unreachable(e.to_string()))?;
        sessions.insert(id.to_owned(), session.clone());
        Ok(session)
    }

    /// Makes this node the writer of `record`, whose holder is another
    /// node: only when the bytes are in the store and that node is not up.
    /// The commits of a session left on the old holder are refused from
    /// now on ([`UploadError::TakenOver`]).
    async fn take_over(&self, record: &mut UploadRecord) -> Result<(), UploadError> {
        let old = record.node.clone().unwrap_or_default();
        let away = matches!(self.holder(record).await?, Holder::Away { .. });
        let Some(me) = self
            .node
            .as_deref()
            .filter(|_| away && record.pieces.is_some())
        else {
            return Err(UploadError::HeldElsewhere(old));
        };
        if !self
            .db
            .take_upload(&record.id, record.node.as_deref(), me)
            .await?
        {
            return Err(UploadError::TakenOver(record.id.clone()));
        }
        tracing::info!(upload = %record.id, from = %old, "upload taken over from a node that is gone");
        record.node = Some(me.to_owned());
        Ok(())
    }

    async fn forget(&self, id: &str, actor: ActorId) {
        let mut sessions = self.sessions.lock().await;
        if sessions.get(id).is_some_and(|s| s.get_id() == actor) {
            sessions.remove(id);
        }
    }

    /// Offset, length and asset of an upload, from its session when one
    /// runs, else from the database (a finished upload has no session).
    pub async fn status(&self, id: &str) -> Result<UploadStatus, UploadError> {
        let record = self.record(id).await?;
        // Complete, or held by another node: the durable offset is the
        // record's.
        if record.completed_at_ms.is_some() || self.held_elsewhere(&record).is_some() {
            return Ok(UploadStatus {
                offset: record.offset,
                length: record.length,
                asset_id: record.asset_id,
            });
        }
        let session = self.session(id).await?;
        match ractor::call_t!(
            session,
            UploadSessionMsg::Status,
            CALL_TIMEOUT.as_millis() as u64
        ) {
            Ok(status) => Ok(status),
            // The session stopped between the lookup and the call: the upload
            // just completed (or went idle). The record says where it stands.
            Err(first) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let record = self.record(id).await?;
                if record.completed_at_ms.is_some() {
                    return Ok(UploadStatus {
                        offset: record.offset,
                        length: record.length,
                        asset_id: record.asset_id,
                    });
                }
                let session = self.session(id).await?;
                ractor::call_t!(
                    session,
                    UploadSessionMsg::Status,
                    CALL_TIMEOUT.as_millis() as u64
                )
                .map_err(|_| UploadError::Unreachable(first.to_string()))
            }
        }
    }

    /// Deletes an upload in progress (tus termination), its file and record.
    pub async fn terminate(&self, id: &str) -> Result<(), UploadError> {
        self.record(id).await?;
        // Release the map before waiting: the stopping session removes itself from it.
        let session = self.sessions.lock().await.remove(id);
        if let Some(session) = session {
            let _ = session
                .stop_and_wait(Some("terminated".into()), Some(CALL_TIMEOUT))
                .await;
        }
        self.remove_bytes(id).await?;
        self.db.delete_upload(id).await?;
        Ok(())
    }

    /// Removes the bytes in progress of upload `id`: its append file, or
    /// its pieces in the store.
    async fn remove_bytes(&self, id: &str) -> Result<(), UploadError> {
        if self.in_store() {
            self.storage.delete_prefix(&keys::upload(id)?).await?;
            return Ok(());
        }
        let path = self.file_path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UploadError::io(&path, e)),
        }
    }

    /// Creates a final concatenation (tus `concatenation-unfinished`): if
    /// every partial is complete it is assembled at once (`Some(asset)`);
    /// otherwise its length is the sum of the partials' declared lengths, it
    /// completes when its last partial does, and, when the transcoder reads
    /// growing sources, its asset and processing start now, reading the
    /// partials as their bytes arrive (a client can send an MP4's index,
    /// at the end of the file, first).
    pub async fn create_final(
        &self,
        record: &mut UploadRecord,
    ) -> Result<Option<String>, UploadError> {
        let mut length = 0u64;
        let mut complete = true;
        for part in &record.parts {
            let partial = self.record(part).await?;
            if partial.concat != Some(ConcatKind::Partial) {
                return Err(UploadError::PartialIncomplete(part.clone()));
            }
            let Some(part_length) = partial.length else {
                // A partial of unknown length leaves the final's unknown.
                return Err(UploadError::PartialIncomplete(part.clone()));
            };
            length += part_length;
            complete &= partial.completed_at_ms.is_some() && partial.offset == part_length;
        }
        if complete {
            return self.concatenate(record).await.map(Some);
        }
        self.db
            .set_upload_progress(&record.id, 0, Some(length))
            .await?;
        record.length = Some(length);
        if let Some(transcoder) = &self.transcoder
            && transcoder.reads_growing_sources()
            && length > 0
        {
            let asset_id = new_id();
            self.db
                .insert_asset(&new_asset(record, &asset_id, AssetStatus::Processing))
                .await?;
            self.db.set_upload_asset(&record.id, &asset_id).await?;
            record.asset_id = Some(asset_id.clone());
            self.events.publish(Event::Stage {
                asset_id: asset_id.clone(),
                upload_id: Some(record.id.clone()),
                stage: Stage::Uploading,
                error: None,
            });
            transcoder.start(&asset_id).await;
        }
        Ok(None)
    }

    /// A partial upload completed: assembles every unfinished final
    /// concatenation whose partials are now all complete.
    pub async fn partial_completed(&self, part: &str) {
        let finals = match self.db.unfinished_finals_with(part).await {
            Ok(finals) => finals,
            Err(err) => {
                tracing::error!(upload = %part, %err, "cannot look up final uploads");
                return;
            }
        };
        for id in finals {
            let Ok(record) = self.record(&id).await else {
                continue;
            };
            let mut all = true;
            for p in &record.parts {
                match self.record(p).await {
                    Ok(r) if r.completed_at_ms.is_some() => {}
                    _ => all = false,
                }
            }
            if !all {
                continue;
            }
            match self.concatenate(&record).await {
                Ok(asset) => tracing::info!(upload = %id, %asset, "final upload assembled"),
                Err(err) => tracing::warn!(upload = %id, %err, "cannot assemble a final upload"),
            }
        }
    }

    /// A final concatenation: its partial uploads, all complete, are stored
    /// one after the other as a new asset's original. Returns the asset id.
    pub async fn concatenate(&self, record: &UploadRecord) -> Result<String, UploadError> {
        let mut partials = Vec::with_capacity(record.parts.len());
        let mut length = 0u64;
        for part in &record.parts {
            let partial = self.record(part).await?;
            if partial.concat != Some(ConcatKind::Partial)
                || partial.completed_at_ms.is_none()
                || partial.length != Some(partial.offset)
            {
                return Err(UploadError::PartialIncomplete(part.clone()));
            }
            length += partial.offset;
            partials.push(partial);
        }
        let mut record = record.clone();
        record.length = Some(length);
        record.offset = length;
        let asset = self.store_original(&record, &partials).await?;
        self.db
            .set_upload_progress(&record.id, length, Some(length))
            .await?;
        // The parts live on in the asset's original; their bytes and records
        // are not needed again (tus concatenation: the server may delete them),
        // nor is the final upload's own (empty) file.
        let _ = self.remove_bytes(&record.id).await;
        for part in &record.parts {
            if let Err(err) = self.remove_bytes(part).await {
                tracing::warn!(upload = %part, %err, "cannot remove a concatenated part");
            }
            self.db.delete_upload(part).await?;
        }
        Ok(asset)
    }

    /// Streams the bytes of `parts` (the upload itself, or the partials of
    /// a final concatenation), in order, into a new asset's original and
    /// records the asset and the upload's completion.
    async fn store_original(
        &self,
        record: &UploadRecord,
        parts: &[UploadRecord],
    ) -> Result<String, UploadError> {
        // Processing may have started while the bytes arrived: the asset
        // exists already and its job reads the growing source.
        let early = record.asset_id.clone();
        let asset_id = early.clone().unwrap_or_else(new_id);
        let key = keys::original(&asset_id)?;
        let size = match (parts, self.storage.local_path(&key)) {
            // Local storage: move the append file into place, atomically and
            // without copying a byte (a 4 GB upload is stored at once).
            ([part], Some(target)) if part.pieces.is_none() => {
                match move_file(&self.file_path(&part.id), &target).await {
                    Ok(size) => size,
                    Err(err) => {
                        tracing::debug!(%err, "cannot move the upload into place; copying");
                        self.copy_into(&key, parts).await?
                    }
                }
            }
            _ => self.copy_into(&key, parts).await?,
        };
        if Some(size) != record.length {
            return Err(UploadError::Corrupt {
                id: record.id.clone(),
                reason: format!("stored {size} bytes, expected {:?}", record.length),
            });
        }
        if early.is_none() {
            self.db
                .insert_asset(&new_asset(record, &asset_id, AssetStatus::Uploaded))
                .await?;
        }
        self.db.complete_upload(&record.id, Some(&asset_id)).await?;
        tracing::info!(upload = %record.id, asset = %asset_id, size, "upload stored");
        if parts.len() == 1 && self.in_store() {
            // Readers of the pieces move on to the original once they see
            // the upload complete.
            if let Err(err) = self.remove_bytes(&record.id).await {
                tracing::warn!(upload = %record.id, %err, "cannot remove a stored upload's pieces");
            }
        }
        self.events.publish(Event::Stage {
            asset_id: asset_id.clone(),
            upload_id: Some(record.id.clone()),
            stage: Stage::Uploaded,
            error: None,
        });
        if early.is_none()
            && let Some(transcoder) = &self.transcoder
        {
            transcoder.start(&asset_id).await;
        }
        Ok(asset_id)
    }

    /// Once the first bytes of an upload are durable, makes its asset and
    /// starts processing on the growing source, so that the probe, the
    /// poster and a playable preview come while the rest arrives. Only for
    /// a plain upload of known length, when the transcoder can read a
    /// growing source; other uploads are processed once complete.
    pub(crate) async fn start_early(&self, record: &mut UploadRecord) -> Result<(), UploadError> {
        let Some(transcoder) = &self.transcoder else {
            return Ok(());
        };
        let eligible = transcoder.reads_growing_sources()
            && record.asset_id.is_none()
            && record.concat.is_none()
            && record.length.is_some_and(|length| length > record.offset)
            && record.offset > 0;
        if !eligible {
            return Ok(());
        }
        let asset_id = new_id();
        self.db
            .insert_asset(&new_asset(record, &asset_id, AssetStatus::Processing))
            .await?;
        self.db.set_upload_asset(&record.id, &asset_id).await?;
        record.asset_id = Some(asset_id.clone());
        tracing::info!(upload = %record.id, asset = %asset_id, "processing while the upload arrives");
        self.events.publish(Event::Stage {
            asset_id: asset_id.clone(),
            upload_id: Some(record.id.clone()),
            stage: Stage::Uploading,
            error: None,
        });
        transcoder.start(&asset_id).await;
        Ok(())
    }

    /// Streams the bytes of `parts`, in order, into one object at `key`;
    /// returns its size.
    async fn copy_into(&self, key: &ObjectKey, parts: &[UploadRecord]) -> Result<u64, UploadError> {
        let mut writer = self.storage.writer(key).await?;
        let mut buffer = vec![0u8; COPY_CHUNK];
        for part in parts {
            if let Some(pieces) = &part.pieces {
                for (piece, span) in pieces.spans(part.offset).filter(|(_, s)| !s.is_empty()) {
                    let piece_key = keys::upload_piece(&part.id, piece.start, &piece.writer)?;
                    let read = self
                        .storage
                        .read(&piece_key, Some(0..span.end - span.start))
                        .await?;
                    let mut body = read.body;
                    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
                        writer.write(chunk?).await?;
                    }
                }
                continue;
            }
            let path = &self.file_path(&part.id);
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| UploadError::io(path, e))?;
            loop {
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(|e| UploadError::io(path, e))?;
                if n == 0 {
                    break;
                }
                writer.write(Bytes::copy_from_slice(&buffer[..n])).await?;
            }
        }
        Ok(writer.finish().await?)
    }

    /// Removes unfinished uploads past their expiry; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, UploadError> {
        let node = self.node.as_deref().unwrap_or_default();
        let expired = self.db.expired_uploads(clock::now_ms(), node).await?;
        for id in &expired {
            let session = self.sessions.lock().await.remove(id);
            if let Some(session) = session {
                session.stop(Some("expired".into()));
            }
            if let Err(err) = self.remove_bytes(id).await {
                tracing::warn!(upload = %id, %err, "cannot remove an expired upload's bytes");
            }
            self.db.delete_upload(id).await?;
        }
        Ok(expired.len())
    }

    fn progress(&self, id: &str, offset: u64, length: Option<u64>) {
        self.events.publish(Event::UploadProgress {
            upload_id: id.to_owned(),
            offset,
            length,
        });
    }
}

/// The asset record of an upload's original.
fn new_asset(record: &UploadRecord, asset_id: &str, status: AssetStatus) -> AssetRecord {
    let filename = if record.filename.is_empty() {
        format!("upload-{}", record.id)
    } else {
        record.filename.clone()
    };
    AssetRecord {
        id: asset_id.to_owned(),
        upload_id: Some(record.id.clone()),
        filename,
        filetype: record.filetype.clone(),
        size: record.length.unwrap_or(record.offset),
        status,
        error: None,
        created_at_ms: clock::now_ms(),
        probe: None,
        preview: false,
        poster: false,
        stage: None,
        rungs: None,
        node: None,
    }
}

/// Renames `from` to `to` (same filesystem only), creating `to`'s directory;
/// returns the file's size.
async fn move_file(from: &Path, to: &Path) -> std::io::Result<u64> {
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(from, to).await?;
    Ok(tokio::fs::metadata(to).await?.len())
}

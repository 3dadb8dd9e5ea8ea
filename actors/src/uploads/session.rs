//! `UploadSession`: the one actor that writes an upload's bytes.
//!
//! It owns the upload's [`Spool`]: its append file, or its pieces in the
//! object store. A PATCH is `Begin` → `Append`* → `Commit` or `Rollback`:
//! appended bytes are written at once but become part of the upload only at
//! `Commit`, which makes them durable (fsync, or the objects written) and
//! then records the new offset in the database; only then is the offset
//! acknowledged to the client. The database takes the offset only from the
//! upload's holder and at the offset the session started from, so a session
//! left behind on a node the upload was taken from can never commit.
//! `Rollback` (checksum mismatch, body over its limit) goes back to the last
//! durable offset. At start the spool is cut back to the durable offset too,
//! so bytes of a PATCH interrupted by a crash never count.
//!
//! One PATCH at a time: `Begin` while another PATCH is open is refused.
//! Media bytes ride `Append` calls that the caller awaits one at a time, so
//! at most one chunk per upload is ever queued in the mailbox.
//!
//! Policy: the session stops itself after [`IDLE_STOP`] without a PATCH, or
//! once the upload is complete and stored; the next request spawns it again.

use std::time::Duration;

use super::records::{ConcatKind, UploadRecord};
use super::spool::Spool;
use super::{UploadError, Uploads};
use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// A session with no request for this long stops (its state is all on disk).
pub const IDLE_STOP: Duration = Duration::from_secs(300);

pub struct UploadSession;

pub struct UploadSessionArgs {
    pub record: UploadRecord,
    pub uploads: Uploads,
}

pub struct UploadSessionState {
    record: UploadRecord,
    uploads: Uploads,
    /// Where the bytes go: see [`Spool`].
    spool: Spool,
    patch_open: bool,
    idle_timer: Option<tokio::task::JoinHandle<Result<(), ractor::MessagingErr<UploadSessionMsg>>>>,
}

/// The upload as the client may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub offset: u64,
    pub length: Option<u64>,
    pub asset_id: Option<String>,
}

pub enum UploadSessionMsg {
    Status(RpcReplyPort<UploadStatus>),
    /// Opens a PATCH at `offset`, which must be the durable offset.
    Begin {
        offset: u64,
        reply: RpcReplyPort<Result<(), UploadError>>,
    },
    /// Appends to the open PATCH; replies with the PATCH's bytes so far.
    Append {
        bytes: Bytes,
        reply: RpcReplyPort<Result<u64, UploadError>>,
    },
    /// Makes the open PATCH durable (and sets a deferred length, when given).
    Commit {
        length: Option<u64>,
        reply: RpcReplyPort<Result<UploadStatus, UploadError>>,
    },
    /// Makes the open PATCH's bytes so far durable and acknowledged, and
    /// keeps it open: a long PATCH feeds processing as it goes. Only for a
    /// PATCH without a checksum (which must cover the whole body).
    Checkpoint(RpcReplyPort<Result<UploadStatus, UploadError>>),
    /// Discards the open PATCH's bytes.
    Rollback(RpcReplyPort<Result<UploadStatus, UploadError>>),
    /// Stops after an idle period (sent by the session's own timer).
    IdleCheck,
}

impl UploadSessionState {
    fn status(&self) -> UploadStatus {
        UploadStatus {
            offset: self.record.offset,
            length: self.record.length,
            asset_id: self.record.asset_id.clone(),
        }
    }

    fn arm_idle_timer(&mut self, myself: &ActorRef<UploadSessionMsg>) {
        if let Some(timer) = self.idle_timer.take() {
            timer.abort();
        }
        self.idle_timer = Some(myself.send_after(IDLE_STOP, || UploadSessionMsg::IdleCheck));
    }

    async fn truncate_to_durable(&mut self) -> Result<(), UploadError> {
        self.spool.discard().await?;
        self.patch_open = false;
        Ok(())
    }

    async fn commit(&mut self, length: Option<u64>) -> Result<(), UploadError> {
        // Durable first, acknowledged second: a crash between the two loses
        // only bytes the client was never told about.
        let pieces = self.spool.prepare().await?;
        let offset = self.record.offset + self.spool.pending();
        let new_length = length.filter(|_| self.record.length.is_none());
        let recorded = self
            .uploads
            .db
            .commit_upload(
                &self.record.id,
                self.record.node.as_deref(),
                self.record.offset,
                offset,
                new_length,
                pieces.as_ref(),
            )
            .await?;
        if !recorded {
            return Err(UploadError::TakenOver(self.record.id.clone()));
        }
        self.spool.settled();
        self.record.offset = offset;
        if pieces.is_some() {
            self.record.pieces = pieces;
        }
        if new_length.is_some() {
            self.record.length = new_length;
        }
        self.uploads
            .progress(&self.record.id, offset, self.record.length);
        self.patch_open = false;
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.record.length == Some(self.record.offset) && self.record.completed_at_ms.is_none()
    }

    /// A finished upload becomes an asset (or, for a partial upload, waits
    /// for its final concatenation).
    async fn finish_if_complete(&mut self) -> Result<(), UploadError> {
        if !self.is_complete() {
            return Ok(());
        }
        if self.record.concat == Some(ConcatKind::Partial) {
            self.uploads
                .db
                .complete_upload(&self.record.id, None)
                .await?;
            // A final upload created before this partial finished may be
            // complete now; assembling it must not hold this PATCH's answer.
            let uploads = self.uploads.clone();
            let id = self.record.id.clone();
            tokio::spawn(async move { uploads.partial_completed(&id).await });
        } else {
            let asset = self
                .uploads
                .store_original(&self.record, std::slice::from_ref(&self.record))
                .await?;
            self.record.asset_id = Some(asset);
            // Gone already when it was moved into storage.
            if let Some(path) = self.spool.file() {
                match tokio::fs::remove_file(path).await {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(path = %path.display(), %err, "cannot remove a stored upload's file");
                    }
                    _ => {}
                }
            }
        }
        self.record.completed_at_ms = Some(crate::clock::now_ms());
        Ok(())
    }
}

impl Actor for UploadSession {
    type Msg = UploadSessionMsg;
    type State = UploadSessionState;
    type Arguments = UploadSessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<UploadSessionMsg>,
        args: UploadSessionArgs,
    ) -> Result<UploadSessionState, ActorProcessingErr> {
        let spool = Spool::open(&args.uploads, &args.record).await?;
        let mut state = UploadSessionState {
            record: args.record,
            uploads: args.uploads,
            spool,
            patch_open: false,
            idle_timer: None,
        };
        if state.record.completed_at_ms.is_none() {
            // Acknowledged in full but stopped before it was stored (a crash).
            state.finish_if_complete().await?;
        }
        state.arm_idle_timer(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<UploadSessionMsg>,
        message: UploadSessionMsg,
        state: &mut UploadSessionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            UploadSessionMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            UploadSessionMsg::Begin { offset, reply } => {
                state.arm_idle_timer(&myself);
                let result = if state.patch_open {
                    Err(UploadError::Busy)
                } else if state.record.completed_at_ms.is_some() {
                    Err(UploadError::Completed)
                } else if offset != state.record.offset {
                    Err(UploadError::OffsetMismatch {
                        expected: state.record.offset,
                        got: offset,
                    })
                } else {
                    state.patch_open = true;
                    Ok(())
                };
                let _ = reply.send(result);
            }
            UploadSessionMsg::Append { bytes, reply } => {
                let result = if !state.patch_open {
                    Err(UploadError::NoPatch)
                } else {
                    match state.spool.append(bytes).await {
                        Ok(()) => Ok(state.spool.pending()),
                        Err(err) => Err(err),
                    }
                };
                let _ = reply.send(result);
            }
            UploadSessionMsg::Commit { length, reply } => {
                let result = if !state.patch_open {
                    Err(UploadError::NoPatch)
                } else {
                    match state.commit(length).await {
                        Ok(()) => {
                            if let Err(err) = state.uploads.start_early(&mut state.record).await {
                                // The upload goes on; it is processed once complete.
                                tracing::warn!(upload = %state.record.id, %err, "cannot start processing early");
                            }
                            state.finish_if_complete().await.map(|()| state.status())
                        }
                        Err(err) => {
                            // Whatever did not become durable is not kept.
                            if let Err(cut) = state.truncate_to_durable().await {
                                tracing::error!(upload = %state.record.id, %cut, "cannot cut back a failed PATCH");
                            }
                            Err(err)
                        }
                    }
                };
                let done = state.record.completed_at_ms.is_some();
                let lost = matches!(result, Err(UploadError::TakenOver(_)));
                let _ = reply.send(result);
                if done {
                    myself.stop(Some("upload complete".into()));
                } else if lost {
                    myself.stop(Some("taken over by another node".into()));
                }
            }
            UploadSessionMsg::Checkpoint(reply) => {
                let result = if !state.patch_open {
                    Err(UploadError::NoPatch)
                } else {
                    match state.commit(None).await {
                        Ok(()) => {
                            state.patch_open = true;
                            if let Err(err) = state.uploads.start_early(&mut state.record).await {
                                tracing::warn!(upload = %state.record.id, %err, "cannot start processing early");
                            }
                            Ok(state.status())
                        }
                        Err(err) => {
                            if let Err(cut) = state.truncate_to_durable().await {
                                tracing::error!(upload = %state.record.id, %cut, "cannot cut back a failed checkpoint");
                            }
                            Err(err)
                        }
                    }
                };
                let lost = matches!(result, Err(UploadError::TakenOver(_)));
                let _ = reply.send(result);
                if lost {
                    myself.stop(Some("taken over by another node".into()));
                }
            }
            UploadSessionMsg::Rollback(reply) => {
                let result = state.truncate_to_durable().await.map(|()| state.status());
                let _ = reply.send(result);
            }
            UploadSessionMsg::IdleCheck => {
                if !state.patch_open {
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<UploadSessionMsg>,
        state: &mut UploadSessionState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.idle_timer.take() {
            timer.abort();
        }
        if state.patch_open {
            // Stopped mid-PATCH (shutdown): keep only what is durable.
            let _ = state.truncate_to_durable().await;
        }
        state
            .uploads
            .forget(&state.record.id, myself.get_id())
            .await;
        Ok(())
    }
}

//! One write into an upload, the one path every upload's bytes take: a tus
//! PATCH, the body of a tus creation-with-upload, or a one-shot
//! `POST /api/uploads`.
//!
//! The write opens the session's transaction at an offset (`Begin`),
//! streams the body to the session in chunks of at most [`CHUNK`], one at a
//! time (an upload holds about one chunk in memory however large the file),
//! makes what arrived durable as it goes (`Checkpoint`: every
//! [`CHECKPOINT_BYTES`] (6 MiB, a sealed piece, in a remote store) or
//! [`CHECKPOINT_INTERVAL`], so processing reads the
//! upload while it arrives and a crash loses at most the bytes since the
//! last checkpoint), verifies the body's checksum when it has one, and
//! commits (`Commit`) or rolls back (`Rollback`) the rest.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use ractor::ActorRef;
use streamforge_protocols::tus::{Checksum, TusError};

use super::{CALL_TIMEOUT, UploadError, UploadSessionMsg, UploadStatus, Uploads};

/// Bytes handed to the session per call.
pub const CHUNK: usize = 1024 * 1024;
/// A body without a checksum is made durable every this many bytes…
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// …or, for an upload kept in a remote store, every this many: a piece
/// sealed at each checkpoint, never a tail written and written again.
const STORE_CHECKPOINT_BYTES: u64 = super::spool::STAGE_BYTES;
/// …or this often, whichever comes first.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// What a write is.
#[derive(Debug)]
pub struct Write {
    /// Where the body goes: the upload's offset now.
    pub offset: u64,
    /// Most bytes the body may carry.
    pub limit: u64,
    /// The checksum of the whole body (tus checksum extension): nothing is
    /// made durable before it is verified, and nothing of a body that ends
    /// early is kept.
    pub checksum: Option<Checksum>,
    /// The upload's length, when this write declares it.
    pub length: Option<u64>,
    /// The body is the whole upload (a one-shot POST): a body that ends
    /// early fails the write, and without `length` the upload is as long
    /// as the body. Otherwise (tus) what arrived before the end is kept,
    /// for the client to resume from.
    pub whole: bool,
}

/// Why a write kept nothing (or, for a tus body that ended early, only
/// what arrived before).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A body longer than its limit, or a checksum mismatch.
    #[error(transparent)]
    Tus(#[from] TusError),
    #[error("the body ended before its checksum could be verified; nothing of it was kept")]
    Unverified,
    #[error("the body ended early; send the file again, or use tus at /files/ to resume")]
    Incomplete,
}

/// How a body ended.
enum BodyEnd {
    Complete,
    /// The client went away mid-body.
    Interrupted,
}

impl Uploads {
    /// Writes `body` into upload `id` as `write` says; see the module
    /// documentation. Answers the upload's status after the commit.
    pub async fn write<E: std::fmt::Display>(
        &self,
        id: &str,
        write: Write,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<UploadStatus, WriteError> {
        let session = self.session(id).await?;
        call(&session, |reply| UploadSessionMsg::Begin {
            offset: write.offset,
            reply,
        })
        .await??;
        let mut verifier = write.checksum.as_ref().map(Checksum::verifier);
        let every = match self.in_store() {
            true => STORE_CHECKPOINT_BYTES,
            false => CHECKPOINT_BYTES,
        };
        let written = stream_body(&session, body, write.limit, every, verifier.as_mut()).await;
        let verdict = match written {
            Ok((BodyEnd::Interrupted, _)) if verifier.is_some() => Err(WriteError::Unverified),
            Ok((BodyEnd::Interrupted, _)) if write.whole => Err(WriteError::Incomplete),
            Ok((_, received)) => match verifier {
                Some(verifier) => verifier.finish().map(|()| received).map_err(Into::into),
                None => Ok(received),
            },
            Err(err) => Err(err),
        };
        match verdict {
            Ok(received) => {
                let length = match write.whole {
                    true => Some(write.length.unwrap_or(received)),
                    false => write.length,
                };
                Ok(call(&session, |reply| UploadSessionMsg::Commit { length, reply }).await??)
            }
            Err(err) => {
                call(&session, UploadSessionMsg::Rollback).await??;
                Err(err)
            }
        }
    }
}

async fn call<T: Send + 'static>(
    session: &ActorRef<UploadSessionMsg>,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> UploadSessionMsg,
) -> Result<T, UploadError> {
    session
        .call(message, Some(CALL_TIMEOUT))
        .await
        .map_err(|e| UploadError::Unreachable(e.to_string()))?
        .success_or(UploadError::Unreachable("no answer in time".into()))
}

/// Streams `body` into the session's open transaction, at most `limit`
/// bytes; returns how it ended and how many bytes it carried.
async fn stream_body<E: std::fmt::Display>(
    session: &ActorRef<UploadSessionMsg>,
    body: impl Stream<Item = Result<Bytes, E>>,
    limit: u64,
    checkpoint_bytes: u64,
    mut verifier: Option<&mut streamforge_protocols::tus::ChecksumVerifier>,
) -> Result<(BodyEnd, u64), WriteError> {
    let mut stream = std::pin::pin!(body);
    let mut buffer = BytesMut::new();
    let mut received = 0u64;
    let mut end = BodyEnd::Complete;
    let checkpoints = verifier.is_none();
    let mut unsynced = 0u64;
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        let frame = match stream.next().await {
            Some(Ok(frame)) => Some(frame),
            Some(Err(err)) => {
                tracing::debug!(%err, "upload body ended early");
                end = BodyEnd::Interrupted;
                None
            }
            None => None,
        };
        if let Some(frame) = &frame {
            received += frame.len() as u64;
            if received > limit {
                return Err(TusError::LengthExceeded {
                    offset: 0,
                    body: received,
                    limit,
                }
                .into());
            }
            if let Some(verifier) = verifier.as_deref_mut() {
                verifier.update(frame);
            }
            buffer.extend_from_slice(frame);
        }
        let slow = checkpoints && last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if buffer.len() >= CHUNK || ((frame.is_none() || slow) && !buffer.is_empty()) {
            let chunk: Bytes = buffer.split().freeze();
            unsynced += chunk.len() as u64;
            call(session, |reply| UploadSessionMsg::Append {
                bytes: chunk,
                reply,
            })
            .await??;
            let due = unsynced >= checkpoint_bytes
                || (last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL && unsynced > 0);
            if checkpoints && frame.is_some() && due {
                call(session, UploadSessionMsg::Checkpoint).await??;
                unsynced = 0;
                last_checkpoint = tokio::time::Instant::now();
            }
        }
        if frame.is_none() {
            return Ok((end, received));
        }
    }
}

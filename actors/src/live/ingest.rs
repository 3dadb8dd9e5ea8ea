//! What the push listeners (RTMP, RTSP) share: the accept loop with its
//! connection limit, the reader task with one read in flight, writing a
//! session's output with a deadline, and the publish a session feeds
//! ([`IngestPublish`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use streamforge_protocols::media::{Sample, SessionEnd, Track};

use super::{Live, Publisher};
use crate::supervision::BranchKind;

/// Accepts connections until `shutdown`; each becomes an actor made by
/// `make` under the live branch. At most `live.max_connections` at once;
/// past that a connection is closed at once.
pub(super) async fn accept<A, F>(
    protocol: &'static str,
    listener: TcpListener,
    live: Live,
    shutdown: CancellationToken,
    make: F,
) where
    A: Actor,
    F: Fn(TcpStream, SocketAddr, Live) -> (A, A::Arguments),
{
    let slots = Arc::new(Semaphore::new(live.options().max_connections));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%err, "{protocol}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "{protocol}: connection limit reached; closing");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (actor, args) = make(socket, remote, live.clone());
        let live = live.clone();
        tokio::spawn(async move {
            let branch = match live.supervision().branch(BranchKind::Live).await {
                Ok(branch) => branch,
                Err(err) => {
                    tracing::error!(%err, "{protocol}: no live branch");
                    return;
                }
            };
            match Actor::spawn_linked(None, actor, args, branch.get_cell()).await {
                // The permit lives as long as the connection's actor.
                Ok((_, join)) => {
                    let _ = join.await;
                }
                Err(err) => tracing::error!(%err, "{protocol}: cannot start the ingest actor"),
            }
            drop(permit);
        });
    }
}

/// Why a session's output could not be written.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("write failed: {0}")]
    Failed(#[source] std::io::Error),
    #[error("the peer stopped reading")]
    Stalled,
}

/// Writes every chunk `next` yields, each within `timeout`; why not when
/// the peer is gone or stopped reading.
pub(super) async fn write_out(
    writer: &mut OwnedWriteHalf,
    timeout: Duration,
    mut next: impl FnMut() -> Option<Bytes>,
) -> Result<(), WriteError> {
    while let Some(out) = next() {
        match tokio::time::timeout(timeout, writer.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(WriteError::Failed(err)),
            Err(_) => return Err(WriteError::Stalled),
        }
    }
    Ok(())
}

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// The messages a connection's reader task sends its ingest actor.
pub(super) trait ReaderMsg: ractor::Message + Sized {
    /// Bytes read; the actor answers once they are processed, and only
    /// then is the next read made (backpressure to the sender).
    fn input(bytes: Bytes, reply: RpcReplyPort<()>) -> Self;
    /// The peer closed the connection, reading failed or it idled out.
    fn closed(reason: String) -> Self;
}

/// Reads the connection for `actor` until it closes, fails, idles out
/// (`idle` with no bytes, when there is one: a session with liveness of
/// its own has none) or the actor stops answering.
pub(super) fn spawn_reader<M: ReaderMsg>(
    mut read: OwnedReadHalf,
    idle: Option<Duration>,
    actor: ActorRef<M>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        loop {
            buf.reserve(READ_SIZE);
            let read = read.read_buf(&mut buf);
            let result = match idle {
                Some(idle) => tokio::time::timeout(idle, read).await,
                None => Ok(read.await),
            };
            let reason = match result {
                Err(_) => format!("no data for {} s", idle.unwrap_or_default().as_secs()),
                Ok(Ok(0)) => "the peer closed the connection".to_owned(),
                Ok(Err(err)) => format!("read failed: {err}"),
                Ok(Ok(_)) => {
                    let bytes = buf.split().freeze();
                    match actor.call(|reply| M::input(bytes, reply), None).await {
                        Ok(ractor::rpc::CallResult::Success(())) => continue,
                        _ => return,
                    }
                }
            };
            let _ = actor.cast(M::closed(reason));
            return;
        }
    })
}

/// The publish of one push connection, whatever its protocol: hands the
/// session's tracks and samples to the stream, and ends the publish the way
/// the session ended (a failure becomes the stream's `last_error`).
pub(super) struct IngestPublish {
    protocol: &'static str,
    remote: SocketAddr,
    publisher: Option<Publisher>,
}

impl IngestPublish {
    pub(super) fn new(protocol: &'static str, remote: SocketAddr) -> Self {
        IngestPublish {
            protocol,
            remote,
            publisher: None,
        }
    }

    pub(super) fn start(&mut self, publisher: Publisher) {
        tracing::info!(remote = %self.remote, stream = %publisher.stream().name(), "{}: publishing", self.protocol);
        if let Some(old) = self.publisher.replace(publisher) {
            old.finish(None);
        }
    }

    /// Hands the tracks to the stream; `false` when the publish cannot go on
    /// (it ended with the reason): close the session.
    pub(super) fn tracks(&mut self, tracks: Vec<Track>) -> bool {
        let Some(p) = &self.publisher else {
            return true;
        };
        let result = p.take_tracks(tracks);
        self.ended_by(result)
    }

    /// Hands a sample to the stream; `false` as for [`tracks`](Self::tracks).
    pub(super) fn sample(&mut self, sample: Sample) -> bool {
        let Some(p) = &self.publisher else {
            return true;
        };
        let result = p.take_sample(sample);
        self.ended_by(result)
    }

    fn ended_by(&mut self, result: Result<(), super::stream::PublishEnded>) -> bool {
        let Err(err) = result else {
            return true;
        };
        let reason = err.to_string();
        tracing::warn!(remote = %self.remote, %reason, "{}: publish ended", self.protocol);
        if let Some(p) = self.publisher.take() {
            p.finish(Some(reason));
        }
        false
    }

    /// The session says the publish ended cleanly.
    pub(super) fn unpublished(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.finish(None);
        }
    }

    /// The session ended: how it ended is logged, and a failure is recorded
    /// as the stream's last error.
    pub(super) fn closed(&mut self, end: &SessionEnd) {
        match end.error() {
            Some(error) => {
                tracing::warn!(remote = %self.remote, %error, "{}: session failed", self.protocol);
            }
            None => {
                tracing::info!(remote = %self.remote, reason = %end, "{}: session closed", self.protocol)
            }
        }
        if let Some(p) = self.publisher.take() {
            p.finish(end.error().map(str::to_owned));
        }
    }
}

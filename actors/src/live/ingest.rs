//! What the push listeners (RTMP, RTSP) share: the accept loop with its
//! connection limit, and writing a session's output with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::Actor;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Live;
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

/// Writes every chunk `next` yields, each within `timeout`; the reason
/// when the peer is gone or stopped reading.
pub(super) async fn write_out(
    writer: &mut OwnedWriteHalf,
    timeout: Duration,
    mut next: impl FnMut() -> Option<Bytes>,
) -> Result<(), String> {
    while let Some(out) = next() {
        match tokio::time::timeout(timeout, writer.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("write failed: {err}")),
            Err(_) => return Err("the peer stopped reading".to_owned()),
        }
    }
    Ok(())
}

//! The SRT listener and one `SrtIngest` actor per publisher.
//!
//! SRT itself (handshake, ARQ, TSBPD, AES) is `srt-tokio`'s; the payload is
//! MPEG-TS, demuxed by the sans-IO
//! [`TsSession`](streamforge_protocols::ts::TsSession). A caller names its
//! stream with the SRT Access Control stream id: `#!::r=live/{stream},m=publish`
//! or the short `publish:live/{stream}`; `{stream}` is a stream key, or a
//! name with `?key=…`, exactly as for RTMP. The decision (key, mode,
//! passphrase, a publisher already live) is made before the handshake
//! completes, so a refused caller gets an SRT rejection code, never a
//! connection that goes nowhere.
//!
//! `srt-tokio` runs the listener in a task of its own; should that task
//! end (it panics on a few malformed handshakes), [`serve`] binds the port
//! again, so one bad datagram costs the SRT sessions of that moment, never
//! the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use srt_tokio::access::{
    AccessControlList, ConnectionMode, RejectReason, ServerRejectReason, StandardAccessControlEntry,
};
use srt_tokio::options::{KeySize, PacketSize, Passphrase};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use streamforge_protocols::media::SessionEnd;
use streamforge_protocols::ts::{TsEvent, TsSession};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ingest::IngestPublish;
use super::{IngestProtocol, Live, PublishError};
use crate::supervision::BranchKind;
use streamforge_protocols::rtmp::PublishRejection;

/// What the listener is told at start.
#[derive(Clone, Debug)]
pub struct SrtOptions {
    /// The receiver's latency (TSBPD): how long SRT may spend recovering a
    /// lost packet. The caller's own latency wins when larger.
    pub latency: Duration,
    /// Callers must encrypt with this passphrase (10 to 79 bytes); `None`:
    /// callers must not encrypt.
    pub passphrase: Option<String>,
}

/// Largest payload announced in the handshake. libsrt reads the field as
/// its MSS (a whole packet, headers included), so 1316, srt-tokio's
/// default, would leave a libsrt caller 1272-byte payloads and no room for
/// the seven TS packets (1316 bytes) every encoder sends.
const PAYLOAD_SIZE: u64 = 1456;

/// How long an accepted caller's handshake may take to complete.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the stream may take to take one message: past it the session
/// ends rather than stall srt-tokio's connection (whose listener task
/// serves every SRT session).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound SRT listener, ready for [`serve`].
pub struct Bound {
    listener: SrtListener,
    incoming: SrtIncoming,
    addr: SocketAddr,
    options: SrtOptions,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds the SRT port.
pub async fn bind(addr: SocketAddr, options: &SrtOptions) -> std::io::Result<Bound> {
    let socket = UdpSocket::bind(addr).await?;
    let addr = socket.local_addr()?;
    let (listener, incoming) = SrtListener::builder()
        .socket(socket)
        .latency(options.latency)
        .set(|o| {
            o.sender.max_payload_size = PacketSize(PAYLOAD_SIZE);
        })
        .bind(addr)
        .await?;
    Ok(Bound {
        listener,
        incoming,
        addr,
        options: options.clone(),
    })
}

/// Takes SRT callers until `shutdown`; each accepted publisher becomes an
/// `SrtIngest` actor under the live branch. At most
/// `live.max_connections` at once; past that a caller is refused.
pub async fn serve(bound: Bound, live: Live, shutdown: CancellationToken) {
    let addr = bound.addr;
    let options = bound.options.clone();
    let slots = Arc::new(Semaphore::new(live.options().max_connections));
    let mut current = Some(bound);
    loop {
        let Some(mut bound) = current.take() else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match bind(addr, &options).await {
                Ok(bound) => {
                    tracing::info!(%addr, "srt: listening again");
                    current = Some(bound);
                }
                Err(err) => tracing::error!(%addr, %err, "srt: cannot bind again; retrying"),
            }
            continue;
        };
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => {
                    close(bound.listener).await;
                    return;
                }
                request = bound.incoming.incoming().next() => request,
            };
            let Some(request) = request else {
                tracing::error!(%addr, "srt: the listener stopped; binding the port again");
                break;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(remote = %request.remote(), "srt: connection limit reached; refusing");
                tokio::spawn(reject(request, ServerRejectReason::Overload));
                continue;
            };
            let (live, options) = (live.clone(), options.clone());
            tokio::spawn(async move {
                caller(request, &options, live).await;
                drop(permit);
            });
        }
        close(bound.listener).await;
    }
}

/// Closes a listener whose task may have died (`SrtListener::close`
/// unwraps the task's result).
async fn close(mut listener: SrtListener) {
    let _ = tokio::spawn(async move { listener.close().await }).await;
}

async fn reject(request: ConnectionRequest, reason: ServerRejectReason) {
    let _ = request.reject(RejectReason::Server(reason)).await;
}

/// What a caller asked for in its stream id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Publish to `app`/`name` (`name` may carry `?key=…`).
    Publish { app: String, name: String },
    /// Anything but publishing (playing, a bidirectional session).
    OtherMode(String),
}

/// Why a stream id names nothing to publish to.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StreamIdError {
    #[error("stream id {id:?} is not an access control list ({reason})")]
    NotAList { id: String, reason: String },
    #[error("stream id {0:?} has no r= resource")]
    NoResource(String),
    #[error("stream id {0:?}: use #!::r=live/{{stream}},m=publish or publish:live/{{stream}}")]
    Unknown(String),
    #[error("resource {0:?}: use live/{{stream}}")]
    NoApplication(String),
}

/// Reads a stream id: the Access Control form (`#!::r=…,m=…`) or the short
/// `publish:{resource}` form, percent-encoded or not (FFmpeg 5.1 passes its
/// URL's `streamid=` through undecoded, so users encode `#`, `,` and `?`
/// there); why not when it names no resource.
pub(crate) fn parse_stream_id(id: &str) -> Result<Request, StreamIdError> {
    let decoded = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    let id: &str = &decoded;
    let (resource, mode) = if id.starts_with("#!::") {
        let list: AccessControlList = id.parse().map_err(|err| StreamIdError::NotAList {
            id: id.to_owned(),
            reason: format!("{err:?}"),
        })?;
        let mut resource = None;
        let mut mode = None;
        for entry in list.0 {
            match StandardAccessControlEntry::try_from(entry) {
                Ok(StandardAccessControlEntry::ResourceName(r)) => resource = Some(r),
                Ok(StandardAccessControlEntry::Mode(m)) => mode = Some(m),
                _ => {}
            }
        }
        let resource = resource.ok_or_else(|| StreamIdError::NoResource(id.to_owned()))?;
        match mode {
            None | Some(ConnectionMode::Publish) => (resource, None),
            Some(other) => (resource, Some(other.to_string())),
        }
    } else if let Some(resource) = id.strip_prefix("publish:") {
        (resource.to_owned(), None)
    } else if let Some((mode, _)) = id.split_once(':')
        && matches!(mode, "read" | "play" | "request")
    {
        (String::new(), Some(mode.to_owned()))
    } else {
        return Err(StreamIdError::Unknown(id.to_owned()));
    };
    if let Some(mode) = mode {
        return Ok(Request::OtherMode(mode));
    }
    let Some((app, name)) = resource.split_once('/') else {
        return Err(StreamIdError::NoApplication(resource));
    };
    Ok(Request::Publish {
        app: app.to_owned(),
        name: name.to_owned(),
    })
}

/// Decides on one caller and, when accepted, runs its ingest actor.
async fn caller(request: ConnectionRequest, options: &SrtOptions, live: Live) {
    let remote = request.remote();
    let id = request
        .stream_id()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let (app, name) = match parse_stream_id(&id) {
        Ok(Request::Publish { app, name }) => (app, name),
        Ok(Request::OtherMode(mode)) => {
            tracing::info!(%remote, %mode, "srt: refused: only publishing (m=publish) is taken");
            return reject(request, ServerRejectReason::BadMode).await;
        }
        Err(reason) => {
            tracing::info!(%remote, %reason, "srt: refused");
            return reject(request, ServerRejectReason::BadRequest).await;
        }
    };
    // srt-tokio panics when it accepts a caller that encrypts without key
    // settings, or with another key length than the caller's. A libsrt
    // caller states its key length only when set (`pbkeylen`); without
    // it, the field says nothing (16 bytes are meant) and whether it
    // encrypts cannot be seen from here.
    let key_settings = match (&options.passphrase, request.key_size()) {
        // A caller that does not encrypt is refused by srt-tokio itself.
        (Some(passphrase), key_size) => match Passphrase::try_from(passphrase.clone()) {
            Ok(passphrase) => Some(srt_protocol::settings::KeySettings {
                key_size,
                passphrase,
            }),
            Err(err) => {
                tracing::error!(%err, "srt: the configured passphrase is unusable");
                return reject(request, ServerRejectReason::InternalServerError).await;
            }
        },
        (None, KeySize::Unspecified) => None,
        (None, _) => {
            tracing::info!(%remote, "srt: refused: the caller encrypts, the server has no passphrase");
            return reject(request, ServerRejectReason::Unauthorized).await;
        }
    };
    let decision = match live.authorize(&app, &name).await {
        Ok(stream) => {
            live.start_publish(&stream, IngestProtocol::Srt, remote.to_string())
                .await
        }
        Err(err) => Err(err),
    };
    let publisher = match decision {
        Ok(publisher) => publisher,
        Err(PublishError::Rejected(reason, code)) => {
            tracing::info!(%remote, %reason, "srt: publish refused");
            let code = match code {
                PublishRejection::BadName => ServerRejectReason::Forbidden,
                _ => ServerRejectReason::Conflict,
            };
            return reject(request, code).await;
        }
        Err(err @ (PublishError::Db(_) | PublishError::Unavailable(_))) => {
            tracing::error!(%remote, %err, "srt: cannot decide on the publish");
            return reject(request, ServerRejectReason::Down).await;
        }
    };
    // A handshake srt-tokio cannot finish (no SRT extension in the
    // conclusion) leaves `accept` waiting for good: bounded here, so the
    // publish and the connection slot are given back.
    let socket = match tokio::time::timeout(HANDSHAKE_TIMEOUT, request.accept(key_settings)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(err)) => {
            tracing::info!(%remote, %err, "srt: the handshake did not complete");
            publisher.finish(Some(format!("srt: the handshake did not complete: {err}")));
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "srt: the handshake did not complete in time");
            publisher.finish(Some(
                "srt: the handshake did not complete in time".to_owned(),
            ));
            return;
        }
    };
    let mut publish = IngestPublish::new("srt", remote);
    publish.start(publisher);
    let args = SrtIngestArgs {
        socket,
        remote,
        live: live.clone(),
        publish,
    };
    let branch = match live.supervision().branch(BranchKind::Live).await {
        Ok(branch) => branch,
        Err(err) => {
            tracing::error!(%err, "srt: no live branch");
            return;
        }
    };
    match Actor::spawn_linked(None, SrtIngest, args, branch.get_cell()).await {
        Ok((_, join)) => {
            let _ = join.await;
        }
        Err(err) => tracing::error!(%err, "srt: cannot start the ingest actor"),
    }
}

pub struct SrtIngest;

pub struct SrtIngestArgs {
    socket: SrtSocket,
    remote: SocketAddr,
    live: Live,
    publish: IngestPublish,
}

pub enum SrtIngestMsg {
    /// A payload from the caller; answered once processed.
    Input(Bytes, RpcReplyPort<()>),
    /// The caller closed, the connection broke or it idled out.
    Closed(SessionEnd),
}

pub struct SrtIngestState {
    session: TsSession,
    remote: SocketAddr,
    reader: JoinHandle<()>,
    publish: IngestPublish,
    ended: bool,
}

impl Actor for SrtIngest {
    type Msg = SrtIngestMsg;
    type State = SrtIngestState;
    type Arguments = SrtIngestArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let idle = args.live.options().idle_timeout;
        let reader = tokio::spawn(read(args.socket, idle, myself));
        Ok(SrtIngestState {
            session: TsSession::new(),
            remote: args.remote,
            reader,
            publish: args.publish,
            ended: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SrtIngestMsg::Input(bytes, reply) => {
                let result = state.session.push(&bytes);
                state.process_events();
                match result {
                    Err(err) => {
                        state.end(&SessionEnd::Failed(format!("srt: {err}")));
                        myself.stop(None);
                    }
                    Ok(()) if state.ended => myself.stop(None),
                    Ok(()) => {
                        let _ = reply.send(());
                    }
                }
            }
            SrtIngestMsg::Closed(end) => {
                let finished = state.session.finish();
                state.process_events();
                match finished {
                    Err(err) => state.end(&SessionEnd::Failed(format!("srt: {err}"))),
                    Ok(()) => state.end(&end),
                }
                myself.stop(None);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Dropping the socket (in the reader) ends the SRT connection.
        state.reader.abort();
        state.publish.unpublished();
        Ok(())
    }
}

impl SrtIngestState {
    fn process_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            let going = match event {
                TsEvent::Tracks(tracks) => self.publish.tracks(tracks),
                TsEvent::Sample(sample) => self.publish.sample(sample),
                TsEvent::Warning(warning) => {
                    tracing::warn!(remote = %self.remote, %warning, "srt: stream");
                    true
                }
            };
            if !going {
                self.ended = true;
            }
        }
    }

    fn end(&mut self, end: &SessionEnd) {
        self.ended = true;
        self.publish.closed(end);
    }
}

/// Reads the caller's payloads for `actor`, one in flight, until the
/// connection ends, idles `idle` without payloads, the actor stops
/// answering or takes longer than [`PROCESS_TIMEOUT`] over one (while it
/// does, srt-tokio's connection task waits too, and its listener task,
/// shared by every SRT session, once that connection's queue is full).
async fn read(mut socket: SrtSocket, idle: Duration, actor: ActorRef<SrtIngestMsg>) {
    let end = loop {
        match tokio::time::timeout(idle, socket.next()).await {
            Err(_) => {
                break SessionEnd::Failed(format!("srt: no data for {} s", idle.as_secs()));
            }
            Ok(None) => {
                break SessionEnd::ByPeer(
                    "the SRT connection ended (closed by the caller, or it stopped answering)"
                        .to_owned(),
                );
            }
            Ok(Some(Err(err))) => break SessionEnd::Failed(format!("srt: receive failed: {err}")),
            Ok(Some(Ok((_, bytes)))) => {
                let call = actor.call(
                    |reply| SrtIngestMsg::Input(bytes, reply),
                    Some(PROCESS_TIMEOUT),
                );
                match call.await {
                    Ok(ractor::rpc::CallResult::Success(())) => continue,
                    Ok(ractor::rpc::CallResult::Timeout) => {
                        break SessionEnd::Failed(format!(
                            "srt: the stream took more than {} s to take a message",
                            PROCESS_TIMEOUT.as_secs()
                        ));
                    }
                    _ => return,
                }
            }
        }
    };
    let stats = socket.statistics().next().await;
    if let Some(s) = stats {
        tracing::info!(
            received = s.rx_unique_data,
            lost = s.rx_loss_data,
            retransmitted = s.rx_retransmit_data,
            dropped = s.rx_dropped_data,
            "srt: connection statistics"
        );
    }
    let _ = actor.cast(SrtIngestMsg::Closed(end));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(app: &str, name: &str) -> Result<Request, StreamIdError> {
        Ok(Request::Publish {
            app: app.to_owned(),
            name: name.to_owned(),
        })
    }

    #[test]
    fn stream_ids_of_both_conventions() {
        assert_eq!(
            parse_stream_id("#!::r=live/cam,m=publish"),
            publish("live", "cam")
        );
        assert_eq!(
            parse_stream_id("#!::m=publish,r=live/cam"),
            publish("live", "cam")
        );
        assert_eq!(parse_stream_id("#!::r=live/cam"), publish("live", "cam"));
        assert_eq!(
            parse_stream_id("#!::r=live/cam?key=abc,m=publish,u=alice"),
            publish("live", "cam?key=abc")
        );
        assert_eq!(
            parse_stream_id("publish:live/sk_123"),
            publish("live", "sk_123")
        );
        assert_eq!(
            parse_stream_id("#!::r=live/cam,m=request"),
            Ok(Request::OtherMode("request".to_owned()))
        );
        assert_eq!(
            parse_stream_id("read:live/cam"),
            Ok(Request::OtherMode("read".to_owned()))
        );
        assert!(parse_stream_id("").is_err());
        assert!(parse_stream_id("cam").is_err());
        assert!(parse_stream_id("#!::m=publish").is_err());
        assert!(parse_stream_id("publish:cam").is_err());
    }
}

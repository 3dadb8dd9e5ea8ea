//! The RTMP listener and one `RtmpIngest` actor per connection.
//!
//! The actor owns the connection: a reader task hands it the bytes read
//! (one read in flight, so a slow packager slows the encoder through TCP,
//! never a queue), it feeds them to the sans-IO
//! [`ServerSession`](streamforge_protocols::rtmp::ServerSession), writes the
//! session's replies, decides publish requests against the stream keys and
//! pushes samples into its stream through an `IngestPublish` (its `Publisher`). Any protocol
//! error, idle timeout or refused publish ends the connection with a logged
//! reason; nothing else is touched.

use std::net::SocketAddr;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use streamforge_protocols::rtmp::{ServerConfig, ServerSession, SessionEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ingest::IngestPublish;
use super::{IngestProtocol, Live, PublishError};

/// Accepts RTMP connections until `shutdown`; each becomes an `RtmpIngest`
/// actor under the live branch.
pub async fn serve(listener: TcpListener, live: Live, shutdown: CancellationToken) {
    super::ingest::accept("rtmp", listener, live, shutdown, |socket, remote, live| {
        (
            RtmpIngest,
            RtmpIngestArgs {
                socket,
                remote,
                live,
            },
        )
    })
    .await;
}

pub struct RtmpIngest;

pub struct RtmpIngestArgs {
    pub socket: TcpStream,
    pub remote: SocketAddr,
    pub live: Live,
}

pub enum RtmpIngestMsg {
    /// Bytes from the encoder; answered once they are processed.
    Input(Bytes, RpcReplyPort<()>),
    /// The encoder closed the connection, or reading failed.
    Closed(String),
}

impl super::ingest::ReaderMsg for RtmpIngestMsg {
    fn input(bytes: Bytes, reply: RpcReplyPort<()>) -> Self {
        Self::Input(bytes, reply)
    }

    fn closed(reason: String) -> Self {
        Self::Closed(reason)
    }
}

pub struct RtmpIngestState {
    session: ServerSession,
    writer: OwnedWriteHalf,
    remote: SocketAddr,
    live: Live,
    reader: JoinHandle<()>,
    publish: IngestPublish,
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed
}

impl Actor for RtmpIngest {
    type Msg = RtmpIngestMsg;
    type State = RtmpIngestState;
    type Arguments = RtmpIngestArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (read, writer) = args.socket.into_split();
        let reader = super::ingest::spawn_reader(
            read,
            Some(args.live.options().idle_timeout),
            myself.clone(),
        );
        tracing::debug!(remote = %args.remote, "rtmp: connection");
        Ok(RtmpIngestState {
            session: ServerSession::new(ServerConfig {
                random_seed: random_seed(),
                ..ServerConfig::default()
            }),
            writer,
            remote: args.remote,
            live: args.live,
            reader,
            publish: IngestPublish::new("rtmp", args.remote),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RtmpIngestMsg::Input(bytes, reply) => {
                if let Err(err) = state.session.handle_input(&bytes) {
                    tracing::info!(remote = %state.remote, %err, "rtmp: protocol error; closing");
                }
                state.process_events().await;
                state.flush().await;
                if state.session.is_closed() {
                    myself.stop(None);
                } else {
                    let _ = reply.send(());
                }
            }
            RtmpIngestMsg::Closed(reason) => {
                tracing::info!(remote = %state.remote, %reason, "rtmp: connection closed");
                state.session.handle_eof();
                state.process_events().await;
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
        state.reader.abort();
        state.publish.unpublished();
        let _ = state.writer.shutdown().await;
        Ok(())
    }
}

impl RtmpIngestState {
    async fn flush(&mut self) {
        let timeout = self.live.options().idle_timeout;
        let session = &mut self.session;
        let written =
            super::ingest::write_out(&mut self.writer, timeout, || session.poll_transmit()).await;
        if let Err(reason) = written {
            tracing::info!(remote = %self.remote, %reason, "rtmp: closing");
            self.session.handle_eof();
        }
    }

    async fn process_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::ConnectRequested { app, tc_url } => {
                    tracing::debug!(remote = %self.remote, %app, ?tc_url, "rtmp: connect");
                }
                SessionEvent::PublishRequested {
                    request_id,
                    app,
                    stream_key,
                    ..
                } => self.decide(request_id, &app, &stream_key).await,
                SessionEvent::Tracks(tracks) => {
                    if !self.publish.tracks(tracks) {
                        self.session.handle_eof();
                    }
                }
                SessionEvent::Sample(sample) => {
                    if !self.publish.sample(sample) {
                        self.session.handle_eof();
                    }
                }
                SessionEvent::Metadata(meta) => {
                    tracing::debug!(remote = %self.remote, ?meta, "rtmp: onMetaData");
                }
                SessionEvent::Unsupported { codec } => {
                    tracing::warn!(remote = %self.remote, %codec, "rtmp: codec not supported; its media is dropped");
                }
                SessionEvent::Unpublished => self.publish.unpublished(),
                SessionEvent::Closed { reason } => self.publish.closed(&reason),
            }
        }
    }

    async fn decide(&mut self, request_id: u64, app: &str, name: &str) {
        let decision = match self.live.authorize(app, name).await {
            Ok(stream) => {
                self.live
                    .start_publish(&stream, IngestProtocol::Rtmp, self.remote.to_string())
                    .await
            }
            Err(err) => Err(err),
        };
        let result = match decision {
            Ok(publisher) => {
                self.publish.start(publisher);
                self.session.accept_publish(request_id)
            }
            Err(PublishError::Rejected(reason, code)) => {
                tracing::info!(remote = %self.remote, %reason, "rtmp: publish refused");
                self.session.reject_publish_with(request_id, code, &reason)
            }
            Err(err @ (PublishError::Db(_) | PublishError::Unavailable(_))) => {
                tracing::error!(remote = %self.remote, %err, "rtmp: cannot decide on the publish");
                self.session
                    .reject_publish(request_id, "the server cannot take the publish right now")
            }
        };
        if let Err(err) = result {
            tracing::warn!(remote = %self.remote, %err, "rtmp: publish decision failed");
        }
    }
}

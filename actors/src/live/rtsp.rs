//! The RTSP push listener (ANNOUNCE/RECORD) and one `RtspIngest` actor
//! per connection.
//!
//! The actor owns the connection the way `RtmpIngest` does: a reader task
//! hands it the bytes read (one read in flight, so a slow packager slows
//! the sender through TCP), it feeds them to the sans-IO
//! [`ServerSession`](streamforge_protocols::rtsp::ServerSession), writes
//! the replies, decides ANNOUNCE against the stream keys and pushes samples
//! into its stream through an `IngestPublish`.
//!
//! UDP transport: the server has one RTP and one RTCP socket
//! ([`UdpPorts`]) shared by every session; a datagram goes to the session
//! whose SETUP named its source address, through a bounded queue that
//! drops (and counts) when the session falls behind — UDP has no
//! backpressure to give. Liveness is the session's own timer
//! (`poll_timeout`/`handle_timeout`): the actor wakes it when it is due,
//! and a session with no bytes on TCP and no datagrams for
//! `live.idle_timeout` closes, its publish ending with that reason.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::time::Instant;
use streamforge_protocols::rtmp::PublishRejection;
use streamforge_protocols::rtsp::session::Refusal;
use streamforge_protocols::rtsp::{ServerConfig, ServerSession, SessionEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ingest::IngestPublish;
use super::{IngestProtocol, Live, PublishError};

/// Datagrams queued per session before new ones are dropped.
const UDP_QUEUE: usize = 1024;

/// A datagram for a session: its track, whether it came to the RTCP port.
struct Datagram {
    track: usize,
    rtcp: bool,
    data: Bytes,
}

struct Route {
    track: usize,
    rtcp: bool,
    to: mpsc::Sender<Datagram>,
}

/// The server's UDP sockets for RTP and RTCP, and where datagrams go.
#[derive(Clone)]
pub struct UdpPorts {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    routes: Arc<Mutex<HashMap<SocketAddr, Route>>>,
    dropped: Arc<AtomicU64>,
}

impl UdpPorts {
    /// Binds the RTP and RTCP sockets (port 0: any free port).
    pub async fn bind(ip: IpAddr, ports: [u16; 2]) -> std::io::Result<Self> {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, ports[0])).await?;
        let rtcp = UdpSocket::bind(SocketAddr::new(ip, ports[1])).await?;
        Ok(Self {
            rtp: Arc::new(rtp),
            rtcp: Arc::new(rtcp),
            routes: Arc::default(),
            dropped: Arc::default(),
        })
    }

    /// The RTP and RTCP port numbers, as SETUP answers them.
    pub fn ports(&self) -> std::io::Result<(u16, u16)> {
        Ok((
            self.rtp.local_addr()?.port(),
            self.rtcp.local_addr()?.port(),
        ))
    }

    /// Datagrams dropped because their session was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Route>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn receive(self, rtcp: bool, shutdown: CancellationToken) {
        let socket = if rtcp { &self.rtcp } else { &self.rtp };
        let mut buf = vec![0u8; 65_536];
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = socket.recv_from(&mut buf) => received,
            };
            let Ok((len, from)) = received else {
                // ICMP port unreachable and the like: nothing to do.
                continue;
            };
            let routes = self.routes();
            // Datagrams from addresses no SETUP named are ignored.
            let Some(route) = routes.get(&from) else {
                continue;
            };
            debug_assert_eq!(route.rtcp, rtcp);
            let datagram = Datagram {
                track: route.track,
                rtcp,
                data: Bytes::copy_from_slice(&buf[..len]),
            };
            if route.to.try_send(datagram).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Accepts RTSP connections until `shutdown`; each becomes an `RtspIngest`
/// actor under the live branch.
pub async fn serve(
    listener: TcpListener,
    udp: Option<UdpPorts>,
    live: Live,
    shutdown: CancellationToken,
) {
    if let Some(udp) = &udp {
        tokio::spawn(udp.clone().receive(false, shutdown.clone()));
        tokio::spawn(udp.clone().receive(true, shutdown.clone()));
    }
    super::ingest::accept(
        "rtsp",
        listener,
        live,
        shutdown,
        move |socket, remote, live| {
            (
                RtspIngest,
                RtspIngestArgs {
                    socket,
                    remote,
                    live,
                    udp: udp.clone(),
                },
            )
        },
    )
    .await;
}

pub struct RtspIngest;

pub struct RtspIngestArgs {
    pub socket: TcpStream,
    pub remote: SocketAddr,
    pub live: Live,
    pub udp: Option<UdpPorts>,
}

pub enum RtspIngestMsg {
    /// Bytes from the sender; answered once they are processed.
    Input(Bytes, RpcReplyPort<()>),
    /// A datagram for this session; answered once processed.
    Datagram(usize, bool, Bytes, RpcReplyPort<()>),
    /// The session's timer: wake it ([`ServerSession::handle_timeout`]).
    Timeout,
    /// The sender closed the connection, or reading failed.
    Closed(String),
}

impl super::ingest::ReaderMsg for RtspIngestMsg {
    fn input(bytes: Bytes, reply: RpcReplyPort<()>) -> Self {
        Self::Input(bytes, reply)
    }

    fn closed(reason: String) -> Self {
        Self::Closed(reason)
    }
}

pub struct RtspIngestState {
    session: ServerSession,
    writer: OwnedWriteHalf,
    remote: SocketAddr,
    live: Live,
    reader: JoinHandle<()>,
    publish: IngestPublish,
    udp: Option<UdpPorts>,
    /// Source addresses registered with the UDP ports.
    routed: Vec<SocketAddr>,
    datagrams: Option<mpsc::Sender<Datagram>>,
    forwarder: Option<JoinHandle<()>>,
}

impl Actor for RtspIngest {
    type Msg = RtspIngestMsg;
    type State = RtspIngestState;
    type Arguments = RtspIngestArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (read, writer) = args.socket.into_split();
        let idle = args.live.options().idle_timeout;
        // Liveness is the session's (TCP or UDP input keeps it alive): the
        // reader has no timeout of its own.
        let reader = super::ingest::spawn_reader(read, None, myself.clone());
        let udp_ports = args.udp.as_ref().and_then(|u| u.ports().ok());
        let session_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        tracing::debug!(remote = %args.remote, "rtsp: connection");
        let session = ServerSession::new(
            ServerConfig {
                session_id,
                timeout_secs: idle.as_secs().max(1),
                udp_ports,
            },
            Instant::now(),
        );
        arm_timer(&myself, &session);
        Ok(RtspIngestState {
            session,
            writer,
            remote: args.remote,
            live: args.live,
            reader,
            publish: IngestPublish::new("rtsp", args.remote),
            udp: args.udp,
            routed: Vec::new(),
            datagrams: None,
            forwarder: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RtspIngestMsg::Input(bytes, reply) => {
                if let Err(err) = state.session.handle_input(&bytes, Instant::now()) {
                    tracing::info!(remote = %state.remote, %err, "rtsp: protocol error; closing");
                }
                state.after_input(&myself).await;
                if !state.session.is_closed() {
                    let _ = reply.send(());
                }
            }
            RtspIngestMsg::Datagram(track, rtcp, data, reply) => {
                if let Err(err) = state.session.handle_udp(track, rtcp, &data, Instant::now()) {
                    tracing::info!(remote = %state.remote, %err, "rtsp: protocol error; closing");
                }
                state.after_input(&myself).await;
                if !state.session.is_closed() {
                    let _ = reply.send(());
                }
            }
            RtspIngestMsg::Timeout => {
                state.session.handle_timeout(Instant::now());
                state.after_input(&myself).await;
                arm_timer(&myself, &state.session);
            }
            RtspIngestMsg::Closed(reason) => {
                tracing::info!(remote = %state.remote, %reason, "rtsp: connection closed");
                state.session.handle_eof();
                state.process_events(&myself).await;
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
        if let Some(forwarder) = state.forwarder.take() {
            forwarder.abort();
        }
        if let Some(udp) = &state.udp {
            let mut routes = udp.routes();
            for addr in &state.routed {
                routes.remove(addr);
            }
        }
        state.publish.unpublished();
        let _ = state.writer.shutdown().await;
        Ok(())
    }
}

/// Wakes the actor when the session's timer is due (one timer at a time:
/// each wake-up sets the next).
fn arm_timer(myself: &ActorRef<RtspIngestMsg>, session: &ServerSession) {
    if let Some(due) = session.poll_timeout() {
        let wait = due.saturating_duration_since(Instant::now());
        myself.send_after(wait, || RtspIngestMsg::Timeout);
    }
}

impl RtspIngestState {
    async fn after_input(&mut self, myself: &ActorRef<RtspIngestMsg>) {
        self.process_events(myself).await;
        self.flush().await;
        if self.session.is_closed() {
            myself.stop(None);
        }
    }

    async fn flush(&mut self) {
        let timeout = self.live.options().idle_timeout;
        let session = &mut self.session;
        let written =
            super::ingest::write_out(&mut self.writer, timeout, || session.poll_transmit()).await;
        if let Err(reason) = written {
            tracing::info!(remote = %self.remote, %reason, "rtsp: closing");
            self.session.handle_eof();
        }
    }

    async fn process_events(&mut self, myself: &ActorRef<RtspIngestMsg>) {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::AnnounceRequested { request_id, path } => {
                    self.decide(request_id, &path).await;
                }
                SessionEvent::UdpSetup {
                    track,
                    rtp_port,
                    rtcp_port,
                } => self.route_udp(myself, track, rtp_port, rtcp_port),
                SessionEvent::Recording { transport } => {
                    tracing::info!(remote = %self.remote, %transport, "rtsp: recording");
                }
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
                SessionEvent::Warning(message) => {
                    tracing::warn!(remote = %self.remote, %message, "rtsp");
                }
                SessionEvent::Closed { reason } => {
                    tracing::debug!(
                        remote = %self.remote,
                        lost = self.session.lost(),
                        reordered = self.session.reordered(),
                        "rtsp: RTP packets lost and reordered"
                    );
                    self.publish.closed(&reason);
                }
            }
        }
    }

    fn route_udp(
        &mut self,
        myself: &ActorRef<RtspIngestMsg>,
        track: usize,
        rtp_port: u16,
        rtcp_port: u16,
    ) {
        let Some(udp) = &self.udp else {
            return;
        };
        let to = self
            .datagrams
            .get_or_insert_with(|| {
                let (tx, mut rx) = mpsc::channel::<Datagram>(UDP_QUEUE);
                let me = myself.clone();
                self.forwarder = Some(tokio::spawn(async move {
                    while let Some(d) = rx.recv().await {
                        let sent = me
                            .call(
                                |reply| RtspIngestMsg::Datagram(d.track, d.rtcp, d.data, reply),
                                None,
                            )
                            .await;
                        if !matches!(sent, Ok(ractor::rpc::CallResult::Success(()))) {
                            return;
                        }
                    }
                }));
                tx
            })
            .clone();
        let mut routes = udp.routes();
        for (port, rtcp) in [(rtp_port, false), (rtcp_port, true)] {
            let addr = SocketAddr::new(self.remote.ip(), port);
            if routes.contains_key(&addr) && !self.routed.contains(&addr) {
                tracing::warn!(remote = %self.remote, %addr, "rtsp: another session receives from this address; replaced");
            }
            routes.insert(
                addr,
                Route {
                    track,
                    rtcp,
                    to: to.clone(),
                },
            );
            self.routed.push(addr);
        }
    }

    async fn decide(&mut self, request_id: u64, path: &str) {
        let (app, name) = path.split_once('/').unwrap_or((path, ""));
        let decision = match self.live.authorize(app, name).await {
            Ok(stream) => {
                self.live
                    .start_publish(&stream, IngestProtocol::RtspPush, self.remote.to_string())
                    .await
            }
            Err(err) => Err(err),
        };
        match decision {
            Ok(publisher) => {
                self.publish.start(publisher);
                if let Err(err) = self.session.accept_announce(request_id) {
                    tracing::info!(remote = %self.remote, %err, "rtsp: protocol error; closing");
                }
            }
            Err(PublishError::Rejected(reason, code)) => {
                tracing::info!(remote = %self.remote, %reason, "rtsp: publish refused");
                let refusal = match code {
                    PublishRejection::BadName if app != "live" => Refusal::NotFound,
                    PublishRejection::BadName => Refusal::Unauthorized,
                    PublishRejection::Denied => Refusal::Forbidden,
                };
                self.session.reject_announce(request_id, refusal, &reason);
            }
            Err(err @ (PublishError::Db(_) | PublishError::Unavailable(_))) => {
                tracing::error!(remote = %self.remote, %err, "rtsp: cannot decide on the publish");
                self.session.reject_announce(
                    request_id,
                    Refusal::Unavailable,
                    "the server cannot take the publish right now",
                );
            }
        }
    }
}

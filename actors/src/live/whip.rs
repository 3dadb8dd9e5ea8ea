//! WHIP ingest (RFC 9725): WebRTC publishers — browsers, OBS, GStreamer —
//! and one `WhipSession` actor per publish.
//!
//! WebRTC itself (ICE-lite, DTLS-SRTP, RTP and RTCP, depacketizing) is
//! `str0m`'s, sans-IO; the media becomes tracks and samples in the sans-IO
//! [`WebrtcMedia`], and the publish is the same as RTMP's, RTSP's and SRT's.
//!
//! One UDP socket serves every session, so a firewall needs one port
//! (`live.webrtc_listen`). A datagram goes to the session whose address
//! sent it before, or, for the first STUN binding request from an address,
//! to the session whose ICE username fragment it names; through a bounded
//! queue that drops (and counts) when the session falls behind, as for RTSP
//! over UDP.
//!
//! The HTTP side ([`Whip::offer`], [`Whip::patch`], [`Whip::end`]) is in
//! the server crate: `POST /whip/{stream}` with the stream key as the
//! bearer token and the SDP offer answers `201` with the SDP answer and the
//! session's URL; `PATCH` on it trickles ICE candidates; `DELETE` ends it.
//! A session also ends when ICE is lost, when no media comes for
//! `live.idle_timeout`, or when ICE does not connect within
//! [`CONNECT_TIMEOUT`].
//!
//! Keyframes: a WebRTC encoder sends one when asked (PLI) and hardly
//! otherwise, and segments are cut at keyframes: the session asks for one
//! when the video has gone a segment's target duration without one, and
//! whenever frames were lost (until one comes, what arrives is dropped).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use streamforge_protocols::media::{self, SessionEnd};
use streamforge_protocols::webrtc::{WebrtcCodec, WebrtcEvent, WebrtcMedia};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ingest::IngestPublish;
use super::{IngestProtocol, Live, PublishError};
use crate::supervision::BranchKind;

/// Datagrams queued per session before new ones are dropped.
const QUEUE: usize = 1024;

/// How long a publisher has to connect (ICE and DTLS) after its offer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Keyframe requests are at least this far apart.
const KEYFRAME_REQUEST_SPACING: Duration = Duration::from_millis(500);

/// Largest datagram read.
const DATAGRAM_MAX: usize = 2048;

/// What the WHIP sessions are told at start.
#[derive(Clone, Debug)]
pub struct WhipOptions {
    /// Addresses given to publishers as the host candidates of the UDP
    /// port. Empty: the listen address, or, when that is unspecified
    /// (`0.0.0.0`), the address the publisher reached the HTTP server at.
    pub candidates: Vec<IpAddr>,
    /// Sessions at once, at most.
    pub max_sessions: usize,
}

/// Why an offer, a patch or an end was refused.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("the SDP offer cannot be read: {0}")]
    BadOffer(String),
    #[error(
        "the offer has no media the server can take: send H.264 video and/or Opus audio (sendonly)"
    )]
    NoUsableMedia,
    #[error("the offer cannot be answered: {0}")]
    Negotiation(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("no such WHIP session")]
    NotFound,
    #[error("the ICE fragment cannot be read: {0}")]
    BadFragment(String),
    #[error("ICE restarts are not supported: publish again with a new offer")]
    IceRestart,
    #[error("{0} WHIP sessions are running, the most this server takes")]
    Full(usize),
    #[error("no address to give the publisher as an ICE candidate: set live.webrtc_candidates")]
    NoCandidate,
    #[error("cannot start the session: {0}")]
    Start(String),
}

/// The answer to an accepted offer.
#[derive(Debug)]
pub struct WhipAnswer {
    /// The session's id, the last segment of its URL.
    pub id: String,
    pub sdp: String,
}

struct Datagram {
    source: SocketAddr,
    data: Bytes,
}

enum Control {
    Candidates(Vec<Candidate>),
    End,
}

/// Addresses a session's datagrams may come from, at most.
const ADDRS_PER_SESSION: usize = 8;

struct Route {
    to: mpsc::Sender<Datagram>,
    /// The addresses whose STUN named this session.
    addrs: Vec<SocketAddr>,
}

#[derive(Default)]
struct Routes {
    /// By our ICE username fragment.
    by_ufrag: HashMap<String, Route>,
    /// Each address, to the username fragment of its session.
    by_addr: HashMap<SocketAddr, String>,
}

/// A session slot taken by an offer being answered: given back when
/// dropped, unless kept.
struct Reserved<'a> {
    whip: &'a Whip,
    id: String,
    kept: bool,
}

impl Reserved<'_> {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.whip.forget(&self.id);
        }
    }
}

struct Handle {
    stream: String,
    ufrag: String,
    /// The publisher's ICE username fragment, from its offer.
    remote_ufrag: Option<String>,
    control: mpsc::Sender<Control>,
}

struct Inner {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    options: WhipOptions,
    routes: Mutex<Routes>,
    sessions: Mutex<HashMap<String, Handle>>,
    dropped: AtomicU64,
}

/// The WHIP sessions and their UDP socket; cheap to clone.
#[derive(Clone)]
pub struct Whip {
    inner: Arc<Inner>,
}

/// Binds the UDP socket every session shares.
pub async fn bind(addr: SocketAddr, options: WhipOptions) -> std::io::Result<Whip> {
    let socket = UdpSocket::bind(addr).await?;
    let local = socket.local_addr()?;
    Ok(Whip {
        inner: Arc::new(Inner {
            socket: Arc::new(socket),
            local,
            options,
            routes: Mutex::default(),
            sessions: Mutex::default(),
            dropped: AtomicU64::new(0),
        }),
    })
}

impl std::fmt::Debug for Whip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whip")
            .field("local", &self.inner.local)
            .field("sessions", &self.sessions().len())
            .finish_non_exhaustive()
    }
}

impl Whip {
    /// The UDP address sessions use.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Datagrams dropped because their session fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The host candidates of the socket for a publisher that reached the
    /// HTTP server at `reached`.
    fn candidates(&self, reached: Option<IpAddr>) -> Result<Vec<SocketAddr>, WhipError> {
        let port = self.inner.local.port();
        let ips: Vec<IpAddr> = if !self.inner.options.candidates.is_empty() {
            self.inner.options.candidates.clone()
        } else if !self.inner.local.ip().is_unspecified() {
            vec![self.inner.local.ip()]
        } else {
            reached.into_iter().collect()
        };
        if ips.is_empty() {
            return Err(WhipError::NoCandidate);
        }
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// Answers the offer of a publisher of `stream` (already authorized)
    /// from `remote`, which reached the HTTP server at `reached`; the
    /// session runs until it ends.
    pub async fn offer(
        &self,
        live: &Live,
        stream: &str,
        offer: &str,
        remote: SocketAddr,
        reached: Option<IpAddr>,
    ) -> Result<WhipAnswer, WhipError> {
        let remote_ufrag = ice_ufrag(offer);
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|err| WhipError::BadOffer(err.to_string()))?;
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(Instant::now());
        for addr in self.candidates(reached)? {
            let candidate =
                Candidate::host(addr, "udp").map_err(|err| WhipError::Start(err.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|err| WhipError::Negotiation(err.to_string()))?;
        let sdp = answer.to_sdp_string();
        let mids = received_media(&rtc, &sdp);
        if mids.is_empty() {
            return Err(WhipError::NoUsableMedia);
        }
        let kinds: Vec<media::MediaKind> = mids.iter().map(|(_, kind)| *kind).collect();
        let media = WebrtcMedia::new(&kinds).map_err(|_| WhipError::NoUsableMedia)?;
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (datagrams_tx, datagrams) = mpsc::channel(QUEUE);
        let (control_tx, control) = mpsc::channel(16);
        // The session's slot is taken (or refused) at once; until the
        // actor runs, dropping the guard (an error, or the client gone
        // while this waits) gives it back.
        let reserved = self.reserve(
            &id,
            Handle {
                stream: stream.to_owned(),
                ufrag: ufrag.clone(),
                remote_ufrag,
                control: control_tx,
            },
        )?;
        let publisher = live
            .start_publish(stream, IngestProtocol::Whip, remote.to_string())
            .await?;
        self.routes().by_ufrag.insert(
            ufrag,
            Route {
                to: datagrams_tx,
                addrs: Vec::new(),
            },
        );
        let mut publish = IngestPublish::new("whip", remote);
        publish.start(publisher);
        let keyframe_interval = {
            let segment = live.options().packaging.segment;
            Duration::from_secs_f64(segment.num as f64 / segment.den.max(1) as f64)
        };
        let session = Session {
            rtc,
            media,
            video: kinds.iter().position(|k| *k == media::MediaKind::Video),
            mids: mids.into_iter().map(|(mid, _)| mid).collect(),
            publish,
            socket: self.inner.socket.clone(),
            local: self.inner.local,
            datagrams,
            control,
            idle: live.options().idle_timeout,
            keyframes: Keyframes::new(keyframe_interval),
            reports: HashMap::new(),
        };
        let args = WhipSessionArgs {
            session,
            whip: self.clone(),
            id: id.clone(),
        };
        let branch = live
            .supervision()
            .branch(BranchKind::Live)
            .await
            .map_err(|err| WhipError::Start(err.to_string()))?;
        Actor::spawn_linked(None, WhipSession, args, branch.get_cell())
            .await
            .map_err(|err| WhipError::Start(err.to_string()))?;
        reserved.keep();
        Ok(WhipAnswer { id, sdp })
    }

    /// Trickled ICE candidates for session `id` of `stream`
    /// (`application/trickle-ice-sdpfrag`, RFC 8840).
    pub async fn patch(&self, stream: &str, id: &str, fragment: &str) -> Result<(), WhipError> {
        let control = self.control(stream, id)?;
        // A fragment names the publisher's credentials; new ones are an
        // ICE restart, which is not supported.
        let remote_ufrag = self.sessions().get(id).and_then(|h| h.remote_ufrag.clone());
        if let Some(ufrag) = ice_ufrag(fragment)
            && remote_ufrag.is_some_and(|known| known != ufrag)
        {
            return Err(WhipError::IceRestart);
        }
        let mut candidates = Vec::new();
        for line in fragment.lines().map(str::trim) {
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            if attr.starts_with("candidate:") {
                let candidate = Candidate::from_sdp_string(attr)
                    .map_err(|err| WhipError::BadFragment(err.to_string()))?;
                candidates.push(candidate);
            }
        }
        if !candidates.is_empty() {
            control
                .send(Control::Candidates(candidates))
                .await
                .map_err(|_| WhipError::NotFound)?;
        }
        Ok(())
    }

    /// Ends session `id` of `stream` (the publisher's `DELETE`).
    pub async fn end(&self, stream: &str, id: &str) -> Result<(), WhipError> {
        let control = self.control(stream, id)?;
        control
            .send(Control::End)
            .await
            .map_err(|_| WhipError::NotFound)
    }

    fn control(&self, stream: &str, id: &str) -> Result<mpsc::Sender<Control>, WhipError> {
        self.sessions()
            .get(id)
            .filter(|h| h.stream == stream)
            .map(|h| h.control.clone())
            .ok_or(WhipError::NotFound)
    }

    /// Takes a session slot for `id`, unless `max_sessions` are taken.
    fn reserve(&self, id: &str, handle: Handle) -> Result<Reserved<'_>, WhipError> {
        let max = self.inner.options.max_sessions;
        let mut sessions = self.sessions();
        if sessions.len() >= max {
            return Err(WhipError::Full(max));
        }
        sessions.insert(id.to_owned(), handle);
        Ok(Reserved {
            whip: self,
            id: id.to_owned(),
            kept: false,
        })
    }

    /// A session ended: its routes and handle go.
    fn forget(&self, id: &str) {
        let Some(handle) = self.sessions().remove(id) else {
            return;
        };
        let mut routes = self.routes();
        if let Some(route) = routes.by_ufrag.remove(&handle.ufrag) {
            for addr in route.addrs {
                routes.by_addr.remove(&addr);
            }
        }
    }

    /// Where a datagram from `source` goes: a STUN message to the session
    /// its username fragment names (ours first), anything else to the
    /// session that address's STUN went to. A session learns at most
    /// [`ADDRS_PER_SESSION`] addresses (the candidate pairs a publisher
    /// tries); str0m checks each binding request's integrity itself.
    fn route(&self, source: SocketAddr, data: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        let mut routes = self.routes();
        // RFC 7983: a first byte of 0-3 is STUN; DTLS, RTP and RTCP are
        // routed by address without being parsed as STUN.
        let stun = data
            .first()
            .is_some_and(|b| *b < 4)
            .then(|| str0m::ice::StunMessage::parse(data).ok())
            .flatten();
        let named = stun
            .as_ref()
            .and_then(|m| m.split_username())
            .map(|(ours, _)| ours);
        let Some(ufrag) = named else {
            let ufrag = routes.by_addr.get(&source)?;
            return routes.by_ufrag.get(ufrag).map(|r| r.to.clone());
        };
        let route = routes.by_ufrag.get_mut(ufrag)?;
        let to = route.to.clone();
        if !route.addrs.contains(&source) && route.addrs.len() < ADDRS_PER_SESSION {
            route.addrs.push(source);
            let ufrag = ufrag.to_owned();
            if let Some(previous) = routes.by_addr.insert(source, ufrag.clone())
                && previous != ufrag
                && let Some(other) = routes.by_ufrag.get_mut(&previous)
            {
                other.addrs.retain(|a| *a != source);
            }
        }
        Some(to)
    }
}

/// The first `a=ice-ufrag:` of an SDP (or SDP fragment).
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
        .map(|ufrag| ufrag.trim().to_owned())
}

/// The media the offer sends that the answer accepts, in order: each
/// m-section of the answer that has a port, receives and has a codec in
/// common (str0m's own view of it: `disabled` when none matched).
fn received_media(rtc: &Rtc, answer: &str) -> Vec<(Mid, media::MediaKind)> {
    let mut found = Vec::new();
    for section in answer.split("\nm=").skip(1) {
        let mut fields = section.split_whitespace();
        let kind = match fields.next() {
            Some("audio") => media::MediaKind::Audio,
            Some("video") => media::MediaKind::Video,
            _ => continue,
        };
        if fields.next() == Some("0") {
            continue;
        }
        let lines = || section.lines().map(str::trim);
        let receiving = lines().any(|l| l == "a=recvonly" || l == "a=sendrecv");
        let Some(mid) = lines().find_map(|l| l.strip_prefix("a=mid:")) else {
            continue;
        };
        let mid = Mid::from(mid);
        if receiving && rtc.media(mid).is_some_and(|m| !m.disabled()) {
            found.push((mid, kind));
        }
    }
    found
}

/// Reads the shared socket until `shutdown`, handing each datagram to its
/// session; datagrams of no session are dropped.
pub async fn serve(whip: Whip, shutdown: CancellationToken) {
    let socket = whip.inner.socket.clone();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let (n, source) = match received {
            Ok(pair) => pair,
            // ICMP port unreachable from a gone peer surfaces here on Linux.
            Err(err) => {
                tracing::debug!(%err, "whip: receive failed");
                continue;
            }
        };
        let data = &buf[..n];
        let Some(to) = whip.route(source, data) else {
            continue;
        };
        let datagram = Datagram {
            source,
            data: Bytes::copy_from_slice(data),
        };
        if to.try_send(datagram).is_err() {
            whip.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// When to ask the video for a keyframe.
struct Keyframes {
    interval: Duration,
    last_keyframe: Option<Instant>,
    last_request: Option<Instant>,
}

impl Keyframes {
    fn new(interval: Duration) -> Self {
        Keyframes {
            interval,
            last_keyframe: None,
            last_request: None,
        }
    }

    /// Whether to send a request now: asked for (`needed`), or the video
    /// went an interval without a keyframe; never closer than the spacing.
    fn due(&mut self, now: Instant, needed: bool) -> bool {
        let overdue = self
            .last_keyframe
            .is_some_and(|at| now.duration_since(at) >= self.interval);
        let spaced = self
            .last_request
            .is_none_or(|at| now.duration_since(at) >= KEYFRAME_REQUEST_SPACING);
        if (needed || overdue) && spaced {
            self.last_request = Some(now);
            return true;
        }
        false
    }
}

/// One publisher's WebRTC session and its publish.
struct Session {
    rtc: Rtc,
    media: WebrtcMedia,
    mids: Vec<Mid>,
    /// The video track's index, when the offer sends video.
    video: Option<usize>,
    publish: IngestPublish,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    datagrams: mpsc::Receiver<Datagram>,
    control: mpsc::Receiver<Control>,
    idle: Duration,
    keyframes: Keyframes,
    /// The latest sender report handed on, per track.
    reports: HashMap<usize, (SystemTime, u64)>,
}

/// NTP-format (32.32 fixed point) seconds since the Unix epoch: only
/// differences between a session's tracks count.
fn ntp(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs() << 32) + ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000)
}

impl Session {
    /// Runs until the session ends, and says how.
    async fn run(&mut self) -> SessionEnd {
        let connect_by = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut connected = false;
        let mut media_by = connect_by;
        loop {
            let wake = match self.drive(&mut connected, &mut media_by).await {
                Ok(wake) => wake,
                Err(end) => return end,
            };
            let wake = tokio::time::Instant::from_std(wake);
            tokio::select! {
                datagram = self.datagrams.recv() => {
                    let Some(datagram) = datagram else {
                        return SessionEnd::Failed("the WebRTC socket closed".to_owned());
                    };
                    let Ok(contents) = datagram.data.as_ref().try_into() else {
                        continue;
                    };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source: datagram.source,
                        destination: self.local,
                        contents,
                    });
                    // Not this session's (an address another one used, a
                    // forged source): dropped before it can fail it.
                    if !self.rtc.accepts(&input) {
                        continue;
                    }
                    if let Err(err) = self.rtc.handle_input(input) {
                        return SessionEnd::Failed(format!("webrtc: {err}"));
                    }
                }
                control = self.control.recv() => match control {
                    Some(Control::Candidates(candidates)) => {
                        for candidate in candidates {
                            self.rtc.add_remote_candidate(candidate);
                        }
                    }
                    Some(Control::End) | None => {
                        return SessionEnd::ByPeer("the publisher ended the session".to_owned());
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    if let Err(err) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return SessionEnd::Failed(format!("webrtc: {err}"));
                    }
                }
                () = tokio::time::sleep_until(media_by) => {
                    return SessionEnd::Failed(if connected {
                        format!("no media for {} s", self.idle.as_secs())
                    } else {
                        format!("ICE did not connect within {} s", CONNECT_TIMEOUT.as_secs())
                    });
                }
            }
        }
    }

    /// Sends what str0m has to send and handles its events until it next
    /// needs input; when it wants a timeout.
    async fn drive(
        &mut self,
        connected: &mut bool,
        media_by: &mut tokio::time::Instant,
    ) -> Result<Instant, SessionEnd> {
        loop {
            let output = self
                .rtc
                .poll_output()
                .map_err(|err| SessionEnd::Failed(format!("webrtc: {err}")))?;
            match output {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => {
                    // UDP: a send that fails is a datagram lost.
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => {
                    *connected = true;
                    *media_by = tokio::time::Instant::now() + self.idle;
                    tracing::info!("whip: connected");
                }
                // ICE comes and goes with the network (str0m says so of
                // Disconnected): a publisher that is really gone stops
                // sending media and the idle timeout ends the session.
                Output::Event(Event::IceConnectionStateChange(state)) => {
                    tracing::info!(?state, "whip: ICE");
                }
                Output::Event(Event::MediaData(data)) => {
                    *media_by = tokio::time::Instant::now() + self.idle;
                    self.media_data(data)?;
                }
                Output::Event(_) => {}
            }
        }
    }

    fn media_data(&mut self, data: MediaData) -> Result<(), SessionEnd> {
        let Some(track) = self.mids.iter().position(|m| *m == data.mid) else {
            return Ok(());
        };
        let spec = data.params.spec();
        let codec = match spec.codec {
            Codec::H264 => WebrtcCodec::H264,
            Codec::Opus => WebrtcCodec::Opus {
                channels: if data.params.spec().format.stereo == Some(true) {
                    2
                } else {
                    spec.channels.unwrap_or(2).min(2)
                },
            },
            _ => return Ok(()),
        };
        if let Some(info) = data.last_sender_info {
            let report = (info.ntp_time, info.rtp_time.numer());
            if self.reports.get(&track) != Some(&report) {
                self.reports.insert(track, report);
                let result = self
                    .media
                    .sender_report(track, ntp(info.ntp_time), report.1 as u32);
                result.map_err(|err| SessionEnd::Failed(format!("whip: {err}")))?;
            }
        }
        // The low 32 bits of str0m's extended RTP time are the wire's
        // timestamp, as the sender report's are: the timeline extends them
        // again itself.
        let result = self.media.frame(
            track,
            codec,
            data.time.numer() as u32,
            &data.data,
            data.contiguous,
        );
        self.process_events();
        result.map_err(|err| SessionEnd::Failed(format!("whip: {err}")))
    }

    fn process_events(&mut self) {
        let now = Instant::now();
        let mut needed = None;
        while let Some(event) = self.media.poll_event() {
            match event {
                WebrtcEvent::Tracks(tracks) => {
                    self.publish.tracks(tracks);
                }
                WebrtcEvent::Sample(sample) => {
                    // Track ids are the tracks' indexes plus one.
                    let index = sample.track.checked_sub(1).map(|i| i as usize);
                    if sample.keyframe && index.is_some() && index == self.video {
                        self.keyframes.last_keyframe = Some(now);
                    }
                    self.publish.sample(sample);
                }
                WebrtcEvent::KeyframeNeeded(track) => needed = Some(track),
                WebrtcEvent::Warning(warning) => tracing::warn!(%warning, "whip"),
            }
        }
        if let Some(track) = needed.or(self.video)
            && self.keyframes.due(now, needed.is_some())
            && let Some(mid) = self.mids.get(track).copied()
            && let Some(mut writer) = self.rtc.writer(mid)
        {
            let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
        }
    }
}

pub struct WhipSession;

pub struct WhipSessionArgs {
    session: Session,
    whip: Whip,
    id: String,
}

pub struct WhipSessionState {
    task: JoinHandle<()>,
    whip: Whip,
    id: String,
}

impl Actor for WhipSession {
    type Msg = ();
    type State = WhipSessionState;
    type Arguments = WhipSessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: WhipSessionArgs,
    ) -> Result<WhipSessionState, ActorProcessingErr> {
        let WhipSessionArgs {
            mut session,
            whip,
            id,
        } = args;
        let task = tokio::spawn(async move {
            // A panic in the WebRTC stack (remote input it did not expect)
            // fails this session only, and the actor still stops.
            let run = std::panic::AssertUnwindSafe(session.run());
            let end = futures::FutureExt::catch_unwind(run)
                .await
                .unwrap_or_else(|_| SessionEnd::Failed("webrtc: the session panicked".to_owned()));
            session.media.finish();
            session.process_events();
            session.publish.closed(&end);
            myself.stop(None);
        });
        Ok(WhipSessionState { task, whip, id })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut WhipSessionState,
    ) -> Result<(), ActorProcessingErr> {
        // Dropping the session drops its publisher: the publish ends.
        state.task.abort();
        state.whip.forget(&state.id);
        Ok(())
    }
}

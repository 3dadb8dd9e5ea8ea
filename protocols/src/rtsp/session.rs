//! One RTSP publish session (RFC 2326 §10: OPTIONS, ANNOUNCE, SETUP,
//! RECORD, TEARDOWN, GET_PARAMETER/SET_PARAMETER as keep-alives) on one TCP
//! connection, without IO.
//!
//! Call order:
//! 1. [`handle_input`](ServerSession::handle_input) with the bytes read
//!    from the connection; [`handle_udp`](ServerSession::handle_udp) with
//!    datagrams that arrived on the server's UDP ports from an address a
//!    [`SessionEvent::UdpSetup`] named; [`handle_timeout`](ServerSession::handle_timeout)
//!    when [`poll_timeout`](ServerSession::poll_timeout) says.
//! 2. Write everything [`poll_transmit`](ServerSession::poll_transmit)
//!    yields, in order.
//! 3. Act on every [`poll_event`](ServerSession::poll_event):
//!    `AnnounceRequested` needs [`accept_announce`](ServerSession::accept_announce)
//!    or [`reject_announce`](ServerSession::reject_announce) (requests after
//!    it wait in the input buffer until then), `Tracks` then `Sample`s feed
//!    a packager, `Closed` ends the connection.
//!
//! Liveness is the session's, with time passed in (as quinn-proto does):
//! every input says when it arrived, [`poll_timeout`](ServerSession::poll_timeout)
//! tells when the session must next be woken, and
//! [`handle_timeout`](ServerSession::handle_timeout) closes it (`Closed`
//! with a failure) once [`ServerConfig::timeout_secs`] passed without a
//! byte from the sender, over TCP or UDP. The same timeout is what the
//! `Session` header tells the sender.
//!
//! RTP carries presentation times only. Video samples get decode times from
//! [`DecodeTimes`] (the k-th frame takes the k-th smallest presentation
//! time; B-frames come out with negative composition offsets), with a
//! window of the reorder depth the SPS declares: no delay without B-frames.
//! A frame that reorders deeper than the window is dropped and counted
//! ([`ServerSession::reordered`]) and the window grows; audio frames that
//! step back are dropped the same way. Frames still waiting in the window
//! when the session ends are emitted before [`SessionEvent::Closed`].

use std::collections::VecDeque;

use bytes::Bytes;
use rtsp_types::headers::{self, Transports};
use rtsp_types::{Message, Method, Request, Response, StatusCode, Version};

use super::sdp::{self, MediaDescription, MediaFormat};
use super::timeline::Timeline;
use crate::codec::{AvcConfig, CodecConfig, HevcConfig};
use std::time::{Duration, Instant};

use crate::media::{Sample, SessionEnd, Track};
use crate::rtp::reorder::TrackTimes;
use crate::rtp::{self, Depacketizer, Frame};

/// Largest message taken: any interleaved frame (4 + 65535 bytes) and any
/// sane request with its SDP.
pub const MAX_MESSAGE: usize = 4 + 65_535;

/// Frames held while waiting for in-band parameter sets, at most.
const MAX_HELD: usize = 1_000;

const PUBLIC: &str = "OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The `Session` identifier handed out at SETUP (random, from the caller).
    pub session_id: String,
    /// Seconds without a byte from the sender before the session closes.
    pub timeout_secs: u64,
    /// The server's RTP and RTCP UDP ports, when UDP transport is offered.
    pub udp_ports: Option<(u16, u16)>,
}

/// How a track's packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP connection (RFC 2326 §10.12).
    Tcp,
    Udp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// Why a publish is refused, as an RTSP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no or a wrong key.
    Unauthorized,
    /// 403: not allowed (limits).
    Forbidden,
    /// 404: unknown path.
    NotFound,
    /// 503: the server cannot decide now.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// ANNOUNCE of `path` (`live/{stream}?key=…`, no leading slash).
    AnnounceRequested {
        request_id: u64,
        path: String,
    },
    /// Packets of `track` will come from the sender's `rtp_port` and
    /// `rtcp_port` (at the connection's address) to the server's UDP ports.
    UdpSetup {
        track: usize,
        rtp_port: u16,
        rtcp_port: u16,
    },
    /// RECORD accepted: media follows.
    Recording {
        transport: Transport,
    },
    /// The tracks, once every codec configuration is known; before any
    /// `Sample`.
    Tracks(Vec<Track>),
    Sample(Sample),
    /// Something the operator should know, once per kind and track.
    Warning(String),
    /// The session is over (TEARDOWN, a protocol error or end of input).
    Closed {
        reason: SessionEnd,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    /// Bytes that are no RTSP message; `offset` counts from the start of
    /// the connection, `near` shows what was there.
    #[error("malformed RTSP message at byte {offset}, near {near:?}")]
    Malformed { offset: u64, near: String },
    #[error("the message at byte {offset} is larger than {MAX_MESSAGE} bytes")]
    TooLarge { offset: u64 },
    #[error("track {track}: RTP packet {sequence}: payload type {got}, announced as {expected}")]
    PayloadType {
        track: usize,
        sequence: u16,
        expected: u8,
        got: u8,
    },
    #[error("track {track}: no parameter sets after {MAX_HELD} frames")]
    NoParameterSets { track: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Init,
    /// ANNOUNCE waits for the caller's decision.
    Deciding,
    Announced,
    Recording,
    Closed,
}

struct Pending {
    request_id: u64,
    version: Version,
    cseq: String,
    /// The ANNOUNCE carried no key (URL or credentials): a refusal for want
    /// of one asks for credentials instead of closing the session.
    may_challenge: bool,
}

/// Challenges for credentials answered on one connection before a refusal
/// closes it (a client that keeps sending none is not asked forever).
const MAX_CHALLENGES: u32 = 2;

/// The key an RTSP URL carries as a credential (`rtsp://user:KEY@host/…`).
/// Clients send URL credentials only as an `Authorization` header after a
/// `401` challenge (RFC 2326 §D.1.2 / RFC 7617 Basic); the password is the
/// key, or the user name when the password is empty.
fn basic_credential_key(value: &str) -> Option<String> {
    use base64::Engine as _;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    let key = if password.is_empty() { user } else { password };
    (!key.is_empty()).then(|| key.to_owned())
}

/// `url` without its query: what a track's `a=control` is appended to by
/// clients that put the query last (GStreamer's `…/cam/stream=1?key=…`).
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

struct Media {
    desc: MediaDescription,
    setup: bool,
    channels: Option<(u8, u8)>,
    depacketizer: Option<Depacketizer>,
    config: Option<CodecConfig>,
    /// Decode times, from publication on.
    times: TrackTimes,
    warned: bool,
}

impl Media {
    fn supported(&self) -> bool {
        !matches!(self.desc.format, MediaFormat::Unsupported(_))
    }

    fn used(&self) -> bool {
        self.setup && self.supported()
    }

    fn track(&self, index: usize) -> Option<Track> {
        let id = u32::try_from(index + 1).ok()?;
        Some(Track::new(id, self.desc.clock_rate, self.config.clone()?))
    }

    fn new_depacketizer(&self) -> Option<Depacketizer> {
        Some(match &self.desc.format {
            MediaFormat::H264(_) => Depacketizer::H264(rtp::h264::H264Depacketizer::new()),
            MediaFormat::H265(_) => Depacketizer::H265(rtp::h265::H265Depacketizer::new()),
            MediaFormat::Aac(_, params) => {
                Depacketizer::Aac(rtp::aac::AacDepacketizer::new(*params).ok()?)
            }
            MediaFormat::Latm(_) => Depacketizer::Latm(rtp::latm::LatmDepacketizer::new()),
            MediaFormat::Opus(_) => Depacketizer::Opus(rtp::opus::OpusDepacketizer::new()),
            MediaFormat::Unsupported(_) => return None,
        })
    }
}

pub struct ServerSession {
    config: ServerConfig,
    input: Vec<u8>,
    state: State,
    media: Vec<Media>,
    transport: Option<Transport>,
    timeline: Option<Timeline>,
    held: VecDeque<(usize, i64, Frame)>,
    published: bool,
    pending: Option<Pending>,
    next_request_id: u64,
    /// `401` challenges sent so far (at most [`MAX_CHALLENGES`]).
    challenges: u32,
    transmit: VecDeque<Bytes>,
    events: VecDeque<SessionEvent>,
    /// When the sender was last heard from (TCP or UDP).
    last_heard: Instant,
    /// Bytes of the connection consumed so far: where the input buffer
    /// starts, for the offsets errors report.
    consumed: u64,
}

fn header_str<B>(req: &Request<B>, name: &headers::HeaderName) -> Option<String> {
    req.header(name).map(|v| v.as_str().trim().to_owned())
}

impl ServerSession {
    /// A session whose connection was accepted at `now`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        Self {
            config,
            input: Vec::new(),
            state: State::Init,
            media: Vec::new(),
            transport: None,
            timeline: None,
            held: VecDeque::new(),
            published: false,
            pending: None,
            next_request_id: 1,
            challenges: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            last_heard: now,
            consumed: 0,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called;
    /// `None` once the session is closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then(|| self.last_heard + self.timeout())
    }

    /// Wakes the session at `now`: past the timeout without a byte from
    /// the sender, it closes (`Closed` with the reason).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Closed && now >= self.last_heard + self.timeout() {
            self.close(SessionEnd::Failed(format!(
                "no data from the sender for {} s",
                self.config.timeout_secs
            )));
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes to write to the connection, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Access units lost to missing packets, over all tracks.
    pub fn lost(&self) -> u64 {
        self.media
            .iter()
            .filter_map(|m| m.depacketizer.as_ref())
            .map(Depacketizer::lost)
            .sum()
    }

    /// Frames dropped because they stepped back in time.
    pub fn reordered(&self) -> u64 {
        self.media.iter().map(|m| m.times.dropped()).sum()
    }

    /// The connection ended.
    pub fn handle_eof(&mut self) {
        self.close(SessionEnd::ByPeer("the connection closed".to_owned()));
    }

    /// Bytes read from the connection. An error closes the session (a
    /// `Closed` event says why); the caller writes what is left to
    /// transmit and closes the connection.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), RtspError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.last_heard = self.last_heard.max(now);
        self.input.extend_from_slice(data);
        self.process()
    }

    /// A datagram from the sender's RTP or RTCP port of `track`.
    pub fn handle_udp(
        &mut self,
        track: usize,
        rtcp: bool,
        data: &[u8],
        now: Instant,
    ) -> Result<(), RtspError> {
        if self.state != State::Recording || self.transport != Some(Transport::Udp) {
            return Ok(());
        }
        self.last_heard = self.last_heard.max(now);
        let result = if rtcp {
            self.rtcp(track, data);
            Ok(())
        } else {
            self.rtp(track, data)
        };
        self.fail_on(result)
    }

    fn fail_on(&mut self, result: Result<(), RtspError>) -> Result<(), RtspError> {
        if let Err(err) = &result {
            self.close(SessionEnd::Failed(err.to_string()));
        }
        result
    }

    fn close(&mut self, reason: SessionEnd) {
        if self.state != State::Closed {
            self.state = State::Closed;
            // Frames waiting for followers to fix their decode times.
            for index in 0..self.media.len() {
                while let Some(timed) = self.media[index].times.flush() {
                    self.emit_timed(index, timed);
                }
            }
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }

    fn process(&mut self) -> Result<(), RtspError> {
        let mut pos = 0;
        let result = loop {
            if self.state == State::Closed || self.pending.is_some() || pos == self.input.len() {
                break Ok(());
            }
            match Message::<Vec<u8>>::parse(&self.input[pos..]) {
                Ok((message, used)) => {
                    pos += used;
                    let handled = match message {
                        Message::Request(request) => self.request(request),
                        Message::Data(data) => {
                            let channel = data.channel_id();
                            self.interleaved(channel, &data.into_body())
                        }
                        // Answers to requests we never send.
                        Message::Response(_) => Ok(()),
                    };
                    if let Err(err) = handled {
                        break Err(err);
                    }
                }
                Err(rtsp_types::ParseError::Incomplete(_)) => {
                    if self.input.len() - pos > MAX_MESSAGE {
                        break Err(RtspError::TooLarge {
                            offset: self.consumed + pos as u64,
                        });
                    }
                    break Ok(());
                }
                Err(rtsp_types::ParseError::Error) => {
                    let shown =
                        String::from_utf8_lossy(&self.input[pos..self.input.len().min(pos + 32)])
                            .into_owned();
                    self.respond_error(
                        Version::V1_0,
                        "0",
                        StatusCode::BadRequest,
                        "malformed request",
                    );
                    break Err(RtspError::Malformed {
                        offset: self.consumed + pos as u64,
                        near: shown,
                    });
                }
            }
        };
        self.input.drain(..pos);
        self.consumed += pos as u64;
        self.fail_on(result)
    }

    fn respond(
        &mut self,
        version: Version,
        cseq: &str,
        status: StatusCode,
        extra: Vec<(headers::HeaderName, String)>,
        body: Option<(&str, Vec<u8>)>,
    ) {
        let mut builder = Response::builder(version, status);
        if status == StatusCode::Ok {
            // RFC 2326 §7.1.1 spells it "OK" (rtsp-types writes "Ok").
            builder = builder.reason_phrase("OK");
        }
        builder = builder.header(headers::CSEQ, cseq.to_owned()).header(
            headers::SERVER,
            format!("StreamForge/{}", env!("CARGO_PKG_VERSION")),
        );
        for (name, value) in extra {
            builder = builder.header(name, value);
        }
        let (content_type, body) = body.unwrap_or(("", Vec::new()));
        if !content_type.is_empty() {
            builder = builder.header(headers::CONTENT_TYPE, content_type.to_owned());
        }
        let response = builder.build(body);
        let mut out = Vec::with_capacity(256);
        if response.write(&mut out).is_ok() {
            self.transmit.push_back(Bytes::from(out));
        }
    }

    fn respond_error(&mut self, version: Version, cseq: &str, status: StatusCode, message: &str) {
        self.respond(
            version,
            cseq,
            status,
            Vec::new(),
            Some(("text/plain", format!("{message}\r\n").into_bytes())),
        );
    }

    fn session_header(&self) -> (headers::HeaderName, String) {
        (
            headers::SESSION,
            format!(
                "{};timeout={}",
                self.config.session_id, self.config.timeout_secs
            ),
        )
    }

    fn request(&mut self, req: Request<Vec<u8>>) -> Result<(), RtspError> {
        let version = match req.version() {
            Version::V2_0 => Version::V2_0,
            _ => Version::V1_0,
        };
        let Some(cseq) = header_str(&req, &headers::CSEQ) else {
            self.respond_error(version, "0", StatusCode::BadRequest, "CSeq is required");
            return Ok(());
        };
        // RFC 2326 §12.37: a wrong session identifier is 454.
        if let Some(session) = header_str(&req, &headers::SESSION) {
            let id = session.split(';').next().unwrap_or_default().trim();
            if self.media.iter().any(|m| m.setup) && id != self.config.session_id {
                self.respond_error(
                    version,
                    &cseq,
                    StatusCode::SessionNotFound,
                    "unknown session",
                );
                return Ok(());
            }
        }
        match req.method() {
            Method::Options => self.respond(
                version,
                &cseq,
                StatusCode::Ok,
                vec![(headers::PUBLIC, PUBLIC.to_owned())],
                None,
            ),
            Method::Announce => self.announce(&req, version, cseq),
            Method::Setup => self.setup(&req, version, &cseq),
            Method::Record => self.record(version, &cseq),
            Method::Teardown => {
                self.respond(version, &cseq, StatusCode::Ok, Vec::new(), None);
                self.close(SessionEnd::ByPeer("the sender sent TEARDOWN".to_owned()));
            }
            Method::GetParameter | Method::SetParameter => {
                let session = self.session_header();
                self.respond(version, &cseq, StatusCode::Ok, vec![session], None);
            }
            Method::Describe | Method::Play | Method::Pause => {
                self.respond(
                    version,
                    &cseq,
                    StatusCode::MethodNotAllowed,
                    vec![(headers::ALLOW, PUBLIC.to_owned())],
                    Some((
                        "text/plain",
                        b"this port takes pushes (ANNOUNCE/RECORD); watch over HLS or DASH\r\n"
                            .to_vec(),
                    )),
                );
            }
            _ => self.respond_error(
                version,
                &cseq,
                StatusCode::NotImplemented,
                "method not implemented",
            ),
        }
        Ok(())
    }

    fn announce(&mut self, req: &Request<Vec<u8>>, version: Version, cseq: String) {
        if self.state != State::Init {
            self.respond_error(
                version,
                &cseq,
                StatusCode::MethodNotValidInThisState,
                "ANNOUNCE was already sent",
            );
            return;
        }
        if let Some(kind) = header_str(req, &headers::CONTENT_TYPE)
            && !kind.eq_ignore_ascii_case("application/sdp")
        {
            self.respond_error(
                version,
                &cseq,
                StatusCode::UnsupportedMediaType,
                "ANNOUNCE takes application/sdp",
            );
            return;
        }
        let media = match sdp::parse(req.body()) {
            Ok(media) => media,
            Err(err) => {
                self.respond_error(version, &cseq, StatusCode::BadRequest, &err.to_string());
                return;
            }
        };
        if media.is_empty() {
            self.respond_error(
                version,
                &cseq,
                StatusCode::BadRequest,
                "the SDP has no media",
            );
            return;
        }
        if media
            .iter()
            .all(|m| matches!(m.format, MediaFormat::Unsupported(_)))
        {
            self.respond_error(
                version,
                &cseq,
                StatusCode::UnsupportedMediaType,
                "no H.264, H.265, AAC (mpeg4-generic or MP4A-LATM) or Opus media in the SDP",
            );
            return;
        }
        for m in &media {
            if let MediaFormat::Unsupported(what) = &m.format {
                self.events.push_back(SessionEvent::Warning(format!(
                    "{} media {what} is not supported; its packets are dropped",
                    m.media
                )));
            }
        }
        let Some(url) = req.request_uri() else {
            self.respond_error(version, &cseq, StatusCode::BadRequest, "no request URL");
            return;
        };
        let mut path = url.path().trim_start_matches('/').to_owned();
        let query = url.query().map(str::to_owned);
        let url_key = query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("key=")));
        let credential = header_str(req, &headers::AUTHORIZATION)
            .as_deref()
            .and_then(basic_credential_key);
        match (query, &credential) {
            (Some(query), Some(key)) if !url_key => {
                path = format!("{path}?{query}&key={key}");
            }
            (Some(query), _) => path = format!("{path}?{query}"),
            (None, Some(key)) => path = format!("{path}?key={key}"),
            (None, None) => {}
        }
        self.media = media
            .into_iter()
            .map(|desc| Media {
                config: desc.format.codec(),
                desc,
                setup: false,
                channels: None,
                depacketizer: None,
                times: TrackTimes::default(),
                warned: false,
            })
            .collect();
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.pending = Some(Pending {
            request_id,
            version,
            cseq,
            may_challenge: !url_key && credential.is_none() && self.challenges < MAX_CHALLENGES,
        });
        self.state = State::Deciding;
        self.events
            .push_back(SessionEvent::AnnounceRequested { request_id, path });
    }

    /// Accepts the ANNOUNCE `request_id`; buffered requests go on.
    pub fn accept_announce(&mut self, request_id: u64) -> Result<(), RtspError> {
        match self.pending.take() {
            Some(p) if p.request_id == request_id => {
                self.respond(p.version, &p.cseq, StatusCode::Ok, Vec::new(), None);
                self.state = State::Announced;
                self.process()
            }
            other => {
                self.pending = other;
                Ok(())
            }
        }
    }

    /// Refuses the ANNOUNCE `request_id` with a reason; the session closes.
    pub fn reject_announce(&mut self, request_id: u64, refusal: Refusal, reason: &str) {
        match self.pending.take() {
            Some(p) if p.request_id == request_id => {
                if refusal == Refusal::Unauthorized && p.may_challenge {
                    // Ask for the key as credentials; the client may ANNOUNCE
                    // again on this connection.
                    self.challenges += 1;
                    self.respond(
                        p.version,
                        &p.cseq,
                        StatusCode::Unauthorized,
                        vec![(
                            headers::WWW_AUTHENTICATE,
                            "Basic realm=\"StreamForge\"".to_owned(),
                        )],
                        Some(("text/plain", format!("{reason}\r\n").into_bytes())),
                    );
                    self.media.clear();
                    self.state = State::Init;
                    return;
                }
                let status = match refusal {
                    Refusal::Unauthorized => StatusCode::Unauthorized,
                    Refusal::Forbidden => StatusCode::Forbidden,
                    Refusal::NotFound => StatusCode::NotFound,
                    Refusal::Unavailable => StatusCode::ServiceUnavailable,
                };
                self.respond_error(p.version, &p.cseq, status, reason);
                self.close(SessionEnd::Failed(format!("publish refused: {reason}")));
            }
            other => self.pending = other,
        }
    }

    /// The media a SETUP URL names: by its `a=control` (relative or
    /// absolute), or the only one.
    fn media_for(&self, url: &str) -> Option<usize> {
        // ffmpeg appends the control to the whole URL (`…/cam?key=K/streamid=0`),
        // GStreamer to its path (`…/cam/stream=1?key=K`): try both.
        let candidates = [url, without_query(url)].map(|u| u.trim_end_matches('/'));
        let by_control = self.media.iter().position(|m| {
            m.desc.control.as_deref().is_some_and(|c| {
                let c = without_query(c).trim_end_matches('/');
                !c.is_empty()
                    && c != "*"
                    && candidates
                        .iter()
                        .any(|u| *u == c || u.ends_with(&format!("/{c}")))
            })
        });
        by_control.or_else(|| (self.media.len() == 1).then_some(0))
    }

    fn setup(&mut self, req: &Request<Vec<u8>>, version: Version, cseq: &str) {
        if !matches!(self.state, State::Announced) {
            self.respond_error(
                version,
                cseq,
                StatusCode::MethodNotValidInThisState,
                "SETUP comes after an accepted ANNOUNCE and before RECORD",
            );
            return;
        }
        let url = req
            .request_uri()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        let Some(index) = self.media_for(&url) else {
            self.respond_error(version, cseq, StatusCode::NotFound, "no such track");
            return;
        };
        let transports = match req.typed_header::<Transports>() {
            Ok(Some(t)) => t,
            _ => {
                self.respond_error(
                    version,
                    cseq,
                    StatusCode::UnsupportedTransport,
                    "a Transport header is required",
                );
                return;
            }
        };
        let chosen = transports.iter().find_map(|t| match t {
            headers::transport::Transport::Rtp(rtp) => match rtp.lower_transport {
                Some(headers::transport::RtpLowerTransport::Tcp) => Some((Transport::Tcp, rtp)),
                Some(headers::transport::RtpLowerTransport::Udp) | None
                    if self.config.udp_ports.is_some() && rtp.params.client_port.is_some() =>
                {
                    Some((Transport::Udp, rtp))
                }
                _ => None,
            },
            headers::transport::Transport::Other(_) => None,
        });
        let Some((transport, rtp)) = chosen else {
            let offered = if self.config.udp_ports.is_some() {
                "RTP/AVP/TCP (interleaved) or RTP/AVP (UDP with client_port)"
            } else {
                "RTP/AVP/TCP (interleaved)"
            };
            self.respond_error(
                version,
                cseq,
                StatusCode::UnsupportedTransport,
                &format!("this server takes {offered}"),
            );
            return;
        };
        if self.transport.is_some_and(|t| t != transport) {
            self.respond_error(
                version,
                cseq,
                StatusCode::UnsupportedTransport,
                "every track of a session uses the same transport",
            );
            return;
        }
        let reply = match transport {
            Transport::Tcp => {
                let default = u8::try_from(index * 2).unwrap_or(0);
                let (rtp_ch, rtcp_ch) = rtp
                    .params
                    .interleaved
                    .map_or((default, default + 1), |(a, b)| {
                        (a, b.unwrap_or(a.wrapping_add(1)))
                    });
                let taken = self.media.iter().enumerate().any(|(i, m)| {
                    i != index
                        && m.channels.is_some_and(|(a, b)| {
                            [a, b].contains(&rtp_ch) || [a, b].contains(&rtcp_ch)
                        })
                });
                if taken {
                    self.respond_error(
                        version,
                        cseq,
                        StatusCode::UnsupportedTransport,
                        "interleaved channels already in use",
                    );
                    return;
                }
                self.media[index].channels = Some((rtp_ch, rtcp_ch));
                format!("RTP/AVP/TCP;unicast;interleaved={rtp_ch}-{rtcp_ch};mode=record")
            }
            Transport::Udp => {
                let (client_rtp, client_rtcp) = rtp.params.client_port.unwrap_or((0, None));
                let client_rtcp = client_rtcp.unwrap_or(client_rtp.wrapping_add(1));
                let (server_rtp, server_rtcp) = self.config.udp_ports.unwrap_or_default();
                self.events.push_back(SessionEvent::UdpSetup {
                    track: index,
                    rtp_port: client_rtp,
                    rtcp_port: client_rtcp,
                });
                format!(
                    "RTP/AVP/UDP;unicast;client_port={client_rtp}-{client_rtcp};server_port={server_rtp}-{server_rtcp};mode=record"
                )
            }
        };
        self.transport = Some(transport);
        let m = &mut self.media[index];
        m.setup = true;
        m.depacketizer = m.new_depacketizer();
        let session = self.session_header();
        self.respond(
            version,
            cseq,
            StatusCode::Ok,
            vec![(headers::TRANSPORT, reply), session],
            None,
        );
    }

    fn record(&mut self, version: Version, cseq: &str) {
        if self.state != State::Announced || !self.media.iter().any(Media::used) {
            self.respond_error(
                version,
                cseq,
                StatusCode::MethodNotValidInThisState,
                "RECORD comes after SETUP of a supported track",
            );
            return;
        }
        let session = self.session_header();
        self.respond(version, cseq, StatusCode::Ok, vec![session], None);
        self.state = State::Recording;
        let rates: Vec<u32> = self.media.iter().map(|m| m.desc.clock_rate).collect();
        self.timeline = Some(Timeline::new(&rates));
        self.events.push_back(SessionEvent::Recording {
            transport: self.transport.unwrap_or(Transport::Tcp),
        });
        self.maybe_publish();
    }

    fn interleaved(&mut self, channel: u8, data: &[u8]) -> Result<(), RtspError> {
        if self.state != State::Recording {
            return Ok(());
        }
        let found = self.media.iter().enumerate().find_map(|(i, m)| {
            let (rtp, rtcp) = m.channels?;
            (channel == rtp)
                .then_some((i, false))
                .or((channel == rtcp).then_some((i, true)))
        });
        match found {
            Some((index, false)) => self.rtp(index, data),
            Some((index, true)) => {
                self.rtcp(index, data);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn warn_once(&mut self, index: usize, message: String) {
        if let Some(m) = self.media.get_mut(index)
            && !m.warned
        {
            m.warned = true;
            self.events.push_back(SessionEvent::Warning(message));
        }
    }

    fn rtcp(&mut self, index: usize, data: &[u8]) {
        let Ok(compound) = rtcp_types::Compound::parse(data) else {
            self.warn_once(index, format!("track {index}: malformed RTCP dropped"));
            return;
        };
        for packet in compound {
            if let Ok(rtcp_types::Packet::Sr(sr)) = packet
                && let Some(timeline) = &mut self.timeline
            {
                timeline.sender_report(index, sr.ntp_timestamp(), sr.rtp_timestamp());
            }
        }
        self.drain_timeline()
            .unwrap_or_else(|err| self.close(SessionEnd::Failed(err.to_string())));
    }

    fn rtp(&mut self, index: usize, data: &[u8]) -> Result<(), RtspError> {
        let Some(m) = self.media.get_mut(index) else {
            return Ok(());
        };
        let (info, payload) = match rtp::parse_packet(data) {
            Ok(parsed) => parsed,
            Err(err) => {
                let len = data.len();
                self.warn_once(
                    index,
                    format!("track {index}: {err} ({len}-byte packet); packet dropped"),
                );
                return Ok(());
            }
        };
        if info.payload_type != m.desc.payload_type {
            return Err(RtspError::PayloadType {
                track: index,
                sequence: info.sequence,
                expected: m.desc.payload_type,
                got: info.payload_type,
            });
        }
        let Some(depacketizer) = m.depacketizer.as_mut() else {
            return Ok(());
        };
        let pushed = depacketizer.push(&info, payload);
        if m.config.is_none() {
            m.config = in_band_config(depacketizer);
        }
        let mut frames = Vec::new();
        while let Some(frame) = depacketizer.pull() {
            frames.push(frame);
        }
        if let Err(err) = pushed {
            self.warn_once(index, format!("track {index}: {err}; packet dropped"));
        }
        if let Some(timeline) = &mut self.timeline {
            for frame in frames {
                timeline.push(index, frame);
            }
        }
        self.maybe_publish();
        self.drain_timeline()
    }

    fn maybe_publish(&mut self) {
        if self.published
            || self.state != State::Recording
            || self.media.iter().any(|m| m.used() && m.config.is_none())
        {
            return;
        }
        self.published = true;
        self.announce_tracks();
        for (index, time, frame) in std::mem::take(&mut self.held) {
            self.emit(index, time, frame);
        }
    }

    fn announce_tracks(&mut self) {
        let tracks: Vec<Track> = self
            .media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.used())
            .filter_map(|(i, m)| m.track(i))
            .collect();
        self.events.push_back(SessionEvent::Tracks(tracks));
    }

    fn drain_timeline(&mut self) -> Result<(), RtspError> {
        while let Some((index, time, frame)) = self.timeline.as_mut().and_then(Timeline::pull) {
            if self.published {
                self.emit(index, time, frame);
            } else {
                if self.held.len() >= MAX_HELD {
                    let track = self
                        .media
                        .iter()
                        .position(|m| m.used() && m.config.is_none())
                        .unwrap_or(index);
                    return Err(RtspError::NoParameterSets { track });
                }
                self.held.push_back((index, time, frame));
            }
        }
        Ok(())
    }

    fn emit(&mut self, index: usize, time: i64, frame: Frame) {
        let Some(m) = self.media.get_mut(index) else {
            return;
        };
        if let Err(depth) = m.times.push(m.config.as_ref(), time, frame) {
            if self.reordered() == 1 {
                self.events.push_back(SessionEvent::Warning(format!(
                    "track {index}: a frame out of presentation order beyond the reorder \
                     window ({depth} frames) was dropped; the window grows"
                )));
            }
            return;
        }
        while let Some(timed) = self.media[index].times.pull() {
            self.emit_timed(index, timed);
        }
    }

    fn emit_timed(&mut self, index: usize, timed: (i64, i64, Frame)) {
        let Some(m) = self.media.get_mut(index) else {
            return;
        };
        let frame = &timed.2;
        // An encoder that changes its parameter sets (GStreamer's x264enc
        // after a caps renegotiation, a camera switching resolution) sends
        // the new ones in band before its next keyframe: the tracks are
        // announced again, ahead of the first sample that needs them.
        if frame.keyframe
            && let Some(config) = m.config.as_ref().and_then(|c| c.changed_by(&frame.data))
        {
            m.config = Some(config);
            self.announce_tracks();
        }
        let Some(m) = self.media.get_mut(index) else {
            return;
        };
        let Ok(id) = u32::try_from(index + 1) else {
            return;
        };
        if let Some(sample) = m.times.sample(id, timed, m.desc.clock_rate / 25) {
            self.events.push_back(SessionEvent::Sample(sample));
        }
    }
}

/// A configuration from parameter sets the sender sent in band.
fn in_band_config(depacketizer: &Depacketizer) -> Option<CodecConfig> {
    match depacketizer {
        Depacketizer::H264(d) => {
            let (sps, pps) = d.parameter_sets()?;
            AvcConfig::from_parameter_sets(&[sps], &[pps])
                .ok()
                .map(CodecConfig::H264)
        }
        Depacketizer::H265(d) => {
            let (vps, sps, pps) = d.parameter_sets()?;
            HevcConfig::from_parameter_sets(&[vps], &[sps], &[pps])
                .ok()
                .map(CodecConfig::H265)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! The server side of one RTMP connection that publishes a stream: a sans-IO
//! state machine in the style of quinn-proto.
//!
//! # Call order
//!
//! 1. [`ServerSession::new`] when a TCP connection is accepted.
//! 2. For every read from the socket, [`ServerSession::handle_input`] with
//!    the bytes, in order; any split is fine, down to one byte per call.
//!    When the socket reaches end of file, [`ServerSession::handle_eof`].
//! 3. After each of those calls (and after `accept_publish` /
//!    `reject_publish`), write everything [`ServerSession::poll_transmit`]
//!    returns to the socket, and drain [`ServerSession::poll_event`].
//! 4. On [`SessionEvent::PublishRequested`], decide (look the stream key up)
//!    and call [`ServerSession::accept_publish`] or
//!    [`ServerSession::reject_publish`]. Media that arrives before the
//!    decision is held (up to [`ServerConfig::max_held_bytes`]) and released
//!    on accept, so clients that do not wait for `NetStream.Publish.Start`
//!    lose nothing.
//! 5. [`SessionEvent::Closed`] is always the last event. Flush
//!    `poll_transmit` once more (a rejection's `onStatus` is queued there),
//!    then close the socket. An `Err` from `handle_input` also queues
//!    `Closed`.
//!
//! # Flow (RTMP 1.0 §7.2, and what FFmpeg, OBS and GStreamer send)
//!
//! handshake → `connect` (answered at once: Window Acknowledgement Size, Set
//! Peer Bandwidth, Set Chunk Size, `_result` NetConnection.Connect.Success)
//! → `releaseStream`, `FCPublish` → `createStream` (`_result` with a stream
//! id) → `publish` (decided by the caller) → `@setDataFrame onMetaData`,
//! sequence headers, frames → `FCUnpublish`, `deleteStream`.
//!
//! `play` is refused (`NetStream.Play.Failed`): this server only ingests.
//! Media timing is described in [`super::flv`].

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::amf0::Amf0Value;
use super::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage};
use super::error::RtmpError;
use super::flv::{self, FlvDemuxer};
use super::handshake::{HandshakeKind, PACKET_LEN, ServerHandshake};
use super::message::{BandwidthLimit, Command, Message, UserControl, type_id};
use crate::media::{Sample, SessionEnd, Track};

/// Chunk stream for protocol control messages (RTMP 1.0 §5.4: "chunk stream ID 2").
const CSID_CONTROL: u32 = 2;
/// Chunk stream for connection-level command responses.
const CSID_COMMAND: u32 = 3;
/// Chunk stream for `onStatus` on a message stream.
const CSID_STATUS: u32 = 5;

/// Settings of a [`ServerSession`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Chunk size for what the server sends (announced after `connect`).
    pub chunk_size_out: u32,
    /// Window Acknowledgement Size sent to the client, and the window for
    /// our own Acknowledgements until the client announces its own.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth sent to the client.
    pub peer_bandwidth: u32,
    /// Longest message accepted, in bytes.
    pub max_message_len: u32,
    /// Most chunk streams a client may use at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partially received messages.
    pub max_pending_bytes: usize,
    /// Longest `app`, `tcUrl` and stream key accepted: 1024 bytes.
    pub max_url_len: usize,
    /// Most `createStream` calls answered on one connection.
    pub max_streams: u32,
    /// Most media bytes held while a publish request awaits a decision.
    pub max_held_bytes: usize,
    /// Fresh random bytes per connection (handshake padding).
    pub random_seed: [u8; 32],
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            chunk_size_out: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_len: 16 << 20,
            max_chunk_streams: 64,
            max_pending_bytes: 32 << 20,
            max_url_len: 1024,
            max_streams: 8,
            max_held_bytes: 8 << 20,
            random_seed: [0; 32],
        }
    }
}

/// The `publish` type argument (RTMP 1.0 §7.2.2.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishType {
    Live,
    Record,
    Append,
    Other(String),
}

impl PublishType {
    fn parse(s: Option<&str>) -> Self {
        match s {
            None | Some("live") | Some("") => Self::Live,
            Some("record") => Self::Record,
            Some("append") => Self::Append,
            Some(other) => Self::Other(other.to_owned()),
        }
    }
}

/// Which `onStatus` code a rejection sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishRejection {
    /// `NetStream.Publish.BadName`: no such stream key.
    BadName,
    /// `NetStream.Publish.Denied`: the key exists but may not publish now.
    Denied,
}

/// What the session tells its owner.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The client connected to an application; already accepted.
    ConnectRequested {
        app: String,
        tc_url: Option<String>,
    },
    /// The client asks to publish; answer with `accept_publish` or
    /// `reject_publish`.
    PublishRequested {
        request_id: u64,
        app: String,
        /// The stream name exactly as sent, query string included
        /// (`KEY?token=…`). When the name is empty and the app has a path
        /// (`rtmp://host/live/KEY` entered as the server URL), the last path
        /// segment of the app is the key and `app` is the rest.
        stream_key: String,
        /// The part of the stream name after `?`, if any.
        query: Option<String>,
        publish_type: PublishType,
    },
    /// The tracks after a sequence header changed them; sent before the
    /// first sample that follows.
    Tracks(Vec<Track>),
    Sample(Sample),
    /// `onMetaData` (an object or ECMA array).
    Metadata(Amf0Value),
    /// A codec seen for the first time whose media is dropped.
    Unsupported {
        codec: String,
    },
    /// The published stream ended cleanly (`FCUnpublish`, `deleteStream`,
    /// `closeStream`, or the client closed the connection while
    /// publishing). A session that fails while publishing ends with
    /// `Closed` alone, whose reason is the failure.
    Unpublished,
    /// The session is over; always the last event.
    Closed {
        reason: SessionEnd,
    },
}

#[derive(Debug)]
struct Publish {
    request_id: u64,
    stream_id: u32,
    stream_key: String,
    /// The client unpublished before the decision.
    withdrawn: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Chunks,
    Closed,
}

/// The server side of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    phase: Phase,
    handshake: ServerHandshake,
    input: BytesMut,
    output: BytesMut,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    events: VecDeque<SessionEvent>,
    received: u64,
    acked: u64,
    ack_window: u32,
    app: Option<String>,
    streams: Vec<u32>,
    next_stream_id: u32,
    next_request_id: u64,
    pending: Option<Publish>,
    held: Vec<SessionEvent>,
    held_bytes: usize,
    publishing: Option<Publish>,
    demux: FlvDemuxer,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        let limits = ChunkLimits {
            max_message_len: config.max_message_len,
            max_chunk_streams: config.max_chunk_streams,
            max_pending_bytes: config.max_pending_bytes,
        };
        Self {
            handshake: ServerHandshake::new(config.random_seed),
            ack_window: config.window_ack_size,
            config,
            phase: Phase::Handshake,
            input: BytesMut::new(),
            output: BytesMut::new(),
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            events: VecDeque::new(),
            received: 0,
            acked: 0,
            app: None,
            streams: Vec::new(),
            next_stream_id: 1,
            next_request_id: 1,
            pending: None,
            held: Vec::new(),
            held_bytes: 0,
            publishing: None,
            demux: FlvDemuxer::new(),
        }
    }

    /// Feeds bytes received from the client. Bytes after the session closed
    /// are ignored. On `Err`, the session is closed and `Closed` is queued.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.received += data.len() as u64;
        self.input.extend_from_slice(data);
        let result = self.process();
        match &result {
            Ok(()) => self.acknowledge(),
            Err(e) => {
                tracing::debug!(error = %e, "rtmp: closing on invalid input");
                self.close(SessionEnd::Failed(e.to_string()));
            }
        }
        result
    }

    /// The client closed its side. Whatever was not a complete message is dropped.
    pub fn handle_eof(&mut self) {
        self.close(SessionEnd::ByPeer(
            "the client closed the connection".to_owned(),
        ));
    }

    /// Bytes to write to the client, if any. Call after every `handle_*`,
    /// `accept_publish` and `reject_publish` until it returns `None`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.output.is_empty()).then(|| self.output.split().freeze())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Whether the session has ended (after `Closed` was queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The handshake form the client used, once known.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake.kind()
    }

    /// The current tracks of the published stream.
    pub fn tracks(&self) -> Vec<Track> {
        self.demux.tracks()
    }

    /// Accepts a publish request: sends Stream Begin and
    /// `NetStream.Publish.Start`, and releases media held since the request.
    pub fn accept_publish(&mut self, request_id: u64) -> Result<(), RtmpError> {
        let publish = self.take_pending(request_id)?;
        self.events.extend(self.held.drain(..));
        self.held_bytes = 0;
        if publish.withdrawn {
            return Ok(());
        }
        self.send(
            CSID_CONTROL,
            0,
            &Message::UserControl(UserControl::StreamBegin {
                stream_id: publish.stream_id,
            }),
        );
        let description = format!("{} is now published.", publish.stream_key);
        self.on_status(
            publish.stream_id,
            "status",
            "NetStream.Publish.Start",
            &description,
        );
        self.publishing = Some(publish);
        Ok(())
    }

    /// Refuses a publish request with `NetStream.Publish.Denied` and closes
    /// the session.
    pub fn reject_publish(&mut self, request_id: u64, reason: &str) -> Result<(), RtmpError> {
        self.reject_publish_with(request_id, PublishRejection::Denied, reason)
    }

    /// Refuses a publish request with the given code and `reason` as the
    /// description (say which of app or key was wrong), and closes the session.
    pub fn reject_publish_with(
        &mut self,
        request_id: u64,
        rejection: PublishRejection,
        reason: &str,
    ) -> Result<(), RtmpError> {
        let publish = self.take_pending(request_id)?;
        let code = match rejection {
            PublishRejection::BadName => "NetStream.Publish.BadName",
            PublishRejection::Denied => "NetStream.Publish.Denied",
        };
        self.on_status(publish.stream_id, "error", code, reason);
        self.held.clear();
        self.held_bytes = 0;
        self.close(SessionEnd::Failed(format!(
            "publish of {:?} rejected: {reason}",
            publish.stream_key
        )));
        Ok(())
    }

    fn take_pending(&mut self, request_id: u64) -> Result<Publish, RtmpError> {
        match self.pending.take() {
            Some(p) if p.request_id == request_id && self.phase != Phase::Closed => Ok(p),
            other => {
                self.pending = other;
                Err(RtmpError::UnknownRequest { request_id })
            }
        }
    }

    fn close(&mut self, reason: SessionEnd) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        if self.publishing.take().is_some() && reason.error().is_none() {
            self.events.push_back(SessionEvent::Unpublished);
        }
        self.pending = None;
        self.held.clear();
        self.events.push_back(SessionEvent::Closed { reason });
    }

    fn process(&mut self) -> Result<(), RtmpError> {
        if self.phase == Phase::Handshake {
            if !self.handshake.handle(&mut self.input, &mut self.output)? {
                return Ok(());
            }
            self.phase = Phase::Chunks;
            self.decoder.set_stream_offset(1 + 2 * PACKET_LEN as u64);
        }
        while self.phase == Phase::Chunks {
            let Some(raw) = self.decoder.decode(&mut self.input)? else {
                break;
            };
            let context = format!(
                "{} (type {}, csid {}, stream {})",
                type_name(raw.type_id),
                raw.type_id,
                raw.csid,
                raw.stream_id
            );
            self.handle_message(raw).map_err(|e| e.within(context))?;
        }
        Ok(())
    }

    /// RTMP 1.0 §5.4.3: acknowledge once the bytes received since the last
    /// acknowledgement reach the window.
    fn acknowledge(&mut self) {
        if self.phase != Phase::Chunks || self.ack_window == 0 {
            return;
        }
        if self.received - self.acked >= u64::from(self.ack_window) {
            self.acked = self.received;
            self.send(
                CSID_CONTROL,
                0,
                &Message::Acknowledgement {
                    sequence: self.received as u32,
                },
            );
        }
    }

    fn handle_message(&mut self, raw: RawMessage) -> Result<(), RtmpError> {
        match Message::decode(raw.type_id, raw.payload)? {
            Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            Message::Abort { csid } => self.decoder.abort(csid),
            Message::WindowAckSize(size) => self.ack_window = size,
            Message::UserControl(UserControl::PingRequest { timestamp }) => self.send(
                CSID_CONTROL,
                0,
                &Message::UserControl(UserControl::PingResponse { timestamp }),
            ),
            Message::Command(command) => self.handle_command(raw.stream_id, command)?,
            Message::Data(values) => self.handle_data(raw.stream_id, values),
            Message::Audio(body) => {
                self.handle_media(raw.stream_id, type_id::AUDIO, raw.timestamp, &body)?
            }
            Message::Video(body) => {
                self.handle_media(raw.stream_id, type_id::VIDEO, raw.timestamp, &body)?
            }
            Message::Aggregate(body) => {
                for (type_id, timestamp, body) in flv::split_aggregate(&body, raw.timestamp)? {
                    self.handle_media(raw.stream_id, type_id, timestamp, &body)?;
                }
            }
            // RTMP 1.0 §5.4.3–5.4.5, §6.2: nothing a publishing server needs
            // to act on. Unknown types (shared objects, future types) are
            // skipped, as the message length allows.
            Message::Acknowledgement { .. }
            | Message::SetPeerBandwidth { .. }
            | Message::UserControl(_)
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    fn is_media_stream(&self, stream_id: u32) -> Option<bool> {
        match (&self.publishing, &self.pending) {
            (Some(p), _) if p.stream_id == stream_id => Some(true),
            (_, Some(p)) if p.stream_id == stream_id && !p.withdrawn => Some(false),
            _ => None,
        }
    }

    fn emit_media(
        &mut self,
        live: bool,
        event: SessionEvent,
        bytes: usize,
    ) -> Result<(), RtmpError> {
        if live {
            self.events.push_back(event);
            return Ok(());
        }
        self.held_bytes += bytes;
        if self.held_bytes > self.config.max_held_bytes {
            return Err(RtmpError::limit(
                0,
                "publish",
                "media bytes before the publish decision",
                self.held_bytes as u64,
                self.config.max_held_bytes as u64,
            ));
        }
        self.held.push(event);
        Ok(())
    }

    fn handle_media(
        &mut self,
        stream_id: u32,
        type_id: u8,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<(), RtmpError> {
        let Some(live) = self.is_media_stream(stream_id) else {
            return Ok(());
        };
        let sample = match type_id {
            type_id::AUDIO => self.demux.push_audio(timestamp, body)?,
            type_id::VIDEO => self.demux.push_video(timestamp, body)?,
            type_id::DATA_AMF0 => {
                let values = super::amf0::decode_all(body)?;
                self.handle_data(stream_id, values);
                None
            }
            _ => None,
        };
        while let Some(codec) = self.demux.take_unsupported() {
            self.emit_media(live, SessionEvent::Unsupported { codec }, 0)?;
        }
        if let Some(sample) = sample {
            if let Some(tracks) = self.demux.take_changed_tracks() {
                self.emit_media(live, SessionEvent::Tracks(tracks), 0)?;
            }
            let len = sample.data.len();
            self.emit_media(live, SessionEvent::Sample(sample), len)?;
        }
        Ok(())
    }

    fn handle_data(&mut self, stream_id: u32, values: Vec<Amf0Value>) {
        let Some(live) = self.is_media_stream(stream_id) else {
            return;
        };
        let mut values = values.into_iter().peekable();
        // FFmpeg and OBS send `@setDataFrame("onMetaData", {...})`; the
        // prefix asks the server to store the frame for players.
        if values.peek().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
            values.next();
        }
        if values.next().as_ref().and_then(Amf0Value::as_str) != Some("onMetaData") {
            return;
        }
        if let Some(metadata) = values.next() {
            // Metadata adds no bytes worth counting against the hold cap.
            let _ = self.emit_media(live, SessionEvent::Metadata(metadata), 0);
        }
    }

    fn handle_command(&mut self, stream_id: u32, command: Command) -> Result<(), RtmpError> {
        tracing::debug!(name = %command.name, stream_id, "rtmp: command");
        let txn = command.transaction_id;
        let first_arg = command
            .args
            .first()
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        match command.name.as_str() {
            "connect" => self.connect(command)?,
            "createStream" => {
                if self.streams.len() >= self.config.max_streams as usize {
                    return Err(RtmpError::limit(
                        0,
                        "createStream",
                        "stream count",
                        self.streams.len() as u64 + 1,
                        u64::from(self.config.max_streams),
                    ));
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.push(id);
                self.result(txn, vec![Amf0Value::Null, Amf0Value::Number(f64::from(id))]);
            }
            "publish" => self.publish(stream_id, &command)?,
            "releaseStream" | "FCPublish" | "getStreamLength" => {
                let value = match command.name.as_str() {
                    "getStreamLength" => Amf0Value::Number(0.0),
                    _ => Amf0Value::Undefined,
                };
                if txn != 0.0 {
                    self.result(txn, vec![Amf0Value::Null, value]);
                }
            }
            "FCUnpublish" => {
                if let Some(key) = &first_arg {
                    self.unpublish(|p| &p.stream_key == key);
                }
                if txn != 0.0 {
                    self.result(txn, vec![Amf0Value::Null, Amf0Value::Undefined]);
                }
            }
            "deleteStream" | "closeStream" => {
                let target = match command.name.as_str() {
                    "deleteStream" => command
                        .args
                        .first()
                        .and_then(Amf0Value::as_number)
                        .map_or(0, |n| n as u32),
                    _ => stream_id,
                };
                self.unpublish(|p| p.stream_id == target);
                if command.name == "deleteStream" {
                    self.streams.retain(|&s| s != target);
                }
            }
            "play" | "play2" => {
                self.on_status(
                    stream_id,
                    "error",
                    "NetStream.Play.Failed",
                    "this server accepts publishing only",
                );
            }
            // Responses to calls the server never makes, and FMLE's
            // bandwidth-check chatter.
            "_result" | "_error" | "onStatus" | "onBWDone" | "_checkbw" => {}
            other => {
                if txn != 0.0 {
                    let info = status_object(
                        "error",
                        "NetConnection.Call.Failed",
                        &format!("unknown command {other:?}"),
                    );
                    self.send(
                        CSID_COMMAND,
                        0,
                        &Message::Command(Command::new("_error", txn, Amf0Value::Null, vec![info])),
                    );
                }
            }
        }
        Ok(())
    }

    fn connect(&mut self, command: Command) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::invalid(
                0,
                "connect",
                "a second connect on one connection",
            ));
        }
        let field = |key: &str| {
            command
                .object
                .get(key)
                .and_then(Amf0Value::as_str)
                .map(str::to_owned)
        };
        let app = field("app").unwrap_or_default();
        let tc_url = field("tcUrl");
        for (path, value) in [
            ("connect > app", Some(&app)),
            ("connect > tcUrl", tc_url.as_ref()),
        ] {
            let len = value.map_or(0, String::len);
            if len > self.config.max_url_len {
                return Err(RtmpError::limit(
                    0,
                    path,
                    "length",
                    len as u64,
                    self.config.max_url_len as u64,
                ));
            }
        }
        let object_encoding = command
            .object
            .get("objectEncoding")
            .and_then(Amf0Value::as_number)
            .unwrap_or(0.0);
        // RTMP 1.0 §7.2.1.1: Window Acknowledgement Size, Set Peer Bandwidth,
        // then (our choice) Set Chunk Size, then the `_result`.
        self.send(
            CSID_CONTROL,
            0,
            &Message::WindowAckSize(self.config.window_ack_size),
        );
        self.send(
            CSID_CONTROL,
            0,
            &Message::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit: BandwidthLimit::Dynamic,
            },
        );
        let chunk_size = self
            .config
            .chunk_size_out
            .clamp(1, super::chunk::MAX_CHUNK_SIZE);
        self.send(CSID_CONTROL, 0, &Message::SetChunkSize(chunk_size));
        self.encoder.set_chunk_size(chunk_size);
        let properties = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
        ]);
        let mut info = status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Amf0Value::Object(props) = &mut info {
            props.push((
                "objectEncoding".to_owned(),
                Amf0Value::Number(object_encoding),
            ));
        }
        self.result(command.transaction_id, vec![properties, info]);
        self.app = Some(app.clone());
        self.events
            .push_back(SessionEvent::ConnectRequested { app, tc_url });
        Ok(())
    }

    fn publish(&mut self, stream_id: u32, command: &Command) -> Result<(), RtmpError> {
        let Some(connected_app) = self.app.clone() else {
            return Err(RtmpError::invalid(0, "publish", "publish before connect"));
        };
        if stream_id == 0 || !self.streams.contains(&stream_id) {
            return Err(RtmpError::invalid(
                0,
                "publish",
                format!("message stream {stream_id} was not created with createStream"),
            ));
        }
        if self.pending.is_some() || self.publishing.is_some() {
            self.on_status(
                stream_id,
                "error",
                "NetStream.Publish.BadConnection",
                "this connection already publishes a stream",
            );
            return Ok(());
        }
        let name = command
            .args
            .first()
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        let publish_type = PublishType::parse(command.args.get(1).and_then(Amf0Value::as_str));
        // Users paste `rtmp://host/live/KEY` as the server
        // URL and leave the key empty (xiu issue #90).
        let (app, stream_key) = match (name.is_empty(), connected_app.rsplit_once('/')) {
            (true, Some((app, key))) => (app.to_owned(), key.to_owned()),
            _ => (connected_app, name.to_owned()),
        };
        if stream_key.len() > self.config.max_url_len {
            return Err(RtmpError::limit(
                0,
                "publish > stream name",
                "length",
                stream_key.len() as u64,
                self.config.max_url_len as u64,
            ));
        }
        let query = stream_key.split_once('?').map(|(_, q)| q.to_owned());
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.pending = Some(Publish {
            request_id,
            stream_id,
            stream_key: stream_key.clone(),
            withdrawn: false,
        });
        self.events.push_back(SessionEvent::PublishRequested {
            request_id,
            app,
            stream_key,
            query,
            publish_type,
        });
        Ok(())
    }

    /// Ends the publish (or the pending request) that `matches`. A pending
    /// request is only marked: its held events, now ending in `Unpublished`,
    /// are still released or dropped by the decision, so events do not
    /// depend on when the caller decides.
    fn unpublish(&mut self, matches: impl Fn(&Publish) -> bool) {
        if let Some(p) = self.pending.as_mut().filter(|p| !p.withdrawn && matches(p)) {
            p.withdrawn = true;
            self.held.push(SessionEvent::Unpublished);
            return;
        }
        if let Some(p) = self.publishing.take_if(|p| matches(p)) {
            let description = format!("{} is now unpublished.", p.stream_key);
            self.on_status(
                p.stream_id,
                "status",
                "NetStream.Unpublish.Success",
                &description,
            );
            self.events.push_back(SessionEvent::Unpublished);
        }
    }

    fn send(&mut self, csid: u32, stream_id: u32, message: &Message) {
        let payload = message.encode();
        // Only our own small messages are sent, far below the 16 MiB limit.
        if let Err(e) = self.encoder.write(
            csid,
            0,
            message.type_id(),
            stream_id,
            &payload,
            &mut self.output,
        ) {
            tracing::error!(error = %e, "rtmp: could not encode a message");
        }
    }

    fn result(&mut self, transaction_id: f64, mut values: Vec<Amf0Value>) {
        let object = if values.is_empty() {
            Amf0Value::Null
        } else {
            values.remove(0)
        };
        self.send(
            CSID_COMMAND,
            0,
            &Message::Command(Command::new("_result", transaction_id, object, values)),
        );
    }

    fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status_object(level, code, description);
        self.send(
            CSID_STATUS,
            stream_id,
            &Message::Command(Command::new("onStatus", 0.0, Amf0Value::Null, vec![info])),
        );
    }
}

fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

fn type_name(type_id: u8) -> &'static str {
    match type_id {
        type_id::SET_CHUNK_SIZE => "set chunk size",
        type_id::ABORT => "abort",
        type_id::ACKNOWLEDGEMENT => "acknowledgement",
        type_id::USER_CONTROL => "user control",
        type_id::WINDOW_ACK_SIZE => "window acknowledgement size",
        type_id::SET_PEER_BANDWIDTH => "set peer bandwidth",
        type_id::AUDIO => "audio",
        type_id::VIDEO => "video",
        type_id::DATA_AMF0 | type_id::DATA_AMF3 => "data",
        type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => "command",
        type_id::AGGREGATE => "aggregate",
        _ => "message",
    }
}

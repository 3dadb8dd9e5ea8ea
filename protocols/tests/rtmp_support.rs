//! A scripted RTMP client built from the crate's own encoders, and a driver
//! that feeds its bytes to a `ServerSession` in chosen splits. Shared by the
//! `rtmp_*` tests (each uses a part, hence `dead_code`).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use streamforge_protocols::rtmp::amf0::Amf0Value;
use streamforge_protocols::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits};
use streamforge_protocols::rtmp::handshake::PACKET_LEN;
use streamforge_protocols::rtmp::message::{Command, Message};
use streamforge_protocols::rtmp::{PublishRejection, ServerConfig, ServerSession, SessionEvent};

pub struct Client {
    encoder: ChunkEncoder,
    bytes: BytesMut,
}

impl Client {
    /// C0, a plain C1 (time and zero fields 0) and a C2 that echoes nothing
    /// (the server does not check it).
    pub fn handshake_plain() -> Self {
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&[3]);
        bytes.extend_from_slice(&[0; PACKET_LEN]);
        bytes.extend_from_slice(&[0; PACKET_LEN]);
        Self {
            encoder: ChunkEncoder::new(),
            bytes,
        }
    }

    /// Continues after a handshake the caller already wrote.
    pub fn after_handshake(handshake: &[u8]) -> Self {
        Self {
            encoder: ChunkEncoder::new(),
            bytes: BytesMut::from(handshake),
        }
    }

    pub fn set_chunk_size(&mut self, size: u32) {
        self.send(2, 0, 0, &Message::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    pub fn send(&mut self, csid: u32, stream_id: u32, timestamp: u32, message: &Message) {
        self.encoder
            .write(
                csid,
                timestamp,
                message.type_id(),
                stream_id,
                &message.encode(),
                &mut self.bytes,
            )
            .unwrap();
    }

    pub fn raw_message(&mut self, csid: u32, stream_id: u32, type_id: u8, payload: &[u8]) {
        self.encoder
            .write(csid, 0, type_id, stream_id, payload, &mut self.bytes)
            .unwrap();
    }

    pub fn command(
        &mut self,
        stream_id: u32,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) {
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.send(
            csid,
            stream_id,
            0,
            &Message::Command(Command::new(name, txn, object, args)),
        );
    }

    /// What FFmpeg 5.1 sends in `connect` when publishing.
    pub fn connect_object(app: &str) -> Amf0Value {
        Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
            ),
            (
                "tcUrl",
                Amf0Value::string(format!("rtmp://127.0.0.1:1935/{app}")),
            ),
        ])
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes.to_vec()
    }
}

/// What the driver answers to `PublishRequested`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    AcceptAtOnce,
    /// Accept only once every input byte was fed.
    AcceptAfterInput,
    RejectBadName,
}

/// Feeds `script` in pieces of the given sizes (cycled), answering publish
/// requests as a server would, then signals end of file. Returns every event
/// and every byte the session transmitted.
pub fn drive(script: &[u8], sizes: &[usize]) -> (Vec<SessionEvent>, Vec<u8>) {
    drive_with(script, sizes, Policy::AcceptAtOnce)
}

pub fn drive_with(script: &[u8], sizes: &[usize], policy: Policy) -> (Vec<SessionEvent>, Vec<u8>) {
    let mut session = ServerSession::new(ServerConfig {
        random_seed: [9; 32],
        ..ServerConfig::default()
    });
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut deferred = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < script.len() {
        let n = sizes[i % sizes.len()].clamp(1, script.len() - pos);
        let _ = session.handle_input(&script[pos..pos + n]);
        pos += n;
        i += 1;
        pump(&mut session, policy, &mut events, &mut out, &mut deferred);
    }
    // A request may be void by now (the session closed on bad input).
    for request_id in deferred.drain(..) {
        let _ = session.accept_publish(request_id);
    }
    pump(&mut session, policy, &mut events, &mut out, &mut deferred);
    session.handle_eof();
    pump(&mut session, policy, &mut events, &mut out, &mut deferred);
    (events, out)
}

fn pump(
    session: &mut ServerSession,
    policy: Policy,
    events: &mut Vec<SessionEvent>,
    out: &mut Vec<u8>,
    deferred: &mut Vec<u64>,
) {
    loop {
        while let Some(bytes) = session.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        let Some(event) = session.poll_event() else {
            return;
        };
        if let SessionEvent::PublishRequested { request_id, .. } = &event {
            match policy {
                Policy::AcceptAtOnce => {
                    let _ = session.accept_publish(*request_id);
                }
                Policy::AcceptAfterInput => deferred.push(*request_id),
                Policy::RejectBadName => {
                    let _ = session.reject_publish_with(
                        *request_id,
                        PublishRejection::BadName,
                        "unknown stream key: check the key in the stream name",
                    );
                }
            }
        }
        events.push(event);
    }
}

/// Decodes what the server sent after S0+S1+S2: `(message stream id, message)`.
pub fn server_messages(out: &[u8]) -> Vec<(u32, Message)> {
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut buf = BytesMut::from(&out[1 + 2 * PACKET_LEN..]);
    let mut messages = Vec::new();
    while let Some(raw) = decoder.decode(&mut buf).unwrap() {
        let message = Message::decode(raw.type_id, raw.payload).unwrap();
        if let Message::SetChunkSize(size) = message {
            decoder.set_chunk_size(size).unwrap();
        }
        messages.push((raw.stream_id, message));
    }
    assert!(buf.is_empty(), "server output ends inside a chunk");
    messages
}

/// Reads the tags of an FLV file: `(tag type, timestamp, body)` (FLV v10.1 §E.4.1).
pub fn flv_tags(file: &[u8]) -> Vec<(u8, u32, Bytes)> {
    assert_eq!(&file[..3], b"FLV");
    let header_len = u32::from_be_bytes(file[5..9].try_into().unwrap()) as usize;
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while pos + 11 <= file.len() {
        let h = &file[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = Bytes::copy_from_slice(&file[pos + 11..pos + 11 + size]);
        tags.push((h[0] & 0x1f, timestamp, body));
        pos += 11 + size + 4;
    }
    tags
}

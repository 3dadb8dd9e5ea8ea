//! The RTMP chunk stream (RTMP 1.0 §5.3): messages cut into chunks that
//! interleave on one connection, with header compression per chunk stream.
//!
//! # Call order
//!
//! - [`ChunkDecoder::decode`] takes the bytes received after the handshake
//!   and returns one complete message at a time. It consumes whole chunks
//!   only: when the buffer ends inside a chunk it returns `Ok(None)` and
//!   leaves those bytes for the next call, so any split of the byte stream
//!   gives the same messages. Call it until it returns `Ok(None)`, handling
//!   each message before decoding the next: a Set Chunk Size or Abort
//!   message changes how the following chunks are read
//!   ([`ChunkDecoder::set_chunk_size`], [`ChunkDecoder::abort`]).
//! - [`ChunkEncoder::write`] appends one message as chunks. Send a Set Chunk
//!   Size message *before* calling [`ChunkEncoder::set_chunk_size`].
//!
//! # Timestamps
//!
//! RTMP 1.0 §5.3.1.3: a timestamp field of 0xFFFFFF announces a 4-byte
//! extended timestamp after the message header. A type 3 chunk carries the
//! extended field again when the last type 0/1/2 header of its chunk stream
//! had one. A type 3 chunk that starts a new message adds the previous
//! header's timestamp field once more (for a type 0 header that is its
//! absolute timestamp, as FFmpeg and nginx-rtmp read and write it).
//! Timestamps are 32-bit milliseconds and wrap; arithmetic here wraps too.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::RtmpError;

/// The chunk size both directions start with (RTMP 1.0 §5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// RTMP 1.0 §5.4.1: the size field is 31 bits, "Valid sizes are 1 to
/// 2147483647 (0x7FFFFFFF) inclusive".
pub const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// Lowest chunk stream id a message may use (0 and 1 select longer basic
/// headers; RTMP 1.0 §5.3.1.1).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id a 3-byte basic header can express.
pub const MAX_CSID: u32 = 65_599;
/// Largest message length the 24-bit header field can express.
pub const MAX_WIRE_MESSAGE_LEN: u32 = 0x00ff_ffff;

const EXTENDED_TIMESTAMP: u32 = 0x00ff_ffff;

/// Checks a chunk size received in a Set Chunk Size message.
pub fn validate_chunk_size(size: u32) -> Result<u32, &'static str> {
    match size {
        0 => Err("chunk size 0"),
        s if s > MAX_CHUNK_SIZE => Err("chunk size has the reserved top bit set"),
        s => Ok(s),
    }
}

/// One reassembled message with its chunk-level header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it arrived on.
    pub csid: u32,
    /// Milliseconds, 32-bit, wrapping.
    pub timestamp: u32,
    pub type_id: u8,
    /// The message stream id (little-endian on the wire).
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Caps on what a peer can make the decoder hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted (the 24-bit length field allows 16 MiB − 1).
    pub max_message_len: u32,
    /// Most chunk streams with state at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partial messages across all chunk streams.
    pub max_pending_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_message_len: 16 << 20,
            max_chunk_streams: 64,
            max_pending_bytes: 32 << 20,
        }
    }
}

#[derive(Debug, Default)]
struct InStream {
    timestamp: u32,
    /// The timestamp field (delta, or absolute for type 0) of the last
    /// type 0/1/2 header, extended value included.
    ts_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    payload: BytesMut,
    in_progress: bool,
}

#[derive(Debug)]
struct MessageStart {
    timestamp: u32,
    ts_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

#[derive(Debug)]
struct Chunk {
    csid: u32,
    header_len: usize,
    payload_len: usize,
    start: Option<MessageStart>,
}

/// Reads chunks and reassembles messages.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, InStream>,
    offset: u64,
    pending: usize,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            offset: 0,
            pending: 0,
        }
    }

    /// Sets where the chunk stream starts in the connection (the handshake
    /// length), so error offsets count from the connection's first byte.
    pub fn set_stream_offset(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Bytes of the connection consumed so far, handshake included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies the peer's Set Chunk Size (RTMP 1.0 §5.4.1).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        self.chunk_size = validate_chunk_size(size)
            .map_err(|reason| RtmpError::invalid(self.offset, "set chunk size", reason))?;
        Ok(())
    }

    /// Discards the partial message of a chunk stream (RTMP 1.0 §5.4.2).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.pending = self.pending.saturating_sub(s.payload.len());
            s.payload = BytesMut::new();
            s.in_progress = false;
        }
    }

    /// Consumes whole chunks from `buf` until a message completes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            let Some(chunk) = self.peek(buf)? else {
                return Ok(None);
            };
            buf.advance(chunk.header_len);
            let data = buf.split_to(chunk.payload_len);
            self.offset += (chunk.header_len + chunk.payload_len) as u64;
            let state = self.streams.entry(chunk.csid).or_default();
            if let Some(m) = chunk.start {
                state.timestamp = m.timestamp;
                state.ts_field = m.ts_field;
                state.extended = m.extended;
                state.length = m.length;
                state.type_id = m.type_id;
                state.stream_id = m.stream_id;
                state.payload = BytesMut::new();
                state.in_progress = true;
            }
            state.payload.extend_from_slice(&data);
            self.pending += data.len();
            if state.payload.len() >= state.length as usize {
                state.in_progress = false;
                let payload = std::mem::take(&mut state.payload).freeze();
                self.pending = self.pending.saturating_sub(payload.len());
                return Ok(Some(RawMessage {
                    csid: chunk.csid,
                    timestamp: state.timestamp,
                    type_id: state.type_id,
                    stream_id: state.stream_id,
                    payload,
                }));
            }
        }
    }

    /// Parses the next chunk's header without consuming anything; `None`
    /// when the whole chunk has not arrived yet.
    fn peek(&self, buf: &[u8]) -> Result<Option<Chunk>, RtmpError> {
        let Some((fmt, csid, mut pos)) = basic_header(buf) else {
            return Ok(None);
        };
        let state = self.streams.get(&csid);
        self.check_header_type(fmt, csid, state)?;
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(header) = buf.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let field = match header {
            [a, b, c, ..] => u32::from_be_bytes([0, *a, *b, *c]),
            _ => 0,
        };
        let (extended, mut ts_field) = match (fmt, state) {
            (0..=2, _) => (field == EXTENDED_TIMESTAMP, field),
            (_, Some(s)) => (s.extended, s.ts_field),
            (_, None) => (false, 0),
        };
        if extended {
            let Some(&[e0, e1, e2, e3]) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            let ext = u32::from_be_bytes([e0, e1, e2, e3]);
            if fmt == 3 && state.is_some_and(|s| s.in_progress) {
                // RTMP 1.0 §5.3.1.3 repeats the extended timestamp on type 3
                // chunks. Policy: some encoders (older Wowza and librtmp
                // builds) omit it on continuation chunks; as SRS does, the
                // four bytes count as the field only when they equal the
                // value the message started with, else they are payload.
                if ext == ts_field {
                    pos += 4;
                }
            } else {
                pos += 4;
                ts_field = ext;
            }
        }
        let start = message_start(fmt, header, ts_field, extended, state);
        let payload_len = self.payload_len(start.as_ref(), state)?;
        if buf.len() < pos + payload_len {
            return Ok(None);
        }
        Ok(Some(Chunk {
            csid,
            header_len: pos,
            payload_len,
            start,
        }))
    }

    /// Refuses a header type the chunk stream's state does not allow (a
    /// compressed header with nothing to compress against, a new message
    /// while one is unfinished) and chunk streams past the limit.
    fn check_header_type(
        &self,
        fmt: u8,
        csid: u32,
        state: Option<&InStream>,
    ) -> Result<(), RtmpError> {
        let at = self.offset;
        let Some(s) = state else {
            if fmt != 0 {
                return Err(RtmpError::invalid(
                    at,
                    "chunk header > message header",
                    format!(
                        "type {fmt} header on chunk stream {csid}, which has no previous type 0 header"
                    ),
                ));
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(RtmpError::limit(
                    at,
                    "chunk header > basic header",
                    "chunk stream count",
                    self.streams.len() as u64 + 1,
                    self.limits.max_chunk_streams as u64,
                ));
            }
            return Ok(());
        };
        if fmt < 3 && s.in_progress {
            return Err(RtmpError::invalid(
                at,
                "chunk header > message header",
                format!(
                    "type {fmt} header on chunk stream {csid} while its message of {} bytes has only {} bytes",
                    s.length,
                    s.payload.len()
                ),
            ));
        }
        Ok(())
    }

    /// The payload bytes this chunk carries, within the message length and
    /// pending-bytes limits.
    fn payload_len(
        &self,
        start: Option<&MessageStart>,
        state: Option<&InStream>,
    ) -> Result<usize, RtmpError> {
        let at = self.offset;
        let (length, have) = match (start, state) {
            (Some(m), _) => {
                if m.length > self.limits.max_message_len {
                    return Err(RtmpError::limit(
                        at,
                        "chunk header > message length",
                        "message length",
                        u64::from(m.length),
                        u64::from(self.limits.max_message_len),
                    ));
                }
                (m.length as usize, 0)
            }
            (None, Some(s)) => (s.length as usize, s.payload.len()),
            (None, None) => (0, 0),
        };
        let payload_len = length.saturating_sub(have).min(self.chunk_size as usize);
        if self.pending + payload_len > self.limits.max_pending_bytes {
            return Err(RtmpError::limit(
                at,
                "chunk payload",
                "bytes in partial messages",
                (self.pending + payload_len) as u64,
                self.limits.max_pending_bytes as u64,
            ));
        }
        Ok(payload_len)
    }
}

/// The chunk basic header (RTMP 1.0 §5.3.1.1): format, chunk stream id and
/// its length; `None` until it has arrived. Ids 0 and 1 in the first byte
/// select the 2- and 3-byte forms, which count from 64.
fn basic_header(buf: &[u8]) -> Option<(u8, u32, usize)> {
    let b0 = *buf.first()?;
    let fmt = b0 >> 6;
    let (csid, len) = match b0 & 0x3f {
        0 => (64 + u32::from(*buf.get(1)?), 2),
        1 => (
            64 + u32::from(*buf.get(1)?) + 256 * u32::from(*buf.get(2)?),
            3,
        ),
        n => (u32::from(n), 1),
    };
    Some((fmt, csid, len))
}

/// The message a chunk starts, from its message header and the chunk
/// stream's previous one (RTMP 1.0 §5.3.1.2); `None` for a continuation.
fn message_start(
    fmt: u8,
    header: &[u8],
    ts_field: u32,
    extended: bool,
    state: Option<&InStream>,
) -> Option<MessageStart> {
    let length = || u24(header.get(3..6));
    let type_id = || header.get(6).copied().unwrap_or(0);
    match (fmt, state) {
        (3, Some(s)) if s.in_progress => None,
        (0, _) => Some(MessageStart {
            timestamp: ts_field,
            ts_field,
            extended,
            length: length(),
            type_id: type_id(),
            stream_id: header
                .get(7..11)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes),
        }),
        (1, Some(s)) => Some(MessageStart {
            timestamp: s.timestamp.wrapping_add(ts_field),
            ts_field,
            extended,
            length: length(),
            type_id: type_id(),
            stream_id: s.stream_id,
        }),
        (_, Some(s)) => Some(MessageStart {
            timestamp: s.timestamp.wrapping_add(ts_field),
            ts_field,
            extended,
            length: s.length,
            type_id: s.type_id,
            stream_id: s.stream_id,
        }),
        (_, None) => None,
    }
}

fn u24(b: Option<&[u8]>) -> u32 {
    match b {
        Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
        _ => 0,
    }
}

#[derive(Debug)]
struct OutStream {
    timestamp: u32,
    ts_field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Writes messages as chunks, compressing headers per chunk stream.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutStream>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Uses `size` (clamped to 1..=[`MAX_CHUNK_SIZE`]) for the following
    /// messages; the peer must already have been sent Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Appends one message. `csid` is clamped to [`MIN_CSID`]..=[`MAX_CSID`];
    /// payloads longer than [`MAX_WIRE_MESSAGE_LEN`] are refused.
    pub fn write(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), RtmpError> {
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_WIRE_MESSAGE_LEN)
            .ok_or_else(|| {
                RtmpError::limit(
                    0,
                    "chunk encoder > message length",
                    "message length",
                    payload.len() as u64,
                    u64::from(MAX_WIRE_MESSAGE_LEN),
                )
            })?;
        let (fmt, field) = match self.streams.get(&csid) {
            Some(p) if p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length != length || p.type_id != type_id {
                    (1, delta)
                } else if p.ts_field != delta {
                    (2, delta)
                } else {
                    (3, delta)
                }
            }
            _ => (0, timestamp),
        };
        let extended = field >= EXTENDED_TIMESTAMP;
        write_basic_header(fmt, csid, out);
        if fmt < 3 {
            let short = field.min(EXTENDED_TIMESTAMP);
            out.put_slice(&short.to_be_bytes()[1..]);
        }
        if fmt < 2 {
            out.put_slice(&length.to_be_bytes()[1..]);
            out.put_u8(type_id);
        }
        if fmt == 0 {
            out.put_u32_le(stream_id);
        }
        if extended {
            out.put_u32(field);
        }
        let mut chunks = payload.chunks(self.chunk_size as usize);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            write_basic_header(3, csid, out);
            if extended {
                out.put_u32(field);
            }
            out.put_slice(chunk);
        }
        self.streams.insert(
            csid,
            OutStream {
                timestamp,
                ts_field: field,
                length,
                type_id,
                stream_id,
            },
        );
        Ok(())
    }
}

fn write_basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => out.put_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.put_slice(&[fmt | 1, (id & 0xff) as u8, (id >> 8) as u8]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, len: usize) -> RawMessage {
        RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: (0..len).map(|i| (i * 7 + csid as usize) as u8).collect(),
        }
    }

    fn encode_all(messages: &[RawMessage], chunk_size: u32) -> (BytesMut, Vec<u8>) {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(chunk_size);
        let mut out = BytesMut::new();
        let mut fmts = Vec::new();
        for m in messages {
            let before = out.len();
            enc.write(
                m.csid,
                m.timestamp,
                m.type_id,
                m.stream_id,
                &m.payload,
                &mut out,
            )
            .unwrap();
            fmts.push(out[before] >> 6);
        }
        (out, fmts)
    }

    fn decode_all(bytes: &[u8], chunk_size: u32, step: usize) -> Vec<RawMessage> {
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        dec.set_chunk_size(chunk_size).unwrap();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                out.push(m);
            }
        }
        assert!(buf.is_empty());
        out
    }

    /// A sequence that exercises every header type, every basic header form
    /// and extended timestamps (also across the 32-bit wrap).
    fn script() -> Vec<RawMessage> {
        vec![
            msg(3, 0, 20, 0, 300),
            msg(4, 1000, 9, 1, 500), // type 0
            msg(4, 1033, 9, 1, 400), // type 1: length changed
            msg(4, 1066, 9, 1, 400), // type 3: delta 33 again
            msg(4, 1100, 9, 1, 400), // type 2: delta 34
            msg(4, 1134, 9, 1, 400), // type 3
            msg(64, 5, 8, 1, 10),    // 2-byte basic header
            msg(319, 5, 8, 1, 0),    // empty message
            msg(320, 5, 8, 1, 129),  // 3-byte basic header
            msg(65_599, 0x00ff_fffe, 8, 1, 260),
            msg(6, 0x00ff_ffff, 9, 1, 300), // extended, type 0
            msg(6, 0x0100_0000, 9, 1, 300), // delta 1, type 2
            msg(7, 0x0100_0000, 9, 1, 600), // extended type 0 with continuations
            msg(7, 0x0200_0000, 9, 1, 600), // type 3 with an extended delta
            msg(7, 0x0300_0000, 9, 1, 600), // and again
            msg(7, 5, 9, 1, 600),           // backwards: type 0 again
            msg(8, 0, 9, 1, 300),
            msg(8, 0x0200_0000, 9, 1, 300), // type 2 with an extended delta
            msg(8, 0xffff_ffff, 9, 1, 300), // extended delta up to the wrap
        ]
    }

    #[test]
    fn every_header_type_and_chunk_size_round_trips() {
        let messages = script();
        for chunk_size in [1, 2, 127, 128, 129, 4096, 65_536, MAX_CHUNK_SIZE] {
            let (bytes, fmts) = encode_all(&messages, chunk_size);
            for fmt in 0..4 {
                assert!(fmts.contains(&fmt), "no type {fmt} header: {fmts:?}");
            }
            for step in [1, 7, bytes.len()] {
                assert_eq!(
                    decode_all(&bytes, chunk_size, step),
                    messages,
                    "chunk size {chunk_size} step {step}"
                );
            }
        }
    }

    #[test]
    fn type_3_continuation_without_extended_timestamp_is_tolerated() {
        // A peer that omits the extended timestamp on continuation chunks.
        let mut bytes = BytesMut::new();
        bytes.put_u8(0x04);
        bytes.put_slice(&[0xff, 0xff, 0xff, 0, 0, 200, 9, 1, 0, 0, 0]);
        bytes.put_u32(0x0123_4567);
        bytes.put_slice(&[0xaa; 128]);
        bytes.put_u8(0xc4);
        bytes.put_slice(&[0xbb; 72]);
        let out = decode_all(&bytes, 128, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp, 0x0123_4567);
        assert_eq!(&out[0].payload[126..130], &[0xaa, 0xaa, 0xbb, 0xbb]);
    }

    #[test]
    fn timestamp_deltas_wrap_at_32_bits() {
        let mut bytes = BytesMut::new();
        // Type 0 at 0xFFFFFFF0 (extended), then a type 2 delta of 0x20.
        bytes.put_slice(&[0x04, 0xff, 0xff, 0xff, 0, 0, 1, 8, 1, 0, 0, 0]);
        bytes.put_u32(0xffff_fff0);
        bytes.put_u8(0xaa);
        bytes.put_slice(&[0x84, 0, 0, 0x20, 0xbb]);
        let out = decode_all(&bytes, 128, 1);
        assert_eq!(
            out.iter().map(|m| m.timestamp).collect::<Vec<_>>(),
            [0xffff_fff0, 0x10]
        );
    }

    #[test]
    fn chunk_size_limits() {
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        assert!(dec.set_chunk_size(0).is_err());
        assert!(dec.set_chunk_size(1 << 31).is_err());
        assert!(dec.set_chunk_size(MAX_CHUNK_SIZE).is_ok());
        assert!(dec.set_chunk_size(1).is_ok());
    }

    #[test]
    fn message_longer_than_cap_is_refused_before_buffering() {
        let limits = ChunkLimits {
            max_message_len: 1000,
            ..ChunkLimits::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        dec.set_stream_offset(3073);
        let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0, 0x03, 0xe9, 9, 1, 0, 0, 0][..]);
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                RtmpError::LimitExceeded {
                    value: 1001,
                    max: 1000,
                    offset: 3073,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.path(), Some("chunk header > message length"));
    }

    #[test]
    fn compressed_header_on_unknown_stream_is_invalid() {
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut buf = BytesMut::from(&[0x44, 0, 0, 0, 0, 0, 10, 9][..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(RtmpError::Invalid { .. })
        ));
    }

    #[test]
    fn chunk_stream_count_is_capped() {
        let limits = ChunkLimits {
            max_chunk_streams: 3,
            ..ChunkLimits::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        let messages: Vec<_> = (2..6).map(|csid| msg(csid, 0, 8, 1, 1)).collect();
        let (mut bytes, _) = encode_all(&messages, 128);
        for _ in 0..3 {
            assert!(dec.decode(&mut bytes).unwrap().is_some());
        }
        assert!(matches!(
            dec.decode(&mut bytes),
            Err(RtmpError::LimitExceeded { .. })
        ));
    }

    #[test]
    fn abort_discards_the_partial_message() {
        let (bytes, _) = encode_all(&[msg(4, 0, 9, 1, 200), msg(5, 0, 8, 1, 3)], 128);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        // First chunk of the 200-byte message only (12 header + 128 payload).
        let mut buf = BytesMut::from(&bytes[..140]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        dec.abort(4);
        // A new message may now start on chunk stream 4.
        let (fresh, _) = encode_all(&[msg(4, 9, 9, 1, 2)], 128);
        buf.extend_from_slice(&fresh);
        assert_eq!(
            dec.decode(&mut buf).unwrap().map(|m| m.payload.len()),
            Some(2)
        );
    }

    #[test]
    fn new_header_before_message_completes_is_invalid() {
        let (bytes, _) = encode_all(&[msg(4, 0, 9, 1, 200)], 128);
        let mut buf = BytesMut::from(&bytes[..140]);
        buf.extend_from_slice(&bytes[..12]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        assert!(dec.decode(&mut buf).is_err());
    }

    #[test]
    fn truncated_input_consumes_nothing_of_the_partial_chunk() {
        let (bytes, _) = encode_all(&[msg(3, 0, 20, 0, 100)], 128);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), bytes.len() - 1);
    }
}

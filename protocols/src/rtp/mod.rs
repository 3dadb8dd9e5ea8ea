//! RTP depacketizers: RTP packets of one stream in, access units (frames)
//! in MP4 form out.
//!
//! Call order: [`Depacketizer::push`] each packet in arrival order, then
//! [`Depacketizer::pull`] until it returns `None`. A sequence-number gap
//! drops the access unit it damaged (a partial frame would decode as
//! garbage) and the depacketizer carries on with the next one; the caller
//! counts [`Depacketizer::lost`].
//!
//! Packet headers are parsed by `rtp-types`; the payload formats are ours,
//! one file per RFC: [`h264`] (RFC 6184), [`h265`] (RFC 7798), [`aac`]
//! (RFC 3640 `mpeg4-generic`), [`latm`] (RFC 6416 `MP4A-LATM`) and [`opus`]
//! (RFC 7587).

pub mod aac;
pub mod h264;
pub mod h265;
pub mod latm;
pub mod opus;
pub mod reorder;

use std::collections::VecDeque;

use bytes::Bytes;

/// Largest access unit accepted, in bytes: a 4K intra frame at a high
/// bitrate fits with room to spare; anything larger is a broken sender.
pub const MAX_ACCESS_UNIT: usize = 16 * 1024 * 1024;

/// One access unit, in the form MP4 stores it: length-prefixed NAL units
/// (4-byte lengths) for H.264/H.265, raw frames for AAC and Opus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp of the access unit (its presentation time).
    pub timestamp: u32,
    pub data: Bytes,
    /// Decoding can start here (IDR/IRAP, every audio frame).
    pub keyframe: bool,
    /// Duration in clock ticks, where the payload says it (audio).
    pub duration: Option<u32>,
}

/// Why a packet could not be depacketized. The packet is dropped; the
/// stream goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("rtp header: {0}")]
    Header(String),
    #[error("{context}: {reason}")]
    Payload {
        context: &'static str,
        reason: String,
    },
    /// What [`Depacketizer::push`] returns: the payload error and the
    /// packet it is in.
    #[error("packet {sequence} (RTP time {timestamp}, {len} payload bytes): {source}")]
    InPacket {
        sequence: u16,
        timestamp: u32,
        len: usize,
        #[source]
        source: Box<RtpError>,
    },
}

impl RtpError {
    pub(crate) fn payload(context: &'static str, reason: impl Into<String>) -> Self {
        Self::Payload {
            context,
            reason: reason.into(),
        }
    }
}

/// The fields of an RTP packet a depacketizer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub ssrc: u32,
}

/// Parses an RTP packet (RFC 3550 §5.1): its header fields and payload
/// (padding, CSRCs and header extensions removed).
pub fn parse_packet(data: &[u8]) -> Result<(PacketInfo, &[u8]), RtpError> {
    let packet = rtp_types::RtpPacket::parse(data).map_err(|e| RtpError::Header(e.to_string()))?;
    let info = PacketInfo {
        payload_type: packet.payload_type(),
        sequence: packet.sequence_number(),
        timestamp: packet.timestamp(),
        marker: packet.marker_bit(),
        ssrc: packet.ssrc(),
    };
    let offset = packet.payload_offset();
    let len = packet.payload_len();
    let payload = data
        .get(offset..offset + len)
        .ok_or_else(|| RtpError::Header("payload past the packet end".to_owned()))?;
    Ok((info, payload))
}

/// Tracks sequence numbers to notice lost packets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sequence {
    last: Option<u16>,
}

impl Sequence {
    /// True when `seq` does not follow the previous packet: something was
    /// lost (or reordered, which RTP over UDP may do and we treat the same).
    pub(crate) fn gap(&mut self, seq: u16) -> bool {
        let gap = self.last.is_some_and(|last| last.wrapping_add(1) != seq);
        self.last = Some(seq);
        gap
    }
}

/// An access unit of NAL units being assembled into length-prefixed form.
#[derive(Debug, Default)]
pub(crate) struct NalAssembler {
    buf: Vec<u8>,
    /// Start of the NAL unit being written as fragments (its length field).
    open: Option<usize>,
    /// A packet of this access unit was lost: it is dropped when complete.
    pub(crate) broken: bool,
    pub(crate) keyframe: bool,
    pub(crate) timestamp: Option<u32>,
}

impl NalAssembler {
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn room(&self, extra: usize, context: &'static str) -> Result<(), RtpError> {
        if self.buf.len() + extra + 4 > MAX_ACCESS_UNIT {
            return Err(RtpError::payload(
                context,
                format!("access unit larger than {MAX_ACCESS_UNIT} bytes"),
            ));
        }
        Ok(())
    }

    /// Appends a whole NAL unit.
    pub(crate) fn push_nal(&mut self, nal: &[u8], context: &'static str) -> Result<(), RtpError> {
        self.room(nal.len(), context)?;
        self.close_fragment();
        self.buf
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(nal);
        Ok(())
    }

    /// Starts a fragmented NAL unit with its (rebuilt) header.
    pub(crate) fn start_fragment(
        &mut self,
        header: &[u8],
        context: &'static str,
    ) -> Result<(), RtpError> {
        self.room(header.len(), context)?;
        self.close_fragment();
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(header);
        Ok(())
    }

    /// Appends to the open fragmented NAL unit; false when none is open
    /// (its start was lost).
    pub(crate) fn continue_fragment(
        &mut self,
        data: &[u8],
        context: &'static str,
    ) -> Result<bool, RtpError> {
        if self.open.is_none() {
            return Ok(false);
        }
        self.room(data.len(), context)?;
        self.buf.extend_from_slice(data);
        Ok(true)
    }

    /// Writes the length of the open fragmented NAL unit.
    pub(crate) fn close_fragment(&mut self) {
        if let Some(start) = self.open.take() {
            let len = (self.buf.len() - start - 4) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Drops an unfinished fragmented NAL unit.
    pub(crate) fn abandon_fragment(&mut self) {
        if let Some(start) = self.open.take() {
            self.buf.truncate(start);
        }
    }

    /// The finished access unit, or `None` if it was empty or damaged.
    pub(crate) fn finish(&mut self) -> Option<Frame> {
        // A fragmented NAL unit without its end bit is incomplete.
        self.abandon_fragment();
        let frame = (!self.broken && !self.buf.is_empty())
            .then(|| {
                self.timestamp.map(|timestamp| Frame {
                    timestamp,
                    data: Bytes::from(std::mem::take(&mut self.buf)),
                    keyframe: self.keyframe,
                    duration: None,
                })
            })
            .flatten();
        self.buf.clear();
        self.broken = false;
        self.keyframe = false;
        self.timestamp = None;
        frame
    }
}

/// The NAL units of an aggregation packet (H.264 STAP-A, RFC 6184 §5.7.1;
/// H.265 AP, RFC 7798 §4.4.2): a 16-bit size, then the unit, repeated.
pub(crate) fn aggregated<'a>(
    mut rest: &'a [u8],
    context: &'static str,
    packet: &'static str,
) -> impl Iterator<Item = Result<&'a [u8], RtpError>> + 'a {
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let [hi, lo, tail @ ..] = rest else {
            rest = &[];
            return Some(Err(RtpError::payload(
                context,
                format!("{packet}: truncated size"),
            )));
        };
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        if size == 0 || size > tail.len() {
            let left = tail.len();
            rest = &[];
            return Some(Err(RtpError::payload(
                context,
                format!("{packet}: NAL unit of {size} bytes in {left} left"),
            )));
        }
        let (nal, next) = tail.split_at(size);
        rest = next;
        Some(Ok(nal))
    })
}

/// The access-unit bookkeeping the NAL-unit formats (H.264, H.265) share:
/// losses, timestamp changes and marker bits around each packet's payload.
#[derive(Debug, Default)]
pub(crate) struct AccessUnits {
    pub(crate) au: NalAssembler,
    seq: Sequence,
    out: VecDeque<Frame>,
    lost: u64,
    /// Parameter sets sent as an access unit of their own (a marker bit
    /// after a STAP-A of SPS and PPS): they go with the next picture.
    carry: Vec<u8>,
}

impl AccessUnits {
    /// Before a packet's payload: a gap damages the unit in progress, a new
    /// timestamp ends it (senders that forget the marker bit).
    pub(crate) fn begin(&mut self, info: &PacketInfo) {
        if self.seq.gap(info.sequence) {
            self.au.abandon_fragment();
            if !self.au.is_empty() || self.au.timestamp == Some(info.timestamp) {
                self.au.broken = true;
            }
        }
        if self.au.timestamp.is_some_and(|ts| ts != info.timestamp) {
            self.finish();
        }
        self.au.timestamp = Some(info.timestamp);
    }

    /// After the payload: a bad payload damages the unit, the marker bit
    /// ends it.
    pub(crate) fn end(&mut self, info: &PacketInfo, failed: bool) {
        if failed {
            self.au.broken = true;
        }
        if info.marker {
            self.finish();
        }
    }

    pub(crate) fn finish(&mut self) {
        let broken = self.au.broken;
        match self.au.finish() {
            Some(frame) => self.out.push_back(frame),
            None if broken => self.lost += 1,
            None => {}
        }
    }

    /// The next access unit with a picture in it; units of parameter sets
    /// alone (no NAL unit for which `is_picture` holds) are held and put in
    /// front of the next one, so that no sample lacks a picture and a
    /// keyframe brings the parameter sets sent just before it.
    pub(crate) fn pull(&mut self, is_picture: impl Fn(&[u8]) -> bool) -> Option<Frame> {
        loop {
            let mut frame = self.out.pop_front()?;
            let has_picture = crate::codec::nal::split_length_prefixed(&frame.data, 4)
                .any(|nal| nal.is_ok_and(&is_picture));
            if !has_picture {
                if self.carry.len() + frame.data.len() <= MAX_ACCESS_UNIT {
                    self.carry.extend_from_slice(&frame.data);
                }
                continue;
            }
            if !self.carry.is_empty() {
                let mut data = std::mem::take(&mut self.carry);
                data.extend_from_slice(&frame.data);
                frame.data = Bytes::from(data);
            }
            return Some(frame);
        }
    }

    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }
}

/// A depacketizer for one of the payload formats we take.
#[derive(Debug)]
pub enum Depacketizer {
    H264(h264::H264Depacketizer),
    H265(h265::H265Depacketizer),
    Aac(aac::AacDepacketizer),
    Latm(latm::LatmDepacketizer),
    Opus(opus::OpusDepacketizer),
}

impl Depacketizer {
    /// Takes one packet; an error names the packet (its sequence number,
    /// RTP time and payload size) and what in its payload is wrong.
    pub fn push(&mut self, info: &PacketInfo, payload: &[u8]) -> Result<(), RtpError> {
        match self {
            Self::H264(d) => d.push(info, payload),
            Self::H265(d) => d.push(info, payload),
            Self::Aac(d) => d.push(info, payload),
            Self::Latm(d) => d.push(info, payload),
            Self::Opus(d) => d.push(info, payload),
        }
        .map_err(|source| RtpError::InPacket {
            sequence: info.sequence,
            timestamp: info.timestamp,
            len: payload.len(),
            source: Box::new(source),
        })
    }

    pub fn pull(&mut self) -> Option<Frame> {
        match self {
            Self::H264(d) => d.pull(),
            Self::H265(d) => d.pull(),
            Self::Aac(d) => d.pull(),
            Self::Latm(d) => d.pull(),
            Self::Opus(d) => d.pull(),
        }
    }

    /// Access units dropped because packets were lost.
    pub fn lost(&self) -> u64 {
        match self {
            Self::H264(d) => d.lost(),
            Self::H265(d) => d.lost(),
            Self::Aac(d) => d.lost(),
            Self::Latm(d) => d.lost(),
            Self::Opus(d) => d.lost(),
        }
    }

    /// Ends the stream: the access unit in progress, if complete, becomes
    /// available to [`pull`](Self::pull).
    pub fn flush(&mut self) {
        match self {
            Self::H264(d) => d.flush(),
            Self::H265(d) => d.flush(),
            Self::Aac(_) | Self::Latm(_) | Self::Opus(_) => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::PacketInfo;

    pub(crate) fn info(sequence: u16, timestamp: u32, marker: bool) -> PacketInfo {
        PacketInfo {
            payload_type: 96,
            sequence,
            timestamp,
            marker,
            ssrc: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_packet_with_padding_and_csrcs() {
        // V=2, P=1, X=0, CC=1; M=1, PT=96; seq 7; ts 0x01020304; ssrc 9; csrc 5;
        // payload "abc" + 2 bytes of padding (last byte = 2).
        let data = [
            0xa1, 0xe0, 0, 7, 1, 2, 3, 4, 0, 0, 0, 9, 0, 0, 0, 5, b'a', b'b', b'c', 0, 2,
        ];
        let (info, payload) = parse_packet(&data).unwrap();
        assert_eq!(info.payload_type, 96);
        assert!(info.marker);
        assert_eq!(info.sequence, 7);
        assert_eq!(info.timestamp, 0x0102_0304);
        assert_eq!(info.ssrc, 9);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn a_payload_error_names_its_packet() {
        let mut d = Depacketizer::H264(h264::H264Depacketizer::new());
        let info = testutil::info(4242, 9000, true);
        // NAL type 25 (STAP-B) is not taken.
        let err = d.push(&info, &[0x19, 0, 1, 0x65]).unwrap_err();
        assert!(
            matches!(
                &err,
                RtpError::InPacket {
                    sequence: 4242,
                    timestamp: 9000,
                    len: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("packet 4242 (RTP time 9000, 4 payload bytes): ")
        );
    }

    #[test]
    fn rejects_short_and_wrong_version_packets() {
        assert!(parse_packet(&[0x80, 0x60, 0, 1]).is_err());
        let mut data = [0u8; 12];
        data[0] = 0x40; // version 1
        assert!(parse_packet(&data).is_err());
    }

    #[test]
    fn sequence_gaps_wrap() {
        let mut seq = Sequence::default();
        assert!(!seq.gap(65534));
        assert!(!seq.gap(65535));
        assert!(!seq.gap(0));
        assert!(seq.gap(2));
    }
}

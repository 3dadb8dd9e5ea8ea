//! AAC over RTP, RFC 3640 (`mpeg4-generic`), modes AAC-hbr and AAC-lbr.
//!
//! A packet is an AU-headers section (its length in bits, then one header
//! per access unit: `sizelength` bits of size and `indexlength` /
//! `indexdeltalength` bits of index), then the access units back to back.
//! An access unit too large for one packet is fragmented over packets with
//! the same timestamp, the last one marked (RFC 3640 §3.2.3). Interleaving
//! (a non-zero index delta) is refused: no encoder we take sends it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Frame, PacketInfo, RtpError, Sequence};
use crate::codec::bits::BitReader;

const CONTEXT: &str = "aac rtp";

/// Largest AAC access unit: 6144 bits per channel (ISO/IEC 14496-3
/// §4.5.3.1) for 8 channels, rounded up.
const MAX_AU: usize = 8 * 1024;

/// The `a=fmtp` parameters that shape the AU headers (RFC 3640 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AacParams {
    pub size_length: u32,
    pub index_length: u32,
    pub index_delta_length: u32,
    /// Samples per access unit (1024, or 960 for 960-sample framing).
    pub frame_length: u32,
}

impl AacParams {
    /// AAC-hbr defaults (RFC 3640 §3.3.6).
    pub const HBR: Self = Self {
        size_length: 13,
        index_length: 3,
        index_delta_length: 3,
        frame_length: 1024,
    };

    /// Checks the values an SDP gave.
    pub fn check(&self) -> Result<(), RtpError> {
        if !(1..=16).contains(&self.size_length)
            || self.index_length > 8
            || self.index_delta_length > 8
        {
            return Err(RtpError::payload(
                CONTEXT,
                format!(
                    "unsupported AU header layout sizelength={} indexlength={} indexdeltalength={}",
                    self.size_length, self.index_length, self.index_delta_length
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct AacDepacketizer {
    params: AacParams,
    seq: Sequence,
    out: VecDeque<Frame>,
    lost: u64,
    /// A fragmented access unit: its timestamp, size and bytes so far.
    fragment: Option<(u32, usize, Vec<u8>)>,
}

impl AacDepacketizer {
    pub fn new(params: AacParams) -> Result<Self, RtpError> {
        params.check()?;
        Ok(Self {
            params,
            seq: Sequence::default(),
            out: VecDeque::new(),
            lost: 0,
            fragment: None,
        })
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn pull(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    fn emit(&mut self, timestamp: u32, data: Bytes) {
        self.out.push_back(Frame {
            timestamp,
            data,
            keyframe: true,
            duration: Some(self.params.frame_length),
        });
    }

    pub fn push(&mut self, info: &PacketInfo, payload: &[u8]) -> Result<(), RtpError> {
        if self.seq.gap(info.sequence) && self.fragment.take().is_some() {
            self.lost += 1;
        }
        if payload.len() < 2 {
            return Err(RtpError::payload(CONTEXT, "no AU-headers-length"));
        }
        let headers_bits = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let headers_len = headers_bits.div_ceil(8);
        let Some(headers) = payload.get(2..2 + headers_len) else {
            return Err(RtpError::payload(
                CONTEXT,
                format!(
                    "AU headers of {headers_bits} bits in a {}-byte payload",
                    payload.len()
                ),
            ));
        };
        let mut data = &payload[2 + headers_len..];
        let p = self.params;
        let mut r = BitReader::new(headers, "aac rtp > AU header");
        let mut sizes = Vec::new();
        let mut used = 0;
        while used + (p.size_length + p.index_length.max(p.index_delta_length)) as usize
            <= headers_bits
            && sizes.len() < 64
        {
            let index_len = if sizes.is_empty() {
                p.index_length
            } else {
                p.index_delta_length
            };
            let bad = |e: crate::codec::CodecError| RtpError::payload(CONTEXT, e.to_string());
            let size = r.read_bits(p.size_length).map_err(bad)? as usize;
            let index = if index_len > 0 {
                r.read_bits(index_len).map_err(bad)?
            } else {
                0
            };
            if !sizes.is_empty() && index != 0 {
                return Err(RtpError::payload(CONTEXT, "interleaved access units"));
            }
            used += (p.size_length + index_len) as usize;
            sizes.push(size);
        }
        if sizes.is_empty() {
            return Err(RtpError::payload(CONTEXT, "no AU header"));
        }

        // The continuation of a fragmented access unit.
        if let Some((ts, size, mut buf)) = self.fragment.take() {
            if ts == info.timestamp && sizes.len() == 1 && sizes[0] == size {
                let take = data.len().min(size - buf.len());
                buf.extend_from_slice(&data[..take]);
                if buf.len() == size {
                    self.emit(ts, Bytes::from(buf));
                } else if info.marker {
                    self.lost += 1;
                } else {
                    self.fragment = Some((ts, size, buf));
                }
                return Ok(());
            }
            // Something else arrived: the fragment will never complete.
            self.lost += 1;
        }

        let mut timestamp = info.timestamp;
        let count = sizes.len();
        for (i, size) in sizes.into_iter().enumerate() {
            if size == 0 || size > MAX_AU {
                return Err(RtpError::payload(
                    CONTEXT,
                    format!("access unit of {size} bytes"),
                ));
            }
            if size > data.len() {
                if count == 1 && i == 0 && !info.marker {
                    // RFC 3640 §3.2.3: the first fragment of a large unit.
                    let mut buf = Vec::with_capacity(size);
                    buf.extend_from_slice(data);
                    self.fragment = Some((timestamp, size, buf));
                    return Ok(());
                }
                return Err(RtpError::payload(
                    CONTEXT,
                    format!("access unit of {size} bytes in {} left", data.len()),
                ));
            }
            self.emit(timestamp, Bytes::copy_from_slice(&data[..size]));
            data = &data[size..];
            timestamp = timestamp.wrapping_add(p.frame_length);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::info;
    use super::*;

    fn header(sizes: &[usize]) -> Vec<u8> {
        // 13-bit size + 3-bit index per header = 2 bytes each.
        let mut out = vec![0, (sizes.len() * 16) as u8];
        for &s in sizes {
            let v = (s as u16) << 3;
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    #[test]
    fn several_access_units_per_packet() {
        let mut d = AacDepacketizer::new(AacParams::HBR).unwrap();
        let mut p = header(&[2, 3]);
        p.extend_from_slice(&[1, 2, 3, 4, 5]);
        d.push(&info(1, 1000, true), &p).unwrap();
        let a = d.pull().unwrap();
        let b = d.pull().unwrap();
        assert_eq!((a.timestamp, &a.data[..]), (1000, &[1, 2][..]));
        assert_eq!((b.timestamp, &b.data[..]), (2024, &[3, 4, 5][..]));
        assert_eq!(b.duration, Some(1024));
    }

    #[test]
    fn a_fragmented_access_unit() {
        let mut d = AacDepacketizer::new(AacParams::HBR).unwrap();
        let mut p = header(&[5]);
        p.extend_from_slice(&[1, 2, 3]);
        d.push(&info(1, 0, false), &p).unwrap();
        assert!(d.pull().is_none());
        let mut p = header(&[5]);
        p.extend_from_slice(&[4, 5]);
        d.push(&info(2, 0, true), &p).unwrap();
        assert_eq!(&d.pull().unwrap().data[..], &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn bad_packets_are_errors() {
        let mut d = AacDepacketizer::new(AacParams::HBR).unwrap();
        assert!(d.push(&info(1, 0, true), &[0]).is_err());
        assert!(d.push(&info(2, 0, true), &[0, 16, 0]).is_err());
        let mut p = header(&[9]);
        p.extend_from_slice(&[1]);
        assert!(d.push(&info(3, 0, true), &p).is_err());
        assert!(
            AacDepacketizer::new(AacParams {
                size_length: 40,
                ..AacParams::HBR
            })
            .is_err()
        );
    }
}

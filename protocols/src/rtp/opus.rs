//! Opus over RTP, RFC 7587: one Opus packet per RTP packet, clock 48 kHz.
//! The duration of each packet comes from its TOC byte (RFC 6716 §3.1).

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Frame, PacketInfo, RtpError, Sequence};

const CONTEXT: &str = "opus rtp";

/// Samples at 48 kHz in an Opus packet, from its TOC byte and frame count
/// (RFC 6716 §3.1, §3.2.5).
pub fn packet_samples(packet: &[u8]) -> Result<u32, RtpError> {
    let Some(&toc) = packet.first() else {
        return Err(RtpError::payload(CONTEXT, "empty packet"));
    };
    let config = u32::from(toc >> 3);
    // Frame size in units of 2.5 ms (120 samples at 48 kHz).
    let units = match config {
        0..=11 => [4, 8, 16, 24][(config % 4) as usize],
        12..=15 => [4, 8][(config % 2) as usize],
        _ => [1, 2, 4, 8][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let Some(&count) = packet.get(1) else {
                return Err(RtpError::payload(
                    CONTEXT,
                    "code 3 packet without a frame count",
                ));
            };
            u32::from(count & 0x3f)
        }
    };
    let samples = units * 120 * frames;
    // RFC 6716 §3.2.5: at most 120 ms per packet.
    if frames == 0 || samples > 5760 {
        return Err(RtpError::payload(
            CONTEXT,
            format!("packet of {frames} frames, {samples} samples"),
        ));
    }
    Ok(samples)
}

#[derive(Debug, Default)]
pub struct OpusDepacketizer {
    seq: Sequence,
    out: VecDeque<Frame>,
    lost: u64,
}

impl OpusDepacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn pull(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    pub fn push(&mut self, info: &PacketInfo, payload: &[u8]) -> Result<(), RtpError> {
        if self.seq.gap(info.sequence) {
            self.lost += 1;
        }
        let duration = packet_samples(payload)?;
        self.out.push_back(Frame {
            timestamp: info.timestamp,
            data: Bytes::copy_from_slice(payload),
            keyframe: true,
            duration: Some(duration),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::info;
    use super::*;

    #[test]
    fn durations_from_the_toc() {
        // CELT 20 ms (config 31), one frame.
        assert_eq!(packet_samples(&[31 << 3]).unwrap(), 960);
        // SILK 60 ms (config 3), two frames.
        assert_eq!(packet_samples(&[(3 << 3) | 1]).unwrap(), 5760);
        // Hybrid 10 ms (config 12), code 3 with 3 frames.
        assert_eq!(packet_samples(&[(12 << 3) | 3, 3]).unwrap(), 1440);
        assert!(packet_samples(&[]).is_err());
        assert!(packet_samples(&[3]).is_err());
        assert!(packet_samples(&[(3 << 3) | 3, 10]).is_err());
    }

    #[test]
    fn one_frame_per_packet() {
        let mut d = OpusDepacketizer::new();
        d.push(&info(1, 960, true), &[31 << 3, 1, 2]).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((f.timestamp, f.duration), (960, Some(960)));
        assert_eq!(&f.data[..], &[31 << 3, 1, 2]);
    }
}

//! AAC over RTP in LATM, RFC 6416 (`MP4A-LATM`), as GStreamer's
//! `rtpmp4apay` and many cameras send it, with the configuration out of
//! band (`cpresent=0`, `config=` a StreamMuxConfig in the SDP).
//!
//! A packet carries (part of) one AudioMuxElement: PayloadLengthInfo
//! (bytes of 255 and a last byte below 255, summed) then the access unit.
//! An element larger than a packet continues in packets with the same
//! timestamp; the marker bit ends it (RFC 6416 §6.1.1).

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Frame, PacketInfo, RtpError, Sequence};
use crate::codec::AudioSpecificConfig;
use crate::codec::bits::BitReader;

const CONTEXT: &str = "mp4a-latm rtp";

/// Largest AudioMuxElement assembled.
const MAX_ELEMENT: usize = 64 * 1024;

/// The AudioSpecificConfig inside a StreamMuxConfig (ISO/IEC 14496-3
/// §1.7.3) with `audioMuxVersion` 0, one program, one layer and one
/// subframe per element: what `cpresent=0` senders announce.
pub fn stream_mux_config(config: &[u8]) -> Result<AudioSpecificConfig, String> {
    let mut r = BitReader::new(config, "StreamMuxConfig");
    let bad = |e: crate::codec::CodecError| e.to_string();
    if r.read_bits(1).map_err(bad)? != 0 {
        return Err("audioMuxVersion 1 is not supported".to_owned());
    }
    let _all_streams_same_time_framing = r.read_bits(1).map_err(bad)?;
    let sub_frames = r.read_bits(6).map_err(bad)?;
    let programs = r.read_bits(4).map_err(bad)?;
    let layers = r.read_bits(3).map_err(bad)?;
    if sub_frames != 0 || programs != 0 || layers != 0 {
        return Err(format!(
            "{} subframes, {} programs, {} layers per element: only 1 of each is supported",
            sub_frames + 1,
            programs + 1,
            layers + 1
        ));
    }
    // The AudioSpecificConfig follows, not byte-aligned: read its fields and
    // build a clean one (the raw bits run on into frameLengthType).
    let object_type = r.read_bits(5).map_err(bad)? as u8;
    let index = r.read_bits(4).map_err(bad)?;
    let rate = if index == 15 {
        r.read_bits(24).map_err(bad)?
    } else {
        *[
            96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
            8_000, 7_350,
        ]
        .get(index as usize)
        .ok_or_else(|| format!("samplingFrequencyIndex {index}"))?
    };
    let channels = r.read_bits(4).map_err(bad)? as u8;
    AudioSpecificConfig::new(object_type, rate, channels).map_err(|e| e.to_string())
}

#[derive(Debug, Default)]
pub struct LatmDepacketizer {
    seq: Sequence,
    out: VecDeque<Frame>,
    lost: u64,
    /// An AudioMuxElement spread over packets: its timestamp and bytes.
    element: Option<(u32, Vec<u8>)>,
}

impl LatmDepacketizer {
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
        if self.seq.gap(info.sequence) && self.element.take().is_some() {
            self.lost += 1;
        }
        if let Some((ts, _)) = &self.element
            && *ts != info.timestamp
        {
            // The previous element never got its marker.
            self.element = None;
            self.lost += 1;
        }
        let (ts, buf) = self
            .element
            .get_or_insert_with(|| (info.timestamp, Vec::new()));
        if buf.len() + payload.len() > MAX_ELEMENT {
            self.element = None;
            return Err(RtpError::payload(
                CONTEXT,
                format!("AudioMuxElement larger than {MAX_ELEMENT} bytes"),
            ));
        }
        buf.extend_from_slice(payload);
        if !info.marker {
            return Ok(());
        }
        let ts = *ts;
        let Some((_, element)) = self.element.take() else {
            return Ok(());
        };
        // PayloadLengthInfo: 255s then the rest.
        let mut len = 0usize;
        let mut at = 0;
        loop {
            let Some(&b) = element.get(at) else {
                return Err(RtpError::payload(
                    CONTEXT,
                    "PayloadLengthInfo runs past the element",
                ));
            };
            at += 1;
            len += usize::from(b);
            if b != 255 {
                break;
            }
        }
        let Some(au) = element.get(at..at + len) else {
            return Err(RtpError::payload(
                CONTEXT,
                format!("access unit of {len} bytes in {} left", element.len() - at),
            ));
        };
        if au.is_empty() {
            return Err(RtpError::payload(CONTEXT, "empty access unit"));
        }
        self.out.push_back(Frame {
            timestamp: ts,
            data: Bytes::copy_from_slice(au),
            keyframe: true,
            duration: Some(1024),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::info;
    use super::*;

    #[test]
    fn gstreamer_stream_mux_config() {
        // rtpmp4apay, AAC-LC 48 kHz stereo: config=40002320.
        let asc = stream_mux_config(&[0x40, 0x00, 0x23, 0x20]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channel_config),
            (2, 48_000, 2)
        );
        assert_eq!(&asc.raw[..], &[0x11, 0x90]);
        assert!(stream_mux_config(&[0x80, 0, 0, 0]).is_err());
        assert!(stream_mux_config(&[0x41, 0, 0x23, 0x20]).is_err());
    }

    #[test]
    fn elements_whole_and_fragmented() {
        let mut d = LatmDepacketizer::new();
        d.push(&info(1, 0, true), &[3, 1, 2, 3]).unwrap();
        let f = d.pull().unwrap();
        assert_eq!((&f.data[..], f.duration), (&[1, 2, 3][..], Some(1024)));
        let mut big = vec![255, 5];
        big.extend(std::iter::repeat_n(7u8, 260));
        d.push(&info(2, 1024, false), &big[..100]).unwrap();
        assert!(d.pull().is_none());
        d.push(&info(3, 1024, true), &big[100..]).unwrap();
        assert_eq!(d.pull().unwrap().data.len(), 260);
        assert!(d.push(&info(4, 2048, true), &[9, 1]).is_err());
        assert!(d.push(&info(5, 3072, true), &[255]).is_err());
    }
}

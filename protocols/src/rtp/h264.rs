//! H.264 over RTP, RFC 6184, non-interleaved mode: single NAL unit
//! packets, STAP-A and FU-A.
//!
//! An access unit ends at the marker bit (RFC 6184 §5.1: "set for the very
//! last packet of the access unit") or, for senders that forget it, when
//! the timestamp changes. Access unit delimiters are taken out of the
//! samples; SPS and PPS stay in them (an encoder may change its parameter
//! sets mid-stream, and a decoder must see the new ones where they start)
//! and the latest are kept for the track configuration (senders without
//! `sprop-parameter-sets` send them only in band).

use super::{AccessUnits, Frame, PacketInfo, RtpError};

const CONTEXT: &str = "h264 rtp";

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

#[derive(Debug, Default)]
pub struct H264Depacketizer {
    units: AccessUnits,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl H264Depacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest SPS and PPS seen in band.
    pub fn parameter_sets(&self) -> Option<(&[u8], &[u8])> {
        Some((self.sps.as_deref()?, self.pps.as_deref()?))
    }

    pub fn lost(&self) -> u64 {
        self.units.lost()
    }

    pub fn pull(&mut self) -> Option<Frame> {
        // Coded slices: NAL unit types 1 to 5.
        self.units
            .pull(|nal| nal.first().is_some_and(|h| (1..=5).contains(&(h & 0x1f))))
    }

    pub fn flush(&mut self) {
        self.units.finish();
    }

    fn nal(&mut self, nal: &[u8]) -> Result<(), RtpError> {
        let Some(&header) = nal.first() else {
            return Ok(());
        };
        match header & 0x1f {
            NAL_AUD => {}
            kind => {
                match kind {
                    NAL_SPS => self.sps = Some(nal.to_vec()),
                    NAL_PPS => self.pps = Some(nal.to_vec()),
                    _ => {}
                }
                self.units.au.keyframe |= kind == NAL_IDR;
                self.units.au.push_nal(nal, CONTEXT)?;
            }
        }
        Ok(())
    }

    pub fn push(&mut self, info: &PacketInfo, payload: &[u8]) -> Result<(), RtpError> {
        self.units.begin(info);
        let result = self.payload(payload);
        self.units.end(info, result.is_err());
        result
    }

    fn payload(&mut self, payload: &[u8]) -> Result<(), RtpError> {
        let Some(&indicator) = payload.first() else {
            return Err(RtpError::payload(CONTEXT, "empty payload"));
        };
        if indicator & 0x80 != 0 {
            return Err(RtpError::payload(CONTEXT, "forbidden_zero_bit set"));
        }
        match indicator & 0x1f {
            1..=23 => self.nal(payload),
            STAP_A => {
                for nal in super::aggregated(&payload[1..], CONTEXT, "STAP-A") {
                    self.nal(nal?)?;
                }
                Ok(())
            }
            FU_A => {
                // RFC 6184 §5.8: FU indicator, FU header (S, E, R, type).
                let Some(&fu_header) = payload.get(1) else {
                    return Err(RtpError::payload(CONTEXT, "FU-A: no FU header"));
                };
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                if start && end {
                    return Err(RtpError::payload(CONTEXT, "FU-A with both S and E set"));
                }
                let kind = fu_header & 0x1f;
                let data = &payload[2..];
                if start {
                    let header = (indicator & 0xe0) | kind;
                    match kind {
                        // Parameter sets are tiny; if fragmented, take them whole.
                        NAL_SPS | NAL_PPS | NAL_AUD => {
                            return Err(RtpError::payload(
                                CONTEXT,
                                format!("FU-A: fragmented NAL unit type {kind}"),
                            ));
                        }
                        _ => {
                            self.units.au.keyframe |= kind == NAL_IDR;
                            self.units.au.start_fragment(&[header], CONTEXT)?;
                            self.units.au.continue_fragment(data, CONTEXT)?;
                        }
                    }
                } else if !self.units.au.continue_fragment(data, CONTEXT)? {
                    // The start was lost; the gap already marked the unit broken.
                    self.units.au.broken = true;
                    return Ok(());
                }
                if end {
                    self.units.au.close_fragment();
                }
                Ok(())
            }
            kind @ (25..=27 | 29) => Err(RtpError::payload(
                CONTEXT,
                format!("NAL unit type {kind} is for interleaved mode, which is not supported"),
            )),
            kind => Err(RtpError::payload(
                CONTEXT,
                format!("reserved NAL unit type {kind}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::info;
    use super::*;

    fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn single_nal_and_stap_a() {
        let mut d = H264Depacketizer::new();
        // STAP-A with SPS, PPS and an AUD; then an IDR slice with the marker.
        let stap = [0x18, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3, 0, 2, 0x09, 0xf0];
        d.push(&info(1, 1000, false), &stap).unwrap();
        d.push(&info(2, 1000, true), &[0x65, 0xaa, 0xbb]).unwrap();
        let frame = d.pull().unwrap();
        assert_eq!(frame.timestamp, 1000);
        assert!(frame.keyframe);
        // The parameter sets stay in the sample; the delimiter does not.
        assert_eq!(
            &frame.data[..],
            &prefixed(&[&[0x67, 1, 2], &[0x68, 3], &[0x65, 0xaa, 0xbb]])[..]
        );
        assert_eq!(
            d.parameter_sets(),
            Some((&[0x67, 1, 2][..], &[0x68, 3][..]))
        );
        assert!(d.pull().is_none());
    }

    #[test]
    fn parameter_sets_sent_as_an_access_unit_go_with_the_next_picture() {
        let mut d = H264Depacketizer::new();
        // A sender that sets the marker bit after its SPS and PPS.
        let stap = [0x18, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3];
        d.push(&info(1, 1000, true), &stap).unwrap();
        assert!(d.pull().is_none());
        d.push(&info(2, 1000, true), &[0x65, 0xaa]).unwrap();
        let frame = d.pull().unwrap();
        assert!(frame.keyframe);
        assert_eq!(
            &frame.data[..],
            &prefixed(&[&[0x67, 1, 2], &[0x68, 3], &[0x65, 0xaa]])[..]
        );
    }

    #[test]
    fn fu_a_reassembles_and_a_timestamp_change_ends_an_access_unit() {
        let mut d = H264Depacketizer::new();
        d.push(&info(10, 0, false), &[0x7c, 0x85, 1, 2]).unwrap();
        d.push(&info(11, 0, false), &[0x7c, 0x05, 3]).unwrap();
        d.push(&info(12, 0, false), &[0x7c, 0x45, 4]).unwrap();
        // No marker: the next timestamp ends the unit.
        d.push(&info(13, 3000, true), &[0x41, 9]).unwrap();
        let first = d.pull().unwrap();
        assert_eq!(&first.data[..], &prefixed(&[&[0x65, 1, 2, 3, 4]])[..]);
        assert!(first.keyframe);
        let second = d.pull().unwrap();
        assert_eq!(second.timestamp, 3000);
        assert!(!second.keyframe);
    }

    #[test]
    fn a_lost_fragment_drops_only_its_access_unit() {
        let mut d = H264Depacketizer::new();
        d.push(&info(1, 0, false), &[0x7c, 0x85, 1]).unwrap();
        // seq 2 lost
        d.push(&info(3, 0, true), &[0x7c, 0x45, 3]).unwrap();
        assert!(d.pull().is_none());
        assert_eq!(d.lost(), 1);
        d.push(&info(4, 3000, true), &[0x41, 9]).unwrap();
        assert_eq!(d.pull().unwrap().timestamp, 3000);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let mut d = H264Depacketizer::new();
        assert!(d.push(&info(1, 0, true), &[]).is_err());
        assert!(d.push(&info(2, 0, true), &[0x18, 0, 9, 1]).is_err());
        assert!(d.push(&info(3, 0, true), &[0x1c]).is_err());
        assert!(d.push(&info(4, 0, true), &[0x1a, 0]).is_err());
        assert!(d.push(&info(5, 0, true), &[0x80]).is_err());
        assert!(d.push(&info(6, 0, true), &[0x1f]).is_err());
    }
}

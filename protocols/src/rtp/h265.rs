//! H.265 over RTP, RFC 7798, without DONL (`sprop-max-don-diff` = 0, what
//! every encoder we know sends): single NAL unit packets, aggregation
//! packets (AP) and fragmentation units (FU). PACI packets are refused.
//!
//! Access units end at the marker bit or at a timestamp change, as for
//! H.264. Access unit delimiters are taken out of the samples; VPS, SPS
//! and PPS stay in them (they may change mid-stream) and the latest are
//! kept for the track configuration.

use super::{AccessUnits, Frame, PacketInfo, RtpError};
use crate::codec::h265::is_irap_type;

const CONTEXT: &str = "h265 rtp";

const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
const NAL_AUD: u8 = 35;
const AP: u8 = 48;
const FU: u8 = 49;
const PACI: u8 = 50;

#[derive(Debug, Default)]
pub struct H265Depacketizer {
    units: AccessUnits,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

fn nal_type(header: u8) -> u8 {
    (header >> 1) & 0x3f
}

impl H265Depacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest VPS, SPS and PPS seen in band.
    pub fn parameter_sets(&self) -> Option<(&[u8], &[u8], &[u8])> {
        Some((
            self.vps.as_deref()?,
            self.sps.as_deref()?,
            self.pps.as_deref()?,
        ))
    }

    pub fn lost(&self) -> u64 {
        self.units.lost()
    }

    pub fn pull(&mut self) -> Option<Frame> {
        // VCL NAL unit types: 0 to 31.
        self.units
            .pull(|nal| nal.first().is_some_and(|&h| nal_type(h) < 32))
    }

    pub fn flush(&mut self) {
        self.units.finish();
    }

    fn nal(&mut self, nal: &[u8]) -> Result<(), RtpError> {
        if nal.len() < 2 {
            return Err(RtpError::payload(
                CONTEXT,
                "NAL unit shorter than its header",
            ));
        }
        match nal_type(nal[0]) {
            NAL_AUD => {}
            kind => {
                match kind {
                    NAL_VPS => self.vps = Some(nal.to_vec()),
                    NAL_SPS => self.sps = Some(nal.to_vec()),
                    NAL_PPS => self.pps = Some(nal.to_vec()),
                    _ => {}
                }
                self.units.au.keyframe |= is_irap_type(kind);
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
        let [h0, h1, rest @ ..] = payload else {
            return Err(RtpError::payload(CONTEXT, "payload shorter than 2 bytes"));
        };
        if h0 & 0x80 != 0 {
            return Err(RtpError::payload(CONTEXT, "forbidden_zero_bit set"));
        }
        match nal_type(*h0) {
            AP => {
                for nal in super::aggregated(rest, CONTEXT, "AP") {
                    self.nal(nal?)?;
                }
                Ok(())
            }
            FU => {
                // RFC 7798 §4.4.3: payload header, FU header (S, E, type).
                let [fu_header, data @ ..] = rest else {
                    return Err(RtpError::payload(CONTEXT, "FU: no FU header"));
                };
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                if start && end {
                    return Err(RtpError::payload(CONTEXT, "FU with both S and E set"));
                }
                let kind = fu_header & 0x3f;
                if start {
                    if matches!(kind, NAL_VPS | NAL_SPS | NAL_PPS | NAL_AUD) {
                        return Err(RtpError::payload(
                            CONTEXT,
                            format!("FU: fragmented NAL unit type {kind}"),
                        ));
                    }
                    let header = [(h0 & 0x81) | (kind << 1), *h1];
                    self.units.au.keyframe |= is_irap_type(kind);
                    self.units.au.start_fragment(&header, CONTEXT)?;
                    self.units.au.continue_fragment(data, CONTEXT)?;
                } else if !self.units.au.continue_fragment(data, CONTEXT)? {
                    self.units.au.broken = true;
                    return Ok(());
                }
                if end {
                    self.units.au.close_fragment();
                }
                Ok(())
            }
            PACI => Err(RtpError::payload(CONTEXT, "PACI packets are not supported")),
            51..=63 => Err(RtpError::payload(
                CONTEXT,
                format!("reserved NAL unit type {}", nal_type(*h0)),
            )),
            _ => self.nal(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::info;
    use super::*;

    #[test]
    fn ap_and_fu() {
        let mut d = H265Depacketizer::new();
        // AP with VPS (32), SPS (33), PPS (34).
        let ap = [
            0x60, 0x01, 0, 3, 0x40, 0x01, 7, 0, 3, 0x42, 0x01, 8, 0, 3, 0x44, 0x01, 9,
        ];
        d.push(&info(1, 0, false), &ap).unwrap();
        // An IDR_W_RADL (19) in two fragments.
        d.push(&info(2, 0, false), &[0x62, 0x01, 0x80 | 19, 1, 2])
            .unwrap();
        d.push(&info(3, 0, true), &[0x62, 0x01, 0x40 | 19, 3])
            .unwrap();
        let frame = d.pull().unwrap();
        assert!(frame.keyframe);
        // The parameter sets stay in the sample.
        assert_eq!(
            &frame.data[..],
            &[
                0,
                0,
                0,
                3,
                0x40,
                1,
                7,
                0,
                0,
                0,
                3,
                0x42,
                1,
                8,
                0,
                0,
                0,
                3,
                0x44,
                1,
                9,
                0,
                0,
                0,
                5,
                19 << 1,
                0x01,
                1,
                2,
                3
            ]
        );
        assert_eq!(
            d.parameter_sets(),
            Some((&[0x40, 1, 7][..], &[0x42, 1, 8][..], &[0x44, 1, 9][..]))
        );
        // A TRAIL_R (1) single NAL unit.
        d.push(&info(4, 3000, true), &[0x02, 0x01, 5]).unwrap();
        assert!(!d.pull().unwrap().keyframe);
    }

    #[test]
    fn bad_payloads_are_errors() {
        let mut d = H265Depacketizer::new();
        assert!(d.push(&info(1, 0, true), &[0x02]).is_err());
        assert!(d.push(&info(2, 0, true), &[0x60, 1, 0, 9]).is_err());
        assert!(d.push(&info(3, 0, true), &[0x62, 1]).is_err());
        assert!(d.push(&info(4, 0, true), &[0x64, 1, 0]).is_err());
    }
}

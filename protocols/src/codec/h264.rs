//! H.264/AVC: sequence parameter set parsing (ITU-T H.264 §7.3.2.1.1, Annex E
//! VUI), the `AVCDecoderConfigurationRecord` (`avcC`, ISO/IEC 14496-15
//! §5.3.3.1) and the RFC 6381 codec string (`avc1.PPCCLL`).
//!
//! Build an [`AvcConfig`] either from parameter-set NAL units found in the
//! stream ([`AvcConfig::from_parameter_sets`], [`AvcConfig::from_annex_b`]) or
//! from an existing record ([`AvcConfig::parse`]); [`AvcConfig::to_record`]
//! writes the record back.

use bytes::Bytes;

use super::bits::{BitReader, nal_to_rbsp};
use super::nal::{split_annex_b, split_length_prefixed};
use super::{ByteReader, CodecError};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;
pub const NAL_SPS_EXT: u8 = 13;

/// Largest picture side we accept, in macroblocks (H.264 level 6.2 allows
/// 8192×4320; this leaves room without letting arithmetic overflow).
const MAX_MBS_PER_SIDE: u32 = 1024;

/// `nal_unit_type` of an H.264 NAL unit (H.264 §7.3.1).
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Whether a length-prefixed access unit contains an IDR slice.
pub fn is_idr(sample: &[u8], length_size: u8) -> Result<bool, CodecError> {
    for nal in split_length_prefixed(sample, length_size) {
        if nal_unit_type(nal?) == Some(NAL_IDR) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Profiles whose SPS carries chroma format, bit depth and scaling lists
/// (H.264 §7.3.2.1.1, the `profile_idc == 100 || …` condition).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// VUI timing (H.264 Annex E.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VuiTiming {
    pub num_units_in_tick: u32,
    pub time_scale: u32,
    pub fixed_frame_rate: bool,
}

/// The fields of a sequence parameter set that a packager needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// `constraint_set0_flag` … `constraint_set5_flag` and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub frame_mbs_only: bool,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
    /// Sample aspect ratio (`sar_width`, `sar_height`), when signalled.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    pub timing: Option<VuiTiming>,
    /// VUI `max_num_reorder_frames`: how many frames may precede a frame in
    /// decode order and follow it in output order (0: no B-frames). `None`
    /// when the VUI carries no bitstream restriction (or ends early).
    pub max_num_reorder_frames: Option<u32>,
}

/// The chroma format and bit depths of an SPS (H.264 §7.3.2.1.1, present
/// for the high profiles; 4:2:0 at 8 bits otherwise).
struct Chroma {
    format_idc: u32,
    separate_colour_plane: bool,
    bit_depth_luma: u8,
    bit_depth_chroma: u8,
}

impl Default for Chroma {
    fn default() -> Self {
        Self {
            format_idc: 1,
            separate_colour_plane: false,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
        }
    }
}

impl Chroma {
    /// Reads the chroma fields and skips the scaling lists after them.
    fn read(r: &mut BitReader<'_>) -> Result<Self, CodecError> {
        let format_idc = r.read_ue_max(3, "chroma_format_idc > 3")?;
        let separate_colour_plane = format_idc == 3 && r.read_flag()?;
        let bit_depth_luma = 8 + r.read_ue_max(6, "bit_depth_luma_minus8 > 6")? as u8;
        let bit_depth_chroma = 8 + r.read_ue_max(6, "bit_depth_chroma_minus8 > 6")? as u8;
        let _qpprime_y_zero_transform_bypass = r.read_flag()?;
        if r.read_flag()? {
            r.set_context("h264 sps > scaling lists");
            let lists = if format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_flag()? {
                    skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
            r.set_context("h264 sps");
        }
        Ok(Self {
            format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
        })
    }

    /// The displayed size: the coded size less the frame cropping, if
    /// any, read next. H.264 §7.4.2.1.1, frame_crop_*_offset semantics
    /// (Table 6-1 for SubWidthC/SubHeightC).
    fn cropped(
        &self,
        r: &mut BitReader<'_>,
        (coded_width, coded_height): (u32, u32),
        field_factor: u32,
    ) -> Result<(u32, u32), CodecError> {
        let chroma_array_type = if self.separate_colour_plane {
            0
        } else {
            self.format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        if !r.read_flag()? {
            return Ok((coded_width, coded_height));
        }
        let mut crop = [0u32; 4];
        for c in &mut crop {
            *c = r.read_ue_max(coded_width.max(coded_height), "frame crop offset too large")?;
        }
        let [left, right, top, bottom] = crop;
        let crop_x = (left + right)
            .checked_mul(sub_width)
            .filter(|&c| c < coded_width);
        let crop_y = (top + bottom)
            .checked_mul(sub_height * field_factor)
            .filter(|&c| c < coded_height);
        match (crop_x, crop_y) {
            (Some(x), Some(y)) => Ok((coded_width - x, coded_height - y)),
            _ => Err(r.invalid("frame cropping removes the whole picture")),
        }
    }
}

/// Skips the picture order count fields of an SPS (H.264 §7.3.2.1.1).
fn skip_pic_order_cnt(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    match r.read_ue_max(2, "pic_order_cnt_type > 2")? {
        0 => {
            r.read_ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 > 12")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_flag()?;
            r.read_se()?;
            r.read_se()?;
            let cycle = r.read_ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle > 255")?;
            for _ in 0..cycle {
                r.read_se()?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Sps {
    /// Parses an SPS NAL unit, header byte included.
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        if nal_unit_type(nal) != Some(NAL_SPS) {
            return Err(match nal.is_empty() {
                true => CodecError::Truncated {
                    pos: 0,
                    context: "h264 sps",
                },
                false => CodecError::Invalid {
                    pos: 0,
                    context: "h264 sps",
                    reason: "nal_unit_type is not 7",
                },
            });
        }
        let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp, "h264 sps");
        let profile_idc = r.read_u8(8)?;
        let constraint_flags = r.read_u8(8)?;
        let level_idc = r.read_u8(8)?;
        let seq_parameter_set_id = r.read_ue_max(31, "seq_parameter_set_id > 31")?;

        let chroma = if has_chroma_info(profile_idc) {
            Chroma::read(&mut r)?
        } else {
            Chroma::default()
        };
        r.read_ue_max(12, "log2_max_frame_num_minus4 > 12")?;
        skip_pic_order_cnt(&mut r)?;
        let _max_num_ref_frames = r.read_ue()?;
        let _gaps_in_frame_num_allowed = r.read_flag()?;
        let width_mbs = 1 + r.read_ue_max(MAX_MBS_PER_SIDE - 1, "picture too wide")?;
        let height_map_units = 1 + r.read_ue_max(MAX_MBS_PER_SIDE - 1, "picture too tall")?;
        let frame_mbs_only = r.read_flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.read_flag()?;
        }
        let _direct_8x8_inference = r.read_flag()?;

        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let coded = (width_mbs * 16, field_factor * height_map_units * 16);
        let (width, height) = chroma.cropped(&mut r, coded, field_factor)?;

        let mut sample_aspect_ratio = None;
        let mut timing = None;
        let mut max_num_reorder_frames = None;
        if r.read_flag()? {
            r.set_context("h264 sps > vui");
            (sample_aspect_ratio, timing) = parse_vui(&mut r)?;
            max_num_reorder_frames = vui_reorder_frames(&mut r);
        }

        Ok(Self {
            profile_idc,
            constraint_flags,
            level_idc,
            seq_parameter_set_id,
            chroma_format_idc: chroma.format_idc,
            bit_depth_luma: chroma.bit_depth_luma,
            bit_depth_chroma: chroma.bit_depth_chroma,
            frame_mbs_only,
            width,
            height,
            sample_aspect_ratio,
            timing,
            max_num_reorder_frames,
        })
    }

    /// Frame rate from VUI timing as `(numerator, denominator)`: a frame is two
    /// field ticks (H.264 Annex E.2.1, `time_scale / (2 * num_units_in_tick)`).
    pub fn frame_rate(&self) -> Option<(u64, u64)> {
        let t = self.timing?;
        (t.num_units_in_tick > 0 && t.time_scale > 0)
            .then(|| (u64::from(t.time_scale), 2 * u64::from(t.num_units_in_tick)))
    }
}

/// Skips one `scaling_list()` (H.264 §7.3.2.1.1.1), validating `delta_scale`.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(r.invalid("delta_scale outside -128..=127"));
            }
            next_scale = (last_scale + delta + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

type VuiFields = (Option<(u16, u16)>, Option<VuiTiming>);

/// Reads `vui_parameters()` up to and including the timing info (H.264 §E.1.1).
fn parse_vui(r: &mut BitReader<'_>) -> Result<VuiFields, CodecError> {
    const EXTENDED_SAR: u8 = 255;
    // H.264 Table E-1, aspect_ratio_idc 1..=16.
    const SAR_TABLE: [(u16, u16); 17] = [
        (0, 0),
        (1, 1),
        (12, 11),
        (10, 11),
        (16, 11),
        (40, 33),
        (24, 11),
        (20, 11),
        (32, 11),
        (80, 33),
        (18, 11),
        (15, 11),
        (64, 33),
        (160, 99),
        (4, 3),
        (3, 2),
        (2, 1),
    ];
    let mut sar = None;
    if r.read_flag()? {
        let idc = r.read_u8(8)?;
        if idc == EXTENDED_SAR {
            let w = r.read_bits(16)? as u16;
            let h = r.read_bits(16)? as u16;
            sar = Some((w, h));
        } else {
            sar = SAR_TABLE
                .get(usize::from(idc))
                .copied()
                .filter(|&(w, _)| w != 0);
        }
    }
    if r.read_flag()? {
        let _overscan_appropriate = r.read_flag()?;
    }
    if r.read_flag()? {
        r.skip_bits(4)?; // video_format, video_full_range_flag
        if r.read_flag()? {
            r.skip_bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_flag()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    let mut timing = None;
    if r.read_flag()? {
        timing = Some(VuiTiming {
            num_units_in_tick: r.read_bits(32)?,
            time_scale: r.read_bits(32)?,
            fixed_frame_rate: r.read_flag()?,
        });
    }
    Ok((sar, timing))
}

/// The rest of `vui_parameters()` after the timing info, up to
/// `max_num_reorder_frames` (H.264 §E.1.1). Nothing after the timing info is
/// needed to decode the picture size or rate, so a VUI that ends early or
/// does not parse gives `None` rather than failing the SPS.
fn vui_reorder_frames(r: &mut BitReader<'_>) -> Option<u32> {
    let nal_hrd = r.read_flag().ok()?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.read_flag().ok()?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.read_flag().ok()?; // low_delay_hrd_flag
    }
    r.read_flag().ok()?; // pic_struct_present_flag
    if !r.read_flag().ok()? {
        return None; // no bitstream_restriction
    }
    r.read_flag().ok()?; // motion_vectors_over_pic_boundaries_flag
    for _ in 0..4 {
        // max_bytes_per_pic_denom, max_bits_per_mb_denom,
        // log2_max_mv_length_horizontal, log2_max_mv_length_vertical
        r.read_ue().ok()?;
    }
    let reorder = r.read_ue().ok()?;
    let max_dec_frame_buffering = r.read_ue().ok()?;
    (reorder <= max_dec_frame_buffering && max_dec_frame_buffering <= 16).then_some(reorder)
}

/// Skips `hrd_parameters()` (H.264 §E.1.2).
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Option<()> {
    let cpb_cnt = r.read_ue().ok()?.checked_add(1).filter(|&n| n <= 32)?;
    r.skip_bits(8).ok()?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.read_ue().ok()?; // bit_rate_value_minus1
        r.read_ue().ok()?; // cpb_size_value_minus1
        r.read_flag().ok()?; // cbr_flag
    }
    // initial_cpb_removal_delay_length_minus1, cpb_removal_delay_length_minus1,
    // dpb_output_delay_length_minus1, time_offset_length: u(5) each.
    r.skip_bits(20).ok()
}

/// The AVC decoder configuration of a track: parameter sets plus the parsed first SPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_indication: u8,
    pub profile_compatibility: u8,
    pub level_indication: u8,
    /// Bytes in each NAL unit length prefix of the samples: 1, 2 or 4.
    pub length_size: u8,
    pub sps_nalus: Vec<Bytes>,
    pub pps_nalus: Vec<Bytes>,
    pub sps_ext_nalus: Vec<Bytes>,
    /// The first SPS, parsed.
    pub sps: Sps,
}

impl AvcConfig {
    /// Builds a configuration from parameter-set NAL units (header byte
    /// included). Samples are assumed to use 4-byte length prefixes.
    pub fn from_parameter_sets(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Self, CodecError> {
        let first = sps.first().ok_or(CodecError::Invalid {
            pos: 0,
            context: "avc config",
            reason: "no SPS",
        })?;
        if pps.is_empty() {
            return Err(CodecError::Invalid {
                pos: 0,
                context: "avc config",
                reason: "no PPS",
            });
        }
        if sps.len() > 31 || pps.len() > 255 {
            return Err(CodecError::Invalid {
                pos: 0,
                context: "avc config",
                reason: "too many parameter sets for avcC",
            });
        }
        let parsed = Sps::parse(first)?;
        for nal in sps.iter().chain(pps) {
            if nal.len() > usize::from(u16::MAX) {
                return Err(CodecError::Invalid {
                    pos: 0,
                    context: "avc config",
                    reason: "parameter set longer than 65535 bytes",
                });
            }
        }
        Ok(Self {
            profile_indication: parsed.profile_idc,
            profile_compatibility: parsed.constraint_flags,
            level_indication: parsed.level_idc,
            length_size: 4,
            sps_nalus: sps.iter().map(|n| Bytes::copy_from_slice(n)).collect(),
            pps_nalus: pps.iter().map(|n| Bytes::copy_from_slice(n)).collect(),
            sps_ext_nalus: Vec::new(),
            sps: parsed,
        })
    }

    /// Collects SPS and PPS from an Annex B access unit (as RTMP/RTSP/TS
    /// sources carry them in-band). `Ok(None)` when either is missing.
    pub fn from_annex_b(access_unit: &[u8]) -> Result<Option<Self>, CodecError> {
        Self::from_nal_units(split_annex_b(access_unit).map(Ok))
    }

    /// Collects SPS and PPS from a sample of 4-byte length-prefixed NAL
    /// units (an FLV/MP4 sample whose encoder sent its parameter sets in
    /// band). `Ok(None)` when either is missing.
    pub fn from_length_prefixed(sample: &[u8]) -> Result<Option<Self>, CodecError> {
        Self::from_nal_units(super::nal::split_length_prefixed(sample, 4))
    }

    fn from_nal_units<'a>(
        nals: impl Iterator<Item = Result<&'a [u8], CodecError>>,
    ) -> Result<Option<Self>, CodecError> {
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        for nal in nals {
            let nal = nal?;
            match nal_unit_type(nal) {
                Some(NAL_SPS) => sps.push(nal),
                Some(NAL_PPS) => pps.push(nal),
                _ => {}
            }
        }
        if sps.is_empty() || pps.is_empty() {
            return Ok(None);
        }
        Self::from_parameter_sets(&sps, &pps).map(Some)
    }

    /// Parses an `AVCDecoderConfigurationRecord` (the body of an `avcC` box).
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let mut r = ByteReader::new(record, "avcC");
        if r.u8()? != 1 {
            return Err(r.invalid("configurationVersion is not 1"));
        }
        let profile_indication = r.u8()?;
        let profile_compatibility = r.u8()?;
        let level_indication = r.u8()?;
        let length_size = (r.u8()? & 0b11) + 1;
        if length_size == 3 {
            return Err(r.invalid("lengthSizeMinusOne is 2"));
        }
        let sps_count = r.u8()? & 0x1f;
        let sps_nalus = read_nalus(&mut r, usize::from(sps_count))?;
        let pps_count = r.u8()?;
        let pps_nalus = read_nalus(&mut r, usize::from(pps_count))?;
        // ISO/IEC 14496-15 §5.3.3.1.2: the chroma/bit-depth extension follows
        // for these profiles. Policy: many muxers omit it; accept its absence.
        let mut sps_ext_nalus = Vec::new();
        if matches!(profile_indication, 100 | 110 | 122 | 144) && r.remaining() >= 4 {
            r.bytes(3)?;
            let count = r.u8()?;
            sps_ext_nalus = read_nalus(&mut r, usize::from(count))?;
        }
        let first = sps_nalus.first().ok_or(r.invalid("avcC carries no SPS"))?;
        let sps = Sps::parse(first)?;
        Ok(Self {
            profile_indication,
            profile_compatibility,
            level_indication,
            length_size,
            sps_nalus,
            pps_nalus,
            sps_ext_nalus,
            sps,
        })
    }

    /// Writes the `AVCDecoderConfigurationRecord`.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            self.profile_indication,
            self.profile_compatibility,
            self.level_indication,
            0b1111_1100 | (self.length_size.saturating_sub(1) & 0b11),
            0b1110_0000 | (self.sps_nalus.len().min(31) as u8),
        ];
        write_nalus(&mut out, self.sps_nalus.iter().take(31));
        out.push(self.pps_nalus.len().min(255) as u8);
        write_nalus(&mut out, self.pps_nalus.iter().take(255));
        if matches!(self.profile_indication, 100 | 110 | 122 | 144) {
            out.push(0b1111_1100 | (self.sps.chroma_format_idc as u8 & 0b11));
            out.push(0b1111_1000 | (self.sps.bit_depth_luma.saturating_sub(8) & 0b111));
            out.push(0b1111_1000 | (self.sps.bit_depth_chroma.saturating_sub(8) & 0b111));
            out.push(self.sps_ext_nalus.len().min(255) as u8);
            write_nalus(&mut out, self.sps_ext_nalus.iter().take(255));
        }
        out
    }

    /// RFC 6381 §3.3: `avc1.` + profile_idc, constraint flags, level_idc in hex.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_indication, self.profile_compatibility, self.level_indication
        )
    }
}

fn read_nalus(r: &mut ByteReader<'_>, count: usize) -> Result<Vec<Bytes>, CodecError> {
    // Each entry takes at least two bytes, which bounds the allocation.
    let mut out = Vec::with_capacity(count.min(r.remaining() / 2));
    for _ in 0..count {
        let len = usize::from(r.u16_be()?);
        out.push(Bytes::copy_from_slice(r.bytes(len)?));
    }
    Ok(out)
}

fn write_nalus<'a>(out: &mut Vec<u8>, nalus: impl Iterator<Item = &'a Bytes>) {
    for nal in nalus {
        let len = nal.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&nal[..len]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::bits::test_util::{BitWriter, rbsp_to_nal};
    use super::*;

    // From `ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 1 -c:v libx264
    // -profile:v high -bsf:v h264_mp4toannexb -f h264 x.h264` (ffmpeg 5.1, x264 164).
    pub(crate) const SPS_720P_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    pub(crate) const PPS_720P_HIGH: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    // From `ffmpeg -f lavfi -i testsrc2=size=322x242:rate=25 -t 1 -c:v libx264
    // -profile:v baseline -bsf:v h264_mp4toannexb -f h264 crop.h264`: needs frame cropping.
    const SPS_322X242_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x50, 0x87, 0x88, 0x88, 0xc0, 0x44, 0x00, 0x00, 0x03,
        0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x50, 0xa9, 0x20,
    ];

    // From `ffmpeg -f lavfi -i testsrc2=size=640x360:rate=25 -t 0.2 -pix_fmt yuv444p
    // -c:v libx264 -x264-params cqm=jvt -f h264 sl.h264`: High 4:4:4 Predictive.
    const SPS_444: &[u8] = &[
        0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x14, 0x05, 0xff, 0x13, 0x80, 0x88, 0x00, 0x00,
        0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0x90, 0x78, 0xb1, 0x6c, 0xb0,
    ];

    #[test]
    fn parses_x264_high_720p() {
        let sps = Sps::parse(SPS_720P_HIGH).unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (100, 0, 31)
        );
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!(sps.frame_rate(), Some((60, 2)));
        assert_eq!(sps.sample_aspect_ratio, Some((1, 1)));
        let config = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
        assert_eq!(config.codec_string(), "avc1.64001f");
    }

    #[test]
    fn applies_frame_cropping() {
        let sps = Sps::parse(SPS_322X242_BASELINE).unwrap();
        assert_eq!((sps.width, sps.height), (322, 242));
        assert_eq!(sps.frame_rate(), Some((50, 2)));
        let config = AvcConfig::from_parameter_sets(
            &[SPS_322X242_BASELINE],
            &[&[0x68, 0xcb, 0x83, 0xcb, 0x20]],
        )
        .unwrap();
        assert_eq!(config.codec_string(), "avc1.42c00d");
    }

    #[test]
    fn parses_high_444() {
        let sps = Sps::parse(SPS_444).unwrap();
        assert_eq!((sps.width, sps.height), (640, 360));
        assert_eq!(sps.chroma_format_idc, 3);
        assert_eq!(sps.profile_idc, 244);
    }

    /// A synthetic High-profile SPS with scaling lists (x264 signals them in the
    /// PPS, so no encoder fixture carries them in the SPS) and interlaced coding.
    #[test]
    fn skips_scaling_lists_and_handles_fields() {
        let mut w = BitWriter::default();
        w.bits(8, 100).bits(8, 0).bits(8, 40).ue(0);
        w.ue(1).ue(0).ue(0).bit(false).bit(true); // 4:2:0, 8 bit, scaling matrix present
        for i in 0..8 {
            w.bit(true);
            let size = if i < 6 { 16 } else { 64 };
            // A ramp of deltas, then a delta that makes nextScale 0 (use default).
            for _ in 0..size - 1 {
                w.se(1);
            }
            w.se(-((8 + size - 1) % 256));
        }
        w.ue(0).ue(0).ue(4); // log2_max_frame_num, poc type 0, log2 lsb
        w.ue(2).bit(false); // refs, gaps
        w.ue(119).ue(33); // 1920 wide, 34 map units (field pairs: 1088 rows)
        w.bit(false).bit(false).bit(true); // frame_mbs_only=0, mbaff=0, direct8x8
        w.bit(true).ue(0).ue(0).ue(0).ue(2); // crop bottom 2 * CropUnitY(4) = 8 rows
        w.bit(false); // no VUI
        let mut nal = vec![0x67];
        nal.extend(rbsp_to_nal(&w.finish()));
        let sps = Sps::parse(&nal).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert!(!sps.frame_mbs_only);
        assert_eq!(sps.timing, None);
    }

    #[test]
    fn avcc_round_trip_and_mp4_atom_agree() {
        let config = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
        let record = config.to_record();
        assert_eq!(AvcConfig::parse(&record).unwrap(), config);

        use mp4_atom::{Atom, Avcc};
        let atom = Avcc::decode_body(&mut record.as_slice()).unwrap();
        assert_eq!(atom.sequence_parameter_sets, [SPS_720P_HIGH]);
        assert_eq!(atom.picture_parameter_sets, [PPS_720P_HIGH]);
        assert_eq!(atom.length_size, 4);
        assert_eq!(atom.ext.map(|e| e.chroma_format), Some(1));
    }

    /// libx264 `-bf 3` (B-pyramid on): VUI bitstream restriction with a
    /// reorder depth of 2.
    const SPS_X264_B_FRAMES: [u8; 25] = [
        0x67, 0x64, 0x00, 0x0b, 0xac, 0xd9, 0x42, 0x84, 0x7e, 0x5c, 0x04, 0x40, 0x00, 0x00, 0x03,
        0x00, 0x40, 0x00, 0x00, 0x0c, 0x83, 0xc5, 0x0a, 0x65, 0x80,
    ];

    #[test]
    fn reads_the_reorder_depth_from_the_vui() {
        let sps = Sps::parse(&SPS_X264_B_FRAMES).unwrap();
        assert_eq!((sps.width, sps.height), (160, 120));
        assert_eq!(sps.max_num_reorder_frames, Some(2));
        // Cut inside the bitstream restriction: the SPS still parses.
        let cut = Sps::parse(&SPS_X264_B_FRAMES[..22]).unwrap();
        assert_eq!(cut.max_num_reorder_frames, None);
        assert_eq!(cut.frame_rate(), sps.frame_rate());
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let record = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH])
            .unwrap()
            .to_record();
        for len in 0..record.len() - 4 {
            let err = AvcConfig::parse(&record[..len]).unwrap_err();
            assert!(err.is_truncated(), "len {len}: {err}");
        }
        for len in 1..SPS_720P_HIGH.len() {
            match Sps::parse(&SPS_720P_HIGH[..len]) {
                // Cut inside the VUI fields after timing, which are not read.
                Ok(sps) => assert_eq!(sps.frame_rate(), Some((60, 2)), "len {len}"),
                Err(err) => assert!(err.is_truncated(), "len {len}: {err}"),
            }
        }
        assert!(Sps::parse(&SPS_720P_HIGH[..12]).unwrap_err().is_truncated());
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(matches!(
            Sps::parse(&[0x68, 1, 2]),
            Err(CodecError::Invalid { .. })
        ));
        assert!(matches!(
            Sps::parse(&[0x67, 0x64, 0, 0x1f, 0, 0, 0, 0, 0, 0x01]),
            Err(CodecError::Invalid { .. })
        ));
        assert!(AvcConfig::parse(&[2, 0x64, 0, 0x1f, 0xff, 0xe0, 0]).is_err());
        for seed in 0u8..=255 {
            let noise: Vec<u8> = (0..40u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let _ = AvcConfig::parse(&noise);
            let mut sps = vec![0x67];
            sps.extend(&noise);
            let _ = Sps::parse(&sps);
        }
    }

    #[test]
    fn finds_idr_and_parameter_sets_in_annex_b() {
        let mut au = vec![0, 0, 0, 1];
        au.extend(SPS_720P_HIGH);
        au.extend([0, 0, 0, 1]);
        au.extend(PPS_720P_HIGH);
        au.extend([0, 0, 1, 0x65, 0x88, 0x84]);
        let config = AvcConfig::from_annex_b(&au).unwrap().unwrap();
        assert_eq!(config.sps.width, 1280);
        let sample = super::super::nal::annex_b_to_length_prefixed(&au).unwrap();
        assert!(is_idr(&sample, 4).unwrap());
        assert!(!is_idr(&[0, 0, 0, 2, 0x41, 0x9a], 4).unwrap());
        assert_eq!(AvcConfig::from_annex_b(&[0, 0, 1, 0x65, 1]).unwrap(), None);
    }
}

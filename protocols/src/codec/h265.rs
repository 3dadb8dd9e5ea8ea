//! H.265/HEVC: sequence parameter set parsing (ITU-T H.265 §7.3.2.2,
//! `profile_tier_level` §7.3.3), the `HEVCDecoderConfigurationRecord`
//! (`hvcC`, ISO/IEC 14496-15 §8.3.3.1) and the codec string of ISO/IEC
//! 14496-15 Annex E.3 (`hvc1.1.6.L93.B0`).
//!
//! Tracks are written with the `hvc1` sample entry: every parameter set is in
//! `hvcC` (`array_completeness = 1`), which is what Apple players require.

use bytes::Bytes;

use super::bits::{BitReader, nal_to_rbsp};
use super::nal::split_length_prefixed;
use super::{ByteReader, CodecError};

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
pub const NAL_PREFIX_SEI: u8 = 39;
pub const NAL_SUFFIX_SEI: u8 = 40;

/// Upper bound on a picture side in luma samples; level 6.2 needs 8192·√8.
const MAX_PIC_SIDE: u32 = 16_888 * 2;

/// `nal_unit_type` of an H.265 NAL unit (H.265 §7.3.1.2).
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// IRAP pictures (BLA, IDR, CRA: types 16..=23, H.265 §7.4.2.2) are sync samples.
pub fn is_irap_type(nal_unit_type: u8) -> bool {
    (16..=23).contains(&nal_unit_type)
}

/// Whether a length-prefixed access unit contains an IRAP picture.
pub fn is_irap(sample: &[u8], length_size: u8) -> Result<bool, CodecError> {
    for nal in split_length_prefixed(sample, length_size) {
        if nal_unit_type(nal?).is_some_and(is_irap_type) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The general part of `profile_tier_level()` (H.265 §7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[j]` is bit `31 - j`.
    pub compatibility_flags: u32,
    /// The 48 bits from `general_progressive_source_flag` on.
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
}

impl ProfileTierLevel {
    fn parse(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<Self, CodecError> {
        r.set_context("h265 sps > profile_tier_level");
        let profile_space = r.read_u8(2)?;
        let tier_flag = r.read_flag()?;
        let profile_idc = r.read_u8(5)?;
        let compatibility_flags = r.read_bits(32)?;
        let mut constraint_flags = [0u8; 6];
        for b in &mut constraint_flags {
            *b = r.read_u8(8)?;
        }
        let level_idc = r.read_u8(8)?;
        let mut sub_layer_present = [(false, false); 7];
        for present in sub_layer_present
            .iter_mut()
            .take(usize::from(max_sub_layers_minus1))
        {
            *present = (r.read_flag()?, r.read_flag()?);
        }
        if max_sub_layers_minus1 > 0 {
            r.skip_bits(2 * (8 - usize::from(max_sub_layers_minus1)))?;
        }
        for &(profile, level) in sub_layer_present
            .iter()
            .take(usize::from(max_sub_layers_minus1))
        {
            if profile {
                r.skip_bits(88)?;
            }
            if level {
                r.skip_bits(8)?;
            }
        }
        Ok(Self {
            profile_space,
            tier_flag,
            profile_idc,
            compatibility_flags,
            constraint_flags,
            level_idc,
        })
    }
}

/// The fields of an H.265 SPS that a packager needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub profile_tier_level: ProfileTierLevel,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Width in luma samples, inside the conformance window.
    pub width: u32,
    /// Height in luma samples, inside the conformance window.
    pub height: u32,
    /// `sps_max_num_reorder_pics` of the highest sub-layer: how many frames
    /// may precede a frame in decode order and follow it in output order
    /// (0: no B-frames). `None` when the SPS ends before it.
    pub max_num_reorder_pics: Option<u32>,
}

impl Sps {
    /// Parses an SPS NAL unit, two-byte header included.
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        match nal_unit_type(nal) {
            Some(NAL_SPS) => {}
            Some(_) => {
                return Err(CodecError::Invalid {
                    pos: 0,
                    context: "h265 sps",
                    reason: "nal_unit_type is not 33",
                });
            }
            None => {
                return Err(CodecError::Truncated {
                    pos: 0,
                    context: "h265 sps",
                });
            }
        }
        if nal.len() < 2 {
            return Err(CodecError::Truncated {
                pos: nal.len(),
                context: "h265 sps",
            });
        }
        let rbsp = nal_to_rbsp(nal.get(2..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp, "h265 sps");
        let _vps_id = r.read_bits(4)?;
        let max_sub_layers_minus1 = r.read_u8(3)?;
        if max_sub_layers_minus1 > 6 {
            return Err(r.invalid("sps_max_sub_layers_minus1 > 6"));
        }
        let temporal_id_nesting = r.read_flag()?;
        let profile_tier_level = ProfileTierLevel::parse(&mut r, max_sub_layers_minus1)?;
        r.set_context("h265 sps");
        r.read_ue_max(15, "sps_seq_parameter_set_id > 15")?;
        let chroma_format_idc = r.read_ue_max(3, "chroma_format_idc > 3")? as u8;
        let separate_colour_plane = chroma_format_idc == 3 && r.read_flag()?;
        let coded_width = r.read_ue_max(MAX_PIC_SIDE, "pic_width_in_luma_samples too large")?;
        let coded_height = r.read_ue_max(MAX_PIC_SIDE, "pic_height_in_luma_samples too large")?;
        if coded_width == 0 || coded_height == 0 {
            return Err(r.invalid("zero picture size"));
        }
        let (mut width, mut height) = (coded_width, coded_height);
        if r.read_flag()? {
            // H.265 §7.4.3.2.1, conf_win_*_offset in chroma sample units (Table 6-1).
            let (sub_width, sub_height) = match (separate_colour_plane, chroma_format_idc) {
                (false, 1) => (2, 2),
                (false, 2) => (2, 1),
                _ => (1, 1),
            };
            let mut window = [0u32; 4];
            for w in &mut window {
                *w = r.read_ue_max(MAX_PIC_SIDE, "conformance window offset too large")?;
            }
            let [left, right, top, bottom] = window;
            let crop_x = (left + right) * sub_width;
            let crop_y = (top + bottom) * sub_height;
            if crop_x >= coded_width || crop_y >= coded_height {
                return Err(r.invalid("conformance window removes the whole picture"));
            }
            width -= crop_x;
            height -= crop_y;
        }
        let bit_depth_luma = 8 + r.read_ue_max(8, "bit_depth_luma_minus8 > 8")? as u8;
        let bit_depth_chroma = 8 + r.read_ue_max(8, "bit_depth_chroma_minus8 > 8")? as u8;
        let max_num_reorder_pics = reorder_pics(&mut r, max_sub_layers_minus1);
        Ok(Self {
            max_num_reorder_pics,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            profile_tier_level,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width,
            height,
        })
    }
}

/// `sps_max_num_reorder_pics[HighestTid]` (H.265 §7.3.2.2.1), read after
/// the bit depths; `None` when the SPS ends first or the value exceeds the
/// 16-picture limit of §A.4.2.
fn reorder_pics(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Option<u32> {
    r.read_ue().ok()?; // log2_max_pic_order_cnt_lsb_minus4
    let per_layer = r.read_flag().ok()?;
    let first = if per_layer { 0 } else { max_sub_layers_minus1 };
    let mut reorder = None;
    for _ in first..=max_sub_layers_minus1 {
        r.read_ue().ok()?; // sps_max_dec_pic_buffering_minus1
        reorder = Some(r.read_ue().ok()?);
        r.read_ue().ok()?; // sps_max_latency_increase_plus1
    }
    reorder.filter(|&n| n <= 16)
}

/// One `hvcC` array: NAL units of one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvccArray {
    pub completeness: bool,
    pub nal_unit_type: u8,
    pub nalus: Vec<Bytes>,
}

/// The HEVC decoder configuration of a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HevcConfig {
    pub profile_tier_level: ProfileTierLevel,
    pub min_spatial_segmentation_idc: u16,
    pub parallelism_type: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub avg_frame_rate: u16,
    pub constant_frame_rate: u8,
    pub num_temporal_layers: u8,
    pub temporal_id_nested: bool,
    /// Bytes in each NAL unit length prefix of the samples: 1, 2 or 4.
    pub length_size: u8,
    pub arrays: Vec<HvccArray>,
    /// The first SPS, parsed.
    pub sps: Sps,
}

impl HevcConfig {
    /// Builds a configuration from VPS, SPS and PPS NAL units (headers
    /// included). Samples are assumed to use 4-byte length prefixes.
    pub fn from_parameter_sets(
        vps: &[&[u8]],
        sps: &[&[u8]],
        pps: &[&[u8]],
    ) -> Result<Self, CodecError> {
        let invalid = |reason| CodecError::Invalid {
            pos: 0,
            context: "hevc config",
            reason,
        };
        let first = sps.first().ok_or(invalid("no SPS"))?;
        if vps.is_empty() || pps.is_empty() {
            return Err(invalid("VPS and PPS are required"));
        }
        let all = vps.iter().chain(sps).chain(pps);
        if all.clone().any(|n| n.len() > usize::from(u16::MAX))
            || [vps.len(), sps.len(), pps.len()]
                .iter()
                .any(|&n| n > usize::from(u16::MAX))
        {
            return Err(invalid("parameter sets too large for hvcC"));
        }
        let parsed = Sps::parse(first)?;
        let array = |nal_unit_type, nalus: &[&[u8]]| HvccArray {
            completeness: true,
            nal_unit_type,
            nalus: nalus.iter().map(|n| Bytes::copy_from_slice(n)).collect(),
        };
        Ok(Self {
            profile_tier_level: parsed.profile_tier_level,
            min_spatial_segmentation_idc: 0,
            parallelism_type: 0,
            chroma_format_idc: parsed.chroma_format_idc,
            bit_depth_luma: parsed.bit_depth_luma,
            bit_depth_chroma: parsed.bit_depth_chroma,
            avg_frame_rate: 0,
            constant_frame_rate: 0,
            num_temporal_layers: parsed.max_sub_layers,
            temporal_id_nested: parsed.temporal_id_nesting,
            length_size: 4,
            arrays: vec![
                array(NAL_VPS, vps),
                array(NAL_SPS, sps),
                array(NAL_PPS, pps),
            ],
            sps: parsed,
        })
    }

    /// Collects VPS, SPS and PPS from an Annex B access unit. `Ok(None)` when any is missing.
    pub fn from_annex_b(access_unit: &[u8]) -> Result<Option<Self>, CodecError> {
        Self::from_nal_units(super::nal::split_annex_b(access_unit).map(Ok))
    }

    /// Collects VPS, SPS and PPS from a sample of 4-byte length-prefixed
    /// NAL units. `Ok(None)` when any is missing.
    pub fn from_length_prefixed(sample: &[u8]) -> Result<Option<Self>, CodecError> {
        Self::from_nal_units(super::nal::split_length_prefixed(sample, 4))
    }

    fn from_nal_units<'a>(
        nals: impl Iterator<Item = Result<&'a [u8], CodecError>>,
    ) -> Result<Option<Self>, CodecError> {
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for nal in nals {
            let nal = nal?;
            match nal_unit_type(nal) {
                Some(NAL_VPS) => vps.push(nal),
                Some(NAL_SPS) => sps.push(nal),
                Some(NAL_PPS) => pps.push(nal),
                _ => {}
            }
        }
        if vps.is_empty() || sps.is_empty() || pps.is_empty() {
            return Ok(None);
        }
        Self::from_parameter_sets(&vps, &sps, &pps).map(Some)
    }

    /// Parses an `HEVCDecoderConfigurationRecord` (the body of an `hvcC` box).
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let mut r = ByteReader::new(record, "hvcC");
        if r.u8()? != 1 {
            return Err(r.invalid("configurationVersion is not 1"));
        }
        let b = r.u8()?;
        let compatibility_flags = r.u32_be()?;
        let constraint_flags = r.array::<6>()?;
        let level_idc = r.u8()?;
        let profile_tier_level = ProfileTierLevel {
            profile_space: b >> 6,
            tier_flag: b & 0x20 != 0,
            profile_idc: b & 0x1f,
            compatibility_flags,
            constraint_flags,
            level_idc,
        };
        let min_spatial_segmentation_idc = r.u16_be()? & 0x0fff;
        let parallelism_type = r.u8()? & 0b11;
        let chroma_format_idc = r.u8()? & 0b11;
        let bit_depth_luma = 8 + (r.u8()? & 0b111);
        let bit_depth_chroma = 8 + (r.u8()? & 0b111);
        let avg_frame_rate = r.u16_be()?;
        let b = r.u8()?;
        let num_arrays = r.u8()?;
        // Each array takes at least three bytes, which bounds the allocation.
        let mut arrays = Vec::with_capacity(usize::from(num_arrays).min(r.remaining() / 3));
        for _ in 0..num_arrays {
            let head = r.u8()?;
            let count = usize::from(r.u16_be()?);
            let mut nalus = Vec::with_capacity(count.min(r.remaining() / 2));
            for _ in 0..count {
                let len = usize::from(r.u16_be()?);
                nalus.push(Bytes::copy_from_slice(r.bytes(len)?));
            }
            arrays.push(HvccArray {
                completeness: head & 0x80 != 0,
                nal_unit_type: head & 0x3f,
                nalus,
            });
        }
        let first_sps = arrays
            .iter()
            .filter(|a| a.nal_unit_type == NAL_SPS)
            .flat_map(|a| a.nalus.first())
            .next()
            .ok_or(r.invalid("hvcC carries no SPS"))?;
        let sps = Sps::parse(first_sps)?;
        Ok(Self {
            profile_tier_level,
            min_spatial_segmentation_idc,
            parallelism_type,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            avg_frame_rate,
            constant_frame_rate: b >> 6,
            num_temporal_layers: (b >> 3) & 0b111,
            temporal_id_nested: b & 0b100 != 0,
            length_size: (b & 0b11) + 1,
            arrays,
            sps,
        })
    }

    /// Writes the `HEVCDecoderConfigurationRecord`.
    pub fn to_record(&self) -> Vec<u8> {
        let ptl = &self.profile_tier_level;
        let mut out = vec![
            1,
            (ptl.profile_space & 0b11) << 6
                | u8::from(ptl.tier_flag) << 5
                | (ptl.profile_idc & 0x1f),
        ];
        out.extend_from_slice(&ptl.compatibility_flags.to_be_bytes());
        out.extend_from_slice(&ptl.constraint_flags);
        out.push(ptl.level_idc);
        out.extend_from_slice(
            &(0xf000 | (self.min_spatial_segmentation_idc & 0x0fff)).to_be_bytes(),
        );
        out.push(0b1111_1100 | (self.parallelism_type & 0b11));
        out.push(0b1111_1100 | (self.chroma_format_idc & 0b11));
        out.push(0b1111_1000 | (self.bit_depth_luma.saturating_sub(8) & 0b111));
        out.push(0b1111_1000 | (self.bit_depth_chroma.saturating_sub(8) & 0b111));
        out.extend_from_slice(&self.avg_frame_rate.to_be_bytes());
        out.push(
            (self.constant_frame_rate & 0b11) << 6
                | (self.num_temporal_layers & 0b111) << 3
                | u8::from(self.temporal_id_nested) << 2
                | (self.length_size.saturating_sub(1) & 0b11),
        );
        let arrays = &self.arrays[..self.arrays.len().min(255)];
        out.push(arrays.len() as u8);
        for array in arrays {
            out.push(u8::from(array.completeness) << 7 | (array.nal_unit_type & 0x3f));
            let nalus = &array.nalus[..array.nalus.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(nalus.len() as u16).to_be_bytes());
            for nal in nalus {
                let len = nal.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.extend_from_slice(&nal[..len]);
            }
        }
        out
    }

    /// ISO/IEC 14496-15 Annex E.3: `hvc1.[A-C]?<profile_idc>.<compatibility
    /// flags, bit-reversed, hex>.<L|H><level_idc>` then each constraint byte in
    /// hex, trailing zero bytes omitted.
    pub fn codec_string(&self) -> String {
        let ptl = &self.profile_tier_level;
        let space = match ptl.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let tier = if ptl.tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            ptl.profile_idc,
            ptl.compatibility_flags.reverse_bits(),
            ptl.level_idc
        );
        let used = ptl
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &ptl.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From `ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 1 -c:v libx265 -f hevc x.hevc`
    // (ffmpeg 5.1, x265 3.5): Main profile, level 4 (level_idc 120).
    const VPS_1080P: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x95, 0x98, 0x09,
    ];
    const SPS_1080P: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0,
        0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
    ];
    const PPS_1080P: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    // From `ffmpeg -f lavfi -i testsrc2=size=426x240:rate=30 -t 0.2 -c:v libx265 -f hevc`:
    // coded as 432x240 with a conformance window.
    const SPS_426X240: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0d, 0x88, 0x0f, 0x1c, 0x9e, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0,
        0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];

    fn config_1080p() -> HevcConfig {
        HevcConfig::from_parameter_sets(&[VPS_1080P], &[SPS_1080P], &[PPS_1080P]).unwrap()
    }

    /// libx265 `-bf 3`.
    const SPS_X265_B_FRAMES: [u8; 41] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x1e, 0xa0, 0x14, 0x20, 0x79, 0x65, 0x95, 0x96, 0x49, 0x32, 0xbc, 0x05, 0xa0,
        0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0x21,
    ];

    #[test]
    fn reads_the_reorder_depth() {
        let sps = Sps::parse(&SPS_X265_B_FRAMES).unwrap();
        assert_eq!((sps.width, sps.height), (160, 120));
        assert_eq!(sps.max_num_reorder_pics, Some(2));
    }

    #[test]
    fn parses_x265_main_1080p() {
        let sps = Sps::parse(SPS_1080P).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        let ptl = sps.profile_tier_level;
        assert_eq!(
            (ptl.profile_space, ptl.tier_flag, ptl.profile_idc),
            (0, false, 1)
        );
        assert_eq!(ptl.compatibility_flags, 0x6000_0000);
        assert_eq!(ptl.level_idc, 120);
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
        // Compatibility flags 1 and 2 (0x60000000 reversed = 6); progressive + frame-only = 0x90.
        assert_eq!(config_1080p().codec_string(), "hvc1.1.6.L120.90");
    }

    #[test]
    fn applies_conformance_window() {
        let sps = Sps::parse(SPS_426X240).unwrap();
        assert_eq!((sps.width, sps.height), (426, 240));
        assert_eq!(sps.profile_tier_level.level_idc, 60);
    }

    #[test]
    fn codec_string_follows_annex_e() {
        let mut config = config_1080p();
        let ptl = &mut config.profile_tier_level;
        // The example of ISO/IEC 14496-15 Annex E: Main profile, level 3.1, progressive+frame-only… flags 0xB0.
        ptl.level_idc = 93;
        ptl.constraint_flags = [0xb0, 0, 0, 0, 0, 0];
        assert_eq!(config.codec_string(), "hvc1.1.6.L93.B0");
        let ptl = &mut config.profile_tier_level;
        ptl.profile_space = 1;
        ptl.tier_flag = true;
        ptl.profile_idc = 2;
        ptl.compatibility_flags = 0x2000_0000;
        ptl.level_idc = 120;
        ptl.constraint_flags = [0xb0, 0, 0x01, 0, 0, 0];
        assert_eq!(config.codec_string(), "hvc1.A2.4.H120.B0.0.1");
        config.profile_tier_level.constraint_flags = [0; 6];
        assert_eq!(config.codec_string(), "hvc1.A2.4.H120");
    }

    #[test]
    fn hvcc_round_trip_and_mp4_atom_agree() {
        let config = config_1080p();
        let record = config.to_record();
        assert_eq!(HevcConfig::parse(&record).unwrap(), config);

        use mp4_atom::{Atom, Hvcc};
        let atom = Hvcc::decode_body(&mut record.as_slice()).unwrap();
        assert_eq!(atom.general_profile_idc, 1);
        assert_eq!(atom.general_level_idc, 120);
        assert_eq!(atom.general_profile_compatibility_flags, [0x60, 0, 0, 0]);
        assert_eq!(atom.arrays.len(), 3);
        assert_eq!(atom.arrays[1].nalus, [SPS_1080P]);
        assert_eq!(atom.length_size_minus_one, 3);
    }

    #[test]
    fn truncations_and_garbage() {
        let record = config_1080p().to_record();
        for len in 0..record.len() {
            let err = HevcConfig::parse(&record[..len]).unwrap_err();
            assert!(err.is_truncated(), "len {len}: {err}");
        }
        for len in 0..SPS_1080P.len() {
            match Sps::parse(&SPS_1080P[..len]) {
                // Cut after the bit depths, past which nothing is read.
                Ok(sps) => assert_eq!((sps.width, sps.height), (1920, 1080), "len {len}"),
                Err(err) => assert!(err.is_truncated(), "len {len}: {err}"),
            }
        }
        assert!(matches!(
            Sps::parse(PPS_1080P),
            Err(CodecError::Invalid { .. })
        ));
        for seed in 0u8..=255 {
            let noise: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(seed) ^ seed).collect();
            let _ = HevcConfig::parse(&noise);
            let mut sps = vec![0x42, 0x01];
            sps.extend(&noise);
            let _ = Sps::parse(&sps);
        }
    }

    #[test]
    fn irap_detection() {
        assert!(is_irap(&[0, 0, 0, 3, 0x26, 0x01, 0xaf], 4).unwrap());
        assert!(!is_irap(&[0, 0, 0, 3, 0x02, 0x01, 0xd0], 4).unwrap());
        assert!(is_irap(&[0, 0, 0, 9], 4).is_err());
    }
}

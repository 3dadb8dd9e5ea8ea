//! AAC: `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), the ADTS frame
//! header (ISO/IEC 14496-3 §1.A.2.2) used by MPEG-TS and some RTMP encoders,
//! and the RFC 6381 codec string `mp4a.40.<audioObjectType>`.

use bytes::Bytes;

use super::CodecError;
use super::bits::BitReader;

/// ISO/IEC 14496-3 Table 1.18, `samplingFrequencyIndex` 0..=12.
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];
const EXPLICIT_FREQUENCY: u8 = 0x0f;
const ESCAPE_OBJECT_TYPE: u8 = 31;

pub const AOT_AAC_MAIN: u8 = 1;
pub const AOT_AAC_LC: u8 = 2;
pub const AOT_SBR: u8 = 5;
pub const AOT_PS: u8 = 29;

/// Explicitly signalled SBR/PS (HE-AAC v1/v2, ISO/IEC 14496-3 §1.6.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbrExtension {
    /// The core codec's object type (2 for HE-AAC over AAC-LC).
    pub core_object_type: u8,
    /// The output sample rate after SBR.
    pub sample_rate: u32,
}

/// A parsed `AudioSpecificConfig`; `raw` keeps every byte for the `esds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    pub object_type: u8,
    /// `None` when the rate is written explicitly as 24 bits.
    pub sampling_frequency_index: Option<u8>,
    pub sample_rate: u32,
    pub channel_config: u8,
    pub sbr: Option<SbrExtension>,
    pub raw: Bytes,
}

/// Object types whose config is `GASpecificConfig` (ISO/IEC 14496-3 Table 1.15).
fn is_general_audio(object_type: u8) -> bool {
    matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23)
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let aot = r.read_u8(5)?;
    if aot == ESCAPE_OBJECT_TYPE {
        return Ok(32 + r.read_u8(6)?);
    }
    Ok(aot)
}

fn read_frequency(r: &mut BitReader<'_>) -> Result<(Option<u8>, u32), CodecError> {
    let index = r.read_u8(4)?;
    if index == EXPLICIT_FREQUENCY {
        let rate = r.read_bits(24)?;
        if rate == 0 {
            return Err(r.invalid("explicit samplingFrequency is 0"));
        }
        return Ok((None, rate));
    }
    let rate = SAMPLE_RATES
        .get(usize::from(index))
        .copied()
        .ok_or_else(|| r.invalid("reserved samplingFrequencyIndex"))?;
    Ok((Some(index), rate))
}

impl AudioSpecificConfig {
    /// Parses an `AudioSpecificConfig`, as found in `esds` `DecoderSpecificInfo`,
    /// an RTMP AAC sequence header or an SDP `config=` parameter.
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(data, "aac AudioSpecificConfig");
        let object_type = read_object_type(&mut r)?;
        if object_type == 0 {
            return Err(r.invalid("audioObjectType 0"));
        }
        let (sampling_frequency_index, sample_rate) = read_frequency(&mut r)?;
        let channel_config = r.read_u8(4)?;
        let mut sbr = None;
        if matches!(object_type, AOT_SBR | AOT_PS) {
            let (_, ext_rate) = read_frequency(&mut r)?;
            let core_object_type = read_object_type(&mut r)?;
            sbr = Some(SbrExtension {
                core_object_type,
                sample_rate: ext_rate,
            });
        }
        Ok(Self {
            object_type,
            sampling_frequency_index,
            sample_rate,
            channel_config,
            sbr,
            raw: Bytes::copy_from_slice(data),
        })
    }

    /// Builds the config of a general-audio object type (AAC Main/LC/SSR/LTP
    /// and the ER variants), using the frequency index when the rate has one.
    pub fn new(object_type: u8, sample_rate: u32, channel_config: u8) -> Result<Self, CodecError> {
        let unsupported = |reason| CodecError::Unsupported {
            context: "aac AudioSpecificConfig",
            reason,
        };
        if !is_general_audio(object_type) {
            return Err(unsupported("only general-audio object types can be built"));
        }
        if channel_config > 15 || sample_rate == 0 || sample_rate >= 1 << 24 {
            return Err(unsupported(
                "channel configuration or sample rate out of range",
            ));
        }
        let index = SAMPLE_RATES.iter().position(|&r| r == sample_rate);
        let mut bits: u64 = 0;
        let mut len = 0u32;
        let mut put = |n: u32, v: u64| {
            bits = (bits << n) | v;
            len += n;
        };
        if object_type >= ESCAPE_OBJECT_TYPE {
            put(5, 31);
            put(6, u64::from(object_type - 32));
        } else {
            put(5, u64::from(object_type));
        }
        match index {
            Some(i) => put(4, i as u64),
            None => {
                put(4, u64::from(EXPLICIT_FREQUENCY));
                put(24, u64::from(sample_rate));
            }
        }
        put(4, u64::from(channel_config));
        // GASpecificConfig: frameLengthFlag = 0 (1024), dependsOnCoreCoder = 0, extensionFlag = 0.
        put(3, 0);
        let pad = (8 - len % 8) % 8;
        let bytes = ((bits << pad).to_be_bytes(), (len + pad) / 8);
        let raw = Bytes::copy_from_slice(&bytes.0[8 - bytes.1 as usize..]);
        Ok(Self {
            object_type,
            sampling_frequency_index: index.map(|i| i as u8),
            sample_rate,
            channel_config,
            sbr: None,
            raw,
        })
    }

    /// RFC 6381 §3.3: `mp4a.40.` + the signalled audioObjectType in decimal.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// Sample rate after SBR when SBR is signalled explicitly.
    pub fn output_sample_rate(&self) -> u32 {
        self.sbr.map_or(self.sample_rate, |s| s.sample_rate)
    }

    /// Channels per ISO/IEC 14496-3 Table 1.19; 0 when a program config
    /// element in the bitstream defines them (`channelConfiguration` 0).
    pub fn channel_count(&self) -> u16 {
        match self.channel_config {
            1..=6 => u16::from(self.channel_config),
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            _ => 0,
        }
    }
}

/// An ADTS fixed + variable header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    pub mpeg2: bool,
    pub protection_absent: bool,
    /// audioObjectType - 1.
    pub profile: u8,
    pub sampling_frequency_index: u8,
    pub channel_config: u8,
    /// The whole frame, header included.
    pub frame_length: u16,
    pub buffer_fullness: u16,
    pub raw_data_blocks: u8,
}

impl AdtsHeader {
    /// Parses the header at the start of `data` (7 bytes, 9 with CRC).
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(data, "aac adts header");
        if r.read_bits(12)? != 0xfff {
            return Err(r.invalid("no ADTS syncword"));
        }
        let mpeg2 = r.read_flag()?;
        if r.read_bits(2)? != 0 {
            return Err(r.invalid("layer is not 0"));
        }
        let protection_absent = r.read_flag()?;
        let profile = r.read_u8(2)?;
        let sampling_frequency_index = r.read_u8(4)?;
        if usize::from(sampling_frequency_index) >= SAMPLE_RATES.len() {
            return Err(r.invalid("reserved sampling_frequency_index"));
        }
        r.skip_bits(1)?;
        let channel_config = r.read_u8(3)?;
        r.skip_bits(4)?;
        let frame_length = r.read_bits(13)? as u16;
        let buffer_fullness = r.read_bits(11)? as u16;
        let raw_data_blocks = r.read_u8(2)? + 1;
        let header = Self {
            mpeg2,
            protection_absent,
            profile,
            sampling_frequency_index,
            channel_config,
            frame_length,
            buffer_fullness,
            raw_data_blocks,
        };
        if usize::from(frame_length) < header.header_len() {
            return Err(r.invalid("aac_frame_length shorter than the header"));
        }
        if !protection_absent && data.len() < 9 {
            return Err(CodecError::Truncated {
                pos: data.len(),
                context: "aac adts header",
            });
        }
        Ok(header)
    }

    pub fn header_len(&self) -> usize {
        if self.protection_absent { 7 } else { 9 }
    }

    pub fn payload_len(&self) -> usize {
        usize::from(self.frame_length).saturating_sub(self.header_len())
    }

    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES
            .get(usize::from(self.sampling_frequency_index))
            .copied()
            .unwrap_or(0)
    }

    /// The equivalent `AudioSpecificConfig`.
    pub fn audio_specific_config(&self) -> Result<AudioSpecificConfig, CodecError> {
        AudioSpecificConfig::new(self.profile + 1, self.sample_rate(), self.channel_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The `esds` DecoderSpecificInfo of `ffmpeg -f lavfi -i sine=sample_rate=48000 -ac 2
    // -c:a aac x.m4a` (ffmpeg 5.1 native encoder): AAC-LC, 48 kHz, stereo, followed by
    // the backward-compatible SBR sync extension (0x2b7, sbrPresentFlag = 0).
    const ASC_LC_48K_STEREO: &[u8] = &[0x11, 0x90, 0x56, 0xe5, 0x00];

    // The first header of `ffmpeg -f lavfi -i sine=sample_rate=48000 -ac 2 -c:a aac -f adts x.aac`.
    const ADTS_FIRST_FRAME: &[u8] = &[0xff, 0xf1, 0x4c, 0x80, 0x24, 0xff, 0xfc];

    #[test]
    fn parses_ffmpeg_lc() {
        let asc = AudioSpecificConfig::parse(ASC_LC_48K_STEREO).unwrap();
        assert_eq!(asc.object_type, AOT_AAC_LC);
        assert_eq!(asc.sample_rate, 48_000);
        assert_eq!(asc.channel_count(), 2);
        assert_eq!(asc.codec_string(), "mp4a.40.2");
        assert_eq!(asc.raw.as_ref(), ASC_LC_48K_STEREO);
        let built = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
        assert_eq!(built.raw.as_ref(), &ASC_LC_48K_STEREO[..2]);
        assert_eq!(AudioSpecificConfig::parse(&built.raw).unwrap(), built);
    }

    #[test]
    fn explicit_frequency_and_escape_object_type() {
        let asc = AudioSpecificConfig::new(2, 50_000, 1).unwrap();
        assert_eq!(asc.sampling_frequency_index, None);
        assert_eq!(asc.raw.len(), 5);
        assert_eq!(AudioSpecificConfig::parse(&asc.raw).unwrap(), asc);

        // audioObjectType 42 (USAC) escaped: 11111 001010, index 3, channels 2.
        let asc = AudioSpecificConfig::parse(&[0xf9, 0x46, 0x40]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channel_config),
            (42, 48_000, 2)
        );
        assert_eq!(asc.codec_string(), "mp4a.40.42");
        assert!(AudioSpecificConfig::new(42, 48_000, 2).is_err());
    }

    #[test]
    fn explicit_sbr() {
        // HE-AAC: AOT 5, 24 kHz core (index 6), stereo, SBR at 48 kHz (index 3), core AOT 2.
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(asc.object_type, AOT_SBR);
        assert_eq!(asc.sample_rate, 24_000);
        assert_eq!(asc.output_sample_rate(), 48_000);
        assert_eq!(asc.sbr.map(|s| s.core_object_type), Some(2));
        assert_eq!(asc.codec_string(), "mp4a.40.5");
    }

    #[test]
    fn truncated_and_invalid() {
        assert!(AudioSpecificConfig::parse(&[]).unwrap_err().is_truncated());
        assert!(
            AudioSpecificConfig::parse(&[0x11])
                .unwrap_err()
                .is_truncated()
        );
        assert!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00])
                .unwrap_err()
                .is_truncated()
        );
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn adts_header() {
        let h = AdtsHeader::parse(ADTS_FIRST_FRAME).unwrap();
        assert!(h.protection_absent);
        assert_eq!(h.profile + 1, AOT_AAC_LC);
        assert_eq!(h.sample_rate(), 48_000);
        assert_eq!(h.channel_config, 2);
        assert_eq!(h.frame_length, 295);
        assert_eq!(h.payload_len(), 288);
        assert_eq!(
            h.audio_specific_config().unwrap().raw.as_ref(),
            &ASC_LC_48K_STEREO[..2]
        );
        for len in 0..7 {
            assert!(
                AdtsHeader::parse(&ADTS_FIRST_FRAME[..len])
                    .unwrap_err()
                    .is_truncated()
            );
        }
        assert!(matches!(
            AdtsHeader::parse(&[0xff, 0xe1, 0x4c, 0x80, 0x01, 0x7f, 0xfc]),
            Err(CodecError::Invalid { .. })
        ));
    }
}

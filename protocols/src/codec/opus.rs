//! Opus: the `OpusHead` identification header (RFC 7845 §5.1, little-endian,
//! as carried by Ogg and WebRTC/RTP signalling) and the `dOps` box body
//! ("Encapsulation of Opus in ISO Base Media File Format" §4.3.2,
//! big-endian). Both carry the same fields. The codec string is `opus`.

use super::{ByteReader, CodecError};

/// Opus always decodes at 48 kHz; MP4 tracks use it as the timescale.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;

const OPUS_HEAD_MAGIC: &[u8; 8] = b"OpusHead";

/// Channel mapping for families other than 0 (RFC 7845 §5.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelMapping {
    pub family: u8,
    pub stream_count: u8,
    pub coupled_count: u8,
    /// One entry per output channel.
    pub mapping: Vec<u8>,
}

/// Opus decoder configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
    /// Samples at 48 kHz to discard from the decoder output at the start.
    pub pre_skip: u16,
    /// The original input rate, informational only.
    pub input_sample_rate: u32,
    /// Q7.8 dB gain to apply to the output.
    pub output_gain: i16,
    /// `None` for mapping family 0 (mono or stereo, no table).
    pub channel_mapping: Option<ChannelMapping>,
}

impl OpusConfig {
    /// Parses an `OpusHead` packet.
    pub fn parse_opus_head(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = ByteReader::new(data, "opus OpusHead");
        if r.bytes(8)? != OPUS_HEAD_MAGIC {
            return Err(r.invalid("no OpusHead magic"));
        }
        // RFC 7845 §5.1: a major version other than 0 (upper four bits) is incompatible.
        if r.u8()? & 0xf0 != 0 {
            return Err(r.invalid("unsupported OpusHead major version"));
        }
        let channels = r.u8()?;
        let pre_skip = u16::from_le_bytes(r.array()?);
        let input_sample_rate = u32::from_le_bytes(r.array()?);
        let output_gain = i16::from_le_bytes(r.array()?);
        let family = r.u8()?;
        Self::finish(
            &mut r,
            channels,
            pre_skip,
            input_sample_rate,
            output_gain,
            family,
        )
    }

    /// Parses the body of a `dOps` box.
    pub fn parse_dops(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = ByteReader::new(data, "opus dOps");
        if r.u8()? != 0 {
            return Err(r.invalid("dOps Version is not 0"));
        }
        let channels = r.u8()?;
        let pre_skip = r.u16_be()?;
        let input_sample_rate = r.u32_be()?;
        let output_gain = i16::from_be_bytes(r.array()?);
        let family = r.u8()?;
        Self::finish(
            &mut r,
            channels,
            pre_skip,
            input_sample_rate,
            output_gain,
            family,
        )
    }

    fn finish(
        r: &mut ByteReader<'_>,
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
        output_gain: i16,
        family: u8,
    ) -> Result<Self, CodecError> {
        if channels == 0 {
            return Err(r.invalid("zero output channels"));
        }
        let channel_mapping = if family == 0 {
            if channels > 2 {
                return Err(r.invalid("mapping family 0 with more than two channels"));
            }
            None
        } else {
            let stream_count = r.u8()?;
            let coupled_count = r.u8()?;
            if stream_count == 0 || coupled_count > stream_count {
                return Err(r.invalid("bad stream or coupled count"));
            }
            let mapping = r.bytes(usize::from(channels))?.to_vec();
            Some(ChannelMapping {
                family,
                stream_count,
                coupled_count,
                mapping,
            })
        };
        Ok(Self {
            channels,
            pre_skip,
            input_sample_rate,
            output_gain,
            channel_mapping,
        })
    }

    /// Writes the body of a `dOps` box.
    pub fn to_dops(&self) -> Vec<u8> {
        let mut out = vec![0, self.channels];
        out.extend_from_slice(&self.pre_skip.to_be_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_be_bytes());
        out.extend_from_slice(&self.output_gain.to_be_bytes());
        match &self.channel_mapping {
            None => out.push(0),
            Some(m) => {
                out.extend_from_slice(&[m.family, m.stream_count, m.coupled_count]);
                out.extend_from_slice(&m.mapping);
            }
        }
        out
    }

    pub fn mapping_family(&self) -> u8 {
        self.channel_mapping.as_ref().map_or(0, |m| m.family)
    }

    /// RFC 6381 / "Opus in ISOBMFF" §4.4: the codecs parameter is `opus`.
    pub fn codec_string(&self) -> String {
        "opus".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The OpusHead of `ffmpeg -f lavfi -i sine -t 0.1 -ac 2 -c:a libopus -f ogg x.ogg`
    // (ffmpeg 5.1, libopus 1.3): stereo, pre-skip 312, input 48 kHz, no gain, family 0.
    const OPUS_HEAD_STEREO: &[u8] = &[
        b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 0x01, 0x02, 0x38, 0x01, 0x80, 0xbb, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn opus_head_to_dops_and_back() {
        let head = OpusConfig::parse_opus_head(OPUS_HEAD_STEREO).unwrap();
        assert_eq!(head.channels, 2);
        assert_eq!(head.pre_skip, 312);
        assert_eq!(head.input_sample_rate, 48_000);
        assert_eq!(head.mapping_family(), 0);
        let dops = head.to_dops();
        assert_eq!(OpusConfig::parse_dops(&dops).unwrap(), head);
        assert_eq!(head.codec_string(), "opus");

        use mp4_atom::{Atom, Dops};
        let atom = Dops::decode_body(&mut dops.as_slice()).unwrap();
        assert_eq!((atom.output_channel_count, atom.pre_skip), (2, 312));
    }

    #[test]
    fn surround_mapping() {
        let config = OpusConfig {
            channels: 6,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: -256,
            channel_mapping: Some(ChannelMapping {
                family: 1,
                stream_count: 4,
                coupled_count: 2,
                mapping: vec![0, 4, 1, 2, 3, 5],
            }),
        };
        let dops = config.to_dops();
        assert_eq!(OpusConfig::parse_dops(&dops).unwrap(), config);
        for len in 0..dops.len() {
            assert!(
                OpusConfig::parse_dops(&dops[..len])
                    .unwrap_err()
                    .is_truncated()
            );
        }
    }

    #[test]
    fn invalid_heads() {
        assert!(matches!(
            OpusConfig::parse_opus_head(b"OpusTags\x01\x02\0\0\0\0\0\0\0\0\0"),
            Err(CodecError::Invalid { .. })
        ));
        let mut head = OPUS_HEAD_STEREO.to_vec();
        head[9] = 3;
        assert!(matches!(
            OpusConfig::parse_opus_head(&head),
            Err(CodecError::Invalid { .. })
        ));
    }
}

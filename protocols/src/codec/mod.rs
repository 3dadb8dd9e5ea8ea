//! Codec configuration read from the bitstream: H.264 and H.265 parameter
//! sets, AAC `AudioSpecificConfig`, Opus `OpusHead`/`dOps`, and the decoder
//! configuration records MP4 stores them in (`avcC`, `hvcC`, `esds`, `dOps`).
//!
//! Every parser here takes untrusted bytes and returns [`CodecError`]:
//! [`CodecError::Truncated`] when more bytes could complete the structure,
//! [`CodecError::Invalid`] when no amount of extra bytes would help. Counts
//! read from input are capped before anything is allocated for them.
//!
//! The codec is recognised from the bitstream itself, never only from a
//! container tag (OBS before 29.1 sent HEVC labelled as H.264: SRS issue #3464).

pub mod aac;
pub(crate) mod bits;
pub mod h264;
pub mod h265;
pub mod nal;
pub mod opus;

use crate::media::MediaKind;
use bytes::Bytes;

pub use aac::AudioSpecificConfig;
pub use h264::AvcConfig;
pub use h265::HevcConfig;
pub use opus::OpusConfig;

/// Why a codec structure could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ends inside the structure: more bytes may complete it.
    #[error("{context}: truncated at byte {pos}")]
    Truncated { pos: usize, context: &'static str },
    /// The input violates the specification; more bytes will not help.
    #[error("{context}: invalid at byte {pos}: {reason}")]
    Invalid {
        pos: usize,
        context: &'static str,
        reason: &'static str,
    },
    /// The input is valid but uses a feature this crate does not implement.
    #[error("{context}: unsupported: {reason}")]
    Unsupported {
        context: &'static str,
        reason: &'static str,
    },
}

impl CodecError {
    pub fn is_truncated(&self) -> bool {
        matches!(self, Self::Truncated { .. })
    }
}

/// A byte cursor over untrusted input whose reads never panic.
#[derive(Debug)]
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    context: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8], context: &'static str) -> Self {
        Self {
            data,
            pos: 0,
            context,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> CodecError {
        CodecError::Invalid {
            pos: self.pos,
            context: self.context,
            reason,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len());
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(CodecError::Truncated {
                pos: self.data.len(),
                context: self.context,
            }),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16_be(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32_be(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }
}

/// The decoder configuration of one track, recognised from its bitstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecConfig {
    H264(AvcConfig),
    H265(HevcConfig),
    Aac(AudioSpecificConfig),
    Opus(OpusConfig),
}

impl CodecConfig {
    /// The configuration's parameter sets (H.264 SPS, PPS; H.265 VPS, SPS,
    /// PPS) as one run of 4-byte length-prefixed NAL units, what a sample
    /// carries to change them in band; empty for audio.
    pub fn parameter_sets_in_band(&self) -> Vec<u8> {
        let nalus: Vec<&Bytes> = match self {
            Self::H264(c) => c.sps_nalus.iter().chain(&c.pps_nalus).collect(),
            Self::H265(c) => c.arrays.iter().flat_map(|a| &a.nalus).collect(),
            Self::Aac(_) | Self::Opus(_) => Vec::new(),
        };
        let mut out = Vec::with_capacity(nalus.iter().map(|n| n.len() + 4).sum());
        for nalu in nalus {
            out.extend_from_slice(&(nalu.len() as u32).to_be_bytes());
            out.extend_from_slice(nalu);
        }
        out
    }

    /// Whether both carry the same parameter sets, byte for byte (two
    /// records built differently from the same sets compare equal).
    pub fn same_parameter_sets(&self, other: &CodecConfig) -> bool {
        self.parameter_sets_in_band() == other.parameter_sets_in_band()
    }

    /// The configuration of a keyframe's in-band parameter sets (a sample
    /// of 4-byte length-prefixed NAL units) when they differ from these:
    /// an encoder that changed resolution mid-stream. `None` for audio, or
    /// when the sample carries none.
    pub fn changed_by(&self, sample: &[u8]) -> Option<CodecConfig> {
        let config = match self {
            Self::H264(_) => Self::H264(AvcConfig::from_length_prefixed(sample).ok()??),
            Self::H265(_) => Self::H265(HevcConfig::from_length_prefixed(sample).ok()??),
            Self::Aac(_) | Self::Opus(_) => return None,
        };
        (!self.same_parameter_sets(&config)).then_some(config)
    }

    /// The RFC 6381 `codecs` parameter, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        match self {
            Self::H264(c) => c.codec_string(),
            Self::H265(c) => c.codec_string(),
            Self::Aac(c) => c.codec_string(),
            Self::Opus(c) => c.codec_string(),
        }
    }

    pub fn kind(&self) -> MediaKind {
        match self {
            Self::H264(_) | Self::H265(_) => MediaKind::Video,
            Self::Aac(_) | Self::Opus(_) => MediaKind::Audio,
        }
    }

    /// Displayed picture width in pixels (after cropping), for video.
    pub fn width(&self) -> Option<u32> {
        match self {
            Self::H264(c) => Some(c.sps.width),
            Self::H265(c) => Some(c.sps.width),
            Self::Aac(_) | Self::Opus(_) => None,
        }
    }

    /// Displayed picture height in pixels (after cropping), for video.
    pub fn height(&self) -> Option<u32> {
        match self {
            Self::H264(c) => Some(c.sps.height),
            Self::H265(c) => Some(c.sps.height),
            Self::Aac(_) | Self::Opus(_) => None,
        }
    }

    /// Output sample rate in Hz, for audio.
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            Self::Aac(c) => Some(c.output_sample_rate()),
            Self::Opus(_) => Some(opus::OPUS_SAMPLE_RATE),
            Self::H264(_) | Self::H265(_) => None,
        }
    }

    /// Output channel count, for audio.
    pub fn channels(&self) -> Option<u16> {
        match self {
            Self::Aac(c) => Some(c.channel_count()),
            Self::Opus(c) => Some(u16::from(c.channels)),
            Self::H264(_) | Self::H265(_) => None,
        }
    }
}

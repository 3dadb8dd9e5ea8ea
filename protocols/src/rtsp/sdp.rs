//! The media an ANNOUNCE describes: SDP (RFC 8866, parsed by `sdp-types`)
//! to payload types, clock rates, codec configurations and control URLs.
//!
//! Codec configuration comes from the `a=fmtp` parameters of each payload
//! format: `sprop-parameter-sets` (RFC 6184 §8.1), `sprop-vps/sps/pps`
//! (RFC 7798 §7.1), `config`, `sizelength`, `indexlength`,
//! `indexdeltalength` (RFC 3640 §4.1). H.264/H.265 senders that leave the
//! parameter sets out send them in band; the session waits for them.

use base64::Engine;

use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig, HevcConfig, OpusConfig};
use crate::rtp::aac::AacParams;

/// Most media sections taken from one SDP.
pub const MAX_MEDIA: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("sdp: {0}")]
    Syntax(String),
    #[error("sdp: media {index} ({media}): {reason}")]
    Media {
        index: usize,
        media: String,
        reason: String,
    },
    #[error("sdp: more than {MAX_MEDIA} media sections")]
    TooManyMedia,
}

/// What a media section carries, as far as we can take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaFormat {
    /// H.264; the configuration when the SDP gave the parameter sets.
    H264(Option<AvcConfig>),
    H265(Option<HevcConfig>),
    Aac(AudioSpecificConfig, AacParams),
    /// AAC in LATM with the StreamMuxConfig in the SDP (`cpresent=0`).
    Latm(AudioSpecificConfig),
    Opus(OpusConfig),
    /// A format we do not take; its media is dropped.
    Unsupported(String),
}

/// One `m=` section of an announced SDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `video`, `audio`, …
    pub media: String,
    pub payload_type: u8,
    /// `a=control`, absolute or relative to the request URL.
    pub control: Option<String>,
    pub clock_rate: u32,
    pub format: MediaFormat,
}

/// The `a=fmtp:<pt>` parameters, names lowercased.
fn fmtp_params(value: &str, pt: u8) -> Vec<(String, String)> {
    let Some((fmt, params)) = value.split_once(' ') else {
        return Vec::new();
    };
    if fmt.trim().parse::<u8>().ok() != Some(pt) {
        return Vec::new();
    }
    params
        .split(';')
        .filter_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn base64_nals(value: &str) -> Result<Vec<Vec<u8>>, String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| format!("parameter set {s:?}: {e}"))
        })
        .collect()
}

fn hex(value: &str) -> Result<Vec<u8>, String> {
    if !value.is_ascii() || !value.len().is_multiple_of(2) || value.len() > 512 {
        return Err(format!("config {value:?}: not an even-length hex string"));
    }
    (0..value.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&value[i..i + 2], 16)
                .map_err(|_| format!("config {value:?}: not hex"))
        })
        .collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

fn attributes<'a>(
    media: &'a sdp_types::Media,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    media
        .attributes
        .iter()
        .filter(move |a| a.attribute.eq_ignore_ascii_case(name))
        .filter_map(|a| a.value.as_deref())
}

fn format_for(
    encoding: &str,
    clock_rate: u32,
    channels: Option<u16>,
    params: &[(String, String)],
) -> Result<MediaFormat, String> {
    Ok(match encoding {
        "h264" => {
            let config = match param(params, "sprop-parameter-sets") {
                Some(sets) => {
                    let nals = base64_nals(sets)?;
                    let sps: Vec<&[u8]> = refs(&nals)
                        .into_iter()
                        .filter(|n| n.first().is_some_and(|b| b & 0x1f == 7))
                        .collect();
                    let pps: Vec<&[u8]> = refs(&nals)
                        .into_iter()
                        .filter(|n| n.first().is_some_and(|b| b & 0x1f == 8))
                        .collect();
                    // A broken sprop is not fatal: the stream may carry them.
                    AvcConfig::from_parameter_sets(&sps, &pps).ok()
                }
                None => None,
            };
            MediaFormat::H264(config)
        }
        "h265" => {
            let sets = ["sprop-vps", "sprop-sps", "sprop-pps"]
                .map(|name| param(params, name).map(base64_nals));
            let config = match sets {
                [Some(vps), Some(sps), Some(pps)] => {
                    let (vps, sps, pps) = (vps?, sps?, pps?);
                    HevcConfig::from_parameter_sets(&refs(&vps), &refs(&sps), &refs(&pps)).ok()
                }
                _ => None,
            };
            MediaFormat::H265(config)
        }
        "mpeg4-generic" => {
            let mode = param(params, "mode").unwrap_or_default();
            if !mode.eq_ignore_ascii_case("AAC-hbr") && !mode.eq_ignore_ascii_case("AAC-lbr") {
                return Ok(MediaFormat::Unsupported(format!(
                    "mpeg4-generic mode {mode:?}"
                )));
            }
            let config = param(params, "config").ok_or("mpeg4-generic without config")?;
            let config = AudioSpecificConfig::parse(&hex(config)?).map_err(|e| e.to_string())?;
            let number = |name: &str, default: u32| -> Result<u32, String> {
                param(params, name).map_or(Ok(default), |v| {
                    v.parse().map_err(|_| format!("{name}={v:?}: not a number"))
                })
            };
            let lbr = mode.eq_ignore_ascii_case("AAC-lbr");
            let aac = AacParams {
                size_length: number("sizelength", if lbr { 6 } else { 13 })?,
                index_length: number("indexlength", if lbr { 2 } else { 3 })?,
                index_delta_length: number("indexdeltalength", if lbr { 2 } else { 3 })?,
                frame_length: 1024,
            };
            aac.check().map_err(|e| e.to_string())?;
            MediaFormat::Aac(config, aac)
        }
        "mp4a-latm" => {
            if param(params, "cpresent") != Some("0") {
                return Ok(MediaFormat::Unsupported(
                    "mp4a-latm with in-band configuration (cpresent=1)".to_owned(),
                ));
            }
            let config = param(params, "config").ok_or("mp4a-latm without config")?;
            MediaFormat::Latm(crate::rtp::latm::stream_mux_config(&hex(config)?)?)
        }
        "opus" => {
            if clock_rate != 48_000 {
                return Err(format!("opus at {clock_rate} Hz (RFC 7587 says 48000)"));
            }
            // RFC 7587 §7: the rtpmap always says 2 channels;
            // `sprop-stereo=0` tells a mono sender.
            let stereo = param(params, "sprop-stereo") != Some("0") && channels != Some(1);
            MediaFormat::Opus(OpusConfig {
                channels: if stereo { 2 } else { 1 },
                pre_skip: 0,
                input_sample_rate: param(params, "sprop-maxcapturerate")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(48_000),
                output_gain: 0,
                channel_mapping: None,
            })
        }
        other => MediaFormat::Unsupported(other.to_owned()),
    })
}

/// Static payload types a sender may use without `a=rtpmap` (RFC 3551 §6).
fn static_rtpmap(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        14 => Some(("mpa", 90_000)),
        26 => Some(("jpeg", 90_000)),
        32 => Some(("mpv", 90_000)),
        33 => Some(("mp2t", 90_000)),
        _ => None,
    }
}

/// Parses an announced SDP into its media sections.
pub fn parse(body: &[u8]) -> Result<Vec<MediaDescription>, SdpError> {
    let session = sdp_types::Session::parse(body).map_err(|e| SdpError::Syntax(e.to_string()))?;
    if session.medias.len() > MAX_MEDIA {
        return Err(SdpError::TooManyMedia);
    }
    let mut out = Vec::new();
    for (index, media) in session.medias.iter().enumerate() {
        let bad = |reason: String| SdpError::Media {
            index,
            media: media.media.clone(),
            reason,
        };
        // Several formats in one section: the first is what the sender uses.
        let pt: u8 = media
            .fmt
            .split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .filter(|&pt: &u8| pt < 128)
            .ok_or_else(|| bad(format!("payload type {:?}", media.fmt)))?;
        let attr = |name| attributes(media, name);
        let rtpmap = attr("rtpmap").find_map(|v| {
            let (fmt, rest) = v.split_once(' ')?;
            (fmt.trim().parse::<u8>().ok()? == pt).then(|| rest.trim().to_owned())
        });
        let (encoding, clock_rate, channels) = match rtpmap {
            Some(map) => {
                let mut parts = map.split('/');
                let encoding = parts.next().unwrap_or_default().to_ascii_lowercase();
                let clock_rate = parts
                    .next()
                    .and_then(|c| c.parse::<u32>().ok())
                    .filter(|&c| c > 0)
                    .ok_or_else(|| bad(format!("rtpmap {map:?}: no clock rate")))?;
                let channels = parts.next().and_then(|c| c.parse().ok());
                (encoding, clock_rate, channels)
            }
            None => match static_rtpmap(pt) {
                Some((encoding, clock)) => (encoding.to_owned(), clock, None),
                None => (format!("payload type {pt}"), 90_000, None),
            },
        };
        let params: Vec<(String, String)> = attr("fmtp").flat_map(|v| fmtp_params(v, pt)).collect();
        let format = format_for(&encoding, clock_rate, channels, &params).map_err(bad)?;
        out.push(MediaDescription {
            media: media.media.clone(),
            payload_type: pt,
            control: attr("control").next().map(str::to_owned),
            clock_rate,
            format,
        });
    }
    Ok(out)
}

impl MediaFormat {
    /// The track's codec configuration, once known.
    pub fn codec(&self) -> Option<CodecConfig> {
        match self {
            Self::H264(c) => c.clone().map(CodecConfig::H264),
            Self::H265(c) => c.clone().map(CodecConfig::H265),
            Self::Aac(c, _) | Self::Latm(c) => Some(CodecConfig::Aac(c.clone())),
            Self::Opus(c) => Some(CodecConfig::Opus(c.clone())),
            Self::Unsupported(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ffmpeg 5.1 announces for `-c:v libx264 -c:a aac -f rtsp`.
    const FFMPEG_SDP: &str = "v=0\r\n\
o=- 0 0 IN IP4 127.0.0.1\r\n\
s=No Name\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:libavformat 59.27.100\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADKzZQUH7ARAAAAMAEAAAAwPI8UKZYA==,aOvjyyLA; profile-level-id=64000C\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
b=AS:128\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/1\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=120856E500\r\n\
a=control:streamid=1\r\n";

    #[test]
    fn ffmpeg_announce() {
        let media = parse(FFMPEG_SDP.as_bytes()).unwrap();
        assert_eq!(media.len(), 2);
        assert_eq!(media[0].payload_type, 96);
        assert_eq!(media[0].control.as_deref(), Some("streamid=0"));
        assert_eq!(media[0].clock_rate, 90_000);
        let MediaFormat::H264(Some(avc)) = &media[0].format else {
            panic!("{:?}", media[0].format)
        };
        assert_eq!(avc.codec_string(), "avc1.64000c");
        assert_eq!(media[1].clock_rate, 44_100);
        let MediaFormat::Aac(asc, params) = &media[1].format else {
            panic!("{:?}", media[1].format)
        };
        assert_eq!(asc.sample_rate, 44_100);
        assert_eq!(*params, AacParams::HBR);
    }

    #[test]
    fn opus_and_unknown_formats() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 sprop-stereo=0\r\n\
m=video 0 RTP/AVP 26\r\n";
        let media = parse(sdp.as_bytes()).unwrap();
        let MediaFormat::Opus(opus) = &media[0].format else {
            panic!()
        };
        assert_eq!(opus.channels, 1);
        assert_eq!(media[1].format, MediaFormat::Unsupported("jpeg".into()));
    }

    #[test]
    fn bad_sdps_are_errors() {
        assert!(parse(b"garbage").is_err());
        let no_config = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/2\r\na=fmtp:97 mode=AAC-hbr\r\n";
        assert!(matches!(
            parse(no_config.as_bytes()),
            Err(SdpError::Media { index: 0, .. })
        ));
        let no_rate = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n";
        assert!(parse(no_rate.as_bytes()).is_err());
    }
}

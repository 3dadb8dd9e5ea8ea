//! The multivariant (master) playlist: variant streams, audio renditions and
//! I-frame variants (RFC 8216bis §4.4.6).
//!
//! [`ladder_playlist`] builds the [`MultivariantPlaylist`] of a set of
//! renditions (VOD and live alike); [`render_multivariant`] validates while
//! rendering.

use std::fmt::{self, Write as _};

use super::error::HlsError;
use super::model::validate_uri;
use crate::media::{MediaKind, Track};

/// The `GROUP-ID` of every audio rendition.
pub const AUDIO_GROUP: &str = "audio";

/// One rendition as a multivariant playlist lists it: its media playlist
/// is `{name}/{media_playlist}`.
#[derive(Clone, Copy, Debug)]
pub struct Listed<'a> {
    pub name: &'a str,
    pub track: &'a Track,
    /// RFC 8216bis §4.4.6.2 peak and average segment bit rates.
    pub peak_bps: u64,
    pub average_bps: u64,
    pub frame_rate: Option<FrameRate>,
    /// The rendition's I-frame playlist `{name}/{playlist}`, with its peak
    /// and average bit rates, when it has one.
    pub i_frames: Option<(&'a str, u64, u64)>,
}

/// The multivariant playlist of `renditions`: a variant per video
/// rendition, all sharing one group of the audio renditions (or, with no
/// video, a variant per audio rendition).
///
/// Audio `NAME`s are unique in their group (§4.4.6.1.1): a language names
/// its rendition unless two renditions share it, then the rendition names
/// do. With renditions, `BANDWIDTH` and `AVERAGE-BANDWIDTH` are the largest
/// sums over a playable combination (§4.4.6.2): the video plus the most
/// demanding audio.
pub fn ladder_playlist(renditions: &[Listed<'_>], media_playlist: &str) -> MultivariantPlaylist {
    let uri = |r: &Listed<'_>| format!("{}/{media_playlist}", r.name);
    let videos: Vec<&Listed<'_>> = renditions
        .iter()
        .filter(|r| r.track.kind() == MediaKind::Video)
        .collect();
    let audios: Vec<&Listed<'_>> = renditions
        .iter()
        .filter(|r| r.track.kind() == MediaKind::Audio)
        .collect();
    let mut pl = MultivariantPlaylist {
        independent_segments: true,
        ..Default::default()
    };
    if videos.is_empty() {
        pl.variants = audios
            .iter()
            .map(|r| Variant {
                uri: uri(r),
                bandwidth: r.peak_bps.max(1),
                average_bandwidth: Some(r.average_bps.max(1)),
                codecs: r.track.codec.codec_string(),
                resolution: None,
                frame_rate: None,
                audio_group: None,
            })
            .collect();
        return pl;
    }
    let mut audio_codecs: Vec<String> = Vec::new();
    for (i, r) in audios.iter().enumerate() {
        let codec = r.track.codec.codec_string();
        if !audio_codecs.contains(&codec) {
            audio_codecs.push(codec);
        }
        let language = (r.track.language != "und").then(|| r.track.language.clone());
        let shared = audios
            .iter()
            .filter(|o| o.track.language == r.track.language)
            .count()
            > 1;
        let name = match &language {
            Some(language) if !shared => language.clone(),
            _ => r.name.to_owned(),
        };
        pl.audio.push(AudioRendition {
            group_id: AUDIO_GROUP.to_owned(),
            name,
            language,
            default: i == 0,
            autoselect: true,
            channels: r.track.channels().map(u32::from),
            uri: Some(uri(r)),
        });
    }
    let audio_peak = audios.iter().map(|a| a.peak_bps).max().unwrap_or(0);
    let audio_average = audios.iter().map(|a| a.average_bps).max().unwrap_or(0);
    for r in &videos {
        let mut codecs = r.track.codec.codec_string();
        for codec in &audio_codecs {
            codecs.push(',');
            codecs.push_str(codec);
        }
        let resolution = r
            .track
            .width()
            .zip(r.track.height())
            .map(|(width, height)| Resolution { width, height });
        pl.variants.push(Variant {
            uri: uri(r),
            bandwidth: r.peak_bps.saturating_add(audio_peak).max(1),
            average_bandwidth: Some(r.average_bps.saturating_add(audio_average).max(1)),
            codecs,
            resolution,
            frame_rate: r.frame_rate,
            audio_group: (!audios.is_empty()).then(|| AUDIO_GROUP.to_owned()),
        });
        if let Some((playlist, peak, average)) = r.i_frames {
            pl.i_frame_variants.push(IFrameVariant {
                uri: format!("{}/{playlist}", r.name),
                bandwidth: peak,
                average_bandwidth: Some(average),
                codecs: r.track.codec.codec_string(),
                resolution,
            });
        }
    }
    pl
}

/// A frame rate as the exact rational the encoder uses (`30/1`,
/// `30000/1001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// `None` when `den` is zero.
    pub const fn new(num: u32, den: u32) -> Option<Self> {
        if den == 0 {
            None
        } else {
            Some(Self { num, den })
        }
    }

    /// Decimal with exactly three decimals, rounded half-up: §4.4.6.2
    /// FRAME-RATE ("SHOULD be rounded to three decimal places"), e.g. `29.970`.
    pub fn three_decimals(self) -> impl fmt::Display {
        let milli =
            (u64::from(self.num) * 1000 * 2 + u64::from(self.den)) / (2 * u64::from(self.den));
        Milli(milli)
    }
}

struct Milli(u64);

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// `RESOLUTION=<width>x<height>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// `EXT-X-MEDIA:TYPE=AUDIO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRendition {
    pub group_id: String,
    /// Unique within the group (§4.4.6.1).
    pub name: String,
    /// RFC 5646 tag, e.g. `en`.
    pub language: Option<String>,
    pub default: bool,
    pub autoselect: bool,
    /// `CHANNELS`, e.g. `2` or `6`.
    pub channels: Option<u32>,
    /// `None` when the audio is muxed into the variant streams.
    pub uri: Option<String>,
}

/// `EXT-X-STREAM-INF` plus its URI line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub uri: String,
    /// Peak segment bit rate, bits/s.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings of every format in the variant and its audio
    /// group, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    pub resolution: Option<Resolution>,
    pub frame_rate: Option<FrameRate>,
    /// `AUDIO` group id; must match an [`AudioRendition::group_id`].
    pub audio_group: Option<String>,
}

/// `EXT-X-I-FRAME-STREAM-INF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IFrameVariant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: String,
    pub resolution: Option<Resolution>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MultivariantPlaylist {
    /// `EXT-X-INDEPENDENT-SEGMENTS`: every media playlist's segments start
    /// with a keyframe.
    pub independent_segments: bool,
    pub audio: Vec<AudioRendition>,
    pub variants: Vec<Variant>,
    pub i_frame_variants: Vec<IFrameVariant>,
}

/// Validates and renders a multivariant playlist.
pub fn render_multivariant(pl: &MultivariantPlaylist) -> Result<String, HlsError> {
    validate(pl)?;
    let mut out = String::with_capacity(128 + 160 * (pl.variants.len() + pl.audio.len()));
    // Writing into a String cannot fail.
    let _ = write_multivariant(&mut out, pl);
    Ok(out)
}

fn validate(pl: &MultivariantPlaylist) -> Result<(), HlsError> {
    if pl.variants.is_empty() {
        return Err(HlsError::Multivariant("no variant streams"));
    }
    for (i, a) in pl.audio.iter().enumerate() {
        check_attr("GROUP-ID", &a.group_id)?;
        check_attr("NAME", &a.name)?;
        if let Some(lang) = &a.language {
            check_attr("LANGUAGE", lang)?;
        }
        if let Some(uri) = &a.uri {
            validate_uri("EXT-X-MEDIA", uri)?;
        }
        // §4.4.6.1: AUTOSELECT "MUST be YES if the value of the DEFAULT
        // attribute is YES".
        if a.default && !a.autoselect {
            return Err(HlsError::Multivariant(
                "DEFAULT=YES requires AUTOSELECT=YES",
            ));
        }
        let same_group = pl.audio[..i].iter().filter(|b| b.group_id == a.group_id);
        for b in same_group {
            // §4.4.6.1.1: "All EXT-X-MEDIA tags in the same Group MUST have
            // different NAME attributes" and at most one DEFAULT=YES.
            if b.name == a.name {
                return Err(HlsError::Multivariant("duplicate NAME in an audio group"));
            }
            if b.default && a.default {
                return Err(HlsError::Multivariant("two DEFAULT=YES in an audio group"));
            }
        }
    }
    for v in &pl.variants {
        validate_uri("EXT-X-STREAM-INF", &v.uri)?;
        check_attr("CODECS", &v.codecs)?;
        if let Some(group) = &v.audio_group {
            // §4.4.6.2: AUDIO "MUST match the value of the GROUP-ID attribute
            // of an EXT-X-MEDIA tag elsewhere in the Multivariant Playlist
            // whose TYPE attribute is AUDIO".
            if !pl.audio.iter().any(|a| &a.group_id == group) {
                return Err(HlsError::InvalidAttribute {
                    what: "AUDIO group without EXT-X-MEDIA",
                    name: group.clone(),
                });
            }
        }
        if v.frame_rate.is_some_and(|r| r.den == 0) {
            return Err(HlsError::Multivariant("FRAME-RATE with zero denominator"));
        }
    }
    for v in &pl.i_frame_variants {
        validate_uri("EXT-X-I-FRAME-STREAM-INF", &v.uri)?;
        check_attr("CODECS", &v.codecs)?;
    }
    Ok(())
}

fn check_attr(what: &'static str, value: &str) -> Result<(), HlsError> {
    if value.is_empty() || value.chars().any(|c| c == '"' || c.is_control()) {
        return Err(HlsError::InvalidAttribute {
            what,
            name: value.to_owned(),
        });
    }
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

fn write_multivariant(out: &mut String, pl: &MultivariantPlaylist) -> fmt::Result {
    out.push_str("#EXTM3U\n");
    if pl.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    for a in &pl.audio {
        write!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
            a.group_id, a.name
        )?;
        if let Some(lang) = &a.language {
            write!(out, ",LANGUAGE=\"{lang}\"")?;
        }
        write!(
            out,
            ",DEFAULT={},AUTOSELECT={}",
            yes_no(a.default),
            yes_no(a.autoselect)
        )?;
        if let Some(ch) = a.channels {
            write!(out, ",CHANNELS=\"{ch}\"")?;
        }
        if let Some(uri) = &a.uri {
            write!(out, ",URI=\"{uri}\"")?;
        }
        out.push('\n');
    }
    for v in &pl.variants {
        write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth)?;
        if let Some(avg) = v.average_bandwidth {
            write!(out, ",AVERAGE-BANDWIDTH={avg}")?;
        }
        write!(out, ",CODECS=\"{}\"", v.codecs)?;
        if let Some(r) = v.resolution {
            write!(out, ",RESOLUTION={}x{}", r.width, r.height)?;
        }
        if let Some(fr) = v.frame_rate {
            write!(out, ",FRAME-RATE={}", fr.three_decimals())?;
        }
        if let Some(group) = &v.audio_group {
            write!(out, ",AUDIO=\"{group}\"")?;
        }
        writeln!(out, "\n{}", v.uri)?;
    }
    for v in &pl.i_frame_variants {
        write!(out, "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={}", v.bandwidth)?;
        if let Some(avg) = v.average_bandwidth {
            write!(out, ",AVERAGE-BANDWIDTH={avg}")?;
        }
        write!(out, ",CODECS=\"{}\"", v.codecs)?;
        if let Some(r) = v.resolution {
            write!(out, ",RESOLUTION={}x{}", r.width, r.height)?;
        }
        writeln!(out, ",URI=\"{}\"", v.uri)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_to_three_decimals() {
        let fr = |n, d| FrameRate { num: n, den: d }.three_decimals().to_string();
        assert_eq!(fr(30, 1), "30.000");
        assert_eq!(fr(30_000, 1001), "29.970");
        assert_eq!(fr(60_000, 1001), "59.940");
        assert_eq!(fr(24_000, 1001), "23.976");
        assert_eq!(fr(25, 2), "12.500");
    }

    fn audio(name: &str, default: bool) -> AudioRendition {
        AudioRendition {
            group_id: "aac".into(),
            name: name.into(),
            language: None,
            default,
            autoselect: true,
            channels: Some(2),
            uri: Some(format!("{name}.m3u8")),
        }
    }

    fn variant(group: Option<&str>) -> Variant {
        Variant {
            uri: "v.m3u8".into(),
            bandwidth: 1,
            average_bandwidth: None,
            codecs: "avc1.64001f".into(),
            resolution: None,
            frame_rate: None,
            audio_group: group.map(str::to_owned),
        }
    }

    #[test]
    fn rejects_inconsistent_groups() {
        let mut pl = MultivariantPlaylist {
            audio: vec![audio("en", true), audio("en", false)],
            variants: vec![variant(Some("aac"))],
            ..Default::default()
        };
        assert_eq!(
            render_multivariant(&pl),
            Err(HlsError::Multivariant("duplicate NAME in an audio group"))
        );
        pl.audio = vec![audio("en", true), audio("fr", true)];
        assert_eq!(
            render_multivariant(&pl),
            Err(HlsError::Multivariant("two DEFAULT=YES in an audio group"))
        );
        pl.audio = vec![audio("en", true)];
        pl.variants = vec![variant(Some("ac3"))];
        assert!(matches!(
            render_multivariant(&pl),
            Err(HlsError::InvalidAttribute { .. })
        ));
        pl.variants = vec![variant(Some("aac"))];
        pl.audio[0].name = "a\"b".into();
        assert!(matches!(
            render_multivariant(&pl),
            Err(HlsError::InvalidAttribute { what: "NAME", .. })
        ));
    }
}

#[cfg(test)]
mod ladder_tests {
    use super::*;
    use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
    use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig};

    fn listed<'a>(name: &'a str, track: &'a Track, peak: u64) -> Listed<'a> {
        Listed {
            name,
            track,
            peak_bps: peak,
            average_bps: peak / 2,
            frame_rate: None,
            i_frames: None,
        }
    }

    fn audio(id: u32, language: &str) -> Track {
        let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
        let mut track = Track::new(id, 48_000, CodecConfig::Aac(asc));
        track.language = language.to_owned();
        track
    }

    #[test]
    fn audio_names_are_unique_and_bandwidth_counts_the_most_demanding_audio() {
        let avc = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
        let video = Track::new(1, 90_000, CodecConfig::H264(avc));
        let (eng, fra, eng2) = (audio(2, "eng"), audio(3, "fra"), audio(4, "eng"));
        let pl = ladder_playlist(
            &[
                listed("v1", &video, 1_000_000),
                listed("a1", &eng, 128_000),
                listed("a2", &fra, 96_000),
            ],
            "media.m3u8",
        );
        let names: Vec<&str> = pl.audio.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["eng", "fra"]);
        assert_eq!(pl.variants.len(), 1);
        assert_eq!(pl.variants[0].bandwidth, 1_128_000);
        assert_eq!(pl.variants[0].codecs, "avc1.64001f,mp4a.40.2");
        assert_eq!(pl.variants[0].uri, "v1/media.m3u8");
        // A language two renditions share names neither: the rendition names do.
        let pl = ladder_playlist(
            &[
                listed("v1", &video, 1_000_000),
                listed("a1", &eng, 128_000),
                listed("a2", &eng2, 96_000),
            ],
            "media.m3u8",
        );
        let names: Vec<&str> = pl.audio.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a1", "a2"]);
        render_multivariant(&pl).unwrap();
        // Audio alone: one variant per rendition, no group.
        let pl = ladder_playlist(&[listed("a1", &eng, 128_000)], "media.m3u8");
        assert!(pl.audio.is_empty());
        assert_eq!(pl.variants[0].audio_group, None);
    }
}

//! FLV audio and video tag bodies, as RTMP audio/video messages carry them
//! (FLV spec v10.1 §E.4.2.1 AUDIODATA, §E.4.3.1 VIDEODATA; Enhanced RTMP v1
//! ExVideoTagHeader and v2 ExAudioTagHeader), mapped onto [`Track`] and
//! [`Sample`].
//!
//! [`parse_video`] and [`parse_audio`] read one tag body. [`FlvDemuxer`]
//! keeps the track state of one published stream.
//!
//! # Call order
//!
//! For each audio or video message, call [`FlvDemuxer::push_video`] or
//! [`FlvDemuxer::push_audio`] with the message timestamp. When it returns a
//! sample, first call [`FlvDemuxer::take_changed_tracks`]: a sequence header
//! that arrived since the last sample changed the tracks, and the new track
//! list must reach the packager before the sample does. Then drain
//! [`FlvDemuxer::take_unsupported`] to report codecs that are dropped.
//!
//! # Timing
//!
//! Video and Opus use [`TIMESCALE`] (1000 Hz), RTMP's own millisecond
//! clock, unscaled. One [`TimestampExtender`] serves both tracks, extending
//! the 32-bit wrapping timestamps to `i64`. A sample's `duration` is an
//! estimate (the previous gap on its track, else 20 ms of Opus / one tick):
//! the CMAF fragmenter replaces it with the gap to the next sample.
//!
//! AAC is counted in its own sample rate instead: every frame holds 1024
//! samples (ISO/IEC 14496-3 §4.5.1.1), which millisecond timestamps can only
//! round (21/21/22 ms at 48 kHz). [`AacClock`] places each frame exactly
//! one frame after the one before while the publisher's timestamp agrees
//! with that within [`AAC_DRIFT_MS`], and re-anchors on the timestamp when
//! it does not (frames lost, or a publisher whose audio clock jumped), so
//! audio keeps the publisher's position against video to the millisecond.
//!
//! # Codec detection
//!
//! OBS before 29.1 (SRS issue #3464): the codec is taken from the sequence
//! header's bitstream, not only from the tag. A record labelled AVC that
//! parses as `hvcC` (and the reverse) is used as what it is, with a warning.
//! Keyframes are decided by the bitstream too (IDR / IRAP NAL units), with
//! the tag's frame type as fallback when the NAL units cannot be walked.

use std::fmt;

use bytes::Bytes;

use super::error::{Reader, RtmpError};
use crate::codec::{
    self, AudioSpecificConfig, AvcConfig, CodecConfig, CodecError, HevcConfig, OpusConfig,
};
use crate::media::{Sample, Track, TrackId};

/// Track id of the video track of a published stream.
pub const VIDEO_TRACK_ID: TrackId = 1;
/// Track id of the audio track of a published stream.
pub const AUDIO_TRACK_ID: TrackId = 2;
/// Ticks per second of every track: RTMP timestamps are milliseconds.
pub const TIMESCALE: u32 = 1000;

/// A four-character code as Enhanced RTMP writes codecs (`hvc1`, `av01`, `Opus`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// The video codec a tag announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    /// A legacy FLV CodecID other than 7 (AVC) and 12 (HEVC).
    Legacy(u8),
    /// An Enhanced RTMP FourCC this crate does not know.
    Other(FourCc),
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Avc => f.write_str("H.264"),
            Self::Hevc => f.write_str("H.265"),
            Self::Av1 => f.write_str("AV1"),
            Self::Vp9 => f.write_str("VP9"),
            Self::Legacy(id) => write!(f, "FLV video CodecID {id}"),
            Self::Other(cc) => write!(f, "video FourCC {cc}"),
        }
    }
}

/// The audio codec a tag announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Opus,
    /// A legacy FLV SoundFormat other than 10 (AAC).
    Legacy(u8),
    /// An Enhanced RTMP FourCC this crate does not map (`.mp3`, `ac-3`, `fLaC`…).
    Other(FourCc),
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aac => f.write_str("AAC"),
            Self::Opus => f.write_str("Opus"),
            Self::Legacy(id) => write!(f, "FLV SoundFormat {id}"),
            Self::Other(cc) => write!(f, "audio FourCC {cc}"),
        }
    }
}

/// One video tag body, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoTag {
    /// A decoder configuration record (`avcC`, `hvcC`, `av1C`, `vpcC`).
    SequenceStart {
        codec: VideoCodec,
        record: Bytes,
    },
    Frame {
        codec: VideoCodec,
        /// FrameType 1 ("key frame").
        keyframe: bool,
        /// Composition time offset in milliseconds (`pts - dts`).
        cts: i32,
        data: Bytes,
    },
    SequenceEnd {
        codec: VideoCodec,
    },
    /// Video info / command frames, HDR metadata, multitrack and ModEx
    /// packets: valid, carry no picture, not used here.
    Ignored {
        what: &'static str,
    },
}

/// One audio tag body, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioTag {
    /// `AudioSpecificConfig` for AAC, `OpusHead` for Opus.
    SequenceStart {
        codec: AudioCodec,
        config: Bytes,
    },
    Frame {
        codec: AudioCodec,
        data: Bytes,
    },
    SequenceEnd {
        codec: AudioCodec,
    },
    Ignored {
        what: &'static str,
    },
}

fn si24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

fn tail(body: &Bytes, r: &Reader<'_>) -> Bytes {
    body.slice(r.pos() as usize..)
}

fn video_fourcc(cc: [u8; 4]) -> VideoCodec {
    match &cc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        _ => VideoCodec::Other(FourCc(cc)),
    }
}

/// Classifies a video message body.
pub fn parse_video(body: &Bytes) -> Result<VideoTag, RtmpError> {
    let mut r = Reader::new(body);
    let b0 = r.u8("video tag header")?;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP v1: IsExHeader | FrameType (3 bits) | PacketType (4 bits).
        let frame_type = (b0 >> 4) & 0x07;
        let packet_type = b0 & 0x0f;
        match packet_type {
            6 => {
                return Ok(VideoTag::Ignored {
                    what: "multitrack video",
                });
            }
            7 => {
                return Ok(VideoTag::Ignored {
                    what: "ModEx video packet",
                });
            }
            _ => {}
        }
        let codec = video_fourcc(r.array("ex video tag header > fourcc")?);
        // E-RTMP: a command frame (FrameType 5) carries a command byte, not video.
        if frame_type == 5 && packet_type != 4 {
            return Ok(VideoTag::Ignored {
                what: "video command frame",
            });
        }
        return Ok(match packet_type {
            0 => VideoTag::SequenceStart {
                codec,
                record: tail(body, &r),
            },
            1 | 3 => {
                // CompositionTime is present for CodedFrames of avc1/hvc1
                // only; CodedFramesX means an offset of 0.
                let cts = match (packet_type, codec) {
                    (1, VideoCodec::Avc | VideoCodec::Hevc) => {
                        si24(r.u24_be("ex video tag header > composition time")?)
                    }
                    _ => 0,
                };
                VideoTag::Frame {
                    codec,
                    keyframe: frame_type == 1,
                    cts,
                    data: tail(body, &r),
                }
            }
            2 => VideoTag::SequenceEnd { codec },
            4 => VideoTag::Ignored {
                what: "video metadata",
            },
            5 => VideoTag::Ignored {
                what: "MPEG-2 TS sequence start",
            },
            _ => VideoTag::Ignored {
                what: "reserved video packet type",
            },
        });
    }
    // FLV v10.1 §E.4.3.1: FrameType (4 bits) | CodecID (4 bits).
    let frame_type = b0 >> 4;
    let codec = match b0 & 0x0f {
        7 => VideoCodec::Avc,
        // CodecID 12 for HEVC is not in FLV 10.1; Chinese CDNs and
        // FFmpeg forks (and ffmpeg ≥ 6 on read) use it.
        12 => VideoCodec::Hevc,
        other => VideoCodec::Legacy(other),
    };
    if frame_type == 5 {
        return Ok(VideoTag::Ignored {
            what: "video info/command frame",
        });
    }
    if let VideoCodec::Legacy(_) = codec {
        return Ok(VideoTag::Frame {
            codec,
            keyframe: frame_type == 1,
            cts: 0,
            data: tail(body, &r),
        });
    }
    let packet_type = r.u8("avc video packet > packet type")?;
    let cts = si24(r.u24_be("avc video packet > composition time")?);
    match packet_type {
        0 => Ok(VideoTag::SequenceStart {
            codec,
            record: tail(body, &r),
        }),
        1 => Ok(VideoTag::Frame {
            codec,
            keyframe: frame_type == 1,
            cts,
            data: tail(body, &r),
        }),
        2 => Ok(VideoTag::SequenceEnd { codec }),
        other => Err(RtmpError::invalid(
            1,
            "avc video packet > packet type",
            format!("AVCPacketType {other}"),
        )),
    }
}

/// Classifies an audio message body.
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, RtmpError> {
    let mut r = Reader::new(body);
    let b0 = r.u8("audio tag header")?;
    let sound_format = b0 >> 4;
    if sound_format == 9 {
        // Enhanced RTMP v2: SoundFormat 9 (ExHeader) | AudioPacketType.
        let packet_type = b0 & 0x0f;
        match packet_type {
            5 => {
                return Ok(AudioTag::Ignored {
                    what: "multitrack audio",
                });
            }
            7 => {
                return Ok(AudioTag::Ignored {
                    what: "ModEx audio packet",
                });
            }
            _ => {}
        }
        let cc: [u8; 4] = r.array("ex audio tag header > fourcc")?;
        let codec = match &cc {
            b"mp4a" => AudioCodec::Aac,
            b"Opus" => AudioCodec::Opus,
            _ => AudioCodec::Other(FourCc(cc)),
        };
        return Ok(match packet_type {
            0 => AudioTag::SequenceStart {
                codec,
                config: tail(body, &r),
            },
            1 => AudioTag::Frame {
                codec,
                data: tail(body, &r),
            },
            2 => AudioTag::SequenceEnd { codec },
            4 => AudioTag::Ignored {
                what: "multichannel config",
            },
            _ => AudioTag::Ignored {
                what: "reserved audio packet type",
            },
        });
    }
    if sound_format != 10 {
        return Ok(AudioTag::Frame {
            codec: AudioCodec::Legacy(sound_format),
            data: tail(body, &r),
        });
    }
    match r.u8("aac audio packet > packet type")? {
        0 => Ok(AudioTag::SequenceStart {
            codec: AudioCodec::Aac,
            config: tail(body, &r),
        }),
        1 => Ok(AudioTag::Frame {
            codec: AudioCodec::Aac,
            data: tail(body, &r),
        }),
        other => Err(RtmpError::invalid(
            1,
            "aac audio packet > packet type",
            format!("AACPacketType {other}"),
        )),
    }
}

/// Sub-messages of an aggregate message: `(type id, timestamp, body)`.
///
/// RTMP 1.0 §7.1.6: the body is FLV tags with back pointers; the
/// aggregate's timestamp is that of the first sub-message, and the others
/// keep their offsets from it.
pub fn split_aggregate(
    payload: &Bytes,
    timestamp: u32,
) -> Result<Vec<(u8, u32, Bytes)>, RtmpError> {
    let mut r = Reader::new(payload);
    let mut out = Vec::new();
    let mut first = None;
    while r.remaining() > 0 {
        let type_id = r.u8("aggregate > tag type")? & 0x1f;
        let size = r.u24_be("aggregate > data size")? as usize;
        let low = r.u24_be("aggregate > timestamp")?;
        let high = r.u8("aggregate > timestamp extended")?;
        r.u24_be("aggregate > stream id")?;
        let start = r.pos() as usize;
        r.bytes(size, "aggregate > tag body")?;
        r.u32_be("aggregate > back pointer")?;
        let tag_ts = u32::from(high) << 24 | low;
        let base = *first.get_or_insert(tag_ts);
        out.push((
            type_id,
            timestamp.wrapping_add(tag_ts.wrapping_sub(base)),
            payload.slice(start..start + size),
        ));
    }
    Ok(out)
}

/// Extends 32-bit wrapping millisecond timestamps to `i64`.
///
/// RTMP timestamps are 32-bit milliseconds: they wrap after 49.7 days. Each
/// timestamp is read as a signed step of at most ±2³¹ ms from the previous
/// one, so a wrap continues the timeline and audio slightly behind video
/// steps back a little, as it should.
#[derive(Clone, Debug, Default)]
pub struct TimestampExtender {
    last: Option<(u32, i64)>,
}

impl TimestampExtender {
    pub fn extend(&mut self, timestamp: u32) -> i64 {
        let extended = match self.last {
            None => i64::from(timestamp),
            Some((raw, ext)) => ext + i64::from(timestamp.wrapping_sub(raw) as i32),
        };
        self.last = Some((timestamp, extended));
        extended
    }
}

/// How far (ms) an AAC frame's RTMP timestamp may stray from where the
/// frames before it place it before the track is re-anchored on the
/// timestamp: more than RTMP's millisecond rounding and a live encoder's
/// usual jitter, less than one lost frame at 48 kHz (21.3 ms).
pub const AAC_DRIFT_MS: i64 = 15;

/// Samples per AAC frame (AAC-LC, and HE-AAC counted at its core rate).
const AAC_FRAME_SAMPLES: u32 = 1024;

/// Decode times of AAC frames in ticks of their sample rate.
#[derive(Debug, Default)]
struct AacClock {
    /// Where the next frame goes, in ticks.
    next: Option<i64>,
    reanchored: u64,
}

impl AacClock {
    /// The decode time of a frame stamped `ms`, in ticks of `rate`.
    fn place(&mut self, ms: i64, rate: u32) -> i64 {
        let rate = i64::from(rate.max(1));
        let stamped = (ms * rate + 500) / 1000;
        let dts = match self.next {
            Some(next) if ((stamped - next) * 1000 / rate).abs() <= AAC_DRIFT_MS => next,
            Some(next) => {
                self.reanchored += 1;
                if self.reanchored == 1 {
                    tracing::info!(
                        drift_ms = (stamped - next) * 1000 / rate,
                        "rtmp: an AAC frame's timestamp left the frame count; following the timestamp \
                         (logged once per stream)"
                    );
                }
                stamped
            }
            None => stamped,
        };
        self.next = Some(dts + i64::from(AAC_FRAME_SAMPLES));
        dts
    }
}

#[derive(Debug, Default)]
struct TrackState {
    track: Option<Track>,
    last_dts: Option<i64>,
    last_gap: Option<u32>,
}

impl TrackState {
    fn duration(&mut self, dts: i64, default: u32) -> u32 {
        if let Some(gap) = self
            .last_dts
            .and_then(|last| u32::try_from(dts - last).ok())
            .filter(|&g| g > 0)
        {
            self.last_gap = Some(gap);
        }
        self.last_dts = Some(dts);
        self.last_gap.unwrap_or(default).max(1)
    }
}

/// Track and sample state of one published stream.
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    video: TrackState,
    audio: TrackState,
    clock: TimestampExtender,
    aac: AacClock,
    changed: bool,
    warned_empty_header: bool,
    /// The publisher's AVC sequence header was empty: its frames may be
    /// the encoder's Annex B output.
    avc_in_band: bool,
    /// An empty AVC sequence header was sent: no audio until video's
    /// in-band parameter sets arrive.
    awaiting_video: bool,
    /// Video frames moved to a later decode time (see `push_video`).
    nudged: u64,
    unsupported: Vec<String>,
    reported: Vec<String>,
}

fn codec_error(e: CodecError, path: &'static str) -> RtmpError {
    RtmpError::invalid(0, path, e.to_string())
}

impl FlvDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current tracks, video first.
    pub fn tracks(&self) -> Vec<Track> {
        [&self.video.track, &self.audio.track]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The tracks, if a sequence header changed them since the last call.
    pub fn take_changed_tracks(&mut self) -> Option<Vec<Track>> {
        std::mem::take(&mut self.changed).then(|| self.tracks())
    }

    /// A description of a codec seen for the first time and dropped.
    pub fn take_unsupported(&mut self) -> Option<String> {
        self.unsupported.pop()
    }

    fn report(&mut self, what: String) {
        if !self.reported.contains(&what) {
            tracing::warn!(codec = %what, "rtmp: dropping media of an unsupported codec");
            self.reported.push(what.clone());
            self.unsupported.insert(0, what);
        }
    }

    fn set_track(state: &mut TrackState, changed: &mut bool, id: TrackId, config: CodecConfig) {
        if state.track.as_ref().map(|t| &t.codec) != Some(&config) {
            let timescale = match &config {
                CodecConfig::Aac(c) if c.sample_rate > 0 => c.sample_rate,
                _ => TIMESCALE,
            };
            state.track = Some(Track::new(id, timescale, config));
            *changed = true;
        }
    }

    /// Handles one video message; returns the sample it carries, if any.
    pub fn push_video(
        &mut self,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<Option<Sample>, RtmpError> {
        match parse_video(body).map_err(|e| e.within("video"))? {
            VideoTag::SequenceStart { codec, record } => {
                self.video_sequence_start(codec, &record)?;
                Ok(None)
            }
            VideoTag::Frame {
                codec,
                keyframe,
                cts,
                data,
            } => Ok(self.video_frame(timestamp, codec, keyframe, cts, data)),
            VideoTag::SequenceEnd { .. } | VideoTag::Ignored { .. } => Ok(None),
        }
    }

    fn video_sequence_start(&mut self, codec: VideoCodec, record: &[u8]) -> Result<(), RtmpError> {
        // ffmpeg sends an empty AVC sequence header when its encoder keeps
        // SPS/PPS in band (no global header: `-f tee`, some hardware
        // encoders); the parameter sets then come with the first keyframe.
        if record.is_empty() && codec == VideoCodec::Avc {
            self.avc_in_band = true;
            self.awaiting_video = self.video.track.is_none();
            if !self.warned_empty_header {
                self.warned_empty_header = true;
                tracing::info!(
                    "rtmp: empty AVC sequence header; taking SPS/PPS from the first keyframe"
                );
            }
            return Ok(());
        }
        let config = match codec {
            VideoCodec::Avc | VideoCodec::Hevc => video_config(codec, record)?,
            other => {
                self.report(other.to_string());
                return Ok(());
            }
        };
        self.avc_in_band = false;
        Self::set_track(&mut self.video, &mut self.changed, VIDEO_TRACK_ID, config);
        Ok(())
    }

    fn video_frame(
        &mut self,
        timestamp: u32,
        codec: VideoCodec,
        keyframe: bool,
        cts: i32,
        data: Bytes,
    ) -> Option<Sample> {
        let dts = self.clock.extend(timestamp);
        let data = self.length_prefixed(codec, data)?;
        // The parameter sets of a keyframe that brings its own: the first
        // ones after an empty sequence header, or new ones (GStreamer's
        // flvmux keeps the sequence header of its first caps while x264enc,
        // renegotiated, sends others in band): the track changes before
        // this frame.
        if codec == VideoCodec::Avc
            && (self.video.track.is_none() || keyframe)
            && let Ok(Some(avc)) = AvcConfig::from_length_prefixed(&data)
            && self
                .video
                .track
                .as_ref()
                .is_none_or(|t| !t.codec.same_parameter_sets(&CodecConfig::H264(avc.clone())))
        {
            Self::set_track(
                &mut self.video,
                &mut self.changed,
                VIDEO_TRACK_ID,
                CodecConfig::H264(avc),
            );
            self.awaiting_video = false;
        }
        let Some(track) = &self.video.track else {
            if !matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
                self.report(codec.to_string());
            }
            return None;
        };
        if data.is_empty() {
            return None;
        }
        let from_bitstream = match &track.codec {
            CodecConfig::H264(c) => codec::h264::is_idr(&data, c.length_size),
            CodecConfig::H265(c) => codec::h265::is_irap(&data, c.length_size),
            _ => Ok(keyframe),
        };
        let (dts, cts) = self.rising_video_dts(dts, cts);
        let duration = self.video.duration(dts, 1);
        Some(Sample {
            track: VIDEO_TRACK_ID,
            dts,
            cts_offset: cts,
            duration,
            keyframe: from_bitstream.unwrap_or(keyframe),
            data,
        })
    }

    /// A frame's NAL units, length-prefixed. Without a sequence header
    /// ffmpeg's FLV muxer passes the encoder's Annex B output through as
    /// it is. Only then (or with no sequence header at all): a
    /// length-prefixed frame whose first NAL unit is 256 to 511 bytes long
    /// starts with 00 00 01 too. `None` for Annex B that does not convert.
    fn length_prefixed(&self, codec: VideoCodec, data: Bytes) -> Option<Bytes> {
        if codec == VideoCodec::Avc
            && (self.avc_in_band || self.video.track.is_none())
            && (data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]))
            && !codec::nal::split_length_prefixed(&data, 4).all(|nal| nal.is_ok())
        {
            return codec::nal::annex_b_to_length_prefixed(&data)
                .ok()
                .map(Bytes::from);
        }
        Some(data)
    }

    /// GStreamer's flvmux with B-frames from a live source (1.22, x264enc
    /// bframes=2) sends a decode time again every few frames: its
    /// nanosecond times collapse onto one millisecond. Dropping the frame
    /// would break every frame that references it until the next keyframe,
    /// so it moves one tick later and keeps its presentation time.
    fn rising_video_dts(&mut self, dts: i64, cts: i32) -> (i64, i32) {
        match self.video.last_dts {
            Some(last) if dts <= last && last - dts < 100 => {
                self.nudged += 1;
                if self.nudged == 1 {
                    tracing::info!(
                        dts,
                        previous = last,
                        "rtmp: a video frame's decode time does not rise (GStreamer flvmux with \
                         B-frames); moving it one millisecond later (logged once per stream)"
                    );
                }
                let moved = last + 1;
                let shift = i32::try_from(moved - dts).unwrap_or(i32::MAX);
                (moved, cts.saturating_sub(shift))
            }
            _ => (dts, cts),
        }
    }

    /// Handles one audio message; returns the sample it carries, if any.
    pub fn push_audio(
        &mut self,
        timestamp: u32,
        body: &Bytes,
    ) -> Result<Option<Sample>, RtmpError> {
        match parse_audio(body).map_err(|e| e.within("audio"))? {
            AudioTag::SequenceStart { codec, config } => {
                let config = match codec {
                    AudioCodec::Aac => {
                        CodecConfig::Aac(AudioSpecificConfig::parse(&config).map_err(|e| {
                            codec_error(e, "audio > sequence start > AudioSpecificConfig")
                        })?)
                    }
                    AudioCodec::Opus => CodecConfig::Opus(
                        OpusConfig::parse_opus_head(&config)
                            .or_else(|_| OpusConfig::parse_dops(&config))
                            .map_err(|e| codec_error(e, "audio > sequence start > OpusHead"))?,
                    ),
                    other => {
                        self.report(other.to_string());
                        return Ok(None);
                    }
                };
                Self::set_track(&mut self.audio, &mut self.changed, AUDIO_TRACK_ID, config);
                if self.changed {
                    self.aac = AacClock::default();
                }
                Ok(None)
            }
            AudioTag::Frame { codec, data } => {
                let dts = self.clock.extend(timestamp);
                // The video track is announced but its parameter sets come
                // with its first keyframe: audio before it would start the
                // presentation without video (and its tracks then change).
                if self.awaiting_video {
                    return Ok(None);
                }
                let Some(track) = &self.audio.track else {
                    if !matches!(codec, AudioCodec::Aac | AudioCodec::Opus) {
                        self.report(codec.to_string());
                    }
                    return Ok(None);
                };
                if data.is_empty() {
                    return Ok(None);
                }
                let (dts, duration) = match &track.codec {
                    CodecConfig::Aac(_) => {
                        (self.aac.place(dts, track.timescale), AAC_FRAME_SAMPLES)
                    }
                    _ => (dts, self.audio.duration(dts, 20)),
                };
                Ok(Some(Sample {
                    track: AUDIO_TRACK_ID,
                    dts,
                    cts_offset: 0,
                    duration,
                    keyframe: true,
                    data,
                }))
            }
            AudioTag::SequenceEnd { .. } | AudioTag::Ignored { .. } => Ok(None),
        }
    }
}

/// Reads an `avcC` or `hvcC`, trusting the bytes over the tag's label.
fn video_config(label: VideoCodec, record: &[u8]) -> Result<CodecConfig, RtmpError> {
    type Parse = fn(&[u8]) -> Result<CodecConfig, CodecError>;
    let avc: Parse = |r| AvcConfig::parse(r).map(CodecConfig::H264);
    let hevc: Parse = |r| HevcConfig::parse(r).map(CodecConfig::H265);
    let (first, second, path) = match label {
        VideoCodec::Hevc => (hevc, avc, "video > sequence start > hvcC"),
        _ => (avc, hevc, "video > sequence start > avcC"),
    };
    match first(record) {
        Ok(config) => Ok(config),
        Err(e) => match second(record) {
            Ok(config) => {
                tracing::warn!(
                    label = %label,
                    actual = %config.codec_string(),
                    "rtmp: video sequence header is labelled with the wrong codec (OBS < 29.1 sent HEVC as H.264); using the bitstream's"
                );
                Ok(config)
            }
            Err(_) => Err(codec_error(e, path)),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codec::h264;

    pub(crate) const SPS_720P_HIGH: &[u8] = h264::tests::SPS_720P_HIGH;
    pub(crate) const PPS_720P_HIGH: &[u8] = h264::tests::PPS_720P_HIGH;

    pub(crate) fn avc_sequence_header() -> Bytes {
        let config = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(&config.to_record());
        Bytes::from(body)
    }

    pub(crate) fn avc_frame(key: bool, cts: i32, nal_type: u8) -> Bytes {
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1];
        body.extend_from_slice(&cts.to_be_bytes()[1..]);
        body.extend_from_slice(&[0, 0, 0, 3, 0x60 | nal_type, 0x88, 0x84]);
        Bytes::from(body)
    }

    pub(crate) fn aac_sequence_header() -> Bytes {
        Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
    }

    #[test]
    fn avc_sequence_header_and_frames() {
        let mut demux = FlvDemuxer::new();
        assert_eq!(demux.push_video(0, &avc_sequence_header()).unwrap(), None);
        let tracks = demux.take_changed_tracks().unwrap();
        assert_eq!(tracks[0].codec.codec_string(), "avc1.64001f");
        assert_eq!(tracks[0].timescale, TIMESCALE);
        let idr = demux
            .push_video(1000, &avc_frame(true, 66, 5))
            .unwrap()
            .unwrap();
        assert!(idr.keyframe);
        assert_eq!((idr.dts, idr.cts_offset, idr.pts()), (1000, 66, 1066));
        assert_eq!(&idr.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let b = demux
            .push_video(1033, &avc_frame(false, -33, 1))
            .unwrap()
            .unwrap();
        assert_eq!((b.cts_offset, b.keyframe, b.duration), (-33, false, 33));
        assert_eq!(demux.take_changed_tracks(), None);
    }

    #[test]
    fn an_empty_avc_sequence_header_waits_for_in_band_parameter_sets() {
        use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
        let mut demux = FlvDemuxer::new();
        // What ffmpeg's FLV muxer sends when its encoder has no global header.
        let empty = Bytes::from_static(&[0x17, 0, 0, 0, 0]);
        assert_eq!(demux.push_video(0, &empty).unwrap(), None);
        assert_eq!(demux.take_changed_tracks(), None);
        let mut body = vec![0x17, 1, 0, 0, 0];
        for nal in [SPS_720P_HIGH, PPS_720P_HIGH, &[0x65, 0x88, 0x84][..]] {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        let idr = demux.push_video(0, &Bytes::from(body)).unwrap().unwrap();
        assert!(idr.keyframe);
        let tracks = demux.take_changed_tracks().unwrap();
        assert_eq!(tracks[0].width(), Some(1280));
    }

    #[test]
    fn frames_are_annex_b_only_after_an_empty_sequence_header() {
        use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
        // A slice of 300 bytes: its length prefix 00 00 01 2c looks like an
        // Annex B start code.
        let mut slice = vec![0x41];
        slice.resize(300, 0x9a);
        let mut prefixed = vec![0x27, 1, 0, 0, 0];
        prefixed.extend_from_slice(&300u32.to_be_bytes());
        prefixed.extend_from_slice(&slice);
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &avc_sequence_header()).unwrap();
        demux.push_video(0, &avc_frame(true, 0, 5)).unwrap();
        let frame = demux
            .push_video(40, &Bytes::from(prefixed.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(&frame.data[..], &prefixed[5..]);

        // After an empty header, Annex B frames are converted, and a
        // well-formed length-prefixed frame is still taken as it is.
        let mut demux = FlvDemuxer::new();
        demux
            .push_video(0, &Bytes::from_static(&[0x17, 0, 0, 0, 0]))
            .unwrap();
        let mut annex_b = vec![0x17, 1, 0, 0, 0];
        for nal in [SPS_720P_HIGH, PPS_720P_HIGH, &[0x65, 0x88, 0x84][..]] {
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
        }
        let idr = demux.push_video(0, &Bytes::from(annex_b)).unwrap().unwrap();
        assert!(idr.keyframe);
        assert_eq!(
            &idr.data[idr.data.len() - 7..],
            &[0, 0, 0, 3, 0x65, 0x88, 0x84]
        );
        assert_eq!(demux.take_changed_tracks().unwrap()[0].width(), Some(1280));
        let frame = demux
            .push_video(40, &Bytes::from(prefixed.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(&frame.data[..], &prefixed[5..]);
    }

    #[test]
    fn a_keyframe_with_other_parameter_sets_changes_the_track_before_it() {
        use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
        // 256x144 High: another encoder configuration.
        const SPS: &[u8] = &[
            103, 100, 0, 12, 172, 217, 65, 65, 251, 1, 16, 0, 0, 3, 0, 16, 0, 0, 3, 3, 200, 241,
            66, 153, 96,
        ];
        const PPS: &[u8] = &[104, 235, 227, 203, 34, 192];
        let keyframe = |sps: &[u8], pps: &[u8]| {
            let mut body = vec![0x17, 1, 0, 0, 0];
            for nal in [sps, pps, &[0x65, 0x88, 0x84][..]] {
                body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                body.extend_from_slice(nal);
            }
            Bytes::from(body)
        };
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &avc_sequence_header()).unwrap();
        assert!(demux.take_changed_tracks().is_some());
        // The sequence header's own sets repeated in band: no change.
        demux
            .push_video(0, &keyframe(SPS_720P_HIGH, PPS_720P_HIGH))
            .unwrap()
            .unwrap();
        assert_eq!(demux.take_changed_tracks(), None);
        let frame = demux.push_video(40, &keyframe(SPS, PPS)).unwrap().unwrap();
        assert!(frame.keyframe);
        let tracks = demux.take_changed_tracks().unwrap();
        assert_eq!(tracks[0].codec.codec_string(), "avc1.64000c");
        // Not again for the next keyframe with the same sets.
        demux.push_video(80, &keyframe(SPS, PPS)).unwrap().unwrap();
        assert_eq!(demux.take_changed_tracks(), None);
    }

    #[test]
    fn a_repeated_video_decode_time_moves_one_tick_later_keeping_its_presentation() {
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &avc_sequence_header()).unwrap();
        let a = demux
            .push_video(21, &avc_frame(true, 0, 5))
            .unwrap()
            .unwrap();
        let b = demux
            .push_video(21, &avc_frame(false, 50, 1))
            .unwrap()
            .unwrap();
        let c = demux
            .push_video(38, &avc_frame(false, 0, 1))
            .unwrap()
            .unwrap();
        assert_eq!((a.dts, b.dts, c.dts), (21, 22, 38));
        assert_eq!(b.pts(), 71);
    }

    #[test]
    fn keyframe_flag_follows_the_bitstream() {
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &avc_sequence_header()).unwrap();
        // Tagged key frame holding a non-IDR slice (a recovery point).
        let s = demux
            .push_video(0, &avc_frame(true, 0, 1))
            .unwrap()
            .unwrap();
        assert!(!s.keyframe);
    }

    #[test]
    fn frames_before_a_sequence_header_are_dropped() {
        let mut demux = FlvDemuxer::new();
        assert_eq!(demux.push_video(0, &avc_frame(true, 0, 5)).unwrap(), None);
        assert_eq!(
            demux
                .push_audio(0, &Bytes::from_static(&[0xaf, 1, 0x21]))
                .unwrap(),
            None
        );
    }

    #[test]
    fn aac_sequence_header_and_frames() {
        let mut demux = FlvDemuxer::new();
        demux.push_audio(0, &aac_sequence_header()).unwrap();
        let tracks = demux.take_changed_tracks().unwrap();
        assert_eq!(tracks[0].id, AUDIO_TRACK_ID);
        assert_eq!(tracks[0].sample_rate(), Some(44_100));
        let s = demux
            .push_audio(23, &Bytes::from_static(&[0xaf, 1, 0x21, 0x10]))
            .unwrap()
            .unwrap();
        // Counted at 44.1 kHz: 23 ms is tick 1014.
        assert_eq!(tracks[0].timescale, 44_100);
        assert_eq!(
            (s.dts, s.duration, s.keyframe, &s.data[..]),
            (1014, 1024, true, &[0x21, 0x10][..])
        );
    }

    #[test]
    fn aac_frames_follow_their_sample_count_through_rounded_timestamps() {
        let mut demux = FlvDemuxer::new();
        demux.push_audio(0, &aac_sequence_header()).unwrap();
        let frame = Bytes::from_static(&[0xaf, 1, 0x21, 0x10]);
        // 44.1 kHz frames last 23.22 ms: RTMP says 1000, 1023, 1046, 1070, …
        let mut dts = Vec::new();
        for i in 0..200u32 {
            let ms = 1000 + (u64::from(i) * 1024 * 1000 / 44_100) as u32;
            let ms = if i == 50 { ms + 4 } else { ms }; // jitter within the drift
            dts.push(demux.push_audio(ms, &frame).unwrap().unwrap().dts);
        }
        assert!(dts.windows(2).all(|w| w[1] - w[0] == 1024), "{dts:?}");
        assert_eq!(dts[0], 44_100);
        // Two frames lost: the next frame follows its timestamp.
        let ms = 1000 + (202 * 1024 * 1000 / 44_100) as u32;
        let s = demux.push_audio(ms, &frame).unwrap().unwrap();
        assert_eq!(s.dts, (i64::from(ms) * 44_100 + 500) / 1000);
        assert!((s.dts - (44_100 + 202 * 1024)).abs() <= 44, "{}", s.dts);
    }

    #[test]
    fn enhanced_rtmp_hevc() {
        // VPS/SPS/PPS of `ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 1
        // -c:v libx265 -f hevc` (ffmpeg 5.1, x265 3.5), as in codec::h265's tests.
        let vps: &[u8] = &[
            0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00,
            0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x95, 0x98, 0x09,
        ];
        let sps: &[u8] = &[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24,
            0xca, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
        ];
        let pps: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
        let hvcc = HevcConfig::from_parameter_sets(&[vps], &[sps], &[pps])
            .unwrap()
            .to_record();
        let mut demux = FlvDemuxer::new();
        // IsExHeader | KeyFrame | SequenceStart, "hvc1".
        let mut start = vec![0x90, b'h', b'v', b'c', b'1'];
        start.extend_from_slice(&hvcc);
        demux.push_video(0, &Bytes::from(start)).unwrap();
        let tracks = demux.take_changed_tracks().unwrap();
        assert!(matches!(tracks[0].codec, CodecConfig::H265(_)));
        // CodedFrames with a composition time, an IDR_W_RADL slice (type 19).
        let coded = Bytes::from(vec![
            0x91,
            b'h',
            b'v',
            b'c',
            b'1',
            0,
            0,
            40,
            0,
            0,
            0,
            3,
            19 << 1,
            1,
            0xaf,
        ]);
        let s = demux.push_video(40, &coded).unwrap().unwrap();
        assert_eq!((s.cts_offset, s.keyframe, s.data.len()), (40, true, 7));
        // CodedFramesX: no composition time; a TRAIL_R slice.
        let x = Bytes::from(vec![
            0xa3,
            b'h',
            b'v',
            b'c',
            b'1',
            0,
            0,
            0,
            3,
            1 << 1,
            1,
            0xaf,
        ]);
        let s = demux.push_video(80, &x).unwrap().unwrap();
        assert_eq!((s.cts_offset, s.keyframe, s.dts), (0, false, 80));
        // The same hvcC labelled as AVC (OBS < 29.1) is still HEVC.
        let mut mislabelled = vec![0x17, 0, 0, 0, 0];
        mislabelled.extend_from_slice(&hvcc);
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &Bytes::from(mislabelled)).unwrap();
        assert!(matches!(demux.tracks()[0].codec, CodecConfig::H265(_)));
    }

    #[test]
    fn unsupported_codecs_are_reported_once() {
        let mut demux = FlvDemuxer::new();
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 0x81]);
        demux.push_video(0, &av1).unwrap();
        demux.push_video(0, &av1).unwrap();
        assert_eq!(demux.take_unsupported().as_deref(), Some("AV1"));
        assert_eq!(demux.take_unsupported(), None);
        let mp3 = Bytes::from_static(&[0x2f, 0xff, 0xfb]);
        assert_eq!(demux.push_audio(0, &mp3).unwrap(), None);
        assert_eq!(
            demux.take_unsupported().as_deref(),
            Some("FLV SoundFormat 2")
        );
    }

    #[test]
    fn command_frames_and_sequence_end_carry_no_sample() {
        let mut demux = FlvDemuxer::new();
        demux.push_video(0, &avc_sequence_header()).unwrap();
        assert_eq!(
            demux
                .push_video(0, &Bytes::from_static(&[0x52, 0]))
                .unwrap(),
            None
        );
        assert_eq!(
            demux
                .push_video(0, &Bytes::from_static(&[0x17, 2, 0, 0, 0]))
                .unwrap(),
            None
        );
    }

    #[test]
    fn timestamps_wrap_forward() {
        let mut clock = TimestampExtender::default();
        assert_eq!(clock.extend(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(clock.extend(5), i64::from(u32::MAX) + 6);
        assert_eq!(clock.extend(3), i64::from(u32::MAX) + 4);
    }

    #[test]
    fn aggregate_messages_split_into_tags() {
        let mut agg = Vec::new();
        for (ts, body) in [(1000u32, &[0xaf, 1, 1][..]), (1023, &[0xaf, 1, 2][..])] {
            agg.push(8);
            agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.push((ts >> 24) as u8);
            agg.extend_from_slice(&[0, 0, 0]);
            agg.extend_from_slice(body);
            agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let tags = split_aggregate(&Bytes::from(agg.clone()), 50).unwrap();
        assert_eq!(
            tags.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
            [(8, 50), (8, 73)]
        );
        assert!(split_aggregate(&Bytes::from(agg[..20].to_vec()), 0).is_err());
    }

    #[test]
    fn malformed_tags_are_invalid_not_panics() {
        for body in [
            &[][..],
            &[0x17][..],
            &[0x17, 1, 0][..],
            &[0x90, b'h'][..],
            &[0x17, 9, 0, 0, 0][..],
        ] {
            assert!(
                parse_video(&Bytes::copy_from_slice(body)).is_err(),
                "{body:?}"
            );
        }
        for body in [&[][..], &[0xaf][..], &[0xaf, 7][..], &[0x90, b'O'][..]] {
            assert!(
                parse_audio(&Bytes::copy_from_slice(body)).is_err(),
                "{body:?}"
            );
        }
    }
}

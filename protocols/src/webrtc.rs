//! The media of a WebRTC publish (WHIP, RFC 9725): the frames a WebRTC
//! stack depacketized — H.264 and H.265 access units in Annex B, Opus
//! packets — with their RTP timestamps and the sender's RTCP reports, made
//! into the tracks and samples of a live publish.
//!
//! Sans-IO: ICE, DTLS-SRTP and RTP are the caller's (the actors crate runs
//! `str0m`); this is what the packager needs of them.
//!
//! - **Sync.** Each track's RTP clock starts at a random value; the
//!   sender reports tie them to one wall clock. The RTSP push's
//!   [`Timeline`] places them: audio and video keep their distance.
//! - **Parameter sets.** Browsers send SPS and PPS (VPS too for H.265) in
//!   band before each keyframe. Video waits for a keyframe with them;
//!   until then, and after frames were lost, it asks for one
//!   ([`WebrtcEvent::KeyframeNeeded`]) and drops what cannot be decoded.
//!   New parameter sets on a keyframe (a browser adapting its resolution to
//!   the bandwidth) announce the tracks again.
//! - **Decode times.** WebRTC encoders send no B-frames, but a GStreamer
//!   publisher may: presentation times are reordered into decode times as
//!   deep as the SPS says, as for RTSP.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::nal::split_annex_b;
use crate::codec::opus::{OPUS_SAMPLE_RATE, OpusConfig};
use crate::codec::{AvcConfig, CodecConfig, HevcConfig, h264, h265};
use crate::media::{MediaKind, Sample, Track};
use crate::rtp::Frame;
use crate::rtp::opus::packet_samples;
use crate::rtp::reorder::TrackTimes;
use crate::rtsp::timeline::Timeline;

/// The RTP clock of WebRTC video (RFC 6184, 7798).
pub const VIDEO_CLOCK: u32 = 90_000;

/// Frames held before the video's first decodable keyframe, at most.
const MAX_HELD: usize = 2_000;

/// Bytes held before publication, at most.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Frames held after which a negotiated track that has sent nothing (a
/// browser's transceiver without a camera or microphone behind it) is left
/// out and the others publish: a few seconds of media.
const SILENT_AFTER: usize = 150;

/// The codec of a frame (its payload type's, in the negotiated SDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebrtcCodec {
    H264,
    H265,
    /// `opus/48000/2` in the SDP whatever the channels sent; `channels` is
    /// what the decoder should output (`stereo=1` in the fmtp: 2).
    Opus {
        channels: u8,
    },
}

impl WebrtcCodec {
    fn kind(self) -> MediaKind {
        match self {
            Self::H264 | Self::H265 => MediaKind::Video,
            Self::Opus { .. } => MediaKind::Audio,
        }
    }
}

fn clock_rate(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Video => VIDEO_CLOCK,
        MediaKind::Audio => OPUS_SAMPLE_RATE,
    }
}

/// What the publish learns from the media.
#[derive(Debug)]
pub enum WebrtcEvent {
    /// The tracks, before their first samples, and again when a track's
    /// parameter sets change.
    Tracks(Vec<Track>),
    Sample(Sample),
    /// The video track (by index) has no decodable keyframe: none came
    /// yet, or frames were lost since. Ask the sender for one (PLI).
    KeyframeNeeded(usize),
    /// Something was dropped; the publish goes on.
    Warning(String),
}

/// Why the media cannot make a publish.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebrtcError {
    #[error("track {track}: no keyframe with parameter sets after {MAX_HELD} frames")]
    NoParameterSets { track: usize },
    #[error("track {track}: no keyframe with parameter sets in the first {} MiB", MAX_HELD_BYTES >> 20)]
    TooMuchHeld { track: usize },
    #[error("no track: the offer has no H.264, H.265 or Opus media")]
    NoTracks,
}

struct Lane {
    kind: MediaKind,
    /// The codec of the latest frame.
    codec: Option<WebrtcCodec>,
    config: Option<CodecConfig>,
    /// Frames are dropped until a keyframe whose parameter sets are known.
    needs_keyframe: bool,
    /// Left out of the publish: it sent nothing while the others did.
    absent: bool,
    times: TrackTimes,
    warned: bool,
}

impl Lane {
    fn new(kind: MediaKind) -> Self {
        Lane {
            kind,
            codec: None,
            config: None,
            needs_keyframe: true,
            absent: false,
            times: TrackTimes::default(),
            warned: false,
        }
    }
}

/// An access unit in Annex B made into a sample's length-prefixed NAL
/// units (access unit delimiters left out), with whether it is a keyframe
/// and whether it carries parameter sets.
fn video_sample(codec: WebrtcCodec, annex_b: &[u8]) -> Option<(Vec<u8>, bool, bool)> {
    let mut sample = Vec::with_capacity(annex_b.len() + 16);
    let (mut keyframe, mut parameter_sets) = (false, false);
    for nal in split_annex_b(annex_b) {
        let (aud, key, params) = if codec == WebrtcCodec::H265 {
            let t = h265::nal_unit_type(nal)?;
            (t == 35, h265::is_irap_type(t), (32..=34).contains(&t))
        } else {
            let t = h264::nal_unit_type(nal)?;
            (t == 9, t == 5, t == 7 || t == 8)
        };
        if aud || nal.is_empty() {
            continue;
        }
        keyframe |= key;
        parameter_sets |= params;
        let len = u32::try_from(nal.len()).ok()?;
        sample.extend_from_slice(&len.to_be_bytes());
        sample.extend_from_slice(nal);
    }
    (!sample.is_empty()).then_some((sample, keyframe, parameter_sets))
}

/// The tracks and samples of one WebRTC publish.
pub struct WebrtcMedia {
    lanes: Vec<Lane>,
    timeline: Timeline,
    held: VecDeque<(usize, i64, Frame)>,
    held_bytes: usize,
    published: bool,
    events: VecDeque<WebrtcEvent>,
}

impl WebrtcMedia {
    /// The media of a session whose tracks, in this order, were
    /// negotiated (a track's index is its position). The publish starts
    /// once every track has sent a decodable frame.
    pub fn new(kinds: &[MediaKind]) -> Result<Self, WebrtcError> {
        if kinds.is_empty() {
            return Err(WebrtcError::NoTracks);
        }
        let rates: Vec<u32> = kinds.iter().map(|&k| clock_rate(k)).collect();
        Ok(WebrtcMedia {
            lanes: kinds.iter().copied().map(Lane::new).collect(),
            timeline: Timeline::new(&rates),
            held: VecDeque::new(),
            held_bytes: 0,
            published: false,
            events: VecDeque::new(),
        })
    }

    /// An RTCP sender report of `track`: its NTP time (32.32 fixed point,
    /// any epoch shared by the tracks) and RTP timestamp of one instant.
    pub fn sender_report(&mut self, track: usize, ntp: u64, rtp: u32) -> Result<(), WebrtcError> {
        self.timeline.sender_report(track, ntp, rtp);
        self.drain_timeline()
    }

    /// A depacketized frame of `track` in `codec`: an access unit in
    /// Annex B (video) or an Opus packet. `contiguous` is false when
    /// packets before it were lost.
    pub fn frame(
        &mut self,
        track: usize,
        codec: WebrtcCodec,
        timestamp: u32,
        data: &[u8],
        contiguous: bool,
    ) -> Result<(), WebrtcError> {
        let Some(lane) = self.lanes.get_mut(track) else {
            return Ok(());
        };
        if lane.absent {
            self.warn_once(
                track,
                format!("track {track} came after the publish started without it; dropped"),
            );
            return Ok(());
        }
        if codec.kind() != lane.kind {
            let kind = lane.kind;
            self.warn_once(
                track,
                format!("track {track}: {codec:?} on a {kind:?} track; dropped"),
            );
            return Ok(());
        }
        match lane.codec {
            None => {
                lane.codec = Some(codec);
                if let WebrtcCodec::Opus { channels } = codec {
                    lane.config = Some(CodecConfig::Opus(OpusConfig {
                        channels: channels.clamp(1, 2),
                        pre_skip: 0,
                        input_sample_rate: OPUS_SAMPLE_RATE,
                        output_gain: 0,
                        channel_mapping: None,
                    }));
                }
            }
            // A session keeps the codecs of its offer; a sender switching
            // payload types mid-stream would need a new init segment the
            // players were not told about.
            Some(first) if first != codec => {
                self.warn_once(
                    track,
                    format!("track {track}: {codec:?} after {first:?}; frames of it dropped"),
                );
                return Ok(());
            }
            Some(_) => {}
        }
        let frame = if codec.kind() == MediaKind::Video {
            match self.video_frame(track, codec, timestamp, data, contiguous) {
                Some(frame) => frame,
                None => return Ok(()),
            }
        } else {
            match packet_samples(data) {
                Ok(samples) => Frame {
                    timestamp,
                    data: Bytes::copy_from_slice(data),
                    keyframe: true,
                    duration: Some(samples),
                },
                Err(err) => {
                    self.warn_once(track, format!("track {track}: {err}; packet dropped"));
                    return Ok(());
                }
            }
        };
        self.timeline.push(track, frame);
        self.maybe_publish();
        self.drain_timeline()
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<WebrtcEvent> {
        self.events.pop_front()
    }

    /// The session ended: frames still waiting for their decode times are
    /// given out.
    pub fn finish(&mut self) {
        for index in 0..self.lanes.len() {
            while let Some(timed) = self.lanes[index].times.flush() {
                self.emit_timed(index, timed);
            }
        }
    }

    fn video_frame(
        &mut self,
        track: usize,
        codec: WebrtcCodec,
        timestamp: u32,
        data: &[u8],
        contiguous: bool,
    ) -> Option<Frame> {
        let lane = self.lanes.get_mut(track)?;
        if !contiguous && !lane.needs_keyframe {
            lane.needs_keyframe = true;
        }
        let Some((sample, keyframe, parameter_sets)) = video_sample(codec, data) else {
            self.warn_once(
                track,
                format!("track {track}: an access unit without NAL units"),
            );
            return None;
        };
        // The first parameter sets configure the track; later changes are
        // taken when their keyframe leaves the reorder window (emit_timed),
        // so that no frame of the old ones follows the new tracks.
        if parameter_sets && lane.config.is_none() {
            let config = if codec == WebrtcCodec::H265 {
                HevcConfig::from_annex_b(data).map(|c| c.map(CodecConfig::H265))
            } else {
                AvcConfig::from_annex_b(data).map(|c| c.map(CodecConfig::H264))
            };
            match config {
                Ok(Some(config)) => lane.config = Some(config),
                Ok(None) => {}
                Err(err) => {
                    self.warn_once(track, format!("track {track}: parameter sets: {err}"));
                }
            }
        }
        let lane = self.lanes.get_mut(track)?;
        if lane.needs_keyframe {
            if !keyframe || lane.config.is_none() {
                self.events.push_back(WebrtcEvent::KeyframeNeeded(track));
                return None;
            }
            lane.needs_keyframe = false;
        }
        Some(Frame {
            timestamp,
            data: Bytes::from(sample),
            keyframe,
            duration: None,
        })
    }

    fn maybe_publish(&mut self) {
        if self.published {
            return;
        }
        // Tracks that sent nothing while the others filled the hold are
        // left out, once another track can publish.
        if self.held.len() >= SILENT_AFTER && self.lanes.iter().any(|l| l.config.is_some()) {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                if lane.codec.is_none() && !lane.absent {
                    lane.absent = true;
                    self.events.push_back(WebrtcEvent::Warning(format!(
                        "track {i} sent nothing; the publish goes on without it"
                    )));
                }
            }
        }
        if self.lanes.iter().any(|l| !l.absent && l.config.is_none()) {
            return;
        }
        self.published = true;
        self.held_bytes = 0;
        self.announce_tracks();
        for (index, time, frame) in std::mem::take(&mut self.held) {
            self.emit(index, time, frame);
        }
    }

    fn announce_tracks(&mut self) {
        let tracks = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, lane)| {
                let id = u32::try_from(i + 1).ok()?;
                Some(Track::new(id, clock_rate(lane.kind), lane.config.clone()?))
            })
            .collect();
        self.events.push_back(WebrtcEvent::Tracks(tracks));
    }

    fn drain_timeline(&mut self) -> Result<(), WebrtcError> {
        while let Some((index, time, frame)) = self.timeline.pull() {
            if self.published {
                self.emit(index, time, frame);
                continue;
            }
            let track = self
                .lanes
                .iter()
                .position(|l| !l.absent && l.config.is_none())
                .unwrap_or(index);
            if self.held.len() >= MAX_HELD {
                return Err(WebrtcError::NoParameterSets { track });
            }
            if self.held_bytes + frame.data.len() > MAX_HELD_BYTES {
                return Err(WebrtcError::TooMuchHeld { track });
            }
            self.held_bytes += frame.data.len();
            self.held.push_back((index, time, frame));
        }
        Ok(())
    }

    fn emit(&mut self, index: usize, time: i64, frame: Frame) {
        let Some(lane) = self.lanes.get_mut(index) else {
            return;
        };
        if let Err(depth) = lane.times.push(lane.config.as_ref(), time, frame) {
            self.warn_once(
                index,
                format!(
                    "track {index}: a frame out of presentation order beyond the reorder \
                     window ({depth} frames) was dropped"
                ),
            );
            return;
        }
        while let Some(timed) = self.lanes[index].times.pull() {
            self.emit_timed(index, timed);
        }
    }

    fn emit_timed(&mut self, index: usize, timed: (i64, i64, Frame)) {
        let frame = &timed.2;
        // New parameter sets on a keyframe (a browser adapting its
        // resolution): the tracks are announced again, right before it.
        if frame.keyframe
            && let Some(config) = self
                .lanes
                .get(index)
                .and_then(|l| l.config.as_ref()?.changed_by(&frame.data))
        {
            self.lanes[index].config = Some(config);
            self.announce_tracks();
        }
        let Some(lane) = self.lanes.get_mut(index) else {
            return;
        };
        let Ok(id) = u32::try_from(index + 1) else {
            return;
        };
        if let Some(sample) = lane.times.sample(id, timed, VIDEO_CLOCK / 30) {
            self.events.push_back(WebrtcEvent::Sample(sample));
        }
    }

    fn warn_once(&mut self, track: usize, message: String) {
        if let Some(lane) = self.lanes.get_mut(track)
            && !lane.warned
        {
            lane.warned = true;
            self.events.push_back(WebrtcEvent::Warning(message));
        }
    }
}

#[cfg(test)]
mod tests;

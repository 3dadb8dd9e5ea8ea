//! The MPD as typed data (ISO/IEC 23009-1 §5.3): one presentation, its
//! periods, adaptation sets, representations and segment templates.

use crate::hls::multivariant::FrameRate;
use crate::hls::time::{MediaDuration, UnixMillis};
use crate::media::MediaKind;

/// `MPD@type` with the attributes that only make sense for each type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presentation {
    /// `type="static"`: VOD, or a live stream that has ended.
    Static {
        media_presentation_duration: MediaDuration,
    },
    /// `type="dynamic"`: live.
    Dynamic(Dynamic),
}

/// Attributes of a live (`type="dynamic"`) MPD (§5.3.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dynamic {
    /// How often clients re-fetch the MPD.
    pub minimum_update_period: MediaDuration,
    /// DVR depth; `None` means the whole stream stays available.
    pub time_shift_buffer_depth: Option<MediaDuration>,
    pub suggested_presentation_delay: Option<MediaDuration>,
}

/// `UTCTiming@schemeIdUri` (§5.8.5.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtcScheme {
    /// `urn:mpeg:dash:utc:http-iso:2014`: the URL returns an ISO 8601 time.
    HttpIso,
    /// `urn:mpeg:dash:utc:http-xsdate:2014`: the URL returns an xs:dateTime.
    HttpXsDate,
}

impl UtcScheme {
    pub fn uri(self) -> &'static str {
        match self {
            Self::HttpIso => "urn:mpeg:dash:utc:http-iso:2014",
            Self::HttpXsDate => "urn:mpeg:dash:utc:http-xsdate:2014",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtcTiming {
    pub scheme: UtcScheme,
    /// The time server URL.
    pub value: String,
}

/// `ServiceDescription` (§K.4) with the low-latency targets of DASH-IF
/// IOP "Low-latency Modes for DASH".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDescription {
    /// `Latency@target`, `@min`, `@max` in milliseconds.
    pub latency_target_ms: u32,
    pub latency_min_ms: Option<u32>,
    pub latency_max_ms: Option<u32>,
    /// `PlaybackRate@min` / `@max` in thousandths (960 = 0.96).
    pub playback_rate_permille: Option<(u32, u32)>,
}

/// How media segments are addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `SegmentTimeline`: the exact start and duration of every listed
    /// segment (§5.3.9.6). `media` uses `$Number$` or `$Time$`.
    Timeline(Vec<TimelineSegment>),
    /// `SegmentTemplate@duration` in timescale ticks: every segment has the
    /// same nominal duration. `media` uses `$Number$`.
    Duration(u64),
}

/// One segment of a `SegmentTimeline`, in timescale ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineSegment {
    pub start: u64,
    pub duration: u64,
}

/// `SegmentTemplate` (§5.3.9.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentTemplate {
    pub timescale: u32,
    /// e.g. `$RepresentationID$/init.mp4`.
    pub initialization: String,
    /// e.g. `$RepresentationID$/$Number$.m4s`.
    pub media: String,
    pub start_number: u64,
    pub presentation_time_offset: u64,
    pub addressing: Addressing,
    /// Low latency: how much earlier than its end a segment can be requested
    /// (it arrives by chunked transfer). Seconds.
    pub availability_time_offset: Option<MediaDuration>,
    /// `false` when the segment is only complete at its nominal availability
    /// time, as with chunked low-latency delivery (§5.3.9.5.3).
    pub availability_time_complete: Option<bool>,
}

/// `Representation` (§5.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    /// No whitespace: substituted for `$RepresentationID$` in URLs.
    pub id: String,
    /// RFC 6381 codec string.
    pub codecs: String,
    /// Bits per second.
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<FrameRate>,
    pub audio_sampling_rate: Option<u32>,
    /// `AudioChannelConfiguration` with the channel count.
    pub audio_channels: Option<u32>,
    /// Overrides the adaptation set's template for this representation
    /// (a live ladder rung whose timeline starts later than its set's).
    pub segment_template: Option<SegmentTemplate>,
}

/// `AdaptationSet` (§5.3.3): one per media type, sharing one segment
/// template so that every representation is segment-aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptationSet {
    pub id: u32,
    pub kind: MediaKind,
    /// RFC 5646 language tag.
    pub lang: Option<String>,
    pub segment_template: SegmentTemplate,
    pub representations: Vec<Representation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    pub id: String,
    /// `Period@start`, relative to `availabilityStartTime` when dynamic.
    pub start: MediaDuration,
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// A Media Presentation Description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mpd {
    /// `MPD@id`; stable across updates of one presentation.
    pub id: String,
    pub presentation: Presentation,
    /// Required for `dynamic`; kept when a live MPD turns static so that
    /// segment times keep their wall-clock anchor.
    pub availability_start_time: Option<UnixMillis>,
    /// When this version of the MPD was generated (the caller's clock).
    pub publish_time: UnixMillis,
    pub min_buffer_time: MediaDuration,
    pub max_segment_duration: Option<MediaDuration>,
    /// Adds the DASH-IF low-latency profile and requires a
    /// [`ServiceDescription`].
    pub low_latency: bool,
    pub service_description: Option<ServiceDescription>,
    pub utc_timing: Option<UtcTiming>,
    pub periods: Vec<Period>,
}

impl Mpd {
    /// Turns a live MPD into the static MPD of the ended stream: every
    /// listed segment is complete, so the low-latency signalling goes.
    /// ISO/IEC 23009-1 §5.4.1: an MPD update may change `@type` from
    /// `dynamic` to `static`.
    pub fn end(&mut self, media_presentation_duration: MediaDuration, publish_time: UnixMillis) {
        self.presentation = Presentation::Static {
            media_presentation_duration,
        };
        self.publish_time = publish_time;
        self.low_latency = false;
        self.service_description = None;
        for set in self
            .periods
            .iter_mut()
            .flat_map(|p| p.adaptation_sets.iter_mut())
        {
            set.segment_template.availability_time_offset = None;
            set.segment_template.availability_time_complete = None;
        }
    }
}

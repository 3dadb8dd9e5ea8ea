//! MPEG-DASH MPDs (ISO/IEC 23009-1) as typed data, rendered in one place.
//!
//! Build an [`Mpd`] from the packager's state on every update (VOD once;
//! live at each segment or at `minimumUpdatePeriod`), with `publish_time`
//! set from the caller's clock, and call [`render_mpd`]. When a live stream
//! ends, [`Mpd::end`] turns it `static` with a `mediaPresentationDuration`.
//!
//! Availability is the caller's contract: a `SegmentTimeline` lists only
//! segments already written, and with `availabilityTimeOffset` only segments
//! whose chunked transfer is already open (PITFALLS: SRS #1864). Times and
//! durations are formatted by integer arithmetic ([`xs`]).

pub mod model;
pub mod render;
pub mod xs;

pub use model::{
    AdaptationSet, Addressing, Dynamic, Mpd, Period, Presentation, Representation, SegmentTemplate,
    ServiceDescription, TimelineSegment, UtcScheme, UtcTiming,
};
pub use render::render_mpd;
pub use xs::XsDuration;

/// Why an MPD model was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DashError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("AdaptationSet {adaptation_set}: SegmentTemplate: {reason}")]
    InvalidTemplate {
        adaptation_set: u32,
        reason: &'static str,
    },
    #[error("Representation@id {0:?} is empty or contains whitespace")]
    InvalidRepresentationId(String),
    #[error("@{attribute} {value:?} contains a character XML 1.0 does not allow")]
    InvalidText {
        attribute: &'static str,
        value: String,
    },
}

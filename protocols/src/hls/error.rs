use super::time::MediaDuration;

/// Why a playlist model, or a change to a live playlist, was refused.
///
/// Each variant names the rule it enforces; none of them leaves a
/// [`LivePlaylist`](super::LivePlaylist) half-updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    #[error("{what} URI {uri:?} is empty or contains a quote or control character")]
    InvalidUri { what: &'static str, uri: String },
    #[error("EXT-X-TARGETDURATION must be at least 1 s")]
    ZeroTargetDuration,
    #[error("segments are inherited only by a playlist that lists nothing yet")]
    NotNew,
    #[error("a sliding window needs at least one segment")]
    ZeroWindow,
    #[error("{what} has zero duration")]
    ZeroDuration { what: &'static str },
    #[error(
        "segment {msn}: duration {}s rounds above EXT-X-TARGETDURATION {target}",
        .duration.decimal()
    )]
    SegmentExceedsTarget {
        msn: u64,
        duration: MediaDuration,
        target: u32,
    },
    #[error(
        "segment {msn} part {part}: duration {}s exceeds PART-TARGET {}s",
        .duration.decimal(),
        .part_target.decimal()
    )]
    PartExceedsTarget {
        msn: u64,
        part: usize,
        duration: MediaDuration,
        part_target: MediaDuration,
    },
    #[error(
        "segment {msn}: duration {}s differs from the sum of its parts {}s",
        .segment.decimal(),
        .parts.decimal()
    )]
    PartsDurationMismatch {
        msn: u64,
        segment: MediaDuration,
        parts: MediaDuration,
    },
    #[error("timescale is zero")]
    ZeroTimescale,
    #[error("playlist has partial segments but no PART-TARGET")]
    MissingPartTarget,
    #[error("PART-TARGET is zero or longer than EXT-X-TARGETDURATION")]
    InvalidPartTarget,
    #[error("a live low-latency playlist needs an EXT-X-PRELOAD-HINT")]
    MissingPreloadHint,
    #[error("{attribute} {}s is below the minimum {}s", .value.decimal(), .minimum.decimal())]
    BelowMinimum {
        attribute: &'static str,
        value: MediaDuration,
        minimum: MediaDuration,
    },
    #[error("the playlist has ended")]
    Ended,
    #[error("the playlist has not ended; only an ended stream can resume")]
    NotEnded,
    #[error("partial segments need a PART-TARGET (low-latency mode)")]
    NotLowLatency,
    #[error("the segment in progress already has {parts} parts; close it first")]
    SegmentInProgress { parts: usize },
    #[error("a VOD playlist must end with EXT-X-ENDLIST")]
    VodNotEnded,
    #[error("{what} {name:?} is empty or contains a quote or control character")]
    InvalidAttribute { what: &'static str, name: String },
    #[error("{0}")]
    Multivariant(&'static str),
    #[error("keyframe {index}: {reason}")]
    InvalidKeyframe { index: usize, reason: &'static str },
}

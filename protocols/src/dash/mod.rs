//! MPEG-DASH MPDs (ISO/IEC 23009-1) as typed data, rendered in one place.
//!
//! Build an [`Mpd`] from the packager's state on every update (VOD once;
//! live at each segment or at `minimumUpdatePeriod`), with `publish_time`
//! set from the caller's clock, and call [`render_mpd`]. When a live stream
//! ends, [`Mpd::end`] turns it `static` with a `mediaPresentationDuration`.
//!
//! Availability is the caller's contract: a `SegmentTimeline` lists only
//! segments already written, and with `availabilityTimeOffset` only segments
//! whose chunked transfer is already open (SRS issue #1864). Times and
//! durations are formatted by integer arithmetic ([`xs`]).

pub mod ended;
pub mod model;
pub mod render;
pub mod sets;
pub mod xs;

pub use ended::{EndedMpdError, ended_mpd};
pub use model::{
    AdaptationSet, Addressing, Dynamic, Mpd, Period, Presentation, Representation, SegmentTemplate,
    ServiceDescription, TimelineSegment, UtcScheme, UtcTiming,
};
pub use render::render_mpd;
pub use sets::{AdaptationSets, Grouping};
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

/// Appends `query` (without `?`, URL-safe) to the segment template URLs of
/// an MPD (`initialization` and `media` attributes), so a player presents
/// it (a URL signature) with every segment request. `&` is written as
/// `&amp;` inside the XML attribute.
pub fn append_query_to_templates(mpd: &str, query: &str) -> String {
    let escaped = query.replace('&', "&amp;");
    let mut out = String::with_capacity(mpd.len() + 128);
    let mut rest = mpd;
    loop {
        let next = ["initialization=\"", "media=\""]
            .iter()
            .filter_map(|attr| rest.find(attr).map(|at| (at, attr.len())))
            .min();
        let Some((at, len)) = next else {
            break;
        };
        // An attribute name starts after whitespace.
        let starts = at > 0 && rest.as_bytes()[at - 1].is_ascii_whitespace();
        out.push_str(&rest[..at + len]);
        rest = &rest[at + len..];
        if !starts {
            continue;
        }
        let Some(end) = rest.find('"') else {
            break;
        };
        let value = &rest[..end];
        let separator = if value.contains('?') { "&amp;" } else { "?" };
        out.push_str(value);
        out.push_str(separator);
        out.push_str(&escaped);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod query_tests {
    use super::append_query_to_templates;

    #[test]
    fn templates_get_the_query_escaped() {
        let mpd = r#"<SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="1"/>"#;
        let signed = append_query_to_templates(mpd, "exp=9&sig=ab");
        assert_eq!(
            signed,
            r#"<SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4?exp=9&amp;sig=ab" media="$RepresentationID$/$Number$.m4s?exp=9&amp;sig=ab" startNumber="1"/>"#
        );
        assert!(roxmltree::Document::parse(&format!("<r>{signed}</r>")).is_ok());
    }
}

//! MPD rendering: [`render_mpd`] validates an [`Mpd`] against the rules
//! below and writes its XML. Element order follows the ISO/IEC 23009-1
//! schema (e.g. `ServiceDescription` before `Period`, `UTCTiming` after it).

use std::fmt::Write as _;

use super::DashError;
use super::model::{
    AdaptationSet, Addressing, Mpd, Presentation, Representation, SegmentTemplate, TimelineSegment,
};
use super::xs::{XsDuration, escape_attr};
use crate::media::MediaKind;

const MPD_NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
const PROFILE_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
const PROFILE_LOW_LATENCY: &str = "http://www.dashif.org/guidelines/low-latency-live-v5";
/// ISO/IEC 23003-3 channel configuration scheme: the value is the count.
const CHANNEL_CONFIG_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";

/// Validates and renders an MPD.
pub fn render_mpd(mpd: &Mpd) -> Result<String, DashError> {
    validate(mpd)?;
    let timeline_len: usize = mpd
        .periods
        .iter()
        .flat_map(|p| &p.adaptation_sets)
        .flat_map(|a| {
            std::iter::once(&a.segment_template).chain(
                a.representations
                    .iter()
                    .filter_map(|r| r.segment_template.as_ref()),
            )
        })
        .map(|t| match &t.addressing {
            Addressing::Timeline(t) => t.len(),
            Addressing::Duration(_) => 0,
        })
        .sum();
    let mut w = Writer {
        out: String::with_capacity(1024 + 32 * timeline_len),
    };
    write_mpd(&mut w, mpd)?;
    Ok(w.out)
}

fn validate(mpd: &Mpd) -> Result<(), DashError> {
    // nginx-rtmp issue #804: DASH-IF validators reject an MPD without
    // @id or, for dynamic, without availabilityStartTime and UTCTiming.
    if mpd.id.is_empty() {
        return Err(DashError::Missing("MPD@id"));
    }
    if let Presentation::Dynamic(_) = mpd.presentation {
        if mpd.availability_start_time.is_none() {
            return Err(DashError::Missing("MPD@availabilityStartTime"));
        }
        if mpd.utc_timing.is_none() {
            return Err(DashError::Missing("UTCTiming"));
        }
    }
    if mpd.low_latency && mpd.service_description.is_none() {
        return Err(DashError::Missing(
            "ServiceDescription (low-latency profile)",
        ));
    }
    if mpd.periods.is_empty() {
        return Err(DashError::Missing("Period"));
    }
    for period in &mpd.periods {
        if period.adaptation_sets.is_empty() {
            return Err(DashError::Missing("AdaptationSet"));
        }
        for set in &period.adaptation_sets {
            validate_template(set.id, &set.segment_template)?;
            if set.representations.is_empty() {
                return Err(DashError::Missing("Representation"));
            }
            for rep in &set.representations {
                if let Some(t) = &rep.segment_template {
                    validate_template(set.id, t)?;
                }
                // §5.3.5.2: Representation@id "shall not contain whitespace
                // characters" (it is substituted into URLs).
                if rep.id.is_empty() || rep.id.chars().any(char::is_whitespace) {
                    return Err(DashError::InvalidRepresentationId(rep.id.clone()));
                }
                if rep.frame_rate.is_some_and(|f| f.den == 0) {
                    return Err(DashError::InvalidTemplate {
                        adaptation_set: set.id,
                        reason: "frameRate with zero denominator",
                    });
                }
            }
        }
    }
    Ok(())
}

fn validate_template(set: u32, t: &SegmentTemplate) -> Result<(), DashError> {
    let bad = |reason| DashError::InvalidTemplate {
        adaptation_set: set,
        reason,
    };
    if t.timescale == 0 {
        return Err(bad("timescale is zero"));
    }
    let number = t.media.contains("$Number");
    let time = t.media.contains("$Time");
    match &t.addressing {
        Addressing::Duration(0) => return Err(bad("duration is zero")),
        Addressing::Duration(_) if !number => {
            return Err(bad("@duration addressing needs $Number$ in @media"));
        }
        Addressing::Timeline(_) if !number && !time => {
            return Err(bad("@media needs $Number$ or $Time$"));
        }
        Addressing::Timeline(segments) => {
            let mut end = 0u64;
            for (i, s) in segments.iter().enumerate() {
                if s.duration == 0 {
                    return Err(bad("timeline segment with zero duration"));
                }
                if i > 0 && s.start < end {
                    return Err(bad("timeline segments overlap or go back in time"));
                }
                end = s
                    .start
                    .checked_add(s.duration)
                    .ok_or(bad("timeline overflows"))?;
            }
        }
        Addressing::Duration(_) => {}
    }
    Ok(())
}

struct Writer {
    out: String,
}

impl Writer {
    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
    }

    fn attr(&mut self, name: &'static str, value: &str) -> Result<(), DashError> {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_attr(&mut self.out, name, value)?;
        self.out.push('"');
        Ok(())
    }

    /// For values whose Display output never needs escaping (numbers,
    /// durations, dates).
    fn attr_plain(&mut self, name: &str, value: impl std::fmt::Display) {
        // Writing into a String cannot fail.
        let _ = write!(self.out, " {name}=\"{value}\"");
    }

    fn end_start(&mut self) {
        self.out.push_str(">\n");
    }

    fn end_empty(&mut self) {
        self.out.push_str("/>\n");
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
}

fn write_mpd(w: &mut Writer, mpd: &Mpd) -> Result<(), DashError> {
    w.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w.open("MPD");
    w.attr_plain("xmlns", MPD_NAMESPACE);
    w.attr("id", &mpd.id)?;
    if mpd.low_latency {
        w.attr_plain(
            "profiles",
            format_args!("{PROFILE_LIVE},{PROFILE_LOW_LATENCY}"),
        );
    } else {
        w.attr_plain("profiles", PROFILE_LIVE);
    }
    match &mpd.presentation {
        Presentation::Static {
            media_presentation_duration,
        } => {
            w.attr_plain("type", "static");
            if let Some(ast) = mpd.availability_start_time {
                w.attr_plain("availabilityStartTime", ast.iso8601());
            }
            w.attr_plain("publishTime", mpd.publish_time.iso8601());
            w.attr_plain(
                "mediaPresentationDuration",
                XsDuration(*media_presentation_duration),
            );
        }
        Presentation::Dynamic(d) => {
            w.attr_plain("type", "dynamic");
            if let Some(ast) = mpd.availability_start_time {
                w.attr_plain("availabilityStartTime", ast.iso8601());
            }
            w.attr_plain("publishTime", mpd.publish_time.iso8601());
            w.attr_plain("minimumUpdatePeriod", XsDuration(d.minimum_update_period));
            if let Some(depth) = d.time_shift_buffer_depth {
                w.attr_plain("timeShiftBufferDepth", XsDuration(depth));
            }
            if let Some(delay) = d.suggested_presentation_delay {
                w.attr_plain("suggestedPresentationDelay", XsDuration(delay));
            }
        }
    }
    if let Some(max) = mpd.max_segment_duration {
        w.attr_plain("maxSegmentDuration", XsDuration(max));
    }
    w.attr_plain("minBufferTime", XsDuration(mpd.min_buffer_time));
    w.end_start();

    if let Some(sd) = &mpd.service_description {
        w.open("ServiceDescription");
        w.attr_plain("id", 0);
        w.end_start();
        w.open("Latency");
        w.attr_plain("referenceId", 0);
        w.attr_plain("target", sd.latency_target_ms);
        if let Some(min) = sd.latency_min_ms {
            w.attr_plain("min", min);
        }
        if let Some(max) = sd.latency_max_ms {
            w.attr_plain("max", max);
        }
        w.end_empty();
        if let Some((min, max)) = sd.playback_rate_permille {
            w.open("PlaybackRate");
            w.attr_plain("min", Permille(min));
            w.attr_plain("max", Permille(max));
            w.end_empty();
        }
        w.close("ServiceDescription");
    }

    for period in &mpd.periods {
        w.open("Period");
        w.attr("id", &period.id)?;
        w.attr_plain("start", XsDuration(period.start));
        w.end_start();
        for set in &period.adaptation_sets {
            write_adaptation_set(w, set)?;
        }
        w.close("Period");
    }

    if let Some(timing) = &mpd.utc_timing {
        w.open("UTCTiming");
        w.attr_plain("schemeIdUri", timing.scheme.uri());
        w.attr("value", &timing.value)?;
        w.end_empty();
    }
    w.close("MPD");
    Ok(())
}

fn write_adaptation_set(w: &mut Writer, set: &AdaptationSet) -> Result<(), DashError> {
    let (content, mime) = match set.kind {
        MediaKind::Video => ("video", "video/mp4"),
        MediaKind::Audio => ("audio", "audio/mp4"),
    };
    w.open("AdaptationSet");
    w.attr_plain("id", set.id);
    w.attr_plain("contentType", content);
    w.attr_plain("mimeType", mime);
    if let Some(lang) = &set.lang {
        w.attr("lang", lang)?;
    }
    w.attr_plain("segmentAlignment", "true");
    w.attr_plain("startWithSAP", 1);
    w.end_start();
    write_template(w, &set.segment_template)?;
    for rep in &set.representations {
        write_representation(w, rep)?;
    }
    w.close("AdaptationSet");
    Ok(())
}

fn write_template(w: &mut Writer, t: &SegmentTemplate) -> Result<(), DashError> {
    w.open("SegmentTemplate");
    w.attr_plain("timescale", t.timescale);
    w.attr("initialization", &t.initialization)?;
    w.attr("media", &t.media)?;
    w.attr_plain("startNumber", t.start_number);
    if t.presentation_time_offset > 0 {
        w.attr_plain("presentationTimeOffset", t.presentation_time_offset);
    }
    if let Addressing::Duration(d) = t.addressing {
        w.attr_plain("duration", d);
    }
    if let Some(offset) = t.availability_time_offset {
        w.attr_plain("availabilityTimeOffset", offset.decimal());
    }
    if let Some(complete) = t.availability_time_complete {
        w.attr_plain("availabilityTimeComplete", complete);
    }
    match &t.addressing {
        Addressing::Timeline(segments) => {
            w.end_start();
            w.out.push_str("<SegmentTimeline>\n");
            write_timeline(w, segments);
            w.out.push_str("</SegmentTimeline>\n");
            w.close("SegmentTemplate");
        }
        Addressing::Duration(_) => w.end_empty(),
    }
    Ok(())
}

/// §5.3.9.6: `S@t` where a segment does not start where the previous one
/// ended (and on the first), `S@r` for runs of equal durations.
fn write_timeline(w: &mut Writer, segments: &[TimelineSegment]) {
    let mut i = 0;
    let mut expected_start = None;
    while let Some(first) = segments.get(i) {
        let mut repeat = 0usize;
        let mut end = first.start.saturating_add(first.duration);
        while let Some(next) = segments.get(i + repeat + 1) {
            if next.duration != first.duration || next.start != end {
                break;
            }
            end = end.saturating_add(next.duration);
            repeat += 1;
        }
        w.out.push_str("<S");
        if expected_start != Some(first.start) {
            w.attr_plain("t", first.start);
        }
        w.attr_plain("d", first.duration);
        if repeat > 0 {
            w.attr_plain("r", repeat);
        }
        w.end_empty();
        expected_start = Some(end);
        i += repeat + 1;
    }
}

fn write_representation(w: &mut Writer, rep: &Representation) -> Result<(), DashError> {
    w.open("Representation");
    w.attr("id", &rep.id)?;
    w.attr("codecs", &rep.codecs)?;
    w.attr_plain("bandwidth", rep.bandwidth);
    if let Some(width) = rep.width {
        w.attr_plain("width", width);
    }
    if let Some(height) = rep.height {
        w.attr_plain("height", height);
    }
    if let Some(fr) = rep.frame_rate {
        // §5.3.12.2 FrameRateType: an integer or a fraction `n/d`.
        if fr.den == 1 {
            w.attr_plain("frameRate", fr.num);
        } else {
            w.attr_plain("frameRate", format_args!("{}/{}", fr.num, fr.den));
        }
    }
    if let Some(rate) = rep.audio_sampling_rate {
        w.attr_plain("audioSamplingRate", rate);
    }
    if rep.audio_channels.is_none() && rep.segment_template.is_none() {
        w.end_empty();
        return Ok(());
    }
    w.end_start();
    if let Some(channels) = rep.audio_channels {
        w.open("AudioChannelConfiguration");
        w.attr_plain("schemeIdUri", CHANNEL_CONFIG_SCHEME);
        w.attr_plain("value", channels);
        w.end_empty();
    }
    // §5.3.9.1: SegmentTemplate comes after the Representation's common
    // elements.
    if let Some(template) = &rep.segment_template {
        write_template(w, template)?;
    }
    w.close("Representation");
    Ok(())
}

struct Permille(u32);

impl std::fmt::Display for Permille {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, mut frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let mut digits = 3;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{frac:0digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(segments: &[(u64, u64)]) -> String {
        let segs: Vec<TimelineSegment> = segments
            .iter()
            .map(|&(start, duration)| TimelineSegment { start, duration })
            .collect();
        let mut w = Writer { out: String::new() };
        write_timeline(&mut w, &segs);
        w.out
    }

    #[test]
    fn timeline_runs_and_gaps() {
        assert_eq!(
            timeline(&[
                (100, 10),
                (110, 10),
                (120, 10),
                (130, 5),
                (140, 5),
                (145, 5)
            ]),
            "<S t=\"100\" d=\"10\" r=\"2\"/>\n<S d=\"5\"/>\n<S t=\"140\" d=\"5\" r=\"1\"/>\n"
        );
        assert_eq!(timeline(&[]), "");
        assert_eq!(timeline(&[(0, 7)]), "<S t=\"0\" d=\"7\"/>\n");
    }

    #[test]
    fn playback_rates() {
        assert_eq!(Permille(960).to_string(), "0.96");
        assert_eq!(Permille(1040).to_string(), "1.04");
        assert_eq!(Permille(1000).to_string(), "1");
        assert_eq!(Permille(1005).to_string(), "1.005");
    }
}

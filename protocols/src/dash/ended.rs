//! The end of a live MPD seen from outside its packager: a relay (an edge
//! node) that holds the last dynamic MPD its origin sent, and learns that
//! the origin is gone, turns it static (ISO/IEC 23009-1 §5.4.1: an MPD
//! update may change `@type` from `dynamic` to `static`) so that players
//! stop cleanly instead of waiting for segments no one will make.
//!
//! The MPD is edited in place (attributes and elements removed or
//! rewritten by their byte ranges), so that everything else it said stays
//! as the origin wrote it.

use std::ops::Range;

use super::xs::XsDuration;
use crate::hls::MediaDuration;

/// Why an MPD could not be ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndedMpdError {
    #[error("the MPD is not XML: {0}")]
    Xml(String),
    #[error("the MPD's {0} is missing or malformed")]
    Malformed(&'static str),
}

/// A static MPD of the media `mpd` (a dynamic MPD) lists as written: the
/// last segment of each low-latency timeline (`availabilityTimeComplete`
/// false) is dropped, since it may still have been growing; the live
/// signalling (update period, time-shift buffer, latency targets,
/// availability offsets, the low-latency profile) goes; the presentation
/// lasts to the end of its last listed segment. A static MPD comes back
/// unchanged.
pub fn ended_mpd(mpd: &str) -> Result<String, EndedMpdError> {
    let doc = roxmltree::Document::parse(mpd).map_err(|e| EndedMpdError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("MPD") {
        return Err(EndedMpdError::Malformed("MPD element"));
    }
    if root.attribute("type") != Some("dynamic") {
        return Ok(mpd.to_owned());
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut end_ms = 0u64;
    let periods: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("Period"))
        .collect();
    for period in &periods {
        let start_ms = period
            .attribute("start")
            .map_or(Some(0), parse_duration_ms)
            .ok_or(EndedMpdError::Malformed("Period@start"))?;
        for template in period
            .descendants()
            .filter(|n| n.has_tag_name("SegmentTemplate"))
        {
            let growing = template.attribute("availabilityTimeComplete") == Some("false");
            for name in ["availabilityTimeOffset", "availabilityTimeComplete"] {
                if let Some(attr) = template.attributes().find(|a| a.name() == name) {
                    edits.push((attr.range(), String::new()));
                }
            }
            let number = |name: &'static str, default: u64| {
                template
                    .attribute(name)
                    .map_or(Some(default), |v| v.parse::<u64>().ok())
                    .ok_or(EndedMpdError::Malformed("SegmentTemplate"))
            };
            let timescale = number("timescale", 1)?.max(1);
            let offset = number("presentationTimeOffset", 0)?;
            let timeline: Vec<_> = template
                .descendants()
                .filter(|n| n.has_tag_name("S"))
                .collect();
            let mut t = 0u64;
            let mut count = 0u64;
            let mut ends = Vec::with_capacity(timeline.len());
            for s in &timeline {
                let value = |name: &str, default: Option<u64>| {
                    s.attribute(name)
                        .map_or(default, |v| v.parse::<u64>().ok())
                        .ok_or(EndedMpdError::Malformed("S element"))
                };
                t = value("t", Some(t))?;
                let d = value("d", None)?;
                let r = value("r", Some(0))?;
                t += d * (r + 1);
                count += r + 1;
                ends.push((t, d));
            }
            // The segment in progress, if any, is the last one listed (a
            // timeline keeps at least one).
            if growing
                && count > 1
                && let (Some(last), Some(&(last_end, d))) = (timeline.last(), ends.last())
            {
                match last.attribute("r").and_then(|r| r.parse::<u64>().ok()) {
                    Some(r) if r > 0 => {
                        let attr = last
                            .attributes()
                            .find(|a| a.name() == "r")
                            .ok_or(EndedMpdError::Malformed("S element"))?;
                        edits.push((attr.range(), format!("r=\"{}\"", r - 1)));
                        ends.push((last_end - d, d));
                    }
                    _ => {
                        edits.push((last.range(), String::new()));
                        ends.pop();
                    }
                }
            }
            if let Some(&(media_end, _)) = ends.last() {
                let within = media_end.saturating_sub(offset) * 1000 / timescale;
                end_ms = end_ms.max(start_ms + within);
            }
        }
    }
    for attr in root.attributes() {
        match attr.name() {
            "type" => edits.push((
                attr.range(),
                format!(
                    "type=\"static\" mediaPresentationDuration=\"{}\"",
                    XsDuration(MediaDuration::from_millis(end_ms))
                ),
            )),
            "minimumUpdatePeriod" | "timeShiftBufferDepth" | "suggestedPresentationDelay" => {
                edits.push((attr.range(), String::new()));
            }
            "profiles" => {
                let profiles: Vec<&str> = attr
                    .value()
                    .split(',')
                    .filter(|p| !p.contains("low-latency"))
                    .collect();
                edits.push((attr.range(), format!("profiles=\"{}\"", profiles.join(","))));
            }
            _ => {}
        }
    }
    for service in root
        .children()
        .filter(|n| n.has_tag_name("ServiceDescription"))
    {
        edits.push((service.range(), String::new()));
    }
    Ok(apply(mpd, edits))
}

/// `range` widened over the ASCII whitespace before it.
fn with_space_before_in(text: &str, range: Range<usize>) -> Range<usize> {
    let before = &text.as_bytes()[..range.start];
    let spaces = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    range.start - spaces..range.end
}

/// Applies `edits` (replacements of byte ranges, none overlapping) to
/// `text`; a removal (empty replacement) takes the whitespace before it.
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_owned();
    for (range, replacement) in edits {
        let range = if replacement.is_empty() {
            with_space_before_in(text, range)
        } else {
            range
        };
        out.replace_range(range, &replacement);
    }
    out
}

/// Milliseconds of an `xs:duration` of days, hours, minutes and seconds
/// (`PnDTnHnMn.nS`), as MPDs write them.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((days, time)) => (days, time),
        None => (rest, ""),
    };
    let mut ms = 0u64;
    if !days.is_empty() {
        ms += days.strip_suffix('D')?.parse::<u64>().ok()? * 86_400_000;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let unit = match c {
                    'H' => 3_600_000.0,
                    'M' => 60_000.0,
                    _ => 1000.0,
                };
                let value: f64 = number.parse().ok()?;
                ms += (value * unit).round() as u64;
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_mpds_write_them() {
        assert_eq!(parse_duration_ms("PT20S"), Some(20_000));
        assert_eq!(parse_duration_ms("PT1H2M3.5S"), Some(3_723_500));
        assert_eq!(parse_duration_ms("P1DT0S"), Some(86_400_000));
        assert_eq!(parse_duration_ms("PT0.333S"), Some(333));
        assert_eq!(parse_duration_ms("20S"), None);
        assert_eq!(parse_duration_ms("PT5"), None);
    }
}

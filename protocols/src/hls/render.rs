//! Rendering of media playlists, full and as delta updates, in one place.
//!
//! [`render_media`] prints a [`MediaPlaylist`] that
//! [`MediaPlaylist::validate`] accepts (a [`LivePlaylist`](super::LivePlaylist)
//! always holds one). `EXT-X-VERSION` is computed from the features the
//! output actually uses (RFC 8216bis §8).

use std::fmt::{self, Write as _};

use super::model::{ByteRange, MediaPlaylist, Part, PlaylistType, RenditionReport};
use super::query::SkipRequest;
use super::time::MediaDuration;

/// Per-request choices: delta update or not, and the sibling renditions'
/// positions (owned by other packagers, so passed in at render time).
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions<'a> {
    /// From `_HLS_skip`. Ignored when the playlist does not advertise
    /// CAN-SKIP-UNTIL or is too short for any segment to be skipped.
    pub skip: Option<SkipRequest>,
    /// `EXT-X-RENDITION-REPORT`s; rendered only for low-latency playlists.
    pub rendition_reports: &'a [RenditionReport],
}

/// Renders `playlist` as an M3U8 document.
pub fn render_media(playlist: &MediaPlaylist, options: &RenderOptions<'_>) -> String {
    let mut out = String::with_capacity(estimate_len(playlist));
    // Writing into a String cannot fail.
    let _ = write_media(&mut out, playlist, options);
    out
}

/// How many leading segments a delta update replaces with `EXT-X-SKIP`.
///
/// RFC 8216bis §6.2.5.1: segments whose position is earlier than the Skip
/// Boundary, CAN-SKIP-UNTIL seconds from the end of the playlist, are
/// skipped. A segment is skipped only when it ends at or before the boundary,
/// so the unskipped segments always cover at least CAN-SKIP-UNTIL.
///
/// A delta update never skips past an `EXT-X-DISCONTINUITY`: a client
/// numbers the discontinuities of the segments it is sent from
/// `EXT-X-DISCONTINUITY-SEQUENCE`, which counts those before the first
/// segment, skipped or not, so one inside the skipped run would put every
/// later segment in the wrong timeline (hls.js then stops with
/// "discontinuity sequence mismatch").
pub fn skipped_segments(playlist: &MediaPlaylist) -> usize {
    let Some(skip_until) = playlist.server_control.can_skip_until else {
        return 0;
    };
    let boundary = skip_until.as_nanos();
    let mut kept: u128 = 0;
    let mut skipped = 0;
    for (i, seg) in playlist.segments.iter().enumerate().rev() {
        if kept >= boundary {
            skipped = i + 1;
            break;
        }
        kept += seg.duration.as_nanos();
    }
    // The first segment with a discontinuity stays listed, and all after.
    playlist
        .segments
        .iter()
        .position(|s| s.discontinuity)
        .map_or(skipped, |at| skipped.min(at))
}

/// Lowest `EXT-X-VERSION` for the features this rendering uses (§8).
fn version(playlist: &MediaPlaylist, skipping: bool) -> u8 {
    // Version 3: decimal-floating-point EXTINF durations (always rendered).
    let mut v = 3;
    let byte_ranges = playlist.segments.iter().any(|s| s.byte_range.is_some());
    if byte_ranges || playlist.i_frames_only {
        // Version 4: EXT-X-BYTERANGE and EXT-X-I-FRAMES-ONLY.
        v = 4;
    }
    let maps = playlist.segments.iter().any(|s| s.map.is_some())
        || playlist
            .low_latency
            .as_ref()
            .is_some_and(|ll| ll.open.map.is_some());
    if maps {
        // Version 5: EXT-X-MAP with EXT-X-I-FRAMES-ONLY; version 6: EXT-X-MAP
        // in a playlist that is not I-frames only.
        v = v.max(if playlist.i_frames_only { 5 } else { 6 });
    }
    if skipping {
        // Version 9: EXT-X-SKIP.
        v = 9;
    }
    v
}

fn write_media(out: &mut String, pl: &MediaPlaylist, options: &RenderOptions<'_>) -> fmt::Result {
    let skipped = if options.skip.is_some() {
        skipped_segments(pl)
    } else {
        0
    };
    out.push_str("#EXTM3U\n");
    writeln!(out, "#EXT-X-VERSION:{}", version(pl, skipped > 0))?;
    writeln!(out, "#EXT-X-TARGETDURATION:{}", pl.target_duration)?;
    match pl.playlist_type {
        PlaylistType::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        PlaylistType::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        PlaylistType::Live => {}
    }
    if pl.i_frames_only {
        out.push_str("#EXT-X-I-FRAMES-ONLY\n");
    }
    writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", pl.media_sequence)?;
    if pl.discontinuity_sequence > 0 {
        writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            pl.discontinuity_sequence
        )?;
    }
    if pl.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    write_server_control(out, pl)?;
    if let Some(ll) = &pl.low_latency {
        // Same rounding as the parts' DURATION: rounding is monotonic, so no
        // printed part duration exceeds the printed PART-TARGET.
        writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            ll.part_target.decimal()
        )?;
    }
    if skipped > 0 {
        writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")?;
    }

    let mut current_map = None;
    for seg in pl.segments.iter().skip(skipped) {
        if seg.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        // The first listed segment always gets its EXT-X-MAP, so a sliding
        // window or a delta update never leaves the init section implicit.
        if seg.map.is_some() && seg.map != current_map {
            write_map(out, seg.map.as_deref())?;
            current_map.clone_from(&seg.map);
        }
        if let Some(pdt) = seg.program_date_time {
            writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt.iso8601())?;
        }
        for part in &seg.parts {
            write_part(out, part)?;
        }
        writeln!(out, "#EXTINF:{},", seg.duration.decimal())?;
        if let Some(range) = seg.byte_range {
            writeln!(out, "#EXT-X-BYTERANGE:{}", Range(range))?;
        }
        out.push_str(&seg.uri);
        out.push('\n');
    }

    if let Some(ll) = &pl.low_latency {
        if !ll.open.parts.is_empty() {
            if ll.open.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if ll.open.map.is_some() && ll.open.map != current_map {
                write_map(out, ll.open.map.as_deref())?;
            }
            for part in &ll.open.parts {
                write_part(out, part)?;
            }
        }
        if !pl.ended
            && let Some(hint) = &ll.preload_hint
        {
            write!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", hint.uri)?;
            if let Some(start) = hint.byte_range_start {
                write!(out, ",BYTERANGE-START={start}")?;
            }
            out.push('\n');
        }
        for report in options.rendition_reports {
            write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                report.uri, report.last_msn
            )?;
            if let Some(part) = report.last_part {
                write!(out, ",LAST-PART={part}")?;
            }
            out.push('\n');
        }
    }
    if pl.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Ok(())
}

fn write_server_control(out: &mut String, pl: &MediaPlaylist) -> fmt::Result {
    let sc = &pl.server_control;
    if sc.is_empty() {
        return Ok(());
    }
    let mut attrs: Vec<(&str, MediaDuration)> = Vec::with_capacity(3);
    if let Some(d) = sc.can_skip_until {
        attrs.push(("CAN-SKIP-UNTIL", d));
    }
    if let Some(d) = sc.hold_back {
        attrs.push(("HOLD-BACK", d));
    }
    if let Some(d) = sc.part_hold_back {
        attrs.push(("PART-HOLD-BACK", d));
    }
    out.push_str("#EXT-X-SERVER-CONTROL:");
    let mut sep = "";
    if sc.can_block_reload {
        out.push_str("CAN-BLOCK-RELOAD=YES");
        sep = ",";
    }
    for (name, d) in attrs {
        write!(out, "{sep}{name}={}", d.decimal())?;
        sep = ",";
    }
    out.push('\n');
    Ok(())
}

fn write_map(out: &mut String, map: Option<&super::model::Map>) -> fmt::Result {
    let Some(map) = map else { return Ok(()) };
    write!(out, "#EXT-X-MAP:URI=\"{}\"", map.uri)?;
    if let Some(range) = map.byte_range {
        write!(out, ",BYTERANGE=\"{}\"", Range(range))?;
    }
    out.push('\n');
    Ok(())
}

fn write_part(out: &mut String, part: &Part) -> fmt::Result {
    write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        part.duration.decimal(),
        part.uri
    )?;
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    if let Some(range) = part.byte_range {
        write!(out, ",BYTERANGE=\"{}\"", Range(range))?;
    }
    out.push('\n');
    Ok(())
}

struct Range(ByteRange);

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.0.length, self.0.offset)
    }
}

fn estimate_len(pl: &MediaPlaylist) -> usize {
    let parts: usize = pl.segments.iter().map(|s| s.parts.len()).sum();
    256 + pl.segments.len() * 96 + parts * 96
}

//! The manifests of a finished presentation, from per-segment metadata:
//! VOD media playlists, I-frame playlists, the multivariant playlist
//! (RFC 8216bis) and a static MPD (ISO/IEC 23009-1), all referencing the
//! same segment files.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::dash::{
    AdaptationSets, Addressing, Grouping, Mpd, Period, Presentation, Representation,
    SegmentTemplate, TimelineSegment, render_mpd,
};
use crate::hls::{
    Keyframe, Listed, Map, MediaDuration, MediaPlaylist, MultivariantPlaylist, PlaylistType,
    RenderOptions, Segment, UnixMillis, i_frame_playlist, ladder_playlist, render_media,
    render_multivariant,
};
use crate::media::MediaKind;

use super::bandwidth::{Span, average_bit_rate, dash_bandwidth, peak_segment_bit_rate};
use super::packager::Rendition;
use super::{
    I_FRAME_PLAYLIST, INIT, MEDIA_PLAYLIST, MPD, MULTIVARIANT, Output, PackageError, PackagerConfig,
};

pub(super) struct Built {
    pub outputs: Vec<Output>,
    /// Presentation duration of each rendition, in rendition order.
    pub durations: Vec<MediaDuration>,
    pub presentation_duration: MediaDuration,
}

/// What the multivariant playlist and the MPD need of one rendition.
struct Rates {
    /// RFC 8216bis peak and average segment bit rates.
    peak: u64,
    average: u64,
    /// ISO/IEC 23009-1 `@bandwidth` for `minBufferTime` = the longest segment.
    dash: u64,
    i_frames: Option<(u64, u64)>,
}

pub(super) fn build(
    config: &PackagerConfig,
    renditions: &[&Rendition],
    publish_time: UnixMillis,
) -> Result<Built, PackageError> {
    let mut outputs = Vec::with_capacity(2 * renditions.len() + 2);
    let mut rates = Vec::with_capacity(renditions.len());
    let mut durations = Vec::with_capacity(renditions.len());
    let min_buffer = longest_segment(renditions);
    for r in renditions {
        let timescale = r.track.timescale;
        // Rounded down: a shorter buffer only raises the bandwidth.
        let min_buffer_ticks =
            u64::try_from(min_buffer.as_nanos() * u128::from(timescale) / 1_000_000_000)
                .unwrap_or(u64::MAX);
        let sized: Vec<Span> = r
            .segments
            .iter()
            .map(|s| Span {
                bytes: s.size,
                ticks: s.duration,
            })
            .collect();
        let media = media_playlist(config, r)?;
        let peak = peak_segment_bit_rate(&sized, timescale, media.target_duration);
        outputs.push(text(
            format!("{}/{MEDIA_PLAYLIST}", r.name),
            render_media(&media, &RenderOptions::default()),
        ));
        let i_frames = if r.kind() == MediaKind::Video {
            let (playlist, sized) = i_frames(config, r)?;
            outputs.push(text(
                format!("{}/{I_FRAME_PLAYLIST}", r.name),
                render_media(&playlist, &RenderOptions::default()),
            ));
            Some((
                peak_segment_bit_rate(&sized, timescale, playlist.target_duration),
                average_bit_rate(&sized, timescale),
            ))
        } else {
            None
        };
        rates.push(Rates {
            peak,
            average: average_bit_rate(&sized, timescale),
            dash: dash_bandwidth(&sized, timescale, min_buffer_ticks),
            i_frames,
        });
        durations.push(presentation_duration(r));
    }
    outputs.push(text(
        MULTIVARIANT.to_owned(),
        render_multivariant(&multivariant(renditions, &rates))?,
    ));
    let presentation_duration = durations
        .iter()
        .copied()
        .max_by_key(|d| d.as_nanos())
        .unwrap_or(MediaDuration::from_secs(0));
    let mpd = mpd(
        config,
        renditions,
        &rates,
        min_buffer,
        presentation_duration,
        publish_time,
    );
    outputs.push(text(MPD.to_owned(), render_mpd(&mpd)?));
    Ok(Built {
        outputs,
        durations,
        presentation_duration,
    })
}

/// The longest segment of any rendition: `MPD@minBufferTime` and
/// `@maxSegmentDuration`.
fn longest_segment(renditions: &[&Rendition]) -> MediaDuration {
    let mut longest = MediaDuration::from_secs(1);
    for r in renditions {
        for s in &r.segments {
            let d = duration(s.duration, r.track.timescale);
            if d.as_nanos() > longest.as_nanos() {
                longest = d;
            }
        }
    }
    longest
}

fn text(path: String, body: String) -> Output {
    Output {
        path,
        data: body.into(),
    }
}

fn duration(ticks: u64, timescale: u32) -> MediaDuration {
    MediaDuration::new(ticks, timescale).unwrap_or(MediaDuration::from_secs(0))
}

/// From presentation time zero (after the edit list's shift) to the end of
/// the last sample.
fn presentation_duration(r: &Rendition) -> MediaDuration {
    let offset = i64::try_from(r.track.presentation_offset).unwrap_or(i64::MAX);
    let end = u64::try_from(r.end_pts.saturating_sub(offset)).unwrap_or(0);
    duration(end, r.track.timescale)
}

/// RFC 8216bis §4.4.3.1: "The EXTINF duration of each Media Segment in a
/// Playlist file, when rounded to the nearest integer, MUST be less than or
/// equal to the Target Duration".
fn target_duration(durations: impl Iterator<Item = MediaDuration>) -> u32 {
    let longest = durations
        .map(MediaDuration::rounded_secs)
        .max()
        .unwrap_or(1);
    u32::try_from(longest).unwrap_or(u32::MAX).max(1)
}

fn media_playlist(config: &PackagerConfig, r: &Rendition) -> Result<MediaPlaylist, PackageError> {
    let timescale = r.track.timescale;
    let map = Arc::new(Map {
        uri: INIT.to_owned(),
        byte_range: None,
    });
    let segments: VecDeque<Segment> = r
        .segments
        .iter()
        .map(|s| Segment {
            uri: config.naming.segment(s.number),
            duration: duration(s.duration, timescale),
            byte_range: None,
            discontinuity: false,
            program_date_time: None,
            map: Some(Arc::clone(&map)),
            parts: Vec::new(),
        })
        .collect();
    let mut playlist = MediaPlaylist::new(
        PlaylistType::Vod,
        target_duration(segments.iter().map(|s| s.duration)),
    );
    playlist.media_sequence = r.segments.first().map_or(1, |s| s.number);
    // RFC 8216bis §4.4.2.1: every segment starts with a keyframe (the
    // fragmenter cuts only there), so each decodes without its predecessor.
    playlist.independent_segments = true;
    playlist.segments = segments;
    playlist.validate()?;
    Ok(playlist)
}

/// The playlist of a rendition still being packaged: `EVENT`, open-ended.
/// Its target duration must hold for every segment still to come (§4.4.3.1:
/// it may not change), so it is at least the configured segment duration
/// rounded up; segments are cut at the first keyframe past that duration.
pub(super) fn event_playlist(
    config: &PackagerConfig,
    r: &Rendition,
) -> Result<MediaPlaylist, PackageError> {
    let mut playlist = media_playlist(config, r)?;
    let configured = config
        .segment_duration
        .num
        .div_ceil(config.segment_duration.den.max(1));
    let configured = u32::try_from(configured).unwrap_or(u32::MAX);
    playlist.playlist_type = PlaylistType::Event;
    playlist.target_duration = playlist.target_duration.max(configured);
    playlist.ended = false;
    playlist.validate()?;
    Ok(playlist)
}

/// RFC 8216bis §4.4.3.6: one entry per keyframe, a byte range of the segment
/// that holds it, lasting until the next keyframe.
fn i_frames(
    config: &PackagerConfig,
    r: &Rendition,
) -> Result<(MediaPlaylist, Vec<Span>), PackageError> {
    let relative = |pts: i64| u64::try_from(pts.saturating_sub(r.start_pts)).unwrap_or(0);
    let keyframes: Vec<Keyframe> = r
        .keyframes
        .iter()
        .map(|k| Keyframe {
            uri: config.naming.segment(k.number),
            byte_range: k.range,
            time: relative(k.pts),
        })
        .collect();
    let end = relative(r.end_pts);
    let sized = keyframes
        .iter()
        .enumerate()
        .map(|(i, k)| Span {
            bytes: k.byte_range.length,
            ticks: keyframes.get(i + 1).map_or(end, |n| n.time) - k.time,
        })
        .collect();
    let map = Map {
        uri: INIT.to_owned(),
        byte_range: None,
    };
    let mut playlist = i_frame_playlist(map, r.track.timescale, &keyframes, end)?;
    playlist.media_sequence = r.segments.first().map_or(1, |s| s.number);
    Ok((playlist, sized))
}

fn multivariant(renditions: &[&Rendition], rates: &[Rates]) -> MultivariantPlaylist {
    let listed: Vec<Listed<'_>> = renditions
        .iter()
        .zip(rates)
        .map(|(r, rate)| Listed {
            name: &r.name,
            track: &r.track,
            peak_bps: rate.peak,
            average_bps: rate.average,
            frame_rate: r.durations.frame_rate(r.track.timescale),
            i_frames: rate
                .i_frames
                .map(|(peak, average)| (I_FRAME_PLAYLIST, peak, average)),
        })
        .collect();
    ladder_playlist(&listed, MEDIA_PLAYLIST)
}

/// ISO/IEC 23009-1 §5.3.9.6: `S@t` is the segment's earliest presentation
/// time and `S@d` the distance to the next one. Presentation times are the
/// track's after its edit list (ISO/IEC 14496-12 §8.6.6), as players see
/// them: browsers' MSE applies a video track's edit list itself (seen in
/// Chromium: with a `presentationTimeOffset` restating the edit, dash.js
/// and Shaka shifted B-frame video twice, 67 ms ahead of its audio), so
/// the offset is not repeated in the MPD. The first segment of a track
/// whose edit skips into it (AAC priming) starts at 0. When presentation
/// times are not usable (negative, or not increasing from segment to
/// segment), decode times tile the same timeline.
fn timeline(r: &Rendition) -> Vec<TimelineSegment> {
    let edit = i64::try_from(r.track.presentation_offset).unwrap_or(i64::MAX);
    let shown = |pts: i64| pts.saturating_sub(edit).max(0);
    let starts: Option<Vec<u64>> = r
        .segments
        .iter()
        .map(|s| {
            u64::try_from(s.earliest_pts)
                .ok()
                .map(|_| shown(s.earliest_pts) as u64)
        })
        .collect();
    let end = u64::try_from(r.end_pts)
        .ok()
        .map(|_| shown(r.end_pts) as u64);
    if let (Some(starts), Some(end)) = (starts, end) {
        let tiled: Option<Vec<TimelineSegment>> = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let next = starts.get(i + 1).copied().unwrap_or(end);
                let duration = next.checked_sub(start).filter(|&d| d > 0)?;
                Some(TimelineSegment { start, duration })
            })
            .collect();
        if let Some(tiled) = tiled {
            return tiled;
        }
    }
    r.segments
        .iter()
        .map(|s| TimelineSegment {
            start: s.start_dts,
            duration: s.duration,
        })
        .collect()
}

fn mpd(
    config: &PackagerConfig,
    renditions: &[&Rendition],
    rates: &[Rates],
    min_buffer: MediaDuration,
    presentation_duration: MediaDuration,
    publish_time: UnixMillis,
) -> Mpd {
    // One AdaptationSet per media type; a rendition whose timeline differs
    // from its type's set (another timescale, other cuts) gets its own.
    let mut sets = AdaptationSets::new(Grouping::SameTemplate);
    for (r, rate) in renditions.iter().zip(rates) {
        let timescale = r.track.timescale;
        let frame_rate = match r.kind() {
            MediaKind::Video => r.durations.frame_rate(timescale),
            MediaKind::Audio => None,
        };
        let representation = Representation::of_track(&r.name, &r.track, rate.dash, frame_rate);
        let lang = (r.kind() == MediaKind::Audio && r.track.language != "und")
            .then(|| r.track.language.clone());
        let template = SegmentTemplate {
            timescale,
            initialization: format!("$RepresentationID$/{INIT}"),
            media: config.naming.dash_media_template(),
            start_number: r.segments.first().map_or(1, |s| s.number),
            // Segment times are after the header's edit list already.
            presentation_time_offset: 0,
            addressing: Addressing::Timeline(timeline(r)),
            availability_time_offset: None,
            availability_time_complete: None,
        };
        let id = u32::try_from(sets.len()).unwrap_or(u32::MAX);
        sets.add(id, r.kind(), lang, template, representation);
    }
    Mpd {
        id: config.presentation_id.clone(),
        presentation: Presentation::Static {
            media_presentation_duration: presentation_duration,
        },
        availability_start_time: None,
        publish_time,
        min_buffer_time: min_buffer,
        max_segment_duration: Some(min_buffer),
        low_latency: false,
        service_description: None,
        utc_timing: None,
        periods: vec![Period {
            id: "0".to_owned(),
            start: MediaDuration::from_secs(0),
            adaptation_sets: sets.finish(),
        }],
    }
}

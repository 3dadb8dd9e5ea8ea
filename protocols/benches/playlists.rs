//! Rendering cost of the playlists a busy live stream serves on every
//! blocking reload: a one-hour LL-HLS DVR playlist (1800 segments of 2 s,
//! parts of 1/3 s on the last few), its delta update, and a DASH MPD with a
//! one-hour SegmentTimeline.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use streamforge_protocols::dash::{
    AdaptationSet, Addressing, Dynamic, Mpd, Period, Presentation, Representation, SegmentTemplate,
    ServiceDescription, TimelineSegment, UtcScheme, UtcTiming, render_mpd,
};
use streamforge_protocols::hls::{
    ByteRange, LivePlaylist, LivePlaylistConfig, Map, MediaDuration, NewPart, NewSegment,
    PreloadHint, RenderOptions, RenditionReport, SkipRequest, UnixMillis, Window,
};
use streamforge_protocols::media::MediaKind;

const TS: u32 = 90_000;
const PART: u64 = 30_000;
const SEGMENTS: u64 = 1800;
const START: i64 = 1_793_698_867_250;

fn hour_of_ll_hls() -> Option<LivePlaylist> {
    let config = LivePlaylistConfig::new(Window::Event, 2, TS)
        .with_parts(PART)
        .with_delta_updates();
    let map = Map {
        uri: "init.mp4".into(),
        byte_range: None,
    };
    let hint = |uri: String| PreloadHint {
        uri,
        byte_range_start: None,
    };
    let mut pl = LivePlaylist::new(config, Some(map), Some(hint("seg0.0.m4s".into()))).ok()?;
    for msn in 0..SEGMENTS {
        for part in 0..6u64 {
            let next = if part == 5 {
                format!("seg{}.0.m4s", msn + 1)
            } else {
                format!("seg{msn}.{}.m4s", part + 1)
            };
            pl.push_part(
                NewPart {
                    uri: format!("seg{msn}.{part}.m4s"),
                    duration: PART,
                    independent: part == 0,
                    byte_range: None,
                },
                hint(next),
            )
            .ok()?;
        }
        pl.close_segment(NewSegment {
            uri: format!("seg{msn}.m4s"),
            duration: 6 * PART,
            byte_range: Some(ByteRange {
                length: 1_500_000,
                offset: 0,
            }),
            program_date_time: Some(UnixMillis(START + 2000 * msn as i64)),
        })
        .ok()?;
    }
    Some(pl)
}

fn hour_of_dash() -> Mpd {
    let timeline = |duration: u64| -> Vec<TimelineSegment> {
        let mut start = 0;
        (0..SEGMENTS)
            .map(|i| {
                // Alternate durations so the timeline does not collapse into
                // a single S@r run.
                let segment = TimelineSegment {
                    start,
                    duration: duration + (i % 2),
                };
                start += segment.duration;
                segment
            })
            .collect()
    };
    let set = |id, kind, duration| AdaptationSet {
        id,
        kind,
        lang: None,
        segment_template: SegmentTemplate {
            timescale: TS,
            initialization: "$RepresentationID$/init.mp4".into(),
            media: "$RepresentationID$/$Time$.m4s".into(),
            start_number: 0,
            presentation_time_offset: 0,
            addressing: Addressing::Timeline(timeline(duration)),
            availability_time_offset: MediaDuration::new(3, 2),
            availability_time_complete: Some(false),
        },
        representations: vec![Representation {
            id: format!("r{id}"),
            codecs: "avc1.640028".into(),
            bandwidth: 6_000_000,
            width: Some(1920),
            height: Some(1080),
            frame_rate: None,
            audio_sampling_rate: None,
            audio_channels: None,
            segment_template: None,
        }],
    };
    Mpd {
        id: "bench".into(),
        presentation: Presentation::Dynamic(Dynamic {
            minimum_update_period: MediaDuration::from_secs(2),
            time_shift_buffer_depth: Some(MediaDuration::from_secs(3600)),
            suggested_presentation_delay: Some(MediaDuration::from_secs(3)),
        }),
        availability_start_time: Some(UnixMillis(START)),
        publish_time: UnixMillis(START + 3_600_000),
        min_buffer_time: MediaDuration::from_secs(1),
        max_segment_duration: Some(MediaDuration::from_secs(2)),
        low_latency: true,
        service_description: Some(ServiceDescription {
            latency_target_ms: 3000,
            latency_min_ms: None,
            latency_max_ms: None,
            playback_rate_permille: Some((960, 1040)),
        }),
        utc_timing: Some(UtcTiming {
            scheme: UtcScheme::HttpIso,
            value: "https://example.com/time".into(),
        }),
        periods: vec![Period {
            id: "0".into(),
            start: MediaDuration::from_secs(0),
            adaptation_sets: vec![
                set(0, MediaKind::Video, 180_000),
                set(1, MediaKind::Audio, 179_999),
            ],
        }],
    }
}

fn bench(c: &mut Criterion) {
    let Some(pl) = hour_of_ll_hls() else {
        eprintln!("could not build the LL-HLS playlist");
        return;
    };
    let reports = [RenditionReport {
        uri: "../360p/index.m3u8".into(),
        last_msn: SEGMENTS,
        last_part: Some(0),
    }];
    c.bench_function("hls_ll_event_1h_full", |b| {
        b.iter(|| {
            black_box(pl.render(&RenderOptions {
                skip: None,
                rendition_reports: &reports,
            }))
        })
    });
    c.bench_function("hls_ll_event_1h_delta", |b| {
        b.iter(|| {
            black_box(pl.render(&RenderOptions {
                skip: Some(SkipRequest::Yes),
                rendition_reports: &reports,
            }))
        })
    });
    c.bench_function("hls_is_available", |b| {
        b.iter(|| black_box(pl.is_available(black_box(SEGMENTS), Some(3))))
    });
    let mpd = hour_of_dash();
    if let Err(e) = render_mpd(&mpd) {
        eprintln!("the benchmark MPD is invalid: {e}");
        return;
    }
    c.bench_function("dash_ll_timeline_1h", |b| {
        b.iter(|| black_box(render_mpd(&mpd)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

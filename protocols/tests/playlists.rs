//! Golden-file tests for the HLS and DASH writers, and round trips through
//! independent parsers (m3u8-rs for HLS, roxmltree for the MPD).
//!
//! Regenerate the golden files after an intended change with
//! `STREAMFORGE_BLESS=1 cargo test -p streamforge-protocols --test playlists`
//! and review the diff.

use std::path::PathBuf;
use std::sync::Arc;

use streamforge_protocols::dash::{
    self, AdaptationSet, Addressing, Dynamic, Mpd, Period, Presentation, Representation,
    SegmentTemplate, ServiceDescription, TimelineSegment, UtcScheme, UtcTiming,
};
use streamforge_protocols::hls::{
    self, AudioRendition, ByteRange, FrameRate, IFrameVariant, Keyframe, LivePlaylist,
    LivePlaylistConfig, Map, MediaDuration, MediaPlaylist, MultivariantPlaylist, NewPart,
    NewSegment, PlaylistType, PreloadHint, RenderOptions, RenditionReport, Resolution, Segment,
    SkipRequest, UnixMillis, Variant, Window,
};
use streamforge_protocols::media::MediaKind;

/// 2026-11-03T09:41:07.250Z
const START: i64 = 1_793_698_867_250;
const TS: u32 = 90_000;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("STREAMFORGE_BLESS").is_some() {
        if let Err(e) = std::fs::write(&path, actual) {
            panic!("writing {}: {e}", path.display());
        }
        return;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("{}: {e} (run with STREAMFORGE_BLESS=1)", path.display()),
    };
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn dur(ticks: u64, timescale: u32) -> MediaDuration {
    MediaDuration::new(ticks, timescale).unwrap_or(MediaDuration::from_secs(0))
}

fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(pl)) => pl,
        other => panic!("not a media playlist: {other:?}"),
    }
}

fn init_map() -> Option<Arc<Map>> {
    Some(Arc::new(Map {
        uri: "init.mp4".into(),
        byte_range: None,
    }))
}

fn segment(uri: &str, ticks: u64) -> Segment {
    Segment {
        uri: uri.into(),
        duration: dur(ticks, TS),
        byte_range: None,
        discontinuity: false,
        program_date_time: None,
        map: init_map(),
        parts: Vec::new(),
    }
}

#[test]
fn hls_vod() {
    let mut pl = MediaPlaylist::new(PlaylistType::Vod, 6);
    pl.independent_segments = true;
    pl.segments.push_back(segment("seg0.m4s", 540_540));
    pl.segments.push_back(segment("seg1.m4s", 540_540));
    pl.segments.push_back(segment("seg2.m4s", 270_270));
    assert_eq!(pl.validate(), Ok(()));
    let text = hls::render_media(&pl, &RenderOptions::default());
    golden("hls_vod.m3u8", &text);

    let parsed = parse_media(&text);
    assert_eq!(parsed.version, Some(6));
    assert_eq!(parsed.target_duration, 6);
    assert!(parsed.end_list);
    assert_eq!(parsed.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    let uris: Vec<&str> = parsed.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["seg0.m4s", "seg1.m4s", "seg2.m4s"]);
    assert!((parsed.segments[0].duration - 6.006).abs() < 1e-4);
    assert_eq!(
        parsed.segments[0].map.as_ref().map(|m| m.uri.as_str()),
        Some("init.mp4")
    );
}

fn plain_live(window: Window) -> LivePlaylist {
    let config = LivePlaylistConfig::new(window, 4, TS);
    let map = Map {
        uri: "init0.mp4".into(),
        byte_range: None,
    };
    match LivePlaylist::new(config, Some(map), None) {
        Ok(pl) => pl,
        Err(e) => panic!("{e}"),
    }
}

fn close(pl: &mut LivePlaylist, ticks: u64, pdt: i64) {
    let msn = pl.playlist().next_msn();
    let closed = pl.close_segment(NewSegment {
        uri: format!("seg{msn}.m4s"),
        duration: ticks,
        byte_range: None,
        program_date_time: Some(UnixMillis(pdt)),
    });
    assert!(closed.is_ok(), "{closed:?}");
}

#[test]
fn hls_event_with_discontinuity() {
    let mut pl = plain_live(Window::Event);
    let mut t = START;
    for _ in 0..3 {
        close(&mut pl, 360_000, t);
        t += 4000;
    }
    // Publisher reconnected with a new encoder configuration.
    let new_map = Map {
        uri: "init1.mp4".into(),
        byte_range: Some(ByteRange {
            length: 812,
            offset: 0,
        }),
    };
    assert_eq!(pl.discontinuity(Some(new_map)), Ok(()));
    t += 1500;
    close(&mut pl, 359_100, t);
    close(&mut pl, 180_000, t + 3990);
    let text = pl.render(&RenderOptions::default());
    golden("hls_event.m3u8", &text);

    let parsed = parse_media(&text);
    assert_eq!(
        parsed.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Event)
    );
    assert!(!parsed.end_list);
    assert_eq!(parsed.segments.len(), 5);
    assert!(parsed.segments[3].discontinuity);
    assert_eq!(
        parsed.segments[3].map.as_ref().map(|m| m.uri.as_str()),
        Some("init1.mp4")
    );
    let pdt = parsed.segments[0]
        .program_date_time
        .map(|d| d.timestamp_millis());
    assert_eq!(pdt, Some(START));
}

#[test]
fn hls_live_sliding_window() {
    let mut pl = plain_live(Window::Sliding { segments: 4 });
    let mut t = START;
    for n in 0..10 {
        if n == 3 || n == 7 {
            assert_eq!(pl.discontinuity(None), Ok(()));
        }
        close(&mut pl, 360_000, t);
        t += 4000;
    }
    let text = pl.render(&RenderOptions::default());
    golden("hls_live_window.m3u8", &text);

    let parsed = parse_media(&text);
    assert_eq!(parsed.media_sequence, 6);
    // The discontinuity before segment 3 slid out; the one before 7 is listed.
    assert_eq!(parsed.discontinuity_sequence, 1);
    let disc: Vec<bool> = parsed.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(disc, [false, true, false, false]);
    assert_eq!(parsed.playlist_type, None);
}

const PART: u64 = 30_000;

fn ll_playlist() -> LivePlaylist {
    let config = LivePlaylistConfig::new(Window::Sliding { segments: 8 }, 2, TS)
        .with_parts(PART)
        .with_delta_updates();
    let map = Map {
        uri: "init.mp4".into(),
        byte_range: None,
    };
    let hint = PreloadHint {
        uri: "seg0.m4s".into(),
        byte_range_start: Some(0),
    };
    let mut pl = match LivePlaylist::new(config, Some(map), Some(hint)) {
        Ok(pl) => pl,
        Err(e) => panic!("{e}"),
    };
    let mut t = START;
    // Parts are byte ranges of the segment file they build up.
    for _ in 0..9 {
        let msn = pl.playlist().next_msn();
        let mut offset = 0;
        for index in 0..6 {
            let length = if index == 0 { 24_000 } else { 9_000 };
            let next_uri = if index == 5 {
                format!("seg{}.m4s", msn + 1)
            } else {
                format!("seg{msn}.m4s")
            };
            let next_start = if index == 5 { 0 } else { offset + length };
            let pushed = pl.push_part(
                NewPart {
                    uri: format!("seg{msn}.m4s"),
                    duration: PART,
                    independent: index == 0,
                    byte_range: Some(ByteRange { length, offset }),
                },
                PreloadHint {
                    uri: next_uri,
                    byte_range_start: Some(next_start),
                },
            );
            assert!(pushed.is_ok(), "{pushed:?}");
            offset += length;
        }
        let closed = pl.close_segment(NewSegment {
            uri: format!("seg{msn}.m4s"),
            duration: 6 * PART,
            byte_range: None,
            program_date_time: Some(UnixMillis(t)),
        });
        assert!(closed.is_ok(), "{closed:?}");
        t += 2000;
    }
    // Two parts of the segment in progress.
    for (index, (length, offset)) in [(24_000, 0), (9_000, 24_000)].into_iter().enumerate() {
        let pushed = pl.push_part(
            NewPart {
                uri: "seg9.m4s".into(),
                duration: PART,
                independent: index == 0,
                byte_range: Some(ByteRange { length, offset }),
            },
            PreloadHint {
                uri: "seg9.m4s".into(),
                byte_range_start: Some(offset + length),
            },
        );
        assert!(pushed.is_ok(), "{pushed:?}");
    }
    pl
}

fn reports() -> Vec<RenditionReport> {
    vec![
        RenditionReport {
            uri: "../360p/index.m3u8".into(),
            last_msn: 9,
            last_part: Some(1),
        },
        RenditionReport {
            uri: "../audio/index.m3u8".into(),
            last_msn: 9,
            last_part: Some(2),
        },
    ]
}

#[test]
fn hls_low_latency() {
    let pl = ll_playlist();
    assert_eq!(pl.playlist().validate(), Ok(()));
    let reports = reports();
    let text = pl.render(&RenderOptions {
        skip: None,
        rendition_reports: &reports,
    });
    golden("hls_ll.m3u8", &text);
    assert!(
        text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg9.m4s\",BYTERANGE-START=33000\n")
    );
    // Parts listed only within three target durations of the end.
    assert_eq!(text.matches("#EXT-X-PART:").count(), 3 * 6 + 2);

    // m3u8-rs ignores the LL-HLS tags; the segment list must still parse.
    let parsed = parse_media(&text);
    assert_eq!(parsed.media_sequence, 1);
    assert_eq!(parsed.segments.len(), 8);
    assert_eq!(
        parsed.segments.last().map(|s| s.uri.as_str()),
        Some("seg8.m4s")
    );
    assert_eq!(
        pl.rendition_report("../720p/index.m3u8"),
        Some(RenditionReport {
            uri: "../720p/index.m3u8".into(),
            last_msn: 9,
            last_part: Some(1),
        })
    );
}

#[test]
fn hls_delta_update() {
    let pl = ll_playlist();
    let reports = reports();
    let text = pl.render(&RenderOptions {
        skip: Some(SkipRequest::Yes),
        rendition_reports: &reports,
    });
    golden("hls_ll_delta.m3u8", &text);
    // CAN-SKIP-UNTIL = 12 s over 8 × 2 s segments: the first two are skipped
    // and the remaining six cover exactly 12 s.
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
    assert!(text.contains("#EXT-X-VERSION:9\n"));
    assert!(!text.contains("seg1.m4s\n") && !text.contains("seg2.m4s\n"));
    assert_eq!(hls::skipped_segments(pl.playlist()), 2);
    // A discontinuity is never skipped: its segment and all after it stay
    // listed, so the client counts it.
    let mut resumed = pl.playlist().clone();
    resumed.segments[1].discontinuity = true;
    assert_eq!(hls::skipped_segments(&resumed), 1);
    resumed.segments[0].discontinuity = true;
    assert_eq!(hls::skipped_segments(&resumed), 0);
    let v2 = pl.render(&RenderOptions {
        skip: Some(SkipRequest::V2),
        rendition_reports: &reports,
    });
    assert_eq!(v2, text);

    // A playlist without CAN-SKIP-UNTIL ignores the request.
    let plain = plain_live(Window::Event);
    let full = plain.render(&RenderOptions::default());
    let asked = plain.render(&RenderOptions {
        skip: Some(SkipRequest::Yes),
        rendition_reports: &[],
    });
    assert_eq!(full, asked);
}

#[test]
fn hls_ended_low_latency() {
    let mut pl = ll_playlist();
    assert!(pl.end().is_err(), "parts of segment 9 are still open");
    for index in 2..6u64 {
        let pushed = pl.push_part(
            NewPart {
                uri: "seg9.m4s".into(),
                duration: PART,
                independent: false,
                byte_range: Some(ByteRange {
                    length: 9_000,
                    offset: 24_000 + (index - 1) * 9_000,
                }),
            },
            PreloadHint {
                uri: "seg10.m4s".into(),
                byte_range_start: Some(0),
            },
        );
        assert!(pushed.is_ok());
    }
    let closed = pl.close_segment(NewSegment {
        uri: "seg9.m4s".into(),
        duration: 6 * PART,
        byte_range: None,
        program_date_time: None,
    });
    assert!(closed.is_ok());
    assert_eq!(pl.end(), Ok(()));
    let text = pl.render(&RenderOptions::default());
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(parse_media(&text).end_list);
}

#[test]
fn hls_multivariant() {
    let pl = MultivariantPlaylist {
        independent_segments: true,
        audio: vec![
            AudioRendition {
                group_id: "aac".into(),
                name: "English".into(),
                language: Some("en".into()),
                default: true,
                autoselect: true,
                channels: Some(2),
                uri: Some("audio_en/index.m3u8".into()),
            },
            AudioRendition {
                group_id: "aac".into(),
                name: "Français".into(),
                language: Some("fr".into()),
                default: false,
                autoselect: true,
                channels: Some(6),
                uri: Some("audio_fr/index.m3u8".into()),
            },
        ],
        variants: vec![
            Variant {
                uri: "1080p/index.m3u8".into(),
                bandwidth: 6_200_000,
                average_bandwidth: Some(5_100_000),
                codecs: "avc1.640028,mp4a.40.2".into(),
                resolution: Some(Resolution {
                    width: 1920,
                    height: 1080,
                }),
                frame_rate: FrameRate::new(30_000, 1001),
                audio_group: Some("aac".into()),
            },
            Variant {
                uri: "360p/index.m3u8".into(),
                bandwidth: 900_000,
                average_bandwidth: Some(760_000),
                codecs: "avc1.64001e,mp4a.40.2".into(),
                resolution: Some(Resolution {
                    width: 640,
                    height: 360,
                }),
                frame_rate: FrameRate::new(30, 1),
                audio_group: Some("aac".into()),
            },
        ],
        i_frame_variants: vec![IFrameVariant {
            uri: "1080p/iframes.m3u8".into(),
            bandwidth: 420_000,
            average_bandwidth: None,
            codecs: "avc1.640028".into(),
            resolution: Some(Resolution {
                width: 1920,
                height: 1080,
            }),
        }],
    };
    let text = match hls::render_multivariant(&pl) {
        Ok(text) => text,
        Err(e) => panic!("{e}"),
    };
    golden("hls_multivariant.m3u8", &text);

    let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(pl)) => pl,
        other => panic!("not a multivariant playlist: {other:?}"),
    };
    assert!(parsed.independent_segments);
    assert_eq!(parsed.alternatives.len(), 2);
    assert_eq!(parsed.alternatives[1].channels.as_deref(), Some("6"));
    let streams: Vec<(bool, &str, u64)> = parsed
        .variants
        .iter()
        .map(|v| (v.is_i_frame, v.uri.as_str(), v.bandwidth))
        .collect();
    assert_eq!(
        streams,
        [
            (false, "1080p/index.m3u8", 6_200_000),
            (false, "360p/index.m3u8", 900_000),
            (true, "1080p/iframes.m3u8", 420_000),
        ]
    );
    assert_eq!(parsed.variants[0].frame_rate, Some(29.97));
    assert_eq!(parsed.variants[0].audio.as_deref(), Some("aac"));
}

#[test]
fn hls_i_frames() {
    let keyframes: Vec<Keyframe> = (0..5u64)
        .map(|i| Keyframe {
            uri: format!("seg{}.m4s", i / 2),
            byte_range: ByteRange {
                length: 40_000 + i * 10,
                offset: if i % 2 == 0 { 0 } else { 350_000 },
            },
            time: i * 180_180,
        })
        .collect();
    let map = Map {
        uri: "init.mp4".into(),
        byte_range: None,
    };
    let pl = match hls::i_frame_playlist(map, TS, &keyframes, 5 * 180_180 - 90_090) {
        Ok(pl) => pl,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(pl.validate(), Ok(()));
    let text = hls::render_media(&pl, &RenderOptions::default());
    golden("hls_iframe.m3u8", &text);

    let parsed = parse_media(&text);
    assert!(parsed.i_frames_only);
    assert_eq!(parsed.version, Some(5));
    assert_eq!(parsed.segments.len(), 5);
    let ranges: Vec<(u64, Option<u64>)> = parsed
        .segments
        .iter()
        .filter_map(|s| s.byte_range.as_ref().map(|r| (r.length, r.offset)))
        .collect();
    assert_eq!(ranges[1], (40_010, Some(350_000)));
    assert!((parsed.segments[4].duration - 1.001).abs() < 1e-4);
}

// ---- DASH ----

fn video_set(addressing: Addressing, media: &str) -> AdaptationSet {
    AdaptationSet {
        id: 0,
        kind: MediaKind::Video,
        lang: None,
        segment_template: SegmentTemplate {
            timescale: TS,
            initialization: "$RepresentationID$/init.mp4".into(),
            media: media.into(),
            start_number: 0,
            presentation_time_offset: 0,
            addressing,
            availability_time_offset: None,
            availability_time_complete: None,
        },
        representations: vec![
            Representation {
                id: "1080p".into(),
                codecs: "avc1.640028".into(),
                bandwidth: 6_200_000,
                width: Some(1920),
                height: Some(1080),
                frame_rate: FrameRate::new(30_000, 1001),
                audio_sampling_rate: None,
                audio_channels: None,
                segment_template: None,
            },
            Representation {
                id: "360p".into(),
                codecs: "avc1.64001e".into(),
                bandwidth: 900_000,
                width: Some(640),
                height: Some(360),
                frame_rate: FrameRate::new(30, 1),
                audio_sampling_rate: None,
                audio_channels: None,
                segment_template: None,
            },
        ],
    }
}

fn audio_set(addressing: Addressing, media: &str) -> AdaptationSet {
    AdaptationSet {
        id: 1,
        kind: MediaKind::Audio,
        lang: Some("en".into()),
        segment_template: SegmentTemplate {
            timescale: 48_000,
            initialization: "$RepresentationID$/init.mp4".into(),
            media: media.into(),
            start_number: 0,
            presentation_time_offset: 0,
            addressing,
            availability_time_offset: None,
            availability_time_complete: None,
        },
        representations: vec![Representation {
            id: "audio_en".into(),
            codecs: "mp4a.40.2".into(),
            bandwidth: 128_000,
            width: None,
            height: None,
            frame_rate: None,
            audio_sampling_rate: Some(48_000),
            audio_channels: Some(2),
            segment_template: None,
        }],
    }
}

fn timeline(start: u64, count: u64, duration: u64) -> Vec<TimelineSegment> {
    (0..count)
        .map(|i| TimelineSegment {
            start: start + i * duration,
            duration,
        })
        .collect()
}

fn render(mpd: &Mpd) -> String {
    match dash::render_mpd(mpd) {
        Ok(text) => text,
        Err(e) => panic!("{e}"),
    }
}

/// Parses the MPD with an independent XML parser and returns the root.
fn check_xml(text: &str, expect_type: &str) {
    let doc = match roxmltree::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => panic!("MPD is not well-formed XML: {e}"),
    };
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "MPD");
    assert_eq!(
        root.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    assert_eq!(root.attribute("type"), Some(expect_type));
    // Every MPD has @id and publishTime; dynamic ones also
    // availabilityStartTime and UTCTiming.
    assert!(root.attribute("id").is_some());
    assert!(root.attribute("publishTime").is_some());
    if expect_type == "dynamic" {
        assert!(root.attribute("availabilityStartTime").is_some());
        assert!(
            root.children()
                .any(|n| n.has_tag_name(("urn:mpeg:dash:schema:mpd:2011", "UTCTiming")))
        );
    } else {
        assert!(root.attribute("mediaPresentationDuration").is_some());
    }
}

#[test]
fn dash_vod() {
    let mpd = Mpd {
        id: "asset-7f3a".into(),
        presentation: Presentation::Static {
            media_presentation_duration: dur(1_350_000, TS),
        },
        availability_start_time: None,
        publish_time: UnixMillis(START),
        min_buffer_time: MediaDuration::from_secs(2),
        max_segment_duration: Some(MediaDuration::from_secs(6)),
        low_latency: false,
        service_description: None,
        utc_timing: None,
        periods: vec![Period {
            id: "0".into(),
            start: MediaDuration::from_secs(0),
            adaptation_sets: vec![
                video_set(
                    Addressing::Duration(540_000),
                    "$RepresentationID$/$Number$.m4s",
                ),
                audio_set(
                    Addressing::Duration(288_000),
                    "$RepresentationID$/$Number$.m4s",
                ),
            ],
        }],
    };
    let text = render(&mpd);
    golden("dash_vod.mpd", &text);
    check_xml(&text, "static");
}

fn live_mpd(low_latency: bool) -> Mpd {
    // 10 minutes in: segments 0..299 of 2 s, the first 240 outside the
    // 2-minute time-shift buffer.
    let mut video = video_set(
        Addressing::Timeline(timeline(240 * 180_000, 60, 180_000)),
        "$RepresentationID$/$Time$.m4s",
    );
    video.segment_template.start_number = 240;
    let mut audio = audio_set(
        Addressing::Timeline({
            // AAC frames of 1024 samples do not divide 2 s: 93 or 94 frames.
            let mut t = 240 * 96_000;
            (0..60u64)
                .map(|i| {
                    let d = if i % 3 == 2 { 95_232 } else { 96_256 };
                    let s = TimelineSegment {
                        start: t,
                        duration: d,
                    };
                    t += d;
                    s
                })
                .collect()
        }),
        "$RepresentationID$/$Time$.m4s",
    );
    audio.segment_template.start_number = 240;
    if low_latency {
        for set in [&mut video, &mut audio] {
            // Chunks of 0.5 s: a 2 s segment is requestable 1.5 s early.
            set.segment_template.availability_time_offset = Some(dur(3, 2));
            set.segment_template.availability_time_complete = Some(false);
        }
    }
    Mpd {
        id: "live-cam1".into(),
        presentation: Presentation::Dynamic(Dynamic {
            minimum_update_period: MediaDuration::from_secs(2),
            time_shift_buffer_depth: Some(MediaDuration::from_secs(120)),
            suggested_presentation_delay: Some(if low_latency {
                MediaDuration::from_millis(3_500)
            } else {
                MediaDuration::from_secs(6)
            }),
        }),
        availability_start_time: Some(UnixMillis(START)),
        publish_time: UnixMillis(START + 600_000),
        min_buffer_time: MediaDuration::from_secs(if low_latency { 1 } else { 2 }),
        max_segment_duration: Some(MediaDuration::from_secs(2)),
        low_latency,
        service_description: low_latency.then_some(ServiceDescription {
            latency_target_ms: 3_500,
            latency_min_ms: Some(2_000),
            latency_max_ms: Some(6_000),
            playback_rate_permille: Some((960, 1040)),
        }),
        utc_timing: Some(UtcTiming {
            scheme: if low_latency {
                UtcScheme::HttpIso
            } else {
                UtcScheme::HttpXsDate
            },
            value: "https://media.example/api/time?fmt=iso&src=\"edge\"".into(),
        }),
        periods: vec![Period {
            id: "p0".into(),
            start: MediaDuration::from_secs(0),
            adaptation_sets: vec![video, audio],
        }],
    }
}

#[test]
fn dash_live() {
    let text = render(&live_mpd(false));
    golden("dash_live.mpd", &text);
    check_xml(&text, "dynamic");
}

#[test]
fn dash_low_latency() {
    let text = render(&live_mpd(true));
    golden("dash_ll.mpd", &text);
    check_xml(&text, "dynamic");
    let doc = match roxmltree::Document::parse(&text) {
        Ok(doc) => doc,
        Err(e) => panic!("{e}"),
    };
    let templates: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("SegmentTemplate"))
        .collect();
    assert_eq!(templates.len(), 2);
    for t in templates {
        assert_eq!(t.attribute("availabilityTimeComplete"), Some("false"));
        assert_eq!(t.attribute("availabilityTimeOffset"), Some("1.500"));
    }
    let utc = doc.descendants().find(|n| n.has_tag_name("UTCTiming"));
    assert_eq!(
        utc.and_then(|n| n.attribute("value")),
        Some("https://media.example/api/time?fmt=iso&src=\"edge\"")
    );
}

#[test]
fn dash_ended_live() {
    // The DVR window (the last 2 minutes) becomes the VOD presentation: its
    // first segment is presentation time zero.
    let mut mpd = live_mpd(true);
    for set in &mut mpd.periods[0].adaptation_sets {
        let t = &mut set.segment_template;
        if let Addressing::Timeline(segments) = &t.addressing {
            t.presentation_time_offset = segments.first().map_or(0, |s| s.start);
        }
    }
    mpd.end(MediaDuration::from_secs(120), UnixMillis(START + 601_000));
    let text = render(&mpd);
    golden("dash_ended.mpd", &text);
    check_xml(&text, "static");
    assert!(!text.contains("availabilityTimeComplete"));
    assert!(!text.contains("minimumUpdatePeriod"));
}

#[test]
fn dash_refuses_incomplete_live_mpd() {
    let mut mpd = live_mpd(false);
    mpd.utc_timing = None;
    assert_eq!(
        dash::render_mpd(&mpd),
        Err(dash::DashError::Missing("UTCTiming"))
    );
    let mut mpd = live_mpd(false);
    mpd.availability_start_time = None;
    assert_eq!(
        dash::render_mpd(&mpd),
        Err(dash::DashError::Missing("MPD@availabilityStartTime"))
    );
    let mut mpd = live_mpd(false);
    mpd.id.clear();
    assert_eq!(
        dash::render_mpd(&mpd),
        Err(dash::DashError::Missing("MPD@id"))
    );
    let mut mpd = live_mpd(false);
    mpd.periods[0].adaptation_sets[0].representations[0].id = "a b".into();
    assert!(matches!(
        dash::render_mpd(&mpd),
        Err(dash::DashError::InvalidRepresentationId(_))
    ));
    let mut mpd = live_mpd(false);
    mpd.periods[0].adaptation_sets[0].segment_template.media = "seg.m4s".into();
    assert!(matches!(
        dash::render_mpd(&mpd),
        Err(dash::DashError::InvalidTemplate {
            adaptation_set: 0,
            ..
        })
    ));
}

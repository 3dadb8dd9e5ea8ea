//! The live packager on a synthetic RTMP-like stream: millisecond
//! timestamps, 25 fps video with a keyframe every 2 s, 48 kHz AAC.

use bytes::Bytes;

use super::*;
use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;
const START: UnixMillis = UnixMillis(1_793_698_867_250);

fn tracks() -> Vec<Track> {
    let avc = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
    let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
    vec![
        Track::new(VIDEO, 1000, CodecConfig::H264(avc)),
        Track::new(AUDIO, 1000, CodecConfig::Aac(asc)),
    ]
}

/// `seconds` of interleaved samples starting at RTMP time `offset` ms, with
/// a keyframe every `gop` frames.
fn samples(seconds: i64, offset: i64, gop: i64) -> Vec<Sample> {
    let video = (0..seconds * 25).map(|i| Sample {
        track: VIDEO,
        dts: offset + i * 40,
        cts_offset: 0,
        duration: 40,
        keyframe: i % gop == 0,
        data: Bytes::from(vec![0x11; if i % gop == 0 { 4000 } else { 800 }]),
    });
    let audio = (0..seconds * 48_000 / 1024).map(|i| Sample {
        track: AUDIO,
        dts: offset + i * 1024 * 1000 / 48_000,
        cts_offset: 0,
        duration: 21,
        keyframe: true,
        data: Bytes::from(vec![0x22; 180]),
    });
    let mut all: Vec<Sample> = video.chain(audio).collect();
    all.sort_by_key(|s| s.dts);
    all
}

fn run(seconds: i64, gop: i64) -> (LivePackager, Vec<LiveOutput>) {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let mut out = Vec::new();
    for s in samples(seconds, 5_000, gop) {
        p.push(s).unwrap();
        while let Some(o) = p.poll_output() {
            out.push(o);
        }
    }
    (p, out)
}

fn ready<T>(reply: Reply<T>) -> T {
    match reply {
        Reply::Ready(v) => v,
        Reply::Wait => panic!("expected Ready, got Wait"),
        Reply::NotFound => panic!("expected Ready, got NotFound"),
        Reply::BadRequest(why) => panic!("expected Ready, got BadRequest({why})"),
    }
}

fn query(msn: Option<u64>, part: Option<u32>) -> PlaylistQuery {
    PlaylistQuery {
        msn,
        part,
        skip: None,
    }
}

#[test]
fn parts_and_segments_come_out_in_order_with_ll_hls_playlists() {
    let (p, out) = run(9, 50);
    let video_segments: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            LiveOutput::Segment { rendition: 0, msn } => Some(*msn),
            _ => None,
        })
        .collect();
    // 9 s with a keyframe every 2 s: segments 1..=4 closed, 5 in progress.
    assert_eq!(video_segments, vec![1, 2, 3, 4]);
    let parts_of_1 = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                LiveOutput::Part {
                    rendition: 0,
                    msn: 1,
                    ..
                }
            )
        })
        .count();
    // 2 s of 40 ms frames cut at ≤ 333 ms: 8 frames (320 ms) per part.
    assert_eq!(parts_of_1, 7);

    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-PART-INF:PART-TARGET=0.333"),
        "{playlist}"
    );
    assert!(playlist.contains("CAN-BLOCK-RELOAD=YES"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init-1-0.mp4\""),
        "{playlist}"
    );
    assert!(playlist.contains("\n1.m4s\n"), "{playlist}");
    assert!(playlist.contains("URI=\"5.0.m4s\""), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"5."),
        "{playlist}"
    );
    assert!(
        playlist.contains("#EXT-X-RENDITION-REPORT:URI=\"../a1/media.m3u8\""),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-03T09:41:07.250Z"));

    // A segment's bytes are its parts' bytes; each part is a CMAF chunk.
    let (parts, complete) = ready(p.segment_parts("v1", 2, 0));
    assert!(complete);
    assert_eq!(&parts[0][4..8], b"styp");
    assert!(parts.iter().skip(1).all(|b| &b[4..8] == b"moof"));
    assert_eq!(ready(p.part("v1", 2, 3)), parts[3]);
    assert!(&ready(p.init("v1").map_or(Reply::NotFound, Reply::Ready))[4..8] == b"ftyp");
}

#[test]
fn blocking_reload_and_preload_hint_answers() {
    let (p, _) = run(9, 50);
    // Listed: answer now.
    assert!(matches!(
        p.media_playlist("v1", &query(Some(3), None)),
        Reply::Ready(_)
    ));
    assert!(matches!(
        p.media_playlist("v1", &query(Some(5), Some(0))),
        Reply::Ready(_)
    ));
    // The next segment, and the part after the newest: hold.
    assert_eq!(p.media_playlist("v1", &query(Some(5), None)), Reply::Wait);
    assert_eq!(
        p.media_playlist("v1", &query(Some(6), Some(0))),
        Reply::Wait
    );
    // Far ahead: 400.
    assert!(matches!(
        p.media_playlist("v1", &query(Some(40), None)),
        Reply::BadRequest(_)
    ));
    assert_eq!(p.media_playlist("v9", &query(None, None)), Reply::NotFound);

    // The in-progress segment is served as far as it goes.
    let (so_far, complete) = ready(p.segment_parts("v1", 5, 0));
    assert!(!complete);
    assert!(!so_far.is_empty());
    let next_part = u32::try_from(so_far.len()).unwrap();
    assert_eq!(p.part("v1", 5, next_part), Reply::Wait);
    assert_eq!(p.part("v1", 6, 0), Reply::Wait);
    assert_eq!(p.segment_parts("v1", 6, 0), Reply::Wait);
    assert_eq!(p.part("v1", 9, 0), Reply::NotFound);
}

#[test]
fn window_slides_and_old_segments_stay_fetchable_for_a_while() {
    let (p, _) = run(40, 50);
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    // 19 complete segments; six listed.
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:14"), "{playlist}");
    assert!(matches!(p.segment_parts("v1", 10, 0), Reply::Ready(_)));
    assert_eq!(p.segment_parts("v1", 2, 0), Reply::NotFound);
    // Parts older than three target durations leave the playlist.
    assert!(!playlist.contains("\"14.0.m4s\""), "{playlist}");
    assert!(playlist.contains("#EXT-X-SKIP") || !playlist.contains("_HLS_skip"));
    let delta = ready(p.media_playlist(
        "v1",
        &PlaylistQuery {
            msn: None,
            part: None,
            skip: Some(crate::hls::SkipRequest::Yes),
        },
    ));
    assert!(delta.len() <= playlist.len());
}

#[test]
fn multivariant_and_dynamic_mpd_then_ended() {
    let (mut p, _) = run(9, 50);
    let master = ready(p.multivariant().unwrap());
    assert!(
        master.contains("CODECS=\"avc1.64001f,mp4a.40.2\""),
        "{master}"
    );
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(master.contains("FRAME-RATE=25.000"), "{master}");
    assert!(master.contains("TYPE=AUDIO,GROUP-ID=\"audio\""), "{master}");

    let mpd = ready(p.mpd(UnixMillis(START.0 + 9_000)).unwrap());
    let doc = roxmltree::Document::parse(&mpd).unwrap();
    let root = doc.root_element();
    assert_eq!(root.attribute("type"), Some("dynamic"));
    assert_eq!(
        root.attribute("availabilityStartTime"),
        Some("2026-11-03T09:41:07.250Z")
    );
    let template = doc
        .descendants()
        .find(|n| n.has_tag_name("SegmentTemplate"))
        .unwrap();
    assert_eq!(
        template.attribute("media"),
        Some("$RepresentationID$/$Number$.m4s")
    );
    assert_eq!(
        template.attribute("availabilityTimeComplete"),
        Some("false")
    );
    assert!(doc.descendants().any(|n| n.has_tag_name("UTCTiming")));
    let s: Vec<_> = template
        .descendants()
        .filter(|n| n.has_tag_name("S"))
        .collect();
    assert_eq!(s[0].attribute("t"), Some("0"));
    // Four finished segments, then the one in progress with what it holds
    // (its parts so far), for low-latency players to fetch as it grows.
    assert_eq!(s[0].attribute("r"), Some("3"), "{mpd}");
    let last = s.last().unwrap();
    assert_eq!(s.len(), 2, "{mpd}");
    let held: u64 = last.attribute("d").unwrap().parse().unwrap();
    assert!(held > 0 && held < 2000, "{mpd}");
    assert_eq!(root.attribute("minimumUpdatePeriod"), Some("PT0.666S"));
    // Requests for it and the next are held, not refused.
    assert!(matches!(
        p.segment_parts("v1", 5, 0),
        Reply::Ready((_, false))
    ));
    assert_eq!(p.segment_parts("v1", 6, 0), Reply::Wait);
    assert_eq!(p.segment_parts("v1", 7, 0), Reply::NotFound);

    p.end().unwrap();
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert!(!playlist.contains("PRELOAD-HINT"));
    // A blocking request past the end is answered with the final playlist.
    assert!(matches!(
        p.media_playlist("v1", &query(Some(9), None)),
        Reply::Ready(_)
    ));
    assert!(
        playlist.contains("\n5.m4s\n"),
        "the open segment was closed: {playlist}"
    );
    assert_eq!(p.part("v1", 6, 0), Reply::NotFound);
    let mpd = ready(p.mpd(UnixMillis(START.0 + 10_000)).unwrap());
    assert!(mpd.contains("type=\"static\""), "{mpd}");
    assert!(p.push(samples(1, 100_000, 50).remove(0)).is_err());
}

#[test]
fn long_keyframe_interval_raises_the_target_duration() {
    // A keyframe every 5 s: segments cannot be shorter.
    let (p, _) = run(16, 125);
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(playlist.contains("#EXT-X-TARGETDURATION:5"), "{playlist}");
    assert!(playlist.contains("#EXTINF:5.000"), "{playlist}");
}

#[test]
fn leading_non_keyframes_and_reordered_samples_are_dropped() {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let mut all = samples(5, 0, 50);
    // The encoder's first video frames are not keyframes.
    all.retain(|s| !(s.track == VIDEO && s.dts < 200));
    for s in all.iter().filter(|s| s.track == VIDEO && s.dts >= 200) {
        // Late-joining streams start mid-GOP.
        let mut s = s.clone();
        s.keyframe = s.dts == 2000 || s.dts == 4000;
        p.push(s).unwrap();
    }
    assert!(p.stats().dropped > 0);
    let mut segments = 0;
    while let Some(o) = p.poll_output() {
        if let LiveOutput::Segment { .. } = o {
            segments += 1;
        }
    }
    assert_eq!(segments, 1);
}

#[test]
fn a_presentation_numbers_from_its_first_msn() {
    let first = 1_796_000_000;
    let settings = LivePackaging {
        first_msn: first,
        ..LivePackaging::default()
    };
    let mut p = LivePackager::new(settings, &tracks(), START).unwrap();
    for s in samples(9, 5_000, 50) {
        p.push(s).unwrap();
    }
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(
        playlist.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")),
        "{playlist}"
    );
    assert!(
        playlist.contains(&format!("URI=\"init-{first}-0.mp4\"")),
        "{playlist}"
    );
    assert!(playlist.contains(&format!("\n{first}.m4s\n")), "{playlist}");
    assert!(matches!(p.part("v1", first, 0), Reply::Ready(_)));
    assert!(matches!(p.part("v1", 1, 0), Reply::NotFound));
    assert!(p.init_named("v1", &format!("init-{first}-0.mp4")).is_some());
    assert_eq!(p.init_named("v1", "init-1-0.mp4"), None);
    let mpd = ready(p.mpd(UnixMillis(START.0 + 9_000)).unwrap());
    assert!(mpd.contains(&format!("startNumber=\"{first}\"")), "{mpd}");
    assert!(mpd.contains(&format!("init-{first}-0.mp4")), "{mpd}");
}

#[test]
fn media_names() {
    assert_eq!(parse_media_name("12.m4s"), Some((12, None)));
    assert_eq!(parse_media_name("12.3.m4s"), Some((12, Some(3))));
    for bad in [
        "",
        ".m4s",
        "1..m4s",
        "a.m4s",
        "1.2.3.m4s",
        "1.m4v",
        "-1.m4s",
        "1.9999999999.m4s",
    ] {
        assert_eq!(parse_media_name(bad), None, "{bad}");
    }
}

#[test]
fn a_resumed_stream_continues_with_a_discontinuity_and_a_new_period() {
    let (mut p, _) = run(9, 50);
    p.end().unwrap();
    let ended = ready(p.media_playlist("v1", &query(None, None)));
    let last_msn = ended
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s"))
        .filter_map(|l| l.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(matches!(
        p.resume(&tracks()[..1], UnixMillis(START.0 + 20_000)),
        Err(LiveError::TracksDiffer(_))
    ));
    // Another clock (RTSP's 90 kHz after RTMP's milliseconds): refused, the
    // stream starts a new presentation instead.
    let mut other_clock = tracks();
    other_clock[0].timescale = 90_000;
    assert!(matches!(
        p.resume(&other_clock, UnixMillis(START.0 + 20_000)),
        Err(LiveError::TracksDiffer(_))
    ));
    p.resume(&tracks(), UnixMillis(START.0 + 20_000)).unwrap();
    assert!(!p.is_ended());
    // The encoder restarted: its clock starts over.
    for s in samples(5, 0, 50) {
        p.push(s).unwrap();
    }
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init-1-1.mp4\""),
        "{playlist}"
    );
    assert!(
        playlist.contains(&format!("\n{}.m4s\n", last_msn + 1)),
        "numbering goes on: {playlist}"
    );
    assert!(p.init_named("v1", "init-1-1.mp4").is_some());
    assert!(p.init_named("v1", "init-1-0.mp4").is_some());
    assert_eq!(p.init_named("v1", "init-1-2.mp4"), None);
    // Another presentation's names, and the old scheme's, are not ours.
    assert_eq!(p.init_named("v1", "init-2-0.mp4"), None);
    assert_eq!(p.init_named("v1", "init.mp4"), None);
    assert_eq!(p.init_named("v1", "init-1.mp4"), None);
    let mpd = ready(p.mpd(UnixMillis(START.0 + 26_000)).unwrap());
    let doc = roxmltree::Document::parse(&mpd).unwrap();
    let periods: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("Period"))
        .collect();
    assert_eq!(periods.len(), 2, "{mpd}");
    assert_eq!(periods[1].attribute("start"), Some("PT20S"), "{mpd}");
    assert!(mpd.contains("init-1-1.mp4"));
}

fn segments_of(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse::<u64>().ok())
        .collect()
}

#[test]
fn another_node_continues_a_handed_over_presentation_after_a_discontinuity() {
    // The publisher leaves node A after a resumption (one discontinuity
    // listed) and publishes to node B 20 s after A's start.
    let (mut a, _) = run(9, 50);
    a.pause().unwrap();
    a.resume(&tracks(), UnixMillis(START.0 + 10_000)).unwrap();
    for s in samples(5, 0, 50) {
        a.push(s).unwrap();
    }
    a.pause().unwrap();
    let on_a = ready(a.media_playlist("v1", &query(None, None)));
    let listed_on_a = segments_of(&on_a);
    let last_msn = *listed_on_a.last().unwrap();
    let handover = a.handover();
    assert_eq!(handover.start, START);
    assert_eq!(handover.first_msn, 1);
    assert_eq!(handover.epoch, 2);
    assert_eq!(handover.discontinuity_sequence, 2, "{on_a}");
    let v1 = &handover.renditions[0];
    assert_eq!(v1.name, "v1");
    assert_eq!(
        v1.segments.iter().map(|s| s.msn).collect::<Vec<_>>(),
        listed_on_a
    );
    // A's own media, served by A whoever owns the stream.
    assert!(a.made("v1", "1.m4s") && a.made("v1", &format!("{last_msn}.2.m4s")));
    assert!(a.made("v1", "init-1-0.mp4") && a.made("a1", "init-1-1.mp4"));
    assert!(!a.made("v1", &format!("{}.m4s", last_msn + 1)) && !a.made("v1", "0.m4s"));
    assert!(!a.made("v1", "init-7-0.mp4") && !a.made("v9", "1.m4s"));
    assert!(handover.made("v1", &format!("{last_msn}.m4s")) && handover.made("v1", "init-1-0.mp4"));
    assert!(!handover.made("v1", &format!("{}.0.m4s", last_msn + 1)));
    // The record crosses the database intact.
    let handover = Handover::parse(&handover.to_text()).unwrap();
    assert_eq!(handover, a.handover());

    let now = UnixMillis(START.0 + 20_000);
    let mut b =
        LivePackager::continuing(LivePackaging::default(), &tracks(), now, handover).unwrap();
    // B's encoder connection starts its clock over.
    for s in samples(5, 0, 50) {
        b.push(s).unwrap();
    }
    assert_eq!(b.stats().dropped, 0);
    let on_b = ready(b.media_playlist("v1", &query(None, None)));
    // A's segments stay listed ahead of B's (§6.2.2), then a
    // discontinuity, and numbers go on.
    let listed_on_b = segments_of(&on_b);
    // (The window of six slid by two with B's segments.)
    assert_eq!(listed_on_b[..4], listed_on_a[2..], "{on_b}");
    assert_eq!(listed_on_b[4], last_msn + 1, "{on_b}");
    let sequence = |p: &str, tag: &str| {
        p.lines()
            .find_map(|l| l.strip_prefix(tag)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        sequence(&on_b, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
        sequence(&on_a, "#EXT-X-DISCONTINUITY-SEQUENCE:")
    );
    let own = format!(
        "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-{}-2.mp4\"",
        last_msn + 1
    );
    assert!(on_b.contains(&own), "{on_b}");
    assert!(on_b.contains("#EXT-X-MAP:URI=\"init-1-1.mp4\""), "{on_b}");
    assert!(b.made("v1", &format!("init-{}-2.mp4", last_msn + 1)));
    assert!(b.made("v1", &format!("{}.m4s", last_msn + 1)));
    assert!(!b.made("v1", &format!("{last_msn}.m4s")));
    // One timeline: the same availabilityStartTime, A's periods still
    // listed with A's init sections, and B's where its media starts.
    let mpd = ready(b.mpd(UnixMillis(START.0 + 26_000)).unwrap());
    let doc = roxmltree::Document::parse(&mpd).unwrap();
    let on_a_mpd = ready(a.mpd(UnixMillis(START.0 + 19_000)).unwrap());
    let doc_a = roxmltree::Document::parse(&on_a_mpd).unwrap();
    assert_eq!(
        doc.root_element().attribute("availabilityStartTime"),
        doc_a.root_element().attribute("availabilityStartTime")
    );
    let periods = |doc: &roxmltree::Document| -> Vec<(String, String)> {
        doc.descendants()
            .filter(|n| n.has_tag_name("Period"))
            .map(|n| {
                let p = (n.attribute("id").unwrap(), n.attribute("start").unwrap());
                (p.0.to_owned(), p.1.to_owned())
            })
            .collect()
    };
    let mut expected = periods(&doc_a);
    expected.push(("2".to_owned(), "PT20S".to_owned()));
    assert_eq!(periods(&doc), expected, "{mpd}");
    assert!(mpd.contains("init-1-1.mp4") && mpd.contains(&format!("init-{}-2.mp4", last_msn + 1)));
    let last_period = doc
        .descendants()
        .rfind(|n| n.has_tag_name("Period"))
        .unwrap();
    let first_t: u64 = last_period
        .descendants()
        .find(|n| n.has_tag_name("S"))
        .and_then(|n| n.attribute("t"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first_t, 20_000, "{mpd}");
}

#[test]
fn a_mid_stream_configuration_change_starts_an_epoch_on_the_same_clock() {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    for s in samples(5, 5_000, 50) {
        p.push(s).unwrap();
    }
    assert!(matches!(
        p.reconfigure(&tracks()[..1], UnixMillis(START.0 + 5_000)),
        Err(LiveError::TracksDiffer(_))
    ));
    // Wall-clock time plays no part: the publisher's clock goes on.
    p.reconfigure(&tracks(), UnixMillis(START.0 + 60_000))
        .unwrap();
    for s in samples(4, 10_000, 50) {
        p.push(s).unwrap();
    }
    assert_eq!(p.stats().dropped, 0);
    let playlist = ready(p.media_playlist("v1", &query(None, None)));
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1-1.mp4\""),
        "{playlist}"
    );
    // 5 s before the change (2 + 2 + 1), 4 after, the last 2 still open:
    // seven seconds listed, no gap.
    let listed: f64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((listed - 7.0).abs() < 0.1, "{listed}: {playlist}");
    // The new period starts where the first track to stop stopped: audio's
    // last frame before the change ended at 4.991 s, video's at 5 s.
    let (periods, _) = periods(&ready(p.mpd(UnixMillis(START.0 + 9_000)).unwrap()));
    assert_eq!(
        periods
            .iter()
            .map(|(_, start)| start.as_str())
            .collect::<Vec<_>>(),
        ["PT0S", "PT4.991S"]
    );
}

/// A rung mirroring the source's video a few frames behind (as an encoder
/// would), with keyframes where the source has them and an extra one that
/// must not cut a segment.
#[test]
fn a_ladder_rung_follows_the_source_segments_and_joins_the_manifests() {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let rung_track = tracks().remove(0);
    const LAG: usize = 5;
    let mut fed: Vec<Sample> = Vec::new();
    let mut rung_started = None;
    let mut sent = 0;
    for s in samples(9, 5_000, 50) {
        let video = s.track == VIDEO;
        p.push(s.clone()).unwrap();
        if !video {
            continue;
        }
        // The packager's timeline starts at the first sample.
        let mut timed = s;
        timed.dts -= 5_000;
        fed.push(timed);
        if rung_started.is_none()
            && let Some(from) = p.rung_start("v2", "v1")
        {
            p.add_rung("v2", "v1", rung_track.clone(), from).unwrap();
            rung_started = Some(from);
            // The rung starts at the segment being written: its first frame.
            sent = fed.iter().position(|f| f.keyframe).unwrap();
        }
        while rung_started.is_some() && sent + LAG < fed.len() {
            let mut frame = fed[sent].clone();
            frame.keyframe = frame.keyframe || sent == 25;
            p.push_rung("v2", frame).unwrap();
            sent += 1;
        }
    }
    assert_eq!(rung_started, Some(1));
    // The rung's segments are the source's: same numbers, same times.
    let source: Vec<(u64, u64, u64)> = p.renditions[0]
        .listed_segments()
        .map(|s| (s.msn, s.start, s.duration))
        .collect();
    let rung: Vec<(u64, u64, u64)> = p.renditions[2]
        .listed_segments()
        .map(|s| (s.msn, s.start, s.duration))
        .collect();
    assert_eq!(source.len(), 4, "{source:?}");
    assert_eq!(rung, source[..rung.len()]);
    assert!(rung.len() >= 3, "{rung:?}");

    let master = ready(p.multivariant().unwrap());
    assert!(master.contains("\nv2/media.m3u8"), "{master}");
    let mpd = ready(p.mpd(UnixMillis(START.0 + 9_000)).unwrap());
    assert_eq!(mpd.matches("contentType=\"video\"").count(), 1, "{mpd}");
    assert!(mpd.contains("Representation id=\"v2\""), "{mpd}");

    // The publisher leaves: the rung finishes what it was given, and its
    // last segment ends where the source's does.
    p.pause().unwrap();
    while sent < fed.len() {
        p.push_rung("v2", fed[sent].clone()).unwrap();
        sent += 1;
    }
    assert_eq!(p.follow("v1", 6, 0), Follow::Paused);
    p.finish_rung("v2").unwrap();
    let source_last = p.renditions[0].segments.back().map(|s| (s.msn, s.duration));
    let rung_last = p.renditions[2].segments.back().map(|s| (s.msn, s.duration));
    assert_eq!(source_last, rung_last);
    p.end().unwrap();
    let rung_playlist = ready(p.media_playlist("v2", &query(None, None)));
    assert!(rung_playlist.contains("#EXT-X-ENDLIST"), "{rung_playlist}");
    assert!(matches!(
        p.push_rung("v2", fed[0].clone()),
        Err(LiveError::Ended)
    ));
}

#[test]
fn a_restarted_rung_continues_at_its_next_segment_or_is_refused() {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let rung_track = tracks().remove(0);
    let all = samples(7, 0, 50);
    let mut fed = Vec::new();
    for s in all {
        if s.track == VIDEO {
            fed.push(s.clone());
        }
        p.push(s).unwrap();
    }
    // Started late: the rung's playlist begins at the segment in progress.
    let from = p.rung_start("v2", "v1").unwrap();
    assert_eq!(from, 4);
    p.add_rung("v2", "v1", rung_track.clone(), from).unwrap();
    let at = |msn: u64| {
        let start = p.renditions[0].stored(msn).unwrap().start as i64;
        fed.iter().position(|f| f.dts == start).unwrap()
    };
    let first = at(4);
    for f in &fed[first..first + 10] {
        p.push_rung("v2", f.clone()).unwrap();
    }
    // The encoder fails mid-segment: what it made is closed; it may only
    // continue where its playlist is.
    p.finish_rung("v2").unwrap();
    assert!(matches!(
        p.add_rung("v2", "v1", rung_track.clone(), 4),
        Err(LiveError::RungGap { expected: 5, .. })
    ));
    assert!(matches!(
        p.add_rung("v1", "v1", rung_track.clone(), 5),
        Err(LiveError::RenditionTaken(_))
    ));
    assert!(matches!(
        p.add_rung("v3", "a1", rung_track.clone(), 5),
        Err(LiveError::NoSource(_))
    ));
    let mut other = rung_track.clone();
    other.timescale = 90_000;
    assert!(matches!(
        p.add_rung("v3", "v1", other, 5),
        Err(LiveError::RungTimescale { .. })
    ));
    assert_eq!(
        p.follow("v1", 1, 0),
        Follow::Part {
            data: p.renditions[0].stored(1).unwrap().parts[0].clone(),
            epoch: 0
        }
    );
    assert_eq!(p.follow("v1", 99, 0), Follow::Gone);
    assert_eq!(p.follow("v1", 4, 99), Follow::Wait);
}

/// `(Period@id, Period@start)` of each period, and `timeShiftBufferDepth`.
fn periods(mpd: &str) -> (Vec<(String, String)>, String) {
    let doc = roxmltree::Document::parse(mpd).unwrap();
    let periods = doc
        .descendants()
        .filter(|n| n.has_tag_name("Period"))
        .map(|n| {
            (
                n.attribute("id").unwrap_or_default().to_owned(),
                n.attribute("start").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let depth = doc
        .root_element()
        .attribute("timeShiftBufferDepth")
        .unwrap_or_default()
        .to_owned();
    (periods, depth)
}

#[test]
fn a_period_keeps_its_start_while_the_window_slides() {
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let mut seen = Vec::new();
    for (i, s) in samples(40, 5_000, 50).into_iter().enumerate() {
        p.push(s).unwrap();
        if i % 200 == 0 && p.is_playable() {
            seen.push(periods(&ready(p.mpd(START).unwrap())));
        }
    }
    assert!(seen.len() > 5);
    // The window (6 segments of 2 s) slid from 0 to 28 s: the period stays.
    for (periods, _) in &seen {
        assert_eq!(periods, &[("0".to_owned(), "PT0S".to_owned())]);
    }
    // The time-shift buffer is the listed window, not everything since 0.
    let (_, depth) = seen.last().unwrap();
    assert!(depth.starts_with("PT12."), "{depth}");
}

#[test]
fn video_decoding_ahead_of_the_first_audio_frame_is_kept() {
    // RTSP with B-frames: video decodes two frames before its first
    // picture, which is shown with the first audio frame; audio arrives
    // first (video waits for its reorder window).
    let mut p = LivePackager::new(LivePackaging::default(), &tracks(), START).unwrap();
    let mut all = samples(5, 1_000, 50);
    for s in all.iter_mut().filter(|s| s.track == VIDEO) {
        s.dts -= 80;
        s.cts_offset = 80;
    }
    all.sort_by_key(|s| (s.track == VIDEO, s.dts));
    let (audio, video): (Vec<Sample>, Vec<Sample>) =
        all.into_iter().partition(|s| s.track == AUDIO);
    let mut audio = audio.into_iter();
    for s in audio.by_ref().take(3) {
        p.push(s).unwrap();
    }
    assert!(
        p.poll_output().is_none(),
        "nothing before every track started"
    );
    for s in video.into_iter().chain(audio) {
        p.push(s).unwrap();
    }
    p.end().unwrap();
    assert_eq!(p.stats().dropped, 0, "the first keyframe is kept");
    let first = p.renditions[0].segments.front().unwrap();
    assert_eq!(
        first.start, 0,
        "video's media time 0 is its first decode time"
    );
    // Video states its reorder delay as an edit list, so its first picture
    // shows at 0, with the first audio frame.
    assert_eq!(p.renditions[0].track.presentation_offset, 80);
    let mut reader = crate::mp4::FragmentedReader::new();
    reader.feed(&p.init("v1").unwrap());
    let Some(crate::mp4::ReaderEvent::Tracks(init)) = reader.poll().unwrap() else {
        panic!("no tracks in the init section");
    };
    assert_eq!(init[0].presentation_offset, 80, "the init section says so");
    let audio_first = p.renditions[1].segments.front().unwrap();
    assert_eq!(audio_first.start, 0, "audio starts at 0");
    assert_eq!(p.renditions[1].track.presentation_offset, 0);
}

#[test]
fn a_relayed_dynamic_mpd_ends_with_its_complete_segments() {
    // Mid-segment: the MPD lists the segment in progress last.
    let (p, _) = run(9, 50);
    let dynamic = ready(p.mpd(UnixMillis(START.0 + 9_000)).unwrap());
    assert!(dynamic.contains("availabilityTimeComplete=\"false\""));
    let ended = crate::dash::ended_mpd(&dynamic).unwrap();
    let doc = roxmltree::Document::parse(&ended).unwrap();
    let root = doc.root_element();
    assert_eq!(root.attribute("type"), Some("static"), "{ended}");
    for gone in [
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "availabilityTimeOffset",
        "availabilityTimeComplete",
        "ServiceDescription",
        "low-latency",
    ] {
        assert!(!ended.contains(gone), "{gone}: {ended}");
    }
    // Each timeline lists the complete segments the playlists list.
    for (rendition, template) in ["v1", "a1"].iter().zip(
        doc.descendants()
            .filter(|n| n.has_tag_name("SegmentTemplate")),
    ) {
        let listed = segments_of(&ready(p.media_playlist(rendition, &query(None, None)))).len();
        let segments: u64 = template
            .descendants()
            .filter(|n| n.has_tag_name("S"))
            .map(|s| {
                s.attribute("r")
                    .map_or(1, |r| r.parse::<u64>().unwrap() + 1)
            })
            .sum();
        assert_eq!(segments, listed as u64, "{rendition}: {ended}");
    }
    // To the end of the longest rendition's complete segments: audio's
    // (video's end at 8 s, a keyframe every 2 s).
    assert_eq!(
        root.attribute("mediaPresentationDuration"),
        Some("PT8.021S"),
        "{ended}"
    );
    // What it does not change stays as written.
    assert_eq!(
        root.attribute("availabilityStartTime"),
        roxmltree::Document::parse(&dynamic)
            .unwrap()
            .root_element()
            .attribute("availabilityStartTime")
    );
    assert_eq!(crate::dash::ended_mpd(&ended).unwrap(), ended);
    assert!(crate::dash::ended_mpd("<html/>").is_err());
}

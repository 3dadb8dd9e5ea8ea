//! The packager on a synthetic presentation: 6 s of 30 fps video with a
//! keyframe every second and a two-frame B-frame delay, plus 48 kHz AAC.
//! Outputs are checked for order, naming and structure; playlists are parsed
//! back with m3u8-rs and the MPD with roxmltree.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig};
use crate::hls::UnixMillis;
use crate::media::{Sample, Track};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;
const FRAME: i64 = 3000;
/// 2026-11-03T09:41:07.250Z
const PUBLISHED: UnixMillis = UnixMillis(1_793_698_867_250);

fn tracks() -> Vec<Track> {
    let avc = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
    let mut video = Track::new(VIDEO, 90_000, CodecConfig::H264(avc));
    video.presentation_offset = FRAME as u64;
    let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
    let mut audio = Track::new(AUDIO, 48_000, CodecConfig::Aac(asc));
    audio.language = "eng".to_owned();
    audio.presentation_offset = 1024;
    vec![video, audio]
}

/// Interleaved by time, as a muxed file stores them.
fn samples(seconds: i64) -> Vec<Sample> {
    let video = (0..seconds * 30).map(|i| Sample {
        track: VIDEO,
        dts: i * FRAME,
        // Closed GOPs of I P B P B … P: each P is shown after the B decoded
        // next, so presentation runs one frame behind decoding.
        cts_offset: FRAME as i32
            * match i % 30 {
                0 | 29 => 1,
                j if j % 2 == 1 => 2,
                _ => 0,
            },
        duration: FRAME as u32,
        keyframe: i % 30 == 0,
        data: Bytes::from(vec![0x11; if i % 30 == 0 { 5000 } else { 1000 }]),
    });
    let audio = (0..seconds * 48_000 / 1024 + 1).map(|i| Sample {
        track: AUDIO,
        dts: i * 1024,
        cts_offset: 0,
        duration: 1024,
        keyframe: true,
        data: Bytes::from(vec![0x22; 200]),
    });
    let mut all: Vec<Sample> = video.chain(audio).collect();
    all.sort_by_key(|s| match s.track {
        VIDEO => s.dts * 1_000_000 / 90_000,
        _ => s.dts * 1_000_000 / 48_000,
    });
    all
}

struct Packaged {
    /// In output order.
    outputs: Vec<Output>,
    /// How many outputs had come out before `finish`.
    before_finish: usize,
    summary: Summary,
}

impl Packaged {
    fn text(&self, path: &str) -> String {
        let out = self.outputs.iter().find(|o| o.path == path);
        let out = out.unwrap_or_else(|| panic!("no output {path}"));
        String::from_utf8(out.data.to_bytes().to_vec()).unwrap()
    }

    fn bytes(&self, path: &str) -> Bytes {
        self.outputs
            .iter()
            .find(|o| o.path == path)
            .unwrap()
            .data
            .to_bytes()
    }
}

fn package(config: PackagerConfig, seconds: i64) -> Packaged {
    let mut p = Packager::new(config, &tracks()).unwrap();
    let mut outputs = Vec::new();
    while let Some(o) = p.poll_output() {
        outputs.push(o);
    }
    for s in samples(seconds) {
        p.push(s).unwrap();
        while let Some(o) = p.poll_output() {
            outputs.push(o);
        }
    }
    let before_finish = outputs.len();
    let summary = p.finish(PUBLISHED).unwrap();
    while let Some(o) = p.poll_output() {
        outputs.push(o);
    }
    Packaged {
        outputs,
        before_finish,
        summary,
    }
}

fn two_second_segments() -> PackagerConfig {
    PackagerConfig {
        segment_duration: TargetDuration::from_secs(2),
        ..PackagerConfig::default()
    }
}

#[test]
fn naming() {
    let n = Naming::default();
    assert_eq!(n.rendition(MediaKind::Video, 1), "v1");
    assert_eq!(n.rendition(MediaKind::Audio, 2), "a2");
    assert_eq!(n.segment(1), "seg-00001.m4s");
    assert_eq!(n.segment(123_456), "seg-123456.m4s");
    assert_eq!(
        n.dash_media_template(),
        "$RepresentationID$/seg-$Number%05d$.m4s"
    );
    let unpadded = Naming {
        number_width: 0,
        ..Naming::default()
    };
    assert_eq!(unpadded.segment(7), "seg-7.m4s");
    assert_eq!(
        unpadded.dash_media_template(),
        "$RepresentationID$/seg-$Number$.m4s"
    );
    for bad in [
        Naming {
            video_prefix: "v 1".into(),
            ..Naming::default()
        },
        Naming {
            audio_prefix: "v".into(),
            ..Naming::default()
        },
        Naming {
            number_width: 11,
            ..Naming::default()
        },
    ] {
        let config = PackagerConfig {
            naming: bad,
            ..PackagerConfig::default()
        };
        assert!(matches!(
            Packager::new(config, &tracks()),
            Err(PackageError::InvalidNaming(_))
        ));
    }
    assert!(matches!(
        Packager::new(PackagerConfig::default(), &[]),
        Err(PackageError::NoTracks)
    ));
}

#[test]
fn outputs_stream_out_headers_first_then_segments_then_manifests() {
    let p = package(two_second_segments(), 6);
    let paths: Vec<&str> = p.outputs.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths[..2], ["v1/init.mp4", "a1/init.mp4"]);
    // Every segment but each track's last is cut before finish.
    let segments_before: Vec<&str> = paths[2..p.before_finish].to_vec();
    assert!(segments_before.contains(&"v1/seg-00001.m4s"));
    assert!(segments_before.contains(&"v1/seg-00002.m4s"));
    assert!(segments_before.contains(&"a1/seg-00002.m4s"));
    assert_eq!(
        paths[paths.len() - 5..],
        [
            "v1/media.m3u8",
            "v1/iframes.m3u8",
            "a1/media.m3u8",
            "master.m3u8",
            "manifest.mpd"
        ]
    );
    let v1 = &p.summary.renditions[0];
    assert_eq!((v1.name.as_str(), v1.segments, v1.keyframes), ("v1", 3, 6));
    assert_eq!(v1.codecs, "avc1.64001f");
    // The video's (audio ends 5.3 ms earlier, after its priming is cut).
    assert_eq!(p.summary.duration.as_nanos(), 6_000_000_000);
}

#[test]
fn media_playlists_are_vod_with_map_and_independent_segments() {
    let p = package(two_second_segments(), 6);
    let text = p.text("v1/media.m3u8");
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(pl.target_duration, 2);
    assert!(pl.end_list && pl.independent_segments && !pl.i_frames_only);
    assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert_eq!(pl.media_sequence, 1);
    let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["seg-00001.m4s", "seg-00002.m4s", "seg-00003.m4s"]);
    assert!(pl.segments.iter().all(|s| (s.duration - 2.0).abs() < 1e-6));
    assert_eq!(pl.segments[0].map.as_ref().unwrap().uri, "init.mp4");
    assert_eq!(text.matches("#EXT-X-MAP").count(), 1);

    let audio = p.text("a1/media.m3u8");
    let pl = m3u8_rs::parse_media_playlist_res(audio.as_bytes()).unwrap();
    let total: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!((total - 282.0 * 1024.0 / 48_000.0).abs() < 1e-3, "{total}");
}

#[test]
fn i_frame_playlist_addresses_each_keyframe_moof() {
    let p = package(two_second_segments(), 6);
    let text = p.text("v1/iframes.m3u8");
    let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    assert!(pl.i_frames_only && pl.end_list);
    assert_eq!(pl.segments.len(), 6);
    for (i, seg) in pl.segments.iter().enumerate() {
        assert_eq!(seg.uri, format!("seg-{:05}.m4s", i / 2 + 1));
        assert!((seg.duration - 1.0).abs() < 1e-6);
        let range = seg.byte_range.as_ref().unwrap();
        let offset = range.offset.unwrap() as usize;
        let file = p.bytes(&format!("v1/{}", seg.uri));
        assert_eq!(&file[offset + 4..offset + 8], b"moof", "entry {i}");
        let moof = u32::from_be_bytes(file[offset..offset + 4].try_into().unwrap()) as usize;
        assert_eq!(&file[offset + moof + 4..offset + moof + 8], b"mdat");
        // moof + mdat header + the 5000-byte keyframe: the whole fragment.
        assert_eq!(range.length as usize, moof + 8 + 5000);
        let mdat = &file[offset + moof..offset + moof + 4];
        assert_eq!(u32::from_be_bytes(mdat.try_into().unwrap()), 8 + 5000);
    }
}

#[test]
fn multivariant_advertises_rates_codecs_and_groups() {
    let p = package(two_second_segments(), 6);
    let text = p.text("master.m3u8");
    let pl = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
    assert!(pl.independent_segments);
    let (streams, i_frames): (Vec<_>, Vec<_>) = pl.variants.iter().partition(|v| !v.is_i_frame);
    assert_eq!(streams.len(), 1);
    let v = streams[0];
    assert_eq!(v.uri, "v1/media.m3u8");
    assert_eq!(v.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
    assert_eq!(v.frame_rate, Some(30.0));
    assert_eq!(v.audio.as_deref(), Some("audio"));
    let res = v.resolution.unwrap();
    assert_eq!((res.width, res.height), (1280, 720));
    // Video: 2 s segments of 2 × 5000 + 58 × 1000 bytes plus box overhead:
    // just above 272 kb/s. Audio: 200 bytes per 1024/48000 s = 75 kb/s.
    let (bandwidth, average) = (v.bandwidth, v.average_bandwidth.unwrap());
    assert!(
        (272_000 + 75_000..300_000 + 80_000).contains(&bandwidth),
        "{bandwidth}"
    );
    assert!(average <= bandwidth);
    assert_eq!(i_frames.len(), 1);
    assert_eq!(i_frames[0].uri, "v1/iframes.m3u8");
    let media = &pl.alternatives[0];
    assert_eq!(media.media_type, m3u8_rs::AlternativeMediaType::Audio);
    assert_eq!(
        (
            media.group_id.as_str(),
            media.name.as_str(),
            media.language.as_deref()
        ),
        ("audio", "eng", Some("eng"))
    );
    assert_eq!(media.uri.as_deref(), Some("a1/media.m3u8"));
    assert!(media.default && media.autoselect);
    assert_eq!(media.channels.as_deref(), Some("2"));
}

#[test]
fn mpd_addresses_the_same_files_with_a_timeline() {
    let p = package(two_second_segments(), 6);
    let text = p.text("manifest.mpd");
    let doc = roxmltree::Document::parse(&text).unwrap();
    let mpd = doc.root_element();
    assert_eq!(mpd.attribute("type"), Some("static"));
    assert_eq!(
        mpd.attribute("publishTime"),
        Some("2026-11-03T09:41:07.250Z")
    );
    // The longest segment: 94 AAC frames.
    assert_eq!(mpd.attribute("minBufferTime"), Some("PT2.005333S"));
    let sets: Vec<_> = mpd
        .descendants()
        .filter(|n| n.has_tag_name("AdaptationSet"))
        .collect();
    assert_eq!(sets.len(), 2);
    let mut files: HashMap<&str, Vec<String>> = HashMap::new();
    for set in &sets {
        let template = set
            .children()
            .find(|n| n.has_tag_name("SegmentTemplate"))
            .unwrap();
        assert_eq!(
            template.attribute("initialization"),
            Some("$RepresentationID$/init.mp4")
        );
        let media = template.attribute("media").unwrap();
        assert_eq!(media, "$RepresentationID$/seg-$Number%05d$.m4s");
        let rep = set
            .children()
            .find(|n| n.has_tag_name("Representation"))
            .unwrap();
        let id = rep.attribute("id").unwrap();
        let mut number: u64 = template.attribute("startNumber").unwrap().parse().unwrap();
        let mut t = None;
        for s in template.descendants().filter(|n| n.has_tag_name("S")) {
            let start: u64 = s
                .attribute("t")
                .map_or_else(|| t.unwrap(), |v| v.parse().unwrap());
            let d: u64 = s.attribute("d").unwrap().parse().unwrap();
            let r: u64 = s.attribute("r").map_or(0, |v| v.parse().unwrap());
            for _ in 0..=r {
                files
                    .entry(id)
                    .or_default()
                    .push(format!("{id}/{}", Naming::default().segment(number)));
                number += 1;
            }
            t = Some(start + d * (r + 1));
        }
        if id == "v1" {
            assert_eq!(set.attribute("contentType"), Some("video"));
            // The edit list is not restated: players apply it themselves.
            assert_eq!(template.attribute("presentationTimeOffset"), None);
            // Earliest presentation times after the edit list: each
            // segment's keyframe, which the edit moves to the segment start.
            let first = template
                .descendants()
                .find(|n| n.has_tag_name("S"))
                .unwrap();
            assert_eq!(first.attribute("t"), Some("0"));
            assert_eq!(first.attribute("d"), Some("180000"));
            assert_eq!(first.attribute("r"), Some("2"));
            assert_eq!(rep.attribute("frameRate"), Some("30"));
        } else {
            assert_eq!(set.attribute("lang"), Some("eng"));
            assert_eq!(rep.attribute("audioSamplingRate"), Some("48000"));
        }
    }
    // Every segment the MPD addresses is a file the packager wrote, and back.
    for (id, listed) in files {
        let written: Vec<String> = p
            .outputs
            .iter()
            .filter(|o| o.path.starts_with(&format!("{id}/seg-")))
            .map(|o| o.path.clone())
            .collect();
        assert_eq!(listed, written);
    }
}

#[test]
fn leading_non_sync_samples_are_dropped_and_pushes_after_finish_refused() {
    let mut p = Packager::new(two_second_segments(), &tracks()).unwrap();
    let mut video = samples(2).into_iter().filter(|s| s.track == VIDEO);
    for s in video.by_ref().skip(1).take(29) {
        p.push(s).unwrap();
    }
    for s in video {
        p.push(s).unwrap();
    }
    assert!(matches!(
        p.finish(PUBLISHED),
        Err(PackageError::EmptyTrack { track: AUDIO })
    ));
    assert!(matches!(
        p.push(samples(1).remove(0)),
        Err(PackageError::Finished)
    ));
}

#[test]
fn bandwidths_follow_the_data() {
    let small = package(two_second_segments(), 6);
    let mut config = two_second_segments();
    config.part_duration = Some(TargetDuration::from_millis(500));
    let chunked = package(config, 6);
    let master = |p: &Packaged| {
        let text = p.text("master.m3u8");
        m3u8_rs::parse_master_playlist_res(text.as_bytes())
            .unwrap()
            .variants[0]
            .bandwidth
    };
    // More moofs per segment: slightly more bytes for the same media.
    assert!(master(&chunked) > master(&small));
    assert!(master(&chunked) < master(&small) * 11 / 10);
}

#[test]
fn progress_playlists_grow_as_event_playlists_before_finish() {
    let mut p = Packager::new(two_second_segments(), &tracks()).unwrap();
    assert!(p.progress_playlists().unwrap().is_empty());
    assert!(p.progress_renditions().is_empty());
    for s in samples(5) {
        p.push(s).unwrap();
    }
    let playlists = p.progress_playlists().unwrap();
    assert_eq!(playlists.len(), 2, "video and audio each have a segment");
    let video = playlists
        .iter()
        .find(|o| o.path == "v1/media.m3u8")
        .unwrap();
    let video_bytes = video.data.to_bytes();
    let text = std::str::from_utf8(&video_bytes).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert!(text.contains("#EXT-X-TARGETDURATION:2"), "{text}");
    assert!(text.contains("seg-00002.m4s"), "{text}");
    let parsed = m3u8_rs::parse_media_playlist_res(&video.data.to_bytes()).unwrap();
    assert_eq!(parsed.segments.len(), 2);
    // An interim multivariant playlist over what exists so far.
    let renditions = p.progress_renditions();
    assert_eq!(renditions.len(), 2);
    let manifests = combined_manifests(&two_second_segments(), &renditions, PUBLISHED).unwrap();
    let master = manifests.iter().find(|o| o.path == MULTIVARIANT).unwrap();
    assert!(
        std::str::from_utf8(&master.data.to_bytes())
            .unwrap()
            .contains("v1/media.m3u8")
    );
    // finish still writes the VOD playlists.
    p.finish(PUBLISHED).unwrap();
    let mut vod = None;
    while let Some(o) = p.poll_output() {
        if o.path == "v1/media.m3u8" {
            vod = Some(o);
        }
    }
    let vod = String::from_utf8(vod.unwrap().data.to_bytes().to_vec()).unwrap();
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST"));
}

/// Packaging interrupted after its second segment and resumed from the
/// checkpoint (rendered and parsed back, as a worker that took the job over
/// reads it) makes the same segments, byte for byte, and the same
/// manifests as packaging in one go; the headers are not output again.
#[test]
fn resumed_packaging_matches_one_run() {
    let video_only: Vec<Track> = tracks().into_iter().take(1).collect();
    let run = |samples: &mut dyn Iterator<Item = Sample>, p: &mut Packager| {
        let mut outputs = Vec::new();
        for s in samples {
            p.push(s).unwrap();
            while let Some(o) = p.poll_output() {
                outputs.push(o);
            }
        }
        outputs
    };
    let video = || samples(6).into_iter().filter(|s| s.track == VIDEO);
    let mut whole = Packager::new(two_second_segments(), &video_only).unwrap();
    let mut expected = run(&mut video(), &mut whole);
    whole.finish(PUBLISHED).unwrap();
    while let Some(o) = whole.poll_output() {
        expected.push(o);
    }

    // The first run stops 4.5 s in, with two segments stored.
    let mut first = Packager::new(two_second_segments(), &video_only).unwrap();
    let cut = 135 * FRAME;
    let mut got = run(&mut video().filter(|s| s.dts < cut), &mut first);
    let checkpoint = Checkpoint::parse(&first.checkpoint().render()).unwrap();
    assert_eq!(checkpoint.segments(), 2);
    let end = checkpoint.end_dts("v1").unwrap();
    assert_eq!(end, 120 * FRAME as u64);
    assert!((checkpoint.resume_at_seconds().unwrap() - 4.0).abs() < 1e-9);
    let headers = Packager::headers(&two_second_segments(), &video_only).unwrap();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].data.to_bytes(), got[0].data.to_bytes());

    let mut second = Packager::resume(two_second_segments(), &video_only, &checkpoint).unwrap();
    assert!(second.poll_output().is_none(), "no header again");
    got.truncate(3); // the header and two segments; the rest is made again
    got.extend(run(
        &mut video().filter(|s| s.dts >= end as i64),
        &mut second,
    ));
    second.finish(PUBLISHED).unwrap();
    while let Some(o) = second.poll_output() {
        got.push(o);
    }
    let paths = |outputs: &[Output]| outputs.iter().map(|o| o.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&got), paths(&expected));
    for (got, expected) in got.iter().zip(&expected) {
        assert!(
            got.data.to_bytes() == expected.data.to_bytes(),
            "{} differs",
            got.path
        );
    }
}

#[test]
fn damaged_checkpoints_are_refused() {
    let ok =
        "streamforge-checkpoint 1\nrendition v1 90000\nstats 1 2 2 2 0 2 0 1\nsegment 1 0 2 9 0\n";
    assert!(!Checkpoint::parse(ok).unwrap().is_complete());
    let done = Checkpoint::parse(ok).unwrap().completed().render();
    assert!(done.ends_with("complete\n"), "{done}");
    assert!(Checkpoint::parse(&done).unwrap().is_complete());
    let gap = format!("{ok}segment 3 2 2 9 2\n");
    assert_eq!(
        Checkpoint::parse(&gap).unwrap_err().reason,
        "segments not contiguous"
    );
    assert!(Checkpoint::parse("streamforge-checkpoint 2\n").is_err());
    assert!(Checkpoint::parse("streamforge-checkpoint 1\nrendition v1 90000\n").is_err());
    assert!(Checkpoint::parse(&ok.replace("segment 1 0", "segment x 0")).is_err());
    assert!(Checkpoint::parse(&ok.replace("rendition v1 90000", "rendition v1 0")).is_err());
}

/// Segment-parallel packaging: two chunks packaged apart (the second
/// numbered after the first, as two workers would), their checkpoints
/// joined and finished by a third packager, make the segments and the
/// manifests of one run, byte for byte.
#[test]
fn chunks_packaged_apart_join_into_one_run() {
    let video_only: Vec<Track> = tracks().into_iter().take(1).collect();
    let drain = |p: &mut Packager, outputs: &mut Vec<Output>| {
        while let Some(o) = p.poll_output() {
            outputs.push(o);
        }
    };
    // A keyframe per segment, as a rung encodes: one fragment each.
    let video = || {
        samples(6)
            .into_iter()
            .filter(|s| s.track == VIDEO)
            .map(|mut s| {
                s.keyframe &= s.dts % (60 * FRAME) == 0;
                s
            })
    };
    let mut whole = Packager::new(two_second_segments(), &video_only).unwrap();
    let mut expected = Vec::new();
    for s in video() {
        whole.push(s).unwrap();
        drain(&mut whole, &mut expected);
    }
    whole.finish(PUBLISHED).unwrap();
    drain(&mut whole, &mut expected);

    let cut = 120 * FRAME;
    let mut segments = Vec::new();
    let mut checkpoints = Vec::new();
    for (first_segment, range) in [(1, 0..cut), (3, cut..i64::MAX)] {
        let mut chunk =
            Packager::starting_at(two_second_segments(), &video_only, first_segment).unwrap();
        let mut outputs = Vec::new();
        for s in video().filter(|s| range.contains(&s.dts)) {
            chunk.push(s).unwrap();
            drain(&mut chunk, &mut outputs);
        }
        chunk.finish(PUBLISHED).unwrap();
        drain(&mut chunk, &mut outputs);
        checkpoints.push(Checkpoint::parse(&chunk.checkpoint().render()).unwrap());
        segments.extend(outputs.into_iter().filter(|o| o.path.ends_with(".m4s")));
    }
    let joined = Checkpoint::concat(&checkpoints).unwrap();
    assert_eq!(joined.segments(), 3);
    let mut last = Packager::resume(two_second_segments(), &video_only, &joined).unwrap();
    last.finish(PUBLISHED).unwrap();
    let mut manifests = Vec::new();
    drain(&mut last, &mut manifests);

    // The same bytes but for the fragments' sequence numbers (`mfhd`),
    // which increase across the chunks.
    let numbered = |data: &mut Vec<u8>| {
        let mut numbers = Vec::new();
        let mut at = 0;
        while let Some(found) = data[at..].windows(4).position(|w| w == b"mfhd") {
            let field = at + found + 8;
            numbers.push(u32::from_be_bytes(
                data[field..field + 4].try_into().unwrap(),
            ));
            data[field..field + 4].fill(0);
            at = field;
        }
        numbers
    };
    let expected_segments: Vec<&Output> = expected
        .iter()
        .filter(|o| o.path.ends_with(".m4s"))
        .collect();
    assert_eq!(segments.len(), expected_segments.len());
    let mut fragments = Vec::new();
    for (got, want) in segments.iter().zip(expected_segments) {
        assert_eq!(got.path, want.path);
        let (mut g, mut w) = (got.data.to_bytes().to_vec(), want.data.to_bytes().to_vec());
        fragments.extend(numbered(&mut g));
        numbered(&mut w);
        assert!(g == w, "{} differs", got.path);
    }
    assert!(fragments.windows(2).all(|w| w[0] < w[1]), "{fragments:?}");
    for manifest in &manifests {
        let want = expected.iter().find(|o| o.path == manifest.path).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&manifest.data.to_bytes()),
            String::from_utf8_lossy(&want.data.to_bytes()),
            "{}",
            manifest.path
        );
    }
    assert!(!manifests.is_empty());
    let gap = Checkpoint::concat(&[checkpoints[1].clone(), checkpoints[0].clone()]);
    assert!(gap.is_err(), "chunks out of order");
}

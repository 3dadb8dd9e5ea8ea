//! Real-peer check of the CMAF writer: an ffmpeg-made MP4 with B-frames and
//! AAC is demuxed with our plain-MP4 reader, fragmented into 1 s segments of
//! 0.25 s parts, written as one CMAF track file per track, and compared packet
//! by packet with the source by ffprobe; ffmpeg must decode the output cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use serde_json::Value;
use streamforge_protocols::cmaf::{
    Event, Fragmenter, FragmenterConfig, TargetDuration, init_segment,
};
use streamforge_protocols::media::{MediaKind, Sample, TrackId};
use streamforge_protocols::mp4::{FragmentedReader, ProgressiveMp4, ReaderEvent, top_level_boxes};

fn have_ffmpeg() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[derive(Debug, PartialEq, Eq)]
struct Packet {
    pts: i64,
    dts: i64,
    /// `None` where ffprobe prints `N/A`.
    duration: Option<i64>,
    keyframe: bool,
}

/// Packets of stream `index` as ffprobe reports them.
fn probe_packets(file: &Path, index: u64) -> Vec<Packet> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_packets", "-of", "json"])
        .arg(file));
    let json: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let field = |p: &Value, name: &str| {
        p[name]
            .as_i64()
            .unwrap_or_else(|| panic!("packet without {name}: {p}"))
    };
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| p["stream_index"].as_u64() == Some(index))
        .map(|p| Packet {
            pts: field(p, "pts"),
            dts: field(p, "dts"),
            duration: p["duration"].as_i64(),
            keyframe: p["flags"].as_str().is_some_and(|f| f.contains('K')),
        })
        .collect()
}

#[test]
fn h264_aac_output_matches_source_packet_for_packet() {
    round_trip(
        &[
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "30",
            "-keyint_min",
            "30",
        ],
        &["-c:a", "aac", "-ac", "2"],
        ["avc1.64000d", "mp4a.40.2"],
    );
}

#[test]
fn h265_opus_output_matches_source_packet_for_packet() {
    round_trip(
        &[
            "-c:v",
            "libx265",
            "-x265-params",
            "bframes=2:keyint=30:min-keyint=30:open-gop=0:scenecut=0:log-level=error",
            "-tag:v",
            "hvc1",
        ],
        &["-c:a", "libopus", "-ac", "2"],
        ["hvc1.1.6.L60.90", "opus"],
    );
}

/// Encodes a 4 s 30 fps clip with 1 s GOPs, then checks our demux → fragment → write chain.
fn round_trip(video: &[&str], audio: &[&str], codecs: [&str; 2]) {
    if !have_ffmpeg() {
        println!("skipping: ffmpeg/ffprobe not on PATH");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4", "-pix_fmt", "yuv420p", "-sc_threshold", "0"])
        .args(video)
        .args(audio)
        .arg(&source));

    let file = std::fs::read(&source).expect("read source");
    let (mut moov, mut mdat) = (None, None);
    for b in top_level_boxes(&file) {
        let b = b.expect("top-level box");
        match &b.kind {
            b"moov" => moov = Some(b),
            b"mdat" => mdat = Some(b),
            _ => {}
        }
    }
    let (moov, mdat) = (moov.expect("moov"), mdat.expect("mdat"));
    let mp4 = ProgressiveMp4::parse(moov.bytes).expect("parse moov");
    let tracks = mp4.tracks().to_vec();
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].kind(), MediaKind::Video);
    assert_eq!(
        (tracks[0].width(), tracks[0].height()),
        (Some(320), Some(240))
    );
    assert_eq!(tracks[0].codec.codec_string(), codecs[0]);
    assert_eq!(tracks[1].codec.codec_string(), codecs[1]);

    let mut fragmenter = Fragmenter::new(FragmenterConfig {
        segment_duration: TargetDuration::from_secs(1),
        part_duration: Some(TargetDuration::from_millis(250)),
        first_segment_seq: 1,
    });
    let mut outputs: HashMap<TrackId, Vec<u8>> = HashMap::new();
    for track in &tracks {
        fragmenter.add_track(track).expect("add track");
        outputs.insert(track.id, init_segment(track).expect("init").to_vec());
    }
    let mut segments = Vec::new();
    let mut parts: HashMap<(TrackId, u64), Vec<u8>> = HashMap::new();
    let mut drain = |f: &mut Fragmenter| {
        while let Some(event) = f.poll_event() {
            match event {
                Event::Part(p) => parts
                    .entry((p.track, p.segment_seq))
                    .or_default()
                    .extend_from_slice(&p.data.to_bytes()),
                Event::Segment(s) => segments.push(s),
            }
        }
    };
    let mdat_bytes = Bytes::copy_from_slice(mdat.bytes);
    for sample in mp4.samples(mdat_bytes, mdat.offset) {
        fragmenter.push(sample.expect("sample")).expect("push");
        drain(&mut fragmenter);
    }
    fragmenter.flush().expect("flush");
    drain(&mut fragmenter);

    let video = tracks[0].id;
    let video_segments: Vec<_> = segments.iter().filter(|s| s.track == video).collect();
    assert_eq!(video_segments.len(), 4, "one segment per 1 s GOP");
    for segment in &segments {
        assert_eq!(
            parts[&(segment.track, segment.seq)],
            segment.data.to_bytes().as_ref()
        );
        assert!(segment.parts[0].independent);
        outputs
            .get_mut(&segment.track)
            .expect("track output")
            .extend_from_slice(&segment.data.to_bytes());
    }

    // Our own reader must get every source sample back from our output, exactly.
    let mdat_bytes = Bytes::copy_from_slice(mdat.bytes);
    let source_samples: Vec<Sample> = mp4
        .samples(mdat_bytes, mdat.offset)
        .collect::<Result<_, _>>()
        .expect("samples");
    for track in &tracks {
        let mut reader = FragmentedReader::new();
        reader.feed(&outputs[&track.id]);
        let mut read = Vec::new();
        while let Some(event) = reader.poll().expect("read back") {
            match event {
                ReaderEvent::Tracks(t) => assert_eq!(t, std::slice::from_ref(track)),
                ReaderEvent::Sample(s) => read.push(s),
            }
        }
        let expected: Vec<&Sample> = source_samples
            .iter()
            .filter(|s| s.track == track.id)
            .collect();
        assert_eq!(read.iter().collect::<Vec<_>>(), expected);
    }

    for (index, track) in tracks.iter().enumerate() {
        let out = dir.path().join(format!("track{}.mp4", track.id));
        std::fs::write(&out, &outputs[&track.id]).expect("write output");
        let expected = probe_packets(&source, index as u64);
        let actual = probe_packets(&out, 0);
        assert!(!expected.is_empty());
        assert_eq!(
            actual.len(),
            expected.len(),
            "{:?} packet count",
            track.kind()
        );
        // ffprobe's durations for fragmented input come partly from ffmpeg's mov
        // demuxer rather than from `trun` (N/A for the first AAC packet and every
        // Opus packet, a full frame for the last AAC one), so a duration may
        // instead match ffmpeg's own fragmented remux of the source. The `trun`
        // durations themselves were checked exactly with our reader above.
        let remux = dir.path().join(format!("ffmpeg_frag{}.mp4", track.id));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&source)
            .args(["-map", &format!("0:{index}"), "-c", "copy"])
            .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof"])
            .arg(&remux));
        let reference = probe_packets(&remux, 0);
        assert_eq!(reference.len(), expected.len());
        for (n, ((a, e), r)) in actual.iter().zip(&expected).zip(&reference).enumerate() {
            let what = format!("{:?} packet {n}", track.kind());
            assert_eq!(
                (a.pts, a.dts, a.keyframe),
                (e.pts, e.dts, e.keyframe),
                "{what}"
            );
            assert!(
                a.duration == e.duration || a.duration == r.duration,
                "{what}: duration {:?}, source {:?}, ffmpeg remux {:?}",
                a.duration,
                e.duration,
                r.duration
            );
        }
        let decode = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&out)
            .args(["-f", "null", "-"]));
        assert!(
            decode.stderr.is_empty(),
            "ffmpeg decode errors: {}",
            String::from_utf8_lossy(&decode.stderr)
        );
    }
}

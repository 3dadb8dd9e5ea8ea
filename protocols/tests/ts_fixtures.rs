//! Transport streams written by FFmpeg, read whole and split at every
//! byte.
//!
//! - `ffmpeg-5.1_x264_aac.ts`: 1 s of testsrc2 128x96@15 (x264, B-frames,
//!   GOP 8) and a 440 Hz sine (AAC-LC 44.1 kHz), `-f mpegts` (FFmpeg 5.1,
//!   Debian 12).
//! - `ffmpeg-5.1_x265_opus.ts`: the same picture in x265 (GOP 8) and the
//!   sine in Opus (mono, 48 kHz).

use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::ts::{TsEvent, TsSession};

const X264_AAC: &[u8] = include_bytes!("fixtures/ts/ffmpeg-5.1_x264_aac.ts");
const X265_OPUS: &[u8] = include_bytes!("fixtures/ts/ffmpeg-5.1_x265_opus.ts");

fn read(data: &[u8], split: usize) -> Vec<TsEvent> {
    let mut session = TsSession::new();
    let mut events = Vec::new();
    for chunk in data.chunks(split) {
        session.push(chunk).expect("a valid stream");
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
    session.finish().expect("a valid stream");
    events.extend(std::iter::from_fn(|| session.poll_event()));
    events
}

fn tracks(events: &[TsEvent]) -> &[Track] {
    events
        .iter()
        .find_map(|e| match e {
            TsEvent::Tracks(t) => Some(&t[..]),
            _ => None,
        })
        .expect("tracks")
}

fn samples(events: &[TsEvent], track: u32) -> Vec<&Sample> {
    events
        .iter()
        .filter_map(|e| match e {
            TsEvent::Sample(s) if s.track == track => Some(s),
            _ => None,
        })
        .collect()
}

fn keyframes(samples: &[&Sample]) -> Vec<usize> {
    (0..samples.len())
        .filter(|&i| samples[i].keyframe)
        .collect()
}

fn same_in_any_split(data: &[u8]) -> Vec<TsEvent> {
    let whole = read(data, data.len());
    assert_eq!(read(data, 1), whole, "split at every byte");
    for split in [2, 3, 187, 189, 1316, 1456] {
        assert_eq!(read(data, split), whole, "split {split}");
    }
    whole
}

#[test]
fn ffmpeg_h264_and_aac() {
    let events = same_in_any_split(X264_AAC);
    let t = tracks(&events);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].codec.codec_string(), "avc1.64000a");
    assert_eq!((t[0].width(), t[0].height()), (Some(128), Some(96)));
    assert_eq!(t[1].codec.codec_string(), "mp4a.40.2");
    assert_eq!((t[1].timescale, t[1].channels()), (44_100, Some(1)));
    let video = samples(&events, 1);
    assert_eq!(video.len(), 15);
    assert_eq!(keyframes(&video), [0, 8], "as ffprobe flags them");
    // B-frames: presentation after decoding.
    assert!(video.iter().any(|s| s.cts_offset > 0));
    assert!(video.windows(2).all(|w| w[1].dts - w[0].dts == 6000));
    let audio = samples(&events, 2);
    assert_eq!(audio.len(), 45, "as ffprobe counts them");
    assert!(audio.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    // Time zero is the first decoding time (video's, two B-frames before
    // its first presentation); FFmpeg starts audio 1024 samples (its
    // priming) before the video is shown: the tracks keep that distance.
    assert_eq!(video[0].dts, 0);
    let shown = video.iter().map(|s| s.pts()).min().unwrap() as f64 / 90_000.0;
    let heard = audio[0].pts() as f64 / 44_100.0;
    assert!(
        (shown - heard - 1024.0 / 44_100.0).abs() < 0.001,
        "video {shown} s, audio {heard} s"
    );
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, TsEvent::Warning(_)))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn ffmpeg_h265_and_opus() {
    let events = same_in_any_split(X265_OPUS);
    let t = tracks(&events);
    assert_eq!(t.len(), 2);
    assert!(
        t[0].codec.codec_string().starts_with("hvc1.")
            || t[0].codec.codec_string().starts_with("hev1.")
    );
    assert_eq!((t[0].width(), t[0].height()), (Some(128), Some(96)));
    assert_eq!(t[1].codec.codec_string(), "opus");
    assert_eq!((t[1].timescale, t[1].channels()), (48_000, Some(1)));
    let video = samples(&events, 1);
    assert_eq!(video.len(), 15);
    // x265's second keyframe is a CRA, decoded fifth.
    assert_eq!(keyframes(&video), [0, 5], "as ffprobe flags them");
    let audio = samples(&events, 2);
    assert_eq!(audio.len(), 51, "as ffprobe counts them");
    assert!(
        audio
            .windows(2)
            .all(|w| w[1].dts - w[0].dts == i64::from(w[0].duration))
    );
}

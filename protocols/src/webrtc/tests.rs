use super::*;
use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};

const VIDEO: usize = 0;
const H264: WebrtcCodec = WebrtcCodec::H264;
const OPUS: WebrtcCodec = WebrtcCodec::Opus { channels: 2 };
const AUDIO: usize = 1;

/// An Annex B access unit of these NAL units.
fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter()
        .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
        .collect()
}

const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
const NON_IDR: &[u8] = &[0x41, 0x9a, 0x02, 0x04];
/// An Opus packet: TOC config 31 (CELT, fullband, 20 ms), one frame.
const OPUS_20MS: &[u8] = &[31 << 3, 0xaa, 0xbb];

fn keyframe() -> Vec<u8> {
    annex_b(&[&[0x09, 0xf0], SPS_720P_HIGH, PPS_720P_HIGH, IDR])
}

fn media() -> WebrtcMedia {
    WebrtcMedia::new(&[MediaKind::Video, MediaKind::Audio]).unwrap()
}

fn events(m: &mut WebrtcMedia) -> Vec<WebrtcEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// The first announcement of the tracks.
fn first_tracks(events: &[WebrtcEvent]) -> Option<&Vec<Track>> {
    events.iter().find_map(|e| match e {
        WebrtcEvent::Tracks(t) => Some(t),
        _ => None,
    })
}

fn samples(events: &[WebrtcEvent]) -> Vec<&Sample> {
    events
        .iter()
        .filter_map(|e| match e {
            WebrtcEvent::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn an_offer_without_usable_media_makes_no_publish() {
    assert_eq!(
        WebrtcMedia::new(&[]).err(),
        Some(WebrtcError::NoTracks),
        "no track"
    );
}

#[test]
fn video_waits_for_a_keyframe_with_parameter_sets_and_asks_for_one() {
    let mut m = media();
    m.frame(VIDEO, H264, 1000, &annex_b(&[NON_IDR]), true)
        .unwrap();
    let first = events(&mut m);
    assert!(
        matches!(first[..], [WebrtcEvent::KeyframeNeeded(VIDEO)]),
        "{first:?}"
    );
    m.frame(VIDEO, H264, 4000, &keyframe(), true).unwrap();
    m.frame(VIDEO, H264, 7000, &annex_b(&[NON_IDR]), true)
        .unwrap();
    // Audio starts the timeline's wait; sender reports end it.
    m.frame(AUDIO, OPUS, 500, OPUS_20MS, true).unwrap();
    m.sender_report(VIDEO, 100 << 32, 4000).unwrap();
    m.sender_report(AUDIO, 100 << 32, 500).unwrap();
    m.frame(AUDIO, OPUS, 1460, OPUS_20MS, true).unwrap();
    // This SPS allows B-frames: the last frames wait for their decode
    // times until the end.
    m.finish();
    let all = events(&mut m);
    let tracks = first_tracks(&all).expect("tracks");
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].width(), Some(1280));
    assert_eq!(tracks[1].timescale, OPUS_SAMPLE_RATE);
    let video: Vec<&Sample> = samples(&all).into_iter().filter(|s| s.track == 1).collect();
    // The keyframe is the first video sample, with its parameter sets and
    // without the access unit delimiter, in length-prefixed NAL units.
    assert!(video[0].keyframe);
    let expected: Vec<u8> = [SPS_720P_HIGH, PPS_720P_HIGH, IDR]
        .iter()
        .flat_map(|nal| [&(nal.len() as u32).to_be_bytes()[..], nal].concat())
        .collect();
    assert_eq!(&video[0].data[..], &expected[..]);
    assert_eq!(
        video[0].pts(),
        0,
        "the first frames of both tracks are time zero"
    );
    let audio: Vec<&Sample> = samples(&all).into_iter().filter(|s| s.track == 2).collect();
    assert_eq!(audio[0].pts(), 0);
    assert_eq!(audio[0].duration, 960, "20 ms at 48 kHz, from the TOC byte");
}

#[test]
fn sender_reports_keep_audio_and_video_apart_by_their_wall_clock_distance() {
    let mut m = media();
    // Video's first frame is 0.5 s after audio's, by the reports.
    m.sender_report(VIDEO, 10 << 32, 90_000).unwrap();
    m.sender_report(AUDIO, 10 << 32, 48_000).unwrap();
    m.frame(AUDIO, OPUS, 48_000, OPUS_20MS, true).unwrap();
    m.frame(VIDEO, H264, 90_000 + 45_000, &keyframe(), true)
        .unwrap();
    m.frame(AUDIO, OPUS, 48_960, OPUS_20MS, true).unwrap();
    m.finish();
    let all = events(&mut m);
    let s = samples(&all);
    let video = s.iter().find(|s| s.track == 1).expect("video");
    let audio = s.iter().find(|s| s.track == 2).expect("audio");
    assert_eq!(audio.pts(), 0);
    // 0.5 s at 90 kHz, within the rounding of NTP fractions.
    assert!((video.pts() - 45_000).abs() <= 2, "{}", video.pts());
}

#[test]
fn lost_packets_drop_video_until_the_next_keyframe() {
    let mut m = WebrtcMedia::new(&[MediaKind::Video]).unwrap();
    m.sender_report(VIDEO, 1 << 32, 0).unwrap();
    m.frame(VIDEO, H264, 0, &keyframe(), true).unwrap();
    m.frame(VIDEO, H264, 3000, &annex_b(&[NON_IDR]), true)
        .unwrap();
    // A gap: this frame refers to what was lost.
    m.frame(VIDEO, H264, 9000, &annex_b(&[NON_IDR]), false)
        .unwrap();
    m.frame(VIDEO, H264, 12000, &annex_b(&[NON_IDR]), true)
        .unwrap();
    m.frame(VIDEO, H264, 15000, &keyframe(), true).unwrap();
    m.finish();
    let all = events(&mut m);
    let asks = all
        .iter()
        .filter(|e| matches!(e, WebrtcEvent::KeyframeNeeded(0)))
        .count();
    assert_eq!(asks, 2, "one request per dropped frame: {all:?}");
    let times: Vec<i64> = samples(&all).iter().map(|s| s.pts()).collect();
    assert_eq!(times, [0, 3000, 15000]);
}

#[test]
fn new_parameter_sets_announce_the_tracks_again() {
    // A 426x240 SPS from the RTSP tests: a browser lowering its resolution.
    const SPS_SMALL: &[u8] = &[
        103, 100, 0, 12, 172, 217, 65, 65, 251, 1, 16, 0, 0, 3, 0, 16, 0, 0, 3, 3, 200, 241, 66,
        153, 96,
    ];
    let mut m = WebrtcMedia::new(&[MediaKind::Video]).unwrap();
    m.sender_report(VIDEO, 1 << 32, 0).unwrap();
    m.frame(VIDEO, H264, 0, &keyframe(), true).unwrap();
    m.frame(VIDEO, H264, 3000, &keyframe(), true).unwrap();
    let smaller = annex_b(&[SPS_SMALL, PPS_720P_HIGH, IDR]);
    m.frame(VIDEO, H264, 6000, &smaller, true).unwrap();
    m.finish();
    let all = events(&mut m);
    let announced: Vec<Option<u32>> = all
        .iter()
        .filter_map(|e| match e {
            WebrtcEvent::Tracks(t) => Some(t[0].width()),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 2, "once, then for the change: {all:?}");
    assert_eq!(announced[0], Some(1280));
    assert_ne!(announced[1], Some(1280));
    // The second announcement comes right before the keyframe that needs it.
    let last_tracks = all
        .iter()
        .rposition(|e| matches!(e, WebrtcEvent::Tracks(_)))
        .unwrap();
    assert!(matches!(&all[last_tracks + 1], WebrtcEvent::Sample(s) if s.pts() == 6000));
    assert!(
        all[..last_tracks]
            .iter()
            .all(|e| !matches!(e, WebrtcEvent::Sample(s) if s.pts() == 6000)),
        "no frame of the old parameter sets after the new tracks"
    );
}

#[test]
fn video_that_never_becomes_decodable_fails_the_publish() {
    let mut m = media();
    let mut result = Ok(());
    for i in 0..(MAX_HELD as u32 + 10) {
        result = m.frame(AUDIO, OPUS, i * 960, OPUS_20MS, true);
        if result.is_err() {
            break;
        }
        // Every frame dropped, with a request for a keyframe.
        m.frame(VIDEO, H264, i * 1800, &annex_b(&[NON_IDR]), true)
            .unwrap();
    }
    assert_eq!(result, Err(WebrtcError::NoParameterSets { track: VIDEO }));
}

#[test]
fn garbage_frames_are_dropped_with_one_warning() {
    let mut m = media();
    m.frame(AUDIO, OPUS, 0, &[], true).unwrap();
    m.frame(AUDIO, OPUS, 960, &[], true).unwrap();
    m.frame(VIDEO, H264, 0, &[0, 0, 1], true).unwrap();
    m.frame(VIDEO, H264, 10, &[0, 0, 0, 1, 0x80], true).unwrap();
    m.frame(9, OPUS, 0, OPUS_20MS, true).unwrap();
    let all = events(&mut m);
    let warnings = all
        .iter()
        .filter(|e| matches!(e, WebrtcEvent::Warning(_)))
        .count();
    assert_eq!(warnings, 2, "one per track: {all:?}");
    assert!(samples(&all).is_empty());
}

#[test]
fn a_track_that_sends_nothing_is_left_out_after_a_few_seconds() {
    // A browser's audio transceiver with no microphone behind it.
    let mut m = media();
    m.sender_report(VIDEO, 1 << 32, 0).unwrap();
    m.frame(VIDEO, H264, 0, &keyframe(), true).unwrap();
    for i in 1..(SILENT_AFTER as u32 + 5) {
        m.frame(VIDEO, H264, i * 3600, &annex_b(&[NON_IDR]), true)
            .unwrap();
    }
    let all = events(&mut m);
    let tracks = first_tracks(&all).expect("the video publishes alone");
    assert_eq!(tracks.len(), 1);
    assert!(!samples(&all).is_empty());
    // Audio that comes after that is dropped, with a warning.
    m.frame(AUDIO, OPUS, 0, OPUS_20MS, true).unwrap();
    assert!(
        events(&mut m)
            .iter()
            .any(|e| matches!(e, WebrtcEvent::Warning(_)))
    );
}

//! Decodes what the CMAF writer produces with mp4-atom and checks structure,
//! flags and timing; property tests drive the fragmenter with random timelines.

use bytes::Bytes;
use mp4_atom::{Any, Codec, Decode, DecodeMaybe, Ftyp, Mdat, Moof, Moov};
use proptest::prelude::*;

use super::fragment::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
use super::*;
use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig};
use crate::media::{Sample, Track};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;

fn video_track() -> Track {
    let avc = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
    Track::new(VIDEO, 90_000, CodecConfig::H264(avc))
}

fn audio_track() -> Track {
    let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
    let mut track = Track::new(AUDIO, 48_000, CodecConfig::Aac(asc));
    track.language = "eng".to_owned();
    track
}

fn sample(track: u32, dts: i64, duration: u32, keyframe: bool) -> Sample {
    Sample {
        track,
        dts,
        cts_offset: 0,
        duration,
        keyframe,
        data: Bytes::from(vec![0xab; 100]),
    }
}

fn drain(f: &mut Fragmenter) -> (Vec<Part>, Vec<Segment>) {
    let (mut parts, mut segments) = (Vec::new(), Vec::new());
    while let Some(event) = f.poll_event() {
        match event {
            Event::Part(p) => parts.push(p),
            Event::Segment(s) => segments.push(s),
        }
    }
    (parts, segments)
}

/// Splits a segment into top-level boxes, decoding each moof.
fn moofs(segment: &[u8]) -> Vec<Moof> {
    let mut rest = segment;
    let mut out = Vec::new();
    while let Some(atom) = Any::decode_maybe(&mut rest).unwrap() {
        match atom {
            Any::Moof(moof) => out.push(moof),
            Any::Styp(_) | Any::Mdat(_) => {}
            other => panic!("unexpected box {:?}", other.kind()),
        }
    }
    out
}

#[test]
fn video_init_segment_decodes() {
    let init = init_segment(&video_track()).unwrap();
    let mut rest = init.as_ref();
    let ftyp = Ftyp::decode(&mut rest).unwrap();
    assert_eq!(ftyp.major_brand, b"iso6".into());
    assert!(ftyp.compatible_brands.contains(&b"cmfc".into()));
    let moov = Moov::decode(&mut rest).unwrap();
    assert!(rest.is_empty());
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, VIDEO);
    assert_eq!(trak.tkhd.width.integer(), 1280);
    assert!(trak.edts.is_none());
    assert_eq!(trak.mdia.mdhd.timescale, 90_000);
    assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
    assert!(trak.mdia.minf.vmhd.is_some());
    let stbl = &trak.mdia.minf.stbl;
    assert!(stbl.stts.entries.is_empty());
    assert_eq!(stbl.stco.as_ref().map(|s| s.entries.len()), Some(0));
    let Codec::Avc1(avc1) = &stbl.stsd.codecs[0] else {
        panic!("not avc1");
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (1280, 720));
    assert_eq!(avc1.avcc.sequence_parameter_sets, [SPS_720P_HIGH]);
    let mvex = moov.mvex.unwrap();
    assert_eq!(mvex.trex[0].track_id, VIDEO);
    assert_eq!(mvex.trex[0].default_sample_description_index, 1);
    assert_eq!(moov.mvhd.next_track_id, VIDEO + 1);
}

#[test]
fn audio_init_segment_with_edit_list() {
    let mut track = audio_track();
    track.presentation_offset = 1024;
    let init = init_segment(&track).unwrap();
    let mut rest = init.as_ref();
    Ftyp::decode(&mut rest).unwrap();
    let moov = Moov::decode(&mut rest).unwrap();
    let trak = &moov.trak[0];
    assert_eq!(trak.mdia.mdhd.language, "eng");
    assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
    let elst = trak.edts.as_ref().unwrap().elst.as_ref().unwrap();
    assert_eq!(elst.entries[0].media_time, Some(1024));
    let Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("not mp4a");
    };
    assert_eq!(mp4a.audio.channel_count, 2);
    assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
    let dsi = mp4a.esds.es_desc.dec_config.dec_specific.as_ref().unwrap();
    assert_eq!(dsi.raw, [0x11, 0x90]);
    assert_eq!(mp4a.esds.es_desc.dec_config.object_type_indication, 0x40);
}

#[test]
fn multi_track_init_and_bad_tracks() {
    let init = init_segment_multi(&[video_track(), audio_track()]).unwrap();
    let mut rest = init.as_ref();
    Ftyp::decode(&mut rest).unwrap();
    let moov = Moov::decode(&mut rest).unwrap();
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.mvex.unwrap().trex.len(), 2);

    assert!(matches!(
        init_segment_multi(&[video_track(), video_track()]),
        Err(CmafError::DuplicateTrack { track: VIDEO })
    ));
    let mut bad = audio_track();
    bad.timescale = 0;
    assert!(matches!(
        init_segment(&bad),
        Err(CmafError::InvalidTrack { .. })
    ));
    bad = audio_track();
    bad.language = "english".to_owned();
    assert!(matches!(
        init_segment(&bad),
        Err(CmafError::InvalidTrack { .. })
    ));
}

/// Keyframes every 0.4 s, 2 s segments, no part target: with
/// `split_at_keyframes` each keyframe is a part (and so a `moof`) of its
/// own, and the frames up to the next keyframe are another; audio, all sync
/// samples, is not split.
#[test]
fn split_at_keyframes_opens_a_moof_per_video_keyframe() {
    let mut f = Fragmenter::new(FragmenterConfig::default()).split_at_keyframes();
    f.add_track(&video_track()).unwrap();
    f.add_track(&audio_track()).unwrap();
    for i in 0..60 {
        f.push(sample(VIDEO, i * 3000, 3000, i % 12 == 0)).unwrap();
    }
    for i in 0..94 {
        f.push(sample(AUDIO, i * 1024, 1024, true)).unwrap();
    }
    f.flush().unwrap();
    let (_, segments) = drain(&mut f);
    let video = segments.iter().find(|s| s.track == VIDEO).unwrap();
    assert_eq!(video.keyframe_dts, [0, 36_000, 72_000, 108_000, 144_000]);
    let starts: Vec<u64> = video.parts.iter().map(|p| p.start_dts).collect();
    let expected: Vec<u64> = video
        .keyframe_dts
        .iter()
        .flat_map(|&k| [k, k + 3000])
        .collect();
    assert_eq!(starts, expected);
    let independent: Vec<bool> = video.parts.iter().map(|p| p.independent).collect();
    assert_eq!(independent, [true, false].repeat(5));
    let moofs = moofs(&video.data.to_bytes());
    assert_eq!(moofs.len(), 10);
    let samples: Vec<usize> = moofs
        .iter()
        .map(|m| m.traf[0].trun[0].samples.len())
        .collect();
    assert_eq!(samples, [1, 11].repeat(5));
    let audio = segments.iter().find(|s| s.track == AUDIO).unwrap();
    assert_eq!(audio.parts.len(), 1);
}

/// 30 fps video, keyframe every second, 2 s segments with 0.5 s parts.
#[test]
fn cuts_segments_at_keyframes_and_parts_by_duration() {
    let mut f = Fragmenter::new(FragmenterConfig {
        segment_duration: TargetDuration::from_secs(2),
        part_duration: Some(TargetDuration::from_millis(500)),
        first_segment_seq: 10,
    });
    f.add_track(&video_track()).unwrap();
    for i in 0..150 {
        f.push(sample(VIDEO, i * 3000, 3000, i % 30 == 0)).unwrap();
    }
    f.flush().unwrap();
    let (parts, segments) = drain(&mut f);
    assert_eq!(segments.len(), 3);
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.seq, s.start_dts, s.duration))
            .collect::<Vec<_>>(),
        [
            (10, 0, 180_000),
            (11, 180_000, 180_000),
            (12, 360_000, 90_000)
        ]
    );
    assert_eq!(segments[0].keyframe_dts, [0, 90_000]);
    // 15 frames per 0.5 s part: each part ends before the frame that would exceed it.
    assert!(parts.iter().all(|p| p.duration == 45_000));
    assert_eq!(parts.len(), 10);
    let independent: Vec<bool> = segments[0].parts.iter().map(|p| p.independent).collect();
    assert_eq!(independent, [true, false, true, false]);

    let moofs = moofs(&segments[0].data.to_bytes());
    let seqs: Vec<u32> = moofs.iter().map(|m| m.mfhd.sequence_number).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let trun = &moofs[0].traf[0].trun[0];
    assert_eq!(trun.samples.len(), 15);
    assert_eq!(
        trun.samples.get(0).and_then(|e| e.flags),
        Some(SYNC_SAMPLE_FLAGS)
    );
    assert_eq!(
        moofs[1].traf[0].tfhd.default_sample_flags,
        Some(NON_SYNC_SAMPLE_FLAGS)
    );
    assert_eq!(
        moofs[1].traf[0]
            .tfdt
            .as_ref()
            .unwrap()
            .base_media_decode_time,
        45_000
    );
}

#[test]
fn audio_segments_follow_sample_boundaries() {
    let mut f = Fragmenter::new(FragmenterConfig {
        segment_duration: TargetDuration::from_secs(1),
        part_duration: Some(TargetDuration::from_millis(200)),
        first_segment_seq: 0,
    });
    f.add_track(&audio_track()).unwrap();
    for i in 0..100 {
        f.push(sample(AUDIO, i * 1024, 1024, false)).unwrap();
    }
    f.flush().unwrap();
    let (parts, segments) = drain(&mut f);
    // 47 frames reach 48 128 ticks ≥ 1 s; 9 frames fit in 0.2 s (9 216 ≤ 9 600).
    assert_eq!(segments[0].duration, 47 * 1024);
    assert!(parts.iter().all(|p| p.independent));
    assert_eq!(parts[0].duration, 9 * 1024);
    let total: u64 = segments.iter().map(|s| s.duration).sum();
    assert_eq!(total, 100 * 1024);
}

#[test]
fn timeline_wins_over_stated_durations() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    f.add_track(&video_track()).unwrap();
    // Stated durations are wrong (jitter from millisecond timestamps); dts are right.
    f.push(sample(VIDEO, 0, 2970, true)).unwrap();
    f.push(sample(VIDEO, 3003, 3100, false)).unwrap();
    f.push(sample(VIDEO, 6006, 3003, false)).unwrap();
    f.flush().unwrap();
    let (_, segments) = drain(&mut f);
    assert_eq!(segments[0].duration, 9009);
    let moof = &moofs(&segments[0].data.to_bytes())[0];
    assert_eq!(moof.traf[0].tfhd.default_sample_duration, Some(3003));
}

/// Pushes `frames` samples whose decode times are `frame_dts(i)` ticks,
/// each stating the previous gap as its duration (what the RTMP demuxer
/// does), a keyframe every `gop` frames; returns the parts and segments.
fn cut(
    timescale: u32,
    frames: i64,
    gop: i64,
    part: TargetDuration,
    frame_dts: impl Fn(i64) -> i64,
) -> (Vec<Part>, Vec<Segment>) {
    let mut track = video_track();
    track.timescale = timescale;
    let mut f = Fragmenter::new(FragmenterConfig {
        segment_duration: TargetDuration::from_secs(2),
        part_duration: Some(part),
        first_segment_seq: 1,
    });
    f.add_track(&track).unwrap();
    let mut previous_gap = 1;
    for i in 0..frames {
        let dts = frame_dts(i);
        if i > 0 {
            previous_gap = (dts - frame_dts(i - 1)) as u32;
        }
        f.push(sample(VIDEO, dts, previous_gap, i % gop == 0))
            .unwrap();
    }
    f.flush().unwrap();
    drain(&mut f)
}

/// Every part within `limit` ticks, and every part but a segment's last at
/// least 85 % of it (RFC 8216bis §4.4.3.7).
fn assert_parts_fit(what: &str, segments: &[Segment], limit: u64) {
    for seg in segments {
        for (i, p) in seg.parts.iter().enumerate() {
            assert!(
                p.duration <= limit,
                "{what}: segment {} part {i} lasts {} > {limit}",
                seg.seq,
                p.duration
            );
            if i + 1 < seg.parts.len() {
                assert!(
                    p.duration * 100 >= limit * 85,
                    "{what}: segment {} part {i} lasts {} < 85 % of {limit}",
                    seg.seq,
                    p.duration
                );
            }
        }
    }
}

#[test]
fn parts_fit_the_part_target_at_every_common_frame_rate() {
    // (frames per second as num/den, keyframe interval in frames)
    let rates = [
        (24, 1, 48),
        (24_000, 1001, 48),
        (25, 1, 50),
        (30_000, 1001, 60),
        (30, 1, 60),
        (50, 1, 100),
        (60_000, 1001, 120),
        (60, 1, 120),
    ];
    let targets = [
        TargetDuration { num: 1, den: 3 },
        TargetDuration::from_millis(333),
        TargetDuration::from_millis(500),
    ];
    for (num, den, gop) in rates {
        for part in targets {
            // RTMP: whole milliseconds; RTSP and files: a 90 kHz clock.
            for timescale in [1000u32, 90_000] {
                let ts = i64::from(timescale);
                let (_, segments) = cut(timescale, 20 * num / den, gop, part, |i| {
                    (i * den * ts + num / 2) / num
                });
                assert!(segments.len() >= 9, "{num}/{den} fps");
                let what = format!("{num}/{den} fps at {timescale} Hz, part {part:?}");
                assert_parts_fit(&what, &segments, part.ticks(timescale));
            }
        }
    }
}

#[test]
fn a_part_the_next_sample_shows_too_long_ends_before_its_last_sample() {
    // 30 fps in ms, then frame 9 arrives 40 ms late: the part planned to
    // hold frames 0 to 8 (300 ms) would end at 340 ms.
    let late = |i: i64| (i * 1000 + 15) / 30 + if i >= 9 { 40 } else { 0 };
    let (parts, segments) = cut(1000, 60, 60, TargetDuration::from_millis(333), late);
    assert!(parts.iter().all(|p| p.duration <= 333), "{parts:?}");
    // The first part ends before frame 8, which begins the second.
    assert_eq!(parts[0].duration, late(8) as u64);
    assert_eq!(parts[1].start_dts, late(8) as u64);
    let total: u64 = segments.iter().map(|s| s.duration).sum();
    assert_eq!(total, (2 * late(59) - late(58)) as u64);
}

#[test]
fn a_frame_longer_than_a_part_is_a_part_of_its_own() {
    // A 2 fps camera: every frame lasts 500 ms, longer than the part.
    let (parts, _) = cut(90_000, 10, 4, TargetDuration { num: 1, den: 3 }, |i| {
        i * 45_000
    });
    assert_eq!(parts.len(), 10);
    assert!(parts[..9].iter().all(|p| p.duration == 45_000));
}

#[test]
fn typed_errors_leave_state_usable() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    assert!(matches!(
        f.push(sample(VIDEO, 0, 3000, true)),
        Err(CmafError::UnknownTrack { track: VIDEO })
    ));
    f.add_track(&video_track()).unwrap();
    assert!(matches!(
        f.add_track(&video_track()),
        Err(CmafError::DuplicateTrack { .. })
    ));
    assert!(matches!(
        f.push(sample(VIDEO, 0, 3000, false)),
        Err(CmafError::NotKeyframe { .. })
    ));
    assert!(matches!(
        f.push(sample(VIDEO, 0, 0, true)),
        Err(CmafError::ZeroDuration { .. })
    ));
    assert!(matches!(
        f.push(sample(VIDEO, -3000, 3000, true)),
        Err(CmafError::NegativeDts { .. })
    ));
    let mut big = sample(VIDEO, 0, 3000, true);
    big.data = Bytes::from(vec![0; MAX_SAMPLE_SIZE + 1]);
    assert!(matches!(f.push(big), Err(CmafError::SampleTooLarge { .. })));
    f.push(sample(VIDEO, 0, 3000, true)).unwrap();
    assert!(matches!(
        f.push(sample(VIDEO, 0, 3000, false)),
        Err(CmafError::NonMonotonicDts {
            previous: 0,
            dts: 0,
            ..
        })
    ));
    assert!(matches!(
        f.push(sample(VIDEO, 1 << 40, 3000, false)),
        Err(CmafError::GapTooLarge { .. })
    ));
    f.push(sample(VIDEO, 3000, 3000, false)).unwrap();
    f.flush().unwrap();
    let (_, segments) = drain(&mut f);
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].duration, 6000);
    // After a flush the next segment must start with a keyframe again.
    assert!(matches!(
        f.push(sample(VIDEO, 6000, 3000, false)),
        Err(CmafError::NotKeyframe { .. })
    ));
}

#[test]
fn chunk_bytes_decode_back_to_samples() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    f.add_track(&video_track()).unwrap();
    let data: Vec<Bytes> = (0..5u8)
        .map(|i| Bytes::from(vec![i; 10 + usize::from(i)]))
        .collect();
    for (i, d) in data.iter().enumerate() {
        let mut s = sample(VIDEO, i as i64 * 3000, 3000, i == 0);
        s.data = d.clone();
        s.cts_offset = if i % 2 == 0 { 6000 } else { -3000 };
        f.push(s).unwrap();
    }
    f.flush().unwrap();
    let (_, segments) = drain(&mut f);
    let bytes = &segments[0].data.to_bytes();
    let mut rest = bytes.as_ref();
    let mut moof_start = 0;
    let mut moof = None;
    while let Some(atom) = Any::decode_maybe(&mut rest).unwrap() {
        let pos = bytes.len() - rest.len();
        match atom {
            Any::Moof(m) => moof = Some((m, moof_start)),
            Any::Mdat(Mdat { data: payload }) => {
                let (m, start) = moof.take().unwrap();
                let trun = &m.traf[0].trun[0];
                let offset = start + trun.data_offset.unwrap() as usize;
                assert_eq!(offset, pos - payload.len());
                let mut at = offset;
                for (entry, expected) in trun.samples.iter().zip(&data) {
                    let size = entry.size.unwrap() as usize;
                    assert_eq!(&bytes[at..at + size], expected.as_ref());
                    at += size;
                }
                let cts: Vec<i64> = trun.samples.iter().map(|e| e.cts.unwrap()).collect();
                assert_eq!(cts, [6000, -3000, 6000, -3000, 6000]);
            }
            _ => {}
        }
        moof_start = pos;
    }
}

/// One generated sample: duration, composition offset, keyframe.
fn timeline() -> impl Strategy<Value = Vec<(u32, i32, bool)>> {
    prop::collection::vec(
        (1u32..6000, -9000i32..9000, prop::bool::weighted(0.1)),
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fragmenter_invariants(
        timeline in timeline(),
        start in 0i64..1 << 34,
        segment_ms in 200u64..3000,
        part_ms in prop::option::of(50u64..1000),
        audio in any::<bool>(),
    ) {
        let track = if audio { audio_track() } else { video_track() };
        let mut f = Fragmenter::new(FragmenterConfig {
            segment_duration: TargetDuration::from_millis(segment_ms),
            part_duration: part_ms.map(TargetDuration::from_millis),
            first_segment_seq: 1,
        });
        f.add_track(&track).unwrap();
        let mut dts = start;
        let mut pushed = Vec::new();
        for (i, &(duration, cts, key)) in timeline.iter().enumerate() {
            let mut s = sample(track.id, dts, duration, key || i == 0);
            s.cts_offset = cts;
            s.data = Bytes::from(vec![i as u8; 1 + i % 7]);
            pushed.push(s.clone());
            f.push(s).unwrap();
            dts += i64::from(duration);
        }
        f.flush().unwrap();
        let (parts, segments) = drain(&mut f);

        let mut expected_start = start as u64;
        let mut part_iter = parts.iter();
        let mut sample_iter = pushed.iter();
        for (n, seg) in segments.iter().enumerate() {
            prop_assert_eq!(seg.seq, n as u64 + 1);
            prop_assert_eq!(seg.start_dts, expected_start);
            expected_start += seg.duration;
            prop_assert_eq!(seg.parts.iter().map(|p| p.duration).sum::<u64>(), seg.duration);
            if let Some(part_ms) = part_ms {
                let limit = TargetDuration::from_millis(part_ms).ticks(track.timescale);
                for (info, moof) in seg.parts.iter().zip(moofs(&seg.data.to_bytes())) {
                    // Only a single sample may outlast the part duration.
                    prop_assert!(info.duration <= limit || moof.traf[0].trun[0].samples.len() == 1);
                }
            }
            prop_assert!(seg.parts[0].independent);
            prop_assert_eq!(seg.keyframe_dts.first().copied(), Some(seg.start_dts));

            let seg_bytes = seg.data.to_bytes();
            let mut concat = Vec::new();
            for (i, info) in seg.parts.iter().enumerate() {
                let part = part_iter.next().unwrap();
                prop_assert_eq!(part.segment_seq, seg.seq);
                prop_assert_eq!(part.part_index as usize, i);
                prop_assert_eq!(&part.data, &seg_bytes[info.range.clone()]);
                prop_assert_eq!(&seg_bytes[info.moof_offset + 4..info.moof_offset + 8], b"moof");
                prop_assert_eq!(&seg_bytes[info.data_offset - 4..info.data_offset], b"mdat");
                prop_assert_eq!(part.start_dts, info.start_dts);
                concat.extend_from_slice(&part.data.to_bytes());
            }
            prop_assert_eq!(concat.as_slice(), seg_bytes.as_ref());

            // Every sample comes back with its timing, flags and payload.
            let mut tfdt_expected = seg.start_dts;
            for moof in moofs(&seg.data.to_bytes()) {
                let traf = &moof.traf[0];
                prop_assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, tfdt_expected);
                for (i, entry) in traf.trun[0].samples.iter().enumerate() {
                    let s = sample_iter.next().unwrap();
                    prop_assert_eq!(s.dts as u64, tfdt_expected);
                    let duration = entry.duration.or(traf.tfhd.default_sample_duration).unwrap();
                    prop_assert_eq!(duration, s.duration);
                    prop_assert_eq!(entry.size, Some(s.data.len() as u32));
                    prop_assert_eq!(entry.cts.unwrap_or(0), i64::from(s.cts_offset));
                    let flags = entry
                        .flags
                        .or(if i == 0 { None } else { traf.tfhd.default_sample_flags })
                        .or(traf.tfhd.default_sample_flags)
                        .unwrap();
                    let sync = s.keyframe || audio;
                    prop_assert_eq!(flags, if sync { SYNC_SAMPLE_FLAGS } else { NON_SYNC_SAMPLE_FLAGS });
                    tfdt_expected += u64::from(duration);
                }
            }
        }
        prop_assert!(part_iter.next().is_none());
        prop_assert!(sample_iter.next().is_none());
        prop_assert_eq!(expected_start, dts as u64);
    }
}

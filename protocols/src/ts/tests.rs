//! Transport streams built packet by packet: splits, losses, broken tables,
//! wraps and jumps.

use std::collections::HashMap;

use super::psi::build;
use super::*;
use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
use crate::media::Sample;

const PMT_PID: u16 = 0x1000;
const VIDEO: u16 = 0x100;
const AUDIO: u16 = 0x101;

/// A transport stream writer for tests.
#[derive(Default)]
struct Mux {
    cc: HashMap<u16, u8>,
    out: Vec<u8>,
}

impl Mux {
    /// PAT and a PMT with H.264 on `VIDEO` and AAC on `AUDIO`.
    fn tables(&mut self) -> &mut Self {
        self.table(0, &build::pat(&[(1, PMT_PID)]));
        self.table(
            PMT_PID,
            &build::pmt(0, VIDEO, &[(0x1b, VIDEO, &[]), (0x0f, AUDIO, &[])]),
        );
        self
    }

    fn table(&mut self, pid: u16, section: &[u8]) -> &mut Self {
        let mut payload = vec![0];
        payload.extend_from_slice(section);
        self.packets(pid, &payload, 0);
        self
    }

    fn video(&mut self, pts: u64, dts: u64, au: &[u8]) -> &mut Self {
        let mut pes = pes::write(0xe0, pts, Some(dts), None);
        pes.extend_from_slice(au);
        self.packets(VIDEO, &pes, 0x40);
        self
    }

    fn audio(&mut self, pts: u64, frames: &[Vec<u8>]) -> &mut Self {
        let data: Vec<u8> = frames.concat();
        let mut pes = pes::write(0xc0, pts, None, Some(data.len()));
        pes.extend_from_slice(&data);
        self.packets(AUDIO, &pes, 0);
        self
    }

    /// Splits `payload` into packets; the first starts the unit and
    /// carries `flags` in an adaptation field when not zero.
    fn packets(&mut self, pid: u16, payload: &[u8], flags: u8) {
        let mut rest = payload;
        let mut first = true;
        while !rest.is_empty() || first {
            let cc = self.cc.entry(pid).or_insert(15);
            *cc = (*cc + 1) & 0x0f;
            let mut p = vec![
                0x47,
                if first { 0x40 } else { 0 } | (pid >> 8) as u8,
                pid as u8,
                0x10 | *cc,
            ];
            let want_af = first && flags != 0;
            let room = 184 - if want_af { 2 } else { 0 };
            let n = rest.len().min(room);
            if want_af || n < 184 {
                p[3] |= 0x20;
                let af_len = 183 - n;
                p.push(af_len as u8);
                if af_len > 0 {
                    p.push(if first { flags } else { 0 });
                    p.extend(std::iter::repeat_n(0xff, af_len - 1));
                }
            }
            p.extend_from_slice(&rest[..n]);
            assert_eq!(p.len(), PACKET_LEN);
            self.out.extend_from_slice(&p);
            rest = &rest[n..];
            first = false;
        }
    }
}

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// A keyframe with its parameter sets, and a P frame.
fn idr() -> Vec<u8> {
    annex_b(&[
        &[0x09, 0xf0],
        SPS_720P_HIGH,
        PPS_720P_HIGH,
        &[0x65, 0x88, 0x84, 0x21],
    ])
}

fn p_frame() -> Vec<u8> {
    annex_b(&[&[0x09, 0xf0], &[0x41, 0x9a, 0x02]])
}

/// An ADTS frame: AAC-LC, 48 kHz, stereo, `payload` bytes.
fn adts(payload: &[u8]) -> Vec<u8> {
    let len = 7 + payload.len();
    let mut f = vec![
        0xff,
        0xf1,
        0x4c, // LC, 48 kHz (index 3), channel config high bit 0
        0x80 | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len & 7) << 5) as u8 | 0x1f,
        0xfc,
    ];
    f.extend_from_slice(payload);
    f
}

/// A stream of `frames` video frames at 30 fps (keyframe every 15) and
/// AAC at 48 kHz, starting at `start` (90 kHz, may wrap).
fn av_stream(start: u64, frames: u64) -> Vec<u8> {
    let mut mux = Mux::default();
    mux.tables();
    let mut audio_next = 0u64;
    for i in 0..frames {
        let t = (start + i * 3000) % (1 << 33);
        let au = if i % 15 == 0 { idr() } else { p_frame() };
        mux.video(t, t, &au);
        // Audio up to the video's time, two frames per PES.
        while audio_next * 1920 <= i * 3000 {
            let at = (start + audio_next * 1920) % (1 << 33);
            mux.audio(at, &[adts(&[1, 2, 3]), adts(&[4, 5, 6])]);
            audio_next += 2;
        }
    }
    mux.out
}

fn run(session: &mut TsSession, data: &[u8], split: usize) -> Vec<TsEvent> {
    let mut events = Vec::new();
    for chunk in data.chunks(split.max(1)) {
        session.push(chunk).unwrap();
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
    session.finish().unwrap();
    events.extend(std::iter::from_fn(|| session.poll_event()));
    events
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

fn first_tracks(events: &[TsEvent]) -> &[crate::media::Track] {
    events
        .iter()
        .find_map(|e| match e {
            TsEvent::Tracks(t) => Some(&t[..]),
            _ => None,
        })
        .expect("tracks")
}

fn warnings(events: &[TsEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            TsEvent::Warning(w) => Some(w.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn tracks_and_samples_come_out_the_same_in_any_split() {
    let data = av_stream(900_000, 45);
    let whole = run(&mut TsSession::new(), &data, data.len());
    for split in [1, 2, 7, 100, 187, 188, 189, 1316] {
        assert_eq!(
            run(&mut TsSession::new(), &data, split),
            whole,
            "split {split}"
        );
    }
    assert!(matches!(whole[0], TsEvent::Tracks(_)), "{:?}", whole[0]);
    let tracks = first_tracks(&whole);
    assert_eq!(tracks.len(), 2);
    assert_eq!((tracks[0].id, tracks[0].timescale), (1, 90_000));
    assert_eq!(
        (tracks[0].width(), tracks[0].height()),
        (Some(1280), Some(720))
    );
    assert_eq!((tracks[1].id, tracks[1].timescale), (2, 48_000));
    let video = samples(&whole, 1);
    assert_eq!(video.len(), 45);
    assert!(video[0].keyframe && video[15].keyframe && !video[1].keyframe);
    assert_eq!(video[0].dts, 0);
    assert_eq!(video[44].dts, 44 * 3000);
    // Length-prefixed, without the access unit delimiter.
    assert_eq!(&video[1].data[..], &[0, 0, 0, 3, 0x41, 0x9a, 0x02]);
    let audio = samples(&whole, 2);
    assert!(audio.len() >= 70, "{} audio frames", audio.len());
    for (i, s) in audio.iter().enumerate() {
        assert_eq!(s.dts, i as i64 * 1024, "audio frame {i}");
        assert_eq!(s.duration, 1024);
        assert_eq!(
            &s.data[..],
            if i % 2 == 0 { &[1, 2, 3] } else { &[4, 5, 6] }
        );
    }
    assert!(warnings(&whole).is_empty(), "{:?}", warnings(&whole));
}

#[test]
fn times_go_on_across_the_33_bit_wrap() {
    let start = (1u64 << 33) - 20 * 3000;
    let events = run(&mut TsSession::new(), &av_stream(start, 45), 1316);
    let video = samples(&events, 1);
    assert_eq!(video.len(), 45);
    for (i, s) in video.iter().enumerate() {
        assert_eq!(s.dts, i as i64 * 3000);
    }
    let audio = samples(&events, 2);
    assert!(audio.windows(2).all(|w| w[1].dts == w[0].dts + 1024));
}

#[test]
fn garbage_before_and_inside_the_stream_is_skipped() {
    let clean = av_stream(0, 30);
    let mut data = vec![0x47u8; 10];
    data.extend_from_slice(b"not a transport stream at all");
    data.extend_from_slice(&clean[..188 * 20]);
    data.extend_from_slice(&[0x12; 77]);
    data.extend_from_slice(&clean[188 * 20..]);
    let events = run(&mut TsSession::new(), &data, 1000);
    assert!(warnings(&events).iter().any(|w| w.contains("sync")));
    // Inserted bytes lose nothing.
    assert_eq!(samples(&events, 1).len(), 30);
    assert_eq!(
        events,
        run(&mut TsSession::new(), &data, 1)
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn bytes_that_are_no_transport_stream_are_refused() {
    let mut session = TsSession::new();
    let noise: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8 & 0x3f).collect();
    let err = noise.chunks(1316).find_map(|c| session.push(c).err());
    assert!(
        matches!(err, Some(TsError::NotTransportStream(_))),
        "{err:?}"
    );
}

#[test]
fn a_program_table_that_never_checks_out_is_refused_with_its_reason() {
    let mut mux = Mux::default();
    let mut pmt = build::pmt(0, VIDEO, &[(0x1b, VIDEO, &[])]);
    let last = pmt.len() - 1;
    pmt[last] ^= 0xff;
    for _ in 0..3000 {
        mux.table(0, &build::pat(&[(1, PMT_PID)]));
        mux.table(PMT_PID, &pmt);
    }
    let mut session = TsSession::new();
    let err = mux.out.chunks(1316).find_map(|c| session.push(c).err());
    let Some(TsError::NoProgram { reason, .. }) = err else {
        panic!("{err:?}");
    };
    assert!(reason.contains("CRC"), "{reason}");
}

#[test]
fn a_program_of_unsupported_streams_is_refused() {
    let mut mux = Mux::default();
    mux.table(0, &build::pat(&[(1, PMT_PID)]));
    mux.table(
        PMT_PID,
        &build::pmt(0, 0x100, &[(0x02, 0x100, &[]), (0x81, 0x101, &[])]),
    );
    let err = TsSession::new().push(&mux.out).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("MPEG-2 video") && message.contains("AC-3"),
        "{message}"
    );
}

#[test]
fn a_lost_packet_drops_its_access_unit_and_video_waits_for_a_keyframe() {
    let data = av_stream(0, 45);
    // Find the third video PES start and drop the packet after it.
    let starts: Vec<usize> = data
        .chunks(188)
        .enumerate()
        .filter(|(_, p)| p[1] & 0x40 != 0 && u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO)
        .map(|(i, _)| i)
        .collect();
    let mut damaged = Vec::new();
    for (i, p) in data.chunks(188).enumerate() {
        // Drop the start of frame 2's PES.
        if i != starts[2] {
            damaged.extend_from_slice(p);
        }
    }
    let events = run(&mut TsSession::new(), &damaged, 1316);
    let video = samples(&events, 1);
    // Frame 0; frame 1 may have lost its tail (its end is the next start,
    // which was lost); then the keyframe at 15 onwards: 1 + 30.
    assert_eq!(video.len(), 31);
    assert_eq!(video[1].dts, 15 * 3000);
    assert!(video[1].keyframe);
    assert!(warnings(&events).iter().any(|w| w.contains("lost")));
}

#[test]
fn a_jump_in_time_continues_the_track() {
    let mut data = av_stream(90_000 * 1200, 30);
    // The encoder restarts inside the stream with times 20 minutes back
    // (its continuity counters restart too: a loss on every PID).
    data.append(&mut av_stream(0, 30));
    let events = run(&mut TsSession::new(), &data, 1316);
    let video = samples(&events, 1);
    assert!(video.windows(2).all(|w| w[1].dts > w[0].dts), "monotonic");
    assert!(warnings(&events).iter().any(|w| w.contains("jumped")));
    let audio = samples(&events, 2);
    assert!(audio.windows(2).all(|w| w[1].dts > w[0].dts));
    // After the jump, audio and video keep the new stream's offset (both
    // start at the same time in it).
    let restart = video[video.len() - 30];
    assert!(restart.keyframe);
    let v_start = restart.dts as f64 / 90_000.0;
    // 23 PES of two AAC frames in each half.
    assert_eq!(audio.len(), 92);
    let a_start = audio[46].dts as f64 / 48_000.0;
    assert!(
        (v_start - a_start).abs() < 0.001,
        "after the jump: video at {v_start} s, audio at {a_start} s"
    );
}

#[test]
fn audio_and_video_keep_their_distance() {
    // Audio starts 0.5 s before video: video's first sample is at 0.5 s.
    let mut mux = Mux::default();
    mux.tables();
    for i in 0..25u64 {
        mux.audio(i * 1920, &[adts(&[1]), adts(&[2])]);
    }
    mux.video(45_000, 45_000, &idr());
    mux.video(48_000, 48_000, &p_frame());
    let events = run(&mut TsSession::new(), &mux.out, 188);
    assert_eq!(samples(&events, 2)[0].dts, 0);
    assert_eq!(samples(&events, 1)[0].dts, 45_000);
}

#[test]
fn a_stream_that_never_configures_is_left_out() {
    let mut mux = Mux::default();
    mux.tables();
    // Video only; the AAC stream never sends anything.
    for i in 0..90u64 {
        mux.video(
            i * 3000,
            i * 3000,
            &if i % 15 == 0 { idr() } else { p_frame() },
        );
    }
    let events = run(&mut TsSession::new(), &mux.out, 1316);
    let tracks = first_tracks(&events);
    assert_eq!(tracks.len(), 1);
    assert!(warnings(&events).iter().any(|w| w.contains("without it")));
    assert_eq!(samples(&events, 1).len(), 90);
}

#[test]
fn opus_access_units_are_read_from_their_ts_framing() {
    let mut mux = Mux::default();
    let opus = [0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 1];
    mux.table(0, &build::pat(&[(1, PMT_PID)]));
    mux.table(PMT_PID, &build::pmt(0, AUDIO, &[(0x06, AUDIO, &opus)]));
    // 20 ms CELT packets (TOC config 31, code 0) of 300 bytes: a size of
    // 255 + 45, then a start trim.
    let packet: Vec<u8> = std::iter::once(0xf8)
        .chain(std::iter::repeat_n(7, 299))
        .collect();
    for i in 0..10u64 {
        let mut au = vec![0x7f, 0xf0, 0xff, 45, 0, 0];
        au.extend_from_slice(&packet);
        let mut pes = pes::write(0xbd, i * 1800, None, Some(au.len()));
        pes.extend_from_slice(&au);
        mux.packets(AUDIO, &pes, 0);
    }
    let events = run(&mut TsSession::new(), &mux.out, 1316);
    let tracks = first_tracks(&events);
    assert_eq!(
        (tracks[0].timescale, tracks[0].channels()),
        (48_000, Some(1))
    );
    let audio = samples(&events, 1);
    assert_eq!(audio.len(), 10);
    assert_eq!(audio[3].dts, 3 * 960);
    assert_eq!(audio[3].data.len(), 300);
}

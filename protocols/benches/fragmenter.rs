//! Fragmenter throughput on a synthetic 1080p30 stream: 60 s of H.264-like
//! samples at about 5 Mb/s with a keyframe every 2 s, plus 48 kHz AAC
//! frames, cut into 2 s segments of 0.5 s parts (LL-HLS settings).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamforge_protocols::cmaf::{Fragmenter, FragmenterConfig, TargetDuration};
use streamforge_protocols::codec::{AudioSpecificConfig, AvcConfig, CodecConfig};
use streamforge_protocols::media::{Sample, Track};

// x264 High profile SPS/PPS for 1280x720 (see codec::h264 tests for provenance).
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

const SECONDS: i64 = 60;
const FPS: i64 = 30;
const VIDEO_TIMESCALE: u32 = 90_000;
const AAC_FRAME: u32 = 1024;

fn stream() -> (Vec<Track>, Vec<Sample>) {
    let avc = AvcConfig::from_parameter_sets(&[SPS], &[PPS]).expect("fixture SPS");
    let asc = AudioSpecificConfig::new(2, 48_000, 2).expect("AAC-LC config");
    let tracks = vec![
        Track::new(1, VIDEO_TIMESCALE, CodecConfig::H264(avc)),
        Track::new(2, 48_000, CodecConfig::Aac(asc)),
    ];
    // One shared buffer; samples are slices of it, as a demuxer would hand out.
    let pool = Bytes::from(vec![0x5a; 200_000]);
    let frame_ticks = i64::from(VIDEO_TIMESCALE) / FPS;
    let mut video: Vec<Sample> = (0..SECONDS * FPS)
        .map(|i| {
            let keyframe = i % (2 * FPS) == 0;
            // ~5 Mb/s: 150 kB keyframes, ~18 kB others with some variation.
            let size = if keyframe {
                150_000
            } else {
                16_000 + (i as usize * 7919) % 4000
            };
            Sample {
                track: 1,
                dts: i * frame_ticks,
                cts_offset: [2, -1, -1][(i % 3) as usize] * frame_ticks as i32,
                duration: frame_ticks as u32,
                keyframe,
                data: pool.slice(..size),
            }
        })
        .collect();
    video[0].cts_offset = 2 * frame_ticks as i32;
    let audio = (0..SECONDS * 48_000 / i64::from(AAC_FRAME)).map(|i| Sample {
        track: 2,
        dts: i * i64::from(AAC_FRAME),
        cts_offset: 0,
        duration: AAC_FRAME,
        keyframe: true,
        data: pool.slice(..340),
    });
    // Interleave by time, as a muxed source delivers them.
    let mut samples: Vec<Sample> = video.into_iter().chain(audio).collect();
    samples.sort_by_key(|s| {
        let timescale = if s.track == 1 {
            VIDEO_TIMESCALE
        } else {
            48_000
        };
        s.dts * 1_000_000 / i64::from(timescale)
    });
    (tracks, samples)
}

fn fragment(c: &mut Criterion) {
    let (tracks, samples) = stream();
    let bytes: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
    let mut group = c.benchmark_group("fragmenter");
    group.sample_size(20);
    for (name, throughput) in [
        ("60s_1080p30_aac/bytes", Throughput::Bytes(bytes)),
        (
            "60s_1080p30_aac/samples",
            Throughput::Elements(samples.len() as u64),
        ),
    ] {
        group.throughput(throughput);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut f = Fragmenter::new(FragmenterConfig {
                    segment_duration: TargetDuration::from_secs(2),
                    part_duration: Some(TargetDuration::from_millis(500)),
                    first_segment_seq: 1,
                });
                for track in &tracks {
                    f.add_track(track).expect("track");
                }
                let mut out = 0usize;
                for sample in &samples {
                    f.push(sample.clone()).expect("push");
                    while let Some(event) = f.poll_event() {
                        out += black_box(&event).clone_len();
                    }
                }
                f.flush().expect("flush");
                while let Some(event) = f.poll_event() {
                    out += event.clone_len();
                }
                out
            })
        });
    }
    group.finish();
}

trait EventLen {
    fn clone_len(&self) -> usize;
}

impl EventLen for streamforge_protocols::cmaf::Event {
    fn clone_len(&self) -> usize {
        match self {
            Self::Part(p) => p.data.to_bytes().len(),
            Self::Segment(s) => s.data.to_bytes().len(),
        }
    }
}

criterion_group!(benches, fragment);
criterion_main!(benches);

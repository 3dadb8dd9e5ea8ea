//! A WebRTC publish's media from arbitrary frames and sender reports: the
//! first byte picks the tracks, then each record is a kind byte, a 32-bit
//! RTP timestamp and a length-prefixed payload (a frame in the codec of its
//! track, or a sender report's NTP time). Nothing panics, every sample
//! belongs to an announced track and its times stay in range.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::media::MediaKind;
use streamforge_protocols::webrtc::{WebrtcCodec, WebrtcEvent, WebrtcMedia};

fuzz_target!(|data: &[u8]| {
    let Some((&layout, mut rest)) = data.split_first() else {
        return;
    };
    let kinds: &[MediaKind] = match layout % 3 {
        0 => &[MediaKind::Video, MediaKind::Audio],
        1 => &[MediaKind::Video],
        _ => &[MediaKind::Audio, MediaKind::Video],
    };
    let Ok(mut media) = WebrtcMedia::new(kinds) else {
        return;
    };
    let mut announced = 0usize;
    while let [kind, t0, t1, t2, t3, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let track = usize::from(kind & 3);
        let timestamp = u32::from_be_bytes([*t0, *t1, *t2, *t3]);
        let result = if kind & 0x80 != 0 {
            let mut ntp = [0u8; 8];
            let n = payload.len().min(8);
            ntp[..n].copy_from_slice(&payload[..n]);
            media.sender_report(track, u64::from_be_bytes(ntp), timestamp)
        } else {
            let codec = match (kind >> 2) & 3 {
                0 => WebrtcCodec::H264,
                1 => WebrtcCodec::H265,
                2 => WebrtcCodec::Opus { channels: 2 },
                _ => WebrtcCodec::Opus { channels: 1 },
            };
            media.frame(track, codec, timestamp, payload, kind & 0x40 == 0)
        };
        while let Some(event) = media.poll_event() {
            match event {
                WebrtcEvent::Tracks(tracks) => announced = tracks.len(),
                WebrtcEvent::Sample(sample) => {
                    assert!(announced > 0, "a sample before the tracks");
                    assert!(sample.track >= 1 && sample.track as usize <= kinds.len());
                }
                WebrtcEvent::KeyframeNeeded(track) => assert!(track < kinds.len()),
                WebrtcEvent::Warning(_) => {}
            }
        }
        if result.is_err() {
            return;
        }
    }
    media.finish();
    while media.poll_event().is_some() {}
});

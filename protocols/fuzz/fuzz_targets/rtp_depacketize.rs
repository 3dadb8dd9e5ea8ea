//! Every depacketizer on arbitrary RTP packets: the first byte picks the
//! payload format, the rest is a sequence of length-prefixed packets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::rtp::{self, Depacketizer};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, mut rest)) = data.split_first() else {
        return;
    };
    let mut d = match kind % 5 {
        0 => Depacketizer::H264(rtp::h264::H264Depacketizer::new()),
        1 => Depacketizer::H265(rtp::h265::H265Depacketizer::new()),
        2 => match rtp::aac::AacDepacketizer::new(rtp::aac::AacParams::HBR) {
            Ok(d) => Depacketizer::Aac(d),
            Err(_) => return,
        },
        3 => Depacketizer::Latm(rtp::latm::LatmDepacketizer::new()),
        _ => Depacketizer::Opus(rtp::opus::OpusDepacketizer::new()),
    };
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        if let Ok((info, payload)) = rtp::parse_packet(packet) {
            let _ = d.push(&info, payload);
        }
        while let Some(frame) = d.pull() {
            assert!(frame.data.len() <= rtp::MAX_ACCESS_UNIT);
        }
    }
    d.flush();
    while d.pull().is_some() {}
});

//! Bit rates and frame rates computed from the packaged data, as the
//! manifests define them.
//!
//! - HLS `BANDWIDTH` is the *peak segment bit rate* and `AVERAGE-BANDWIDTH`
//!   the *average segment bit rate* of RFC 8216bis §4.4.6.2.
//! - DASH `Representation@bandwidth` is the rate of a constant-bit-rate
//!   channel over which playout, started `MPD@minBufferTime` after the first
//!   bit from any SAP, never stalls (ISO/IEC 23009-1 §5.3.5.2):
//!   [`dash_bandwidth`].

use crate::hls::FrameRate;

/// The size and duration of one segment (or one I-frame range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub bytes: u64,
    /// Duration in ticks of the track timescale.
    pub ticks: u64,
}

/// Bits per second of `bytes` over `ticks / timescale` seconds, rounded up;
/// 0 for an empty duration.
pub fn bit_rate(bytes: u64, ticks: u64, timescale: u32) -> u64 {
    if ticks == 0 {
        return 0;
    }
    let bits = u128::from(bytes) * 8 * u128::from(timescale);
    u64::try_from(bits.div_ceil(u128::from(ticks))).unwrap_or(u64::MAX)
}

/// RFC 8216bis §4.4.6.2: "The peak segment bit rate of a Media Playlist is
/// the largest bit rate of any contiguous set of segments whose total
/// duration is between 0.5 and 1.5 times the target duration. The bit rate
/// of a set is calculated by dividing the sum of the segment sizes by the sum
/// of the segment durations."
///
/// When no set qualifies (a presentation shorter than half the target
/// duration), the whole presentation's rate is the only measure there is.
pub fn peak_segment_bit_rate(segments: &[Span], timescale: u32, target_secs: u32) -> u64 {
    let target = u64::from(target_secs) * u64::from(timescale);
    let mut peak = None;
    for start in 0..segments.len() {
        let (mut bytes, mut ticks) = (0u64, 0u64);
        for s in &segments[start..] {
            bytes = bytes.saturating_add(s.bytes);
            ticks = ticks.saturating_add(s.ticks);
            // Compared doubled: 2·d ≤ 3·target and 2·d ≥ target.
            if ticks.saturating_mul(2) > target.saturating_mul(3) {
                break;
            }
            if ticks.saturating_mul(2) >= target {
                let rate = bit_rate(bytes, ticks, timescale);
                peak = Some(peak.map_or(rate, |p: u64| p.max(rate)));
            }
        }
    }
    peak.unwrap_or_else(|| average_bit_rate(segments, timescale))
}

/// RFC 8216bis §4.4.6.2 AVERAGE-BANDWIDTH: total size over total duration.
pub fn average_bit_rate(segments: &[Span], timescale: u32) -> u64 {
    let bytes = segments.iter().map(|s| s.bytes).sum();
    let ticks = segments.iter().map(|s| s.ticks).sum();
    bit_rate(bytes, ticks, timescale)
}

/// ISO/IEC 23009-1 §5.3.5.2 `@bandwidth` for `min_buffer_ticks` of
/// `@minBufferTime`, at segment granularity: delivery from the start of any
/// segment `j` must complete each later segment `k` before its playout
/// starts, `min_buffer` after the first bit, so the rate is the largest
/// `bits(j..=k) / (min_buffer + start(k) - start(j))`. Requiring whole
/// segments is stricter than the standard's sample granularity, so the
/// value is safe. With `min_buffer` at least the longest segment it never
/// exceeds the largest single-segment rate; a short final segment does not
/// inflate it.
pub fn dash_bandwidth(segments: &[Span], timescale: u32, min_buffer_ticks: u64) -> u64 {
    let mut peak = 0;
    for j in 0..segments.len() {
        let (mut bytes, mut span) = (0u64, 0u64);
        for s in &segments[j..] {
            bytes = bytes.saturating_add(s.bytes);
            let window = min_buffer_ticks.saturating_add(span);
            peak = peak.max(bit_rate(bytes, window, timescale));
            span = span.saturating_add(s.ticks);
        }
    }
    peak
}

/// Sample durations of a video track, excluding its last sample (whose
/// stated duration is often a muxer's guess).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurationStats {
    pub count: u64,
    pub total: u64,
    pub min: u32,
    pub max: u32,
}

impl DurationStats {
    pub fn add(&mut self, duration: u32) {
        if self.count == 0 {
            (self.min, self.max) = (duration, duration);
        } else {
            self.min = self.min.min(duration);
            self.max = self.max.max(duration);
        }
        self.count += 1;
        self.total += u64::from(duration);
    }

    /// The frame rate a manifest should state.
    ///
    /// Constant durations give the exact rate (`15360/512` → 30). Durations
    /// one tick apart are a constant rate rounded to a coarse timescale
    /// (33/34 ms at 1 kHz) and give the mean rate. Otherwise the
    /// stream is truly variable and the shortest duration gives the maximum
    /// rate, which is what HLS FRAME-RATE states (RFC 8216bis §4.4.6.2:
    /// "the maximum frame rate for all the video in the Variant Stream").
    pub fn frame_rate(&self, timescale: u32) -> Option<FrameRate> {
        if self.count == 0 || self.min == 0 || timescale == 0 {
            return None;
        }
        if self.max - self.min == 1 {
            return rational(self.count * u64::from(timescale), self.total);
        }
        rational(u64::from(timescale), u64::from(self.min))
    }
}

/// `num / den` reduced; approximated in thousandths when it does not fit `u32`.
pub fn rational(num: u64, den: u64) -> Option<FrameRate> {
    if num == 0 || den == 0 {
        return None;
    }
    let g = gcd(num, den);
    let (n, d) = (num / g, den / g);
    match (u32::try_from(n), u32::try_from(d)) {
        (Ok(n), Ok(d)) => FrameRate::new(n, d),
        _ => {
            let milli = (u128::from(num) * 1000 + u128::from(den) / 2) / u128::from(den);
            FrameRate::new(u32::try_from(milli).ok()?, 1000)
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(bytes: u64, secs_x10: u64) -> Span {
        Span {
            bytes,
            ticks: secs_x10 * 9_000,
        }
    }

    #[test]
    fn bit_rates_round_up() {
        assert_eq!(bit_rate(1000, 90_000, 90_000), 8000);
        assert_eq!(bit_rate(1, 3, 1), 3);
        assert_eq!(bit_rate(5, 0, 90_000), 0);
    }

    #[test]
    fn peak_is_over_sets_of_half_to_one_and_a_half_targets() {
        // Target 4 s. Segments of 4 s at 1, 3 and 2 Mb/s, then a 0.5 s tail at 16 Mb/s.
        let segments = [
            seg(500_000, 40),
            seg(1_500_000, 40),
            seg(1_000_000, 40),
            seg(1_000_000, 5),
        ];
        // The tail alone (0.5 s < 2 s) does not count; with its predecessor
        // (4.5 s ≤ 6 s) it does: 2 MB over 4.5 s = 3.56 Mb/s, above 3 Mb/s.
        assert_eq!(peak_segment_bit_rate(&segments, 90_000, 4), 3_555_556);
        // minBufferTime 4 s: the 3 Mb/s segment alone sets the rate; the
        // 16 Mb/s tail only needs 8 Mb over 4 s.
        assert_eq!(dash_bandwidth(&segments, 90_000, 360_000), 3_000_000);
        // 2 s: starting at the 1.5 MB segment, it must arrive within 2 s.
        assert_eq!(dash_bandwidth(&segments, 90_000, 180_000), 6_000_000);
        assert_eq!(dash_bandwidth(&[], 90_000, 180_000), 0);
        assert_eq!(average_bit_rate(&segments, 90_000), 2_560_000);
    }

    #[test]
    fn peak_falls_back_to_the_average_for_short_presentations() {
        let segments = [seg(1000, 3), seg(3000, 4)];
        assert_eq!(peak_segment_bit_rate(&segments, 90_000, 4), 45_715);
        assert_eq!(peak_segment_bit_rate(&[], 90_000, 4), 0);
    }

    #[test]
    fn frame_rates() {
        let stats = |durations: &[u32]| {
            let mut s = DurationStats::default();
            durations.iter().for_each(|&d| s.add(d));
            s
        };
        let fr = |n, d| FrameRate::new(n, d);
        assert_eq!(stats(&[512; 10]).frame_rate(15_360), fr(30, 1));
        assert_eq!(stats(&[3003; 4]).frame_rate(90_000), fr(30_000, 1001));
        // 30 fps in milliseconds: mean rate.
        assert_eq!(stats(&[33, 34, 33]).frame_rate(1000), fr(30, 1));
        // Truly variable: the maximum rate.
        assert_eq!(stats(&[3000, 6000, 3000]).frame_rate(90_000), fr(30, 1));
        assert_eq!(stats(&[]).frame_rate(90_000), None);
        // 4294967311 is prime and above u32::MAX: approximated.
        assert_eq!(rational(4_294_967_311, 143_165_577), fr(30_000, 1000));
    }
}

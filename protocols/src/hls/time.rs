//! Exact media durations and wall-clock instants, formatted by integer
//! arithmetic only: no floating point (no drift over hours of segments) and no
//! clock (the caller passes the time in).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MICROS_PER_SEC: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A duration as an exact rational: `ticks / timescale` seconds.
///
/// Media durations come from the container in integer ticks (90 kHz video,
/// 48 kHz audio); keeping them as such means `30000/1001` frame durations sum
/// exactly and an `EXTINF` never disagrees with the media it describes.
/// `==` compares the representation; [`at_most`](Self::at_most) compares
/// values across timescales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediaDuration {
    ticks: u64,
    timescale: u32,
}

impl MediaDuration {
    /// `None` when `timescale` is zero.
    pub const fn new(ticks: u64, timescale: u32) -> Option<Self> {
        if timescale == 0 {
            None
        } else {
            Some(Self { ticks, timescale })
        }
    }

    pub const fn from_secs(secs: u32) -> Self {
        Self {
            ticks: secs as u64,
            timescale: 1,
        }
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self {
            ticks: millis,
            timescale: 1000,
        }
    }

    pub const fn ticks(self) -> u64 {
        self.ticks
    }

    pub const fn timescale(self) -> u32 {
        self.timescale
    }

    pub const fn is_zero(self) -> bool {
        self.ticks == 0
    }

    /// Whole nanoseconds, rounded down. Used for sums over many durations with
    /// different timescales, where nanosecond resolution is far below anything
    /// a playlist expresses.
    pub fn as_nanos(self) -> u128 {
        u128::from(self.ticks) * NANOS_PER_SEC / u128::from(self.timescale)
    }

    /// Seconds rounded to the nearest integer, halves up: the comparison
    /// RFC 8216bis §4.4.3.1 prescribes against EXT-X-TARGETDURATION.
    pub fn rounded_secs(self) -> u64 {
        let ts = u128::from(self.timescale);
        let secs = (u128::from(self.ticks) * 2 + ts) / (2 * ts);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }

    /// `self * factor`, saturating.
    pub fn saturating_mul(self, factor: u64) -> Self {
        Self {
            ticks: self.ticks.saturating_mul(factor),
            timescale: self.timescale,
        }
    }

    /// Decimal seconds rounded half-up to microseconds, printed with at least
    /// three and at most six decimals (`2.000`, `2.002`, `2.005333`).
    pub fn decimal(self) -> DecimalSecs {
        let micros = (u128::from(self.ticks) * MICROS_PER_SEC + u128::from(self.timescale) / 2)
            / u128::from(self.timescale);
        DecimalSecs(micros)
    }

    /// Exact `self <= other`, whatever the timescales.
    pub fn at_most(self, other: Self) -> bool {
        u128::from(self.ticks) * u128::from(other.timescale)
            <= u128::from(other.ticks) * u128::from(self.timescale)
    }
}

/// A non-negative decimal number of seconds with microsecond resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DecimalSecs(u128);

impl fmt::Display for DecimalSecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROS_PER_SEC;
        let mut frac = self.0 % MICROS_PER_SEC;
        let mut digits = 6;
        while digits > 3 && frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{frac:0digits$}")
    }
}

/// Milliseconds since the Unix epoch (UTC, leap seconds not counted): the
/// wall-clock type of `EXT-X-PROGRAM-DATE-TIME` and the MPD's `xs:dateTime`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// Converts a time the caller read from its clock; `None` if it lies
    /// outside the `i64` millisecond range.
    pub fn from_system_time(t: SystemTime) -> Option<Self> {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).ok().map(Self),
            Err(e) => i64::try_from(e.duration().as_millis())
                .ok()
                .map(|ms| Self(-ms)),
        }
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// ISO 8601 / RFC 3339 UTC with milliseconds: `2026-11-03T09:41:07.250Z`.
    /// Valid as an HLS `date-time-msec` and as an `xs:dateTime`.
    pub fn iso8601(self) -> Iso8601 {
        Iso8601(self)
    }
}

/// Display adapter for [`UnixMillis::iso8601`].
#[derive(Clone, Copy, Debug)]
pub struct Iso8601(UnixMillis);

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.0;
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let secs = in_day / 1000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            in_day % 1000
        )
    }
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant,
/// "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ticks: u64, ts: u32) -> MediaDuration {
        MediaDuration::new(ticks, ts).unwrap_or(MediaDuration::from_secs(0))
    }

    #[test]
    fn zero_timescale_is_rejected() {
        assert_eq!(MediaDuration::new(1, 0), None);
    }

    #[test]
    fn decimals() {
        assert_eq!(d(180_000, 90_000).decimal().to_string(), "2.000");
        assert_eq!(d(180_180, 90_000).decimal().to_string(), "2.002");
        assert_eq!(d(96_256, 48_000).decimal().to_string(), "2.005333");
        assert_eq!(d(1001, 3000).decimal().to_string(), "0.333667");
        assert_eq!(d(1, 3).decimal().to_string(), "0.333333");
        assert_eq!(d(15, 10).decimal().to_string(), "1.500");
        assert_eq!(d(0, 1).decimal().to_string(), "0.000");
    }

    #[test]
    fn rounding_to_seconds() {
        assert_eq!(d(135_000, 90_000).rounded_secs(), 2);
        assert_eq!(d(134_999, 90_000).rounded_secs(), 1);
        assert_eq!(d(3, 2).rounded_secs(), 2);
        assert_eq!(d(5, 1).rounded_secs(), 5);
    }

    #[test]
    fn exact_comparison_across_timescales() {
        assert!(d(1001, 30_000).at_most(d(3003, 90_000)));
        assert!(d(3003, 90_000).at_most(d(1001, 30_000)));
        assert!(!d(3004, 90_000).at_most(d(1001, 30_000)));
        assert!(d(1, 3).at_most(d(334, 1000)));
        assert!(!d(334, 1000).at_most(d(1, 3)));
    }

    #[test]
    fn iso8601_from_unix_millis() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (1_793_698_867_250, "2026-11-03T09:41:07.250Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(UnixMillis(ms).iso8601().to_string(), text, "{ms}");
        }
    }

    #[test]
    fn iso8601_day_boundaries_over_four_centuries() {
        // Every day from 1970 for 400 years: the date advances by exactly one
        // day, months and years roll over in order.
        let mut prev = civil_from_days(-1);
        for day in 0..146_097 {
            let cur = civil_from_days(day);
            let rolled = if cur.1 == prev.1 {
                cur.2 == prev.2 + 1 && cur.0 == prev.0
            } else if cur.0 == prev.0 {
                cur.1 == prev.1 + 1 && cur.2 == 1
            } else {
                cur.0 == prev.0 + 1 && cur.1 == 1 && cur.2 == 1 && prev.1 == 12 && prev.2 == 31
            };
            assert!(rolled, "{prev:?} -> {cur:?}");
            prev = cur;
        }
        assert_eq!(prev, (2369, 12, 31));
    }

    #[test]
    fn system_time_conversion() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(UnixMillis::from_system_time(t), Some(UnixMillis(1_500)));
        let before = UNIX_EPOCH - Duration::from_millis(2);
        assert_eq!(UnixMillis::from_system_time(before), Some(UnixMillis(-2)));
    }
}

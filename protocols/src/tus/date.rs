//! `Upload-Expires` (tus 1.0.0 §expiration): "The value of the
//! Upload-Expires header MUST be in RFC 9110 datetime format", i.e. the
//! IMF-fixdate of RFC 9110 §5.6.7, formatted here from unix seconds by
//! arithmetic alone.

/// Last second IMF-fixdate can write (four-digit year):
/// 9999-12-31T23:59:59Z.
pub const MAX_HTTP_DATE_SECONDS: u64 = 253_402_300_799;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats unix seconds as an IMF-fixdate, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`. Times past year 9999 are clamped to
/// [`MAX_HTTP_DATE_SECONDS`].
pub fn http_date(unix_seconds: u64) -> String {
    let secs = unix_seconds.min(MAX_HTTP_DATE_SECONDS);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday; `% 7` keeps the index in range.
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01, for days
/// on or after the epoch (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference strings from Python's `email.utils.formatdate(t, usegmt=True)`.
        for (t, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_799, "Wed, 28 Feb 2024 23:59:59 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (2_147_483_648, "Tue, 19 Jan 2038 03:14:08 GMT"),
            (4_107_456_000, "Sun, 28 Feb 2100 00:00:00 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(http_date(t), want, "{t}");
        }
    }

    #[test]
    fn clamps_past_year_9999() {
        assert_eq!(http_date(253_402_300_800), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn days_advance_one_at_a_time() {
        let mut prev = civil_from_days(0);
        for day in 1..=(MAX_HTTP_DATE_SECONDS / 86_400) {
            let cur = civil_from_days(day);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
        assert_eq!(prev, (9999, 12, 31));
    }
}

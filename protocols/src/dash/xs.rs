//! XML Schema lexical forms used by the MPD (ISO/IEC 23009-1 Annex B
//! schema): `xs:duration`, and attribute-value escaping. Pure formatting.

use std::fmt;

use crate::hls::time::MediaDuration;

use super::DashError;

/// `xs:duration` in the `PT[nH][nM]n[.f]S` subset, e.g. `PT2S`,
/// `PT1M30.5S`, `PT1H`, `PT0S`; seconds rounded half-up to microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsDuration(pub MediaDuration);

impl fmt::Display for XsDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let micros = (u128::from(d.ticks()) * 1_000_000 + u128::from(d.timescale()) / 2)
            / u128::from(d.timescale());
        let secs = micros / 1_000_000;
        let mut frac = micros % 1_000_000;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        f.write_str("PT")?;
        if h > 0 {
            write!(f, "{h}H")?;
        }
        if m > 0 {
            write!(f, "{m}M")?;
        }
        if s > 0 || frac > 0 || secs == 0 {
            write!(f, "{s}")?;
            if frac > 0 {
                let mut digits = 6;
                while frac.is_multiple_of(10) {
                    frac /= 10;
                    digits -= 1;
                }
                write!(f, ".{frac:0digits$}")?;
            }
            f.write_str("S")?;
        }
        Ok(())
    }
}

/// Appends `value` escaped for a double-quoted XML attribute. Characters
/// XML 1.0 forbids (§2.2 Char) are an error rather than silently dropped.
pub(crate) fn escape_attr(
    out: &mut String,
    attribute: &'static str,
    value: &str,
) -> Result<(), DashError> {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(DashError::InvalidText {
                    attribute,
                    value: value.to_owned(),
                });
            }
            c => out.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xs(ticks: u64, ts: u32) -> String {
        MediaDuration::new(ticks, ts)
            .map(|d| XsDuration(d).to_string())
            .unwrap_or_default()
    }

    #[test]
    fn durations() {
        assert_eq!(xs(0, 1), "PT0S");
        assert_eq!(xs(2, 1), "PT2S");
        assert_eq!(xs(180_180, 90_000), "PT2.002S");
        assert_eq!(xs(1, 2), "PT0.5S");
        assert_eq!(xs(90, 1), "PT1M30S");
        assert_eq!(xs(3600, 1), "PT1H");
        assert_eq!(xs(3_661_500, 1000), "PT1H1M1.5S");
        assert_eq!(xs(7_200_001, 1000), "PT2H0.001S");
        assert_eq!(xs(1, 3), "PT0.333333S");
        assert_eq!(xs(86_400 * 2, 1), "PT48H");
    }

    #[test]
    fn escaping() {
        let mut out = String::new();
        assert_eq!(escape_attr(&mut out, "media", "a&b<c>\"d'\te"), Ok(()));
        assert_eq!(out, "a&amp;b&lt;c&gt;&quot;d&apos;&#9;e");
        assert!(escape_attr(&mut out, "media", "bad\u{1}").is_err());
    }
}

//! Parsing of the LL-HLS playlist request parameters (RFC 8216bis §6.2.5):
//! `_HLS_msn`, `_HLS_part` (blocking reload) and `_HLS_skip` (delta update).
//!
//! Call [`PlaylistQuery::parse`] on the raw query string (without `?`), then
//! ask [`LivePlaylist::is_available`](super::LivePlaylist::is_available) about
//! `msn`/`part` and pass `skip` to the renderer. Every error maps to HTTP 400.
//! Parameters other than the three above (CDN tokens, cache busters) are
//! ignored, as §6.2.5 requires clients to keep them in order for caching but
//! gives them no meaning to the playlist.

/// Longest query string considered, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// Most `name=value` pairs considered.
pub const MAX_QUERY_PAIRS: usize = 64;

/// `_HLS_skip` (§6.2.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipRequest {
    /// `_HLS_skip=YES`: skip old media segments.
    Yes,
    /// `_HLS_skip=v2`: also skip old EXT-X-DATERANGE tags. This server emits
    /// no date ranges, so it is served like [`SkipRequest::Yes`].
    V2,
}

/// The LL-HLS parameters of a playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlaylistQuery {
    /// `_HLS_msn`: block until this media sequence number is in the playlist.
    pub msn: Option<u64>,
    /// `_HLS_part`: and this part index of it.
    pub part: Option<u32>,
    pub skip: Option<SkipRequest>,
}

/// Why a playlist query is a Bad Request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query string longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    #[error("more than {MAX_QUERY_PAIRS} query parameters")]
    TooManyPairs,
    #[error("malformed percent-encoding at byte {position}")]
    BadPercentEncoding { position: usize },
    #[error("{name} appears more than once")]
    Duplicate { name: &'static str },
    #[error("{name}={value:?} is not a decimal integer in range")]
    NotANumber { name: &'static str, value: String },
    #[error("_HLS_skip={value:?}: expected YES or v2")]
    InvalidSkip { value: String },
    /// §6.2.5.2: "_HLS_part ... without a _HLS_msn parameter ... the server
    /// MUST return Bad Request".
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
}

const MSN: &str = "_HLS_msn";
const PART: &str = "_HLS_part";
const SKIP: &str = "_HLS_skip";

impl PlaylistQuery {
    /// Parses a raw query string such as `_HLS_msn=271&_HLS_part=2`.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let mut out = Self::default();
        let mut offset = 0;
        for (count, pair) in query.split('&').enumerate() {
            if count >= MAX_QUERY_PAIRS {
                return Err(QueryError::TooManyPairs);
            }
            let start = offset;
            offset += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(raw_name, start)?;
            let value_start = start + raw_name.len() + 1;
            match name.as_str() {
                MSN => {
                    let value = percent_decode(raw_value, value_start)?;
                    set_once(&mut out.msn, MSN, parse_decimal(MSN, &value)?)?;
                }
                PART => {
                    let value = percent_decode(raw_value, value_start)?;
                    set_once(&mut out.part, PART, parse_decimal(PART, &value)?)?;
                }
                SKIP => {
                    let value = percent_decode(raw_value, value_start)?;
                    let skip = match value.as_str() {
                        "YES" => SkipRequest::Yes,
                        "v2" => SkipRequest::V2,
                        _ => return Err(QueryError::InvalidSkip { value }),
                    };
                    set_once(&mut out.skip, SKIP, skip)?;
                }
                _ => {}
            }
        }
        if out.part.is_some() && out.msn.is_none() {
            return Err(QueryError::PartWithoutMsn);
        }
        Ok(out)
    }

    /// Whether the client asked to block until a later playlist.
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Duplicate { name });
    }
    *slot = Some(value);
    Ok(())
}

/// Strict decimal: ASCII digits only, no sign, no spaces, in range of `T`.
fn parse_decimal<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, QueryError> {
    let not_a_number = || QueryError::NotANumber {
        name,
        value: value.chars().take(32).collect(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    value.parse().map_err(|_| not_a_number())
}

/// RFC 3986 §2.1 percent-decoding. `+` is left as is: it means a space only
/// in HTML forms, and no LL-HLS parameter value contains one.
fn percent_decode(raw: &str, base: usize) -> Result<String, QueryError> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let bad = QueryError::BadPercentEncoding { position: base + i };
            let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(bad),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| QueryError::BadPercentEncoding {
        position: base + e.utf8_error().valid_up_to(),
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<PlaylistQuery, QueryError> {
        PlaylistQuery::parse(q)
    }

    #[test]
    fn blocking_reload_with_part_and_skip() {
        assert_eq!(
            parse("_HLS_msn=271&_HLS_part=2&_HLS_skip=YES"),
            Ok(PlaylistQuery {
                msn: Some(271),
                part: Some(2),
                skip: Some(SkipRequest::Yes)
            })
        );
        assert_eq!(
            parse("token=abc&_HLS_skip=v2"),
            Ok(PlaylistQuery {
                skip: Some(SkipRequest::V2),
                ..PlaylistQuery::default()
            })
        );
    }

    #[test]
    fn empty_and_foreign_parameters() {
        assert_eq!(parse(""), Ok(PlaylistQuery::default()));
        assert_eq!(parse("&&a=b&c"), Ok(PlaylistQuery::default()));
        assert!(!parse("x=1").is_ok_and(|q| q.is_blocking()));
    }

    #[test]
    fn percent_encoded_names_and_values() {
        let q = parse("%5FHLS_msn=%32%37&_HLS_part=1");
        assert_eq!(q.map(|q| (q.msn, q.part)), Ok((Some(27), Some(1))));
        assert_eq!(
            parse("_HLS_msn=1%2"),
            Err(QueryError::BadPercentEncoding { position: 10 })
        );
        assert_eq!(
            parse("_HLS_msn=%zz"),
            Err(QueryError::BadPercentEncoding { position: 9 })
        );
        assert_eq!(
            parse("_HLS_msn=%ff"),
            Err(QueryError::BadPercentEncoding { position: 9 })
        );
    }

    #[test]
    fn part_without_msn_is_rejected() {
        assert_eq!(parse("_HLS_part=3"), Err(QueryError::PartWithoutMsn));
    }

    #[test]
    fn non_numeric_values_are_rejected() {
        for q in [
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1.0",
            "_HLS_msn=0x10",
            "_HLS_msn=%201",
            "_HLS_msn=18446744073709551616",
            "_HLS_msn=1&_HLS_part=4294967296",
        ] {
            assert!(
                matches!(parse(q), Err(QueryError::NotANumber { .. })),
                "{q}"
            );
        }
        assert_eq!(
            parse("_HLS_msn=18446744073709551615").map(|q| q.msn),
            Ok(Some(u64::MAX))
        );
    }

    #[test]
    fn bad_skip_and_duplicates() {
        assert_eq!(
            parse("_HLS_skip=yes"),
            Err(QueryError::InvalidSkip {
                value: "yes".into()
            })
        );
        assert_eq!(
            parse("_HLS_msn=1&_HLS_msn=2"),
            Err(QueryError::Duplicate { name: "_HLS_msn" })
        );
    }

    #[test]
    fn limits() {
        let long = format!("a={}", "x".repeat(MAX_QUERY_LEN));
        assert_eq!(parse(&long), Err(QueryError::TooLong));
        let many = vec!["a=1"; MAX_QUERY_PAIRS + 1].join("&");
        assert_eq!(parse(&many), Err(QueryError::TooManyPairs));
    }
}

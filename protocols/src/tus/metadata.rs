//! `Upload-Metadata` (tus 1.0.0 §Upload-Metadata).
//!
//! "The Upload-Metadata request and response header MUST consist of one or
//! more comma-separated key-value pairs. The key and value MUST be separated
//! by a space. The key MUST NOT contain spaces and commas and MUST NOT be
//! empty. The key SHOULD be ASCII encoded and the value MUST be Base64
//! encoded. All keys MUST be unique. The value MAY be empty. In these cases,
//! the space, which would normally separate the key and the value, MAY be
//! left out."

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::error::{TusError, echo};

/// Largest `Upload-Metadata` header accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Most key-value pairs accepted in one `Upload-Metadata` header.
pub const MAX_METADATA_PAIRS: usize = 64;

const NAME: &str = "Upload-Metadata";

/// Standard alphabet with canonical padding, as tusd and the reference
/// clients produce; canonical input is what makes [`Metadata::encode`]
/// reproduce the header byte for byte.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Parsed `Upload-Metadata`: ordered, unique keys, each with a decoded value
/// or none.
///
/// A key sent without a value and a key sent with an empty value (`"key "`)
/// are the same thing to the spec; both are stored without a value and
/// encoded as the bare key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

impl Metadata {
    /// Parses the header value.
    ///
    /// Whitespace around each pair is tolerated (HTTP list syntax, RFC 9110
    /// §5.6.1); an empty header gives empty metadata. The header is capped at
    /// [`MAX_METADATA_BYTES`] and [`MAX_METADATA_PAIRS`] before anything is
    /// allocated.
    pub fn parse(header: &str) -> Result<Self, TusError> {
        if header.len() > MAX_METADATA_BYTES {
            return Err(TusError::MetadataTooLarge {
                len: header.len(),
                max: MAX_METADATA_BYTES,
            });
        }
        let mut meta = Self::default();
        if header.trim_matches([' ', '\t']).is_empty() {
            return Ok(meta);
        }
        for (i, pair) in header.split(',').enumerate() {
            let pair = pair.trim_matches([' ', '\t']);
            if pair.is_empty() {
                return Err(TusError::invalid(NAME, format!("pair {i} is empty")));
            }
            let (key, value) = match pair.split_once(' ') {
                Some((k, v)) => (k, v),
                None => (pair, ""),
            };
            let value = if value.is_empty() {
                None
            } else {
                Some(BASE64.decode(value).map_err(|e| {
                    TusError::invalid(
                        NAME,
                        format!(
                            "value of key {:?} is not padded standard base64: {e}",
                            echo(key)
                        ),
                    )
                })?)
            };
            meta.push_checked(key, value)?;
        }
        Ok(meta)
    }

    /// Adds a pair, with the same rules as [`parse`](Self::parse): valid
    /// unique key, at most [`MAX_METADATA_PAIRS`] pairs, and an encoded form
    /// within [`MAX_METADATA_BYTES`]. An empty value is stored as no value.
    pub fn push(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), TusError> {
        let value = value.filter(|v| !v.is_empty());
        let added = encoded_len_of(key, value).saturating_add(usize::from(!self.pairs.is_empty()));
        let len = self.encode_len().saturating_add(added);
        if len > MAX_METADATA_BYTES {
            return Err(TusError::MetadataTooLarge {
                len,
                max: MAX_METADATA_BYTES,
            });
        }
        self.push_checked(key, value.map(<[u8]>::to_vec))
    }

    fn push_checked(&mut self, key: &str, value: Option<Vec<u8>>) -> Result<(), TusError> {
        check_key(key)?;
        if self.pairs.len() >= MAX_METADATA_PAIRS {
            return Err(TusError::TooManyMetadataPairs {
                max: MAX_METADATA_PAIRS,
            });
        }
        if self.pairs.iter().any(|(k, _)| k == key) {
            return Err(TusError::invalid(
                NAME,
                format!("key {key:?} appears twice, keys must be unique"),
            ));
        }
        self.pairs
            .push((key.to_owned(), value.filter(|v| !v.is_empty())));
        Ok(())
    }

    /// The decoded value of `key`: `Some(&[])` for a key sent without a
    /// value, `None` if the key is absent.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref().unwrap_or_default())
    }

    /// The decoded value of `key` if it is UTF-8 (e.g. `filename`,
    /// `filetype`).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether `key` was sent, with or without a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// The pairs in header order; `None` for a key without a value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The header form, for HEAD responses ("responses to HEAD requests MUST
    /// include the Upload-Metadata header and its value as specified by the
    /// Client during the creation"). Pairs are joined by `,` without spaces,
    /// so `parse(encode(m)) == m`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encode_len());
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            if let Some(v) = value {
                out.push(' ');
                BASE64.encode_string(v, &mut out);
            }
        }
        out
    }

    fn encode_len(&self) -> usize {
        let pairs = self
            .pairs
            .iter()
            .map(|(k, v)| encoded_len_of(k, v.as_deref()))
            .fold(0usize, usize::saturating_add);
        pairs.saturating_add(self.pairs.len().saturating_sub(1))
    }
}

/// Length of `key` or `key base64(value)` in the header.
fn encoded_len_of(key: &str, value: Option<&[u8]>) -> usize {
    let value = value.map_or(0, |v| {
        v.len().div_ceil(3).saturating_mul(4).saturating_add(1)
    });
    key.len().saturating_add(value)
}

/// "The key MUST NOT contain spaces and commas and MUST NOT be empty. The key
/// SHOULD be ASCII encoded": we require visible ASCII, which also keeps
/// control characters out of logs and response headers.
fn check_key(key: &str) -> Result<(), TusError> {
    if key.is_empty() {
        return Err(TusError::invalid(NAME, "empty key"));
    }
    if let Some(pos) = key.bytes().position(|b| !b.is_ascii_graphic() || b == b',') {
        return Err(TusError::invalid(
            NAME,
            format!(
                "key {:?} has a byte at {pos} that is not visible ASCII or is a comma",
                echo(key)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_tus_js_client_header() {
        // tus-js-client with { filename: "world_domination_plan.pdf", is_confidential: "" }
        let h = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential";
        let m = Metadata::parse(h).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.get_str("filename"), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential"), Some(&b""[..]));
        assert!(m.contains_key("is_confidential"));
        assert_eq!(m.get("missing"), None);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![
                ("filename", Some(&b"world_domination_plan.pdf"[..])),
                ("is_confidential", None)
            ]
        );
        assert_eq!(m.encode(), h);
    }

    #[test]
    fn tolerates_list_whitespace_and_empty_values() {
        let m = Metadata::parse(" a YQ== , b ,c").unwrap();
        assert_eq!(m.get("a"), Some(&b"a"[..]));
        assert_eq!(m.iter().nth(1), Some(("b", None)));
        assert_eq!(m.encode(), "a YQ==,b,c");
        assert_eq!(Metadata::parse("").unwrap(), Metadata::default());
        assert_eq!(Metadata::parse("  ").unwrap(), Metadata::default());
    }

    #[test]
    fn get_str_rejects_non_utf8() {
        let m = Metadata::parse("bin /w==").unwrap();
        assert_eq!(m.get("bin"), Some(&[0xff][..]));
        assert_eq!(m.get_str("bin"), None);
    }

    #[test]
    fn rejects_malformed_pairs() {
        let cases = [
            ("a YQ==,,b", "pair 1 is empty"),
            ("a YQ==,", "pair 1 is empty"),
            (",a", "pair 0 is empty"),
            ("a YQ", "not padded standard base64"),
            ("a YR==", "not padded standard base64"),
            ("a YQ== x", "not padded standard base64"),
            ("a Y-==", "not padded standard base64"),
            ("a  YQ==", "not padded standard base64"),
            ("a YQ==,a", "appears twice"),
            ("fïle YQ==", "not visible ASCII"),
            ("a\u{1}b", "not visible ASCII"),
        ];
        for (h, want) in cases {
            let err = Metadata::parse(h).unwrap_err();
            assert_eq!(err.code(), "invalid_header", "{h:?}");
            assert_eq!(err.status(), 400, "{h:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("Upload-Metadata: "), "{msg}");
            assert!(msg.contains(want), "{h:?}: {msg}");
        }
    }

    #[test]
    fn caps_size_and_pairs() {
        let big = format!("k {}", "QUFB".repeat(1024));
        assert_eq!(
            Metadata::parse(&big),
            Err(TusError::MetadataTooLarge {
                len: big.len(),
                max: MAX_METADATA_BYTES
            })
        );
        assert_eq!(Metadata::parse(&big).unwrap_err().status(), 431);
        let keys = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(Metadata::parse(&keys(64)).unwrap().len(), 64);
        assert_eq!(
            Metadata::parse(&keys(65)),
            Err(TusError::TooManyMetadataPairs {
                max: MAX_METADATA_PAIRS
            })
        );
    }

    #[test]
    fn push_keeps_encode_parseable() {
        let mut m = Metadata::default();
        m.push("filename", Some(b"a.mp4")).unwrap();
        m.push("empty", Some(b"")).unwrap();
        m.push("flag", None).unwrap();
        assert_eq!(m.encode(), "filename YS5tcDQ=,empty,flag");
        assert_eq!(Metadata::parse(&m.encode()).unwrap(), m);
        assert_eq!(m.push("flag", None).unwrap_err().code(), "invalid_header");
        assert_eq!(m.push("a b", None).unwrap_err().code(), "invalid_header");
        let huge = vec![0u8; 3100];
        assert_eq!(
            m.push("big", Some(&huge)).unwrap_err().code(),
            "metadata_too_large"
        );
        // The last byte that fits: encode() stays exactly within the cap.
        let mut m = Metadata::default();
        m.push("k", Some(&vec![0u8; 3069])).unwrap();
        assert_eq!(m.encode().len(), 2 + 4092);
        assert!(m.push("xyz", None).is_err());
        assert!(Metadata::parse(&m.encode()).is_ok());
    }

    fn key() -> impl Strategy<Value = String> {
        "[!-+--~]{1,12}"
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Metadata::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[a-z ,=+/A-Z0-9\t]{0,80}") {
            if let Ok(m) = Metadata::parse(&s) {
                prop_assert_eq!(Metadata::parse(&m.encode()).unwrap(), m);
            }
        }

        #[test]
        fn encode_round_trips(
            pairs in proptest::collection::vec(
                (key(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
                0..20,
            )
        ) {
            let mut m = Metadata::default();
            for (k, v) in &pairs {
                let _ = m.push(k, v.as_deref());
            }
            let encoded = m.encode();
            let parsed = Metadata::parse(&encoded).unwrap();
            prop_assert_eq!(&parsed, &m);
            prop_assert_eq!(parsed.encode(), encoded);
        }
    }
}

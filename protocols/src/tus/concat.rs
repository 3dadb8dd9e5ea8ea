//! `Upload-Concat` (tus 1.0.0 §concatenation).
//!
//! "In order to create a partial upload the Client MUST add the
//! Upload-Concat header to the upload creation request. The value MUST be
//! `partial`." "The final upload ... the Upload-Concat header's value MUST be
//! the string `final` followed by a semicolon and a space-separated list of
//! the partial upload URLs that need to be concatenated."
//!
//! Only the upload ids are returned; the caller checks that each names a
//! partial upload of its own (with `concatenation-unfinished`, partials may
//! still be in progress when the final upload is created).

use super::error::{TusError, echo};

const NAME: &str = "Upload-Concat";

/// Most partial uploads one final upload may name.
pub const MAX_CONCAT_PARTS: usize = 256;
/// Longest upload id accepted in a partial upload URL.
pub const MAX_UPLOAD_ID_LEN: usize = 64;

/// A parsed `Upload-Concat` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    Partial,
    /// The ids (last URL path segment) of the partial uploads, in order.
    Final(Vec<String>),
}

impl Concat {
    /// Parses `partial` or `final;<url> <url> ...`.
    ///
    /// URLs may be absolute (`https://host/files/<id>`) or absolute paths
    /// (`/files/<id>`); the id must match `[A-Za-z0-9_-]{1,64}`. Separating
    /// whitespace may repeat. At most [`MAX_CONCAT_PARTS`] URLs.
    pub fn parse(value: &str) -> Result<Self, TusError> {
        let value = value.trim_matches([' ', '\t']);
        if value == "partial" {
            return Ok(Self::Partial);
        }
        let Some(urls) = value.strip_prefix("final;") else {
            return Err(TusError::invalid(
                NAME,
                format!(
                    "{:?} is neither \"partial\" nor \"final;<url> ...\"",
                    echo(value)
                ),
            ));
        };
        let count = urls.split_ascii_whitespace().count();
        if count == 0 {
            return Err(TusError::invalid(
                NAME,
                "final upload names no partial uploads",
            ));
        }
        if count > MAX_CONCAT_PARTS {
            return Err(TusError::invalid(
                NAME,
                format!(
                    "final upload names {count} partial uploads, at most {MAX_CONCAT_PARTS} allowed"
                ),
            ));
        }
        let mut ids = Vec::with_capacity(count);
        for (i, url) in urls.split_ascii_whitespace().enumerate() {
            ids.push(upload_id(url).map_err(|reason| {
                TusError::invalid(NAME, format!("URL {i} {:?}: {reason}", echo(url)))
            })?);
        }
        Ok(Self::Final(ids))
    }
}

/// The id of a partial upload from its URL: the last path segment.
fn upload_id(url: &str) -> Result<String, &'static str> {
    let path = if url.starts_with('/') {
        if url.starts_with("//") {
            return Err("a network-path reference is neither an absolute URL nor an absolute path");
        }
        url
    } else {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("not an absolute URL or an absolute path");
        };
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err("scheme is not http or https");
        }
        match rest.find('/') {
            Some(0) | None => return Err("URL has no host or no path"),
            Some(slash) => rest.get(slash..).unwrap_or_default(),
        }
    };
    let id = path.rsplit('/').next().unwrap_or_default();
    if id.is_empty() || id.len() > MAX_UPLOAD_ID_LEN {
        return Err("upload id (last path segment) must be 1 to 64 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("upload id (last path segment) may only contain A-Z a-z 0-9 _ -");
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partial_and_final() {
        assert_eq!(Concat::parse("partial"), Ok(Concat::Partial));
        assert_eq!(
            Concat::parse(
                "final;/files/a https://tus.example.org/files/b_2-X  http://h:8080/x/y/c"
            ),
            Ok(Concat::Final(vec!["a".into(), "b_2-X".into(), "c".into()]))
        );
        assert_eq!(
            Concat::parse("final; /files/a"),
            Ok(Concat::Final(vec!["a".into()]))
        );
        let id = "a".repeat(64);
        assert_eq!(
            Concat::parse(&format!("final;/files/{id}")),
            Ok(Concat::Final(vec![id]))
        );
    }

    #[test]
    fn rejects_bad_values() {
        let long = format!("final;/files/{}", "a".repeat(65));
        let many = format!("final;{}", "/f/a ".repeat(MAX_CONCAT_PARTS + 1));
        for (bad, want) in [
            ("", "neither"),
            ("Partial", "neither"),
            ("final", "neither"),
            ("final /files/a", "neither"),
            ("final;", "names no partial uploads"),
            ("final;   ", "names no partial uploads"),
            (&many, "at most 256"),
            ("final;files/a", "not an absolute URL"),
            ("final;//host/files/a", "network-path"),
            ("final;ftp://host/files/a", "not http or https"),
            ("final;https://host", "no host or no path"),
            ("final;https:///a", "no host or no path"),
            ("final;/files/a/", "1 to 64 characters"),
            (&long, "1 to 64 characters"),
            ("final;/files/a?x=1", "may only contain"),
            ("final;/files/a%20b", "may only contain"),
            ("final;/files/a /files/é", "URL 1"),
        ] {
            let err = Concat::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_header", "{bad:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("Upload-Concat: "), "{msg}");
            assert!(msg.contains(want), "{bad:?}: {msg}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Concat::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "(partial|final;)[a-z:/ _-]{0,40}") {
            let _ = Concat::parse(&s);
        }
    }
}

//! The creation POST (tus 1.0.0 §creation, §creation-defer-length,
//! §creation-with-upload, §concatenation).

use super::checksum::Checksum;
use super::concat::Concat;
use super::error::TusError;
use super::headers::{is_offset_content_type, name, parse_u64_header};
use super::metadata::Metadata;
use super::patch::{PatchRequest, UploadState};

/// What a creation POST asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationRequest {
    /// `None` when the length is deferred (`Upload-Defer-Length: 1`), or for
    /// a final concatenation, whose length is the sum of its partials.
    pub length: Option<u64>,
    pub metadata: Metadata,
    pub concat: Option<Concat>,
}

impl CreationRequest {
    /// Reads a creation request from its headers. `header` receives
    /// lower-case names (see [`name`](super::name)) and returns the value if
    /// present; `max_size` is the server's `Tus-Max-Size` (`u64::MAX` for no
    /// limit). Call after [`check_resumable`](super::check_resumable).
    ///
    /// - Exactly one of `Upload-Length` or `Upload-Defer-Length: 1`
    ///   (§creation-defer-length: "The value MUST be 1"), except for a final
    ///   concatenation, which must have neither (§concatenation: "the Client
    ///   MUST NOT include the Upload-Length header in the final upload
    ///   creation").
    /// - `Upload-Length` ≤ `max_size`, else 413.
    /// - `Upload-Metadata` and `Upload-Concat` parsed when present.
    pub fn from_headers<'a>(
        header: impl Fn(&str) -> Option<&'a str>,
        max_size: u64,
    ) -> Result<Self, TusError> {
        let concat = header(name::UPLOAD_CONCAT).map(Concat::parse).transpose()?;
        let length = header(name::UPLOAD_LENGTH);
        let defer = header(name::UPLOAD_DEFER_LENGTH);
        let length = if matches!(concat, Some(Concat::Final(_))) {
            if length.is_some() {
                return Err(TusError::FinalConcatLength {
                    header: "Upload-Length",
                });
            }
            if defer.is_some() {
                return Err(TusError::FinalConcatLength {
                    header: "Upload-Defer-Length",
                });
            }
            None
        } else {
            match (length, defer) {
                (Some(_), Some(_)) => return Err(TusError::LengthAndDefer),
                (None, None) => return Err(TusError::LengthRequired),
                (None, Some(d)) => {
                    if d.trim_matches([' ', '\t']) != "1" {
                        return Err(TusError::invalid(
                            "Upload-Defer-Length",
                            format!("{:?}, the only allowed value is 1", super::error::echo(d)),
                        ));
                    }
                    None
                }
                (Some(l), None) => {
                    let length = parse_u64_header("Upload-Length", l)?;
                    if length > max_size {
                        return Err(TusError::TooLarge {
                            length,
                            max: max_size,
                        });
                    }
                    Some(length)
                }
            }
        };
        let metadata = header(name::UPLOAD_METADATA)
            .map(Metadata::parse)
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            length,
            metadata,
            concat,
        })
    }

    /// §creation-with-upload: whether the POST carries the first chunk, and
    /// the rules to write it under. Call after creating the upload, with its
    /// fresh state (offset 0).
    ///
    /// Returns `Ok(None)` when the body is not upload data (no
    /// `Content-Type: application/offset+octet-stream`; the body is then
    /// ignored, as tusd does), or `Ok(Some(patch))` to write it like a PATCH
    /// at offset 0, with [`PatchRequest::max_body`] as the limit and the
    /// `Upload-Checksum` if one was sent. A final concatenation refuses data
    /// (403).
    pub fn initial_upload<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        state: &UploadState,
    ) -> Result<Option<PatchRequest>, TusError> {
        if !header(name::CONTENT_TYPE).is_some_and(is_offset_content_type) {
            return Ok(None);
        }
        if state.is_final_concat {
            return Err(TusError::ConcatFinalPatch);
        }
        let checksum = header(name::UPLOAD_CHECKSUM)
            .map(Checksum::parse)
            .transpose()?;
        Ok(Some(PatchRequest {
            offset: state.offset,
            declared_length: None,
            checksum,
        }))
    }

    /// The state the server should store for the new upload.
    pub fn initial_state(&self) -> UploadState {
        UploadState {
            offset: 0,
            length: self.length,
            is_final_concat: matches!(self.concat, Some(Concat::Final(_))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    fn create(headers: &[(&str, &str)]) -> Result<CreationRequest, TusError> {
        CreationRequest::from_headers(lookup(headers), 1000)
    }

    #[test]
    fn with_length_and_metadata() {
        let req = create(&[
            ("Upload-Length", "1000"),
            ("Upload-Metadata", "filename YS5tcDQ="),
        ])
        .unwrap();
        assert_eq!(req.length, Some(1000));
        assert_eq!(req.metadata.get_str("filename"), Some("a.mp4"));
        assert_eq!(req.concat, None);
        assert_eq!(
            req.initial_state(),
            UploadState {
                offset: 0,
                length: Some(1000),
                is_final_concat: false
            }
        );
    }

    #[test]
    fn deferred_length() {
        let req = create(&[("upload-defer-length", "1")]).unwrap();
        assert_eq!(req.length, None);
        assert!(req.metadata.is_empty());
        let err = create(&[("upload-defer-length", "0")]).unwrap_err();
        assert_eq!(err.code(), "invalid_header");
        assert_eq!(
            err.to_string(),
            "Upload-Defer-Length: \"0\", the only allowed value is 1"
        );
    }

    #[test]
    fn length_rules() {
        assert_eq!(create(&[]), Err(TusError::LengthRequired));
        assert_eq!(
            create(&[("upload-length", "5"), ("upload-defer-length", "1")]),
            Err(TusError::LengthAndDefer)
        );
        let err = create(&[("upload-length", "1001")]).unwrap_err();
        assert_eq!(
            err,
            TusError::TooLarge {
                length: 1001,
                max: 1000
            }
        );
        assert_eq!(err.status(), 413);
        assert_eq!(
            create(&[("upload-length", "-5")]).unwrap_err().code(),
            "invalid_header"
        );
        assert_eq!(
            create(&[("upload-length", "5"), ("upload-metadata", "a b c")])
                .unwrap_err()
                .code(),
            "invalid_header"
        );
    }

    #[test]
    fn concatenation() {
        let req = create(&[("upload-concat", "partial"), ("upload-length", "10")]).unwrap();
        assert_eq!(req.concat, Some(Concat::Partial));
        assert_eq!(req.length, Some(10));

        let req = create(&[("upload-concat", "final;/files/a /files/b")]).unwrap();
        assert_eq!(
            req.concat,
            Some(Concat::Final(vec!["a".into(), "b".into()]))
        );
        assert_eq!(req.length, None);
        assert!(req.initial_state().is_final_concat);

        assert_eq!(
            create(&[("upload-concat", "final;/files/a"), ("upload-length", "10")]),
            Err(TusError::FinalConcatLength {
                header: "Upload-Length"
            })
        );
        assert_eq!(
            create(&[
                ("upload-concat", "final;/files/a"),
                ("upload-defer-length", "1")
            ]),
            Err(TusError::FinalConcatLength {
                header: "Upload-Defer-Length"
            })
        );
        assert_eq!(
            create(&[("upload-concat", "nope"), ("upload-length", "10")])
                .unwrap_err()
                .code(),
            "invalid_header"
        );
    }

    #[test]
    fn creation_with_upload() {
        let req = create(&[("upload-length", "11")]).unwrap();
        let state = req.initial_state();
        assert_eq!(req.initial_upload(lookup(&[]), &state), Ok(None));
        assert_eq!(
            req.initial_upload(lookup(&[("content-type", "text/plain")]), &state),
            Ok(None)
        );
        let patch = req
            .initial_upload(
                lookup(&[
                    ("content-type", "application/offset+octet-stream"),
                    ("upload-checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
                ]),
                &state,
            )
            .unwrap()
            .unwrap();
        assert_eq!(patch.offset, 0);
        assert!(patch.checksum.is_some());
        assert_eq!(patch.max_body(&state, 1000), 11);

        let fin = create(&[("upload-concat", "final;/files/a")]).unwrap();
        assert_eq!(
            fin.initial_upload(
                lookup(&[("content-type", "application/offset+octet-stream")]),
                &fin.initial_state()
            ),
            Err(TusError::ConcatFinalPatch)
        );
    }
}

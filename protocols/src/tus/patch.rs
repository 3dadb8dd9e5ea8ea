//! PATCH against an existing upload (tus 1.0.0 §PATCH, §creation-defer-length,
//! §checksum, §concatenation).

use super::checksum::Checksum;
use super::error::TusError;
use super::headers::{check_offset_content_type, name, parse_u64_header};

/// What the server keeps per upload and the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadState {
    /// Bytes received and committed so far.
    pub offset: u64,
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub is_final_concat: bool,
}

/// A PATCH that passed the header rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRequest {
    /// Equal to the upload's offset.
    pub offset: u64,
    /// `Upload-Length` sent with this PATCH to end a deferred length; the
    /// caller stores it (§creation-defer-length: "the Client MUST set the
    /// Upload-Length header in the next PATCH request, once the length is
    /// known. Once set the length MUST NOT be changed").
    pub declared_length: Option<u64>,
    /// Feed the body through [`Checksum::verifier`] and commit the chunk only
    /// if it matches.
    pub checksum: Option<Checksum>,
}

impl PatchRequest {
    /// Reads a PATCH from its headers. `header` receives lower-case names
    /// (see [`name`](super::name)); `max_size` is the server's `Tus-Max-Size`
    /// (`u64::MAX` for no limit). Call after
    /// [`check_resumable`](super::check_resumable), with the upload's
    /// current state.
    ///
    /// Checks, in this order: final concatenations refuse PATCH (403);
    /// `Content-Type: application/offset+octet-stream` (415); `Upload-Offset`
    /// present (400), well-formed (400) and equal to the upload's offset
    /// (409); `Upload-Length` (only meaningful while the length is deferred:
    /// ≥ offset, ≤ `max_size`; repeating the length already set is accepted,
    /// changing it is refused); `Upload-Checksum` when present.
    pub fn from_headers<'a>(
        header: impl Fn(&str) -> Option<&'a str>,
        state: &UploadState,
        max_size: u64,
    ) -> Result<Self, TusError> {
        // §concatenation: "The Server MUST respond with the 403 Forbidden
        // status to PATCH requests against a final upload URL".
        if state.is_final_concat {
            return Err(TusError::ConcatFinalPatch);
        }
        // §PATCH: "All PATCH requests MUST use Content-Type:
        // application/offset+octet-stream, otherwise the server SHOULD return
        // a 415 Unsupported Media Type status."
        check_offset_content_type(header(name::CONTENT_TYPE))?;
        let offset = header(name::UPLOAD_OFFSET).ok_or(TusError::MissingHeader {
            name: "Upload-Offset",
        })?;
        let offset = parse_u64_header("Upload-Offset", offset)?;
        // §PATCH: "The Upload-Offset header's value MUST be equal to the
        // current offset of the resource. ... If the offsets do not match,
        // the Server MUST respond with the 409 Conflict status without
        // modifying the upload resource."
        if offset != state.offset {
            return Err(TusError::OffsetMismatch {
                expected: state.offset,
                got: offset,
            });
        }
        let declared_length = match header(name::UPLOAD_LENGTH) {
            None => None,
            Some(v) => {
                let length = parse_u64_header("Upload-Length", v)?;
                match state.length {
                    // A retry of the PATCH that declared it.
                    Some(set) if set == length => None,
                    Some(set) => return Err(TusError::LengthAlreadySet { length: set }),
                    None if length < state.offset => {
                        return Err(TusError::LengthBelowOffset {
                            length,
                            offset: state.offset,
                        });
                    }
                    None if length > max_size => {
                        return Err(TusError::TooLarge {
                            length,
                            max: max_size,
                        });
                    }
                    None => Some(length),
                }
            }
        };
        let checksum = header(name::UPLOAD_CHECKSUM)
            .map(Checksum::parse)
            .transpose()?;
        Ok(Self {
            offset,
            declared_length,
            checksum,
        })
    }

    /// The length that applies to this PATCH: the one it declares, else the
    /// upload's.
    pub fn length(&self, state: &UploadState) -> Option<u64> {
        self.declared_length.or(state.length)
    }

    /// How many body bytes this PATCH may still write: length − offset, or
    /// `max_size` − offset while the length stays deferred. Read at most this
    /// many; more is [`TusError::LengthExceeded`] (see
    /// [`check_body_len`](Self::check_body_len)).
    pub fn max_body(&self, state: &UploadState, max_size: u64) -> u64 {
        self.length(state)
            .unwrap_or(max_size)
            .saturating_sub(self.offset)
    }

    /// Refuses a body of `body_len` bytes (from `Content-Length`, or counted
    /// while reading) that goes past [`max_body`](Self::max_body), with 413.
    pub fn check_body_len(
        &self,
        state: &UploadState,
        max_size: u64,
        body_len: u64,
    ) -> Result<(), TusError> {
        if body_len <= self.max_body(state, max_size) {
            Ok(())
        } else {
            Err(TusError::LengthExceeded {
                offset: self.offset,
                body: body_len,
                limit: self.length(state).unwrap_or(max_size),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: (&str, &str) = ("content-type", "application/offset+octet-stream");

    fn patch(headers: &[(&str, &str)], state: &UploadState) -> Result<PatchRequest, TusError> {
        PatchRequest::from_headers(
            |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
            state,
            1000,
        )
    }

    fn state(offset: u64, length: Option<u64>) -> UploadState {
        UploadState {
            offset,
            length,
            is_final_concat: false,
        }
    }

    #[test]
    fn accepts_matching_offset() {
        let st = state(5, Some(100));
        let req = patch(&[CT, ("upload-offset", "5")], &st).unwrap();
        assert_eq!(
            req,
            PatchRequest {
                offset: 5,
                declared_length: None,
                checksum: None
            }
        );
        assert_eq!(req.max_body(&st, 1000), 95);
        assert_eq!(req.check_body_len(&st, 1000, 95), Ok(()));
        let err = req.check_body_len(&st, 1000, 96).unwrap_err();
        assert_eq!(
            err,
            TusError::LengthExceeded {
                offset: 5,
                body: 96,
                limit: 100
            }
        );
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn offset_mismatch_is_409() {
        let err = patch(&[CT, ("upload-offset", "4")], &state(5, Some(100))).unwrap_err();
        assert_eq!(
            err,
            TusError::OffsetMismatch {
                expected: 5,
                got: 4
            }
        );
        assert_eq!(err.status(), 409);
    }

    #[test]
    fn offset_missing_or_malformed_is_400() {
        let st = state(0, Some(10));
        let err = patch(&[CT], &st).unwrap_err();
        assert_eq!(
            err,
            TusError::MissingHeader {
                name: "Upload-Offset"
            }
        );
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), "Upload-Offset: header missing");
        let err = patch(&[CT, ("upload-offset", "0x0")], &st).unwrap_err();
        assert_eq!(err.code(), "invalid_header");
    }

    #[test]
    fn content_type_is_415() {
        let st = state(0, Some(10));
        let err = patch(&[("upload-offset", "0")], &st).unwrap_err();
        assert_eq!(err, TusError::WrongContentType { got: None });
        assert_eq!(err.status(), 415);
        let err = patch(
            &[
                ("content-type", "application/octet-stream"),
                ("upload-offset", "0"),
            ],
            &st,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TusError::WrongContentType {
                got: Some("application/octet-stream".into())
            }
        );
    }

    #[test]
    fn deferred_length() {
        let st = state(10, None);
        // Still deferred: bounded by the server's maximum.
        let req = patch(&[CT, ("upload-offset", "10")], &st).unwrap();
        assert_eq!(req.declared_length, None);
        assert_eq!(req.max_body(&st, 1000), 990);
        assert_eq!(
            req.check_body_len(&st, 1000, 991),
            Err(TusError::LengthExceeded {
                offset: 10,
                body: 991,
                limit: 1000
            })
        );
        // Declared now.
        let req = patch(&[CT, ("upload-offset", "10"), ("upload-length", "50")], &st).unwrap();
        assert_eq!(req.declared_length, Some(50));
        assert_eq!(req.length(&st), Some(50));
        assert_eq!(req.max_body(&st, 1000), 40);
        // Equal to the offset: the upload ends with this (possibly empty) PATCH.
        let req = patch(&[CT, ("upload-offset", "10"), ("upload-length", "10")], &st).unwrap();
        assert_eq!(req.max_body(&st, 1000), 0);
        assert_eq!(
            patch(&[CT, ("upload-offset", "10"), ("upload-length", "9")], &st),
            Err(TusError::LengthBelowOffset {
                length: 9,
                offset: 10
            })
        );
        let err = patch(
            &[CT, ("upload-offset", "10"), ("upload-length", "1001")],
            &st,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TusError::TooLarge {
                length: 1001,
                max: 1000
            }
        );
        assert_eq!(err.status(), 413);
        assert_eq!(
            patch(&[CT, ("upload-offset", "10"), ("upload-length", "x")], &st)
                .unwrap_err()
                .code(),
            "invalid_header"
        );
    }

    #[test]
    fn length_set_once() {
        let st = state(10, Some(50));
        // Repeating the length (a retried PATCH) is harmless.
        let req = patch(&[CT, ("upload-offset", "10"), ("upload-length", "50")], &st).unwrap();
        assert_eq!(req.declared_length, None);
        let err = patch(&[CT, ("upload-offset", "10"), ("upload-length", "60")], &st).unwrap_err();
        assert_eq!(err, TusError::LengthAlreadySet { length: 50 });
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn checksum_header() {
        let st = state(0, Some(11));
        let req = patch(
            &[
                CT,
                ("upload-offset", "0"),
                ("upload-checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            ],
            &st,
        )
        .unwrap();
        let mut v = req.checksum.unwrap().verifier();
        v.update(b"hello world");
        assert_eq!(v.finish(), Ok(()));
        assert_eq!(
            patch(
                &[
                    CT,
                    ("upload-offset", "0"),
                    ("upload-checksum", "crc32 AAAAAA==")
                ],
                &st
            )
            .unwrap_err()
            .code(),
            "unsupported_checksum"
        );
    }

    #[test]
    fn final_concat_refuses_patch() {
        let st = UploadState {
            offset: 0,
            length: Some(10),
            is_final_concat: true,
        };
        let err = patch(&[CT, ("upload-offset", "0")], &st).unwrap_err();
        assert_eq!(err, TusError::ConcatFinalPatch);
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn max_body_saturates() {
        let st = state(20, Some(10));
        let req = PatchRequest {
            offset: 20,
            declared_length: None,
            checksum: None,
        };
        assert_eq!(req.max_body(&st, 5), 0);
        assert_eq!(req.max_body(&state(20, None), 5), 0);
    }
}

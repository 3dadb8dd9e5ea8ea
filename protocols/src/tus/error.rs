use super::checksum::ChecksumAlgorithm;

/// A tus protocol violation, with the HTTP status the spec asks for.
///
/// Messages name the header (in its canonical spelling) and the problem, so
/// the server can send [`Display`](std::fmt::Display) as the response body and
/// log one line that identifies the request. Values echoed from the request
/// are cut to [`MAX_ECHO`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TusError {
    /// `Tus-Resumable` missing or not `1.0.0`. The response must carry
    /// `Tus-Version`.
    #[error(
        "Tus-Resumable: {}, this server supports only 1.0.0",
        match .got { Some(v) => format!("unsupported version {v:?}"), None => "header missing".to_owned() }
    )]
    UnsupportedVersion { got: Option<String> },
    #[error("{name}: header missing")]
    MissingHeader { name: &'static str },
    #[error("{name}: {reason}")]
    InvalidHeader { name: &'static str, reason: String },
    #[error(
        "Content-Type: {}, a PATCH body must be application/offset+octet-stream",
        match .got { Some(v) => format!("got {v:?}"), None => "header missing".to_owned() }
    )]
    WrongContentType { got: Option<String> },
    #[error("Upload-Offset: request says {got}, the upload is at {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    /// A PATCH body reaches past the upload's length (or past the server's
    /// maximum while the length is deferred).
    #[error("PATCH body of {body} bytes at offset {offset} goes past the limit of {limit} bytes")]
    LengthExceeded { offset: u64, body: u64, limit: u64 },
    /// `Upload-Length` above the server's `Tus-Max-Size`.
    #[error("Upload-Length: {length} bytes exceeds Tus-Max-Size {max}")]
    TooLarge { length: u64, max: u64 },
    #[error("Upload-Checksum: the {algorithm} digest of the body does not match")]
    ChecksumMismatch { algorithm: ChecksumAlgorithm },
    #[error("Upload-Checksum: unsupported algorithm {algorithm:?}, supported: sha1,sha256")]
    UnsupportedChecksum { algorithm: String },
    /// Neither `Upload-Length` nor `Upload-Defer-Length` on a creation
    /// request.
    #[error("Upload-Length: header missing, and no Upload-Defer-Length: 1")]
    LengthRequired,
    #[error("Upload-Length and Upload-Defer-Length are mutually exclusive")]
    LengthAndDefer,
    #[error("Upload-Length: the length is already {length} and cannot change")]
    LengthAlreadySet { length: u64 },
    #[error("Upload-Length: {length} is below the bytes already received ({offset})")]
    LengthBelowOffset { length: u64, offset: u64 },
    #[error("Upload-Length: a final concatenation has no length of its own ({header} not allowed)")]
    FinalConcatLength { header: &'static str },
    #[error("PATCH refused: a final concatenated upload cannot be written to")]
    ConcatFinalPatch,
    #[error("Upload-Metadata: {len} bytes exceeds the limit of {max}")]
    MetadataTooLarge { len: usize, max: usize },
    #[error("Upload-Metadata: more than {max} key-value pairs")]
    TooManyMetadataPairs { max: usize },
}

/// How many bytes of a request value an error message repeats.
pub const MAX_ECHO: usize = 64;

impl TusError {
    /// The HTTP status code the response should carry.
    pub fn status(&self) -> u16 {
        match self {
            // tus 1.0.0 §Tus-Resumable: "the Server MUST respond with the
            // 412 Precondition Failed status".
            Self::UnsupportedVersion { .. } => 412,
            // §PATCH: "the Server SHOULD return a 415 Unsupported Media Type".
            Self::WrongContentType { .. } => 415,
            // §PATCH: "If the offsets do not match, the Server MUST respond
            // with the 409 Conflict status".
            Self::OffsetMismatch { .. } => 409,
            // §creation: "the Server MUST respond with the 413 Request
            // Entity Too Large status".
            Self::LengthExceeded { .. } | Self::TooLarge { .. } => 413,
            // §checksum: "460 Checksum Mismatch".
            Self::ChecksumMismatch { .. } => 460,
            // §concatenation: "The Server MUST respond with the 403 Forbidden
            // status to PATCH requests against a final upload URL".
            Self::ConcatFinalPatch => 403,
            // One header field larger than the server accepts (RFC 6585 §5).
            Self::MetadataTooLarge { .. } => 431,
            Self::MissingHeader { .. }
            | Self::InvalidHeader { .. }
            | Self::UnsupportedChecksum { .. }
            | Self::LengthRequired
            | Self::LengthAndDefer
            | Self::LengthAlreadySet { .. }
            | Self::LengthBelowOffset { .. }
            | Self::FinalConcatLength { .. }
            | Self::TooManyMetadataPairs { .. } => 400,
        }
    }

    /// A stable snake_case code for logs, metrics and JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::MissingHeader { .. } => "missing_header",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::WrongContentType { .. } => "wrong_content_type",
            Self::OffsetMismatch { .. } => "offset_mismatch",
            Self::LengthExceeded { .. } => "length_exceeded",
            Self::TooLarge { .. } => "too_large",
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::UnsupportedChecksum { .. } => "unsupported_checksum",
            Self::LengthRequired => "length_required",
            Self::LengthAndDefer => "length_and_defer",
            Self::LengthAlreadySet { .. } => "length_already_set",
            Self::LengthBelowOffset { .. } => "length_below_offset",
            Self::FinalConcatLength { .. } => "final_concat_length",
            Self::ConcatFinalPatch => "concat_final_patch",
            Self::MetadataTooLarge { .. } => "metadata_too_large",
            Self::TooManyMetadataPairs { .. } => "too_many_metadata_pairs",
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidHeader {
            name,
            reason: reason.into(),
        }
    }
}

/// `value` cut to at most [`MAX_ECHO`] bytes on a char boundary, for error
/// messages.
pub(crate) fn echo(value: &str) -> String {
    if value.len() <= MAX_ECHO {
        return value.to_owned();
    }
    let mut end = MAX_ECHO;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut s = value.get(..end).unwrap_or_default().to_owned();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_on_char_boundary() {
        assert_eq!(echo("abc"), "abc");
        let long = "é".repeat(40); // 80 bytes
        let cut = echo(&long);
        assert_eq!(cut, format!("{}…", "é".repeat(32)));
        let odd = format!("a{}", "é".repeat(40));
        assert_eq!(echo(&odd), format!("a{}…", "é".repeat(31)));
    }

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (
                TusError::UnsupportedVersion { got: None },
                412,
                "unsupported_version",
            ),
            (
                TusError::WrongContentType { got: None },
                415,
                "wrong_content_type",
            ),
            (
                TusError::OffsetMismatch {
                    expected: 1,
                    got: 2,
                },
                409,
                "offset_mismatch",
            ),
            (TusError::TooLarge { length: 2, max: 1 }, 413, "too_large"),
            (
                TusError::ChecksumMismatch {
                    algorithm: ChecksumAlgorithm::Sha1,
                },
                460,
                "checksum_mismatch",
            ),
            (TusError::ConcatFinalPatch, 403, "concat_final_patch"),
            (TusError::LengthRequired, 400, "length_required"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn messages_name_the_header() {
        assert_eq!(
            TusError::UnsupportedVersion {
                got: Some("0.2.2".into())
            }
            .to_string(),
            "Tus-Resumable: unsupported version \"0.2.2\", this server supports only 1.0.0"
        );
        assert_eq!(
            TusError::UnsupportedVersion { got: None }.to_string(),
            "Tus-Resumable: header missing, this server supports only 1.0.0"
        );
        assert_eq!(
            TusError::OffsetMismatch {
                expected: 10,
                got: 5
            }
            .to_string(),
            "Upload-Offset: request says 5, the upload is at 10"
        );
    }
}

//! Header names and the scalar header rules: `Tus-Resumable`,
//! `Upload-Offset` / `Upload-Length`, and the PATCH `Content-Type`.

use super::error::{TusError, echo};
use super::{OFFSET_CONTENT_TYPE, TUS_VERSION};

/// Lower-case header names, as the lookup closures of
/// [`CreationRequest::from_headers`](super::CreationRequest::from_headers) and
/// [`PatchRequest::from_headers`](super::PatchRequest::from_headers) receive
/// them (HTTP field names are case-insensitive, RFC 9110 §5.1).
pub mod name {
    pub const TUS_RESUMABLE: &str = "tus-resumable";
    pub const TUS_VERSION: &str = "tus-version";
    pub const TUS_EXTENSION: &str = "tus-extension";
    pub const TUS_MAX_SIZE: &str = "tus-max-size";
    pub const TUS_CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
    pub const UPLOAD_OFFSET: &str = "upload-offset";
    pub const UPLOAD_LENGTH: &str = "upload-length";
    pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";
    pub const UPLOAD_METADATA: &str = "upload-metadata";
    pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
    pub const UPLOAD_CONCAT: &str = "upload-concat";
    pub const UPLOAD_EXPIRES: &str = "upload-expires";
    pub const CONTENT_TYPE: &str = "content-type";
}

/// Longest decimal a `u64` header may have: `u64::MAX` has 20 digits.
const MAX_DIGITS: usize = 20;

/// Checks the `Tus-Resumable` header of every request but OPTIONS.
///
/// tus 1.0.0 §Tus-Resumable: "If the version specified by the Client is not
/// supported by the Server, it MUST respond with the 412 Precondition Failed
/// status and MUST include the Tus-Version header". A missing header gets the
/// same answer.
pub fn check_resumable(value: Option<&str>) -> Result<(), TusError> {
    match value {
        Some(v) if v.trim_matches([' ', '\t']) == TUS_VERSION => Ok(()),
        got => Err(TusError::UnsupportedVersion { got: got.map(echo) }),
    }
}

/// Parses `Upload-Offset` / `Upload-Length`: "a non-negative integer"
/// (tus 1.0.0 §Upload-Offset, §Upload-Length), written as 1 to 20 ASCII
/// digits — no sign, no spaces, no fraction — that fit a `u64`.
///
/// `name` is the header's canonical spelling, used in the error message.
pub fn parse_u64_header(name: &'static str, value: &str) -> Result<u64, TusError> {
    if value.is_empty() {
        return Err(TusError::invalid(
            name,
            "empty value, expected a non-negative integer",
        ));
    }
    if value.len() > MAX_DIGITS {
        return Err(TusError::invalid(
            name,
            format!(
                "{} characters, at most {MAX_DIGITS} digits allowed",
                value.len()
            ),
        ));
    }
    let mut n: u64 = 0;
    for (i, b) in value.bytes().enumerate() {
        if !b.is_ascii_digit() {
            return Err(TusError::invalid(
                name,
                format!(
                    "{:?} is not a non-negative integer (byte {i} is not a digit)",
                    echo(value)
                ),
            ));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| TusError::invalid(name, format!("{value} does not fit 64 bits")))?;
    }
    Ok(n)
}

/// Checks that a PATCH (or a creation-with-upload POST) carries the body
/// media type `application/offset+octet-stream` (tus 1.0.0 §PATCH).
///
/// Media types are case-insensitive and may carry parameters (RFC 9110
/// §8.3.1); both are tolerated.
pub fn check_offset_content_type(value: Option<&str>) -> Result<(), TusError> {
    if let Some(v) = value
        && is_offset_content_type(v)
    {
        return Ok(());
    }
    Err(TusError::WrongContentType {
        got: value.map(echo),
    })
}

pub(crate) fn is_offset_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default();
    essence
        .trim_matches([' ', '\t'])
        .eq_ignore_ascii_case(OFFSET_CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumable_version() {
        assert_eq!(check_resumable(Some("1.0.0")), Ok(()));
        assert_eq!(check_resumable(Some(" 1.0.0 ")), Ok(()));
        assert_eq!(
            check_resumable(Some("0.2.2")),
            Err(TusError::UnsupportedVersion {
                got: Some("0.2.2".into())
            })
        );
        assert_eq!(
            check_resumable(Some("1.0.0,0.2.2")).unwrap_err().status(),
            412
        );
        assert_eq!(check_resumable(Some("")).unwrap_err().status(), 412);
        assert_eq!(
            check_resumable(None),
            Err(TusError::UnsupportedVersion { got: None })
        );
    }

    #[test]
    fn u64_accepts_plain_digits() {
        assert_eq!(parse_u64_header("Upload-Offset", "0"), Ok(0));
        assert_eq!(parse_u64_header("Upload-Offset", "0042"), Ok(42));
        assert_eq!(
            parse_u64_header("Upload-Length", "18446744073709551615"),
            Ok(u64::MAX)
        );
        assert_eq!(
            parse_u64_header("Upload-Length", "00000000000000000001"),
            Ok(1)
        );
    }

    #[test]
    fn u64_rejects_everything_else() {
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "١",
            "18446744073709551616",
            "99999999999999999999",
            "000000000000000000001",
        ] {
            let err = parse_u64_header("Upload-Length", bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
            assert_eq!(err.code(), "invalid_header", "{bad:?}");
            assert!(err.to_string().starts_with("Upload-Length: "), "{err}");
        }
        assert_eq!(
            parse_u64_header("Upload-Offset", "-1")
                .unwrap_err()
                .to_string(),
            "Upload-Offset: \"-1\" is not a non-negative integer (byte 0 is not a digit)"
        );
    }

    #[test]
    fn content_type() {
        assert_eq!(
            check_offset_content_type(Some("application/offset+octet-stream")),
            Ok(())
        );
        assert_eq!(
            check_offset_content_type(Some("Application/Offset+Octet-Stream; x=y")),
            Ok(())
        );
        let err = check_offset_content_type(Some("application/octet-stream")).unwrap_err();
        assert_eq!(err.status(), 415);
        assert_eq!(
            check_offset_content_type(None),
            Err(TusError::WrongContentType { got: None })
        );
    }
}

//! `Upload-Checksum` (tus 1.0.0 §checksum).
//!
//! "The header MUST consist of the name of the used checksum algorithm and
//! the Base64 encoded checksum separated by a space." The server advertises
//! [`CHECKSUM_ALGORITHMS`](super::CHECKSUM_ALGORITHMS) in
//! `Tus-Checksum-Algorithm`; "If the hash cannot be calculated ... or the
//! checksum algorithm is not supported by the server, the Server MAY respond
//! with 400"; on mismatch "the Server MUST respond with the 460 Checksum
//! Mismatch status" and must not keep the chunk: the caller stages the body
//! and commits it, and the new offset, only when
//! [`ChecksumVerifier::finish`] succeeds.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;

use super::error::{TusError, echo};

const NAME: &str = "Upload-Checksum";

/// A checksum algorithm the server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// The name used on the wire (IANA "Hash Function Textual Names").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Parses an algorithm name, ignoring ASCII case.
    pub fn parse(name: &str) -> Result<Self, TusError> {
        if name.eq_ignore_ascii_case("sha1") {
            Ok(Self::Sha1)
        } else if name.eq_ignore_ascii_case("sha256") {
            Ok(Self::Sha256)
        } else {
            Err(TusError::UnsupportedChecksum {
                algorithm: echo(name),
            })
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `Upload-Checksum` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    /// Parses `<algorithm> <base64 digest>`; the digest must be padded
    /// standard base64 of exactly the algorithm's length.
    pub fn parse(value: &str) -> Result<Self, TusError> {
        let value = value.trim_matches([' ', '\t']);
        let Some((name, b64)) = value.split_once(' ') else {
            return Err(TusError::invalid(
                NAME,
                format!("{:?} is not \"<algorithm> <base64 digest>\"", echo(value)),
            ));
        };
        let algorithm = ChecksumAlgorithm::parse(name)?;
        let want = algorithm.digest_len();
        // Length first, so nothing is decoded (or allocated) for junk.
        if b64.len() != want.div_ceil(3) * 4 {
            return Err(TusError::invalid(
                NAME,
                format!(
                    "{algorithm} digest must be {want} bytes ({} base64 characters), got {} characters",
                    want.div_ceil(3) * 4,
                    b64.len()
                ),
            ));
        }
        let digest = STANDARD.decode(b64).map_err(|e| {
            TusError::invalid(
                NAME,
                format!("{algorithm} digest is not standard base64: {e}"),
            )
        })?;
        if digest.len() != want {
            return Err(TusError::invalid(
                NAME,
                format!(
                    "{algorithm} digest must be {want} bytes, got {}",
                    digest.len()
                ),
            ));
        }
        Ok(Self { algorithm, digest })
    }

    /// The header form, `<algorithm> <base64 digest>`.
    pub fn encode(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.digest))
    }

    /// A verifier to feed the PATCH body through.
    pub fn verifier(&self) -> ChecksumVerifier {
        let hasher = match self.algorithm {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        };
        ChecksumVerifier {
            hasher,
            expected: self.digest.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Streaming verification of one request body: [`update`](Self::update)
/// with each chunk as it arrives, then [`finish`](Self::finish) once the
/// body has ended.
#[derive(Debug, Clone)]
pub struct ChecksumVerifier {
    hasher: Hasher,
    expected: Vec<u8>,
}

impl ChecksumVerifier {
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// `Ok` if the body's digest equals the header's, else
    /// [`TusError::ChecksumMismatch`] (460).
    pub fn finish(self) -> Result<(), TusError> {
        let (algorithm, ok) = match self.hasher {
            Hasher::Sha1(h) => (
                ChecksumAlgorithm::Sha1,
                h.finalize()[..] == self.expected[..],
            ),
            Hasher::Sha256(h) => (
                ChecksumAlgorithm::Sha256,
                h.finalize()[..] == self.expected[..],
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(TusError::ChecksumMismatch { algorithm })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // `printf 'hello world' | openssl dgst -sha1 -binary | base64`
    const SHA1_HELLO: &str = "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=";
    // `printf 'hello world' | openssl dgst -sha256 -binary | base64`
    const SHA256_HELLO: &str = "sha256 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";

    fn verify(header: &str, chunks: &[&[u8]]) -> Result<(), TusError> {
        let mut v = Checksum::parse(header)?.verifier();
        for c in chunks {
            v.update(c);
        }
        v.finish()
    }

    #[test]
    fn known_vectors() {
        let c = Checksum::parse(SHA1_HELLO).unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest.len(), 20);
        assert_eq!(c.encode(), SHA1_HELLO);
        assert_eq!(verify(SHA1_HELLO, &[b"hello world"]), Ok(()));
        assert_eq!(verify(SHA1_HELLO, &[b"hello", b" ", b"world", b""]), Ok(()));
        assert_eq!(verify(SHA256_HELLO, &[b"hello world"]), Ok(()));
        assert_eq!(verify(SHA256_HELLO, &[b"hel", b"lo world"]), Ok(()));
        assert_eq!(
            Checksum::parse(SHA256_HELLO).unwrap().encode(),
            SHA256_HELLO
        );
        assert_eq!(
            Checksum::parse("SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
                .unwrap()
                .algorithm,
            ChecksumAlgorithm::Sha1
        );
    }

    #[test]
    fn mismatch_is_460() {
        let err = verify(SHA256_HELLO, &[b"hello world!"]).unwrap_err();
        assert_eq!(
            err,
            TusError::ChecksumMismatch {
                algorithm: ChecksumAlgorithm::Sha256
            }
        );
        assert_eq!(err.status(), 460);
        assert_eq!(verify(SHA1_HELLO, &[]).unwrap_err().status(), 460);
    }

    #[test]
    fn rejects_bad_headers() {
        let err = Checksum::parse("md5 XrY7u+Ae7tCTyyK7j1rNww==").unwrap_err();
        assert_eq!(
            err,
            TusError::UnsupportedChecksum {
                algorithm: "md5".into()
            }
        );
        assert_eq!(err.status(), 400);
        for (bad, want) in [
            ("sha1", "is not \"<algorithm> <base64 digest>\""),
            ("", "is not"),
            (
                "sha1 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
                "must be 20 bytes (28 base64 characters), got 44",
            ),
            ("sha256 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "must be 32 bytes"),
            ("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0", "got 27 characters"),
            ("sha1 Kq5sNclPz7QV2-lfQIuc6R7oRu0=", "not standard base64"),
            ("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu==", "not standard base64"),
            ("sha1  Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "got 29 characters"),
        ] {
            let err = Checksum::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_header", "{bad:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("Upload-Checksum: "), "{msg}");
            assert!(msg.contains(want), "{bad:?}: {msg}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Checksum::parse(&s);
        }
    }
}

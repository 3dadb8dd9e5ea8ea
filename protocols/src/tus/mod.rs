//! The tus 1.0.0 resumable upload protocol
//! (<https://tus.io/protocols/resumable-upload>), header rules only: no IO,
//! no clock. The server's HTTP handlers call in with header values and the
//! upload's stored [`UploadState`]; every error carries the status the spec
//! asks for ([`TusError::status`]).
//!
//! Spec sections and where they live:
//!
//! - Core protocol (§Headers, §Requests: HEAD, PATCH, OPTIONS):
//!   [`check_resumable`], [`parse_u64_header`], [`PatchRequest`].
//! - §creation, §creation-defer-length, §creation-with-upload:
//!   [`CreationRequest`], [`Metadata`] (§Upload-Metadata).
//! - §checksum: [`Checksum`], [`ChecksumVerifier`].
//! - §expiration: [`http_date`] for `Upload-Expires`.
//! - §concatenation: [`Concat`], and the 403 for PATCH on final uploads.
//! - §termination: no header rules beyond [`check_resumable`].
//!
//! Header names are case-insensitive (RFC 9110 §5.1): the lookup closures
//! given to `from_headers` receive the lower-case names in [`name`] and
//! return the value if present.
//!
//! Call order, per request:
//!
//! - OPTIONS: no check; answer with `Tus-Version` [`TUS_VERSION`],
//!   `Tus-Extension` [`TUS_EXTENSIONS`], `Tus-Max-Size`,
//!   `Tus-Checksum-Algorithm` [`CHECKSUM_ALGORITHMS`].
//! - Every other request: [`check_resumable`] first (412 with
//!   `Tus-Version` on failure).
//! - POST: [`CreationRequest::from_headers`] → store
//!   [`CreationRequest::initial_state`] (for `Concat::Final`, check the
//!   partials are finished uploads of this server and set the length to
//!   their sum) → [`CreationRequest::initial_upload`]; if it gives a
//!   [`PatchRequest`], write the body as below.
//! - PATCH: [`PatchRequest::from_headers`] with the stored state → read at
//!   most [`PatchRequest::max_body`] bytes, feeding each chunk to the
//!   [`Checksum::verifier`] if any → [`ChecksumVerifier::finish`] → only then
//!   commit the bytes, the new offset and
//!   [`PatchRequest::declared_length`]. On a checksum mismatch nothing is
//!   committed (460).
//! - HEAD: answer with `Upload-Offset`, `Upload-Length` or
//!   `Upload-Defer-Length: 1`, [`Metadata::encode`] as `Upload-Metadata`,
//!   and [`http_date`] as `Upload-Expires`.

mod checksum;
mod concat;
mod creation;
mod date;
mod error;
mod headers;
mod metadata;
mod patch;

pub use checksum::{Checksum, ChecksumAlgorithm, ChecksumVerifier};
pub use concat::{Concat, MAX_CONCAT_PARTS, MAX_UPLOAD_ID_LEN};
pub use creation::CreationRequest;
pub use date::{MAX_HTTP_DATE_SECONDS, http_date};
pub use error::{MAX_ECHO, TusError};
pub use headers::{check_offset_content_type, check_resumable, name, parse_u64_header};
pub use metadata::{MAX_METADATA_BYTES, MAX_METADATA_PAIRS, Metadata};
pub use patch::{PatchRequest, UploadState};

/// The protocol version this server speaks (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";
/// The `Tus-Extension` response header.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation,concatenation-unfinished";
/// The `Tus-Checksum-Algorithm` response header.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// The media type of PATCH bodies.
pub const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";

//! gzip for text answers that many clients ask for alike, made once and
//! shared: compressing a 4 KiB playlist per request cost a browser's
//! request ten times everything else (`benches/middleware_layers.rs`).
//! Cached VOD playlists and manifests keep their compressed copy with the
//! cached copy (`cache::CachedObject::gzipped`); live playlists, rendered
//! per request, share the compressed copy of the previous identical answer
//! ([`SharedGzip`]). Answers that already carry `Content-Encoding` pass
//! the compression layer untouched.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use quick_cache::sync::Cache;

/// Text smaller than this is sent as it is (as the compression layer
/// does, `middleware::compressible`).
pub const MIN_BYTES: usize = 256;

/// Whether `Accept-Encoding` lists gzip (or `x-gzip`) with a non-zero
/// quality (RFC 9110 §12.5.3).
pub fn accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
                && !params.any(|param| {
                    param.trim().split_once('=').is_some_and(|(name, q)| {
                        name.trim().eq_ignore_ascii_case("q")
                            && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                    })
                })
        })
}

/// `bytes` gzip-compressed (flate2's default level), unless that would not
/// make them smaller.
pub fn compress(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::default(),
    );
    let compressed = encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .ok()?;
    (compressed.len() < bytes.len()).then(|| Bytes::from(compressed))
}

/// The headers of a gzip answer: its encoding, and that it varies by
/// `Accept-Encoding` (for caches between us and the client).
pub fn mark(headers: &mut HeaderMap, length: usize) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
}

/// The compressed copy of the last answer under each key (a live stream's
/// rendition playlist, say): viewers at the live edge are answered the same
/// playlist, so all but the first get the copy. An answer that differs
/// from the last is compressed and replaces it. Bounded by the bytes it
/// holds (plain and compressed), quick_cache's eviction choosing what goes.
#[derive(Clone)]
pub struct SharedGzip {
    last: std::sync::Arc<Cache<String, (Bytes, Bytes), ByBytes>>,
}

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<String, (Bytes, Bytes)> for ByBytes {
    fn weight(&self, key: &String, (plain, gzipped): &(Bytes, Bytes)) -> u64 {
        (key.len() + plain.len() + gzipped.len()) as u64
    }
}

impl std::fmt::Debug for SharedGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGzip")
            .field("entries", &self.last.len())
            .finish()
    }
}

impl SharedGzip {
    /// Remembers last answers up to `bytes` in all (about `keys` of them).
    pub fn new(keys: usize, bytes: u64) -> Self {
        SharedGzip {
            last: std::sync::Arc::new(Cache::with_weighter(keys.max(1), bytes.max(1), ByBytes)),
        }
    }

    /// `body` gzipped: the last compressed copy under `key` if that was
    /// made from the same bytes, else compressed now (and kept).
    pub fn compress(&self, key: &str, body: &Bytes) -> Option<Bytes> {
        if let Some((identity, gzipped)) = self.last.get(key)
            && identity == *body
        {
            return Some(gzipped);
        }
        let gzipped = compress(body)?;
        self.last
            .insert(key.to_owned(), (body.clone(), gzipped.clone()));
        Some(gzipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_accepted_unless_refused_with_q_zero() {
        assert!(accepted(&with("gzip")));
        assert!(accepted(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepted(&with("deflate, x-gzip")));
        assert!(!accepted(&with("gzip;q=0")));
        assert!(!accepted(&with("gzip; q=0.000, identity")));
        assert!(!accepted(&with("br")));
        assert!(!accepted(&HeaderMap::new()));
    }

    #[test]
    fn an_identical_answer_shares_the_compressed_copy() {
        let shared = SharedGzip::new(4, 1 << 20);
        let body = Bytes::from("#EXTM3U\n".repeat(100));
        let first = shared.compress("s/v1", &body).unwrap();
        let again = shared.compress("s/v1", &body.clone()).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same copy");
        let grown = Bytes::from("#EXTM3U\n".repeat(101));
        let other = shared.compress("s/v1", &grown).unwrap();
        assert_ne!(other, first, "a changed answer is compressed again");
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&other[..]), &mut decoded)
            .unwrap();
        assert_eq!(decoded, grown);
        assert!(compress(b"tiny").is_none(), "not smaller");
    }
}

//! The RTMP handshake, server side (RTMP 1.0 §5.2): C0+C1 in, S0+S1+S2 out,
//! then C2 in.
//!
//! Two forms are answered:
//!
//! - **Plain** (RTMP 1.0 §5.2.3): S1 is random, S2 echoes C1.
//! - **Digest** (the Flash Player 9+ form, undocumented by the spec and
//!   implemented by Flash Media Server, FFmpeg, librtmp and nginx-rtmp): C1
//!   carries an HMAC-SHA256 digest keyed with the "Genuine Adobe Flash
//!   Player 001" key at an offset derived from four bytes of C1, in one of
//!   two layouts ([`DigestScheme`]). The server answers with an S1 carrying
//!   its own digest (Flash Media Server key) in the same layout, and an S2
//!   whose last 32 bytes sign it with a key derived from the client digest.
//!   A C1 with a non-zero version field but no valid digest gets the plain
//!   answer (FFmpeg and OBS accept it).
//!
//! # Call order
//!
//! [`ServerHandshake::handle`] with every received byte until it returns
//! `true`; the bytes it leaves in the buffer are the first chunks. It appends
//! S0+S1+S2 to the output once C0+C1 have arrived, without waiting for C2.
//! No clock is read: S1's time field is 0, and randomness comes from the
//! seed the caller passes in.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::error::RtmpError;

/// The only protocol version accepted in C0 (RTMP 1.0 §5.2.2).
pub const RTMP_VERSION: u8 = 3;
/// Length of C1, C2, S1 and S2.
pub const PACKET_LEN: usize = 1536;
const DIGEST_LEN: usize = 32;
/// Version field of our digest-bearing S1 (clients only check that it is
/// non-zero; this is the value Flash Media Server 4.5 sends).
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];

const KEY_TAIL: [u8; 32] = [
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];
const FMS_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
const FP_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";

type HmacSha256 = Hmac<Sha256>;

/// Where the 764-byte digest block sits in C1/S1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// time, version, key block, digest block (digest offset from bytes 772..776).
    KeyFirst,
    /// time, version, digest block, key block (digest offset from bytes 8..12);
    /// FFmpeg and Flash Player 10 use this one.
    DigestFirst,
}

impl DigestScheme {
    fn block_start(self) -> usize {
        match self {
            Self::KeyFirst => 772,
            Self::DigestFirst => 8,
        }
    }

    /// Position of the 32-byte digest: 4 bytes at the block start sum to an
    /// offset into the remaining 728 bytes of the block.
    pub fn digest_offset(self, packet: &[u8; PACKET_LEN]) -> usize {
        let start = self.block_start();
        let sum: usize = packet
            .iter()
            .skip(start)
            .take(4)
            .map(|&b| usize::from(b))
            .sum();
        start + 4 + sum % 728
    }
}

/// Which handshake the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    Plain,
    Digest(DigestScheme),
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC takes keys of any length, so this error arm is never taken.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC of a packet without the 32 digest bytes at `offset`.
fn packet_digest(packet: &[u8; PACKET_LEN], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    let before = packet.get(..offset).unwrap_or_default();
    let after = packet.get(offset + DIGEST_LEN..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

fn fms_key() -> [u8; 68] {
    let mut key = [0u8; 68];
    key[..36].copy_from_slice(FMS_KEY_TEXT);
    key[36..].copy_from_slice(&KEY_TAIL);
    key
}

/// Finds and verifies the client digest of a C1, trying both layouts.
pub fn find_client_digest(c1: &[u8; PACKET_LEN]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    // A zero version field marks a plain C1 (RTMP 1.0 §5.2.3: "Zero (4 bytes)").
    if c1.get(4..8) == Some(&[0u8; 4][..]) {
        return None;
    }
    [DigestScheme::DigestFirst, DigestScheme::KeyFirst]
        .into_iter()
        .find_map(|scheme| {
            let offset = scheme.digest_offset(c1);
            let expected = packet_digest(c1, offset, FP_KEY_TEXT);
            (c1.get(offset..offset + DIGEST_LEN) == Some(&expected[..]))
                .then_some((scheme, expected))
        })
}

/// Expands the caller's seed into `out` (SHA-256 in counter mode): random
/// enough for handshake padding, and reproducible in tests.
fn fill_random(seed: &[u8; 32], label: &[u8], out: &mut [u8]) {
    for (i, block) in out.chunks_mut(DIGEST_LEN).enumerate() {
        let hash = Sha256::new()
            .chain_update(seed)
            .chain_update(label)
            .chain_update((i as u32).to_be_bytes())
            .finalize();
        let n = block.len();
        block.copy_from_slice(hash.get(..n).unwrap_or_default());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    C0C1,
    C2,
    Done,
}

/// The server side of one handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    stage: Stage,
    seed: [u8; 32],
    kind: Option<HandshakeKind>,
}

impl ServerHandshake {
    /// `random_seed` should be fresh per connection (S1 padding is derived
    /// from it).
    pub fn new(random_seed: [u8; 32]) -> Self {
        Self {
            stage: Stage::C0C1,
            seed: random_seed,
            kind: None,
        }
    }

    /// The client's handshake form, known once C1 has arrived.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Consumes C0+C1, then C2, from `input` as each completes; appends
    /// S0+S1+S2 to `out`. Returns `true` once C2 has been consumed.
    pub fn handle(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, RtmpError> {
        if self.stage == Stage::C0C1 {
            match input.first() {
                None => return Ok(false),
                // RTMP 1.0 §5.2.2 lets a server answer an unknown version
                // with 3. Policy: versions 0–2 are obsolete, 6 and 8 are
                // RTMPE, anything else is not RTMP (an HTTP request, a TLS
                // ClientHello); all are refused at byte 0.
                Some(&v) if v != RTMP_VERSION => {
                    return Err(RtmpError::UnsupportedVersion { version: v });
                }
                Some(_) => {}
            }
            let Some(c1) = input
                .get(1..1 + PACKET_LEN)
                .and_then(|b| <[u8; PACKET_LEN]>::try_from(b).ok())
            else {
                return Ok(false);
            };
            input.advance(1 + PACKET_LEN);
            self.respond(&c1, out);
            self.stage = Stage::C2;
        }
        if self.stage == Stage::C2 {
            // RTMP 1.0 §5.2.4 says C2 echoes S1. Policy: it is not checked;
            // several encoders send arbitrary bytes and nothing depends on it.
            if input.len() < PACKET_LEN {
                return Ok(false);
            }
            input.advance(PACKET_LEN);
            self.stage = Stage::Done;
        }
        Ok(self.stage == Stage::Done)
    }

    fn respond(&mut self, c1: &[u8; PACKET_LEN], out: &mut BytesMut) {
        out.extend_from_slice(&[RTMP_VERSION]);
        let mut s1 = [0u8; PACKET_LEN];
        fill_random(&self.seed, b"S1", &mut s1[8..]);
        match find_client_digest(c1) {
            Some((scheme, client_digest)) => {
                self.kind = Some(HandshakeKind::Digest(scheme));
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                let offset = scheme.digest_offset(&s1);
                let digest = packet_digest(&s1, offset, FMS_KEY_TEXT);
                if let Some(slot) = s1.get_mut(offset..offset + DIGEST_LEN) {
                    slot.copy_from_slice(&digest);
                }
                out.extend_from_slice(&s1);
                let mut s2 = [0u8; PACKET_LEN];
                fill_random(&self.seed, b"S2", &mut s2);
                let key = hmac_sha256(&fms_key(), &[&client_digest]);
                let (body, signature) = s2.split_at_mut(PACKET_LEN - DIGEST_LEN);
                signature.copy_from_slice(&hmac_sha256(&key, &[body]));
                out.extend_from_slice(&s2);
            }
            None => {
                self.kind = Some(HandshakeKind::Plain);
                out.extend_from_slice(&s1);
                // RTMP 1.0 §5.2.4: S2 echoes C1's time and random bytes, and
                // its time2 field is when C1 was read. With no clock, C1 is
                // echoed whole (librtmp compares all 1536 bytes).
                out.extend_from_slice(c1);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Flash-style C0+C1 with a digest in the given layout.
    pub(crate) fn digest_c0c1(scheme: DigestScheme) -> Vec<u8> {
        let mut c1 = [0u8; PACKET_LEN];
        fill_random(&[7; 32], b"C1", &mut c1[8..]);
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let offset = scheme.digest_offset(&c1);
        let digest = packet_digest(&c1, offset, FP_KEY_TEXT);
        c1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
        let mut out = vec![RTMP_VERSION];
        out.extend_from_slice(&c1);
        out
    }

    fn run(input: &[u8]) -> (ServerHandshake, BytesMut, BytesMut) {
        let mut hs = ServerHandshake::new([1; 32]);
        let mut buf = BytesMut::from(input);
        let mut out = BytesMut::new();
        hs.handle(&mut buf, &mut out).unwrap();
        (hs, buf, out)
    }

    #[test]
    fn plain_handshake_echoes_c1() {
        let mut input = vec![3u8];
        input.extend((0..PACKET_LEN).map(|i| i as u8));
        let (hs, _, out) = run(&input);
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert_eq!(out.len(), 1 + 2 * PACKET_LEN);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..5], &[0; 4]);
        assert_eq!(&out[5..9], &[0; 4]);
        assert_eq!(&out[1 + PACKET_LEN..], &input[1..]);
    }

    #[test]
    fn digest_handshake_in_both_layouts() {
        for scheme in [DigestScheme::DigestFirst, DigestScheme::KeyFirst] {
            let c0c1 = digest_c0c1(scheme);
            let (hs, _, out) = run(&c0c1);
            assert_eq!(hs.kind(), Some(HandshakeKind::Digest(scheme)));
            let s1: [u8; PACKET_LEN] = out[1..1 + PACKET_LEN].try_into().unwrap();
            // What FFmpeg's client checks (libavformat/rtmpproto.c, rtmp_handshake).
            let offset = scheme.digest_offset(&s1);
            assert_eq!(
                &s1[offset..offset + 32],
                &packet_digest(&s1, offset, FMS_KEY_TEXT)
            );
            let c1: [u8; PACKET_LEN] = c0c1[1..].try_into().unwrap();
            let (_, client_digest) = find_client_digest(&c1).unwrap();
            let key = hmac_sha256(&fms_key(), &[&client_digest]);
            let s2 = &out[1 + PACKET_LEN..];
            assert_eq!(
                &s2[PACKET_LEN - 32..],
                &hmac_sha256(&key, &[&s2[..PACKET_LEN - 32]])
            );
        }
    }

    #[test]
    fn non_zero_version_without_digest_gets_plain_answer() {
        let mut input = vec![3u8; 1 + PACKET_LEN];
        input[5..9].copy_from_slice(&[9, 0, 124, 2]);
        let (hs, _, _) = run(&input);
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
    }

    #[test]
    fn waits_for_every_byte_and_leaves_chunks() {
        let mut input = digest_c0c1(DigestScheme::DigestFirst);
        input.extend_from_slice(&[0u8; PACKET_LEN]);
        input.extend_from_slice(b"chunks");
        let mut hs = ServerHandshake::new([1; 32]);
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        for (i, b) in input.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let done = hs.handle(&mut buf, &mut out).unwrap();
            assert_eq!(done, i >= 1 + 2 * PACKET_LEN - 1, "byte {i}");
            if i == PACKET_LEN - 1 {
                assert!(out.is_empty());
            }
        }
        assert_eq!(&buf[..], b"chunks");
        assert_eq!(out.len(), 1 + 2 * PACKET_LEN);
    }

    #[test]
    fn garbage_instead_of_c0_is_refused() {
        let mut hs = ServerHandshake::new([0; 32]);
        let mut out = BytesMut::new();
        let err = hs
            .handle(&mut BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]), &mut out)
            .unwrap_err();
        assert_eq!(err, RtmpError::UnsupportedVersion { version: b'G' });
        assert!(out.is_empty());
        let err = ServerHandshake::new([0; 32])
            .handle(&mut BytesMut::from(&[6u8][..]), &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("RTMPE"));
    }
}

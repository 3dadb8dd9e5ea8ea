//! [`Rope`]: bytes held as a list of shared pieces.
//!
//! A CMAF chunk is a small header (`moof` + the `mdat` header) followed by
//! the data of its samples, which already sit in [`Bytes`] handed in by the
//! caller (slices of a read buffer, of a mapped file, of network frames). A
//! rope keeps those pieces as they are, so a segment is assembled without
//! copying its media; a writer hands the pieces to a vectored write or to a
//! multi-part storage upload, and only a consumer that needs one contiguous
//! buffer pays for the copy ([`Rope::to_bytes`]).

use bytes::{Bytes, BytesMut};

/// Bytes in shared pieces, in order. Equality compares content, not how it
/// is cut into pieces.
#[derive(Clone, Debug, Default)]
pub struct Rope {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Rope {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `piece`; empty pieces are not kept.
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push(piece);
        }
    }

    /// Appends every piece of `other` (reference-counted, not copied).
    pub fn append(&mut self, other: &Rope) {
        self.pieces.extend(other.pieces.iter().cloned());
        self.len += other.len;
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; none is empty.
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    pub fn into_pieces(self) -> Vec<Bytes> {
        self.pieces
    }

    /// The content as one buffer: the piece itself when there is one, a
    /// copy into a new buffer otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match self.pieces.as_slice() {
            [] => Bytes::new(),
            [only] => only.clone(),
            pieces => {
                let mut all = BytesMut::with_capacity(self.len);
                for piece in pieces {
                    all.extend_from_slice(piece);
                }
                all.freeze()
            }
        }
    }

    fn iter_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.pieces.iter().flat_map(|p| p.iter().copied())
    }
}

impl From<Bytes> for Rope {
    fn from(piece: Bytes) -> Self {
        let mut rope = Rope::new();
        rope.push(piece);
        rope
    }
}

impl From<Vec<u8>> for Rope {
    fn from(bytes: Vec<u8>) -> Self {
        Rope::from(Bytes::from(bytes))
    }
}

impl From<String> for Rope {
    fn from(text: String) -> Self {
        Rope::from(Bytes::from(text))
    }
}

impl FromIterator<Bytes> for Rope {
    fn from_iter<I: IntoIterator<Item = Bytes>>(pieces: I) -> Self {
        let mut rope = Rope::new();
        for piece in pieces {
            rope.push(piece);
        }
        rope
    }
}

impl PartialEq for Rope {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter_bytes().eq(other.iter_bytes())
    }
}

impl Eq for Rope {}

impl PartialEq<[u8]> for Rope {
    fn eq(&self, other: &[u8]) -> bool {
        self.len == other.len() && self.iter_bytes().eq(other.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(pieces: &[&'static [u8]]) -> Rope {
        pieces.iter().map(|p| Bytes::from_static(p)).collect()
    }

    #[test]
    fn content_equality_ignores_how_it_is_cut() {
        let a = rope(&[b"moof", b"", b"mdat", b"xyz"]);
        let b = rope(&[b"mo", b"ofmdatx", b"yz"]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 11);
        assert_eq!(a.pieces().len(), 3, "the empty piece is not kept");
        assert_eq!(&a, b"moofmdatxyz".as_slice());
        assert_ne!(a, rope(&[b"moofmdatxyZ"]));
        assert_ne!(a, rope(&[b"moofmdatxy"]));
    }

    #[test]
    fn to_bytes_shares_a_single_piece_and_joins_several() {
        let piece = Bytes::from_static(b"only");
        let one = Rope::from(piece.clone());
        assert_eq!(one.to_bytes().as_ptr(), piece.as_ptr());
        assert_eq!(rope(&[b"a", b"bc"]).to_bytes(), Bytes::from_static(b"abc"));
        assert!(Rope::new().to_bytes().is_empty());
    }

    #[test]
    fn append_shares_pieces() {
        let mut a = rope(&[b"ab"]);
        let b = rope(&[b"cd", b"e"]);
        a.append(&b);
        assert_eq!(&a, b"abcde".as_slice());
        assert_eq!(a.pieces()[1].as_ptr(), b.pieces()[0].as_ptr());
    }
}

//! Where the bytes of an upload arriving into a remote store are: its
//! pieces, in order, each an object `uploads/{upload}/{start}.{writer}`.
//!
//! A piece covers the upload from its start to the next piece's start (the
//! last one, to the durable offset). Pieces are sealed once they hold
//! [`PIECE_MIN`] bytes or more (S3's smallest multipart part); the last
//! piece may be smaller: the tail, rewritten longer by each commit of the
//! session that wrote it until it is sealed. A rewrite only ever extends
//! the object, so a reader that learned the tail's extent from an older
//! record still reads the same bytes from a newer version.

use std::fmt;
use std::ops::Range;

/// A piece under this many bytes is the tail, still growing.
pub const PIECE_MIN: u64 = 5 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The upload offset of its first byte.
    pub start: u64,
    /// The session that wrote it.
    pub writer: String,
}

/// An upload's pieces, in order of `start`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pieces(Vec<Piece>);

impl Pieces {
    /// Parses the database column (`start.writer` words).
    pub fn parse(text: &str) -> Option<Pieces> {
        let mut pieces = Vec::new();
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            let (start, writer) = word.split_once('.')?;
            let start: u64 = start.parse().ok()?;
            if pieces.last().is_some_and(|p: &Piece| p.start >= start) || writer.is_empty() {
                return None;
            }
            pieces.push(Piece {
                start,
                writer: writer.to_owned(),
            });
        }
        Some(Pieces(pieces))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn last(&self) -> Option<&Piece> {
        self.0.last()
    }

    /// Each piece with the upload bytes it holds, when `durable` bytes are.
    pub fn spans(&self, durable: u64) -> impl Iterator<Item = (&Piece, Range<u64>)> {
        self.0.iter().enumerate().map(move |(i, piece)| {
            let end = self.0.get(i + 1).map_or(durable, |next| next.start);
            (piece, piece.start..end.max(piece.start))
        })
    }

    /// The piece holding byte `pos` and its span, if `pos` is durable.
    pub fn locate(&self, pos: u64, durable: u64) -> Option<(&Piece, Range<u64>)> {
        if pos >= durable {
            return None;
        }
        self.spans(durable).find(|(_, span)| span.contains(&pos))
    }

    /// These pieces up to `from`, then `newer` (which begin at `from`).
    pub fn replaced_from(&self, from: u64, newer: &[Piece]) -> Pieces {
        let mut pieces: Vec<Piece> = self.0.iter().filter(|p| p.start < from).cloned().collect();
        pieces.extend_from_slice(newer);
        Pieces(pieces)
    }

    pub fn contains(&self, piece: &Piece) -> bool {
        self.0.contains(piece)
    }
}

impl fmt::Display for Pieces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, piece) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}.{}", piece.start, piece.writer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(start: u64, writer: &str) -> Piece {
        Piece {
            start,
            writer: writer.into(),
        }
    }

    #[test]
    fn pieces_round_trip_and_locate() {
        let pieces = Pieces::parse("0.a 6291456.a 12582912.b").unwrap();
        assert_eq!(pieces.to_string(), "0.a 6291456.a 12582912.b");
        let durable = 13_000_000;
        assert_eq!(pieces.locate(0, durable).unwrap().1, 0..6_291_456);
        let (tail, span) = pieces.locate(12_999_999, durable).unwrap();
        assert_eq!((tail.writer.as_str(), span), ("b", 12_582_912..durable));
        assert!(pieces.locate(durable, durable).is_none());
        assert_eq!(Pieces::parse("").unwrap(), Pieces::default());
    }

    #[test]
    fn malformed_pieces_are_refused() {
        assert!(Pieces::parse("5.a 0.b").is_none());
        assert!(Pieces::parse("0.").is_none());
        assert!(Pieces::parse("x.a").is_none());
        assert!(Pieces::parse("0a").is_none());
    }

    #[test]
    fn a_new_writer_replaces_the_tail() {
        let pieces = Pieces::parse("0.a 6291456.a").unwrap();
        let newer = [piece(6_291_456, "b"), piece(12_000_000, "b")];
        assert_eq!(
            pieces.replaced_from(6_291_456, &newer).to_string(),
            "0.a 6291456.b 12000000.b"
        );
    }
}

//! NAL unit framing shared by H.264 and H.265: Annex B byte streams
//! (start codes, ITU-T H.264 Annex B) and the length-prefixed form MP4
//! samples use (ISO/IEC 14496-15 §5.3.2, `lengthSizeMinusOne`).

use super::CodecError;

/// Iterates the NAL units of an Annex B byte stream, without start codes.
///
/// Leading zero bytes and `trailing_zero_8bits` are dropped; empty NAL units
/// (two adjacent start codes) are skipped.
pub fn split_annex_b(data: &[u8]) -> AnnexBNalus<'_> {
    AnnexBNalus {
        rest: skip_to_payload(data),
    }
}

/// Iterator returned by [`split_annex_b`].
#[derive(Clone, Debug)]
pub struct AnnexBNalus<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AnnexBNalus<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (nal, next) = match find_start_code(self.rest) {
                Some((start, len)) => (&self.rest[..start], &self.rest[start + len..]),
                None => (self.rest, &[][..]),
            };
            self.rest = next;
            let nal = trim_trailing_zeros(nal);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// Position and length of the first `00 00 01` (or `00 00 00 01`) in `data`.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    let i = data.windows(3).position(|w| w == [0, 0, 1])?;
    if i > 0 && data.get(i - 1) == Some(&0) {
        Some((i - 1, 4))
    } else {
        Some((i, 3))
    }
}

fn skip_to_payload(data: &[u8]) -> &[u8] {
    match find_start_code(data) {
        Some((start, len)) if data[..start].iter().all(|&b| b == 0) => &data[start + len..],
        _ => data,
    }
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

/// Converts an Annex B access unit to 4-byte length-prefixed NAL units, the
/// sample format of `avc1`/`hvc1` tracks.
pub fn annex_b_to_length_prefixed(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in split_annex_b(data) {
        let len = u32::try_from(nal.len()).map_err(|_| CodecError::Invalid {
            pos: 0,
            context: "annex b",
            reason: "NAL unit larger than 4 GiB",
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    Ok(out)
}

/// Iterates the NAL units of a length-prefixed sample.
///
/// `length_size` is 1, 2 or 4 (`lengthSizeMinusOne + 1` from `avcC`/`hvcC`).
pub fn split_length_prefixed(data: &[u8], length_size: u8) -> LengthPrefixedNalus<'_> {
    LengthPrefixedNalus {
        data,
        pos: 0,
        length_size: usize::from(length_size),
    }
}

/// Iterator returned by [`split_length_prefixed`]; yields an error once and
/// then stops if a length runs past the end of the sample.
#[derive(Clone, Debug)]
pub struct LengthPrefixedNalus<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: usize,
}

impl<'a> Iterator for LengthPrefixedNalus<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let fail = |this: &mut Self, reason| {
            this.pos = this.data.len();
            Some(Err(CodecError::Invalid {
                pos: start,
                context: "length-prefixed NAL unit",
                reason,
            }))
        };
        if !matches!(self.length_size, 1 | 2 | 4) {
            return fail(self, "NAL length size is not 1, 2 or 4");
        }
        let Some(prefix) = self.data.get(start..start + self.length_size) else {
            return fail(self, "length prefix runs past the sample");
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let body = start + self.length_size;
        let Some(nal) = body
            .checked_add(len)
            .and_then(|end| self.data.get(body..end))
        else {
            return fail(self, "NAL unit runs past the sample");
        };
        self.pos = body + len;
        Some(Ok(nal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_with_mixed_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 0xaa, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 0, 1, 0x65, 0x01, 0x02, 0, 0,
        ];
        let nalus: Vec<_> = split_annex_b(&stream).collect();
        assert_eq!(
            nalus,
            [&[0x67, 0xaa][..], &[0x68, 0xbb], &[0x65, 0x01, 0x02]]
        );
        let prefixed = annex_b_to_length_prefixed(&stream).unwrap();
        assert_eq!(
            prefixed,
            [
                0, 0, 0, 2, 0x67, 0xaa, 0, 0, 0, 2, 0x68, 0xbb, 0, 0, 0, 3, 0x65, 1, 2
            ]
        );
        let back: Vec<_> = split_length_prefixed(&prefixed, 4)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, nalus);
    }

    #[test]
    fn length_prefixed_overrun_is_invalid() {
        let mut it = split_length_prefixed(&[0, 5, 1, 2], 2);
        assert!(matches!(
            it.next(),
            Some(Err(CodecError::Invalid { pos: 0, .. }))
        ));
        assert!(it.next().is_none());
        assert!(split_length_prefixed(&[1, 2], 3).next().unwrap().is_err());
    }

    #[test]
    fn empty_and_garbage_inputs() {
        assert_eq!(split_annex_b(&[]).count(), 0);
        assert_eq!(split_annex_b(&[0, 0, 1, 0, 0, 1]).count(), 0);
        assert_eq!(
            split_annex_b(&[0x09, 0xf0]).collect::<Vec<_>>(),
            [&[0x09, 0xf0]]
        );
    }
}

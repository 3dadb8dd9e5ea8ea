//! Top-level box framing (ISO/IEC 14496-12 §4.2): 32-bit size, FourCC,
//! optional 64-bit `largesize`; size 0 means "to the end of the file".

use super::{MAX_BOX_SIZE, Mp4Error, fourcc_string};

/// A parsed box header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    /// 8, or 16 with a `largesize`.
    pub header_len: usize,
    /// Whole box size, header included; `None` when it runs to the end of the file.
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Parses the header at the start of `data`; `Ok(None)` when more bytes are needed.
    /// `offset` is only used in errors.
    pub fn parse(data: &[u8], offset: u64) -> Result<Option<Self>, Mp4Error> {
        let Some(head) = data.get(..8) else {
            return Ok(None);
        };
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (header_len, size) = match size32 {
            0 => (8, None),
            1 => {
                let Some(large) = data.get(8..16) else {
                    return Ok(None);
                };
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(large);
                (16, Some(u64::from_be_bytes(bytes)))
            }
            n => (8, Some(u64::from(n))),
        };
        if size.is_some_and(|s| s < header_len as u64) {
            return Err(Mp4Error::Invalid {
                offset,
                context: "box header",
                reason: "size smaller than the header",
            });
        }
        Ok(Some(Self {
            kind,
            header_len,
            size,
        }))
    }

    /// The box size as a buffer length, refusing boxes over [`MAX_BOX_SIZE`].
    pub fn checked_len(&self, offset: u64) -> Result<Option<usize>, Mp4Error> {
        match self.size {
            None => Ok(None),
            Some(size) if size > MAX_BOX_SIZE => Err(Mp4Error::BoxTooLarge {
                kind: fourcc_string(&self.kind),
                offset,
                size,
                max: MAX_BOX_SIZE,
            }),
            Some(size) => Ok(Some(size as usize)),
        }
    }
}

/// One top-level box of a complete file.
#[derive(Clone, Copy, Debug)]
pub struct TopLevelBox<'a> {
    pub kind: [u8; 4],
    /// File offset of the first header byte.
    pub offset: u64,
    pub header_len: usize,
    /// The whole box, header included.
    pub bytes: &'a [u8],
}

impl TopLevelBox<'_> {
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(self.header_len..).unwrap_or_default()
    }
}

/// Iterates the top-level boxes of a complete file held in memory. A box
/// that runs past the end yields [`Mp4Error::Truncated`] and ends iteration.
pub fn top_level_boxes(file: &[u8]) -> impl Iterator<Item = Result<TopLevelBox<'_>, Mp4Error>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = file.get(pos..).filter(|r| !r.is_empty())?;
        let offset = pos as u64;
        let truncated = Mp4Error::Truncated {
            offset,
            context: "top-level box",
        };
        let header = match BoxHeader::parse(rest, offset) {
            Ok(Some(h)) => h,
            Ok(None) => {
                pos = file.len();
                return Some(Err(truncated));
            }
            Err(e) => {
                pos = file.len();
                return Some(Err(e));
            }
        };
        let len = match header.size.map(usize::try_from) {
            None => rest.len(),
            Some(Ok(len)) if len <= rest.len() => len,
            Some(_) => {
                pos = file.len();
                return Some(Err(truncated));
            }
        };
        pos += len;
        Some(Ok(TopLevelBox {
            kind: header.kind,
            offset,
            header_len: header.header_len,
            bytes: &rest[..len],
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(BoxHeader::parse(&[0, 0, 0], 0).unwrap(), None);
        let h = BoxHeader::parse(b"\0\0\0\x10moovxxxxxxxx", 0)
            .unwrap()
            .unwrap();
        assert_eq!((h.kind, h.header_len, h.size), (*b"moov", 8, Some(16)));
        assert_eq!(BoxHeader::parse(b"\0\0\0\x01mdat\0\0\0", 0).unwrap(), None);
        let h = BoxHeader::parse(b"\0\0\0\x01mdat\0\0\0\x01\0\0\0\0", 0)
            .unwrap()
            .unwrap();
        assert_eq!((h.header_len, h.size), (16, Some(1 << 32)));
        assert!(matches!(
            h.checked_len(0),
            Err(Mp4Error::BoxTooLarge { .. })
        ));
        assert!(matches!(
            BoxHeader::parse(b"\0\0\0\x04free", 9),
            Err(Mp4Error::Invalid { offset: 9, .. })
        ));
    }

    #[test]
    fn iterates_and_reports_truncation() {
        let file = b"\0\0\0\x08free\0\0\0\x0cskip1234\0\0\0\x20mdat";
        let boxes: Vec<_> = top_level_boxes(file).collect();
        assert_eq!(boxes.len(), 3);
        assert_eq!(boxes[1].as_ref().unwrap().payload(), b"1234");
        assert!(matches!(
            boxes[2],
            Err(Mp4Error::Truncated { offset: 20, .. })
        ));
    }
}

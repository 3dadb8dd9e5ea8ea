//! The PES packet header (ISO/IEC 13818-1 §2.4.3.6): where the elementary
//! stream data starts, and its presentation and decoding times.

/// The fields of a PES header a demuxer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PesHeader {
    /// `PES_packet_length`: the bytes after this field, 0 for "unbounded"
    /// (video).
    pub packet_len: usize,
    /// 33-bit presentation time, 90 kHz.
    pub pts: Option<u64>,
    /// 33-bit decoding time, 90 kHz (only when it differs from the PTS).
    pub dts: Option<u64>,
    /// Offset of the elementary stream data.
    pub data_at: usize,
}

/// Bytes of the PES header needed before [`parse`] can answer: start code,
/// stream id, length, the two flag bytes and the header data length.
pub(super) const FIXED_LEN: usize = 9;

/// Parses the header at the start of a PES packet; `Ok(None)` when more
/// bytes are needed.
pub(super) fn parse(data: &[u8]) -> Result<Option<PesHeader>, &'static str> {
    if data.len() < 6 {
        return Ok(None);
    }
    if data[..3] != [0, 0, 1] {
        return Err("no packet_start_code_prefix");
    }
    let stream_id = data[3];
    let packet_len = usize::from(u16::from_be_bytes([data[4], data[5]]));
    // §2.4.3.7, Table 2-22: these stream ids have no optional header.
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) {
        return Ok(Some(PesHeader {
            packet_len,
            pts: None,
            dts: None,
            data_at: 6,
        }));
    }
    if data.len() < FIXED_LEN {
        return Ok(None);
    }
    if data[6] & 0xc0 != 0x80 {
        return Err("PES header does not start with '10'");
    }
    let flags = data[7] >> 6;
    let header_len = usize::from(data[8]);
    let data_at = FIXED_LEN + header_len;
    if packet_len != 0 && packet_len + 6 < data_at {
        return Err("PES_header_data_length past PES_packet_length");
    }
    if data.len() < data_at {
        return Ok(None);
    }
    let optional = &data[FIXED_LEN..data_at];
    let (pts, dts) = match flags {
        0b00 => (None, None),
        0b10 => (Some(timestamp(optional)?), None),
        0b11 => (
            Some(timestamp(optional)?),
            Some(timestamp(optional.get(5..).unwrap_or_default())?),
        ),
        _ => return Err("PTS_DTS_flags 01 (forbidden)"),
    };
    Ok(Some(PesHeader {
        packet_len,
        pts,
        dts,
        data_at,
    }))
}

/// A 5-byte PTS or DTS field.
fn timestamp(b: &[u8]) -> Result<u64, &'static str> {
    let [a, b1, b2, c1, c2, ..] = *b else {
        return Err("PTS/DTS past PES_header_data_length");
    };
    if a & 0x01 == 0 || b2 & 0x01 == 0 || c2 & 0x01 == 0 {
        return Err("PTS/DTS marker bit is 0");
    }
    Ok((u64::from(a >> 1) & 0x07) << 30
        | u64::from(b1) << 22
        | u64::from(b2 >> 1) << 15
        | u64::from(c1) << 7
        | u64::from(c2 >> 1))
}

/// Writes a PES header, for tests and fixtures.
#[cfg(test)]
pub(super) fn write(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: Option<usize>,
) -> Vec<u8> {
    fn ts(prefix: u8, t: u64) -> [u8; 5] {
        [
            prefix << 4 | ((t >> 29) as u8 & 0x0e) | 1,
            (t >> 22) as u8,
            ((t >> 14) as u8 & 0xfe) | 1,
            (t >> 7) as u8,
            ((t << 1) as u8) | 1,
        ]
    }
    let mut optional = Vec::new();
    match dts {
        None => optional.extend_from_slice(&ts(0b0010, pts)),
        Some(dts) => {
            optional.extend_from_slice(&ts(0b0011, pts));
            optional.extend_from_slice(&ts(0b0001, dts));
        }
    }
    let flags = if dts.is_some() { 0xc0 } else { 0x80 };
    let len = payload_len.map_or(0, |n| n + 3 + optional.len());
    let mut out = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8, 0x80, flags];
    out.push(optional.len() as u8);
    out.extend_from_slice(&optional);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pts_and_dts_up_to_33_bits() {
        let max = (1u64 << 33) - 1;
        let h = write(0xe0, max, Some(123_456), None);
        let parsed = parse(&h).unwrap().unwrap();
        assert_eq!((parsed.pts, parsed.dts), (Some(max), Some(123_456)));
        assert_eq!((parsed.packet_len, parsed.data_at), (0, 19));
        let h = write(0xc0, 90_000, None, Some(100));
        let parsed = parse(&h).unwrap().unwrap();
        assert_eq!(
            (parsed.pts, parsed.dts, parsed.packet_len),
            (Some(90_000), None, 108)
        );
    }

    #[test]
    fn waits_for_the_whole_header() {
        let h = write(0xe0, 1, Some(0), None);
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(None), "{n} bytes");
        }
    }

    #[test]
    fn refuses_malformed_headers() {
        assert!(parse(&[0, 0, 2, 0xe0, 0, 0, 0x80, 0, 0]).is_err());
        assert!(parse(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0x40, 0]).is_err());
        let mut h = write(0xe0, 1, None, None);
        h[13] &= 0xfe;
        assert!(parse(&h).is_err());
    }
}

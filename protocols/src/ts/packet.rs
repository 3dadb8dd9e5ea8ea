//! One 188-byte transport packet (ISO/IEC 13818-1 §2.4.3.2): its header
//! and adaptation field.

/// Bytes in a transport packet.
pub const PACKET_LEN: usize = 188;

/// The first byte of every packet.
pub(super) const SYNC_BYTE: u8 = 0x47;

/// The null packet's PID: stuffing, never read.
pub(super) const NULL_PID: u16 = 0x1fff;

/// The header fields of one packet and where its payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    /// `transport_error_indicator`: a lower layer found the packet damaged.
    pub error: bool,
    /// `payload_unit_start_indicator`: a PES packet or PSI section starts here.
    pub unit_start: bool,
    pub pid: u16,
    /// `transport_scrambling_control` is not zero.
    pub scrambled: bool,
    pub has_payload: bool,
    pub continuity: u8,
    /// `discontinuity_indicator` of the adaptation field.
    pub discontinuity: bool,
    /// `random_access_indicator`: the next PES starts a decodable point.
    pub random_access: bool,
    /// Offset of the payload in the packet (`PACKET_LEN` when none).
    pub payload_at: usize,
}

/// Parses the header of `packet` (exactly [`PACKET_LEN`] bytes starting
/// with the sync byte); why not when its adaptation field is malformed.
pub(super) fn parse(packet: &[u8; PACKET_LEN]) -> Result<Header, &'static str> {
    let control = (packet[3] >> 4) & 0x03;
    let mut header = Header {
        error: packet[1] & 0x80 != 0,
        unit_start: packet[1] & 0x40 != 0,
        pid: u16::from_be_bytes([packet[1] & 0x1f, packet[2]]),
        scrambled: packet[3] >> 6 != 0,
        has_payload: control & 0x01 != 0,
        continuity: packet[3] & 0x0f,
        discontinuity: false,
        random_access: false,
        payload_at: 4,
    };
    if control == 0 {
        return Err("adaptation_field_control 00 (reserved)");
    }
    if control & 0x02 != 0 {
        let len = usize::from(packet[4]);
        // §2.4.3.5: 0..=182 with a payload, 183 without.
        let max = if header.has_payload { 182 } else { 183 };
        if len > max {
            return Err("adaptation field longer than the packet");
        }
        if len > 0 {
            header.discontinuity = packet[5] & 0x80 != 0;
            header.random_access = packet[5] & 0x40 != 0;
        }
        header.payload_at = 5 + len;
    }
    if !header.has_payload {
        header.payload_at = PACKET_LEN;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(head: &[u8]) -> [u8; PACKET_LEN] {
        let mut p = [0xffu8; PACKET_LEN];
        p[..head.len()].copy_from_slice(head);
        p
    }

    #[test]
    fn reads_the_header_fields() {
        let h = parse(&packet(&[0x47, 0x41, 0x00, 0x17])).unwrap();
        assert!(h.unit_start && !h.error && !h.scrambled && h.has_payload);
        assert_eq!((h.pid, h.continuity, h.payload_at), (0x100, 7, 4));
    }

    #[test]
    fn reads_the_adaptation_field() {
        // Adaptation field of 7 bytes: discontinuity + random access + PCR.
        let h = parse(&packet(&[0x47, 0x01, 0x00, 0x30, 7, 0xd0])).unwrap();
        assert!(h.discontinuity && h.random_access);
        assert_eq!(h.payload_at, 12);
        // Adaptation field only.
        let h = parse(&packet(&[0x47, 0x01, 0x00, 0x20, 183, 0x00])).unwrap();
        assert!(!h.has_payload);
        assert_eq!(h.payload_at, PACKET_LEN);
    }

    #[test]
    fn refuses_impossible_lengths_and_reserved_control() {
        assert!(parse(&packet(&[0x47, 0x01, 0x00, 0x30, 183])).is_err());
        assert!(parse(&packet(&[0x47, 0x01, 0x00, 0x00])).is_err());
    }
}

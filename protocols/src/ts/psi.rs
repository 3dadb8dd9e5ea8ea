//! Program-specific information (ISO/IEC 13818-1 §2.4.4): sections carried
//! across packets, and the two tables a demuxer needs, the program
//! association table (PAT) and the program map table (PMT).

use crc::{CRC_32_MPEG_2, Crc};

const MPEG_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_MPEG_2);

/// Longest section: private sections may be 4,096 bytes, PAT and PMT 1,024.
const MAX_SECTION: usize = 4096;

pub(super) const TABLE_PAT: u8 = 0x00;
pub(super) const TABLE_PMT: u8 = 0x02;

/// Collects the sections of one PSI PID from its packets' payloads.
#[derive(Debug, Default)]
pub(super) struct SectionBuffer {
    buf: Vec<u8>,
    /// Inside a run of sections that began at a `pointer_field`.
    active: bool,
}

impl SectionBuffer {
    /// Forgets a partial section (continuity was lost).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet's payload; every section it completes is handed to
    /// `out` (unchecked: see [`Section::parse`]).
    pub fn push(&mut self, unit_start: bool, payload: &[u8], out: &mut impl FnMut(&[u8])) {
        let mut data = payload;
        if unit_start {
            let Some((&pointer, rest)) = data.split_first() else {
                self.reset();
                return;
            };
            let pointer = usize::from(pointer);
            if pointer > rest.len() {
                self.reset();
                return;
            }
            if self.active {
                self.buf.extend_from_slice(&rest[..pointer]);
                self.drain(out);
            }
            self.buf.clear();
            self.active = true;
            data = &rest[pointer..];
        } else if !self.active {
            return;
        }
        self.buf.extend_from_slice(data);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut impl FnMut(&[u8])) {
        let mut at = 0;
        while self.active {
            let rest = &self.buf[at..];
            // A table_id of 0xff is stuffing: the rest of the packet is too.
            if rest.first().is_none_or(|&b| b == 0xff) {
                if !rest.is_empty() {
                    self.active = false;
                }
                break;
            }
            if rest.len() < 3 {
                break;
            }
            let len = 3 + (usize::from(rest[1] & 0x0f) << 8 | usize::from(rest[2]));
            if len > MAX_SECTION {
                self.active = false;
                break;
            }
            if rest.len() < len {
                break;
            }
            out(&rest[..len]);
            at += len;
        }
        if self.active {
            self.buf.drain(..at);
        } else {
            self.buf.clear();
        }
    }
}

/// A long-form section whose CRC matched.
#[derive(Debug)]
pub(super) struct Section<'a> {
    pub table_id: u8,
    /// `transport_stream_id` (PAT), `program_number` (PMT).
    pub id: u16,
    pub version: u8,
    /// The data between the section header and the CRC.
    pub body: &'a [u8],
}

impl<'a> Section<'a> {
    /// Checks a whole section (header to CRC); `None` for a section that
    /// does not apply yet (`current_next_indicator` 0).
    pub fn parse(section: &'a [u8]) -> Result<Option<Self>, &'static str> {
        if section.len() < 12 {
            return Err("section too short");
        }
        if section[1] & 0x80 == 0 {
            return Err("section_syntax_indicator is 0");
        }
        let (data, crc) = section.split_at(section.len() - 4);
        let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if MPEG_CRC.checksum(data) != expected {
            return Err("CRC_32 mismatch");
        }
        if section[5] & 0x01 == 0 {
            return Ok(None);
        }
        Ok(Some(Section {
            table_id: section[0],
            id: u16::from_be_bytes([section[3], section[4]]),
            version: (section[5] >> 1) & 0x1f,
            body: &data[8..],
        }))
    }
}

/// The `(program_number, program_map_PID)` pairs of a PAT body, without
/// the network PID (program 0).
pub(super) fn pat_programs(body: &[u8]) -> Vec<(u16, u16)> {
    body.chunks_exact(4)
        .map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                u16::from_be_bytes([e[2] & 0x1f, e[3]]),
            )
        })
        .filter(|&(program, _)| program != 0)
        .collect()
}

/// One elementary stream of a PMT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    /// The `format_identifier` of a registration descriptor (e.g. `Opus`).
    pub registration: Option<[u8; 4]>,
    /// The `channel_config_code` of an Opus extension descriptor.
    pub opus_channels: Option<u8>,
    /// Descriptor tags, to name what is not supported (AC-3: 0x6a).
    pub tags: Vec<u8>,
}

/// The elementary streams of a PMT body.
pub(super) fn pmt_streams(body: &[u8]) -> Result<Vec<PmtStream>, &'static str> {
    if body.len() < 4 {
        return Err("PMT too short");
    }
    let info_len = usize::from(body[2] & 0x0f) << 8 | usize::from(body[3]);
    let mut rest = body
        .get(4 + info_len..)
        .ok_or("program_info_length past the end")?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err("elementary stream entry cut short");
        }
        let es_len = usize::from(rest[3] & 0x0f) << 8 | usize::from(rest[4]);
        let descriptors = rest
            .get(5..5 + es_len)
            .ok_or("ES_info_length past the end")?;
        let mut stream = PmtStream {
            stream_type: rest[0],
            pid: u16::from_be_bytes([rest[1] & 0x1f, rest[2]]),
            registration: None,
            opus_channels: None,
            tags: Vec::new(),
        };
        read_descriptors(descriptors, &mut stream);
        streams.push(stream);
        rest = &rest[5 + es_len..];
    }
    Ok(streams)
}

fn read_descriptors(mut data: &[u8], stream: &mut PmtStream) {
    while let [tag, len, rest @ ..] = data {
        let Some(body) = rest.get(..usize::from(*len)) else {
            return;
        };
        stream.tags.push(*tag);
        match (*tag, body) {
            (0x05, [a, b, c, d, ..]) => stream.registration = Some([*a, *b, *c, *d]),
            // extension_descriptor, tag 0x80: the Opus audio descriptor.
            (0x7f, [0x80, code, ..]) => stream.opus_channels = Some(*code),
            _ => {}
        }
        data = &rest[usize::from(*len)..];
    }
}

#[cfg(test)]
pub(super) mod build {
    //! Sections for tests, with their CRC.

    use super::MPEG_CRC;

    pub fn section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![
            table_id,
            0xb0 | (len >> 8) as u8,
            len as u8,
            (id >> 8) as u8,
            id as u8,
            0xc1 | (version << 1),
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = MPEG_CRC.checksum(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    pub fn pat(programs: &[(u16, u16)]) -> Vec<u8> {
        let body: Vec<u8> = programs
            .iter()
            .flat_map(|&(n, pid)| [(n >> 8) as u8, n as u8, 0xe0 | (pid >> 8) as u8, pid as u8])
            .collect();
        section(super::TABLE_PAT, 1, 0, &body)
    }

    /// A PMT with `(stream_type, pid, descriptors)` entries.
    pub fn pmt(version: u8, pcr_pid: u16, streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![0xe0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xf0, 0];
        for (stream_type, pid, descriptors) in streams {
            body.extend_from_slice(&[
                *stream_type,
                0xe0 | (pid >> 8) as u8,
                *pid as u8,
                0xf0 | (descriptors.len() >> 8) as u8,
                descriptors.len() as u8,
            ]);
            body.extend_from_slice(descriptors);
        }
        section(super::TABLE_PMT, 1, version, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buffer: &mut SectionBuffer, unit_start: bool, payload: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        buffer.push(unit_start, payload, &mut |s| out.push(s.to_vec()));
        out
    }

    #[test]
    fn a_pat_round_trips() {
        let s = build::pat(&[(0, 0x10), (1, 0x1000)]);
        let section = Section::parse(&s).unwrap().unwrap();
        assert_eq!(section.table_id, TABLE_PAT);
        assert_eq!(pat_programs(section.body), vec![(1, 0x1000)]);
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut s = build::pat(&[(1, 0x1000)]);
        s[9] ^= 0x01;
        assert_eq!(Section::parse(&s).unwrap_err(), "CRC_32 mismatch");
    }

    #[test]
    fn a_pmt_lists_its_streams_and_descriptors() {
        let opus = [0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 2];
        let s = build::pmt(3, 0x100, &[(0x1b, 0x100, &[]), (0x06, 0x101, &opus)]);
        let section = Section::parse(&s).unwrap().unwrap();
        assert_eq!((section.table_id, section.version), (TABLE_PMT, 3));
        let streams = pmt_streams(section.body).unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!((streams[0].stream_type, streams[0].pid), (0x1b, 0x100));
        assert_eq!(streams[1].registration, Some(*b"Opus"));
        assert_eq!(streams[1].opus_channels, Some(2));
    }

    #[test]
    fn sections_are_collected_across_packets_and_after_a_pointer() {
        let pat = build::pat(&[(1, 0x1000)]);
        let mut b = SectionBuffer::default();
        // Tail bytes of an unknown earlier section, then the PAT in two
        // pieces, then stuffing.
        let mut first = vec![2, 0xaa, 0xbb];
        first.extend_from_slice(&pat[..5]);
        assert!(collect(&mut b, true, &first).is_empty());
        let mut second = pat[5..].to_vec();
        second.extend_from_slice(&[0xff; 20]);
        assert_eq!(collect(&mut b, false, &second), vec![pat.clone()]);
        // Two sections in one payload.
        let mut both = vec![0];
        both.extend_from_slice(&pat);
        both.extend_from_slice(&pat);
        assert_eq!(collect(&mut b, true, &both).len(), 2);
        // A continuation without a start is ignored.
        b.reset();
        assert!(collect(&mut b, false, &pat).is_empty());
    }

    #[test]
    fn a_pointer_past_the_payload_is_ignored() {
        let mut b = SectionBuffer::default();
        assert!(collect(&mut b, true, &[200, 1, 2]).is_empty());
    }
}

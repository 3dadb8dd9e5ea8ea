//! Transport packets to PES packets: finds the packets in a byte stream
//! split anywhere, follows the PAT to the first program's PMT and collects
//! each elementary stream's PES packets.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::TsError;
use super::packet::{self, Header, NULL_PID, PACKET_LEN, SYNC_BYTE};
use super::pes::{self, PesHeader};
use super::psi::{self, Section, SectionBuffer};

/// Garbage skipped before the first packet, at most, before the input is
/// refused as something else than a transport stream.
const MAX_UNSYNCED: usize = 64 * 1024;

/// Packets read, at most, before the program must be known.
pub const MAX_PACKETS_WITHOUT_PROGRAM: u64 = 4096;

/// Elementary streams read, at most (each may buffer a PES of up to
/// [`MAX_PES`] bytes); streams past it are left unread.
pub const MAX_STREAMS: usize = 8;

/// Largest PES packet collected; past it the packet is dropped.
const MAX_PES: usize = crate::rtp::MAX_ACCESS_UNIT;

/// What an elementary stream carries, from its PMT entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    H264,
    H265,
    /// AAC in ADTS frames (stream type 0x0f).
    Aac,
    /// Opus with its TS framing, and the `channel_config_code` of its
    /// descriptor.
    Opus(Option<u8>),
    /// Anything else, named.
    Unsupported(String),
}

impl StreamKind {
    fn of(stream: &psi::PmtStream) -> Self {
        match (stream.stream_type, stream.registration.as_ref()) {
            (0x1b, _) => Self::H264,
            (0x24, _) => Self::H265,
            (0x0f, _) => Self::Aac,
            (0x06, Some(b"Opus")) => Self::Opus(stream.opus_channels),
            (t, _) => Self::Unsupported(name_of(t, stream)),
        }
    }
}

fn name_of(stream_type: u8, stream: &psi::PmtStream) -> String {
    let name = match stream_type {
        0x01 => "MPEG-1 video",
        0x02 => "MPEG-2 video",
        0x03 => "MPEG-1 audio",
        0x04 => "MPEG-2 audio",
        0x10 => "MPEG-4 part 2 video",
        0x11 => "AAC in LATM",
        0x15 => "timed metadata",
        0x81 => "AC-3",
        0x86 => "SCTE-35 cues",
        0x87 => "E-AC-3",
        0x06 if stream.tags.contains(&0x6a) => "AC-3",
        0x06 if stream.tags.contains(&0x7a) => "E-AC-3",
        0x06 if stream.tags.contains(&0x59) => "DVB subtitles",
        0x06 if stream.tags.contains(&0x56) => "teletext",
        0x06 => "private data",
        _ => "",
    };
    if name.is_empty() {
        format!("stream type 0x{stream_type:02x}")
    } else {
        format!("{name} (stream type 0x{stream_type:02x})")
    }
}

/// One elementary stream of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementaryStream {
    pub pid: u16,
    pub kind: StreamKind,
}

/// A complete PES packet of a supported stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    /// 33-bit presentation time, 90 kHz.
    pub pts: Option<u64>,
    /// 33-bit decoding time, 90 kHz; `None` when equal to the PTS.
    pub dts: Option<u64>,
    pub data: Bytes,
    /// The stream lost packets since the previous PES (a continuity gap,
    /// a damaged packet or an oversize PES): what came before may be cut.
    pub after_loss: bool,
    /// The sender marked a discontinuity: times may jump.
    pub discontinuity: bool,
}

#[derive(Debug)]
pub enum DemuxEvent {
    /// The program's streams: first, and again when its PMT changes.
    Program(Vec<ElementaryStream>),
    Pes(Pes),
    Warning(String),
}

#[derive(Debug, Default)]
struct PesBuffer {
    data: BytesMut,
    /// Collecting a PES that started in a packet we read.
    active: bool,
    /// Bytes of the whole PES when its header says (audio), else 0.
    expected: usize,
    header: Option<PesHeader>,
    lost: bool,
    discontinuity: bool,
    /// A unit start was seen: what comes before the first one (the PMT
    /// arrived mid-PES) is no loss.
    started: bool,
}

#[derive(Debug)]
struct Pid {
    continuity: Option<u8>,
    kind: PidKind,
}

impl Pid {
    /// Packets were lost: a partial section or PES cannot be completed.
    fn lost(&mut self) {
        self.continuity = None;
        match &mut self.kind {
            PidKind::Psi(b) => b.reset(),
            PidKind::Pes(b) => b.lost(),
        }
    }
}

impl PesBuffer {
    /// Packets were lost: the PES being collected is dropped, and the next
    /// one is marked as coming after a loss.
    fn lost(&mut self) {
        self.active = false;
        self.data.clear();
        self.header = None;
        self.lost = self.started;
    }
}

#[derive(Debug)]
enum PidKind {
    Psi(SectionBuffer),
    Pes(PesBuffer),
}

#[derive(Debug)]
pub struct Demuxer {
    /// Bytes of a packet not yet complete (or not yet in sync).
    pending: Vec<u8>,
    synced: bool,
    unsynced: usize,
    packets: u64,
    pids: std::collections::HashMap<u16, Pid>,
    pmt_pid: Option<u16>,
    /// The program the PAT lists first.
    program_number: u16,
    pmt_version: Option<u8>,
    program: Option<Vec<ElementaryStream>>,
    last_psi_error: Option<String>,
    events: VecDeque<DemuxEvent>,
    /// Warnings already given, to give each kind once.
    warned: std::collections::HashSet<&'static str>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    pub fn new() -> Self {
        let mut pids = std::collections::HashMap::new();
        pids.insert(
            0,
            Pid {
                continuity: None,
                kind: PidKind::Psi(SectionBuffer::default()),
            },
        );
        Self {
            pending: Vec::with_capacity(PACKET_LEN * 8),
            synced: false,
            unsynced: 0,
            packets: 0,
            pids,
            pmt_pid: None,
            program_number: 0,
            pmt_version: None,
            program: None,
            last_psi_error: None,
            events: VecDeque::new(),
            warned: std::collections::HashSet::new(),
        }
    }

    /// The program's streams, once its PMT was read.
    pub fn program(&self) -> Option<&[ElementaryStream]> {
        self.program.as_deref()
    }

    pub fn poll_event(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes, split anywhere.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), TsError> {
        // Whole packets straight from `data` while in sync.
        while self.pending.is_empty() && self.synced && data.len() >= PACKET_LEN {
            let (p, rest) = data.split_at(PACKET_LEN);
            let Ok(p) = <&[u8; PACKET_LEN]>::try_from(p) else {
                break;
            };
            if p[0] != SYNC_BYTE {
                self.lose_sync();
                break;
            }
            self.packet(p)?;
            data = rest;
        }
        if data.is_empty() {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        self.drain_pending()
    }

    /// The input ended: the last PES of each stream is complete. Why the
    /// input was no transport stream, or had no program, when it was not
    /// or had none.
    pub fn finish(&mut self) -> Result<(), TsError> {
        let mut pids: Vec<u16> = self.pids.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            self.flush_pes(pid);
        }
        if self.packets == 0 && self.unsynced + self.pending.len() > 0 {
            return Err(TsError::NotTransportStream(
                self.unsynced + self.pending.len(),
            ));
        }
        if self.program.is_none() && self.packets > 0 {
            return Err(self.no_program());
        }
        Ok(())
    }

    fn no_program(&self) -> TsError {
        TsError::NoProgram {
            packets: self.packets,
            reason: self.last_psi_error.clone().unwrap_or_else(|| {
                if self.pmt_pid.is_some() {
                    "no PMT for the program".to_owned()
                } else {
                    "no PAT".to_owned()
                }
            }),
        }
    }

    fn drain_pending(&mut self) -> Result<(), TsError> {
        let mut at = 0;
        let result = loop {
            if !self.synced {
                // A sync byte, and another one a packet later.
                let rest = &self.pending[at..];
                let found = (0..rest.len()).find(|&i| {
                    rest[i] == SYNC_BYTE && rest.get(i + PACKET_LEN).is_none_or(|&b| b == SYNC_BYTE)
                });
                let confirmed = found.is_some_and(|i| rest.len() > i + PACKET_LEN);
                let skipped = found.unwrap_or(rest.len());
                at += skipped;
                if let Err(err) = self.skipped(skipped) {
                    break Err(err);
                }
                if !confirmed {
                    break Ok(());
                }
                self.synced = true;
            }
            let Some(p) = self.pending.get(at..at + PACKET_LEN) else {
                break Ok(());
            };
            if p[0] != SYNC_BYTE {
                self.lose_sync();
                continue;
            }
            let mut packet = [0u8; PACKET_LEN];
            packet.copy_from_slice(p);
            at += PACKET_LEN;
            if let Err(err) = self.packet(&packet) {
                break Err(err);
            }
        };
        self.pending.drain(..at);
        result
    }

    fn skipped(&mut self, n: usize) -> Result<(), TsError> {
        self.unsynced += n;
        if self.packets == 0 && self.unsynced > MAX_UNSYNCED {
            return Err(TsError::NotTransportStream(self.unsynced));
        }
        Ok(())
    }

    fn lose_sync(&mut self) {
        self.synced = false;
        // Bytes that were lost show as a gap in the continuity counters;
        // bytes that were inserted cost nothing.
        self.warn_once("sync", "lost packet sync; skipping to the next packet");
    }

    fn warn_once(&mut self, kind: &'static str, message: impl Into<String>) {
        if self.warned.insert(kind) {
            self.events.push_back(DemuxEvent::Warning(message.into()));
        }
    }

    fn packet(&mut self, p: &[u8; PACKET_LEN]) -> Result<(), TsError> {
        self.packets += 1;
        if self.program.is_none() && self.packets > MAX_PACKETS_WITHOUT_PROGRAM {
            self.packets -= 1;
            return Err(self.no_program());
        }
        let header = match packet::parse(p) {
            Ok(h) => h,
            Err(reason) => {
                self.warn_once("packet", format!("malformed packet: {reason}; dropped"));
                return Ok(());
            }
        };
        if header.pid == NULL_PID {
            return Ok(());
        }
        if header.error || header.scrambled {
            let Some(entry) = self.pids.get_mut(&header.pid) else {
                return Ok(());
            };
            entry.lost();
            let why = if header.error { "damaged" } else { "scrambled" };
            self.warn_once(why, format!("{why} packets on PID {}: dropped", header.pid));
            return Ok(());
        }
        let Some(entry) = self.pids.get_mut(&header.pid) else {
            return Ok(());
        };
        // §2.4.3.3: the counter steps with each packet that has a payload;
        // one duplicate is allowed; a discontinuity resets it.
        let previous = entry.continuity;
        if header.has_payload || previous.is_none() {
            entry.continuity = Some(header.continuity);
        }
        if header.has_payload && !header.discontinuity {
            if previous == Some(header.continuity) {
                return Ok(());
            }
            if previous.is_some_and(|p| (p + 1) & 0x0f != header.continuity) {
                entry.lost();
                entry.continuity = Some(header.continuity);
            }
        }
        let payload = &p[header.payload_at..];
        if payload.is_empty() {
            if header.discontinuity
                && let PidKind::Pes(b) = &mut entry.kind
            {
                b.discontinuity = true;
            }
            return Ok(());
        }
        match &mut entry.kind {
            PidKind::Psi(buffer) => {
                let mut sections = Vec::new();
                buffer.push(header.unit_start, payload, &mut |s| {
                    sections.push(s.to_vec())
                });
                for section in sections {
                    self.section(header.pid, &section);
                }
            }
            PidKind::Pes(_) => self.pes_payload(&header, payload),
        }
        Ok(())
    }

    fn section(&mut self, pid: u16, data: &[u8]) {
        let section = match Section::parse(data) {
            Ok(Some(section)) => section,
            Ok(None) => return,
            Err(reason) => {
                let message = format!("PSI section on PID {pid}: {reason}");
                self.last_psi_error = Some(message.clone());
                self.warn_once("psi", format!("{message}; ignored"));
                return;
            }
        };
        match (pid, section.table_id) {
            (0, psi::TABLE_PAT) => {
                let programs = psi::pat_programs(section.body);
                let Some(&(program, pmt_pid)) = programs.first() else {
                    self.last_psi_error = Some("the PAT lists no program".to_owned());
                    return;
                };
                if programs.len() > 1 {
                    self.warn_once(
                        "programs",
                        format!("{} programs; only the first is read", programs.len()),
                    );
                }
                if self.pmt_pid != Some(pmt_pid) && !self.pids.contains_key(&pmt_pid) {
                    if let Some(old) = self.pmt_pid.take() {
                        self.pids.remove(&old);
                    }
                    self.pids.insert(
                        pmt_pid,
                        Pid {
                            continuity: None,
                            kind: PidKind::Psi(SectionBuffer::default()),
                        },
                    );
                    self.pmt_pid = Some(pmt_pid);
                    self.pmt_version = None;
                }
                self.program_number = program;
            }
            // Other programs' PMTs may share the PID: only ours is read.
            (pid, psi::TABLE_PMT)
                if Some(pid) == self.pmt_pid && section.id == self.program_number =>
            {
                if self.pmt_version == Some(section.version) {
                    return;
                }
                match psi::pmt_streams(section.body) {
                    Ok(streams) => {
                        self.pmt_version = Some(section.version);
                        self.set_program(&streams);
                    }
                    Err(reason) => {
                        let message = format!("PMT on PID {pid}: {reason}");
                        self.last_psi_error = Some(message.clone());
                        self.warn_once("pmt", format!("{message}; ignored"));
                    }
                }
            }
            _ => {}
        }
    }

    fn set_program(&mut self, streams: &[psi::PmtStream]) {
        let program: Vec<ElementaryStream> = streams
            .iter()
            .filter(|s| s.pid != 0 && Some(s.pid) != self.pmt_pid && s.pid != NULL_PID)
            .map(|s| ElementaryStream {
                pid: s.pid,
                kind: StreamKind::of(s),
            })
            .collect();
        // Streams no longer listed: their last PES is complete.
        let old: Vec<u16> = self
            .program
            .iter()
            .flatten()
            .map(|s| s.pid)
            .filter(|pid| !program.iter().any(|s| s.pid == *pid))
            .collect();
        for pid in old {
            self.flush_pes(pid);
            self.pids.remove(&pid);
        }
        let mut read_pids = 0;
        for s in &program {
            let read = !matches!(s.kind, StreamKind::Unsupported(_)) && read_pids < MAX_STREAMS;
            read_pids += usize::from(read);
            if read && !self.pids.contains_key(&s.pid) {
                self.pids.insert(
                    s.pid,
                    Pid {
                        continuity: None,
                        kind: PidKind::Pes(PesBuffer::default()),
                    },
                );
            }
        }
        self.program = Some(program.clone());
        self.events.push_back(DemuxEvent::Program(program));
    }

    fn pes_payload(&mut self, header: &Header, payload: &[u8]) {
        let pid = header.pid;
        if header.unit_start {
            self.flush_pes(pid);
        }
        let Some(Pid {
            kind: PidKind::Pes(b),
            ..
        }) = self.pids.get_mut(&pid)
        else {
            return;
        };
        if header.discontinuity {
            b.discontinuity = true;
        }
        if header.unit_start {
            b.started = true;
            b.active = true;
            b.data.clear();
            b.header = None;
            b.expected = 0;
        } else if !b.active {
            // The middle of a PES whose start we did not read.
            b.lost = b.started;
            return;
        }
        if b.data.len() + payload.len() > MAX_PES {
            b.lost();
            b.data = BytesMut::new();
            self.warn_once(
                "oversize",
                format!("a PES packet on PID {pid} is larger than {MAX_PES} bytes; dropped"),
            );
            return;
        }
        b.data.extend_from_slice(payload);
        if b.header.is_none() {
            match pes::parse(&b.data) {
                Ok(None) => return,
                Ok(Some(h)) => {
                    b.header = Some(h);
                    b.expected = if h.packet_len == 0 {
                        0
                    } else {
                        h.packet_len + 6
                    };
                }
                Err(reason) => {
                    b.lost();
                    self.warn_once("pes", format!("PES on PID {pid}: {reason}; dropped"));
                    return;
                }
            }
        }
        // A bounded PES is complete as soon as its bytes are in: no need to
        // wait for the next one to start (audio comes out at once).
        if b.expected != 0 && b.data.len() >= b.expected {
            b.data.truncate(b.expected);
            self.flush_pes(pid);
        }
    }

    /// Hands out the PES being collected on `pid`, if complete enough.
    fn flush_pes(&mut self, pid: u16) {
        let Some(Pid {
            kind: PidKind::Pes(b),
            ..
        }) = self.pids.get_mut(&pid)
        else {
            return;
        };
        if !b.active {
            return;
        }
        b.active = false;
        let Some(header) = b.header.take() else {
            b.lost();
            return;
        };
        if b.expected != 0 && b.data.len() < b.expected {
            // Cut short (the next one started early): drop, like a gap.
            b.lost();
            return;
        }
        let mut data = std::mem::take(&mut b.data).freeze();
        let data = data.split_off(header.data_at.min(data.len()));
        let pes = Pes {
            pid,
            pts: header.pts,
            dts: header.dts,
            data,
            after_loss: std::mem::take(&mut b.lost),
            discontinuity: std::mem::take(&mut b.discontinuity),
        };
        self.events.push_back(DemuxEvent::Pes(pes));
    }
}

//! A publish over MPEG-TS: the first program's PES packets to tracks and
//! samples.
//!
//! Times: every PTS and DTS of a transport stream is on the program's one
//! 90 kHz clock, 33 bits wide. They are extended across wraps by one
//! extender for the whole program, and the earliest decoding time of the
//! first access units of all tracks becomes time zero: tracks keep their
//! distance, so audio and video stay in sync. A jump of a track's times
//! (an encoder restarted inside the stream, a splice) beyond
//! [`MAX_JUMP_FORWARD`] forward or [`MAX_JUMP_BACK`] back is taken as a
//! discontinuity: the first track to jump continues where it was, and the
//! others take its shift, keeping the new times' A/V offset.
//!
//! Tracks are announced when every supported stream has its configuration
//! (parameter sets, an ADTS header), or after [`WAIT_FOR_TRACKS`] of media
//! without one (that stream is then left out). Video starts at a keyframe
//! and, after lost packets, resumes at the next one.

use std::collections::VecDeque;

use bytes::Bytes;

use super::TsError;
use super::demux::{DemuxEvent, Demuxer, ElementaryStream, Pes, StreamKind};
use crate::codec::aac::AdtsHeader;
use crate::codec::nal::split_annex_b;
use crate::codec::opus::{OPUS_SAMPLE_RATE, OpusConfig};
use crate::codec::{AvcConfig, CodecConfig, HevcConfig, h264, h265};
use crate::media::{Sample, Track, TrackId};

const CLOCK: i64 = 90_000;

/// Media (90 kHz) held, at most, before tracks are announced without the
/// streams that have no configuration yet.
pub const WAIT_FOR_TRACKS: i64 = 2 * CLOCK;

/// Access units held, at most, before the tracks must be known.
const MAX_HELD: usize = 2_000;

/// Bytes held, at most, before the tracks must be known.
const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// A track's times jumping further ahead than this is a discontinuity.
pub const MAX_JUMP_FORWARD: i64 = 30 * CLOCK;

/// A track's times going further back than this is a discontinuity.
pub const MAX_JUMP_BACK: i64 = CLOCK;

/// Tracks whose times jump to within this of another track's jump take
/// that track's shift.
const JUMP_GROUP: i64 = 10 * CLOCK;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsEvent {
    /// The tracks: first, and again when a configuration changes (same
    /// track ids) or the program changes.
    Tracks(Vec<Track>),
    Sample(Sample),
    /// Something was dropped or repaired; the publish goes on.
    Warning(String),
}

/// 33-bit times extended to 64 bits, across wraps.
#[derive(Debug, Default)]
struct Extender {
    last: Option<(u64, i64)>,
}

const WRAP: i64 = 1 << 33;

impl Extender {
    fn extend(&mut self, raw: u64) -> i64 {
        let raw = raw & (WRAP as u64 - 1);
        let ext = match self.last {
            None => raw as i64,
            Some((last_raw, last_ext)) => last_ext + signed33(raw as i64 - last_raw as i64),
        };
        self.last = Some((raw, ext));
        ext
    }
}

/// A difference of two 33-bit times, taken the short way round.
fn signed33(d: i64) -> i64 {
    let d = d.rem_euclid(WRAP);
    if d >= WRAP / 2 { d - WRAP } else { d }
}

/// One access unit on the extended 90 kHz clock, before it is placed.
#[derive(Debug)]
struct Unit {
    stream: usize,
    dts: i64,
    pts: i64,
    data: Bytes,
    keyframe: bool,
    /// In the track's timescale, for audio.
    duration: Option<u32>,
}

#[derive(Debug)]
struct Stream {
    pid: u16,
    kind: StreamKind,
    track: TrackId,
    config: Option<CodecConfig>,
    /// Left out of the tracks (no configuration in time).
    excluded: bool,
    /// Video waits for a keyframe (at the start, after a loss).
    wait_keyframe: bool,
    /// Added to this stream's extended times (discontinuities).
    shift: i64,
    /// The latest DTS taken in (90 kHz, shifted) and the step before it.
    last_in: Option<(i64, i64)>,
    /// The latest DTS handed out, in the track's timescale.
    last_out: Option<i64>,
    /// Where the next audio frame should start, in the track's timescale.
    next_audio: Option<i64>,
}

impl Stream {
    fn timescale(&self) -> u32 {
        match (&self.kind, &self.config) {
            (StreamKind::Aac, Some(c)) => c.sample_rate().unwrap_or(48_000),
            (StreamKind::Opus(_), _) => OPUS_SAMPLE_RATE,
            _ => CLOCK as u32,
        }
    }

    fn track(&self) -> Option<Track> {
        let config = self.config.clone()?;
        (!self.excluded).then(|| Track::new(self.track, self.timescale(), config))
    }

    fn is_video(&self) -> bool {
        matches!(self.kind, StreamKind::H264 | StreamKind::H265)
    }
}

#[derive(Debug, Default)]
pub struct TsSession {
    demux: Demuxer,
    streams: Vec<Stream>,
    clock: Extender,
    /// The latest jump: the extended time jumped to and the shift taken.
    last_jump: Option<(i64, i64)>,
    published: bool,
    held: VecDeque<Unit>,
    held_bytes: usize,
    zero: i64,
    events: VecDeque<TsEvent>,
    warned: std::collections::HashSet<(u16, &'static str)>,
}

impl TsSession {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn poll_event(&mut self) -> Option<TsEvent> {
        self.events.pop_front()
    }

    /// Whether the tracks were announced.
    pub fn published(&self) -> bool {
        self.published
    }

    /// Feeds bytes of the transport stream, split anywhere.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TsError> {
        let pushed = self.demux.push(data);
        self.drain()?;
        pushed
    }

    /// The stream ended: the last access units are handed out, and tracks
    /// are announced if they were still waited for.
    pub fn finish(&mut self) -> Result<(), TsError> {
        let finished = self.demux.finish();
        self.drain()?;
        finished?;
        if !self.published && !self.held.is_empty() {
            self.publish()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), TsError> {
        while let Some(event) = self.demux.poll_event() {
            match event {
                DemuxEvent::Program(streams) => self.program(&streams)?,
                DemuxEvent::Pes(pes) => self.pes(pes)?,
                DemuxEvent::Warning(w) => self.events.push_back(TsEvent::Warning(w)),
            }
        }
        Ok(())
    }

    fn warn_once(&mut self, pid: u16, kind: &'static str, message: impl FnOnce() -> String) {
        if self.warned.insert((pid, kind)) {
            self.events.push_back(TsEvent::Warning(message()));
        }
    }

    fn program(&mut self, program: &[ElementaryStream]) -> Result<(), TsError> {
        let supported: Vec<&ElementaryStream> = program
            .iter()
            .filter(|s| !matches!(s.kind, StreamKind::Unsupported(_)))
            .collect();
        for s in program {
            if let StreamKind::Unsupported(name) = &s.kind {
                let (pid, name) = (s.pid, name.clone());
                self.warn_once(pid, "unsupported", || {
                    format!("PID {pid} carries {name}, which is not supported; it is dropped")
                });
            }
        }
        if supported.is_empty() {
            let found: Vec<String> = program
                .iter()
                .map(|s| match &s.kind {
                    StreamKind::Unsupported(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            return Err(TsError::NoSupportedStream {
                found: if found.is_empty() {
                    "no streams".to_owned()
                } else {
                    found.join(", ")
                },
            });
        }
        let same_layout = self.streams.len() == supported.len()
            && self
                .streams
                .iter()
                .zip(&supported)
                .all(|(old, new)| same_codec(&old.kind, &new.kind));
        if same_layout {
            // A new PMT version with the same streams (PIDs may move).
            for (old, new) in self.streams.iter_mut().zip(&supported) {
                old.pid = new.pid;
            }
            return Ok(());
        }
        let had_streams = !self.streams.is_empty();
        self.streams = supported
            .iter()
            .enumerate()
            .map(|(i, s)| Stream {
                pid: s.pid,
                kind: s.kind.clone(),
                track: i as TrackId + 1,
                config: opus_config(&s.kind),
                excluded: false,
                wait_keyframe: matches!(s.kind, StreamKind::H264 | StreamKind::H265),
                shift: 0,
                last_in: None,
                last_out: None,
                next_audio: None,
            })
            .collect();
        self.held.clear();
        self.held_bytes = 0;
        if had_streams && self.published {
            // Other streams than before: announced as they are; whoever
            // takes the tracks decides whether the publish can go on.
            self.announce();
        }
        Ok(())
    }

    fn pes(&mut self, pes: Pes) -> Result<(), TsError> {
        let Some(index) = self.streams.iter().position(|s| s.pid == pes.pid) else {
            return Ok(());
        };
        if self.streams[index].excluded {
            return Ok(());
        }
        let pid = pes.pid;
        if pes.after_loss {
            self.warn_once(pid, "loss", || {
                format!("packets lost on PID {pid}; what they carried is dropped")
            });
            let s = &mut self.streams[index];
            if s.is_video() {
                s.wait_keyframe = true;
            }
        }
        let Some(pts) = pes.pts else {
            self.warn_once(pid, "no pts", || {
                format!("a PES packet without a PTS on PID {pid}; dropped")
            });
            return Ok(());
        };
        let Some((dts, pts)) = self.place(index, pes.dts.unwrap_or(pts), pts, pes.discontinuity)
        else {
            return Ok(());
        };
        let units = match self.streams[index].kind {
            StreamKind::H264 | StreamKind::H265 => {
                self.video(index, dts, pts, &pes.data).into_iter().collect()
            }
            StreamKind::Aac => self.aac(index, pts, &pes.data),
            StreamKind::Opus(_) => self.opus(index, pts, &pes.data),
            StreamKind::Unsupported(_) => Vec::new(),
        };
        for unit in units {
            self.take(unit)?;
        }
        Ok(())
    }

    /// Extends a PES's times and applies the stream's shift; a jump
    /// beyond the limits moves the shift so that the stream goes on from
    /// where it was. `None` when the PES goes back in time (dropped).
    fn place(&mut self, index: usize, dts: u64, pts: u64, marked: bool) -> Option<(i64, i64)> {
        let ext = self.clock.extend(dts);
        let offset = signed33(pts as i64 - dts as i64);
        let s = &mut self.streams[index];
        let mut time = ext + s.shift;
        let pid = s.pid;
        let mut warning = None;
        if let Some((last, step)) = s.last_in {
            let jump = time - last;
            if !(-MAX_JUMP_BACK..=MAX_JUMP_FORWARD).contains(&jump) || (marked && jump <= 0) {
                // The first track to jump continues where it was; the
                // others, jumping to about the same new times, take the
                // same shift, so that the new times keep their A/V offset
                // (unless that would take a track back).
                let own = last + step - ext;
                let shift = match self.last_jump {
                    Some((at, shift)) if (ext - at).abs() <= JUMP_GROUP && ext + shift > last => {
                        shift
                    }
                    _ => {
                        self.last_jump = Some((ext, own));
                        own
                    }
                };
                s.shift = shift;
                time = ext + shift;
                warning = Some(jump);
            } else if jump <= 0 && s.is_video() {
                // What follows may refer to it: resume at a keyframe.
                s.wait_keyframe = true;
                let step = jump;
                self.warn_once(pid, "backwards", || {
                    format!(
                        "decoding times on PID {pid} went back by {step} ticks; access unit dropped"
                    )
                });
                return None;
            }
        }
        let s = &mut self.streams[index];
        let step = s
            .last_in
            .map_or(CLOCK / 30, |(last, _)| (time - last).clamp(1, CLOCK));
        s.last_in = Some((time, step));
        if let Some(jump) = warning {
            self.events.push_back(TsEvent::Warning(format!(
                "times on PID {pid} jumped by {:.3} s; the track goes on from where it was",
                jump as f64 / CLOCK as f64
            )));
        }
        Some((time, time + offset))
    }

    fn video(&mut self, index: usize, dts: i64, pts: i64, data: &[u8]) -> Option<Unit> {
        let h265 = matches!(self.streams[index].kind, StreamKind::H265);
        let mut sample = Vec::with_capacity(data.len() + 16);
        let mut keyframe = false;
        let mut parameter_sets = false;
        for nal in split_annex_b(data) {
            // Access unit delimiters are left out; keyframes are IDR (H.264)
            // and IRAP (H.265) pictures.
            let (aud, key, params) = if h265 {
                let t = h265::nal_unit_type(nal)?;
                (t == 35, h265::is_irap_type(t), (32..=34).contains(&t))
            } else {
                let t = h264::nal_unit_type(nal)?;
                (t == 9, t == 5, t == 7 || t == 8)
            };
            if aud {
                continue;
            }
            keyframe |= key;
            parameter_sets |= params;
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        }
        if sample.is_empty() {
            return None;
        }
        let pid = self.streams[index].pid;
        if parameter_sets {
            let config = if h265 {
                HevcConfig::from_annex_b(data).map(|c| c.map(CodecConfig::H265))
            } else {
                AvcConfig::from_annex_b(data).map(|c| c.map(CodecConfig::H264))
            };
            match config {
                Ok(Some(config)) => self.configure(index, config),
                Ok(None) => {}
                Err(err) => self.warn_once(pid, "parameter sets", || {
                    format!("parameter sets on PID {pid} could not be read: {err}")
                }),
            }
        }
        let s = &mut self.streams[index];
        if s.wait_keyframe {
            if !keyframe || s.config.is_none() {
                return None;
            }
            s.wait_keyframe = false;
        }
        Some(Unit {
            stream: index,
            dts,
            pts,
            data: Bytes::from(sample),
            keyframe,
            duration: None,
        })
    }

    fn aac(&mut self, index: usize, pts: i64, data: &[u8]) -> Vec<Unit> {
        let pid = self.streams[index].pid;
        let mut units = Vec::new();
        let mut rest = data;
        let mut at = pts;
        while !rest.is_empty() {
            let header = match AdtsHeader::parse(rest) {
                Ok(h) if h.frame_length as usize <= rest.len() => h,
                Ok(_) => {
                    self.warn_once(pid, "adts cut", || {
                        format!("an ADTS frame on PID {pid} is cut at the end of its PES; dropped")
                    });
                    break;
                }
                Err(err) => {
                    self.warn_once(pid, "adts", || {
                        format!("AAC on PID {pid} is not in ADTS frames ({err}); PES dropped")
                    });
                    break;
                }
            };
            let frame = &rest[..usize::from(header.frame_length)];
            rest = &rest[frame.len()..];
            let rate = i64::from(header.sample_rate().max(1));
            let ticks = 1024 * i64::from(header.raw_data_blocks);
            let time = at;
            at += ticks * CLOCK / rate;
            if header.raw_data_blocks > 1 {
                self.warn_once(pid, "blocks", || {
                    format!("ADTS frames of several raw data blocks on PID {pid}; dropped")
                });
                continue;
            }
            match header.audio_specific_config() {
                Ok(config) => self.configure(index, CodecConfig::Aac(config)),
                Err(err) => {
                    self.warn_once(pid, "asc", || format!("AAC on PID {pid}: {err}; dropped"));
                    continue;
                }
            }
            units.push(Unit {
                stream: index,
                dts: time,
                pts: time,
                data: Bytes::copy_from_slice(&frame[header.header_len()..]),
                keyframe: true,
                duration: Some(ticks as u32),
            });
        }
        units
    }

    fn opus(&mut self, index: usize, pts: i64, data: &[u8]) -> Vec<Unit> {
        let pid = self.streams[index].pid;
        let mut units = Vec::new();
        let mut rest = data;
        let mut at = pts;
        while !rest.is_empty() {
            let Some((packet, next)) = opus_access_unit(rest) else {
                self.warn_once(pid, "opus framing", || {
                    format!("Opus on PID {pid} without its TS control header; PES dropped")
                });
                break;
            };
            rest = next;
            let samples = match crate::rtp::opus::packet_samples(packet) {
                Ok(n) => n,
                Err(err) => {
                    self.warn_once(pid, "opus", || format!("Opus on PID {pid}: {err}; dropped"));
                    continue;
                }
            };
            let time = at;
            at += i64::from(samples) * CLOCK / i64::from(OPUS_SAMPLE_RATE);
            units.push(Unit {
                stream: index,
                dts: time,
                pts: time,
                data: Bytes::copy_from_slice(packet),
                keyframe: true,
                duration: Some(samples),
            });
        }
        units
    }

    /// A stream's configuration, seen in its data: set, and announced
    /// again when it changed after the tracks were announced.
    fn configure(&mut self, index: usize, config: CodecConfig) {
        let s = &mut self.streams[index];
        if s.config.as_ref() == Some(&config) {
            return;
        }
        let rate = s.config.as_ref().and_then(CodecConfig::sample_rate);
        if rate.is_some() && rate != config.sample_rate() {
            // Audio in another timescale from here: its times start over
            // in it (the tracks' new announcement starts a new epoch).
            s.next_audio = None;
            s.last_out = None;
        }
        s.config = Some(config);
        // A stream left out stays out.
        if self.published && !s.excluded {
            self.announce();
        }
    }

    fn take(&mut self, unit: Unit) -> Result<(), TsError> {
        if self.published {
            self.emit(unit);
            return Ok(());
        }
        self.held_bytes += unit.data.len();
        self.held.push_back(unit);
        let ready = self.streams.iter().all(|s| s.config.is_some());
        let span = {
            let first = self.held.front().map_or(0, |u| u.dts);
            let last = self.held.back().map_or(0, |u| u.dts);
            last - first
        };
        if ready
            || span >= WAIT_FOR_TRACKS
            || self.held.len() >= MAX_HELD
            || self.held_bytes >= MAX_HELD_BYTES
        {
            self.publish()?;
        }
        Ok(())
    }

    fn publish(&mut self) -> Result<(), TsError> {
        if self.streams.iter().all(|s| s.config.is_none()) {
            let waiting: Vec<String> = self
                .streams
                .iter()
                .map(|s| format!("PID {} ({:?}) has no configuration", s.pid, s.kind))
                .collect();
            return Err(TsError::NothingDecodable(
                self.held.len(),
                waiting.join(", "),
            ));
        }
        for i in 0..self.streams.len() {
            if self.streams[i].config.is_none() {
                self.streams[i].excluded = true;
                let pid = self.streams[i].pid;
                self.events.push_back(TsEvent::Warning(format!(
                    "PID {pid} sent nothing decodable in time; the publish goes on without it"
                )));
            }
        }
        self.published = true;
        self.zero = self
            .held
            .iter()
            .filter(|u| !self.streams[u.stream].excluded)
            .map(|u| u.dts)
            .min()
            .unwrap_or(0);
        self.announce();
        self.held_bytes = 0;
        for unit in std::mem::take(&mut self.held) {
            if !self.streams[unit.stream].excluded {
                self.emit(unit);
            }
        }
        Ok(())
    }

    fn announce(&mut self) {
        let tracks = self.streams.iter().filter_map(Stream::track).collect();
        self.events.push_back(TsEvent::Tracks(tracks));
    }

    fn emit(&mut self, unit: Unit) {
        let zero = self.zero;
        let s = &mut self.streams[unit.stream];
        // Video dropped here waits for a keyframe, also among the units
        // already taken in.
        if unit.duration.is_none() && s.wait_keyframe {
            if !unit.keyframe {
                return;
            }
            s.wait_keyframe = false;
        }
        let pid = s.pid;
        let rate = i64::from(s.timescale());
        let (dts, pts, duration) = match unit.duration {
            Some(duration) => {
                // Audio: frames back to back when the times say about that.
                let mut t = ((unit.pts - zero) * rate + CLOCK / 2).div_euclid(CLOCK);
                let d = i64::from(duration);
                if let Some(expected) = s.next_audio {
                    if (t - expected).abs() <= d / 2 {
                        t = expected;
                    } else if t < expected {
                        self.warn_once(pid, "overlap", || {
                            format!("audio on PID {pid} overlaps what came before; frames dropped")
                        });
                        return;
                    }
                }
                s.next_audio = Some(t + d);
                (t, t, duration)
            }
            None => {
                let dts = unit.dts - zero;
                let duration = s
                    .last_out
                    .and_then(|last| u32::try_from(dts - last).ok())
                    .unwrap_or(3_000);
                (dts, unit.pts - zero, duration)
            }
        };
        if dts < 0 {
            if unit.duration.is_none() {
                self.streams[unit.stream].wait_keyframe = true;
            }
            self.warn_once(pid, "early", || {
                format!("access units on PID {pid} from before the start of the publish; dropped")
            });
            return;
        }
        let s = &mut self.streams[unit.stream];
        if s.last_out.is_some_and(|last| dts <= last) {
            s.wait_keyframe |= unit.duration.is_none();
            return;
        }
        s.last_out = Some(dts);
        let Ok(cts_offset) = i32::try_from(pts - dts) else {
            s.wait_keyframe |= unit.duration.is_none();
            return;
        };
        self.events.push_back(TsEvent::Sample(Sample {
            track: s.track,
            dts,
            cts_offset,
            duration: duration.max(1),
            keyframe: unit.keyframe,
            data: unit.data,
        }));
    }
}

fn same_codec(a: &StreamKind, b: &StreamKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// The configuration of an Opus stream, from its descriptor's channel
/// configuration code (1 and 2: mono and stereo; no descriptor: stereo).
fn opus_config(kind: &StreamKind) -> Option<CodecConfig> {
    let StreamKind::Opus(code) = kind else {
        return None;
    };
    let channels = match code {
        None => 2,
        Some(c @ 1..=2) => *c,
        Some(_) => return None,
    };
    Some(CodecConfig::Opus(OpusConfig {
        channels,
        pre_skip: 0,
        input_sample_rate: OPUS_SAMPLE_RATE,
        output_gain: 0,
        channel_mapping: None,
    }))
}

/// One Opus packet of a PES in the TS framing: `0x7fe` prefix, trim and
/// extension flags, the packet size in 255-sums; the packet and the rest.
fn opus_access_unit(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x7f, flags, ..] = *data else {
        return None;
    };
    if flags & 0xe0 != 0xe0 {
        return None;
    }
    let mut at = 2;
    let mut size = 0usize;
    loop {
        let b = *data.get(at)?;
        at += 1;
        size += usize::from(b);
        if b != 0xff {
            break;
        }
    }
    if flags & 0x10 != 0 {
        at += 2;
    }
    if flags & 0x08 != 0 {
        at += 2;
    }
    if flags & 0x04 != 0 {
        at += 1 + usize::from(*data.get(at)?);
    }
    let packet = data.get(at..at + size)?;
    Some((packet, &data[at + size..]))
}

//! A presentation handed from one node to another: when a stream's
//! publisher reconnects to another node, that node continues the
//! presentation where the first one left it, and lists the first node's
//! last segments before its own (RFC 8216bis §6.2.2: a segment leaves a
//! live playlist only after the window slides past it), so that a player
//! moving from one node's playlist to the other's finds the segments it
//! has not read yet. Their bytes stay on the node that made them.
//!
//! The handover is recorded as a short text (one line per field, one per
//! segment) in the shared database, by the owner at each renewal of its
//! lease and when its publisher leaves.

use super::{init_epoch, init_name, parse_media_name};
use crate::hls::UnixMillis;

/// Where a presentation goes on when another node takes its stream over:
/// the new owner's packager continues it after a discontinuity, on the
/// same timeline (DASH `availabilityStartTime`), in a new epoch (a new
/// DASH period and init sections), numbering its segments on from each
/// rendition's last listed one, its discontinuities from
/// `discontinuity_sequence`. Viewers relayed from one owner, then the
/// other, see one stream; a shared cache never sees one URL with two
/// contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// Media time zero on the wall clock.
    pub start: UnixMillis,
    /// The presentation's media on the node handing it over: segments
    /// numbered from `first_msn` up to its renditions' next ones, and init
    /// sections named after `first_msn`.
    pub first_msn: u64,
    /// Above every segment the presentation listed or opened.
    pub next_msn: u64,
    /// The first epoch of the continuation.
    pub epoch: u32,
    /// The discontinuity sequence number of the continuation's first
    /// segment.
    pub discontinuity_sequence: u64,
    /// Where each epoch still listed starts on the timeline, in ms (its
    /// DASH `Period@start`).
    pub epoch_starts: Vec<(u32, u64)>,
    /// Each rendition's listed segments.
    pub renditions: Vec<EarlierRendition>,
}

/// One rendition's listed segments, as the node handing over listed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlierRendition {
    pub name: String,
    pub timescale: u32,
    /// The discontinuity sequence number of its first listed segment.
    pub discontinuity_sequence: u64,
    pub segments: Vec<EarlierSegment>,
}

/// A listed segment, whole (its parts are no longer listed once another
/// node lists it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlierSegment {
    pub msn: u64,
    pub epoch: u32,
    /// Decode time of its first sample and duration, in the rendition's
    /// timescale.
    pub start: u64,
    pub duration: u64,
    /// `EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
    pub program_date_time: Option<UnixMillis>,
}

impl EarlierRendition {
    /// The segment number after its last listed one.
    pub fn next_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn + 1)
    }
}

/// Why a recorded handover could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("handover record, line {line}: {reason}")]
pub struct HandoverError {
    pub line: usize,
    pub reason: &'static str,
}

impl Handover {
    /// Whether media file `file` of rendition `rendition` is one the node
    /// handing over made: the node that continues the presentation asks it
    /// for such files.
    pub fn made(&self, rendition: &str, file: &str) -> bool {
        let Some((msn, _)) = parse_media_name(file) else {
            return init_epoch(file, self.first_msn).is_some();
        };
        let next = self
            .renditions
            .iter()
            .find(|r| r.name == rendition)
            .and_then(EarlierRendition::next_msn)
            .unwrap_or(self.next_msn);
        (self.first_msn..next).contains(&msn)
    }

    /// The init section of the handing-over node's epoch `epoch`.
    pub fn init_name(&self, epoch: u32) -> String {
        init_name(self.first_msn, epoch)
    }

    /// The record kept in the database.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "start {}\nfirst {}\nnext {}\nepoch {}\ndiscontinuity {}\n",
            self.start.0, self.first_msn, self.next_msn, self.epoch, self.discontinuity_sequence
        );
        for (epoch, start) in &self.epoch_starts {
            out.push_str(&format!("period {epoch} {start}\n"));
        }
        for r in &self.renditions {
            out.push_str(&format!(
                "rendition {} {} {}\n",
                r.name, r.timescale, r.discontinuity_sequence
            ));
            for s in &r.segments {
                let pdt = s
                    .program_date_time
                    .map_or_else(|| "-".to_owned(), |t| t.0.to_string());
                out.push_str(&format!(
                    "segment {} {} {} {} {} {pdt}\n",
                    s.msn,
                    s.epoch,
                    s.start,
                    s.duration,
                    u8::from(s.discontinuity)
                ));
            }
        }
        out
    }

    /// Reads a record [`to_text`](Self::to_text) wrote.
    pub fn parse(text: &str) -> Result<Self, HandoverError> {
        let mut h = Handover::default();
        for (index, line) in text.lines().enumerate() {
            let error = |reason| HandoverError {
                line: index + 1,
                reason,
            };
            let mut words = line.split(' ');
            let key = words.next().unwrap_or("");
            let fields: Vec<&str> = words.collect();
            let number = |i: usize| -> Result<u64, HandoverError> {
                fields
                    .get(i)
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| error("a number is missing or malformed"))
            };
            let small = |i: usize| -> Result<u32, HandoverError> {
                u32::try_from(number(i)?).map_err(|_| error("a number is too large"))
            };
            match key {
                "start" => {
                    h.start = UnixMillis(
                        fields
                            .first()
                            .and_then(|w| w.parse().ok())
                            .ok_or_else(|| error("malformed start"))?,
                    );
                }
                "first" => h.first_msn = number(0)?,
                "next" => h.next_msn = number(0)?,
                "epoch" => h.epoch = small(0)?,
                "discontinuity" => h.discontinuity_sequence = number(0)?,
                "period" => h.epoch_starts.push((small(0)?, number(1)?)),
                "rendition" => h.renditions.push(EarlierRendition {
                    name: (*fields.first().ok_or_else(|| error("no rendition name"))?).to_owned(),
                    timescale: small(1)?,
                    discontinuity_sequence: number(2)?,
                    segments: Vec::new(),
                }),
                "segment" => {
                    let program_date_time = match fields.get(5) {
                        Some(&"-") => None,
                        Some(w) => {
                            Some(UnixMillis(w.parse().map_err(|_| error("malformed date"))?))
                        }
                        None => return Err(error("a segment has 6 fields")),
                    };
                    let segment = EarlierSegment {
                        msn: number(0)?,
                        epoch: small(1)?,
                        start: number(2)?,
                        duration: number(3)?,
                        discontinuity: number(4)? == 1,
                        program_date_time,
                    };
                    let r = h
                        .renditions
                        .last_mut()
                        .ok_or_else(|| error("a segment before any rendition"))?;
                    if r.next_msn().is_some_and(|next| next != segment.msn) {
                        return Err(error("segment numbers of a rendition follow one another"));
                    }
                    r.segments.push(segment);
                }
                "" => {}
                _ => return Err(error("unknown field")),
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let h = Handover {
            start: UnixMillis(1_793_698_867_250),
            first_msn: 60_000_000,
            next_msn: 60_000_004,
            epoch: 2,
            discontinuity_sequence: 2,
            epoch_starts: vec![(0, 0), (1, 10_000)],
            renditions: vec![
                EarlierRendition {
                    name: "v1".to_owned(),
                    timescale: 1000,
                    discontinuity_sequence: 0,
                    segments: vec![
                        EarlierSegment {
                            msn: 60_000_002,
                            epoch: 0,
                            start: 4000,
                            duration: 2000,
                            discontinuity: false,
                            program_date_time: Some(UnixMillis(1_793_698_871_250)),
                        },
                        EarlierSegment {
                            msn: 60_000_003,
                            epoch: 1,
                            start: 10_000,
                            duration: 1960,
                            discontinuity: true,
                            program_date_time: None,
                        },
                    ],
                },
                EarlierRendition {
                    name: "a1".to_owned(),
                    timescale: 48_000,
                    discontinuity_sequence: 1,
                    segments: Vec::new(),
                },
            ],
        };
        assert_eq!(Handover::parse(&h.to_text()), Ok(h.clone()));
        assert!(h.made("v1", "60000003.m4s") && h.made("v1", "60000000.1.m4s"));
        assert!(!h.made("v1", "60000004.m4s") && !h.made("v1", "59999999.m4s"));
        assert!(h.made("a1", "60000003.m4s") && !h.made("a1", "60000004.m4s"));
        assert!(h.made("v1", "init-60000000-1.mp4") && !h.made("v1", "init-60000004-2.mp4"));
        assert_eq!(h.init_name(1), "init-60000000-1.mp4");
    }

    #[test]
    fn a_damaged_record_is_refused_with_its_line() {
        for (text, line) in [
            ("start 1\nfirst x\n", 2),
            ("segment 1 0 0 2000 0 -\n", 1),
            (
                "rendition v1 1000 0\nsegment 5 0 0 2000 0 -\nsegment 7 0 0 2000 0 -\n",
                3,
            ),
            ("rendition v1 1000 0\nsegment 5 0 0 2000 0\n", 2),
            ("owner a\n", 1),
        ] {
            assert_eq!(
                Handover::parse(text).map_err(|e| e.line),
                Err(line),
                "{text}"
            );
        }
    }
}

//! A packager's progress, written beside its segments, so that packaging
//! interrupted mid-way (a worker killed) resumes after its last stored
//! segment instead of from zero: what the manifests need of every segment
//! already made, per rendition, in a small line-based text.
//!
//! ```text
//! streamforge-checkpoint 1
//! rendition 720p-v1 15360
//! stats 1799 921088 512 512 1024 922112 0 60
//! segment 1 0 30720 183944 1024
//! keyframe 1 0 52311 1024
//! ```
//!
//! `rendition NAME TIMESCALE`; `stats` are the sample durations (count,
//! total, min, max), the earliest and latest presentation times, the
//! leading samples dropped and the fragments (`moof`s) written; `segment NUMBER START_DTS DURATION SIZE
//! EARLIEST_PTS`; `keyframe NUMBER OFFSET LENGTH PTS`; a last line
//! `complete` when packaging had finished.

use std::fmt::Write as _;

use super::bandwidth::DurationStats;
use super::packager::{KeyframeMeta, SegmentMeta};
use crate::hls::ByteRange;

const MAGIC: &str = "streamforge-checkpoint 1";

/// What a packager made so far; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub(super) renditions: Vec<RenditionCheckpoint>,
    /// Written after the last segment: nothing is left to make.
    pub(super) complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RenditionCheckpoint {
    pub name: String,
    pub timescale: u32,
    pub durations: DurationStats,
    pub start_pts: i64,
    pub end_pts: i64,
    pub dropped_leading: u64,
    pub fragments: u32,
    pub segments: Vec<SegmentMeta>,
    pub keyframes: Vec<KeyframeMeta>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("checkpoint line {line}: {reason}")]
pub struct CheckpointError {
    pub line: usize,
    pub reason: &'static str,
}

impl Checkpoint {
    /// Where packaging goes on, in seconds of media time: the end of the
    /// last segment every rendition has (`None`: no segment yet).
    pub fn resume_at_seconds(&self) -> Option<f64> {
        self.renditions
            .iter()
            .map(|r| {
                r.segments
                    .last()
                    .map(|s| (s.start_dts + s.duration) as f64 / f64::from(r.timescale.max(1)))
            })
            .collect::<Option<Vec<f64>>>()?
            .into_iter()
            .reduce(f64::min)
    }

    /// The end of rendition `name`'s last segment, in its timescale: where
    /// its samples' decode times go on.
    pub fn end_dts(&self, name: &str) -> Option<u64> {
        let r = self.renditions.iter().find(|r| r.name == name)?;
        r.segments.last().map(|s| s.start_dts + s.duration)
    }

    /// The timescale of rendition `name`'s decode times.
    pub fn timescale(&self, name: &str) -> Option<u32> {
        self.renditions
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.timescale)
    }

    /// Whether it was written once packaging had finished.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The same, marked finished: a run that reads it makes nothing again.
    pub fn completed(mut self) -> Checkpoint {
        self.complete = true;
        self
    }

    /// Segments made so far, over every rendition.
    pub fn segments(&self) -> usize {
        self.renditions.iter().map(|r| r.segments.len()).sum()
    }

    /// The checkpoints of consecutive chunks of one presentation, each
    /// rendition's segments one after the other (they must be contiguous).
    pub fn concat(chunks: &[Checkpoint]) -> Result<Checkpoint, CheckpointError> {
        let fail = |reason| CheckpointError { line: 0, reason };
        let mut joined: Option<Checkpoint> = None;
        for chunk in chunks {
            let Some(whole) = joined.as_mut() else {
                joined = Some(chunk.clone());
                continue;
            };
            if whole.renditions.len() != chunk.renditions.len() {
                return Err(fail("chunks with other renditions"));
            }
            for (r, next) in whole.renditions.iter_mut().zip(&chunk.renditions) {
                let (Some(last), Some(first)) = (r.segments.last(), next.segments.first()) else {
                    return Err(fail("a chunk without segments"));
                };
                if r.name != next.name
                    || r.timescale != next.timescale
                    || last.number + 1 != first.number
                    || last.start_dts + last.duration != first.start_dts
                {
                    return Err(fail("chunks not contiguous"));
                }
                r.segments.extend_from_slice(&next.segments);
                r.keyframes.extend_from_slice(&next.keyframes);
                let (d, n) = (&mut r.durations, next.durations);
                if n.count > 0 {
                    (d.min, d.max) = match d.count {
                        0 => (n.min, n.max),
                        _ => (d.min.min(n.min), d.max.max(n.max)),
                    };
                    d.count += n.count;
                    d.total += n.total;
                }
                r.start_pts = r.start_pts.min(next.start_pts);
                r.end_pts = r.end_pts.max(next.end_pts);
                r.dropped_leading += next.dropped_leading;
                r.fragments = r.fragments.max(next.fragments);
            }
        }
        joined.ok_or(fail("no chunk"))
    }

    pub fn render(&self) -> String {
        let mut out = format!("{MAGIC}\n");
        for r in &self.renditions {
            let d = &r.durations;
            let _ = writeln!(out, "rendition {} {}", r.name, r.timescale);
            let _ = writeln!(
                out,
                "stats {} {} {} {} {} {} {} {}",
                d.count,
                d.total,
                d.min,
                d.max,
                r.start_pts,
                r.end_pts,
                r.dropped_leading,
                r.fragments
            );
            for s in &r.segments {
                let _ = writeln!(
                    out,
                    "segment {} {} {} {} {}",
                    s.number, s.start_dts, s.duration, s.size, s.earliest_pts
                );
            }
            for k in &r.keyframes {
                let _ = writeln!(
                    out,
                    "keyframe {} {} {} {}",
                    k.number, k.range.offset, k.range.length, k.pts
                );
            }
        }
        if self.complete {
            out.push_str("complete\n");
        }
        out
    }

    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(MAGIC) {
            return Err(CheckpointError {
                line: 1,
                reason: "not a checkpoint of this version",
            });
        }
        let mut renditions: Vec<RenditionCheckpoint> = Vec::new();
        let mut complete = false;
        for (index, line) in lines {
            let fail = |reason| CheckpointError {
                line: index + 1,
                reason,
            };
            let mut words = line.split(' ');
            let kind = words.next().unwrap_or_default();
            let numbers: Vec<i64> = match kind {
                "rendition" | "complete" => Vec::new(),
                _ => words
                    .by_ref()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| fail("not a number"))?,
            };
            let current = renditions.last_mut();
            match (kind, numbers.as_slice(), current) {
                ("rendition", _, _) => {
                    let name = words
                        .next()
                        .filter(|n| !n.is_empty())
                        .ok_or(fail("no name"))?;
                    let timescale = words
                        .next()
                        .and_then(|t| t.parse().ok())
                        .filter(|&t| t > 0)
                        .ok_or(fail("no timescale"))?;
                    renditions.push(RenditionCheckpoint {
                        name: name.to_owned(),
                        timescale,
                        durations: DurationStats::default(),
                        start_pts: 0,
                        end_pts: 0,
                        dropped_leading: 0,
                        fragments: 0,
                        segments: Vec::new(),
                        keyframes: Vec::new(),
                    });
                }
                ("stats", &[count, total, min, max, start, end, dropped, fragments], Some(r)) => {
                    r.durations = DurationStats {
                        count: unsigned(count).ok_or(fail("negative count"))?,
                        total: unsigned(total).ok_or(fail("negative total"))?,
                        min: u32::try_from(min).map_err(|_| fail("duration out of range"))?,
                        max: u32::try_from(max).map_err(|_| fail("duration out of range"))?,
                    };
                    (r.start_pts, r.end_pts) = (start, end);
                    r.dropped_leading = unsigned(dropped).ok_or(fail("negative count"))?;
                    r.fragments =
                        u32::try_from(fragments).map_err(|_| fail("fragments out of range"))?;
                }
                ("segment", &[number, start, duration, size, earliest], Some(r)) => {
                    let segment = SegmentMeta {
                        number: unsigned(number).ok_or(fail("negative number"))?,
                        start_dts: unsigned(start).ok_or(fail("negative time"))?,
                        duration: unsigned(duration).ok_or(fail("negative duration"))?,
                        size: unsigned(size).ok_or(fail("negative size"))?,
                        earliest_pts: earliest,
                    };
                    if let Some(last) = r.segments.last()
                        && (last.number + 1 != segment.number
                            || last.start_dts + last.duration != segment.start_dts)
                    {
                        return Err(fail("segments not contiguous"));
                    }
                    r.segments.push(segment);
                }
                ("keyframe", &[number, offset, length, pts], Some(r)) => {
                    r.keyframes.push(KeyframeMeta {
                        number: unsigned(number).ok_or(fail("negative number"))?,
                        range: ByteRange {
                            offset: unsigned(offset).ok_or(fail("negative offset"))?,
                            length: unsigned(length).ok_or(fail("negative length"))?,
                        },
                        pts,
                    });
                }
                ("complete", [], _) => complete = true,
                ("", [], _) => {}
                _ => return Err(fail("unexpected line")),
            }
        }
        if renditions.iter().any(|r| r.segments.is_empty()) || renditions.is_empty() {
            return Err(CheckpointError {
                line: 1,
                reason: "a rendition without segments",
            });
        }
        Ok(Checkpoint {
            renditions,
            complete,
        })
    }
}

fn unsigned(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

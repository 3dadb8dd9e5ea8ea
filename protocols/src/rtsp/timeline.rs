//! One timeline for the tracks of an RTSP publish.
//!
//! RTP timestamps start at random values per stream (RFC 3550 §5.1); only
//! RTCP sender reports tie them to a common wall clock (RFC 3550 §6.4.1:
//! an NTP time and the RTP timestamp of the same instant). Frames are held
//! until every track has a sender report, then each track's timestamps are
//! shifted so that the earliest first frame of any track is time zero and
//! the others keep their distance from it: audio and video stay in sync.
//!
//! Senders that send no reports (or not for every track) are not waited on
//! for long: after [`SYNC_WAIT`] of media on any track, the tracks' first
//! frames are taken as simultaneous. A track whose first frame comes after
//! the timeline started, with no report of its own, starts at the latest
//! time any track reached.

use std::collections::VecDeque;

use crate::rtp::Frame;

/// Media time, in seconds, after which tracks are aligned without reports.
pub const SYNC_WAIT: u64 = 1;

/// Frames held while waiting for sender reports, at most.
const MAX_PENDING: usize = 2_000;

/// An RTP clock: 32-bit timestamps extended to 64 bits across wraps and
/// small steps back (B-frames send presentation times out of order).
#[derive(Clone, Copy, Debug, Default)]
struct Clock {
    last: Option<u32>,
    ext: i64,
}

impl Clock {
    fn extend(&mut self, ts: u32) -> i64 {
        match self.last {
            None => self.ext = i64::from(ts),
            Some(last) => self.ext += i64::from(ts.wrapping_sub(last) as i32),
        }
        self.last = Some(ts);
        self.ext
    }

    /// Extends without moving the reference (sender reports may be stale).
    fn peek(&self, ts: u32) -> i64 {
        match self.last {
            None => i64::from(ts),
            Some(last) => self.ext + i64::from(ts.wrapping_sub(last) as i32),
        }
    }
}

#[derive(Debug)]
struct TrackTime {
    clock_rate: u32,
    clock: Clock,
    /// The latest sender report: NTP time and extended RTP timestamp.
    report: Option<(u64, i64)>,
    /// Added to an extended timestamp to get the timeline's time.
    offset: Option<i64>,
    first: Option<i64>,
    /// The latest time handed out, in this track's clock.
    latest: Option<i64>,
}

/// NTP-format (32.32 fixed point) seconds to ticks of `clock_rate`.
fn ntp_to_ticks(ntp: i128, clock_rate: u32) -> i64 {
    ((ntp * i128::from(clock_rate)) >> 32) as i64
}

#[derive(Debug)]
pub struct Timeline {
    tracks: Vec<TrackTime>,
    pending: VecDeque<(usize, i64, Frame)>,
    started: bool,
    out: VecDeque<(usize, i64, Frame)>,
}

impl Timeline {
    /// A timeline over tracks with these RTP clock rates.
    pub fn new(clock_rates: &[u32]) -> Self {
        Self {
            tracks: clock_rates
                .iter()
                .map(|&clock_rate| TrackTime {
                    clock_rate: clock_rate.max(1),
                    clock: Clock::default(),
                    report: None,
                    offset: None,
                    first: None,
                    latest: None,
                })
                .collect(),
            pending: VecDeque::new(),
            started: false,
            out: VecDeque::new(),
        }
    }

    /// An RTCP sender report of `track`.
    pub fn sender_report(&mut self, track: usize, ntp: u64, rtp: u32) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        // ffmpeg and GStreamer send one before their first packet.
        t.report = Some((ntp, t.clock.peek(rtp)));
        if !self.started
            && self
                .tracks
                .iter()
                .all(|t| t.report.is_some() && t.first.is_some())
        {
            self.start();
        }
    }

    /// A frame of `track`, in arrival order.
    pub fn push(&mut self, track: usize, frame: Frame) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        let ext = t.clock.extend(frame.timestamp);
        t.first.get_or_insert(ext);
        if self.started {
            self.place(track, ext, frame);
            return;
        }
        let span = ext - t.first.unwrap_or(ext);
        let waited = span >= i64::from(t.clock_rate) * SYNC_WAIT as i64;
        self.pending.push_back((track, ext, frame));
        let reported = self
            .tracks
            .iter()
            .all(|t| t.report.is_some() && t.first.is_some());
        if reported || waited || self.pending.len() >= MAX_PENDING {
            self.start();
        }
    }

    /// Frames placed on the timeline: `(track, time in the track's clock,
    /// frame)`, per track in arrival order.
    pub fn pull(&mut self) -> Option<(usize, i64, Frame)> {
        self.out.pop_front()
    }

    /// Whether the tracks were aligned by sender reports (false before the
    /// timeline starts, or when a sender sent none).
    pub fn synced_by_reports(&self) -> bool {
        self.started
            && self
                .tracks
                .iter()
                .filter(|t| t.first.is_some())
                .all(|t| t.report.is_some())
    }

    fn start(&mut self) {
        self.started = true;
        let with_frames: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].first.is_some())
            .collect();
        let reported = with_frames.iter().all(|&i| self.tracks[i].report.is_some());
        if reported {
            // NTP time of each track's first frame; the earliest is zero.
            let first_ntp = |t: &TrackTime| -> i128 {
                let (ntp, rtp) = t.report.unwrap_or_default();
                let first = t.first.unwrap_or(rtp);
                i128::from(ntp) + (i128::from(first - rtp) << 32) / i128::from(t.clock_rate)
            };
            let zero = with_frames
                .iter()
                .map(|&i| first_ntp(&self.tracks[i]))
                .min()
                .unwrap_or_default();
            for &i in &with_frames {
                let t = &mut self.tracks[i];
                let lead = ntp_to_ticks(first_ntp(t) - zero, t.clock_rate);
                t.offset = Some(lead - t.first.unwrap_or_default());
            }
        } else {
            for &i in &with_frames {
                let t = &mut self.tracks[i];
                t.offset = Some(-t.first.unwrap_or_default());
            }
        }
        for (track, ext, frame) in std::mem::take(&mut self.pending) {
            self.place(track, ext, frame);
        }
    }

    fn place(&mut self, track: usize, ext: i64, frame: Frame) {
        let offset = match self.tracks[track].offset {
            Some(offset) => offset,
            None => {
                // A track that started late.
                let rate = f64::from(self.tracks[track].clock_rate);
                let at = self
                    .reported_time(track, ext)
                    .or_else(|| self.latest_seconds().map(|s| (s * rate) as i64))
                    .unwrap_or(0);
                let offset = at - ext;
                self.tracks[track].offset = Some(offset);
                offset
            }
        };
        let time = ext + offset;
        let t = &mut self.tracks[track];
        t.latest = Some(t.latest.map_or(time, |l| l.max(time)));
        self.out.push_back((track, time, frame));
    }

    /// Where a late track's frame falls, from its sender report and any
    /// other reported track's placement.
    fn reported_time(&self, track: usize, ext: i64) -> Option<i64> {
        let t = &self.tracks[track];
        let (ntp, rtp) = t.report?;
        let frame_ntp = i128::from(ntp) + (i128::from(ext - rtp) << 32) / i128::from(t.clock_rate);
        self.tracks.iter().find_map(|o| {
            let (o_ntp, o_rtp) = o.report?;
            let o_offset = o.offset?;
            // The other track's zero in NTP time.
            let o_zero =
                i128::from(o_ntp) - (i128::from(o_rtp + o_offset) << 32) / i128::from(o.clock_rate);
            Some(ntp_to_ticks(frame_ntp - o_zero, t.clock_rate))
        })
    }

    fn latest_seconds(&self) -> Option<f64> {
        self.tracks
            .iter()
            .filter_map(|t| t.latest.map(|l| l as f64 / f64::from(t.clock_rate)))
            .fold(None, |acc, s| Some(acc.map_or(s, |a: f64| a.max(s))))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(timestamp: u32) -> Frame {
        Frame {
            timestamp,
            data: Bytes::new(),
            keyframe: true,
            duration: None,
        }
    }

    fn drain(t: &mut Timeline) -> Vec<(usize, i64)> {
        std::iter::from_fn(|| t.pull())
            .map(|(track, time, _)| (track, time))
            .collect()
    }

    const SECOND: u64 = 1 << 32;

    #[test]
    fn sender_reports_align_tracks() {
        // Video at 90 kHz and audio at 48 kHz; audio starts 0.5 s later
        // in wall-clock time.
        let mut t = Timeline::new(&[90_000, 48_000]);
        t.sender_report(0, 100 * SECOND, 1_000);
        t.sender_report(1, 100 * SECOND, 7_000);
        t.push(0, frame(1_000));
        assert!(
            drain(&mut t).is_empty(),
            "held until every track has started"
        );
        t.push(0, frame(4_000));
        t.push(1, frame(7_000 + 24_000));
        assert_eq!(drain(&mut t), vec![(0, 0), (0, 3_000), (1, 24_000)]);
        assert!(t.synced_by_reports());
        t.push(1, frame(7_000 + 25_024));
        assert_eq!(drain(&mut t), vec![(1, 25_024)]);
    }

    #[test]
    fn without_reports_first_frames_are_simultaneous() {
        let mut t = Timeline::new(&[90_000, 48_000]);
        t.push(0, frame(u32::MAX - 1_000));
        t.push(1, frame(500));
        for i in 1..=30u32 {
            t.push(0, frame((u32::MAX - 1_000).wrapping_add(i * 3_000)));
        }
        let placed = drain(&mut t);
        assert_eq!(placed[0], (0, 0));
        assert_eq!(placed[1], (1, 0));
        // Across the 32-bit wrap.
        assert_eq!(placed.last(), Some(&(0, 90_000)));
        assert!(!t.synced_by_reports());
    }

    #[test]
    fn a_late_track_without_reports_starts_at_the_latest_time() {
        let mut t = Timeline::new(&[90_000, 48_000]);
        for i in 0..=30u32 {
            t.push(0, frame(i * 3_000));
        }
        drain(&mut t);
        t.push(1, frame(12_345));
        assert_eq!(drain(&mut t), vec![(1, 48_000)]);
    }
}

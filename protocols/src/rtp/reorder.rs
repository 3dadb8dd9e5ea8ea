//! Decode times for video that arrives with presentation times only.
//!
//! RTP stamps each frame with its presentation time (RFC 3550 §5.1) and
//! sends frames in decode order; with B-frames the times step back. A CMAF
//! sample needs a decode time that rises with every frame. [`DecodeTimes`]
//! gives the k-th frame in decode order the (k − lag)-th smallest
//! presentation time of the stream, `lag` being the reorder depth the stream
//! declared: decode times rise, and every composition offset
//! (`pts - dts`) is zero or positive, as an encoder writing its own file
//! would make them (a frame is never shown before it is decoded). The first
//! `lag` frames decode one frame interval apart before the first
//! presentation time, so the stream's decode times start a little before
//! its presentation (as RTMP publishers send them) and the live packager
//! starts its timeline at the earliest decode time of any track.
//!
//! Offsets are kept non-negative on purpose: a negative offset (version 1
//! `trun`, ISO/IEC 14496-12 §8.8.8) is valid CMAF, but ffmpeg's mov demuxer
//! (5.1, Debian 12) adds the largest negative offset it has seen to every
//! presentation time of a fragmented track, which moves video late against
//! its audio by one frame per B-frame.
//!
//! The k-th smallest time is known once frames up to k + depth have
//! arrived, depth being the stream's reorder depth (H.264 VUI
//! `max_num_reorder_frames`, H.265 `sps_max_num_reorder_pics`): a frame
//! waits for `depth` followers, a delay of `depth` frame intervals, none for
//! a stream without B-frames. A stream that reorders deeper than its window
//! (or that declares nothing) has the frame that breaks the order dropped and
//! counted, and the window grows by one, up to its limit; its lag stays,
//! so such a stream may get negative offsets for its deeper B-frames.

use std::collections::{BTreeSet, VecDeque};

use crate::codec::CodecConfig;
use crate::media::Sample;

use super::Frame;

/// One track's frames from their place on a timeline to samples: the
/// decode window (made for the track's codec at its first frame) and the
/// last decode time, which times a frame that states no duration.
#[derive(Debug, Default)]
pub struct TrackTimes {
    order: Option<DecodeTimes<Frame>>,
    last_dts: Option<i64>,
}

impl TrackTimes {
    /// Adds the next frame in decode order, at presentation `time`;
    /// `Err(depth)` when it is dropped, out of order beyond the window of
    /// `depth` frames (which then grows).
    pub fn push(
        &mut self,
        config: Option<&CodecConfig>,
        time: i64,
        frame: Frame,
    ) -> Result<(), u32> {
        let order = self
            .order
            .get_or_insert_with(|| DecodeTimes::for_codec(config));
        let depth = order.depth();
        order.push(time, frame).then_some(()).ok_or(depth)
    }

    /// The next frame as `(dts, pts, frame)`, once its decode time is known.
    pub fn pull(&mut self) -> Option<(i64, i64, Frame)> {
        self.order.as_mut()?.pull()
    }

    /// At the end: the frames still waiting, one per call.
    pub fn flush(&mut self) -> Option<(i64, i64, Frame)> {
        self.order.as_mut()?.flush()
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.order.as_ref().map_or(0, DecodeTimes::dropped)
    }

    /// The sample of track `id` a pulled frame makes. The packager times a
    /// sample by the next one's start; the duration stated here (the
    /// frame's, else the step from the previous decode time, else
    /// `default_duration`) only matters for the last sample before an end.
    pub fn sample(
        &mut self,
        id: u32,
        (dts, pts, frame): (i64, i64, Frame),
        default_duration: u32,
    ) -> Option<Sample> {
        let duration = frame.duration.unwrap_or_else(|| {
            self.last_dts
                .and_then(|last| u32::try_from(dts - last).ok())
                .unwrap_or(default_duration)
        });
        self.last_dts = Some(dts);
        Some(Sample {
            track: id,
            dts,
            cts_offset: i32::try_from(pts - dts).ok()?,
            duration: duration.max(1),
            keyframe: frame.keyframe,
            data: frame.data,
        })
    }
}

/// Deepest reordering H.264 and H.265 allow (the largest DPB, 16 frames).
pub const MAX_REORDER_DEPTH: u32 = 16;

/// Assigns decode times to frames that arrive in decode order with
/// presentation times; `T` is the frame.
#[derive(Debug)]
pub struct DecodeTimes<T> {
    depth: usize,
    max_depth: usize,
    /// Frames in decode order with their presentation times.
    pending: VecDeque<(i64, T)>,
    /// Presentation times of the pending frames, not yet used as decode times.
    times: BTreeSet<i64>,
    /// How many frames decode times trail the ranked presentation times.
    lag: usize,
    /// Ranked times taken, waiting `lag` frames to become decode times.
    ranked: VecDeque<i64>,
    /// Frames given out so far.
    given: usize,
    /// The lead frames' decode interval.
    step: i64,
    /// The latest ranked time taken: no frame may be shown before it.
    last_ranked: Option<i64>,
    dropped: u64,
}

impl<T> DecodeTimes<T> {
    /// A window of `depth` frames that may grow to `max_depth` (both capped
    /// at [`MAX_REORDER_DEPTH`]); `new(0, 0)` passes frames straight through
    /// and drops any whose time does not rise (audio).
    pub fn new(depth: u32, max_depth: u32) -> Self {
        let max_depth = max_depth.clamp(depth.min(MAX_REORDER_DEPTH), MAX_REORDER_DEPTH);
        Self {
            depth: depth.min(max_depth) as usize,
            max_depth: max_depth as usize,
            pending: VecDeque::new(),
            times: BTreeSet::new(),
            lag: depth.min(max_depth) as usize,
            ranked: VecDeque::new(),
            given: 0,
            step: 1,
            last_ranked: None,
            dropped: 0,
        }
    }

    /// The window for a track of `config`: video may reorder as deep as
    /// its SPS declares (deeper is learnt, up to [`MAX_REORDER_DEPTH`]);
    /// audio, or a track not configured yet, never does.
    pub fn for_codec(config: Option<&CodecConfig>) -> Self {
        match config {
            Some(CodecConfig::H264(c)) => {
                Self::new(c.sps.max_num_reorder_frames.unwrap_or(0), MAX_REORDER_DEPTH)
            }
            Some(CodecConfig::H265(c)) => {
                Self::new(c.sps.max_num_reorder_pics.unwrap_or(0), MAX_REORDER_DEPTH)
            }
            _ => Self::new(0, 0),
        }
    }

    /// Adds the next frame in decode order. Returns `false` when the frame
    /// is dropped instead: its time is not after the last ranked time taken (the stream reorders deeper than the window, which then grows)
    /// or repeats a waiting frame's time.
    pub fn push(&mut self, pts: i64, frame: T) -> bool {
        if self.last_ranked.is_some_and(|t| pts <= t) || !self.times.insert(pts) {
            self.dropped += 1;
            self.depth = (self.depth + 1).min(self.max_depth);
            return false;
        }
        self.pending.push_back((pts, frame));
        true
    }

    /// The next frame as `(dts, pts, frame)`, once `depth` frames follow it.
    pub fn pull(&mut self) -> Option<(i64, i64, T)> {
        if self.pending.len() <= self.depth {
            return None;
        }
        self.pop()
    }

    /// At the end of the stream: the frames still waiting, one per call.
    pub fn flush(&mut self) -> Option<(i64, i64, T)> {
        self.pop()
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The window now, in frames.
    pub fn depth(&self) -> u32 {
        self.depth as u32
    }

    fn pop(&mut self) -> Option<(i64, i64, T)> {
        if self.given == 0 {
            // The lead frames step back from the smallest time by the
            // smallest gap between the waiting frames' times: a frame
            // interval, or a multiple of one when the first frames skip
            // some (a B-pyramid's deepest frames come later).
            let times: Vec<i64> = self.times.iter().copied().collect();
            if let Some(gap) = times.windows(2).map(|w| w[1] - w[0]).min() {
                self.step = gap.max(1);
            }
        }
        let (pts, frame) = self.pending.pop_front()?;
        // One time per pending frame, so there is always one to take.
        let time = self.times.pop_first()?;
        self.last_ranked = Some(time);
        self.ranked.push_back(time);
        let dts = if self.given < self.lag {
            let first = self.ranked.front().copied().unwrap_or(time);
            first - (self.lag - self.given) as i64 * self.step
        } else {
            self.ranked.pop_front().unwrap_or(time)
        };
        self.given += 1;
        Some((dts, pts, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(order: &mut DecodeTimes<usize>, pts: &[i64]) -> Vec<(i64, i64, usize)> {
        let mut out = Vec::new();
        for (i, &t) in pts.iter().enumerate() {
            order.push(t, i);
            while let Some(f) = order.pull() {
                out.push(f);
            }
        }
        while let Some(f) = order.flush() {
            out.push(f);
        }
        out
    }

    /// x264 with B-pyramid: I P B b B … in decode order, reorder depth 2.
    const PYRAMID: [i64; 9] = [0, 4, 2, 1, 3, 8, 6, 5, 7];

    #[test]
    fn pyramid_b_frames_get_rising_decode_times_and_keep_their_order() {
        let out = run(&mut DecodeTimes::new(2, 2), &PYRAMID);
        let dts: Vec<i64> = out.iter().map(|f| f.0).collect();
        // The first three frames show times 0, 2 and 4: the lead steps by 2.
        assert_eq!(dts, [-4, -2, 0, 1, 2, 3, 4, 5, 6], "two frames of lead");
        let pts: Vec<i64> = out.iter().map(|f| f.1).collect();
        assert_eq!(pts, PYRAMID, "presentation times are untouched");
        let frames: Vec<usize> = out.iter().map(|f| f.2).collect();
        assert_eq!(frames, (0..9).collect::<Vec<_>>(), "decode order is kept");
        let offsets: Vec<i64> = out.iter().map(|f| f.1 - f.0).collect();
        assert_eq!(offsets, [4, 6, 2, 0, 1, 5, 2, 0, 1], "never negative");
    }

    #[test]
    fn lead_frames_step_back_by_the_gap_seen_when_the_first_leaves() {
        // 90 kHz at 30 fps, plain B-frames (I P B B …), depth 1: when the
        // I-frame leaves, only the P-frame (three frames on) has been seen.
        let pts = [0, 9000, 3000, 6000, 18000, 12000, 15000];
        let out = run(&mut DecodeTimes::new(1, 1), &pts);
        let dts: Vec<i64> = out.iter().map(|f| f.0).collect();
        assert_eq!(dts, [-9000, 0, 3000, 6000, 9000, 12000, 15000]);
        assert!(
            out.iter().all(|f| f.1 >= f.0),
            "no frame shown before decoding"
        );
    }

    #[test]
    fn without_b_frames_nothing_waits() {
        let mut order = DecodeTimes::new(0, MAX_REORDER_DEPTH);
        assert!(order.push(0, 'a'));
        assert_eq!(order.pull(), Some((0, 0, 'a')));
        assert!(order.push(3000, 'b'));
        assert_eq!(order.pull(), Some((3000, 3000, 'b')));
        assert_eq!(order.dropped(), 0);
    }

    #[test]
    fn an_undeclared_depth_costs_a_few_frames_then_holds() {
        let mut order = DecodeTimes::new(0, MAX_REORDER_DEPTH);
        let pts: Vec<i64> = (0..4)
            .flat_map(|gop| PYRAMID.iter().map(move |t| t + 9 * gop))
            .collect();
        let out = run(&mut order, &pts);
        // Each drop widens the window by one: the three frames that stepped
        // behind the first P-frame leave it one deeper than needed.
        assert_eq!(order.depth(), 3);
        assert_eq!(order.dropped(), 3);
        assert_eq!(out.len() as u64 + order.dropped(), pts.len() as u64);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "decode times rise");
        // Once the window is deep enough, every frame of a GOP passes.
        let last_gop = out.iter().filter(|f| f.1 >= 27).count();
        assert_eq!(last_gop, 9);
    }

    #[test]
    fn audio_mode_drops_what_steps_back_and_never_waits() {
        let mut order = DecodeTimes::new(0, 0);
        let out = run(&mut order, &[0, 1024, 1024, 512, 2048]);
        let times: Vec<i64> = out.iter().map(|f| f.0).collect();
        assert_eq!(times, [0, 1024, 2048]);
        assert_eq!(order.dropped(), 2);
        assert_eq!(order.depth(), 0);
    }

    #[test]
    fn a_repeated_time_is_dropped_not_doubled() {
        let mut order = DecodeTimes::new(2, 2);
        let out = run(&mut order, &[0, 4, 4, 2]);
        let dts: Vec<i64> = out.iter().map(|f| f.0).collect();
        assert_eq!(dts, [-4, -2, 0], "two frames of lead, stepping by 2");
        assert_eq!(order.dropped(), 1);
    }
}

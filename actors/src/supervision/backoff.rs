//! The one restart policy: how long to wait before restarting something
//! that stopped, doubling per restart, and when to give up.
//!
//! Used by the root for its children, by a transcode job for its rungs, by
//! a live ladder for its rungs and by an RTSP pull for its reconnections.

use std::time::{Duration, Instant};

/// Restarts of one thing: the delay before the next, and a limit.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// At most this many restarts within the window; then give up.
    limit: Option<(usize, Duration)>,
    /// Restarts still inside the window (all of them without a limit
    /// window), oldest first.
    recent: Vec<Instant>,
}

impl Backoff {
    /// Waits `first`, then twice as long per restart still counted, at most
    /// `max`; never gives up.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            limit: None,
            recent: Vec::new(),
        }
    }

    /// Gives up once `restarts` restarts happened within `window`
    /// (restarts older than the window no longer count, nor double the
    /// delay). `Duration::MAX` counts every restart.
    pub fn with_limit(mut self, restarts: usize, window: Duration) -> Self {
        self.limit = Some((restarts, window));
        self
    }

    /// Records a restart at `now` and says how long to wait before it, or
    /// `None` when the limit is reached (nothing is recorded then).
    pub fn next_delay_at(&mut self, now: Instant) -> Option<Duration> {
        if let Some((restarts, window)) = self.limit {
            self.recent
                .retain(|at| now.saturating_duration_since(*at) < window);
            if self.recent.len() >= restarts {
                return None;
            }
        }
        let doublings = u32::try_from(self.recent.len()).unwrap_or(u32::MAX).min(30);
        let delay = self.first.saturating_mul(1 << doublings).min(self.max);
        self.recent.push(now);
        // Without a limit only the count matters: keep it bounded.
        if self.limit.is_none() && self.recent.len() > 31 {
            self.recent.remove(0);
        }
        Some(delay)
    }

    /// [`next_delay_at`](Self::next_delay_at) now.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.next_delay_at(Instant::now())
    }

    /// Forgets every restart: the thing ran well for a while.
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Restarts counted now.
    pub fn restarts(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_max_and_never_gives_up_without_a_limit() {
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        let t = Instant::now();
        let delays: Vec<_> = (0..6).map(|_| b.next_delay_at(t).unwrap()).collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        b.reset();
        assert_eq!(b.next_delay_at(t), Some(100 * MS));
    }

    #[test]
    fn gives_up_past_the_limit_within_the_window_only() {
        let mut b = Backoff::new(100 * MS, Duration::MAX).with_limit(2, Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(b.next_delay_at(t), Some(100 * MS));
        assert_eq!(b.next_delay_at(t + 10 * MS), Some(200 * MS));
        assert_eq!(
            b.next_delay_at(t + 20 * MS),
            None,
            "a third within the minute"
        );
        // A minute after the first, it no longer counts.
        assert_eq!(
            b.next_delay_at(t + Duration::from_secs(60)),
            Some(200 * MS),
            "the second still counts"
        );
        assert_eq!(b.restarts(), 2);
    }

    #[test]
    fn a_limit_over_all_time_counts_every_restart() {
        let mut b =
            Backoff::new(Duration::from_secs(1), Duration::MAX).with_limit(3, Duration::MAX);
        let t = Instant::now();
        let delays: Vec<_> = (0..4)
            .map(|i| b.next_delay_at(t + Duration::from_secs(3600 * i)))
            .collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None
            ]
        );
    }
}

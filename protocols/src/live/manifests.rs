//! What players read from a live packager: media playlists (blocking
//! reloads, delta updates), parts and segments in progress, the
//! multivariant playlist and the MPD.

use super::*;

impl LivePackager {
    /// A rendition's media playlist for a request with `query`.
    pub fn media_playlist(&self, rendition: &str, query: &PlaylistQuery) -> Reply<String> {
        let Some(r) = self.rendition(rendition) else {
            return Reply::NotFound;
        };
        if let Some(msn) = query.msn {
            match r.playlist.is_available(msn, query.part) {
                Availability::Available | Availability::Gone | Availability::Ended => {}
                Availability::NotYet => return Reply::Wait,
                Availability::BeyondLimit => {
                    return Reply::BadRequest(
                        "_HLS_msn/_HLS_part too far ahead of the live edge (RFC 8216bis §6.2.5.2)",
                    );
                }
            }
        } else if r.playlist.playlist().segments.is_empty() && !self.ended {
            // Players need a whole segment to start; hold the first request
            // instead of making them poll.
            return Reply::Wait;
        }
        let reports: Vec<RenditionReport> = self
            .renditions
            .iter()
            .filter(|o| o.name != r.name)
            .filter_map(|o| {
                o.playlist.rendition_report(&format!(
                    "../{}/{}",
                    o.name,
                    crate::package::MEDIA_PLAYLIST
                ))
            })
            .collect();
        Reply::Ready(r.playlist.render(&RenderOptions {
            skip: query.skip,
            rendition_reports: &reports,
        }))
    }

    /// Part `index` of segment `msn`. Waits for the next part to be written
    /// (the preload hint, or one just past it); older parts than the store
    /// holds are gone.
    pub fn part(&self, rendition: &str, msn: u64, index: u32) -> Reply<Bytes> {
        let Some(r) = self.rendition(rendition) else {
            return Reply::NotFound;
        };
        if let Some(seg) = r.stored(msn) {
            if let Some(bytes) = seg.parts.get(index as usize) {
                return Reply::Ready(bytes.clone());
            }
            if seg.complete {
                return Reply::NotFound;
            }
            return if self.ended {
                Reply::NotFound
            } else {
                Reply::Wait
            };
        }
        // The first part of the segment after the one being written may
        // be asked for (the preload hint of a segment's last part) before
        // it starts.
        let next = r
            .segments
            .back()
            .map_or(self.settings.first_msn, |s| s.msn + 1);
        if !self.ended && msn == next && index <= 1 {
            return Reply::Wait;
        }
        Reply::NotFound
    }

    /// The parts of segment `msn` from part `from` on, and whether the
    /// segment is complete. A segment in progress is served as it grows
    /// (LL-DASH chunked transfer); `Wait` when it has not started yet.
    pub fn segment_parts(
        &self,
        rendition: &str,
        msn: u64,
        from: usize,
    ) -> Reply<(Vec<Bytes>, bool)> {
        let Some(r) = self.rendition(rendition) else {
            return Reply::NotFound;
        };
        if let Some(seg) = r.stored(msn) {
            let parts = seg
                .parts
                .get(from..)
                .map(<[Bytes]>::to_vec)
                .unwrap_or_default();
            return Reply::Ready((parts, seg.complete || self.ended));
        }
        // The MPD announces the segments ahead of the last finished one:
        // a request for one is held until it exists.
        let finished = r
            .segments
            .iter()
            .rev()
            .find(|s| s.complete)
            .map_or(self.settings.first_msn - 1, |s| s.msn);
        if !self.ended && msn > finished && msn <= finished + ANNOUNCED_AHEAD {
            return Reply::Wait;
        }
        Reply::NotFound
    }

    /// The multivariant playlist: one variant per video rendition sharing
    /// the audio renditions. `Wait` until every rendition has a segment
    /// (BANDWIDTH comes from measured segments).
    pub fn multivariant(&self) -> Result<Reply<String>, LiveError> {
        if !self.is_playable() {
            return Ok(if self.ended {
                Reply::NotFound
            } else {
                Reply::Wait
            });
        }
        // A rung is listed once it has a complete segment.
        let listed: Vec<Listed<'_>> = self
            .renditions
            .iter()
            .filter(|r| r.track.kind() == MediaKind::Audio || !r.is_rung() || r.is_listed())
            .map(|r| Listed {
                name: &r.name,
                track: &r.track,
                peak_bps: r.peak_bps,
                average_bps: r.average_bps(),
                frame_rate: r.frame_rate(),
                i_frames: None,
            })
            .collect();
        let pl = ladder_playlist(&listed, crate::package::MEDIA_PLAYLIST);
        Ok(Reply::Ready(render_multivariant(&pl)?))
    }

    /// A rendition's DASH timeline in `epoch`: its listed segments and,
    /// while the publisher is live in that epoch, the segment in progress
    /// with what it holds so far. Low-latency DASH fetches that segment as
    /// it grows (chunked transfer) and learns its full length and the next
    /// segment from the next MPD.
    fn dash_timeline(
        &self,
        r: &Rendition,
        segments: &[&StoredSegment],
        epoch: u32,
    ) -> Vec<TimelineSegment> {
        let open = r
            .segments
            .back()
            .filter(|s| !s.complete && s.epoch == epoch && s.duration > 0)
            .filter(|_| !self.ended && !self.paused && epoch == self.epoch && !segments.is_empty());
        segments
            .iter()
            .copied()
            .chain(open)
            .map(|s| TimelineSegment {
                start: s.start,
                duration: s.duration,
            })
            .collect()
    }

    /// The MPD at wall-clock `now`: dynamic and low-latency while live,
    /// static once the stream ended.
    pub fn mpd(&self, now: UnixMillis) -> Result<Reply<String>, LiveError> {
        if !self.is_playable() {
            return Ok(if self.ended {
                Reply::NotFound
            } else {
                Reply::Wait
            });
        }
        let segment =
            MediaDuration::new(self.settings.segment.num, self.settings.segment.den as u32)
                .unwrap_or(MediaDuration::from_secs(2));
        let part = MediaDuration::new(self.settings.part.num, self.settings.part.den as u32)
            .unwrap_or(MediaDuration::from_millis(333));
        let mut longest_ms = 0u64;
        let mut window_ms = 0u64;
        let live = !self.ended;
        // One period per publisher run (epoch) still in the window: a
        // resumed stream has new init sections, and its timeline restarts.
        let mut epochs: Vec<u32> = self
            .renditions
            .iter()
            .flat_map(|r| r.listed_segments().map(|s| s.epoch))
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        let availability_offset = live.then(|| {
            MediaDuration::new(
                segment.as_nanos().saturating_sub(part.as_nanos()) as u64 / 1_000_000,
                1000,
            )
            .unwrap_or(part)
        });
        let periods: Vec<Period> = epochs
            .into_iter()
            .map(|epoch| self.period(epoch, availability_offset, &mut longest_ms))
            .collect();
        // The time-shift buffer: from the earliest listed segment on.
        if let Some(first_ms) = self
            .renditions
            .iter()
            .filter_map(|r| {
                r.listed_segments()
                    .next()
                    .map(|s| s.start * 1000 / u64::from(r.track.timescale))
            })
            .min()
        {
            window_ms = longest_ms.saturating_sub(first_ms);
        }
        let mut mpd = Mpd {
            id: self.settings.presentation_id.clone(),
            presentation: Presentation::Dynamic(Dynamic {
                // The timeline grows with each part: a player reloads
                // the MPD about three times per segment to learn of the
                // next segment soon after it starts.
                minimum_update_period: MediaDuration::from_millis(
                    (segment.as_nanos() / 3 / 1_000_000).max(part.as_nanos() / 1_000_000) as u64,
                ),
                time_shift_buffer_depth: Some(MediaDuration::from_millis(window_ms.max(1))),
                suggested_presentation_delay: None,
            }),
            availability_start_time: Some(self.start),
            publish_time: now,
            min_buffer_time: segment,
            max_segment_duration: Some(MediaDuration::from_secs(
                self.renditions
                    .iter()
                    .map(|r| r.playlist.target_duration())
                    .max()
                    .unwrap_or(2),
            )),
            low_latency: true,
            service_description: Some(ServiceDescription {
                latency_target_ms: 1500,
                latency_min_ms: Some(1000),
                latency_max_ms: Some(6000),
                playback_rate_permille: Some((960, 1040)),
            }),
            utc_timing: Some(UtcTiming {
                scheme: UtcScheme::HttpXsDate,
                value: self.settings.time_url.clone(),
            }),
            periods,
        };
        if self.ended {
            mpd.end(MediaDuration::from_millis(longest_ms), now);
        }
        Ok(Reply::Ready(render_mpd(&mpd)?))
    }

    /// The DASH period of `epoch` (one per publisher run still in the
    /// window: a resumed stream has new init sections, and its timeline
    /// restarts). `availability_offset` while live: a segment may be
    /// requested one part after it starts, its bytes then arrive chunk by
    /// chunk. Raises `longest_ms` to the end of the period's media.
    fn period(
        &self,
        epoch: u32,
        availability_offset: Option<MediaDuration>,
        longest_ms: &mut u64,
    ) -> Period {
        let live = availability_offset.is_some();
        // The period starts where its epoch's media does, and stays there
        // while the window slides: dash.js stalls when a Period keeps its
        // @id but moves its @start (ISO/IEC 23009-1 §5.3.2.1: a Period's
        // start is fixed for its id in a dynamic MPD).
        let start_ms = self.epoch_start_ms(epoch);
        // Every video rendition (the source and its ladder rungs) in one
        // set, so that players switch between them.
        let mut sets = AdaptationSets::new(Grouping::OneVideoSet);
        for (i, r) in self.renditions.iter().enumerate() {
            let timescale = r.track.timescale;
            let segments: Vec<&StoredSegment> =
                r.listed_segments().filter(|s| s.epoch == epoch).collect();
            let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
                continue;
            };
            let end = (last.start + last.duration) * 1000 / u64::from(timescale);
            *longest_ms = (*longest_ms).max(end);
            let timeline = self.dash_timeline(r, &segments, epoch);
            let track = r.epoch_track(epoch);
            let template = SegmentTemplate {
                timescale,
                initialization: format!("$RepresentationID$/{}", self.init_file(epoch)),
                media: "$RepresentationID$/$Number$.m4s".to_owned(),
                start_number: first.msn,
                // Media time at the period start.
                presentation_time_offset: start_ms * u64::from(timescale) / 1000,
                addressing: Addressing::Timeline(timeline),
                availability_time_offset: availability_offset,
                availability_time_complete: live.then_some(false),
            };
            let bandwidth = r.peak_bps.max(r.average_bps());
            let representation =
                Representation::of_track(&r.name, track, bandwidth, r.frame_rate());
            // A set's id is its first rendition's index: stable from one
            // update of the MPD to the next.
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            let lang = (track.language != "und").then(|| track.language.clone());
            sets.add(id, track.kind(), lang, template, representation);
        }
        Period {
            id: epoch.to_string(),
            start: MediaDuration::from_millis(start_ms),
            adaptation_sets: sets.finish(),
        }
    }
}

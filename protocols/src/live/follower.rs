//! Ladder rungs of a live stream: renditions re-encoded from the source
//! video that follow its segment boundaries (keyframe-aligned by
//! construction), and the read cursor a rung's encoder uses over the
//! source's parts.

use super::*;

impl LivePackager {
    /// Adds ladder rung `name` made from video rendition `source`, or
    /// continues it (its encoder restarted, or the stream resumed): its
    /// media starts with segment `from_msn` of the source, and its segments
    /// end where the source's do, so a player switches between them at any
    /// segment. `track` is the rung encoder's output; its timescale must be
    /// the source's, and its samples come through
    /// [`push_rung`](Self::push_rung) with the source's decode times.
    pub fn add_rung(
        &mut self,
        name: &str,
        source: &str,
        mut track: Track,
        from_msn: u64,
    ) -> Result<(), LiveError> {
        if self.ended {
            return Err(LiveError::Ended);
        }
        let Some(source_index) = self
            .renditions
            .iter()
            .position(|r| r.name == source && !r.is_rung() && r.track.kind() == MediaKind::Video)
        else {
            return Err(LiveError::NoSource(source.to_owned()));
        };
        let source_timescale = self.renditions[source_index].track.timescale;
        // The rung is timed on the source's media times: it shows them
        // through the source's edit list.
        track.presentation_offset = self.renditions[source_index].track.presentation_offset;
        if track.timescale != source_timescale {
            return Err(LiveError::RungTimescale {
                name: name.to_owned(),
                rung: track.timescale,
                source_timescale,
            });
        }
        let index = match self.renditions.iter().position(|r| r.name == name) {
            Some(index) => self.continue_rung(index, source_index, &mut track, from_msn)?,
            None => self.new_rung(name, source_index, &mut track, from_msn)?,
        };
        let id = track.id;
        if self.fragmenter.has_track(id) {
            self.fragmenter
                .flush_track(id)
                .map_err(|source| LiveError::Cmaf { track: id, source })?;
            self.drain()?;
        } else {
            self.fragmenter
                .add_follower(&track, from_msn)
                .map_err(|source| LiveError::Cmaf { track: id, source })?;
        }
        self.by_track.insert(id, index);
        let starts: Vec<(u64, u64)> = self.renditions[source_index]
            .segments
            .iter()
            .filter(|s| s.complete && s.msn >= from_msn)
            .map(|s| (s.msn + 1, s.start + s.duration))
            .collect();
        for (seq, start) in starts {
            self.fragmenter
                .follow(id, seq, start)
                .map_err(|source| LiveError::Cmaf { track: id, source })?;
        }
        Ok(())
    }

    /// Rung `index` goes on at `from_msn` with `track` (its encoder
    /// restarted, or the stream resumed in a new epoch).
    fn continue_rung(
        &mut self,
        index: usize,
        source_index: usize,
        track: &mut Track,
        from_msn: u64,
    ) -> Result<usize, LiveError> {
        let epoch = self.epoch;
        let r = &mut self.renditions[index];
        let name = || r.name.clone();
        if r.follows != Some(source_index) {
            return Err(LiveError::RenditionTaken(name()));
        }
        let expected = r.playlist.playlist().next_msn();
        if r.open_ticks > 0 {
            return Err(LiveError::RungOpen {
                name: name(),
                msn: expected,
            });
        }
        if from_msn != expected {
            return Err(LiveError::RungGap {
                name: name(),
                from: from_msn,
                expected,
            });
        }
        track.id = r.track.id;
        if r.epoch != epoch {
            r.start_epoch(
                init_name(self.settings.first_msn, epoch),
                epoch,
                track,
                from_msn,
            )?;
        } else if r.track.codec != track.codec {
            return Err(LiveError::RungChanged {
                name: name(),
                codec: track.codec.codec_string(),
            });
        }
        r.track = track.clone();
        Ok(index)
    }

    /// A new rendition for rung `name`, starting at `from_msn`.
    fn new_rung(
        &mut self,
        name: &str,
        source_index: usize,
        track: &mut Track,
        from_msn: u64,
    ) -> Result<usize, LiveError> {
        let epoch = self.epoch;
        track.id = RUNG_TRACK_BASE + TrackId::try_from(self.renditions.len()).unwrap_or(0);
        let init = init_segment(track).map_err(|source| LiveError::Cmaf {
            track: track.id,
            source,
        })?;
        let playlist = live_playlist(
            &self.settings,
            track,
            (from_msn, self.first_discontinuity),
            init_name(self.settings.first_msn, epoch),
        )?;
        self.renditions.push(Rendition {
            name: name.to_owned(),
            track: track.clone(),
            inits: vec![(epoch, init)],
            epoch_tracks: vec![(epoch, track.clone())],
            epoch,
            follows: Some(source_index),
            first_own_msn: from_msn,
            playlist,
            open_ticks: 0,
            segments: VecDeque::new(),
            window_start: from_msn,
            peak_bps: 0,
            total_bytes: 0,
            total_ticks: 0,
            frames: 0,
            open_frames: 0,
        });
        Ok(self.renditions.len() - 1)
    }

    /// Adds the next sample of rung `name`, timed on the source's timeline
    /// (decode times of the source's frames). Accepted while the publisher
    /// is away (a rung finishes the media it was given); refused once the
    /// stream ended.
    pub fn push_rung(&mut self, name: &str, mut sample: Sample) -> Result<(), LiveError> {
        if self.ended {
            return Err(LiveError::Ended);
        }
        let Some(index) = self
            .renditions
            .iter()
            .position(|r| r.name == name && r.is_rung())
        else {
            return Err(LiveError::NoRung(name.to_owned()));
        };
        let track = self.renditions[index].track.id;
        if !self.fragmenter.has_track(track) {
            // The stream went on in a new epoch (a resumption or a new
            // codec configuration) before the rung's encoder drained: what
            // is left of the old epoch has nowhere to go, and the rung
            // continues in the new one (`add_rung`).
            self.stats.dropped += 1;
            return Ok(());
        }
        sample.track = track;
        self.fragmenter
            .push(sample)
            .map_err(|source| LiveError::Cmaf { track, source })?;
        self.drain()?;
        self.renditions[index].open_frames += 1;
        Ok(())
    }

    /// Closes rung `name`'s open segment: its encoder's input ran out (the
    /// publisher left) or the encoder failed.
    pub fn finish_rung(&mut self, name: &str) -> Result<(), LiveError> {
        let Some(r) = self
            .renditions
            .iter()
            .find(|r| r.name == name && r.is_rung())
        else {
            return Err(LiveError::NoRung(name.to_owned()));
        };
        let track = r.track.id;
        if self.fragmenter.has_track(track) {
            self.fragmenter
                .flush_track(track)
                .map_err(|source| LiveError::Cmaf { track, source })?;
            self.drain()?;
        }
        Ok(())
    }

    /// Where a new rung of `source` starts: the segment being written now
    /// (its first part is there), so that it is listed one segment later.
    /// A rung that exists continues at the segment after its last.
    pub fn rung_start(&self, name: &str, source: &str) -> Option<u64> {
        if let Some(r) = self.rendition(name) {
            return Some(r.playlist.playlist().next_msn());
        }
        let source = self.rendition(source)?;
        source.segments.back().map(|s| s.msn)
    }

    /// Reads a rendition the way a rung's encoder does: part `part` of
    /// segment `msn`, or what to do instead.
    pub fn follow(&self, rendition: &str, msn: u64, part: usize) -> Follow {
        let Some(r) = self.rendition(rendition) else {
            return Follow::Gone;
        };
        if let Some(seg) = r.stored(msn) {
            if let Some(data) = seg.parts.get(part) {
                return Follow::Part {
                    data: data.clone(),
                    epoch: seg.epoch,
                };
            }
            if seg.complete {
                return Follow::NextSegment;
            }
            return if self.ended {
                Follow::Ended
            } else {
                Follow::Wait
            };
        }
        let next = r
            .segments
            .back()
            .map_or(self.settings.first_msn, |s| s.msn + 1);
        match msn.cmp(&next) {
            std::cmp::Ordering::Equal if self.ended => Follow::Ended,
            std::cmp::Ordering::Equal if self.paused => Follow::Paused,
            std::cmp::Ordering::Equal => Follow::Wait,
            _ => Follow::Gone,
        }
    }
}

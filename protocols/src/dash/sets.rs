//! One way to turn renditions into `AdaptationSet`s, for VOD and live
//! MPDs alike: each rendition becomes a [`Representation`] made from its
//! track, and [`AdaptationSets`] decides which set it joins.

use super::model::{AdaptationSet, Representation, SegmentTemplate};
use crate::hls::multivariant::FrameRate;
use crate::media::{MediaKind, Track};

impl Representation {
    /// The representation of `track` as rendition `id`: codecs, picture
    /// size, sample rate and channels come from the track.
    pub fn of_track(
        id: &str,
        track: &Track,
        bandwidth: u64,
        frame_rate: Option<FrameRate>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            codecs: track.codec.codec_string(),
            bandwidth: bandwidth.max(1),
            width: track.width(),
            height: track.height(),
            frame_rate,
            audio_sampling_rate: track.sample_rate(),
            audio_channels: track.channels().map(u32::from),
            segment_template: None,
        }
    }
}

/// Which set a representation joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// A set shares one `SegmentTemplate` (ISO/IEC 23009-1 §5.3.3.2,
    /// segment alignment): a representation joins the set of its kind and
    /// language with the same template, or starts its own (another
    /// timescale, other cuts).
    SameTemplate,
    /// As [`SameTemplate`](Self::SameTemplate), except that every video
    /// representation joins the first video set so that players switch
    /// between them (a live ladder), with a template of its own where its
    /// timeline differs (a rung that started later, or restarted).
    OneVideoSet,
}

/// The adaptation sets of one period, built representation by
/// representation.
#[derive(Debug)]
pub struct AdaptationSets {
    grouping: Grouping,
    sets: Vec<AdaptationSet>,
}

impl AdaptationSets {
    pub fn new(grouping: Grouping) -> Self {
        Self {
            grouping,
            sets: Vec::new(),
        }
    }

    /// Sets so far.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds `representation` of media `kind` addressed by `template`; a
    /// set it starts gets `id` (stable across a live MPD's updates when the
    /// caller derives it from the rendition).
    pub fn add(
        &mut self,
        id: u32,
        kind: MediaKind,
        lang: Option<String>,
        template: SegmentTemplate,
        mut representation: Representation,
    ) {
        if self.grouping == Grouping::OneVideoSet
            && kind == MediaKind::Video
            && let Some(set) = self.sets.iter_mut().find(|s| s.kind == MediaKind::Video)
        {
            if set.segment_template != template {
                representation.segment_template = Some(template);
            }
            set.representations.push(representation);
            return;
        }
        let joinable = self
            .sets
            .iter_mut()
            .find(|s| s.kind == kind && s.lang == lang && s.segment_template == template);
        if let Some(set) = joinable {
            set.representations.push(representation);
            return;
        }
        self.sets.push(AdaptationSet {
            id,
            kind,
            lang,
            segment_template: template,
            representations: vec![representation],
        });
    }

    pub fn finish(self) -> Vec<AdaptationSet> {
        self.sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::model::{Addressing, TimelineSegment};

    fn template(start: u64) -> SegmentTemplate {
        SegmentTemplate {
            timescale: 90_000,
            initialization: "$RepresentationID$/init.mp4".to_owned(),
            media: "$RepresentationID$/$Number$.m4s".to_owned(),
            start_number: 1,
            presentation_time_offset: 0,
            addressing: Addressing::Timeline(vec![TimelineSegment {
                start,
                duration: 180_000,
            }]),
            availability_time_offset: None,
            availability_time_complete: None,
        }
    }

    fn rep(id: &str) -> Representation {
        Representation {
            id: id.to_owned(),
            codecs: "avc1.64001f".to_owned(),
            bandwidth: 1,
            width: None,
            height: None,
            frame_rate: None,
            audio_sampling_rate: None,
            audio_channels: None,
            segment_template: None,
        }
    }

    #[test]
    fn same_template_sets_split_on_another_timeline() {
        let mut sets = AdaptationSets::new(Grouping::SameTemplate);
        sets.add(0, MediaKind::Video, None, template(0), rep("a"));
        sets.add(1, MediaKind::Video, None, template(0), rep("b"));
        sets.add(2, MediaKind::Video, None, template(90), rep("c"));
        sets.add(3, MediaKind::Audio, None, template(0), rep("d"));
        let sets = sets.finish();
        let ids: Vec<(u32, usize)> = sets
            .iter()
            .map(|s| (s.id, s.representations.len()))
            .collect();
        assert_eq!(ids, [(0, 2), (2, 1), (3, 1)]);
    }

    #[test]
    fn one_video_set_keeps_a_late_rungs_own_template() {
        let mut sets = AdaptationSets::new(Grouping::OneVideoSet);
        sets.add(0, MediaKind::Video, None, template(0), rep("source"));
        sets.add(1, MediaKind::Audio, None, template(0), rep("audio"));
        sets.add(2, MediaKind::Video, None, template(0), rep("360p"));
        sets.add(3, MediaKind::Video, None, template(90), rep("240p"));
        let sets = sets.finish();
        assert_eq!(sets.len(), 2);
        let video = &sets[0].representations;
        assert_eq!(video.len(), 3);
        assert_eq!(video[1].segment_template, None);
        assert_eq!(video[2].segment_template, Some(template(90)));
    }
}

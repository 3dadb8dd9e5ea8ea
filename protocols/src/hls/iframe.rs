//! I-frame playlists (`EXT-X-I-FRAMES-ONLY`, RFC 8216bis §4.4.3.6) for
//! trick play and scrubbing thumbnails: one entry per keyframe, a byte range
//! of the segment file that holds it, and the time until the next keyframe.
//!
//! The packager records a [`Keyframe`] for every sync sample it writes; at
//! the end of a VOD asset, [`i_frame_playlist`] turns them into a
//! [`MediaPlaylist`] for [`render_media`](super::render_media).

use std::collections::VecDeque;
use std::sync::Arc;

use super::error::HlsError;
use super::model::{ByteRange, Map, MediaPlaylist, PlaylistType, Segment, validate_uri};
use super::time::MediaDuration;

/// One keyframe's place in the segment files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyframe {
    /// The media segment that contains it.
    pub uri: String,
    /// The `moof` of its fragment through the end of the keyframe's sample
    /// data: enough to decode this one frame.
    pub byte_range: ByteRange,
    /// Presentation time, in ticks of the track timescale.
    pub time: u64,
}

/// Builds a VOD I-frame playlist. Each entry lasts until the next keyframe;
/// the last one until `end_time`. Times must strictly increase.
pub fn i_frame_playlist(
    map: Map,
    timescale: u32,
    keyframes: &[Keyframe],
    end_time: u64,
) -> Result<MediaPlaylist, HlsError> {
    validate_uri("EXT-X-MAP", &map.uri)?;
    let map = Arc::new(map);
    let mut segments = VecDeque::with_capacity(keyframes.len());
    let mut target = 1;
    for (index, kf) in keyframes.iter().enumerate() {
        validate_uri("I-frame segment", &kf.uri)?;
        let next = keyframes.get(index + 1).map_or(end_time, |k| k.time);
        let ticks =
            next.checked_sub(kf.time)
                .filter(|&t| t > 0)
                .ok_or(HlsError::InvalidKeyframe {
                    index,
                    reason: "time does not increase",
                })?;
        if kf.byte_range.length == 0 {
            return Err(HlsError::InvalidKeyframe {
                index,
                reason: "empty byte range",
            });
        }
        let duration = MediaDuration::new(ticks, timescale).ok_or(HlsError::ZeroTimescale)?;
        // §4.4.3.1: the target duration bounds every rounded EXTINF.
        target = target.max(u32::try_from(duration.rounded_secs()).unwrap_or(u32::MAX));
        segments.push_back(Segment {
            uri: kf.uri.clone(),
            duration,
            byte_range: Some(kf.byte_range),
            discontinuity: false,
            program_date_time: None,
            map: Some(Arc::clone(&map)),
            parts: Vec::new(),
        });
    }
    let mut playlist = MediaPlaylist::new(PlaylistType::Vod, target);
    playlist.i_frames_only = true;
    playlist.segments = segments;
    Ok(playlist)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(time: u64, offset: u64) -> Keyframe {
        Keyframe {
            uri: "seg0.m4s".into(),
            byte_range: ByteRange {
                length: 1000,
                offset,
            },
            time,
        }
    }

    fn map() -> Map {
        Map {
            uri: "init.mp4".into(),
            byte_range: None,
        }
    }

    #[test]
    fn durations_run_to_the_next_keyframe() {
        let pl = i_frame_playlist(map(), 90_000, &[kf(0, 0), kf(180_000, 5000)], 450_000);
        let durations: Vec<String> = pl
            .iter()
            .flat_map(|p| p.segments.iter().map(|s| s.duration.decimal().to_string()))
            .collect();
        assert_eq!(durations, ["2.000", "3.000"]);
        assert_eq!(pl.map(|p| p.target_duration), Ok(3));
    }

    #[test]
    fn rejects_non_increasing_times() {
        assert_eq!(
            i_frame_playlist(map(), 90_000, &[kf(10, 0), kf(10, 5000)], 20),
            Err(HlsError::InvalidKeyframe {
                index: 0,
                reason: "time does not increase"
            })
        );
        assert!(i_frame_playlist(map(), 90_000, &[kf(10, 0)], 5).is_err());
    }
}

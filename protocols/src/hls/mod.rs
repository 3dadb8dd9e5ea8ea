//! HLS playlists (RFC 8216bis, "HTTP Live Streaming 2nd Edition") as typed
//! data, rendered in one place.
//!
//! - [`model`]: the media playlist ([`MediaPlaylist`], [`Segment`], [`Part`], …).
//! - [`live`]: [`LivePlaylist`], driven by a packager (`push_part` →
//!   `close_segment` → … → `end`), which answers blocking reloads
//!   ([`LivePlaylist::is_available`]).
//! - [`render`]: full playlists and delta updates ([`render_media`]).
//! - [`multivariant`]: the multivariant playlist ([`render_multivariant`]).
//! - [`iframe`]: I-frame playlists from keyframe positions.
//! - [`query`]: `_HLS_msn` / `_HLS_part` / `_HLS_skip` request parameters.
//! - [`time`]: exact durations and ISO 8601 wall-clock formatting, without
//!   a clock.
//!
//! A request for a live playlist goes: [`PlaylistQuery::parse`] →
//! [`LivePlaylist::is_available`] (wait while `NotYet`) →
//! [`LivePlaylist::render`] with the query's `skip` and the sibling
//! renditions' [`LivePlaylist::rendition_report`]s.

pub mod error;
pub mod iframe;
pub mod live;
pub mod model;
pub mod multivariant;
pub mod query;
pub mod render;
pub mod time;
pub mod uri_query;

pub use error::HlsError;
pub use iframe::{Keyframe, i_frame_playlist};
pub use live::{
    Availability, InheritedSegment, LivePlaylist, LivePlaylistConfig, NewPart, NewSegment,
    Position, SegmentClosed, Window, ended_playlist,
};
pub use model::{
    ByteRange, LowLatency, Map, MediaPlaylist, OpenSegment, Part, PlaylistType, PreloadHint,
    RenditionReport, Segment, ServerControl,
};
pub use multivariant::{
    AUDIO_GROUP, AudioRendition, FrameRate, IFrameVariant, Listed, MultivariantPlaylist,
    Resolution, Variant, ladder_playlist, render_multivariant,
};
pub use query::{PlaylistQuery, QueryError, SkipRequest};
pub use render::{RenderOptions, render_media, skipped_segments};
pub use time::{MediaDuration, UnixMillis};

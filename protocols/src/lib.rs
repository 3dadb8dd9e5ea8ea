//! Sans-IO protocol and format code for StreamForge.
//!
//! Nothing in this crate performs IO, spawns tasks or reads a clock: callers
//! feed bytes and times in, and take bytes, strings and events out. That keeps
//! every parser and writer testable with byte fixtures and a simulated clock.

pub mod cmaf;
pub mod codec;
pub mod dash;
pub mod hls;
pub mod live;
pub mod media;
pub mod mp4;
pub mod package;
pub mod rope;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod ts;
pub mod tus;
pub mod webrtc;

//! RTSP push (RFC 2326 ANNOUNCE/RECORD), server side, without IO.
//!
//! Messages are parsed and written by `rtsp-types`, SDP by `sdp-types`,
//! RTP and RTCP headers by `rtp-types`/`rtcp-types`; what is ours is the
//! publish session ([`ServerSession`]), the mapping of an SDP to tracks
//! ([`sdp`]), the payload formats ([`crate::rtp`]) and the timeline that
//! puts every track on one clock ([`timeline`]).
//!
//! ```text
//! TCP bytes ─> rtsp-types ─┬─> requests ─> responses (poll_transmit)
//!                          └─> $-interleaved RTP/RTCP ─┐
//! UDP datagrams (handle_udp) ──────────────────────────┴─> depacketizers
//!                                    ─> timeline (RTCP SR) ─> Track, Sample
//! ```

pub mod sdp;
pub mod session;
pub mod timeline;

pub use session::{Refusal, RtspError, ServerConfig, ServerSession, SessionEvent, Transport};

//! MPEG-2 transport streams (ISO/IEC 13818-1), the payload SRT publishers
//! send: bytes in, the program's tracks and timed samples out.
//!
//! Two layers, both sans-IO:
//! - [`Demuxer`]: 188-byte packets (found again after garbage), continuity
//!   counters, PSI sections (PAT, PMT, CRC-checked) and PES packets per
//!   elementary stream.
//! - [`TsSession`]: turns the PES packets of the first program into the
//!   media model: H.264 and H.265 access units (Annex B to length-prefixed,
//!   parameter sets from the stream), AAC frames out of ADTS, Opus packets
//!   out of their TS framing (the Opus project's draft ETSI specification
//!   that FFmpeg and GStreamer follow);
//!   33-bit PTS/DTS extended across wraps; one zero for every track so
//!   that audio and video stay in sync; jumps (an encoder restart, a
//!   discontinuity) continue the timeline instead of breaking it.
//!
//! Errors that end a session are [`TsError`]s (nothing that looks like a
//! transport stream, no usable program); everything else is a warning and
//! the stream goes on.

mod demux;
mod packet;
mod pes;
mod psi;
mod session;

#[cfg(test)]
mod tests;

pub use demux::{DemuxEvent, Demuxer, ElementaryStream, Pes, StreamKind};
pub use packet::PACKET_LEN;
pub use session::{TsEvent, TsSession};

/// Why a transport stream cannot be read on: the session ends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// No run of packets with sync bytes 188 bytes apart.
    #[error("not an MPEG transport stream: no 188-byte packets in the first {0} bytes")]
    NotTransportStream(usize),
    /// Packets, but no program table that could be read.
    #[error("no usable program in the first {packets} packets: {reason}")]
    NoProgram { packets: u64, reason: String },
    /// The program carries nothing StreamForge can package.
    #[error(
        "no supported stream in the program ({found}): StreamForge takes H.264, H.265, AAC (ADTS) and Opus"
    )]
    NoSupportedStream { found: String },
    /// Supported streams, but none ever became decodable.
    #[error("no decodable media after {0} access units: {1}")]
    NothingDecodable(usize, String),
}

//! RTMP ingest, server side, without IO: the handshake, the chunk stream,
//! AMF0, typed messages, FLV tag bodies and the publish session that ties
//! them together (Adobe RTMP 1.0, AMF0, FLV v10.1, Enhanced RTMP v1/v2).
//!
//! Most callers need only [`ServerSession`]: feed it the bytes read from a
//! TCP connection, write what it transmits, and act on its events (see
//! [`session`] for the call order). The layers below it are public for
//! tests, tools and other roles (a relay, a client):
//!
//! ```text
//! bytes ─> handshake ─> chunk (reassembly) ─> message ─┬─> amf0 (commands, metadata)
//!                                                       └─> flv (audio/video) ─> Track, Sample
//! ```
//!
//! Every decoder caps what it allocates from lengths and counts in the
//! input, and never panics on any input. "Need more bytes" is not an error;
//! [`RtmpError`] means the peer broke the protocol and the connection should
//! be closed.

pub mod amf0;
pub mod chunk;
mod error;
pub mod flv;
pub mod handshake;
pub mod message;
pub mod session;

pub use error::{Path, RtmpError};
pub use session::{PublishRejection, PublishType, ServerConfig, ServerSession, SessionEvent};

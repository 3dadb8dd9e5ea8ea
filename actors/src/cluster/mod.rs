//! What a node shares with the other nodes of one library (several
//! servers on one PostgreSQL database): its row in the node registry,
//! renewed by a heartbeat ([`nodes`]), and its events, relayed to every
//! other node through PostgreSQL `LISTEN`/`NOTIFY` ([`relay`]).
//!
//! A single node on SQLite has a registry of one and no relay.

pub mod nodes;
pub mod relay;

pub use nodes::{HEARTBEAT, NodeIdentity, NodeRecord, NodeState, Role};

//! Supervised actors of StreamForge and the IO they own.
//!
//! Everything with a lifetime lives here: the supervision tree, child
//! processes, storage and the state database. Wire formats are parsed by
//! `streamforge-protocols`, never here.

pub mod assets;
pub mod clock;
pub mod cluster;
pub mod db;
pub mod events;
pub mod ffmpeg;
pub mod imports;
pub mod live;
pub mod process;
pub mod storage;
pub mod supervision;
pub mod tokens;
pub mod transcode;
pub mod uploads;
pub mod webhooks;

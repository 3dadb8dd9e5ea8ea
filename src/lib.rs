//! The StreamForge server: configuration, the HTTP front, and the wiring of
//! actors to storage and the database.

pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod package;
pub mod server;
pub mod systemd;
pub mod telemetry;

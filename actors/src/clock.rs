//! The wall clock, read in one place. Sans-IO code in `protocols/` never
//! reads a clock: the time is passed in, taken from here.

use std::time::SystemTime;

use streamforge_protocols::hls::UnixMillis;

/// Now, as milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now())
        .filter(|t| t.0 >= 0)
        .unwrap_or(UnixMillis(0))
}

/// [`now`] as a plain number: the database's and the API's `*_ms` fields.
pub fn now_ms() -> i64 {
    now().0
}

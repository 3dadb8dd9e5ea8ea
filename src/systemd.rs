//! The service manager's protocol (`sd_notify(3)`), for `Type=notify`
//! units such as `dist/streamforge.service`: `READY=1` once every listener
//! accepts, `WATCHDOG=1` at half the unit's `WatchdogSec` for as long as
//! the async runtime runs its timers, `STOPPING=1` when shutdown begins.
//! Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::server::Running;

/// Tells the service manager the server is up, with a status line naming
/// its listeners.
pub fn ready(running: &Running) {
    let status = format!("listening on http://{}", running.http_addr());
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Pings the watchdog the unit asked for (`WATCHDOG_USEC`), twice per
/// period, from a task of the runtime: a runtime whose workers are all
/// stuck stops pinging, and systemd restarts the service. `None` without
/// a watchdog.
pub fn watchdog() -> Option<JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = (period / 2).max(Duration::from_millis(10));
    tracing::info!(?period, "systemd watchdog on");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

/// Tells the service manager shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(%err, "cannot notify the service manager");
    }
}

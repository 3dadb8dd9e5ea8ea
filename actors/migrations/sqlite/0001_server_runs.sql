-- One row per start of the server. A run whose stopped_at is still NULL at the
-- next start ended without a clean shutdown (crash, kill -9, power loss):
-- start-up logs it, and recovery work (resuming uploads and transcodes) keys on it.
CREATE TABLE server_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    version     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL, -- unix milliseconds
    stopped_at  INTEGER           -- unix milliseconds; NULL while running or after a crash
);

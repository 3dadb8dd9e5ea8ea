-- Segment-parallel encoding: a video rung of a long, complete source is
-- cut into chunks of whole segments, each a task any worker claims (under
-- a lease, like jobs). `result` is the chunk's packager checkpoint, and
-- `init_digest` the SHA-256 of the header it made (every chunk's must be
-- the same).
CREATE TABLE chunk_tasks (
    asset        TEXT NOT NULL,
    rung         TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    kbps         INTEGER NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT,
    state        TEXT NOT NULL,
    owner        TEXT,
    lease_until  BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT,
    init_digest  TEXT,
    error        TEXT,
    done_by      TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (asset, rung, chunk)
);
CREATE INDEX chunk_tasks_state ON chunk_tasks (state);

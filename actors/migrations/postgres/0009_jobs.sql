-- The processing queue: one job per asset. A worker node claims a queued
-- job (or one whose lease ran out: its node died) by setting owner and
-- lease_until, renews the lease while it works, and marks it done. A job
-- pinned to a node (its upload is still arriving there) is claimed by that
-- node only. Times are unix milliseconds.
CREATE TABLE jobs (
    asset         TEXT    PRIMARY KEY,
    state         TEXT    NOT NULL,  -- queued | running | done
    pinned        TEXT,
    owner         TEXT,
    lease_until   BIGINT,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (state, created_at);

-- What each node does: a comma-separated subset of api, ingest, worker.
ALTER TABLE nodes ADD COLUMN roles TEXT NOT NULL DEFAULT 'api,ingest,worker';

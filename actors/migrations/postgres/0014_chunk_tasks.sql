-- Work of one asset's job that any worker may do: the chunks of whole
-- segments a video rung of a long, complete source is cut into
-- (segment-parallel encoding), and its thumbnails; each a task claimed
-- under a lease, like jobs. `spec` is the rung (JSON), `weight` orders
-- claims (heaviest first), `result` a video chunk's packager checkpoint
-- and `init_digest` the SHA-256 of the header it made (every chunk's must
-- be the same).
CREATE TABLE chunk_tasks (
    asset        TEXT NOT NULL,
    rung         TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    weight       INTEGER NOT NULL,
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

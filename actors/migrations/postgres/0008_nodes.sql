-- The nodes sharing this database: each upserts its row at every heartbeat
-- (times are unix milliseconds). A row whose heartbeat is old and that has
-- no stopped_at belongs to a node that died; `load` is JSON. `instance` is
-- a token kept in the node's data directory: a node restarting after a
-- crash has the same one, another node given the same id does not.
CREATE TABLE nodes (
    id            TEXT    PRIMARY KEY,
    advertise     TEXT    NOT NULL,
    instance      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL,
    stopped_at    BIGINT,
    load          TEXT    NOT NULL DEFAULT '{}'
);

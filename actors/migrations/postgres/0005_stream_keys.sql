-- PostgreSQL twin of sqlite/0005_stream_keys.sql.
CREATE TABLE stream_keys (
    stream      TEXT    PRIMARY KEY,
    hash        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

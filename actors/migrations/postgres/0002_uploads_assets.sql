-- PostgreSQL twin of sqlite/0002_uploads_assets.sql.
CREATE TABLE uploads (
    id            TEXT    PRIMARY KEY,
    length        BIGINT,
    upload_offset BIGINT  NOT NULL DEFAULT 0,
    metadata      TEXT    NOT NULL DEFAULT '',
    filename      TEXT    NOT NULL DEFAULT '',
    filetype      TEXT    NOT NULL DEFAULT '',
    concat        TEXT,
    parts         TEXT,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    completed_at  BIGINT,
    asset_id      TEXT
);

CREATE TABLE assets (
    id          TEXT    PRIMARY KEY,
    upload_id   TEXT,
    filename    TEXT    NOT NULL,
    filetype    TEXT    NOT NULL DEFAULT '',
    size        BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    error       TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX assets_created ON assets (created_at DESC);

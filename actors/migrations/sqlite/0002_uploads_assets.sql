-- Resumable uploads (tus). `upload_offset` is the durable offset: bytes up to
-- it are fsynced in the upload's append file; anything after it at start-up
-- is cut off. `length` is NULL while the client defers it.
CREATE TABLE uploads (
    id            TEXT    PRIMARY KEY,
    length        INTEGER,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    metadata      TEXT    NOT NULL DEFAULT '',  -- Upload-Metadata as the client sent it
    filename      TEXT    NOT NULL DEFAULT '',  -- from the metadata, for the asset
    filetype      TEXT    NOT NULL DEFAULT '',
    concat        TEXT,                         -- NULL, 'partial' or 'final'
    parts         TEXT,                         -- final uploads: space-separated partial upload ids
    created_at    INTEGER NOT NULL,             -- unix milliseconds
    expires_at    INTEGER NOT NULL,             -- unix milliseconds
    completed_at  INTEGER,
    asset_id      TEXT
);

-- A media file once its upload completed: the original is kept byte for byte
-- under assets/<id>/original in storage.
CREATE TABLE assets (
    id          TEXT    PRIMARY KEY,
    upload_id   TEXT,
    filename    TEXT    NOT NULL,
    filetype    TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL,
    status      TEXT    NOT NULL,   -- uploaded | processing | ready | failed
    error       TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX assets_created ON assets (created_at DESC);

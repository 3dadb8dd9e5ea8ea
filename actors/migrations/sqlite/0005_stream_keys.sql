-- Publish keys of live streams: one per stream name. Only a SHA-256 of each
-- key is kept; the key itself is shown once, when it is created.
CREATE TABLE stream_keys (
    stream      TEXT    PRIMARY KEY,      -- rtmp://host/live/{stream}
    hash        TEXT    NOT NULL UNIQUE,  -- lower-case hex SHA-256 of the key
    created_at  INTEGER NOT NULL
);

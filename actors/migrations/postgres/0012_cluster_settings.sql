-- Settings every node of one database shares: `internal_secret`, which
-- nodes present to read each other's uploads in progress (made by the first
-- node that starts).
CREATE TABLE cluster_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

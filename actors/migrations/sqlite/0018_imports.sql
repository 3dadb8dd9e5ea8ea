-- Imports from a URL: each downloads into the upload of the same id (its
-- bytes, offset and asset are the upload's). Times are unix milliseconds.
CREATE TABLE imports (
    id           TEXT    PRIMARY KEY,
    url          TEXT    NOT NULL,
    state        TEXT    NOT NULL,  -- downloading | completed | failed | cancelled
    error        TEXT,
    node         TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);

-- Imports from a URL: each downloads into the upload of the same id (its
-- bytes, offset and asset are the upload's). Times are unix milliseconds.
CREATE TABLE imports (
    id           TEXT    PRIMARY KEY,
    url          TEXT    NOT NULL,
    -- When url is a page: the media file yt-dlp found on it, and the
    -- headers (JSON object) the site wants on requests for it.
    media_url    TEXT,
    media_headers TEXT,
    -- The file's validator at the first answer (etag:… or date:…): a
    -- resume, even after a restart, must find the same file.
    validator    TEXT,
    state        TEXT    NOT NULL,  -- downloading | completed | failed | cancelled
    error        TEXT,
    node         TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);

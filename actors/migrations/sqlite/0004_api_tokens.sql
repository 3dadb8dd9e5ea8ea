-- Bearer tokens for the API and uploads. Only a SHA-256 of each token is
-- kept; the token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    hash        TEXT    NOT NULL UNIQUE,  -- lower-case hex SHA-256 of the token
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

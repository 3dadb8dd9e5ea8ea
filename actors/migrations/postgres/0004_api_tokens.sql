-- PostgreSQL twin of sqlite/0004_api_tokens.sql.
CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    hash        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- Webhooks (Standard Webhooks): endpoints, and a durable outbox.
--
-- An event is written in the same transaction as the change it reports,
-- with one delivery per endpoint subscribed to its type; a node that
-- holds an endpoint's claim sends its deliveries in order (seq), one at a
-- time, and logs every attempt. Times are unix milliseconds.
CREATE TABLE webhook_endpoints (
    id               TEXT    PRIMARY KEY,
    url              TEXT    NOT NULL,
    -- The event types, comma-separated with a comma at each end
    -- (',asset.ready,live.started,'), or '*' for every type.
    events           TEXT    NOT NULL,
    secret           TEXT    NOT NULL,
    description      TEXT,
    -- Defined in the configuration file: kept in step with it at start-up.
    from_config      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    disabled_reason  TEXT,
    -- The node sending this endpoint's deliveries, until claimed_until.
    claimed_by       TEXT,
    claimed_until    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE webhook_events (
    id          TEXT    PRIMARY KEY,  -- msg_…, the webhook-id header
    type        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,     -- the exact body signed and sent
    created_at  INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id       TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id          TEXT    NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    state             TEXT    NOT NULL,  -- pending | delivered | failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    first_failure_at  INTEGER,
    finished_at       INTEGER,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, state, seq);

CREATE TABLE webhook_attempts (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_seq  INTEGER NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
    node          TEXT    NOT NULL,
    attempted_at  INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status        INTEGER,  -- the HTTP status, when one came back
    error         TEXT,     -- why the attempt failed, when it did
    response      TEXT      -- the start of the response body
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq);

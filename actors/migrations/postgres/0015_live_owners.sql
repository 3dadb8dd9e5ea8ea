-- Which node owns each live stream: the node that takes its publish,
-- under a lease it renews while the stream is live (or waits for its
-- publisher to come back). Other nodes relay the stream from the owner's
-- `nodes.advertise` URL; a publish of the same name elsewhere is refused
-- until the lease runs out.
CREATE TABLE live_owners (
    stream       TEXT PRIMARY KEY,
    node         TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);

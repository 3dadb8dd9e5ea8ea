-- Set once an asset still processing has a playable preview (its interim
-- master.m3u8 lists at least one rendition with a segment).
ALTER TABLE assets ADD COLUMN preview INTEGER NOT NULL DEFAULT 0;

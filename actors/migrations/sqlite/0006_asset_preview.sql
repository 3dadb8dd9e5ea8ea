-- Set while an asset is still processing: `preview` once its interim
-- master.m3u8 lists a rendition with a segment, `poster` once poster.webp
-- is stored.
ALTER TABLE assets ADD COLUMN preview INTEGER NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN poster INTEGER NOT NULL DEFAULT 0;

-- PostgreSQL twin of sqlite/0006_asset_preview.sql (flags stay integers,
-- 0 or 1, so both dialects read them alike).
ALTER TABLE assets ADD COLUMN preview BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN poster BIGINT NOT NULL DEFAULT 0;

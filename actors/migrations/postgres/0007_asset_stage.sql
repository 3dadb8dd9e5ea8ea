-- PostgreSQL twin of sqlite/0007_asset_stage.sql (`rungs` is JSON text in
-- both dialects).
ALTER TABLE assets ADD COLUMN stage TEXT;
ALTER TABLE assets ADD COLUMN rungs TEXT;

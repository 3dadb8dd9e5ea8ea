-- PostgreSQL twin of sqlite/0003_asset_processing.sql.
ALTER TABLE assets ADD COLUMN probe TEXT;
ALTER TABLE assets ADD COLUMN updated_at BIGINT;

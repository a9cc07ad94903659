-- 0004: the settings each deployment actually ran with (the app's, overridden by its
-- deploy.toml), as JSON, so a rollback starts the old image exactly as it ran before.

ALTER TABLE deployments ADD COLUMN settings TEXT;

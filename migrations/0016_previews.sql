-- Preview deployments per pull request (issue 14).
--
-- An app's preview settings (JSON, without the env overrides) and those overrides, sealed
-- (Purpose::PreviewEnv), since a preview's env often carries a secret of its own.
ALTER TABLE apps ADD COLUMN previews TEXT;
ALTER TABLE apps ADD COLUMN preview_env BLOB;
-- A preview is an app of its own (its deployments, logs and routes work as any app's), tied
-- to the app it previews and the pull request's number.
ALTER TABLE apps ADD COLUMN preview_of INTEGER REFERENCES apps(id) ON DELETE CASCADE;
ALTER TABLE apps ADD COLUMN preview_number INTEGER;
CREATE UNIQUE INDEX apps_preview ON apps(preview_of, preview_number) WHERE preview_of IS NOT NULL;

-- What Rivetr last heard of each pull request of an app, so that a late or out-of-order
-- delivery (a `synchronize` after `closed`) changes nothing, and a preview whose PR closed
-- while Rivetr was down goes at the next start.
CREATE TABLE pull_requests (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    -- open | closed
    state TEXT NOT NULL,
    head_ref TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    -- The forge's time of the change (seconds since the epoch), when it said one.
    forge_updated_at INTEGER,
    -- Why the last event did not deploy a preview, when it did not.
    refused TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_id, number)
);

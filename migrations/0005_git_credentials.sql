-- 0005: the credential part of an app's git URL (`user:token` of https://user:token@host/...),
-- kept apart from the URL and encrypted at rest, so the URL itself can be shown and logged.

ALTER TABLE apps ADD COLUMN git_credential BLOB;

-- 0012: where backups go besides the built-in `local` directory: S3-compatible buckets. The
-- secret access key is encrypted at rest like the other secrets. A backup and a schedule
-- name their destination; `local` needs no row.

CREATE TABLE backup_destinations (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE CHECK (name != 'local'),
    kind               TEXT NOT NULL CHECK (kind IN ('s3')),
    endpoint           TEXT NOT NULL,                 -- https://s3.eu-west-1.amazonaws.com
    region             TEXT NOT NULL,
    bucket             TEXT NOT NULL,
    prefix             TEXT NOT NULL DEFAULT '',      -- prepended to each object's key
    path_style         INTEGER NOT NULL DEFAULT 0,
    access_key_id      TEXT NOT NULL,
    secret_access_key  BLOB NOT NULL,                 -- encrypted
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

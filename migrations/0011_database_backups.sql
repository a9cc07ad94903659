-- 0011: backups of managed databases. A schedule runs a backup at the times its cron pattern
-- names (UTC) and keeps the newest `keep_last` and/or those younger than `keep_days`. Each
-- backup is one row from the moment it starts: `running`, then `succeeded` (its file is
-- complete, with its size and SHA-256) or `failed` with the reason. A row left `running`
-- by a Rivetr that stopped mid-way is marked failed at the next start.

CREATE TABLE backup_schedules (
    id           INTEGER PRIMARY KEY,
    database_id  INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    cron         TEXT NOT NULL,                        -- five fields: minute hour day month weekday
    destination  TEXT NOT NULL DEFAULT 'local',
    keep_last    INTEGER,                              -- NULL: no count limit
    keep_days    INTEGER,                              -- NULL: no age limit
    last_run_at  TEXT,                                 -- the occurrence last run (RFC 3339, UTC)
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX backup_schedules_database ON backup_schedules(database_id);

CREATE TABLE backups (
    id           INTEGER PRIMARY KEY,
    database_id  INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    schedule_id  INTEGER REFERENCES backup_schedules(id) ON DELETE SET NULL,
    engine       TEXT NOT NULL,                        -- what restores it: postgres, mariadb, ...
    destination  TEXT NOT NULL,                        -- 'local'
    location     TEXT NOT NULL,                        -- the file's path
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    size_bytes   INTEGER,                              -- of the stored (compressed) file
    sha256       TEXT,                                 -- of the stored file, hex
    error        TEXT,
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);
CREATE INDEX backups_database ON backups(database_id, id);

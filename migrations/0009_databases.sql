-- 0009: managed databases. Each row is one database container Rivetr runs (its network,
-- volume and container are named after the installation and the database's name). The
-- passwords Rivetr generated are encrypted at rest like the other secrets.

CREATE TABLE databases (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,                 -- a DNS label, like an app's name
    engine         TEXT NOT NULL CHECK (engine IN ('postgres', 'mariadb', 'mysql', 'redis')),
    version        TEXT NOT NULL,                        -- as asked: "16", "11.4", "7"
    image          TEXT NOT NULL,                        -- the image it runs, from [databases] at creation
    username       TEXT NOT NULL,                        -- the user apps connect as
    database_name  TEXT NOT NULL,                        -- the database created for them
    password       BLOB NOT NULL,                        -- encrypted
    root_password  BLOB,                                 -- encrypted; MariaDB and MySQL only
    memory_bytes   INTEGER,
    cpus           REAL,
    stopped        INTEGER NOT NULL DEFAULT 0,           -- stopped by request: not brought up at start
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

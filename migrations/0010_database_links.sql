-- 0010: links from apps to managed databases. A linked app's containers get the connection
-- URL in the variable `env` (and the engine's usual separate variables), and reach the
-- database on the app's own network, where the database sits at a fixed address.

CREATE TABLE database_links (
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    database_id  INTEGER NOT NULL REFERENCES databases(id) ON DELETE RESTRICT,
    env          TEXT NOT NULL,                        -- the variable holding the URL: DATABASE_URL
    address      TEXT NOT NULL,                        -- the database's IPv4 address on the app's network
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_id, database_id),
    UNIQUE (app_id, env)
);
CREATE INDEX database_links_database ON database_links(database_id);

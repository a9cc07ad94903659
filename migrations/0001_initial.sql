-- 0001: the first schema. Never edit this file once landed; add 0002_... instead.

CREATE TABLE apps (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    git_url         TEXT,
    branch          TEXT NOT NULL DEFAULT 'main',
    image           TEXT,
    port            INTEGER NOT NULL DEFAULT 8080 CHECK (port BETWEEN 1 AND 65535),
    domains         TEXT NOT NULL DEFAULT '[]',          -- JSON array of host names
    healthcheck     TEXT NOT NULL DEFAULT '{}',          -- JSON {path, interval_ms, timeout_ms, retries}
    memory_bytes    INTEGER,
    cpus            REAL,
    replicas        INTEGER NOT NULL DEFAULT 1 CHECK (replicas >= 1),
    webhook_secret  BLOB,                                -- encrypted at rest
    stopped         INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (git_url IS NOT NULL OR image IS NOT NULL)
);

CREATE TABLE deployments (
    id                  INTEGER PRIMARY KEY,
    app_id              INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status              TEXT NOT NULL DEFAULT 'queued' CHECK (status IN (
                            'queued', 'cloning', 'building', 'starting', 'health_checking',
                            'switching', 'running', 'failed', 'cancelled', 'superseded',
                            'replaced')),
    trigger             TEXT NOT NULL DEFAULT 'api',     -- api, webhook, rollback, ...
    git_ref             TEXT,
    commit_sha          TEXT,
    commit_subject      TEXT,
    image               TEXT,
    reason              TEXT,
    rollback_of         INTEGER REFERENCES deployments(id) ON DELETE SET NULL,
    queued_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    cloning_at          TEXT,
    building_at         TEXT,
    starting_at         TEXT,
    health_checking_at  TEXT,
    switching_at        TEXT,
    running_at          TEXT,
    finished_at         TEXT
);
CREATE INDEX deployments_app ON deployments(app_id, id);
CREATE INDEX deployments_status ON deployments(status);

CREATE TABLE deployment_logs (
    id              INTEGER PRIMARY KEY,
    deployment_id   INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    stream          TEXT NOT NULL DEFAULT 'rivetr',      -- rivetr, git, build, health, ...
    line            TEXT NOT NULL
);
CREATE INDEX deployment_logs_deployment ON deployment_logs(deployment_id, id);

CREATE TABLE env_vars (
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,                           -- encrypted when secret = 1
    secret      INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_id, key)
);

CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE,                -- SHA-256 of the token; the token itself is never stored
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at    TEXT,
    revoked_at      TEXT
);

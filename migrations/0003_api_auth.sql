-- 0003: what API auth, secrets at rest and webhook deduplication need.

-- The fingerprint of the key that encrypts secrets (env values, webhook secrets, git
-- credentials). Written on the first start that has a key, checked on every later start, so a
-- missing or different key is a clear startup error instead of undecryptable rows. One row.
CREATE TABLE secret_key (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint     TEXT NOT NULL,                       -- hex of HMAC-SHA256(key, label), truncated; reveals nothing of the key
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Token names identify tokens to people (`rivetr token list`); two live tokens with one name
-- would make "revoke the ci token" ambiguous. A revoked token frees its name.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(name) WHERE revoked_at IS NULL;

-- 0002 keyed deliveries by (provider, delivery_id) alone. GitHub gives every hook of one
-- event the same X-GitHub-Delivery, so two apps built from one repository would see the
-- second app's push dropped as a repeat. A delivery is a repeat only for the same app.
CREATE TABLE webhook_deliveries_by_app (
    provider        TEXT NOT NULL,                       -- github, gitlab, gitea
    delivery_id     TEXT NOT NULL,                       -- X-GitHub-Delivery, Idempotency-Key or X-Gitlab-Event-UUID, X-Gitea-Delivery
    app_id          INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    deployment_id   INTEGER REFERENCES deployments(id) ON DELETE SET NULL,
    received_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_id, provider, delivery_id)
);
INSERT INTO webhook_deliveries_by_app (provider, delivery_id, app_id, deployment_id, received_at)
    SELECT provider, delivery_id, app_id, deployment_id, received_at FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_by_app RENAME TO webhook_deliveries;

-- 0002: webhook deliveries already seen, so a forge's retry of the same delivery queues nothing.

CREATE TABLE webhook_deliveries (
    provider        TEXT NOT NULL,                       -- github, gitlab, gitea
    delivery_id     TEXT NOT NULL,                       -- X-GitHub-Delivery, X-Gitlab-Event-UUID, X-Gitea-Delivery
    app_id          INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    deployment_id   INTEGER REFERENCES deployments(id) ON DELETE SET NULL,
    received_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (provider, delivery_id)
);

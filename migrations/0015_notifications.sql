-- 0015: notification channels (where messages about deployments, certificates, containers,
-- backups and Rivetr itself go) and the queue of their deliveries.
--
-- A channel's secret parts (a webhook URL, which for Slack, Mattermost and Discord carries
-- the token; the signing secret of a generic webhook; an SMTP password) are one sealed JSON
-- value in `secret`. What may be shown (the email server, sender and recipients) is plain
-- JSON in `settings`.

CREATE TABLE notification_channels (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'mattermost', 'discord', 'email')),
    settings    TEXT NOT NULL DEFAULT '{}',
    secret      BLOB NOT NULL,                      -- encrypted
    events      TEXT NOT NULL DEFAULT '[]',         -- JSON array of event names; [] = all
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- One row per message and channel: the queue the delivery task drains, and the record the
-- API shows. Rows older than 30 days that are done (sent or failed) are deleted.
CREATE TABLE notification_deliveries (
    id            INTEGER PRIMARY KEY,
    channel_id    INTEGER NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,                    -- the message as JSON (no secrets)
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_error    TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    sent_at       TEXT
);

CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, id);

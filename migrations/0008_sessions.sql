-- 0008: the dashboard's sign-in sessions. A person pastes an API token once; the dashboard
-- gets a session cookie instead, and the token is kept nowhere in the browser.

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,
    token_id        INTEGER NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    secret_hash     BLOB NOT NULL UNIQUE,               -- SHA-256 of the cookie's value; the value itself is never stored
    created_at      INTEGER NOT NULL,                   -- unix seconds; the absolute limit counts from here
    last_seen_at    INTEGER NOT NULL                    -- unix seconds, to the minute; the idle limit counts from here
);
CREATE INDEX sessions_token ON sessions(token_id);

-- A session lives no longer than the token it was opened with, however it is revoked (the
-- API, or `rivetr token revoke` on the host's database while the daemon runs).
CREATE TRIGGER sessions_end_with_their_token AFTER UPDATE OF revoked_at ON api_tokens
    WHEN NEW.revoked_at IS NOT NULL
BEGIN
    DELETE FROM sessions WHERE token_id = NEW.id;
END;

-- 0007: SSH access to private repositories. Each app may have one deploy key (an ed25519 key
-- pair made by Rivetr: the public half is shown to paste into the forge, the private half is
-- encrypted at rest like the other secrets), and its own known_hosts: the host keys of the
-- SSH servers its clones have met, recorded on first contact and checked on every later one.

CREATE TABLE deploy_keys (
    app_id       INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    public_key   TEXT NOT NULL,                        -- one OpenSSH line: ssh-ed25519 AAAA... comment
    fingerprint  TEXT NOT NULL,                        -- SHA256:..., as forges and ssh-keygen -l show it
    private_key  BLOB NOT NULL,                        -- the OpenSSH private key file, encrypted at rest
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE known_hosts (
    app_id       INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    entries      TEXT NOT NULL,                        -- ssh's known_hosts file, as ssh wrote it
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

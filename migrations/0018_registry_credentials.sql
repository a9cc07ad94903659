-- Docker Swarm support (issue 15): the credentials Rivetr pushes builds to a registry with,
-- and that the swarm's nodes pull them with. The password is sealed like every other secret
-- (Purpose::RegistryPassword, bound to the registry's name).
CREATE TABLE registry_credentials (
    registry   TEXT PRIMARY KEY NOT NULL,
    username   TEXT NOT NULL,
    password   BLOB NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- 0006: a random identity for this installation, put as a label on every container and image
-- Rivetr creates, so that two installations sharing one container engine (a test suite, a
-- staging instance beside production) never remove each other's containers.

CREATE TABLE instance (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL
);
INSERT INTO instance (singleton, id) VALUES (1, lower(hex(randomblob(8))));

-- 0014: a managed database's optional public TCP port. NULL (the default): reachable only
-- from the apps linked to it. A port: Rivetr listens on `[databases] public_address` at
-- that port and forwards each connection to the database.

ALTER TABLE databases ADD COLUMN public_port INTEGER;

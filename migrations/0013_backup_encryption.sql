-- 0013: backups encrypted with the key of `[databases] backup_key_file`. A backup records
-- the fingerprint of the key it was encrypted with (NULL: not encrypted), so a restore knows
-- whether it needs a key and which one, before it reads a byte.

ALTER TABLE backups ADD COLUMN key_fingerprint TEXT;

//! The key file that encrypts secrets at rest: where it is found, what it holds, how a new
//! one is made.
//!
//! Found at `$CREDENTIALS_DIRECTORY/rivetr.key` (systemd `LoadCredential=rivetr.key:PATH`)
//! when that file exists, else at `<state dir>/secret.key`. Two formats are accepted:
//! exactly 32 raw bytes (`head -c 32 /dev/urandom > rivetr.key`), or 64 hex digits with
//! optional surrounding whitespace such as a final newline (`openssl rand -hex 32`). A key
//! Rivetr creates itself is 32 raw bytes in a file created with mode 0600.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::SecretsError;

/// The credential name systemd passes the key under.
pub const CREDENTIAL_NAME: &str = "rivetr.key";
/// The key file in the state directory, used outside systemd's credentials.
pub const STATE_KEY_FILE: &str = "secret.key";
const KEY_LEN: usize = 32;

/// The 32-byte key. Zeroed when dropped; `Debug` shows nothing of it.
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// systemd's credentials directory.
    Credential(PathBuf),
    /// An existing file in the state directory.
    StateFile(PathBuf),
    /// Created just now in the state directory.
    Created(PathBuf),
}

impl KeyOrigin {
    pub fn path(&self) -> &Path {
        match self {
            KeyOrigin::Credential(p) | KeyOrigin::StateFile(p) | KeyOrigin::Created(p) => p,
        }
    }
}

/// Finds and reads the key, if there is one.
pub fn find(
    credentials_dir: Option<&Path>,
    state_dir: &Path,
) -> Result<Option<(SecretKey, KeyOrigin)>, SecretsError> {
    if let Some(dir) = credentials_dir {
        let path = dir.join(CREDENTIAL_NAME);
        if let Some(key) = read(&path)? {
            return Ok(Some((key, KeyOrigin::Credential(path))));
        }
        tracing::debug!(dir = %dir.display(), "no {CREDENTIAL_NAME} among systemd's credentials");
    }
    let path = state_dir.join(STATE_KEY_FILE);
    match read(&path)? {
        Some(key) => {
            warn_if_readable_by_others(&path);
            Ok(Some((key, KeyOrigin::StateFile(path))))
        }
        None => Ok(None),
    }
}

/// Reads a key file; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<SecretKey>, SecretsError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SecretsError::KeyRead {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(&bytes)
        .map(Some)
        .ok_or_else(|| SecretsError::KeyFormat {
            path: path.to_owned(),
            len: bytes.len(),
        })
}

/// The key in a file's bytes: 32 raw bytes, or 64 hex digits with optional whitespace around.
pub fn parse(bytes: &[u8]) -> Option<SecretKey> {
    // Raw first: 32 random bytes may well start or end with a whitespace byte.
    if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes) {
        return Some(SecretKey::from_bytes(raw));
    }
    let text = bytes.trim_ascii();
    if text.len() != 2 * KEY_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    hex::decode_to_slice(text, &mut key).ok()?;
    Some(SecretKey::from_bytes(key))
}

/// Creates `<state dir>/secret.key` with 32 random bytes, mode 0600 from the start (never
/// briefly wider), and flushed to disk before anything is encrypted with it.
pub fn create(state_dir: &Path) -> Result<(SecretKey, KeyOrigin), SecretsError> {
    let path = state_dir.join(STATE_KEY_FILE);
    let error = |source| SecretsError::KeyCreate {
        path: path.clone(),
        source,
    };
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    super::random_bytes(&mut *bytes)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(error)?;
    file.write_all(&*bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    // The directory entry too, so a crash cannot keep the database's fingerprint but lose
    // the file.
    std::fs::File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(error)?;
    Ok((SecretKey::from_bytes(*bytes), KeyOrigin::Created(path)))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the secret key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_32_bytes_are_a_key_even_with_whitespace_bytes() {
        let mut raw = [7u8; 32];
        raw[0] = b' ';
        raw[31] = b'\n';
        let key = parse(&raw).unwrap();
        assert_eq!(key.bytes(), &raw);
    }

    #[test]
    fn hex_with_a_newline_is_a_key() {
        let text = format!("{}\n", "0f".repeat(32));
        let key = parse(text.as_bytes()).unwrap();
        assert_eq!(key.bytes(), &[0x0f; 32]);
        assert!(parse("0F".repeat(32).as_bytes()).is_some());
    }

    #[test]
    fn other_lengths_and_bad_hex_are_refused() {
        assert!(parse(&[1u8; 31]).is_none());
        assert!(parse(&[1u8; 33]).is_none());
        assert!(parse(b"").is_none());
        assert!(parse("zz".repeat(32).as_bytes()).is_none());
        assert!(parse("ab".repeat(31).as_bytes()).is_none());
    }

    #[test]
    fn create_makes_a_0600_file_of_32_bytes_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (key, origin) = create(dir.path()).unwrap();
        let path = dir.path().join(STATE_KEY_FILE);
        assert_eq!(origin, KeyOrigin::Created(path.clone()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), key.bytes());
        assert!(matches!(
            create(dir.path()),
            Err(SecretsError::KeyCreate { .. })
        ));
    }

    #[test]
    fn the_credential_wins_over_the_state_file() {
        let creds = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join(CREDENTIAL_NAME), [1u8; 32]).unwrap();
        std::fs::write(state.path().join(STATE_KEY_FILE), [2u8; 32]).unwrap();
        let (key, origin) = find(Some(creds.path()), state.path()).unwrap().unwrap();
        assert_eq!(key.bytes(), &[1u8; 32]);
        assert!(matches!(origin, KeyOrigin::Credential(_)));

        // A credentials directory without rivetr.key falls back to the state file.
        let empty = tempfile::tempdir().unwrap();
        let (key, origin) = find(Some(empty.path()), state.path()).unwrap().unwrap();
        assert_eq!(key.bytes(), &[2u8; 32]);
        assert!(matches!(origin, KeyOrigin::StateFile(_)));

        assert!(find(None, empty.path()).unwrap().is_none());
    }

    #[test]
    fn a_bad_key_file_names_its_path_and_the_formats() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join(STATE_KEY_FILE), b"too short").unwrap();
        let err = find(None, state.path()).unwrap_err().to_string();
        assert!(err.contains(STATE_KEY_FILE), "{err}");
        assert!(err.contains("9 bytes"), "{err}");
        assert!(err.contains("32 raw bytes"), "{err}");
    }
}

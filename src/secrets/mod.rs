//! Secrets at rest: the key that encrypts them, and the encryption itself.
//!
//! Env values marked secret, webhook secrets, git credentials and the private halves of SSH
//! deploy keys ([`deploy_key`] makes them) are stored encrypted with
//! XChaCha20-Poly1305 (the extended-nonce ChaCha20-Poly1305, so random nonces never repeat in
//! practice). A sealed value is `[version = 1][24-byte nonce][ciphertext + 16-byte tag]`; the
//! version byte lets a later Rivetr change the algorithm and still read old rows.
//!
//! Each value is bound to where it lives (its [`Purpose`]: the app and, for an env var, the
//! key) through the AEAD's associated data, so a ciphertext copied into another row, or
//! another app, fails to decrypt instead of leaking there.
//!
//! The key (see [`key`]) comes from systemd's credentials or a 0600 file in the state
//! directory. [`load`] checks it against the fingerprint stored in the database, so a missing
//! or different key stops Rivetr at startup rather than leaving rows it cannot read.
//!
//! This module never logs a secret; [`SecretString`] and the key types print redacted.

pub mod deploy_key;
pub mod key;

use std::fmt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::db::{Db, DbError};
pub use key::{CREDENTIAL_NAME, KeyOrigin, STATE_KEY_FILE, SecretKey};

/// The version byte of values sealed with XChaCha20-Poly1305 and a random 24-byte nonce.
const V1_XCHACHA20POLY1305: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The HMAC label of the key fingerprint; changing it would make every stored fingerprint
/// look like a different key.
const FINGERPRINT_LABEL: &[u8] = b"rivetr secret key fingerprint v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read the secret key {}: {source}", path.display())]
    KeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key {} holds {len} bytes; expected exactly 32 raw bytes \
         (`head -c 32 /dev/urandom`) or 64 hex digits (`openssl rand -hex 32`)",
        path.display()
    )]
    KeyFormat { path: PathBuf, len: usize },
    #[error("cannot create the secret key {}: {source}", path.display())]
    KeyCreate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no secret key found (looked for {}), but the database was set up with the key \
         whose fingerprint is {fingerprint}{}. Restore that key file (for example \
         /etc/rivetr/rivetr.key passed with LoadCredential=rivetr.key:..., or {}); Rivetr will \
         not create a new key, because the values encrypted with the old one would be lost",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and "),
        encrypted_note(*encrypted),
        state_file.display()
    )]
    MissingKey {
        looked: Vec<PathBuf>,
        state_file: PathBuf,
        fingerprint: String,
        encrypted: i64,
    },
    #[error(
        "the database holds {encrypted} encrypted values but records no key fingerprint, and no \
         key was found (looked for {}). Restore the key file; Rivetr will not create a new one",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    MissingKeyUnrecorded {
        looked: Vec<PathBuf>,
        encrypted: i64,
    },
    #[error(
        "the secret key {} (fingerprint {found}) is not the key this database was set up with \
         (fingerprint {expected}){}. Use the original key file",
        path.display(), encrypted_note(*encrypted)
    )]
    WrongKey {
        path: PathBuf,
        expected: String,
        found: String,
        encrypted: i64,
    },
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("a sealed value is too short to be one ({0} bytes)")]
    Malformed(usize),
    #[error("a sealed value has version {0}, which this Rivetr does not know")]
    UnknownVersion(u8),
    #[error(
        "a sealed value does not decrypt: the key is different, or the value was altered or \
         moved from another row"
    )]
    Decrypt,
    #[error("a decrypted value is not UTF-8")]
    NotUtf8,
    #[error("cannot encode an SSH key: {0}")]
    SshKey(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn encrypted_note(encrypted: i64) -> String {
    match encrypted {
        0 => String::new(),
        n => format!("; {n} encrypted values depend on it"),
    }
}

/// Where a sealed value lives. Part of the associated data, so a value only opens in its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// `env_vars.value` of a secret env var.
    EnvVar { app_id: i64, key: &'a str },
    /// `apps.webhook_secret`.
    WebhookSecret { app_id: i64 },
    /// `apps.git_credential`: the `user:token` of an app's https git URL.
    GitCredential { app_id: i64 },
    /// `deploy_keys.private_key`: the private half of an app's SSH deploy key.
    DeployKey { app_id: i64 },
    /// `databases.password`: the password apps connect to a managed database with.
    DatabasePassword { database_id: i64 },
    /// `databases.root_password`: a MariaDB or MySQL database's root password.
    DatabaseRootPassword { database_id: i64 },
    /// `backup_destinations.secret_access_key`: an S3 destination's secret key.
    BackupDestination { destination_id: i64 },
    /// `notification_channels.secret`: a channel's URL, signing secret or SMTP password.
    NotificationChannel { channel_id: i64 },
    /// `apps.preview_env`: the env overrides of an app's previews (a JSON object).
    PreviewEnv { app_id: i64 },
    /// `registry_credentials.password`: the password of a registry swarm builds go to.
    RegistryPassword { registry: &'a str },
}

impl Purpose<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // The app id is a number, so `:` after it cannot be confused with part of a key.
        match self {
            Purpose::EnvVar { app_id, key } => format!("rivetr:env:{app_id}:{key}"),
            Purpose::WebhookSecret { app_id } => format!("rivetr:webhook:{app_id}"),
            Purpose::GitCredential { app_id } => format!("rivetr:git:{app_id}"),
            Purpose::DeployKey { app_id } => format!("rivetr:deploy-key:{app_id}"),
            Purpose::DatabasePassword { database_id } => format!("rivetr:db:{database_id}"),
            Purpose::DatabaseRootPassword { database_id } => {
                format!("rivetr:db-root:{database_id}")
            }
            Purpose::BackupDestination { destination_id } => {
                format!("rivetr:backup-destination:{destination_id}")
            }
            Purpose::NotificationChannel { channel_id } => {
                format!("rivetr:notification-channel:{channel_id}")
            }
            Purpose::PreviewEnv { app_id } => format!("rivetr:preview-env:{app_id}"),
            Purpose::RegistryPassword { registry } => format!("rivetr:registry:{registry}"),
        }
        .into_bytes()
    }
}

/// A secret string: zeroed when dropped, redacted in `Debug`, and deliberately without
/// `Display`, so it cannot slip into a log line through `%` or `{}`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> SecretString {
        SecretString(Zeroizing::new(value))
    }

    /// The secret itself. Call it only where the value must leave Rivetr (a response that
    /// shows it once, a container's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Encrypts and decrypts secrets with the loaded key. Cheap to share behind an `Arc`.
pub struct Secrets {
    cipher: XChaCha20Poly1305,
    fingerprint: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    pub fn new(key: &SecretKey) -> Secrets {
        Secrets {
            cipher: XChaCha20Poly1305::new(key.bytes().into()),
            fingerprint: fingerprint(key),
        }
    }

    /// A short identifier of the key, safe to log and to store: an HMAC of a fixed label.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals `plaintext` for the row `purpose` describes.
    pub fn encrypt(&self, purpose: Purpose<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let aad = purpose.associated_data();
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Only fails for inputs beyond 256 GiB.
            .map_err(|_| SecretsError::Decrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(V1_XCHACHA20POLY1305);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed by [`Secrets::encrypt`] for the same `purpose`.
    pub fn decrypt(
        &self,
        purpose: Purpose<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretsError::Malformed(0))?;
        if version != V1_XCHACHA20POLY1305 {
            return Err(SecretsError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretsError::Malformed(sealed.len()));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretsError::Malformed(sealed.len()))?;
        let aad = purpose.associated_data();
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Decrypt)
    }

    /// [`Secrets::encrypt`] for text.
    pub fn encrypt_str(
        &self,
        purpose: Purpose<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, SecretsError> {
        self.encrypt(purpose, plaintext.as_bytes())
    }

    /// [`Secrets::decrypt`] for text.
    pub fn decrypt_str(
        &self,
        purpose: Purpose<'_>,
        sealed: &[u8],
    ) -> Result<SecretString, SecretsError> {
        let mut bytes = self.decrypt(purpose, sealed)?;
        let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
            // Zero the bytes that failed to convert, too.
            let mut v = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut v);
            SecretsError::NotUtf8
        })?;
        Ok(SecretString::new(text))
    }
}

fn fingerprint(key: &SecretKey) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
        .expect("HMAC takes a key of any length");
    mac.update(FINGERPRINT_LABEL);
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), SecretsError> {
    getrandom::fill(buf).map_err(|e| SecretsError::Random(e.to_string()))
}

/// A new random secret of 32 bytes, as 64 lowercase hex digits: fit for a webhook secret
/// that people paste into a forge's settings.
pub fn random_hex_secret() -> Result<SecretString, SecretsError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    random_bytes(&mut *bytes)?;
    Ok(SecretString::new(hex::encode(*bytes)))
}

/// Loads the key and checks it against the database, at startup.
///
/// The key is `$CREDENTIALS_DIRECTORY/rivetr.key` when systemd passes it, else
/// `<state dir>/secret.key`. A database that has no key fingerprint yet and holds no encrypted
/// value gets a new key file (mode 0600) when none exists. A database that was set up with a
/// key refuses to start without that same key.
pub async fn load(
    db: &Db,
    state_dir: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secrets, SecretsError> {
    let stored = db.call(crate::db::secret_key::fingerprint).await?;
    let encrypted = db.call(crate::db::secret_key::count_encrypted).await?;
    let state_file = state_dir.join(STATE_KEY_FILE);
    let looked: Vec<PathBuf> = credentials_dir
        .map(|d| d.join(CREDENTIAL_NAME))
        .into_iter()
        .chain(std::iter::once(state_file.clone()))
        .collect();

    let (key, origin) = match (key::find(credentials_dir, state_dir)?, stored.as_deref()) {
        (Some(found), _) => found,
        (None, Some(fingerprint)) => {
            return Err(SecretsError::MissingKey {
                looked,
                state_file,
                fingerprint: fingerprint.to_owned(),
                encrypted,
            });
        }
        (None, None) if encrypted > 0 => {
            return Err(SecretsError::MissingKeyUnrecorded { looked, encrypted });
        }
        (None, None) => key::create(state_dir)?,
    };
    let secrets = Secrets::new(&key);
    match stored {
        Some(expected) if expected != secrets.fingerprint => {
            return Err(SecretsError::WrongKey {
                path: origin.path().to_owned(),
                expected,
                found: secrets.fingerprint,
                encrypted,
            });
        }
        Some(_) => {}
        None => {
            let fp = secrets.fingerprint.clone();
            db.call(move |c| crate::db::secret_key::set_fingerprint(c, &fp))
                .await?;
        }
    }
    match &origin {
        KeyOrigin::Created(path) => {
            tracing::info!(path = %path.display(), fingerprint = %secrets.fingerprint, "created the key that encrypts secrets at rest; back it up")
        }
        other => {
            tracing::info!(path = %other.path().display(), fingerprint = %secrets.fingerprint, "loaded the key that encrypts secrets at rest")
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(byte: u8) -> Secrets {
        Secrets::new(&SecretKey::from_bytes([byte; 32]))
    }

    const HOOK: Purpose<'static> = Purpose::WebhookSecret { app_id: 7 };

    #[test]
    fn round_trip_and_format() {
        let s = secrets(1);
        let sealed = s.encrypt(HOOK, b"hunter2").unwrap();
        assert_eq!(sealed[0], V1_XCHACHA20POLY1305);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 7 + TAG_LEN);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(&**s.decrypt(HOOK, &sealed).unwrap(), b"hunter2");
        assert_eq!(s.decrypt_str(HOOK, &sealed).unwrap().expose(), "hunter2");
    }

    #[test]
    fn nonces_differ_between_encryptions() {
        let s = secrets(1);
        let a = s.encrypt(HOOK, b"same").unwrap();
        let b = s.encrypt(HOOK, b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn another_key_fails() {
        let sealed = secrets(1).encrypt(HOOK, b"x").unwrap();
        assert!(matches!(
            secrets(2).decrypt(HOOK, &sealed),
            Err(SecretsError::Decrypt)
        ));
    }

    #[test]
    fn a_value_moved_to_another_row_fails() {
        let s = secrets(1);
        let sealed = s
            .encrypt(
                Purpose::EnvVar {
                    app_id: 1,
                    key: "DB_PASSWORD",
                },
                b"x",
            )
            .unwrap();
        for other in [
            Purpose::EnvVar {
                app_id: 2,
                key: "DB_PASSWORD",
            },
            Purpose::EnvVar {
                app_id: 1,
                key: "OTHER",
            },
            Purpose::WebhookSecret { app_id: 1 },
            Purpose::GitCredential { app_id: 1 },
            Purpose::DeployKey { app_id: 1 },
        ] {
            assert!(matches!(
                s.decrypt(other, &sealed),
                Err(SecretsError::Decrypt)
            ));
        }
    }

    #[test]
    fn altered_truncated_and_unknown_versions_fail() {
        let s = secrets(1);
        let mut sealed = s.encrypt(HOOK, b"value").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            s.decrypt(HOOK, &sealed),
            Err(SecretsError::Decrypt)
        ));
        assert!(matches!(
            s.decrypt(HOOK, &sealed[..10]),
            Err(SecretsError::Malformed(10))
        ));
        assert!(matches!(
            s.decrypt(HOOK, &[]),
            Err(SecretsError::Malformed(0))
        ));
        sealed[0] = 9;
        assert!(matches!(
            s.decrypt(HOOK, &sealed),
            Err(SecretsError::UnknownVersion(9))
        ));
    }

    #[test]
    fn fingerprint_is_stable_short_and_key_dependent() {
        assert_eq!(secrets(1).fingerprint(), secrets(1).fingerprint());
        assert_ne!(secrets(1).fingerprint(), secrets(2).fingerprint());
        assert_eq!(secrets(1).fingerprint().len(), 16);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = SecretString::new("hunter2".to_owned());
        assert!(!format!("{s:?}").contains("hunter2"));
        let key = SecretKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").to_lowercase().contains("abab"));
        assert!(!format!("{key:?}").contains("171"));
        let secrets = Secrets::new(&key);
        assert!(format!("{secrets:?}").contains(secrets.fingerprint()));
    }

    #[test]
    fn random_hex_secrets_are_64_hex_digits_and_differ() {
        let a = random_hex_secret().unwrap();
        let b = random_hex_secret().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

//! API tokens: their format, how they are made and checked, the first token of a fresh
//! install, and the limit on failed attempts.
//!
//! A token is `rvt_` followed by 64 lowercase hex digits (32 random bytes). The database
//! keeps only its SHA-256 ([`crate::db::tokens`]); the token is shown once, when created.
//! [`live`] keeps the hashes of the live tokens in memory. HTTP concerns (headers, status
//! codes) live in `api::auth`; this module is shared by the API,
//! the daemon's startup and the `rivetr token` command, and never logs a token.

pub mod admin;
pub mod client;
pub mod initial;
pub mod live;
pub mod ratelimit;

use sha2::{Digest, Sha256};

use crate::db::tokens::{Refused, TokenRow};
use crate::db::{Db, DbError};
use crate::secrets::{SecretString, SecretsError};

pub use client::client_ip;
pub use initial::{INITIAL_TOKEN_FILE, ensure_initial_token};
pub use live::LiveTokens;
pub use ratelimit::{FailureLimiter, Reservation, Scope};

/// Every token starts with this, so it is recognisable in a leaked file or a secret scanner.
pub const TOKEN_PREFIX: &str = "rvt_";
const TOKEN_RANDOM_BYTES: usize = 32;
/// Longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A new random token.
pub fn generate() -> Result<SecretString, SecretsError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
    crate::secrets::random_bytes(&mut *bytes)?;
    Ok(SecretString::new(format!(
        "{TOKEN_PREFIX}{}",
        hex::encode(*bytes)
    )))
}

/// True when `token` has the shape of a Rivetr token; anything else is refused without a
/// database lookup.
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * TOKEN_RANDOM_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What the database stores for a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Checks a token name: the message names what is wrong.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if name != name.trim() {
        return Err("must not start or end with spaces".to_owned());
    }
    Ok(())
}

/// A token just created: its row, and the token itself, which exists nowhere else.
#[derive(Debug)]
pub struct CreatedToken {
    pub row: TokenRow,
    pub token: SecretString,
}

/// Creates a token named `name` (already validated). `Err(Refused::NameTaken)` inside when a
/// live token has that name.
pub async fn create(db: &Db, name: &str) -> Result<Result<CreatedToken, Refused>, AuthError> {
    let token = generate().map_err(|e| AuthError::Random(e.to_string()))?;
    let digest = hash(token.expose());
    let name = name.to_owned();
    let inserted = db
        .call(move |c| crate::db::tokens::insert(c, &name, &digest))
        .await?;
    Ok(inserted.map(|row| CreatedToken { row, token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(well_formed(a.expose()), "{}", a.expose());
        assert_eq!(a.expose().len(), 4 + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        let good = format!("rvt_{}", "a1".repeat(32));
        assert!(well_formed(&good));
        for bad in [
            String::new(),
            "rvt_".to_owned(),
            format!("rvt_{}", "a1".repeat(31)),
            format!("rvt_{}", "A1".repeat(32)),
            format!("xyz_{}", "a1".repeat(32)),
            format!("rvt_{}g", "a1".repeat(31)),
            format!("{good} "),
        ] {
            assert!(!well_formed(&bad), "{bad:?}");
        }
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hex::encode(hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("ci deploys").is_ok());
        assert!(validate_name(&"x".repeat(64)).is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name(" padded").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_name("bell\u{7}").is_err());
    }
}

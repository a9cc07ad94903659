//! SSH deploy keys: a new ed25519 key pair in OpenSSH's own formats, and the fingerprints
//! people compare with what their forge shows.
//!
//! The private key is made from 32 bytes of the operating system's randomness (the same
//! source as every other secret here) and encoded as an unencrypted OpenSSH private key file,
//! which is what `ssh -i` reads; Rivetr encrypts that text at rest itself. The public key is one
//! `ssh-ed25519 AAAA... comment` line, ready to paste into GitHub, GitLab or Gitea.

use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::{SecretString, SecretsError, random_bytes};

/// A freshly made key pair.
#[derive(Debug)]
pub struct NewDeployKey {
    /// `ssh-ed25519 AAAA... comment`.
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` and the forges print it.
    pub fingerprint: String,
    /// The OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub private_key: SecretString,
}

/// Makes a new ed25519 key pair whose public key carries `comment`.
pub fn generate(comment: &str) -> Result<NewDeployKey, SecretsError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    random_bytes(&mut *seed)?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    let private = PrivateKey::new(KeypairData::from(keypair), comment)
        .map_err(|e| SecretsError::SshKey(e.to_string()))?;
    let encoded = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| SecretsError::SshKey(e.to_string()))?;
    let public = private.public_key();
    Ok(NewDeployKey {
        public_key: public
            .to_openssh()
            .map_err(|e| SecretsError::SshKey(e.to_string()))?,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        private_key: SecretString::new(encoded.as_str().to_owned()),
    })
}

/// The `SHA256:...` fingerprint of a public key given as an OpenSSH line, or `None` when the
/// line is not one.
pub fn fingerprint(public_key: &str) -> Option<String> {
    PublicKey::from_openssh(public_key.trim())
        .ok()
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ed25519_in_openssh_format_and_differ() {
        let a = generate("rivetr deploy key for web").unwrap();
        let b = generate("rivetr deploy key for web").unwrap();
        assert!(a.public_key.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
        assert!(a.public_key.ends_with(" rivetr deploy key for web"));
        assert!(
            a.private_key
                .expose()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert_ne!(a.public_key, b.public_key);
        assert_eq!(fingerprint(&a.public_key).unwrap(), a.fingerprint);
        assert!(a.fingerprint.starts_with("SHA256:"));
        assert_eq!(fingerprint("not a key"), None);
    }

    /// OpenSSH itself reads the private key and derives the same public key and fingerprint.
    #[test]
    fn openssh_reads_the_private_key() {
        use std::os::unix::fs::OpenOptionsExt;
        let key = generate("check").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, key.private_key.expose().as_bytes()).unwrap();
        drop(f);
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen (openssh-client) is installed");
        assert!(out.status.success(), "{out:?}");
        let derived = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            derived.split_whitespace().take(2).collect::<Vec<_>>(),
            key.public_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
        );
        let out = std::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&key.fingerprint),
            "{out:?}"
        );
    }
}

//! Backups encrypted with a key the user provides (`[databases] backup_key_file`), so a
//! bucket or a disk that leaks gives away nothing of the data.
//!
//! The compressed dump is cut into 64 KiB chunks sealed with XChaCha20-Poly1305 in the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway and Vizár; the RustCrypto `aead-stream` crate):
//! each chunk's nonce is a random prefix plus its position and a "last chunk" flag, so chunks
//! cannot be reordered, dropped or cut off at the end without decryption failing. A file is
//!
//! ```text
//! "RIVETRE1" | key fingerprint (16 bytes) | nonce prefix (19 bytes) | chunk... | last chunk
//! ```
//!
//! where each chunk is up to 64 KiB of ciphertext and its 16-byte tag, and the 43-byte header
//! is the associated data of every chunk. The fingerprint (an HMAC of a fixed label under the
//! key) names the key a file needs without revealing it, so a restore with the wrong key says
//! which one it wants. The SHA-256 Rivetr records is of the encrypted file: a backup is
//! checked for damage without the key.
//!
//! The key file holds 32 raw bytes or 64 hex digits (`openssl rand -hex 32`), the format of
//! Rivetr's own secret key; it is a different key, kept apart from the state directory so a
//! copy of the backups plus the state never holds both.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aead_stream::{DecryptorBE32, EncryptorBE32, Nonce, StreamBE32};
use bytes::Bytes;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{Key, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::secrets::SecretKey;

/// The first bytes of an encrypted backup; the digit is the format's version.
const MAGIC: &[u8; 8] = b"RIVETRE1";
const FINGERPRINT_LEN: usize = 16;
const NONCE_PREFIX_LEN: usize = 19;
const HEADER_LEN: usize = MAGIC.len() + FINGERPRINT_LEN + NONCE_PREFIX_LEN;
/// Plaintext per chunk: large enough that the 16-byte tags cost nothing, small enough that
/// one chunk is all a backup holds in memory.
const CHUNK: usize = 64 * 1024;
const TAG_LEN: usize = 16;
/// The HMAC label of the fingerprint; changing it would make every stored fingerprint name
/// another key.
const FINGERPRINT_LABEL: &[u8] = b"rivetr backup key fingerprint v1";

type Stream = StreamBE32<XChaCha20Poly1305>;

/// What went wrong with the backup key or an encrypted backup.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("backup_key_file {path}: {source}")]
    KeyRead { path: PathBuf, source: io::Error },
    #[error(
        "backup_key_file {path}: expected 32 raw bytes or 64 hex digits (`openssl rand -hex 32`), found {len} bytes"
    )]
    KeyFormat { path: PathBuf, len: usize },
}

/// The key backups are encrypted with, and its fingerprint. `Debug` shows only the latter.
pub struct BackupKey {
    key: SecretKey,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey({})", self.fingerprint())
    }
}

impl BackupKey {
    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> Result<BackupKey, CryptError> {
        let bytes =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| CryptError::KeyRead {
                path: path.to_owned(),
                source,
            })?);
        let key = crate::secrets::key::parse(&bytes).ok_or_else(|| CryptError::KeyFormat {
            path: path.to_owned(),
            len: bytes.len(),
        })?;
        Ok(BackupKey::new(key))
    }

    pub fn new(key: SecretKey) -> BackupKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
            .expect("HMAC takes a key of any length");
        mac.update(FINGERPRINT_LABEL);
        let digest = mac.finalize().into_bytes();
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        BackupKey { key, fingerprint }
    }

    /// The fingerprint in hex, as backups record it.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.fingerprint)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.key.bytes()))
    }
}

/// The fingerprint of the key an encrypted backup needs, from its first bytes; `None` when
/// they are not an encrypted backup's header.
pub fn fingerprint_of(header: &[u8]) -> Option<String> {
    let rest = header.strip_prefix(MAGIC.as_slice())?;
    rest.get(..FINGERPRINT_LEN).map(hex::encode)
}

/// A writer that encrypts what it is given into `inner`. The last chunk is sealed, and
/// everything reaches `inner`, only on shutdown: a file never shut down does not decrypt.
pub struct Encrypting<W> {
    inner: W,
    /// `None` once the last chunk is sealed.
    cipher: Option<EncryptorBE32<XChaCha20Poly1305>>,
    header: [u8; HEADER_LEN],
    /// Plaintext of the chunk being filled.
    plain: Vec<u8>,
    /// Bytes sealed and not yet written to `inner`, from `written` on.
    sealed: Vec<u8>,
    written: usize,
}

impl<W> Encrypting<W> {
    pub fn new(inner: W, key: &BackupKey) -> io::Result<Encrypting<W>> {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        crate::secrets::random_bytes(&mut prefix).map_err(io::Error::other)?;
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()..MAGIC.len() + FINGERPRINT_LEN].copy_from_slice(&key.fingerprint);
        header[MAGIC.len() + FINGERPRINT_LEN..].copy_from_slice(&prefix);
        let nonce = Nonce::<XChaCha20Poly1305, Stream>::from(prefix);
        let mut sealed = Vec::with_capacity(CHUNK + TAG_LEN);
        sealed.extend_from_slice(&header);
        Ok(Encrypting {
            inner,
            cipher: Some(EncryptorBE32::from_aead(key.cipher(), &nonce)),
            header,
            plain: Vec::with_capacity(CHUNK + TAG_LEN),
            sealed,
            written: 0,
        })
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Seals the chunk being filled; `last` ends the stream.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        debug_assert!(self.written == self.sealed.len());
        std::mem::swap(&mut self.plain, &mut self.sealed);
        self.plain.clear();
        self.written = 0;
        let sealing = if last {
            self.cipher
                .take()
                .map(|c| c.encrypt_last_in_place(&self.header, &mut self.sealed))
        } else {
            self.cipher
                .as_mut()
                .map(|c| c.encrypt_next_in_place(&self.header, &mut self.sealed))
        };
        match sealing {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(io::Error::other(
                "backup too large to encrypt in one stream",
            )),
            None => Err(io::Error::other("write to a finished encrypted backup")),
        }
    }
}

impl<W: AsyncWrite + Unpin> Encrypting<W> {
    /// Writes out what is sealed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.sealed.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.sealed[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Encrypting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            ready!(this.poll_drain(cx))?;
            if this.plain.len() < CHUNK {
                let n = buf.len().min(CHUNK - this.plain.len());
                this.plain.extend_from_slice(&buf[..n]);
                return Poll::Ready(Ok(n));
            }
            // A full chunk is sealed only when more follows: the stream's last chunk must be
            // flagged as such, and only shutdown knows which one that is.
            this.seal(false)?;
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        if this.cipher.is_some() {
            this.seal(true)?;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The plaintext of the encrypted backup `reader` gives, as it is read. A wrong key, a
/// changed byte or a file cut short is an `InvalidData` error saying which.
pub fn decrypting<R>(key: &BackupKey, reader: R) -> impl AsyncRead + Send + Unpin + use<R>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let state = Decrypting {
        reader,
        cipher: key.cipher(),
        fingerprint: key.fingerprint,
        started: None,
        buf: Vec::with_capacity(CHUNK + TAG_LEN + 1),
    };
    let chunks = futures_util::stream::try_unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Ok::<_, io::Error>(chunk.map(|c| (c, state)))
    });
    tokio_util::io::StreamReader::new(Box::pin(chunks))
}

struct Decrypting<R> {
    reader: R,
    cipher: XChaCha20Poly1305,
    fingerprint: [u8; FINGERPRINT_LEN],
    /// The header once read, and the stream until its last chunk was opened.
    started: Option<([u8; HEADER_LEN], Option<DecryptorBE32<XChaCha20Poly1305>>)>,
    buf: Vec<u8>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: AsyncRead + Unpin> Decrypting<R> {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.started.is_none() {
            self.start().await?;
        }
        let Some((header, cipher)) = self.started.as_mut() else {
            unreachable!("started above");
        };
        let Some(decryptor) = cipher.as_mut() else {
            return Ok(None);
        };
        // One byte beyond a full chunk tells whether this chunk is the last.
        let full = CHUNK + TAG_LEN;
        let more = fill(&mut self.reader, &mut self.buf, full + 1).await? > full;
        let rest = if more {
            self.buf.split_off(full)
        } else {
            Vec::with_capacity(full + 1)
        };
        let mut chunk = std::mem::replace(&mut self.buf, rest);
        let opened = if more {
            decryptor.decrypt_next_in_place(header, &mut chunk)
        } else {
            let last = cipher.take().expect("checked above");
            last.decrypt_last_in_place(header, &mut chunk)
        };
        opened.map_err(|_| {
            invalid(
                "the encrypted backup does not authenticate: it was changed or cut short after \
                 it was written"
                    .to_owned(),
            )
        })?;
        Ok(Some(Bytes::from(chunk)))
    }

    async fn start(&mut self) -> io::Result<()> {
        let mut header = [0u8; HEADER_LEN];
        let n = fill(&mut self.reader, &mut self.buf, HEADER_LEN).await?;
        if n < HEADER_LEN || !self.buf.starts_with(MAGIC) {
            return Err(invalid(
                "not an encrypted Rivetr backup (it does not start with RIVETRE1)".to_owned(),
            ));
        }
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        self.buf.drain(..HEADER_LEN);
        let wanted = &header[MAGIC.len()..MAGIC.len() + FINGERPRINT_LEN];
        if wanted != self.fingerprint {
            return Err(invalid(format!(
                "this backup was encrypted with the key of fingerprint {}, not with this key \
                 (fingerprint {})",
                hex::encode(wanted),
                hex::encode(self.fingerprint)
            )));
        }
        let nonce =
            Nonce::<XChaCha20Poly1305, Stream>::try_from(&header[MAGIC.len() + FINGERPRINT_LEN..])
                .expect("the header's nonce prefix has the stream's length");
        let decryptor = DecryptorBE32::from_aead(self.cipher.clone(), &nonce);
        self.started = Some((header, Some(decryptor)));
        Ok(())
    }
}

/// Decrypts the backup `file` with the key in `key_file` into `output` (`-`: standard
/// output). A file output is written under a `.partial` name and renamed once it all
/// decrypted, so a wrong key or a damaged file leaves nothing that looks whole. Gives the
/// bytes written.
pub async fn decrypt_file(file: &Path, key_file: &Path, output: &Path) -> Result<u64, String> {
    let key = BackupKey::load(key_file).map_err(|e| e.to_string())?;
    let input = tokio::fs::File::open(file)
        .await
        .map_err(|e| e.to_string())?;
    let mut plain = decrypting(&key, input);
    if output == Path::new("-") {
        let mut stdout = tokio::io::stdout();
        let n = tokio::io::copy(&mut plain, &mut stdout)
            .await
            .map_err(|e| e.to_string())?;
        stdout.flush().await.map_err(|e| e.to_string())?;
        return Ok(n);
    }
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = async {
        let mut out = tokio::fs::File::create(&partial).await?;
        let n = tokio::io::copy(&mut plain, &mut out).await?;
        out.sync_all().await?;
        tokio::fs::rename(&partial, output).await?;
        Ok::<_, io::Error>(n)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written.map_err(|e| format!("{}: {e}", output.display()))
}

/// Reads into `buf` until it holds `want` bytes or the reader ends; gives its length.
async fn fill(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    want: usize,
) -> io::Result<usize> {
    while buf.len() < want {
        let start = buf.len();
        buf.resize(want, 0);
        let n = reader.read(&mut buf[start..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            break;
        }
    }
    Ok(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> BackupKey {
        BackupKey::new(SecretKey::from_bytes([byte; 32]))
    }

    async fn encrypt(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut writer = Encrypting::new(Vec::new(), key).unwrap();
        // Odd write sizes, so chunk edges fall inside writes.
        for piece in plain.chunks(7_001) {
            writer.write_all(piece).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        writer.into_inner()
    }

    async fn decrypt(key: &BackupKey, sealed: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decrypting(key, std::io::Cursor::new(sealed))
            .read_to_end(&mut out)
            .await?;
        Ok(out)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn every_length_around_chunk_edges_comes_back_byte_for_byte() {
        let k = key(1);
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain = data(len);
            let sealed = encrypt(&k, &plain).await;
            assert_eq!(
                sealed.len(),
                HEADER_LEN + len + TAG_LEN * len.div_ceil(CHUNK).max(1)
            );
            assert_eq!(fingerprint_of(&sealed), Some(k.fingerprint()));
            assert_eq!(decrypt(&k, sealed).await.unwrap(), plain, "length {len}");
        }
    }

    #[tokio::test]
    async fn a_file_cut_at_a_chunk_edge_or_changed_or_read_with_another_key_fails() {
        let k = key(1);
        let sealed = encrypt(&k, &data(3 * CHUNK + 5)).await;
        let cut = sealed[..HEADER_LEN + 2 * (CHUNK + TAG_LEN)].to_vec();
        let err = decrypt(&k, cut).await.unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");
        let mut changed = sealed.clone();
        changed[HEADER_LEN + 10] ^= 1;
        assert!(decrypt(&k, changed).await.is_err());
        let err = decrypt(&key(2), sealed).await.unwrap_err().to_string();
        assert!(
            err.contains(&k.fingerprint()) && err.contains(&key(2).fingerprint()),
            "{err}"
        );
        let err = decrypt(&k, b"\x1f\x8b plain gzip".to_vec())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an encrypted Rivetr backup"), "{err}");
    }

    #[tokio::test]
    async fn two_backups_of_the_same_data_differ_and_the_key_never_prints() {
        let k = key(9);
        assert_ne!(encrypt(&k, b"same").await, encrypt(&k, b"same").await);
        assert_eq!(format!("{k:?}"), format!("BackupKey({})", k.fingerprint()));
        assert_eq!(k.fingerprint().len(), 32);
    }
}

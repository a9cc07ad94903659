//! A backup's bytes: the dump tool's output compressed (gzip), encrypted when a backup key is
//! set (`crypt.rs`), and hashed (SHA-256 of the stored bytes) as it streams by, into any writer ([`compress`]) or a local file written
//! under a `.partial` name and renamed only once complete and on disk ([`write`]), so no
//! reader ever sees half a backup under a good name; read back, checked ([`verify`]),
//! decrypted and decompressed ([`open_dump`]). Nothing here holds more than a buffer of the dump in memory.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::GzipDecoder;
use async_compression::tokio::write::GzipEncoder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::either::Either;

use super::crypt::{self, BackupKey, Encrypting};

use crate::runtime::{ExecOutputStream, LogSource, RuntimeError};

/// How much of the dump tool's standard error is kept for the failure's reason.
const STDERR_KEPT: usize = 4096;

/// What went wrong writing or reading a backup file.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("reading the dump from the engine: {0}")]
    Runtime(#[from] RuntimeError),
    #[error(
        "{path} does not match its recorded SHA-256 (recorded {expected}, found {found}): it was changed or damaged after the backup"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// A complete backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub sha256: String,
    /// The end of what the dump tool wrote to its standard error.
    pub stderr: String,
}

/// The name a backup has while it is written.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes the standard output of a dump to `path`, compressed, and encrypted with `key` if
/// there is one. On error the partial file is removed and nothing is left under `path`.
pub async fn write(
    output: &mut ExecOutputStream,
    path: &Path,
    key: Option<&BackupKey>,
) -> Result<Written, ArchiveError> {
    let partial = partial_path(path);
    let result = write_partial(output, &partial, key).await;
    match result {
        Ok(written) => {
            let io = |source| ArchiveError::Io {
                path: path.to_owned(),
                source,
            };
            tokio::fs::rename(&partial, path).await.map_err(io)?;
            if let Some(dir) = path.parent() {
                // The rename itself reaches the disk with the directory's sync.
                tokio::fs::File::open(dir)
                    .await
                    .map_err(io)?
                    .sync_all()
                    .await
                    .map_err(io)?;
            }
            Ok(written)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

async fn write_partial(
    output: &mut ExecOutputStream,
    partial: &Path,
    key: Option<&BackupKey>,
) -> Result<Written, ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: partial.to_owned(),
        source,
    };
    if let Some(dir) = partial.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(partial)
        .await
        .map_err(io)?;
    let (file, written) = compress(output, file, partial, key).await?;
    file.sync_all().await.map_err(io)?;
    Ok(written)
}

/// Compresses the standard output of a dump into `sink`, encrypting it with `key` if there
/// is one and hashing what it writes, and shuts the sink down; gives it back with what was
/// written. `what` names the sink in errors.
pub async fn compress<W: AsyncWrite + Unpin>(
    output: &mut ExecOutputStream,
    sink: W,
    what: &Path,
    key: Option<&BackupKey>,
) -> Result<(W, Written), ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: what.to_owned(),
        source,
    };
    let hashing = Hashing::new(sink);
    let stored = match key {
        Some(key) => Either::Left(Encrypting::new(hashing, key).map_err(io)?),
        None => Either::Right(hashing),
    };
    let mut encoder = GzipEncoder::new(stored);
    let mut stderr = Vec::new();
    while let Some(frame) = output.next().await {
        let (source, bytes) = frame?;
        match source {
            LogSource::Stdout => encoder.write_all(&bytes).await.map_err(io)?,
            LogSource::Stderr => keep_tail(&mut stderr, &bytes),
        }
    }
    encoder.shutdown().await.map_err(io)?;
    let hashing = match encoder.into_inner() {
        Either::Left(encrypting) => encrypting.into_inner(),
        Either::Right(hashing) => hashing,
    };
    let written = Written {
        size: hashing.size,
        sha256: hex::encode(hashing.hasher.finalize()),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    Ok((hashing.inner, written))
}

fn keep_tail(kept: &mut Vec<u8>, more: &[u8]) {
    kept.extend_from_slice(more);
    if kept.len() > STDERR_KEPT {
        kept.drain(..kept.len() - STDERR_KEPT);
    }
}

/// Checks that what `reader` gives has the SHA-256 `expected`, reading it through once.
/// `what` names it in errors.
pub async fn verify(
    reader: &mut (impl AsyncRead + Unpin),
    expected: &str,
    what: &Path,
) -> Result<(), ArchiveError> {
    copy_verified(reader, &mut tokio::io::sink(), expected, what).await
}

/// Copies `reader` into `writer`, then checks that what passed has the SHA-256 `expected`.
/// `what` names the reader in errors.
pub async fn copy_verified(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    expected: &str,
    what: &Path,
) -> Result<(), ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: what.to_owned(),
        source,
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n]).await.map_err(io)?;
    }
    writer.flush().await.map_err(io)?;
    let found = hex::encode(hasher.finalize());
    if !found.eq_ignore_ascii_case(expected) {
        return Err(ArchiveError::Checksum {
            path: what.to_owned(),
            expected: expected.to_owned(),
            found,
        });
    }
    Ok(())
}

/// The dump a backup holds, decrypted with `key` if it was encrypted and decompressed, as
/// `stored` is read.
pub fn open_dump<R>(stored: R, key: Option<&BackupKey>) -> impl AsyncRead + Unpin + Send + use<R>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let compressed = match key {
        Some(key) => Either::Left(crypt::decrypting(key, stored)),
        None => Either::Right(stored),
    };
    let mut decoder = GzipDecoder::new(BufReader::with_capacity(64 * 1024, compressed));
    // One gzip member per file is what Rivetr writes; a file concatenated from several
    // (`cat a.gz b.gz`) is still read whole.
    decoder.multiple_members(true);
    decoder
}

/// A writer that counts and hashes what passes through it to `inner`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.hasher.update(&buf[..n]);
            this.size += n as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stream(frames: Vec<(LogSource, &'static [u8])>) -> ExecOutputStream {
        futures_util::stream::iter(
            frames
                .into_iter()
                .map(|(s, b)| Ok((s, Bytes::from_static(b)))),
        )
        .boxed()
    }

    #[tokio::test]
    async fn a_dump_comes_back_byte_for_byte_and_its_hash_is_of_the_stored_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db/one.sql.gz");
        let mut out = stream(vec![
            (LogSource::Stdout, b"CREATE TABLE t (x int);\n"),
            (LogSource::Stderr, b"a warning\n"),
            (LogSource::Stdout, b"INSERT INTO t VALUES (1);\n"),
        ]);
        let written = write(&mut out, &path, None).await.unwrap();
        assert_eq!(written.stderr, "a warning\n");
        assert!(!partial_path(&path).exists());
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(written.size, stored.len() as u64);
        assert_eq!(written.sha256, hex::encode(Sha256::digest(&stored)));
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        verify(&mut file, &written.sha256, &path).await.unwrap();
        let mut dump = String::new();
        open_dump(tokio::fs::File::open(&path).await.unwrap(), None)
            .read_to_string(&mut dump)
            .await
            .unwrap();
        assert_eq!(dump, "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n");
    }

    #[tokio::test]
    async fn a_changed_file_fails_verification_naming_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        let written = write(&mut stream(vec![(LogSource::Stdout, b"data")]), &path, None)
            .await
            .unwrap();
        std::fs::write(&path, b"tampered").unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        let err = verify(&mut file, &written.sha256, &path)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&written.sha256) && err.contains("damaged"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stream_that_breaks_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        let mut out = futures_util::stream::iter(vec![
            Ok((LogSource::Stdout, Bytes::from_static(b"partial"))),
            Err(RuntimeError::Protocol("connection reset".into())),
        ])
        .boxed();
        assert!(write(&mut out, &path, None).await.is_err());
        assert!(!path.exists() && !partial_path(&path).exists());
    }
}

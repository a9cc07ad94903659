//! Where backup files live: a local directory or an S3 bucket. Either way a backup appears
//! under its name only once it is complete: a local file is renamed from `.partial`, and an
//! S3 object exists only once its upload (single or multipart) is completed, which happens
//! only after the dump ended well.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::oneshot;

use super::archive::{self, ArchiveError, Written};
use super::crypt::BackupKey;
use super::s3::{PART_SIZE, S3, S3Error};
use crate::runtime::ExecOutputStream;

/// A destination's storage.
#[derive(Clone)]
pub enum Store {
    /// Files under this directory, one folder per database.
    Local(PathBuf),
    S3(S3),
}

/// A stored backup's bytes as they are read.
pub type StoredReader = Box<dyn AsyncRead + Send + Unpin>;

/// What went wrong with the storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    S3(#[from] S3Error),
}

impl Store {
    /// Where the backup `file_name` of `database` goes: a path, or an object key.
    pub fn location(&self, database: &str, file_name: &str) -> String {
        match self {
            Store::Local(dir) => dir
                .join(database)
                .join(file_name)
                .to_string_lossy()
                .into_owned(),
            Store::S3(s3) => s3.key(&format!("{database}/{file_name}")),
        }
    }

    /// Compresses the dump into `location`, encrypted with `key` if there is one.
    pub async fn write(
        &self,
        location: &str,
        output: &mut ExecOutputStream,
        key: Option<&BackupKey>,
    ) -> Result<Written, StoreError> {
        match self {
            Store::Local(_) => Ok(archive::write(output, Path::new(location), key).await?),
            Store::S3(s3) => upload(s3, location, output, key).await,
        }
    }

    pub async fn open(&self, location: &str) -> Result<StoredReader, StoreError> {
        match self {
            Store::Local(_) => {
                let file =
                    tokio::fs::File::open(location)
                        .await
                        .map_err(|source| ArchiveError::Io {
                            path: location.into(),
                            source,
                        })?;
                Ok(Box::new(file))
            }
            Store::S3(s3) => Ok(Box::new(s3.get_object(location).await?)),
        }
    }

    /// The backup at `location`, once its SHA-256 is checked to be `sha256`: nothing is fed
    /// to a restore before the whole file is known to be intact. A local file is read twice;
    /// an S3 object is downloaded once, into an unnamed file in `spool` (removed from the
    /// directory as soon as it is open, so nothing is left behind whatever happens).
    pub async fn open_verified(
        &self,
        location: &str,
        sha256: &str,
        spool: &Path,
    ) -> Result<StoredReader, StoreError> {
        let what = Path::new(location);
        match self {
            Store::Local(_) => {
                archive::verify(&mut self.open(location).await?, sha256, what).await?;
                self.open(location).await
            }
            Store::S3(s3) => {
                let io = |source| ArchiveError::Io {
                    path: spool.to_owned(),
                    source,
                };
                tokio::fs::create_dir_all(spool).await.map_err(io)?;
                let mut copy = unnamed_file(spool).await.map_err(io)?;
                let mut object = s3.get_object(location).await?;
                archive::copy_verified(&mut object, &mut copy, sha256, what).await?;
                copy.rewind().await.map_err(io)?;
                Ok(Box::new(copy))
            }
        }
    }

    /// Removes a stored backup; one already gone is not an error.
    pub async fn remove(&self, location: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(_) => match tokio::fs::remove_file(location).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ArchiveError::Io {
                    path: location.into(),
                    source: e,
                }
                .into()),
                _ => Ok(()),
            },
            Store::S3(s3) => Ok(s3.delete_object(location).await?),
        }
    }

    /// Removes what an interrupted backup left: a local `.partial` file, or the parts of an
    /// S3 multipart upload never completed (no object exists, but the bucket keeps the
    /// parts, and bills them, until the upload is aborted).
    pub async fn remove_leftovers(&self, location: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(_) => {
                let path = PathBuf::from(location);
                for leftover in [archive::partial_path(&path), path] {
                    let _ = tokio::fs::remove_file(&leftover).await;
                }
            }
            Store::S3(s3) => {
                for (key, upload) in s3.pending_uploads(location).await? {
                    if key == location {
                        s3.abort_multipart(&key, &upload).await?;
                        tracing::info!(key = %key, upload = %upload, "aborted the upload of an interrupted backup");
                    }
                }
            }
        }
        Ok(())
    }
}

/// A new file in `dir`, open for reading and writing, already removed from the directory.
async fn unnamed_file(dir: &Path) -> std::io::Result<tokio::fs::File> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".restore-{}-{n}.partial", std::process::id()));
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await?;
    tokio::fs::remove_file(&path).await?;
    Ok(file)
}

/// Streams the compressed dump to S3: one PUT when it fits in a part, else a multipart
/// upload of [`PART_SIZE`] parts, completed only when the dump ended well and aborted
/// otherwise. At most one part is held in memory.
async fn upload(
    s3: &S3,
    object: &str,
    output: &mut ExecOutputStream,
    key: Option<&BackupKey>,
) -> Result<Written, StoreError> {
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let (verdict, verdict_rx) = oneshot::channel::<bool>();
    let uploader = {
        let (s3, object) = (s3.clone(), object.to_owned());
        tokio::spawn(async move { send_parts(&s3, &object, reader, verdict_rx).await })
    };
    let compressed = archive::compress(output, writer, Path::new(object), key).await;
    match compressed {
        Ok((writer, written)) => {
            drop(writer);
            let _ = verdict.send(true);
            join(uploader).await?;
            Ok(written)
        }
        Err(e) => {
            let _ = verdict.send(false);
            // The uploader's error (a refused part) explains a broken pipe here better.
            match join(uploader).await {
                Err(upload_error) => Err(upload_error),
                Ok(()) => Err(e.into()),
            }
        }
    }
}

async fn join(task: tokio::task::JoinHandle<Result<(), S3Error>>) -> Result<(), StoreError> {
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => Err(S3Error::Protocol(format!("the upload task ended: {e}")).into()),
    }
}

/// Reads up to `PART_SIZE` bytes; fewer only at the end of the stream.
async fn fill(reader: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(PART_SIZE);
    while part.len() < PART_SIZE {
        let n = reader
            .take((PART_SIZE - part.len()) as u64)
            .read_buf(&mut part)
            .await?;
        if n == 0 {
            break;
        }
    }
    Ok(part)
}

async fn send_parts(
    s3: &S3,
    key: &str,
    mut reader: tokio::io::DuplexStream,
    verdict: oneshot::Receiver<bool>,
) -> Result<(), S3Error> {
    let read_error = |e: std::io::Error| S3Error::Protocol(format!("reading the dump: {e}"));
    let first = fill(&mut reader).await.map_err(read_error)?;
    if first.len() < PART_SIZE {
        // The whole backup fits in one part: a single PUT, only if the dump ended well.
        if verdict.await.unwrap_or(false) {
            s3.put_object(key, first.into()).await?;
        }
        return Ok(());
    }
    let upload = s3.create_multipart(key).await?;
    let sent = async {
        let mut etags = vec![s3.upload_part(key, &upload, 1, first.into()).await?];
        loop {
            let part = fill(&mut reader).await.map_err(read_error)?;
            if part.is_empty() {
                break;
            }
            let last = part.len() < PART_SIZE;
            let number = etags.len() as u32 + 1;
            etags.push(s3.upload_part(key, &upload, number, part.into()).await?);
            if last {
                break;
            }
        }
        Ok::<_, S3Error>(etags)
    }
    .await;
    let etags = match sent {
        Ok(etags) => etags,
        Err(e) => {
            drop(reader);
            let _ = s3.abort_multipart(key, &upload).await;
            return Err(e);
        }
    };
    if verdict.await.unwrap_or(false) {
        s3.complete_multipart(key, &upload, &etags).await
    } else {
        s3.abort_multipart(key, &upload).await
    }
}

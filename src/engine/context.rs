//! The build context as a tar stream: the checked-out directory (without `.git`), written by
//! a blocking thread and sent to the engine as it is produced, never held whole in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::runtime::BuildContext;

const CHUNK: usize = 64 * 1024;

/// Name given inside the context to a Dockerfile that lives outside it.
pub const OUTSIDE_DOCKERFILE: &str = ".rivetr.Dockerfile";

/// Streams `dir` as a tar. `extra_dockerfile` (a Dockerfile outside `dir`) is added as
/// [`OUTSIDE_DOCKERFILE`].
pub fn tar_stream(dir: PathBuf, extra_dockerfile: Option<PathBuf>) -> BuildContext {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_tar(&dir, extra_dockerfile.as_deref(), writer) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn write_tar(
    dir: &Path,
    extra_dockerfile: Option<&Path>,
    writer: ChunkWriter,
) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(writer);
    tar.follow_symlinks(false);
    add_dir(&mut tar, dir, Path::new(""))?;
    if let Some(df) = extra_dockerfile {
        tar.append_path_with_name(df, OUTSIDE_DOCKERFILE)?;
    }
    let mut writer = tar.into_inner()?;
    writer.flush()
}

fn add_dir(tar: &mut tar::Builder<ChunkWriter>, root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    // A stable order keeps the engine's build cache stable.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && name == ".git" {
            continue;
        }
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tar.append_dir(&path, entry.path())?;
            add_dir(tar, root, &path)?;
        } else {
            tar.append_path_with_name(entry.path(), &path)?;
        }
    }
    Ok(())
}

struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the build stopped reading its context"))
    }
}

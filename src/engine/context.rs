//! The build context: what of a checkout is sent to the engine, and the tar stream that
//! carries it (the directory without `.git`, written by a blocking thread and sent as it is
//! produced, never held whole in memory).
//!
//! The engine reads some files of the context by name on its own host, as root when Podman
//! or Docker runs rootful: the Dockerfile and the ignore files. [`prepare`] makes sure none
//! of them is a symlink (which the engine might follow to a host file) and reads the
//! Dockerfile itself. Any other symlink travels in the tar as a symlink, never as the
//! content of its target: the engines resolve it inside the context when a `COPY` uses it.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::repo_files::{self, Kind, RepoFileError};
use crate::runtime::BuildContext;

const CHUNK: usize = 64 * 1024;

/// Name given inside the context to a Dockerfile that lives outside it.
pub const OUTSIDE_DOCKERFILE: &str = ".rivetr.Dockerfile";

/// A Dockerfile larger than this is not one.
pub const MAX_DOCKERFILE: u64 = 1 << 20;

/// Files an engine opens by name in the context root.
const IGNORE_FILES: [&str; 2] = [".dockerignore", ".containerignore"];

/// What a build is made of, checked.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The context directory, inside the checkout.
    pub dir: PathBuf,
    /// The Dockerfile's path as the engine is to find it in the context.
    pub dockerfile: String,
    /// The Dockerfile's content when it lives outside the context (added as
    /// [`OUTSIDE_DOCKERFILE`]).
    pub outside_dockerfile: Option<Vec<u8>>,
}

/// Checks the context directory and the Dockerfile (both relative to the repository root)
/// and the ignore files: no symlinks, the right kinds, a Dockerfile of sane size. Blocks.
pub fn prepare(repo: &Path, context: &str, dockerfile: &str) -> Result<BuildInputs, String> {
    let named = |what: &str, e: RepoFileError| format!("{what}: {e}");
    let dir =
        repo_files::resolve(repo, context, Kind::Dir).map_err(|e| named("the build context", e))?;
    let content = repo_files::read_capped(repo, dockerfile, MAX_DOCKERFILE)
        .map_err(|e| named("the Dockerfile", e))?
        .ok_or_else(|| format!("no Dockerfile at {dockerfile} in the repository"))?;
    let context_rel = repo_files::normalize(context).map_err(|e| e.to_string())?;
    for name in IGNORE_FILES {
        let rel = context_rel.join(name);
        repo_files::check_optional_file(repo, &rel.to_string_lossy())
            .map_err(|e| named(name, e))?;
    }
    let dockerfile_rel = repo_files::normalize(dockerfile).map_err(|e| e.to_string())?;
    Ok(match dockerfile_rel.strip_prefix(&context_rel) {
        Ok(inside) => BuildInputs {
            dir,
            dockerfile: inside.to_string_lossy().into_owned(),
            outside_dockerfile: None,
        },
        Err(_) => BuildInputs {
            dir,
            dockerfile: OUTSIDE_DOCKERFILE.to_owned(),
            outside_dockerfile: Some(content),
        },
    })
}

/// Streams `dir` as a tar. `extra_dockerfile` (the content of a Dockerfile outside `dir`) is
/// added as [`OUTSIDE_DOCKERFILE`].
pub fn tar_stream(dir: PathBuf, extra_dockerfile: Option<Vec<u8>>) -> BuildContext {
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

fn write_tar<W: Write>(
    dir: &Path,
    extra_dockerfile: Option<&[u8]>,
    writer: W,
) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(writer);
    // A symlink is stored as a symlink, its target never read.
    tar.follow_symlinks(false);
    add_dir(&mut tar, dir, Path::new(""))?;
    if let Some(content) = extra_dockerfile {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, OUTSIDE_DOCKERFILE, content)?;
    }
    let mut writer = tar.into_inner()?;
    writer.flush()
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &Path) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn checkout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/www")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(dir.path().join("docker.build"), "FROM y\n").unwrap();
        std::fs::write(dir.path().join("app/www/index.html"), "hi\n").unwrap();
        dir
    }

    fn entries(
        dir: &Path,
        extra: Option<&[u8]>,
    ) -> Vec<(String, tar::EntryType, Vec<u8>, Option<String>)> {
        let mut raw = Vec::new();
        write_tar(dir, extra, &mut raw).unwrap();
        let mut archive = tar::Archive::new(&raw[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut content).unwrap();
                (path, kind, content, link)
            })
            .collect()
    }

    #[test]
    fn a_symlink_in_the_context_travels_as_a_link_and_its_target_is_never_read() {
        let dir = checkout();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host secret\n").unwrap();
        symlink(host.path().join("secret"), dir.path().join("app/www/leak")).unwrap();
        symlink("/dev/zero", dir.path().join("app/zero")).unwrap();
        let found = entries(&dir.path().join("app"), None);
        let leak = found.iter().find(|e| e.0 == "www/leak").unwrap();
        assert_eq!(leak.1, tar::EntryType::Symlink);
        assert!(leak.2.is_empty());
        assert_eq!(
            leak.3.as_deref(),
            Some(host.path().join("secret").to_str().unwrap())
        );
        let zero = found.iter().find(|e| e.0 == "zero").unwrap();
        assert_eq!((zero.1, zero.2.len()), (tar::EntryType::Symlink, 0));
        assert!(found.iter().all(|e| !e.2.windows(4).any(|w| w == b"host")));
    }

    #[test]
    fn git_is_left_out_and_an_outside_dockerfile_is_added_as_a_file() {
        let dir = checkout();
        let found = entries(dir.path(), Some(b"FROM y\n"));
        assert!(found.iter().all(|e| !e.0.starts_with(".git")), "{found:?}");
        let df = found.iter().find(|e| e.0 == OUTSIDE_DOCKERFILE).unwrap();
        assert_eq!(
            (df.1, df.2.as_slice()),
            (tar::EntryType::Regular, &b"FROM y\n"[..])
        );
    }

    #[test]
    fn prepare_finds_the_dockerfile_inside_or_outside_the_context() {
        let dir = checkout();
        let inside = prepare(dir.path(), "app", "app/Dockerfile").unwrap();
        assert_eq!(inside.dockerfile, "Dockerfile");
        assert!(inside.outside_dockerfile.is_none());
        let outside = prepare(dir.path(), "app", "docker.build").unwrap();
        assert_eq!(outside.dockerfile, OUTSIDE_DOCKERFILE);
        assert_eq!(
            outside.outside_dockerfile.as_deref(),
            Some(&b"FROM y\n"[..])
        );
        let e = prepare(dir.path(), "app", "nope").unwrap_err();
        assert!(e.contains("no Dockerfile at nope"), "{e}");
    }

    #[test]
    fn prepare_refuses_links_the_engine_would_follow() {
        let dir = checkout();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("Dockerfile"), "FROM z\n").unwrap();
        symlink(host.path().join("Dockerfile"), dir.path().join("Linked")).unwrap();
        let e = prepare(dir.path(), ".", "Linked").unwrap_err();
        assert!(e.contains("Dockerfile") && e.contains("symlink"), "{e}");
        symlink("Dockerfile", dir.path().join("app/Inner")).unwrap();
        let e = prepare(dir.path(), "app", "app/Inner").unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        symlink(
            host.path().join("Dockerfile"),
            dir.path().join("app/.dockerignore"),
        )
        .unwrap();
        let e = prepare(dir.path(), "app", "app/Dockerfile").unwrap_err();
        assert!(e.contains(".dockerignore") && e.contains("symlink"), "{e}");
        symlink("app", dir.path().join("ctx")).unwrap();
        let e = prepare(dir.path(), "ctx", "app/Dockerfile").unwrap_err();
        assert!(e.contains("build context") && e.contains("symlink"), "{e}");
    }
}

//! Opening files of a checked-out commit: `deploy.toml`, the Dockerfile, the build context
//! and the ignore files an engine reads from it.
//!
//! Whoever can push to a deployed branch controls these paths, so they are read as hostile:
//! no symlink is followed, anywhere in a path (a link to `/dev/zero` or to a host file must
//! never be opened, by Rivetr or by an engine that runs as root); only regular files and
//! directories are accepted; a file is read up to a cap; and `..` may not climb out of the
//! repository. Every function here blocks: callers run them on a blocking thread.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a path of the repository cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RepoFileError {
    #[error("`{0}` must be a path relative to the repository root, without `..` leaving it")]
    NotRelative(String),
    #[error(
        "`{0}` in the repository is a symlink; Rivetr follows no symlinks in a repository (give the path of the file itself)"
    )]
    Symlink(String),
    #[error("`{path}` in the repository is not a {expected}")]
    WrongKind {
        path: String,
        expected: &'static str,
    },
    #[error("`{path}` in the repository is larger than {}", crate::limits::human_bytes(*cap))]
    TooLarge { path: String, cap: u64 },
    #[error("`{0}` is not in the repository")]
    NotFound(String),
    #[error("cannot read `{path}` in the repository: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What a path must lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
        }
    }
}

/// `relative` without `.` and with each `..` applied, refused if it is absolute or climbs
/// out. The empty path is the repository root.
pub fn normalize(relative: &str) -> Result<PathBuf, RepoFileError> {
    let mut out = PathBuf::new();
    for c in Path::new(relative).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir if out.pop() => {}
            _ => return Err(RepoFileError::NotRelative(relative.to_owned())),
        }
    }
    Ok(out)
}

/// The path of `relative` inside `repo`, checked component by component without following
/// anything: each one must exist and be no symlink, the last must be of `kind`.
pub fn resolve(repo: &Path, relative: &str, kind: Kind) -> Result<PathBuf, RepoFileError> {
    let rel = normalize(relative)?;
    let mut current = repo.to_owned();
    let mut shown = PathBuf::new();
    // The repository root itself is Rivetr's work directory, never a path from the commit.
    let mut meta = std::fs::symlink_metadata(&current).map_err(|e| io_error(&shown, e))?;
    for part in rel.components() {
        if !meta.is_dir() {
            return Err(RepoFileError::WrongKind {
                path: display(&shown),
                expected: Kind::Dir.name(),
            });
        }
        current.push(part);
        shown.push(part);
        meta = std::fs::symlink_metadata(&current).map_err(|e| io_error(&shown, e))?;
        if meta.file_type().is_symlink() {
            return Err(RepoFileError::Symlink(display(&shown)));
        }
    }
    let matches = match kind {
        Kind::File => meta.file_type().is_file(),
        Kind::Dir => meta.file_type().is_dir(),
    };
    if !matches {
        return Err(RepoFileError::WrongKind {
            path: display(&shown),
            expected: kind.name(),
        });
    }
    Ok(current)
}

/// Reads the regular file at `relative`, at most `cap` bytes; `Ok(None)` when there is none.
pub fn read_capped(
    repo: &Path,
    relative: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, RepoFileError> {
    let path = match resolve(repo, relative, Kind::File) {
        Ok(p) => p,
        Err(RepoFileError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let shown = display(&normalize(relative)?);
    // The checks above looked at the path; the open itself refuses a symlink put there since
    // and does not wait on a FIFO, and what is read is what fstat describes.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => RepoFileError::Symlink(shown.clone()),
            _ => io_error(Path::new(&shown), e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| io_error(Path::new(&shown), e))?;
    if !meta.file_type().is_file() {
        return Err(RepoFileError::WrongKind {
            path: shown,
            expected: Kind::File.name(),
        });
    }
    if meta.len() > cap {
        return Err(RepoFileError::TooLarge { path: shown, cap });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(Path::new(&shown), e))?;
    if bytes.len() as u64 > cap {
        return Err(RepoFileError::TooLarge { path: shown, cap });
    }
    Ok(Some(bytes))
}

/// Checks that `relative`, if it exists, is a regular file reached without symlinks: for
/// files an engine opens by name on its own host (`.dockerignore`).
pub fn check_optional_file(repo: &Path, relative: &str) -> Result<(), RepoFileError> {
    match resolve(repo, relative, Kind::File) {
        Ok(_) | Err(RepoFileError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn display(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        p.display().to_string()
    }
}

fn io_error(shown: &Path, e: std::io::Error) -> RepoFileError {
    if e.kind() == std::io::ErrorKind::NotFound {
        RepoFileError::NotFound(display(shown))
    } else {
        RepoFileError::Io {
            path: display(shown),
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docker/sub")).unwrap();
        std::fs::write(dir.path().join("docker/Dockerfile"), "FROM x\n").unwrap();
        dir
    }

    #[test]
    fn plain_paths_resolve() {
        let r = repo();
        let p = resolve(r.path(), "docker/../docker/./Dockerfile", Kind::File).unwrap();
        assert_eq!(p, r.path().join("docker/Dockerfile"));
        assert_eq!(resolve(r.path(), ".", Kind::Dir).unwrap(), r.path());
        assert_eq!(
            read_capped(r.path(), "docker/Dockerfile", 100)
                .unwrap()
                .unwrap(),
            b"FROM x\n"
        );
        assert!(read_capped(r.path(), "nothing", 100).unwrap().is_none());
    }

    #[test]
    fn escapes_are_refused() {
        let r = repo();
        for bad in ["../x", "/etc/passwd", "docker/../../x"] {
            assert!(
                matches!(
                    resolve(r.path(), bad, Kind::File),
                    Err(RepoFileError::NotRelative(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_symlink_is_followed_anywhere_in_a_path() {
        let r = repo();
        symlink("/dev/zero", r.path().join("deploy.toml")).unwrap();
        symlink("docker", r.path().join("dlink")).unwrap();
        symlink("Dockerfile", r.path().join("docker/inner")).unwrap();
        let e = read_capped(r.path(), "deploy.toml", 1 << 16).unwrap_err();
        assert!(
            matches!(&e, RepoFileError::Symlink(p) if p == "deploy.toml"),
            "{e}"
        );
        let e = resolve(r.path(), "dlink/Dockerfile", Kind::File).unwrap_err();
        assert!(
            matches!(&e, RepoFileError::Symlink(p) if p == "dlink"),
            "{e}"
        );
        let e = resolve(r.path(), "docker/inner", Kind::File).unwrap_err();
        assert!(
            matches!(&e, RepoFileError::Symlink(p) if p == "docker/inner"),
            "{e}"
        );
        assert!(e.to_string().contains("symlink"), "{e}");
        // A link that is missing its target is still a link.
        symlink("/nonexistent", r.path().join(".dockerignore")).unwrap();
        assert!(check_optional_file(r.path(), ".dockerignore").is_err());
        assert!(check_optional_file(r.path(), ".containerignore").is_ok());
    }

    #[test]
    fn sizes_and_kinds_are_checked() {
        let r = repo();
        std::fs::write(r.path().join("big"), vec![b'#'; 2000]).unwrap();
        let e = read_capped(r.path(), "big", 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1 KiB"), "{e}");
        assert!(matches!(
            read_capped(r.path(), "docker", 1024),
            Err(RepoFileError::WrongKind { .. })
        ));
        assert!(matches!(
            resolve(r.path(), "docker/Dockerfile/x", Kind::File),
            Err(RepoFileError::WrongKind { .. })
        ));
    }
}

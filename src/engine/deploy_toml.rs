//! `deploy.toml`: per-repository settings read at each deploy, overriding the app's stored
//! settings for that deploy.
//!
//! ```toml
//! [build]
//! dockerfile = "docker/Dockerfile"   # relative to the repository root
//! context = "."                      # the build context, relative to the repository root
//! args = { NODE_ENV = "production" } # build arguments
//!
//! [deploy]
//! port = 8080                        # the port the app listens on inside the container
//! drain_seconds = 10                 # how long the old version keeps serving after the switch
//!
//! [deploy.healthcheck]
//! path = "/healthz"
//! interval_ms = 1000
//! timeout_ms = 2000
//! retries = 30
//!
//! [resources]
//! memory = "256M"                    # bytes, or with K, M, G
//! cpus = 0.5
//!
//! [env]                              # defaults; variables stored for the app win
//! LOG_FORMAT = "json"
//! ```
//!
//! Read strictly, like `rivetr.toml`: an unknown key, a wrong type or a path that leaves the
//! repository fails the deployment with the line and the key, and the running version keeps
//! serving.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;

pub const FILE_NAME: &str = "deploy.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployToml {
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub deploy: Deploy,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub dockerfile: Option<Spanned<String>>,
    pub context: Option<Spanned<String>>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub port: Option<u16>,
    pub drain_seconds: Option<u64>,
    pub healthcheck: Option<HealthcheckToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckToml {
    pub path: Option<String>,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub memory: Option<Spanned<MemorySize>>,
    pub cpus: Option<f64>,
}

/// A memory size: an integer of bytes, or a string such as `"256M"` or `"1G"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct MemorySize(pub u64);

impl TryFrom<toml::Value> for MemorySize {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        match value {
            toml::Value::Integer(n) if n > 0 => Ok(MemorySize(n as u64)),
            toml::Value::String(s) => parse_memory(&s).map(MemorySize),
            other => Err(format!(
                "expected bytes or a size such as \"256M\", found {}",
                other.type_str()
            )),
        }
    }
}

/// `"512K"`, `"256M"`, `"1G"`, `"1048576"` (binary multiples).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as \"256M\""))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use K, M or G)")),
    };
    n.checked_mul(factor)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("`{s}` is not a usable size"))
}

/// Reads `deploy.toml` from the repository root; `Ok(None)` when there is none.
pub fn read(repo: &Path) -> Result<Option<DeployToml>, ConfigError> {
    let path = repo.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let parsed: DeployToml = crate::config::parse_toml(FILE_NAME, &text)?;
    let at = |spanned_start: usize| text[..spanned_start.min(text.len())].matches('\n').count() + 1;
    for (key, value) in [
        ("build.dockerfile", &parsed.build.dockerfile),
        ("build.context", &parsed.build.context),
    ] {
        if let Some(v) = value {
            inside_repo(repo, v.get_ref()).map_err(|message| ConfigError::File {
                file: FILE_NAME.to_owned(),
                line: at(v.span().start),
                key: key.to_owned(),
                message,
            })?;
        }
    }
    if let Some(cpus) = parsed.resources.cpus
        && !(cpus > 0.0 && cpus.is_finite())
    {
        return Err(ConfigError::File {
            file: FILE_NAME.to_owned(),
            line: text
                .lines()
                .position(|l| l.trim_start().starts_with("cpus"))
                .map_or(1, |i| i + 1),
            key: "resources.cpus".to_owned(),
            message: format!("{cpus} is not a positive number of CPUs"),
        });
    }
    Ok(Some(parsed))
}

/// Resolves `relative` inside `repo`, refusing absolute paths, `..` that climbs out, and
/// symlinks that point outside.
pub fn inside_repo(repo: &Path, relative: &str) -> Result<PathBuf, String> {
    let rel = Path::new(relative);
    if rel.is_absolute() {
        return Err(format!(
            "`{relative}` must be relative to the repository root"
        ));
    }
    let mut depth: i32 = 0;
    for c in rel.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return Err(format!("`{relative}` is not a plain relative path")),
        }
        if depth < 0 {
            return Err(format!("`{relative}` leaves the repository"));
        }
    }
    let joined = repo.join(rel);
    if let (Ok(real), Ok(root)) = (joined.canonicalize(), repo.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(format!(
            "`{relative}` leads outside the repository (through a symlink)"
        ));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        dir
    }

    #[test]
    fn a_full_file_parses() {
        let dir = repo_with(
            "[build]\ndockerfile = \"Dockerfile\"\nargs = { A = \"1\" }\n[deploy]\nport = 9000\ndrain_seconds = 0\n[deploy.healthcheck]\npath = \"/h\"\nretries = 3\n[resources]\nmemory = \"64M\"\ncpus = 0.5\n[env]\nX = \"y\"\n",
        );
        let t = read(dir.path()).unwrap().unwrap();
        assert_eq!(t.deploy.port, Some(9000));
        assert_eq!(
            t.resources.memory.unwrap().into_inner(),
            MemorySize(64 << 20)
        );
        assert_eq!(t.build.args["A"], "1");
        assert_eq!(t.env["X"], "y");
    }

    #[test]
    fn no_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let dir = repo_with("[deploy]\nport = 80\n\n[build]\ndockerfle = \"x\"\n");
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("deploy.toml:5"), "{e}");
        assert!(e.contains("build.dockerfle"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_memory_are_refused() {
        let e = read(repo_with("[deploy]\nport = \"eighty\"\n").path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("deploy.port") && e.contains(":2"), "{e}");
        let e = read(repo_with("[resources]\nmemory = \"lots\"\n").path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("resources.memory"), "{e}");
    }

    #[test]
    fn paths_escaping_the_repo_are_refused() {
        for bad in ["../Dockerfile", "/etc/passwd", "a/../../b"] {
            let dir = repo_with(&format!("[build]\n\ndockerfile = \"{bad}\"\n"));
            let e = read(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("deploy.toml:3") && e.contains("build.dockerfile"),
                "{bad}: {e}"
            );
        }
        let dir = repo_with("[build]\ncontext = \"link\"\n");
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("build.context") && e.contains("symlink"), "{e}");
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512k").unwrap(), 512 << 10);
        assert_eq!(parse_memory("1000").unwrap(), 1000);
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("5T").is_err());
    }
}

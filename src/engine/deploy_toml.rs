//! `deploy.toml`: per-repository settings read at each deploy, overriding the app's stored
//! settings for that deploy.
//!
//! ```toml
//! [build]
//! dockerfile = "docker/Dockerfile"   # relative to the repository root
//! context = "."                      # the build context, relative to the repository root
//! args = { NODE_ENV = "production" } # build arguments
//! memory = "1G"                      # limits of this app's builds, at most rivetr.toml's [build]
//! cpus = 1.0
//! timeout_seconds = 600
//!
//! [deploy]
//! port = 8080                        # the port the app listens on inside the container
//! drain_seconds = 10                 # how long the old version keeps serving after the switch
//! replicas = 2                       # containers sharing the traffic
//!
//! [deploy.healthcheck]
//! path = "/healthz"
//! interval_ms = 1000
//! timeout_ms = 2000
//! retries = 30
//!
//! [deploy.placement]                 # on a swarm only; ignored on a single engine
//! constraints = ["node.role==worker", "node.labels.zone!=eu-3"]   # at most 16
//! max_per_node = 1                   # replicas on one node, 0 to 1000; 0: no limit
//! spread = ["node.labels.zone"]      # node labels to spread replicas over, at most 4
//!
//! [resources]
//! memory = "256M"                    # bytes, or with K, M, G
//! cpus = 0.5
//!
//! [env]                              # defaults; variables stored for the app win
//! LOG_FORMAT = "json"
//! ```
//!
//! Read strictly, like `rivetr.toml`: an unknown key, a wrong type, a value outside the limits
//! the API also applies ([`crate::limits`]), a build limit above the administrator's, or a
//! path that leaves the repository fails the deployment with the line and the key, and the
//! running version keeps serving. The file itself is read as a pushed commit can make it: a
//! symlink, anything but a regular file, or more than [`MAX_SIZE`] bytes fails the
//! deployment without being read (see [`super::repo_files`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::repo_files::{self, Kind, RepoFileError};
use crate::config::ConfigError;
use crate::limits::{
    BuildTimeoutSeconds, Constraints, Cpus, DrainSeconds, HealthcheckMs, HealthcheckPath,
    MaxPerNode, MemorySize, Port, Replicas, Retries, SpreadLabels, VariableName,
};
use crate::runtime::BuildLimits;

pub const FILE_NAME: &str = "deploy.toml";
/// Far above any real deploy.toml; what a hostile one can make Rivetr hold.
pub const MAX_SIZE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DeployTomlError {
    #[error(transparent)]
    File(#[from] RepoFileError),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("reading deploy.toml stopped: {0}")]
    Interrupted(String),
}

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
    pub env: BTreeMap<VariableName, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub dockerfile: Option<Spanned<String>>,
    pub context: Option<Spanned<String>>,
    #[serde(default)]
    pub args: BTreeMap<VariableName, String>,
    pub memory: Option<Spanned<MemorySize>>,
    pub cpus: Option<Spanned<Cpus>>,
    pub timeout_seconds: Option<Spanned<BuildTimeoutSeconds>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub port: Option<Port>,
    pub drain_seconds: Option<DrainSeconds>,
    pub replicas: Option<Replicas>,
    pub healthcheck: Option<HealthcheckToml>,
    pub placement: Option<PlacementToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckToml {
    pub path: Option<HealthcheckPath>,
    pub interval_ms: Option<HealthcheckMs>,
    pub timeout_ms: Option<HealthcheckMs>,
    pub retries: Option<Retries>,
}

/// `[deploy.placement]`: where replicas may run on a swarm. Each key given replaces the
/// app's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementToml {
    pub constraints: Option<Constraints>,
    pub max_per_node: Option<MaxPerNode>,
    pub spread: Option<SpreadLabels>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub memory: Option<MemorySize>,
    pub cpus: Option<Cpus>,
}

impl DeployToml {
    /// The limits of this app's builds: the administrator's, lowered where the file asks.
    /// (That the file never asks for more was checked when it was read.)
    pub fn build_limits(&self, max: &BuildLimits) -> BuildLimits {
        BuildLimits {
            memory_bytes: self
                .build
                .memory
                .as_ref()
                .map(|m| m.get_ref().bytes())
                .or(max.memory_bytes),
            cpus: self.build.cpus.as_ref().map(|c| c.get_ref().0).or(max.cpus),
            timeout: self
                .build
                .timeout_seconds
                .as_ref()
                .map(|t| Duration::from_secs(t.get_ref().0))
                .or(max.timeout),
        }
    }
}

/// Reads `deploy.toml` from the repository root; `Ok(None)` when there is none. Blocks: see
/// [`load`].
pub fn read(repo: &Path, max: &BuildLimits) -> Result<Option<DeployToml>, DeployTomlError> {
    let Some(bytes) = repo_files::read_capped(repo, FILE_NAME, MAX_SIZE)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::File {
        file: FILE_NAME.to_owned(),
        line: line_of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        ),
        key: String::new(),
        message: "not UTF-8 text".to_owned(),
    })?;
    let parsed: DeployToml = crate::config::parse_toml(FILE_NAME, &text)?;
    let located = |key: &str, start: usize, message: String| ConfigError::File {
        file: FILE_NAME.to_owned(),
        line: line_of(&text, start),
        key: key.to_owned(),
        message,
    };
    for (key, value, kind) in [
        ("build.dockerfile", &parsed.build.dockerfile, Kind::File),
        ("build.context", &parsed.build.context, Kind::Dir),
    ] {
        if let Some(v) = value {
            repo_files::resolve(repo, v.get_ref(), kind)
                .map_err(|e| located(key, v.span().start, e.to_string()))?;
        }
    }
    check_build_limits(&parsed.build, max, &located)?;
    Ok(Some(parsed))
}

/// [`read`] on a blocking thread.
pub async fn load(repo: PathBuf, max: BuildLimits) -> Result<Option<DeployToml>, DeployTomlError> {
    tokio::task::spawn_blocking(move || read(&repo, &max))
        .await
        .map_err(|e| DeployTomlError::Interrupted(e.to_string()))?
}

/// An app may ask its builds for less than the administrator allows, never for more.
fn check_build_limits(
    build: &Build,
    max: &BuildLimits,
    located: &dyn Fn(&str, usize, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let above = |asked: String, allowed: String, key: &str| {
        format!(
            "{asked} is above the administrator's maximum of {allowed} (`{key}` in rivetr.toml)"
        )
    };
    if let (Some(m), Some(limit)) = (&build.memory, max.memory_bytes)
        && m.get_ref().bytes() > limit
    {
        return Err(located(
            "build.memory",
            m.span().start,
            above(
                m.get_ref().to_string(),
                crate::limits::config_bytes(limit),
                "[build] memory",
            ),
        ));
    }
    if let (Some(c), Some(limit)) = (&build.cpus, max.cpus)
        && c.get_ref().0 > limit
    {
        return Err(located(
            "build.cpus",
            c.span().start,
            above(c.get_ref().0.to_string(), limit.to_string(), "[build] cpus"),
        ));
    }
    if let (Some(t), Some(limit)) = (&build.timeout_seconds, max.timeout)
        && t.get_ref().0 > limit.as_secs()
    {
        return Err(located(
            "build.timeout_seconds",
            t.span().start,
            above(
                t.get_ref().0.to_string(),
                limit.as_secs().to_string(),
                "[build] timeout_seconds",
            ),
        ));
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        dir
    }

    fn max() -> BuildLimits {
        BuildLimits {
            memory_bytes: Some(2 << 30),
            cpus: Some(2.0),
            timeout: Some(Duration::from_secs(1800)),
        }
    }

    fn error(text: &str) -> String {
        read(repo_with(text).path(), &max())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_file_parses() {
        let dir = repo_with(
            "[build]\ndockerfile = \"Dockerfile\"\nargs = { A = \"1\" }\nmemory = \"1G\"\n[deploy]\nport = 9000\ndrain_seconds = 0\nreplicas = 2\n[deploy.healthcheck]\npath = \"/h\"\nretries = 3\n[resources]\nmemory = \"64M\"\ncpus = 0.5\n[env]\nX = \"y\"\n",
        );
        let t = read(dir.path(), &max()).unwrap().unwrap();
        assert_eq!(t.deploy.port, Some(Port(9000)));
        assert_eq!(t.deploy.replicas, Some(Replicas(2)));
        assert_eq!(t.resources.memory, Some(MemorySize(64 << 20)));
        assert_eq!(t.build.args.values().next().unwrap(), "1");
        assert_eq!(t.env.keys().next().unwrap().as_str(), "X");
        let limits = t.build_limits(&max());
        assert_eq!(limits.memory_bytes, Some(1 << 30));
        assert_eq!(limits.cpus, Some(2.0));
        assert_eq!(limits.timeout, Some(Duration::from_secs(1800)));
    }

    #[test]
    fn placement_is_read_and_applied_key_by_key() {
        let dir = repo_with(
            "[deploy.placement]\nconstraints = [\"node.role==worker\", \"engine.labels.disk!=hdd\"]\nmax_per_node = 1\n",
        );
        let t = read(dir.path(), &max()).unwrap().unwrap();
        let p = t.deploy.placement.as_ref().unwrap();
        assert_eq!(
            p.constraints.as_ref().unwrap().strings(),
            ["node.role==worker", "engine.labels.disk!=hdd"]
        );
        assert_eq!(p.max_per_node, Some(crate::limits::MaxPerNode(1)));
        assert!(p.spread.is_none());
        // The keys given replace the app's; the others stay.
        let app = crate::db::apps::App {
            id: 1,
            name: "web".to_owned(),
            git_url: None,
            branch: "main".to_owned(),
            image: Some("nginx".to_owned()),
            port: 8080,
            domains: Vec::new(),
            healthcheck: Default::default(),
            memory_bytes: None,
            cpus: None,
            replicas: 2,
            placement: crate::db::apps::Placement {
                constraints: vec!["node.labels.zone==eu".to_owned()],
                max_per_node: 3,
                spread: vec!["node.labels.zone".to_owned()],
            },
            stopped: false,
            created_at: String::new(),
            updated_at: String::new(),
            git_credential: None,
            previews: Default::default(),
            preview_env: None,
            preview_of: None,
        };
        let mut settings = super::super::settings::Settings::from_app(&app, 0);
        assert_eq!(
            settings.placement, app.placement,
            "the app's placement by default"
        );
        settings.apply(&t);
        assert_eq!(
            settings.placement,
            crate::db::apps::Placement {
                constraints: vec![
                    "node.role==worker".to_owned(),
                    "engine.labels.disk!=hdd".to_owned()
                ],
                max_per_node: 1,
                spread: vec!["node.labels.zone".to_owned()],
            }
        );
        let e = error(&format!(
            "[deploy.placement]\nconstraints = [{}]\n",
            vec!["\"node.role==worker\""; 17].join(", ")
        ));
        assert!(
            e.contains("deploy.placement.constraints") && e.contains("at most 16"),
            "{e}"
        );
    }

    #[test]
    fn no_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), &max()).unwrap().is_none());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = error("[deploy]\nport = 80\n\n[build]\ndockerfle = \"x\"\n");
        assert!(e.contains("deploy.toml:5"), "{e}");
        assert!(e.contains("build.dockerfle"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_memory_are_refused() {
        let e = error("[deploy]\nport = \"eighty\"\n");
        assert!(e.contains("deploy.port") && e.contains(":2"), "{e}");
        let e = error("[resources]\nmemory = \"lots\"\n");
        assert!(e.contains("resources.memory"), "{e}");
    }

    #[test]
    fn values_outside_the_api_limits_name_key_and_line() {
        for (text, key, line) in [
            (
                "[deploy.healthcheck]\ninterval_ms = 5\n",
                "deploy.healthcheck.interval_ms",
                2,
            ),
            (
                "[deploy.healthcheck]\n\ntimeout_ms = 700000\n",
                "deploy.healthcheck.timeout_ms",
                3,
            ),
            (
                "[deploy.healthcheck]\nretries = 0\n",
                "deploy.healthcheck.retries",
                2,
            ),
            (
                "[deploy.healthcheck]\npath = \"no-slash\"\n",
                "deploy.healthcheck.path",
                2,
            ),
            ("[deploy]\nport = 0\n", "deploy.port", 2),
            ("[deploy]\nreplicas = 33\n", "deploy.replicas", 2),
            (
                "[deploy]\ndrain_seconds = 99999\n",
                "deploy.drain_seconds",
                2,
            ),
            ("[resources]\ncpus = 0\n", "resources.cpus", 2),
            ("[resources]\ncpus = 2000.0\n", "resources.cpus", 2),
            ("[resources]\nmemory = 1000\n", "resources.memory", 2),
            ("[env]\nA = \"1\"\n\"B-C\" = \"2\"\n", "env.B-C", 3),
            ("[build]\nargs = { \"9\" = \"x\" }\n", "build.args.9", 2),
            ("[build]\ntimeout_seconds = 0\n", "build.timeout_seconds", 2),
            (
                "[deploy.placement]\nmax_per_node = 1001\n",
                "deploy.placement.max_per_node",
                2,
            ),
            (
                "[deploy.placement]\nconstraints = [\n  \"node.role==worker\",\n  \"zone==eu\",\n]\n",
                "deploy.placement.constraints[1]",
                4,
            ),
            (
                "[deploy.placement]\nspread = [\"node.labels.zone\", \"zone\"]\n",
                "deploy.placement.spread[1]",
                2,
            ),
            (
                "[deploy.placement]\n\nspread = [\"node.labels.a\", \"node.labels.b\", \"node.labels.c\", \"node.labels.d\", \"node.labels.e\"]\n",
                "deploy.placement.spread",
                3,
            ),
            (
                "[deploy.placement]\nconstraint = [\"node.role==worker\"]\n",
                "deploy.placement.constraint",
                2,
            ),
        ] {
            let e = error(text);
            assert!(
                e.contains(&format!("deploy.toml:{line}:")) && e.contains(&format!("`{key}`")),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn build_limits_above_the_administrators_are_refused() {
        let e = error("[build]\ncpus = 1\n\nmemory = \"4G\"\n");
        assert!(
            e.contains("deploy.toml:4") && e.contains("build.memory") && e.contains("2G"),
            "{e}"
        );
        let e = error("[build]\ncpus = 3\n");
        assert!(
            e.contains("build.cpus") && e.contains("maximum of 2"),
            "{e}"
        );
        let e = error("[build]\ntimeout_seconds = 3600\n");
        assert!(
            e.contains("build.timeout_seconds") && e.contains("1800"),
            "{e}"
        );
    }

    #[test]
    fn paths_escaping_the_repo_are_refused() {
        for bad in ["../Dockerfile", "/etc/passwd", "a/../../b"] {
            let e = error(&format!("[build]\n\ndockerfile = \"{bad}\"\n"));
            assert!(
                e.contains("deploy.toml:3") && e.contains("build.dockerfile"),
                "{bad}: {e}"
            );
        }
        let dir = repo_with("[build]\ncontext = \"link\"\n");
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let e = read(dir.path(), &max()).unwrap_err().to_string();
        assert!(e.contains("build.context") && e.contains("symlink"), "{e}");
    }

    #[test]
    fn the_file_itself_is_never_followed_or_read_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(FILE_NAME)).unwrap();
        let e = read(dir.path(), &max()).unwrap_err().to_string();
        assert!(e.contains("deploy.toml") && e.contains("symlink"), "{e}");
        let dir = repo_with(&"#".repeat(MAX_SIZE as usize + 1));
        let e = read(dir.path(), &max()).unwrap_err().to_string();
        assert!(e.contains("64 KiB"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"a = \"\xff\"\n").unwrap();
        let e = read(dir.path(), &max()).unwrap_err().to_string();
        assert!(e.contains("UTF-8"), "{e}");
    }
}

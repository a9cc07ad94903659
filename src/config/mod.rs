//! Rivetr's configuration: the typed form of `rivetr.toml`, its defaults, and how it is read.
//!
//! The binary runs with no file at all: every key has a default, and the defaults are the
//! values documented in the `rivetr.toml` at the repository root (a test keeps the two equal).
//! A file, when given, is read strictly: an unknown key, a wrong type or a bad value is refused
//! with the file, the line and the key, because a misspelled key that is silently ignored costs
//! administrators hours. Environment variables `RIVETR_<SECTION>_<KEY>` override the file
//! (see [`env`]).
//!
//! This module owns parsing and validation only; it never opens sockets or creates files.

mod env;
mod error;
pub mod keys;
mod proxy;
mod trusted_proxy;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, deserialize_with_location as parse_toml};
pub use proxy::{AcmeSettings, Challenge, ProxyConfig, RouteConfig, TlsMode};
pub use trusted_proxy::{TrustedProxy, canonical_ip};

/// The whole configuration, one field per `[section]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub proxy: ProxyConfig,
    pub acme: AcmeSettings,
    pub log: LogConfig,
    pub runtime: RuntimeConfig,
    pub engine: EngineSettings,
    pub build: BuildSettings,
    pub session: SessionConfig,
    pub databases: DatabasesConfig,
    pub notifications: NotificationsConfig,
    pub metrics: MetricsConfig,
}

/// `[metrics]`: where `/metrics` is served besides the API's own address.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A listener of its own for `/metrics` (and nothing else), when systemd does not pass a
    /// socket named `metrics`; empty: none.
    #[serde(
        deserialize_with = "optional_socket_addr",
        serialize_with = "serialize_optional_addr"
    )]
    pub listen: Option<std::net::SocketAddr>,
}

/// `""` or an address such as `"10.0.0.5:9464"`.
fn optional_socket_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    match s.trim() {
        "" => Ok(None),
        addr => addr.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{addr}` is not an address and port such as \"127.0.0.1:9464\" (or \"\" for none)"
            ))
        }),
    }
}

fn serialize_optional_addr<S: serde::Serializer>(
    addr: &Option<std::net::SocketAddr>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match addr {
        Some(a) => s.serialize_str(&a.to_string()),
        None => s.serialize_str(""),
    }
}

/// `[notifications]`: what messages are stamped with, and how often things are checked.
/// The channels themselves are configured through the API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Names this server in every message; empty: the host name.
    pub server_name: String,
    /// The dashboard's address, for links in messages; empty: `https://` + `[server]
    /// domain` when set, else `http://` + `[server] api_listen`.
    pub dashboard_url: String,
    /// After a failed try, the next waits this long, doubling with each failure (5 tries).
    pub retry_first_seconds: std::num::NonZeroU64,
    /// Certificates (expiring within 14 days) and containers (crash looping) are looked at
    /// this often.
    pub check_seconds: std::num::NonZeroU64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            server_name: String::new(),
            dashboard_url: String::new(),
            retry_first_seconds: std::num::NonZeroU64::new(30).expect("30 is not zero"),
            check_seconds: std::num::NonZeroU64::new(60).expect("60 is not zero"),
        }
    }
}

/// `[databases]`: the images managed databases run and how long one may take to start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabasesConfig {
    /// `{version}` is replaced by the version a database asks for.
    #[serde(deserialize_with = "image_template")]
    pub postgres_image: String,
    #[serde(deserialize_with = "image_template")]
    pub mariadb_image: String,
    #[serde(deserialize_with = "image_template")]
    pub mysql_image: String,
    #[serde(deserialize_with = "image_template")]
    pub redis_image: String,
    /// A database not accepting connections this long after its start has failed.
    #[serde(deserialize_with = "at_least_one")]
    pub ready_timeout_seconds: u64,
    /// Where backups of the `local` destination are written; empty: `backups` in the
    /// state directory.
    pub backup_dir: PathBuf,
    /// A file holding the key backups are encrypted with (32 raw bytes or 64 hex digits);
    /// empty: backups are not encrypted.
    pub backup_key_file: PathBuf,
    /// The address a database's public port (off unless set per database) listens on.
    pub public_address: std::net::IpAddr,
}

impl Default for DatabasesConfig {
    fn default() -> Self {
        // The official images on Docker Hub.
        DatabasesConfig {
            postgres_image: "docker.io/library/postgres:{version}".to_owned(),
            mariadb_image: "docker.io/library/mariadb:{version}".to_owned(),
            mysql_image: "docker.io/library/mysql:{version}".to_owned(),
            redis_image: "docker.io/library/redis:{version}".to_owned(),
            ready_timeout_seconds: 180,
            backup_dir: PathBuf::new(),
            backup_key_file: PathBuf::new(),
            public_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        }
    }
}

impl DatabasesConfig {
    /// The image a database of `engine` (`postgres`, `mariadb`, `mysql`, `redis`) at
    /// `version` runs; `None` for an engine this section does not know.
    pub fn image(&self, engine: &str, version: &str) -> Option<String> {
        let template = match engine {
            "postgres" => &self.postgres_image,
            "mariadb" => &self.mariadb_image,
            "mysql" => &self.mysql_image,
            "redis" => &self.redis_image,
            _ => return None,
        };
        Some(template.replace("{version}", version))
    }
}

fn image_template<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
        return Err(serde::de::Error::custom(
            "must be an image name such as docker.io/library/postgres:{version}",
        ));
    }
    Ok(s)
}

/// `[build]`: what one image build may use. They are also the most an app's `deploy.toml`
/// may ask for (it may ask for less).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSettings {
    /// Memory of each build step, `"2G"` or bytes; a step that needs more is killed and the
    /// deployment fails naming this limit.
    pub memory: crate::limits::MemorySize,
    /// CPUs of each build step, fractions allowed.
    pub cpus: crate::limits::Cpus,
    /// The whole build, clone excluded.
    pub timeout_seconds: crate::limits::BuildTimeoutSeconds,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            memory: crate::limits::MemorySize(2 << 30),
            cpus: crate::limits::Cpus(2.0),
            timeout_seconds: crate::limits::BuildTimeoutSeconds(1800),
        }
    }
}

/// `[session]`: how long a dashboard sign-in lasts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused this long ends.
    #[serde(deserialize_with = "at_least_one")]
    pub idle_minutes: u64,
    /// A session ends this long after sign-in, however much it is used.
    #[serde(deserialize_with = "at_least_one")]
    pub max_hours: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_minutes: 720,
            max_hours: 168,
        }
    }
}

impl SessionConfig {
    /// The limits in seconds.
    pub fn limits(&self) -> crate::db::sessions::Limits {
        let secs = |n: u64, unit: u64| i64::try_from(n.saturating_mul(unit)).unwrap_or(i64::MAX);
        crate::db::sessions::Limits {
            idle: secs(self.idle_minutes, 60),
            max: secs(self.max_hours, 3600),
        }
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// `[engine]`: how deployments run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Builds that may run at the same time, across all apps.
    pub max_concurrent_builds: usize,
    /// Images of this many successful deployments per app are kept, for rollbacks.
    pub keep_images: usize,
    /// Deployments (with their logs) kept per app: the newest this many, plus the one serving,
    /// the unfinished ones and the rollback targets. Older ones are deleted in the background.
    pub keep_deployments: NonZeroUsize,
    /// After a switch, the old version keeps serving requests in flight this long, unless
    /// the app's deploy.toml says otherwise.
    pub drain_seconds: u64,
    /// A container gets this long between SIGTERM and SIGKILL when it is stopped.
    pub stop_timeout_seconds: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_concurrent_builds: 2,
            keep_images: 3,
            keep_deployments: NonZeroUsize::new(50).expect("50 is not zero"),
            drain_seconds: 10,
            stop_timeout_seconds: 10,
        }
    }
}

/// `[server]`: where the API listens, where state lives, how shutdown behaves.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the REST API binds when systemd does not hand over a socket named `api`.
    pub api_listen: SocketAddr,
    /// Directory for `rivetr.db` and other state. Empty means `$STATE_DIRECTORY` when
    /// systemd sets it, else `./data`.
    pub state_dir: PathBuf,
    /// How long in-flight requests may run after SIGTERM before they are cut off.
    pub shutdown_grace_seconds: u64,
    /// A host name under which the proxy also serves Rivetr's own API, with its own
    /// certificate. Empty: only on `api_listen`.
    pub domain: String,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` names the client, for the
    /// limit on failed authentications and the logs. Empty: the peer address is the client.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Log streams (Server-Sent Events) one API token may hold open at once.
    pub log_streams_per_token: NonZeroUsize,
}

/// `[log]`: what gets logged.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a full filter such as
    /// `info,rivetr::proxy=debug`. `RUST_LOG`, when set, wins.
    pub level: LogLevel,
}

/// `[runtime]`: which container engine to drive.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// `auto` tries rootless Podman, rootful Podman, then Docker; `podman` or `docker`
    /// accepts only that engine.
    pub engine: EngineChoice,
    /// The engine's socket as `unix:///path`; empty means look in the usual places.
    pub socket: RuntimeSocket,
    /// `engine = "swarm"`: where builds go for the nodes to pull them.
    pub swarm: SwarmConfig,
}

/// `[runtime.swarm]`: Docker Swarm settings, read when `engine = "swarm"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    /// The registry (`host:port`, optionally with a path) Rivetr pushes its builds to and every
    /// node pulls them from.
    pub registry: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    #[default]
    Auto,
    Podman,
    Docker,
    /// A Docker engine that manages a swarm: apps run as services across its nodes. Never
    /// chosen by `auto`.
    Swarm,
}

/// `""` or `unix:///absolute/path`, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuntimeSocket(String);

impl RuntimeSocket {
    /// The configured socket, or `None` for "look in the usual places".
    pub fn get(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

impl TryFrom<String> for RuntimeSocket {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() || value.starts_with("unix:///") {
            Ok(RuntimeSocket(value))
        } else {
            Err(format!(
                "`{value}` is not a socket; use unix:///absolute/path, or \"\" to look in the usual places"
            ))
        }
    }
}

impl From<RuntimeSocket> for String {
    fn from(value: RuntimeSocket) -> Self {
        value.0
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state_dir: PathBuf::new(),
            shutdown_grace_seconds: 30,
            domain: String::new(),
            trusted_proxies: Vec::new(),
            log_streams_per_token: NonZeroUsize::new(8).expect("8 is not zero"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel("info".to_owned()),
        }
    }
}

/// A log filter that has been checked to parse, so a bad one is refused when the config is
/// read rather than when logging starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogLevel(String);

impl LogLevel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LogLevel {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        let invalid = |why: String| {
            format!(
                "`{value}` is not a log level or filter ({why}); use error, warn, info, debug or trace"
            )
        };
        // A bare word is a level; EnvFilter would take it as a target name and log nothing.
        for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            if !directive.contains('=')
                && !LEVELS.contains(&directive.to_ascii_lowercase().as_str())
            {
                return Err(invalid(format!("unknown level `{directive}`")));
            }
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&value)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(LogLevel(value))
    }
}

impl From<LogLevel> for String {
    fn from(value: LogLevel) -> Self {
        value.0
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::try_from(s.to_owned())
    }
}

impl Config {
    /// Reads the configuration: defaults, then the file at `path` if one is given, then
    /// `RIVETR_*` variables from the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with the environment passed in, so tests need not touch the process's.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (source, text) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
            None => ("(built-in defaults)".to_owned(), String::new()),
        };
        Config::parse(&source, &text, vars)
    }

    /// Parses `text` (named `source` in errors) and applies environment overrides.
    pub fn parse(
        source: &str,
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // The file is checked on its own first, so its errors carry its own line numbers.
        let from_file: Config = error::deserialize_with_location(source, text)?;
        let overrides = env::overrides(vars)?;
        let config = if overrides.is_empty() {
            from_file
        } else {
            env::apply(source, text, &overrides)?
        };
        config.validate(source, text)?;
        Ok(config)
    }

    /// Checks that span several keys, which serde cannot see one key at a time.
    fn validate(&self, source: &str, text: &str) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for route in &self.proxy.routes {
            if !seen.insert(route.host.as_str()) {
                return Err(error::located(
                    source,
                    text,
                    &format!("\"{}\"", route.host),
                    2,
                    "proxy.routes.host",
                    format!("two routes for host `{}`", route.host),
                ));
            }
        }
        if self.runtime.engine == EngineChoice::Swarm && self.runtime.swarm.registry.is_empty() {
            return Err(error::located(
                source,
                text,
                "\"swarm\"",
                1,
                "runtime.engine",
                "engine = \"swarm\" needs [runtime.swarm] registry: the registry (host:port) Rivetr pushes builds to and every node pulls them from".to_owned(),
            ));
        }
        if self.runtime.swarm.registry.contains("://") {
            return Err(error::located(
                source,
                text,
                "registry",
                1,
                "runtime.swarm.registry",
                format!(
                    "`{}` is not host:port[/path]; give the registry without a scheme",
                    self.runtime.swarm.registry
                ),
            ));
        }
        if !self.server.domain.is_empty() {
            let domain = crate::host::validate_route_host(&self.server.domain)
                .map_err(|e| error::located(source, text, "domain", 1, "server.domain", e))?;
            if crate::host::is_wildcard(&domain) || seen.contains(domain.as_str()) {
                return Err(error::located(
                    source,
                    text,
                    "domain",
                    1,
                    "server.domain",
                    format!(
                        "`{domain}` must be a plain host name that no [[proxy.routes]] entry uses"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What in this configuration holds `host` (lower case, as routes are keyed), if
    /// anything: `[server] domain` or a `[[proxy.routes]]` entry. Hosts compare exactly: a
    /// wildcard holds itself, not the names under it.
    pub fn host_holder(&self, host: &str) -> Option<&'static str> {
        if !self.server.domain.is_empty() && self.server.domain.eq_ignore_ascii_case(host) {
            return Some("[server] domain");
        }
        self.proxy
            .routes
            .iter()
            .any(|r| r.host.eq_ignore_ascii_case(host))
            .then_some("[[proxy.routes]]")
    }

    /// This configuration without what it declares for the hosts in `taken` (held by apps):
    /// those routes are dropped, and `[server] domain` emptied. Returns the hosts dropped.
    pub fn without_hosts(&mut self, taken: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut dropped = Vec::new();
        self.proxy.routes.retain(|r| {
            let keep = !taken(&r.host);
            if !keep {
                dropped.push(r.host.clone());
            }
            keep
        });
        if !self.server.domain.is_empty() && taken(&self.server.domain.to_ascii_lowercase()) {
            dropped.push(std::mem::take(&mut self.server.domain));
        }
        dropped
    }

    /// The state directory: the configured one, else `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`, first entry), else `./data`.
    pub fn state_dir(&self) -> PathBuf {
        if !self.server.state_dir.as_os_str().is_empty() {
            return self.server.state_dir.clone();
        }
        match std::env::var_os("STATE_DIRECTORY") {
            // systemd joins several directories with ':'; Rivetr uses the first.
            Some(dirs) if !dirs.is_empty() => {
                let dirs = dirs.to_string_lossy().into_owned();
                PathBuf::from(dirs.split(':').next().unwrap_or_default())
            }
            _ => PathBuf::from("data"),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse("test.toml", text, Vec::new())
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_rivetr_toml_equals_the_defaults() {
        let text = include_str!("../../rivetr.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn both_shipped_config_files_document_every_key() {
        for (file, text) in [
            ("rivetr.toml", include_str!("../../rivetr.toml")),
            (
                "packaging/rivetr.toml",
                include_str!("../../packaging/rivetr.toml"),
            ),
        ] {
            let missing = keys::undocumented(text);
            assert!(missing.is_empty(), "{file} lacks:\n{}", missing.join("\n"));
        }
    }

    #[test]
    fn the_packaged_config_is_valid() {
        parse(include_str!("../../packaging/rivetr.toml")).unwrap();
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[server]\nshutdown_grace_seconds = 5\napi_lisen = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:3"), "{err}");
        assert!(err.contains("key `server.api_lisen`:"), "{err}");
        assert!(err.contains("unknown"), "{err}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let err = parse("[sever]\n").unwrap_err().to_string();
        assert!(err.contains("test.toml:1"), "{err}");
        assert!(err.contains("sever"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        let err = parse("[server]\n\nshutdown_grace_seconds = \"ten\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:3"), "{err}");
        assert!(
            err.contains("key `server.shutdown_grace_seconds`:"),
            "{err}"
        );
        assert!(err.contains("u64") || err.contains("integer"), "{err}");
    }

    #[test]
    fn bad_value_is_refused() {
        let err = parse("[server]\napi_listen = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:2"), "{err}");
        assert!(err.contains("server.api_listen"), "{err}");

        let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
        assert!(err.contains("log.level"), "{err}");
        assert!(err.contains("loud"), "{err}");
    }

    #[test]
    fn runtime_section_and_its_env_overrides() {
        let config = Config::parse(
            "test.toml",
            "[runtime]\nengine = \"docker\"\n",
            vec![(
                "RIVETR_RUNTIME_SOCKET".to_owned(),
                "unix:///run/docker.sock".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(config.runtime.engine, EngineChoice::Docker);
        assert_eq!(config.runtime.socket.get(), Some("unix:///run/docker.sock"));

        let config = Config::parse(
            "test.toml",
            "",
            vec![("RIVETR_RUNTIME_ENGINE".to_owned(), "podman".to_owned())],
        )
        .unwrap();
        assert_eq!(config.runtime.engine, EngineChoice::Podman);
        assert_eq!(config.runtime.socket.get(), None);

        let err = parse("[runtime]\nengine = \"lxc\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.toml:2") && err.contains("runtime.engine"),
            "{err}"
        );
        let err = Config::parse(
            "test.toml",
            "",
            vec![(
                "RIVETR_RUNTIME_SOCKET".to_owned(),
                "/run/docker.sock".to_owned(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("RIVETR_RUNTIME_SOCKET") && err.contains("unix:///"),
            "{err}"
        );
    }

    #[test]
    fn swarm_needs_a_registry_named_without_a_scheme() {
        let err = parse("[runtime]\nengine = \"swarm\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.toml:2") && err.contains("[runtime.swarm] registry"),
            "{err}"
        );
        let err = parse(
            "[runtime]\nengine = \"swarm\"\n[runtime.swarm]\nregistry = \"https://r:5000\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("test.toml:4") && err.contains("without a scheme"),
            "{err}"
        );
        let config =
            parse("[runtime]\nengine = \"swarm\"\n[runtime.swarm]\nregistry = \"10.0.0.1:5000\"\n")
                .unwrap();
        assert_eq!(config.runtime.engine, EngineChoice::Swarm);
        assert_eq!(config.runtime.swarm.registry, "10.0.0.1:5000");
    }

    #[test]
    fn counts_that_must_not_be_zero_are_refused_with_their_key() {
        let err = parse("[engine]\n\nkeep_deployments = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:3"), "{err}");
        assert!(err.contains("engine.keep_deployments"), "{err}");
        let err = parse("[server]\nlog_streams_per_token = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.log_streams_per_token"), "{err}");
        let config = parse("[engine]\nkeep_deployments = 7\n").unwrap();
        assert_eq!(config.engine.keep_deployments.get(), 7);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = parse("[server]\napi_listen = \n").unwrap_err().to_string();
        assert!(err.contains("test.toml:2"), "{err}");
    }

    #[test]
    fn build_limits_are_checked_where_they_are_written() {
        let err = parse("[build]\ncpus = 1\nmemory = \"1K\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.toml:3") && err.contains("build.memory") && err.contains("6 MiB"),
            "{err}"
        );
        let err = parse("[build]\ntimeout_seconds = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("build.timeout_seconds"), "{err}");
        let vars = vec![
            ("RIVETR_BUILD_MEMORY".to_owned(), "512M".to_owned()),
            ("RIVETR_BUILD_CPUS".to_owned(), "0.5".to_owned()),
        ];
        let config = Config::parse("test.toml", "", vars).unwrap();
        assert_eq!(config.build.memory.bytes(), 512 << 20);
        assert_eq!(config.build.cpus.0, 0.5);
        let vars = vec![("RIVETR_BUILD_CPUS".to_owned(), "0".to_owned())];
        let err = Config::parse("test.toml", "", vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RIVETR_BUILD_CPUS"), "{err}");
    }

    #[test]
    fn env_overrides_the_file() {
        let vars = vec![
            (
                "RIVETR_SERVER_API_LISTEN".to_owned(),
                "127.0.0.1:9999".to_owned(),
            ),
            ("RIVETR_LOG_LEVEL".to_owned(), "debug".to_owned()),
            (
                "RIVETR_SERVER_SHUTDOWN_GRACE_SECONDS".to_owned(),
                "3".to_owned(),
            ),
            // Not a config section: belongs to the CLI or the test harness.
            ("RIVETR_URL".to_owned(), "http://x".to_owned()),
        ];
        let config = Config::parse(
            "test.toml",
            "[server]\napi_listen = \"127.0.0.1:1\"\n",
            vars,
        )
        .unwrap();
        assert_eq!(config.server.api_listen.port(), 9999);
        assert_eq!(config.log.level.as_str(), "debug");
        assert_eq!(config.server.shutdown_grace_seconds, 3);
    }

    #[test]
    fn trusted_proxies_from_file_and_env() {
        let config =
            parse("[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n").unwrap();
        let shown: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(shown, ["127.0.0.1", "10.0.0.0/8"]);

        let err = parse("[server]\n\ntrusted_proxies = [\"proxy.local\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:3"), "{err}");
        assert!(err.contains("server.trusted_proxies"), "{err}");
        assert!(err.contains("proxy.local"), "{err}");

        let vars = vec![(
            "RIVETR_SERVER_TRUSTED_PROXIES".to_owned(),
            "[\"fd00::/8\"]".to_owned(),
        )];
        let config = Config::parse("test.toml", "", vars).unwrap();
        assert_eq!(config.server.trusted_proxies[0].to_string(), "fd00::/8");
    }

    #[test]
    fn env_with_unknown_key_or_bad_value_names_the_variable() {
        let err = Config::parse(
            "test.toml",
            "",
            vec![("RIVETR_SERVER_API_LISEN".to_owned(), "x".to_owned())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RIVETR_SERVER_API_LISEN"), "{err}");

        let err = Config::parse(
            "test.toml",
            "",
            vec![(
                "RIVETR_SERVER_SHUTDOWN_GRACE_SECONDS".to_owned(),
                "soon".to_owned(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("RIVETR_SERVER_SHUTDOWN_GRACE_SECONDS"),
            "{err}"
        );
    }
}

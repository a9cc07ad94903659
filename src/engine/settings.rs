//! The settings one deployment runs with: the app's stored settings, overridden by the
//! repository's `deploy.toml`. Stored with the deployment (as JSON) so a rollback runs the old
//! image exactly as it ran before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::deploy_toml::DeployToml;
use crate::db::apps::{App, Healthcheck, Placement};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub port: u16,
    pub drain_seconds: u64,
    pub healthcheck: Healthcheck,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub replicas: u32,
    /// Where replicas may run on a swarm; absent in settings recorded before swarms.
    #[serde(default)]
    pub placement: Placement,
    /// Defaults from deploy.toml; the app's stored variables win over them.
    pub env_defaults: BTreeMap<String, String>,
    /// The Dockerfile and build context, relative to the repository root.
    pub dockerfile: String,
    pub context: String,
    pub build_args: BTreeMap<String, String>,
}

impl Settings {
    pub fn from_app(app: &App, drain_seconds: u64) -> Settings {
        Settings {
            port: app.port,
            drain_seconds,
            healthcheck: app.healthcheck.clone(),
            memory_bytes: app.memory_bytes,
            cpus: app.cpus,
            replicas: app.replicas.max(1),
            placement: app.placement.clone(),
            env_defaults: BTreeMap::new(),
            dockerfile: "Dockerfile".to_owned(),
            context: ".".to_owned(),
            build_args: BTreeMap::new(),
        }
    }

    /// Applies a repository's `deploy.toml` (its values were checked when it was read).
    pub fn apply(&mut self, t: &DeployToml) {
        if let Some(d) = &t.build.dockerfile {
            self.dockerfile = d.get_ref().clone();
        }
        if let Some(c) = &t.build.context {
            self.context = c.get_ref().clone();
        }
        self.build_args.extend(
            t.build
                .args
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone())),
        );
        if let Some(p) = t.deploy.port {
            self.port = p.0;
        }
        if let Some(d) = t.deploy.drain_seconds {
            self.drain_seconds = d.0;
        }
        if let Some(r) = t.deploy.replicas {
            self.replicas = r.0;
        }
        if let Some(h) = &t.deploy.healthcheck {
            if let Some(p) = &h.path {
                self.healthcheck.path = p.0.clone();
            }
            if let Some(i) = h.interval_ms {
                self.healthcheck.interval_ms = i.0;
            }
            if let Some(t) = h.timeout_ms {
                self.healthcheck.timeout_ms = t.0;
            }
            if let Some(r) = h.retries {
                self.healthcheck.retries = r.0;
            }
        }
        if let Some(p) = &t.deploy.placement {
            if let Some(c) = &p.constraints {
                self.placement.constraints = c.strings();
            }
            if let Some(m) = p.max_per_node {
                self.placement.max_per_node = m.0;
            }
            if let Some(s) = &p.spread {
                self.placement.spread = s.strings();
            }
        }
        if let Some(m) = t.resources.memory {
            self.memory_bytes = Some(m.bytes());
        }
        if let Some(c) = t.resources.cpus {
            self.cpus = Some(c.0);
        }
        self.env_defaults.extend(
            t.env
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone())),
        );
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Option<Settings> {
        serde_json::from_str(s).ok()
    }
}

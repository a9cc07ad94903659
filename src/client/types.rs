//! The API's answers as the client reads them: only the fields it shows, unknown fields
//! ignored, so a newer server does not break an older client. `--json` output never goes
//! through these types: it is the server's bytes.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct App {
    pub name: String,
    pub git_url: Option<String>,
    #[serde(default)]
    pub git_credential: bool,
    /// The deploy key's fingerprint.
    #[serde(default)]
    pub deploy_key: Option<String>,
    pub branch: String,
    pub image: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub domains: Vec<String>,
    pub healthcheck: Healthcheck,
    pub resources: Resources,
    pub replicas: u32,
    /// Where its replicas may run on a swarm (absent from servers older than swarms).
    #[serde(default)]
    pub placement: Option<Placement>,
    pub stopped: bool,
    pub running_deployment: Option<i64>,
    pub webhooks: Option<WebhookUrls>,
    /// How its pull requests get previews (absent from servers older than previews).
    #[serde(default)]
    pub previews: Option<PreviewSettings>,
    /// For a preview: the app and pull request it previews.
    #[serde(default)]
    pub preview_of: Option<PreviewOf>,
    pub created_at: String,
    /// Only in the creation answer.
    pub webhook_secret: Option<String>,
}

/// Where an app's replicas may run on a swarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Placement {
    pub constraints: Vec<String>,
    /// 0: no limit.
    pub max_per_node: u64,
    pub spread: Vec<String>,
}

impl Placement {
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty() && self.max_per_node == 0 && self.spread.is_empty()
    }
}

/// `GET /api/nodes`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<Node>,
}

/// A node of the swarm, with the tasks of Rivetr's apps on it (none in the answer of
/// drain and activate).
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub state: String,
    pub availability: String,
    #[serde(default)]
    pub addr: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub leader: bool,
    #[serde(default)]
    pub tasks: Vec<NodeTask>,
}

/// One task of an app on a node.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeTask {
    pub app: String,
    pub deployment: i64,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// An app's settings for previews of its pull requests.
#[derive(Debug, Clone, Deserialize)]
pub struct PreviewSettings {
    pub enabled: bool,
    pub domain_template: String,
    pub limit: u32,
    pub forks: bool,
    pub drafts: bool,
    /// The names of the previews' own variables; their values are never shown.
    #[serde(default)]
    pub env_keys: Vec<String>,
}

/// What a preview app previews.
#[derive(Debug, Clone, Deserialize)]
pub struct PreviewOf {
    pub app: String,
    pub number: u64,
}

/// A pull request of an app and its preview, from `GET /api/apps/{app}/previews`.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    pub head_ref: String,
    pub head_sha: String,
    /// Why it has no preview, when it was refused one.
    #[serde(default)]
    pub refused: Option<String>,
    /// The preview app, while there is one.
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// The preview's newest deployment.
    #[serde(default)]
    pub deployment: Option<LatestDeployment>,
    #[serde(default)]
    pub running_deployment: Option<i64>,
    #[serde(default)]
    pub updated_at: String,
}

/// An app's newest deployment, in short.
#[derive(Debug, Clone, Deserialize)]
pub struct LatestDeployment {
    pub id: i64,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeployKey {
    pub public_key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KnownHost {
    pub host: String,
    pub key_type: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Healthcheck {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookUrls {
    pub github: String,
    pub gitlab: String,
    pub gitea: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvVar {
    pub key: String,
    /// `********` for a secret.
    pub value: String,
    pub secret: bool,
    #[serde(default)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    pub status: String,
    pub trigger: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_subject: Option<String>,
    pub reason: Option<String>,
    pub rollback_of: Option<i64>,
    pub queued_at: String,
    pub finished_at: Option<String>,
}

impl Deployment {
    /// True once the status will not change (`running` may still become `replaced`).
    pub fn is_final(&self) -> bool {
        FINAL_STATUSES.contains(&self.status.as_str())
    }
}

/// Statuses a deployment does not leave (except running -> replaced).
pub const FINAL_STATUSES: &[&str] = &["running", "failed", "cancelled", "superseded", "replaced"];

/// Statuses of a deployment that went live: `replaced` ran and was followed by a newer one.
pub fn succeeded(status: &str) -> bool {
    matches!(status, "running" | "replaced")
}

/// One line of a deployment's log (the data of an SSE `line` event).
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    pub id: i64,
    #[serde(default)]
    pub at: String,
    pub stream: String,
    pub line: String,
}

/// The data of the SSE `end` event.
#[derive(Debug, Clone, Deserialize)]
pub struct End {
    pub status: String,
}

/// An API error body: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// A managed database as the API shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Database {
    pub name: String,
    pub engine: String,
    pub version: String,
    pub image: String,
    pub status: String,
    pub username: Option<String>,
    pub database: Option<String>,
    pub port: u16,
    pub volume: String,
    pub network: String,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    #[serde(default)]
    pub public_port: Option<u16>,
    #[serde(default)]
    pub public_address: Option<String>,
    pub created_at: String,
}

/// A backup of a managed database as the API shows it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Backup {
    pub id: i64,
    pub database: String,
    pub status: String,
    pub location: String,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub schedule_id: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// What deleting a database kept.
#[derive(Debug, Clone, Deserialize)]
pub struct DeletedDatabase {
    pub message: String,
}

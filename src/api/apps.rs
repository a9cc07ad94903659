//! `/api/apps`: create, list, show, change and delete apps; start, stop and restart them.
//!
//! An app is a git repository (or an image) plus how to run it. Its name is a DNS label and
//! part of container and image names. Its values are checked with the same limits as a
//! repository's `deploy.toml` ([`crate::limits`]). A git URL's credential
//! (`https://user:token@host/...`) is split off and stored encrypted; responses never show it
//! (see [`super::git_access`] for the other ways to give, rotate and remove it, and for deploy
//! keys). URLs git would hand to a remote helper (`ext::...`) or send in clear (`http://`) are
//! refused with 422. The webhook secret is shown
//! once, in the creation response (and again only when rotated).

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::webhooks::secret::{self, WebhookUrls};
use crate::AppState;
use crate::db::apps::{App, AppFields, Healthcheck, Placement, PreviewSettings};
use crate::engine::EngineError;
use crate::limits;
use crate::secrets::Purpose;

/// The health check as the API shows and takes it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckBody {
    /// Path of the HTTP GET, starting with `/`; default `/`.
    pub path: Option<String>,
    /// Between attempts, 10 to 600000; default 500.
    #[schema(minimum = 10, maximum = 600000)]
    pub interval_ms: Option<u64>,
    /// Per attempt, 10 to 600000; default 2000.
    #[schema(minimum = 10, maximum = 600000)]
    pub timeout_ms: Option<u64>,
    /// Attempts before the deployment fails, 1 to 10000; default 60.
    #[schema(minimum = 1, maximum = 10000)]
    pub retries: Option<u32>,
}

/// Resource limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesBody {
    /// Bytes, or a size such as `"256M"` or `"1G"`; 6 MiB to 1 TiB; `null` for no limit.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "given")]
    pub memory: Option<serde_json::Value>,
    /// CPUs, fractions allowed; above 0, at most 1024.
    pub cpus: Option<f64>,
}

/// A field given, `null` included (`Some(Value::Null)`), as opposed to absent (`None`, by
/// `#[serde(default)]`): serde reads a `null` for an `Option` as absent, so "no limit" was lost.
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `POST /api/apps` and `PATCH /api/apps/{app}` body. On PATCH every field is optional and
/// only the ones given change (the name cannot).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppBody {
    /// A DNS label: lower-case letters, digits and inner hyphens, up to 63 characters.
    pub name: Option<String>,
    /// https, ssh, `file://` or a local path. Exactly one of `git_url` and `image`.
    pub git_url: Option<String>,
    /// Default `main`.
    pub branch: Option<String>,
    /// An image to run instead of building from git.
    pub image: Option<String>,
    /// The port the app listens on inside its container, 1 to 65535; default 8080.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    pub domains: Option<Vec<String>>,
    pub healthcheck: Option<HealthcheckBody>,
    pub resources: Option<ResourcesBody>,
    /// Containers sharing the traffic, 1 to 32; default 1.
    #[schema(minimum = 1, maximum = 32)]
    pub replicas: Option<u32>,
    /// Previews of pull requests; off by default. Only the fields given change.
    pub previews: Option<PreviewsBody>,
    /// Where replicas may run on a swarm (ignored on a single engine). On PATCH the object
    /// given replaces the app's placement whole (`{}` removes it).
    pub placement: Option<PlacementBody>,
}

/// `POST /api/apps` body, for the OpenAPI document only: [`AppBody`] with `name` required
/// (the handler reads an [`AppBody`] and refuses one without a name with 422).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NewAppBody {
    /// A DNS label: lower-case letters, digits and inner hyphens, up to 63 characters.
    name: String,
    #[serde(flatten)]
    fields: AppBody,
}

/// Where an app's replicas may run on a swarm; a key left out is empty (no constraint, no
/// limit, no spread).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementBody {
    /// At most 16, each `<key>==<value>` or `<key>!=<value>` (at most 256 bytes), the key
    /// under `node.` or `engine.labels.`: `node.role==worker`, `node.labels.zone!=eu-3`.
    pub constraints: Vec<String>,
    /// Replicas of the app on one node, 0 to 1000; 0 (the default) for no limit. On a
    /// deployment the new version's replicas run beside the old ones, so leave the nodes room.
    #[schema(minimum = 0, maximum = 1000)]
    pub max_per_node: u64,
    /// At most 4 node labels such as `node.labels.zone`: replicas spread evenly over their
    /// values, in order.
    pub spread: Vec<String>,
}

/// Where an app's replicas may run on a swarm, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlacementView {
    pub constraints: Vec<String>,
    /// 0: no limit.
    pub max_per_node: u64,
    pub spread: Vec<String>,
}

/// How the app's pull requests get previews.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewsBody {
    /// Deploy a preview of each open pull request; default false.
    pub enabled: Option<bool>,
    /// The preview's host, with `{number}` (required), `{app}` and `{domain}` (the app's
    /// first domain); default `pr-{number}.{domain}`.
    pub domain_template: Option<String>,
    /// Previews at most at once, 1 to 100; default 5. A PR past it gets none, with the
    /// reason in the webhook's answer, the log and `GET /api/apps/{app}/previews`.
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Preview PRs from forks; default false (they would run code from outside the
    /// repository with the app's environment).
    pub forks: Option<bool>,
    /// Preview draft PRs; default false.
    pub drafts: Option<bool>,
    /// Variables set in previews on top of the app's, replacing those given before
    /// (`{}` removes them). Stored encrypted; never shown again, only their names.
    pub env: Option<std::collections::BTreeMap<String, String>>,
}

/// How the app's pull requests get previews, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewsView {
    pub enabled: bool,
    pub domain_template: String,
    pub limit: u32,
    pub forks: bool,
    pub drafts: bool,
    /// The names of the previews' own variables (values are never shown).
    pub env_keys: Vec<String>,
}

/// What a preview app previews.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOfView {
    /// The app it previews.
    pub app: String,
    /// The pull (merge) request's number.
    pub number: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourcesView {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthcheckView {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

/// An app as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub name: String,
    /// Without its credential.
    pub git_url: Option<String>,
    /// True when the app has an https credential (given in the git URL or through
    /// `PUT /api/apps/{app}/git-credential`; stored encrypted, never shown).
    pub git_credential: bool,
    /// The `SHA256:...` fingerprint of the app's SSH deploy key, if it has one.
    pub deploy_key: Option<String>,
    pub branch: String,
    pub image: Option<String>,
    pub port: u16,
    pub domains: Vec<String>,
    pub healthcheck: HealthcheckView,
    pub resources: ResourcesView,
    pub replicas: u32,
    /// Where replicas may run on a swarm (ignored on a single engine).
    pub placement: PlacementView,
    pub stopped: bool,
    /// `running`, `deploying` (a deployment is under way), `failed` (the last deployment
    /// failed and no version serves), `stopped`, or `new` (never deployed).
    pub status: String,
    /// The deployment in service, if any.
    pub running_deployment: Option<i64>,
    /// The certificate of each domain, in the order of `domains`.
    pub certificates: Vec<super::certificates::CertificateView>,
    /// The commit of the deployment in service.
    pub current_commit: Option<String>,
    /// The newest deployment, whatever its status.
    pub latest_deployment: Option<LatestDeployment>,
    pub webhooks: WebhookUrls,
    pub previews: PreviewsView,
    /// For a preview: the app and pull request it previews.
    pub preview_of: Option<PreviewOfView>,
    pub created_at: String,
    pub updated_at: String,
}

/// The newest deployment of an app, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestDeployment {
    pub id: i64,
    pub status: String,
    pub queued_at: String,
    /// When it ended (running, failed, ...), if it has.
    pub finished_at: Option<String>,
}

/// `POST /api/apps` answer: the app and, this once, its webhook secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    #[serde(flatten)]
    pub app: AppView,
    /// The secret to give the forge. Shown only here; rotate it with
    /// `POST /api/apps/{app}/webhook-secret`.
    pub webhook_secret: String,
}

pub(super) fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::AppNotFound(_)
        | EngineError::DeploymentNotFound(_)
        | EngineError::Runtime(crate::runtime::RuntimeError::NodeNotFound { .. }) => {
            ApiError::not_found(e.to_string())
        }
        EngineError::NoRuntime(_) | EngineError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        EngineError::NotRollbackable { .. }
        | EngineError::NotCancellable { .. }
        | EngineError::NeverDeployed(_)
        | EngineError::NotSwarm => ApiError::conflict(e.to_string()),
        EngineError::Runtime(_) | EngineError::Swarm(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "runtime", e.to_string())
        }
        EngineError::Db(_) | EngineError::Environment(_) => ApiError::internal(e),
    }
}

/// Refuses to change a preview's settings: it follows the app it previews.
pub(super) async fn refuse_preview(state: &AppState, app: &App) -> Result<(), ApiError> {
    let Some(of) = app.preview_of else {
        return Ok(());
    };
    let parent = state
        .db
        .call(move |c| crate::db::apps::get_by_id(c, of.app_id))
        .await
        .map_err(ApiError::internal)?
        .map(|p| p.name)
        .unwrap_or_default();
    Err(ApiError::conflict(format!(
        "`{}` is the preview of PR #{} of app `{parent}` and follows its settings: change `{parent}` instead",
        app.name, of.number
    )))
}

pub(super) async fn find_app(state: &AppState, name: &str) -> Result<App, ApiError> {
    let owned = name.to_owned();
    state
        .db
        .call(move |c| crate::db::apps::get_by_name(c, &owned))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no app named `{name}`")))
}

/// What the app is doing, from its flag and its deployments.
fn app_status(
    stopped: bool,
    running: Option<&crate::db::deployments::Deployment>,
    latest: Option<&crate::db::deployments::Deployment>,
) -> &'static str {
    if stopped {
        "stopped"
    } else if latest.is_some_and(|d| !d.status.is_final()) {
        "deploying"
    } else if running.is_some() {
        "running"
    } else if latest.is_some() {
        "failed"
    } else {
        "new"
    }
}

/// What an app's view reads from the database besides the app.
struct Facts {
    running: Option<crate::db::deployments::Deployment>,
    latest: Option<crate::db::deployments::Deployment>,
    deploy_key: Option<String>,
}

fn facts(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Facts> {
    Ok(Facts {
        running: crate::db::deployments::running(c, id)?,
        latest: crate::db::deployments::list_for_app(c, id, 1)?.pop(),
        deploy_key: crate::db::deploy_keys::fingerprint(c, id)?,
    })
}

async fn view(state: &AppState, headers: &HeaderMap, app: App) -> Result<AppView, ApiError> {
    let id = app.id;
    let facts = state
        .db
        .call(move |c| facts(c, id))
        .await
        .map_err(ApiError::internal)?;
    view_of(state, headers, app, facts).await
}

/// The view of `app` with its `facts`, read beforehand (for a list, in one database call).
async fn view_of(
    state: &AppState,
    headers: &HeaderMap,
    app: App,
    Facts {
        running,
        latest,
        deploy_key,
    }: Facts,
) -> Result<AppView, ApiError> {
    let status = app_status(app.stopped, running.as_ref(), latest.as_ref()).to_owned();
    let current_commit = running.as_ref().and_then(|d| d.commit_sha.clone());
    let running = running.map(|d| d.id);
    let latest_deployment = latest.map(|d| LatestDeployment {
        id: d.id,
        status: d.status.as_str().to_owned(),
        queued_at: d.queued_at,
        finished_at: d.finished_at.or(d.running_at),
    });
    let base = secret::base_url(state, headers);
    let certificates = super::certificates::for_domains(state, &app.domains);
    let env_keys = state
        .previews
        .env(&app)
        .map_err(ApiError::internal)?
        .into_keys()
        .collect();
    let preview_of = match app.preview_of {
        Some(of) => {
            let parent = state
                .db
                .call(move |c| crate::db::apps::get_by_id(c, of.app_id))
                .await
                .map_err(ApiError::internal)?;
            parent.map(|p| PreviewOfView {
                app: p.name,
                number: of.number,
            })
        }
        None => None,
    };
    Ok(AppView {
        previews: PreviewsView {
            enabled: app.previews.enabled,
            domain_template: app.previews.domain_template.clone(),
            limit: app.previews.limit,
            forks: app.previews.forks,
            drafts: app.previews.drafts,
            env_keys,
        },
        preview_of,
        deploy_key,
        webhooks: secret::urls(&base, &app.name),
        git_credential: app.git_credential.is_some(),
        name: app.name,
        git_url: app.git_url,
        branch: app.branch,
        image: app.image,
        port: app.port,
        domains: app.domains,
        healthcheck: HealthcheckView {
            path: app.healthcheck.path,
            interval_ms: app.healthcheck.interval_ms,
            timeout_ms: app.healthcheck.timeout_ms,
            retries: app.healthcheck.retries,
        },
        resources: ResourcesView {
            memory_bytes: app.memory_bytes,
            cpus: app.cpus,
        },
        replicas: app.replicas,
        placement: PlacementView {
            constraints: app.placement.constraints,
            max_per_node: app.placement.max_per_node,
            spread: app.placement.spread,
        },
        stopped: app.stopped,
        status,
        running_deployment: running,
        certificates,
        current_commit,
        latest_deployment,
        created_at: app.created_at,
        updated_at: app.updated_at,
    })
}

/// Applies `body` over `base`, checking every value. Returns the fields and, when the git URL
/// changed, its credential (`Some(None)`: the new URL has none).
fn merge(base: AppFields, body: AppBody) -> Result<(AppFields, Option<Option<String>>), ApiError> {
    let mut f = base;
    if let Some(name) = body.name {
        f.name = name;
    }
    if !crate::db::apps::is_valid_name(&f.name) {
        return Err(ApiError::invalid_value(
            "name",
            format!(
                "`{}` is not a DNS label (lower-case letters, digits, inner hyphens, up to 63 characters)",
                f.name
            ),
        ));
    }
    let mut credential = None;
    if let Some(url) = body.git_url {
        let url = url.trim().to_owned();
        check_git_url(&url)?;
        let (clean, cred) = crate::engine::git::split_credential(&url);
        f.git_url = Some(clean);
        f.image = None;
        credential = Some(cred);
    }
    if let Some(image) = body.image {
        let image = image.trim().to_owned();
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(ApiError::invalid_value(
                "image",
                "an image reference such as `docker.io/library/nginx:1.27`",
            ));
        }
        f.image = Some(image);
        f.git_url = None;
        credential = Some(None);
    }
    if f.git_url.is_some() == f.image.is_some() {
        return Err(ApiError::invalid_value(
            "git_url",
            "give exactly one of `git_url` and `image`",
        ));
    }
    if let Some(branch) = body.branch {
        if branch.is_empty()
            || branch.starts_with('-')
            || branch.contains("..")
            || branch.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApiError::invalid_value(
                "branch",
                format!("`{branch}` is not a branch name"),
            ));
        }
        f.branch = branch;
    }
    if let Some(port) = body.port {
        f.port = limits::port(port).map_err(|e| ApiError::invalid_value("port", e))?;
    }
    if let Some(domains) = body.domains {
        let mut checked: Vec<String> = Vec::new();
        for (i, d) in domains.iter().enumerate() {
            let d = crate::host::validate_route_host(d)
                .map_err(|e| ApiError::invalid_value(&format!("domains[{i}]"), e))?;
            if checked.contains(&d) {
                return Err(ApiError::invalid_value(
                    &format!("domains[{i}]"),
                    format!("`{d}` is listed twice"),
                ));
            }
            checked.push(d);
        }
        f.domains = checked;
    }
    if let Some(h) = body.healthcheck {
        f.healthcheck = healthcheck(f.healthcheck, h)?;
    }
    if let Some(r) = body.resources {
        if let Some(m) = r.memory {
            f.memory_bytes = memory(m)?;
        }
        if let Some(c) = r.cpus {
            f.cpus =
                Some(limits::cpus(c).map_err(|e| ApiError::invalid_value("resources.cpus", e))?);
        }
    }
    if let Some(r) = body.replicas {
        f.replicas = limits::replicas(r).map_err(|e| ApiError::invalid_value("replicas", e))?;
    }
    if let Some(p) = body.placement {
        f.placement = placement(p)?;
    }
    Ok((f, credential))
}

/// A `placement` body, checked: the same limits as `[deploy.placement]` in `deploy.toml`.
fn placement(b: PlacementBody) -> Result<Placement, ApiError> {
    limits::constraint_count(b.constraints.len())
        .map_err(|e| ApiError::invalid_value("placement.constraints", e))?;
    for (i, c) in b.constraints.iter().enumerate() {
        limits::placement_constraint(c)
            .map_err(|e| ApiError::invalid_value(&format!("placement.constraints[{i}]"), e))?;
    }
    let max_per_node = limits::max_per_node(b.max_per_node)
        .map_err(|e| ApiError::invalid_value("placement.max_per_node", e))?;
    limits::spread_count(b.spread.len())
        .map_err(|e| ApiError::invalid_value("placement.spread", e))?;
    for (i, s) in b.spread.iter().enumerate() {
        limits::spread_label(s)
            .map_err(|e| ApiError::invalid_value(&format!("placement.spread[{i}]"), e))?;
    }
    Ok(Placement {
        constraints: b.constraints,
        max_per_node,
        spread: b.spread,
    })
}

/// Applies a `previews` body over the app's settings; returns them and the new env
/// overrides, if given.
fn merge_previews(
    mut settings: PreviewSettings,
    body: PreviewsBody,
) -> Result<
    (
        PreviewSettings,
        Option<std::collections::BTreeMap<String, String>>,
    ),
    ApiError,
> {
    if let Some(enabled) = body.enabled {
        settings.enabled = enabled;
    }
    if let Some(template) = body.domain_template {
        let template = template.trim().to_ascii_lowercase();
        if !template.contains("{number}") {
            return Err(ApiError::invalid_value(
                "previews.domain_template",
                "must contain {number}, or every preview would have the same host",
            ));
        }
        // Checked with sample values: the real host is checked again for each PR.
        crate::previews::preview_host(&template, "app", Some("example.com"), 1)
            .map_err(|e| ApiError::invalid_value("previews.domain_template", e))?;
        settings.domain_template = template;
    }
    if let Some(limit) = body.limit {
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid_value(
                "previews.limit",
                format!("{limit} is out of range (1 to 100)"),
            ));
        }
        settings.limit = limit;
    }
    if let Some(forks) = body.forks {
        settings.forks = forks;
    }
    if let Some(drafts) = body.drafts {
        settings.drafts = drafts;
    }
    if let Some(env) = &body.env {
        for key in env.keys() {
            limits::variable_name(key)
                .map_err(|e| ApiError::invalid_value(&format!("previews.env.{key}"), e))?;
        }
    }
    Ok((settings, body.env))
}

/// Stores the app's preview settings and, when given, its previews' env (sealed).
async fn store_previews(
    state: &AppState,
    app_id: i64,
    settings: PreviewSettings,
    env: Option<std::collections::BTreeMap<String, String>>,
) -> Result<(), ApiError> {
    let sealed = match env {
        Some(env) if env.is_empty() => Some(None),
        Some(env) => Some(Some(
            state
                .previews
                .seal_env(app_id, &env)
                .map_err(ApiError::internal)?,
        )),
        None => None,
    };
    state
        .db
        .call(move |c| {
            crate::db::apps::set_previews(
                c,
                app_id,
                &settings,
                sealed.as_ref().map(|s| s.as_deref()),
            )
        })
        .await
        .map_err(ApiError::internal)
}

/// `resources.memory`: `null` (no limit), bytes, or a size such as `"256M"`.
fn memory(value: serde_json::Value) -> Result<Option<u64>, ApiError> {
    let invalid = |e: limits::OutOfLimits| ApiError::invalid_value("resources.memory", e);
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => {
            let bytes = n.as_u64().ok_or_else(|| {
                ApiError::invalid_value("resources.memory", "a positive number of bytes")
            })?;
            limits::memory(bytes).map(Some).map_err(invalid)
        }
        serde_json::Value::String(s) => limits::parse_memory(&s).map(Some).map_err(invalid),
        _ => Err(ApiError::invalid_value(
            "resources.memory",
            "bytes, or a size such as \"256M\"",
        )),
    }
}

fn healthcheck(mut h: Healthcheck, b: HealthcheckBody) -> Result<Healthcheck, ApiError> {
    let field = |name: &'static str| move |e: limits::OutOfLimits| ApiError::invalid_value(name, e);
    if let Some(p) = b.path {
        limits::healthcheck_path(&p).map_err(field("healthcheck.path"))?;
        h.path = p;
    }
    if let Some(v) = b.interval_ms {
        h.interval_ms = limits::healthcheck_ms(v).map_err(field("healthcheck.interval_ms"))?;
    }
    if let Some(v) = b.timeout_ms {
        h.timeout_ms = limits::healthcheck_ms(v).map_err(field("healthcheck.timeout_ms"))?;
    }
    if let Some(r) = b.retries {
        h.retries = limits::healthcheck_retries(r).map_err(field("healthcheck.retries"))?;
    }
    Ok(h)
}

/// The URL kinds Rivetr clones (see [`crate::engine::git::url`]); the rest is refused here,
/// before anything is stored.
fn check_git_url(url: &str) -> Result<(), ApiError> {
    crate::engine::git::url::transport(url)
        .map(|_| ())
        .map_err(|e| ApiError::invalid_value("git_url", e.to_string()))
}

/// A host has one owner: the configuration (`[server] domain`, `[[proxy.routes]]`) or one app.
/// Hosts compare exactly, so an app may hold `a.example.com` under a configured
/// `*.example.com` (the exact name wins the lookup), but not the same wildcard.
async fn check_domains_free(
    state: &AppState,
    domains: &[String],
    except: Option<i64>,
) -> Result<(), ApiError> {
    let config = state.config.load();
    for d in domains {
        if let Some(holder) = config.host_holder(d) {
            return Err(ApiError::conflict(format!(
                "domain `{d}` belongs to {holder} in Rivetr's configuration"
            )));
        }
    }
    for d in domains {
        let name = d.clone();
        let owner = state
            .db
            .call(move |c| crate::db::apps::domain_owner(c, &name, except))
            .await
            .map_err(ApiError::internal)?;
        if let Some(owner) = owner {
            return Err(ApiError::conflict(format!(
                "domain `{d}` is already served by app `{owner}`"
            )));
        }
    }
    Ok(())
}

pub(super) async fn store_credential(
    state: &AppState,
    app_id: i64,
    credential: Option<String>,
) -> Result<(), ApiError> {
    let sealed = match credential {
        Some(c) => Some(
            state
                .secrets
                .encrypt_str(Purpose::GitCredential { app_id }, &c)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    state
        .db
        .call(move |c| crate::db::apps::set_git_credential(c, app_id, sealed.as_deref()))
        .await
        .map_err(ApiError::internal)
}

/// Creates an app.
#[utoipa::path(
    post,
    path = "/api/apps",
    tag = "apps",
    security(("bearer" = [])),
    request_body = NewAppBody,
    responses(
        (status = 201, description = "Created; the webhook secret is shown this once", body = CreatedApp),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Name taken, or a domain held by another app or by the configuration", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn create_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AppBody>,
) -> Result<(StatusCode, JsonResponse<CreatedApp>), ApiError> {
    if body.name.is_none() {
        return Err(ApiError::invalid_value("name", "required"));
    }
    let base = AppFields {
        name: String::new(),
        git_url: None,
        branch: "main".to_owned(),
        image: None,
        port: 8080,
        domains: Vec::new(),
        healthcheck: Healthcheck::default(),
        memory_bytes: None,
        cpus: None,
        replicas: 1,
        placement: Placement::default(),
    };
    let previews_body = body.previews.clone();
    let previews = match previews_body {
        Some(p) => Some(merge_previews(PreviewSettings::default(), p)?),
        None => None,
    };
    let (fields, credential) = merge(base, body)?;
    check_domains_free(&state, &fields.domains, None).await?;
    let name = fields.name.clone();
    let inserted = state
        .db
        .call(move |c| crate::db::apps::insert(c, &fields))
        .await;
    let app = match inserted {
        Ok(app) => app,
        Err(crate::db::DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(ApiError::conflict(format!(
                "an app named `{name}` already exists"
            )));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    store_credential(&state, app.id, credential.flatten()).await?;
    if let Some((settings, env)) = previews {
        store_previews(&state, app.id, settings, env).await?;
    }
    let webhook_secret = secret::rotate(&state.db, &state.secrets, app.id)
        .await
        .map_err(ApiError::internal)?;
    let app = find_app(&state, &name).await?;
    tracing::info!(app = %name, "app created");
    state.engine.app_changed(&name, "created");
    Ok((
        StatusCode::CREATED,
        JsonResponse(CreatedApp {
            app: view(&state, &headers, app).await?,
            webhook_secret: webhook_secret.expose().to_owned(),
        }),
    ))
}

/// Lists every app.
#[utoipa::path(
    get,
    path = "/api/apps",
    tag = "apps",
    security(("bearer" = [])),
    responses((status = 200, description = "Every app, by name; previews are listed under their app (`GET /api/apps/{app}/previews`)", body = Vec<AppView>))
)]
pub async fn list_apps(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<JsonResponse<Vec<AppView>>, ApiError> {
    // One database call for the whole list, not one per app: with 1,000 apps the hops to the
    // database thread were most of the answer's time (bench/scale.sh).
    let listed = state
        .db
        .call(|c| {
            crate::db::apps::list(c)?
                .into_iter()
                .filter(|a| a.preview_of.is_none())
                .map(|a| Ok((facts(c, a.id)?, a)))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map_err(ApiError::internal)?;
    let mut out = Vec::with_capacity(listed.len());
    for (facts, app) in listed {
        out.push(view_of(&state, &headers, app, facts).await?);
    }
    Ok(JsonResponse(out))
}

/// Shows one app.
#[utoipa::path(
    get,
    path = "/api/apps/{app}",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app", body = AppView),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn get_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<JsonResponse<AppView>, ApiError> {
    let app = find_app(&state, &name).await?;
    Ok(JsonResponse(view(&state, &headers, app).await?))
}

/// Changes an app. Settings apply at its next deployment; domains change at once.
#[utoipa::path(
    patch,
    path = "/api/apps/{app}",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    request_body = AppBody,
    responses(
        (status = 200, description = "The changed app", body = AppView),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "A domain is held by another app or by the configuration, or the app is a preview (it follows its app's settings)", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn update_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<AppBody>,
) -> Result<JsonResponse<AppView>, ApiError> {
    let app = find_app(&state, &name).await?;
    refuse_preview(&state, &app).await?;
    if body.name.as_ref().is_some_and(|n| n != &app.name) {
        return Err(ApiError::invalid_value(
            "name",
            "an app's name cannot change",
        ));
    }
    let base = AppFields {
        name: app.name.clone(),
        git_url: app.git_url.clone(),
        branch: app.branch.clone(),
        image: app.image.clone(),
        port: app.port,
        domains: app.domains.clone(),
        healthcheck: app.healthcheck.clone(),
        memory_bytes: app.memory_bytes,
        cpus: app.cpus,
        replicas: app.replicas,
        placement: app.placement.clone(),
    };
    let previews = match body.previews.clone() {
        Some(p) => Some(merge_previews(app.previews.clone(), p)?),
        None => None,
    };
    let (fields, credential) = merge(base, body)?;
    check_domains_free(&state, &fields.domains, Some(app.id)).await?;
    let id = app.id;
    let domains_changed = fields.domains != app.domains;
    state
        .db
        .call(move |c| crate::db::apps::update(c, id, &fields))
        .await
        .map_err(ApiError::internal)?;
    if let Some(credential) = credential {
        store_credential(&state, id, credential).await?;
    }
    if let Some((settings, env)) = previews {
        store_previews(&state, id, settings, env).await?;
    }
    if domains_changed {
        match state.engine.refresh_routes(&name).await {
            Ok(()) | Err(EngineError::NoRuntime(_)) => {}
            Err(e) => return Err(engine_error(e)),
        }
    }
    let app = find_app(&state, &name).await?;
    state.engine.app_changed(&name, "updated");
    Ok(JsonResponse(view(&state, &headers, app).await?))
}

/// Deletes an app with its previews, containers, images, routes, deployments and variables.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn delete_app(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Its previews go first (they run on its network), then its links (its databases leave
    // its network), its network last.
    let app = find_app(&state, &name).await?;
    if let Some(of) = app.preview_of {
        // As `DELETE /api/apps/{app}/previews/{number}`: the PR is recorded closed, so a late
        // delivery does not bring the preview back.
        let parent = state
            .db
            .call(move |c| crate::db::apps::get_by_id(c, of.app_id))
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no app named `{name}`")))?;
        state
            .previews
            .remove(&parent, of.number)
            .await
            .map_err(super::previews::preview_error)?;
        return Ok(StatusCode::NO_CONTENT);
    }
    state
        .previews
        .remove_all(&app)
        .await
        .map_err(super::previews::preview_error)?;
    state
        .databases
        .forget_app(&name)
        .await
        .map_err(super::databases::database_error)?;
    state.engine.delete_app(&name).await.map_err(engine_error)?;
    state.databases.remove_app_network(&name).await;
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! lifecycle_handler {
    ($fn:ident, $path:literal, $op:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "apps",
            security(("bearer" = [])),
            params(("app" = String, Path, description = "The app's name")),
            responses(
                (status = 200, description = "Done; the app as it is now", body = AppView),
                (status = 404, description = "No such app", body = ErrorBody),
                (status = 409, description = "The app was never deployed", body = ErrorBody),
                (status = 503, description = "No container engine", body = ErrorBody),
            )
        )]
        pub async fn $fn(
            State(state): State<AppState>,
            headers: HeaderMap,
            Path(name): Path<String>,
        ) -> Result<JsonResponse<AppView>, ApiError> {
            state.engine.$op(&name).await.map_err(engine_error)?;
            let app = find_app(&state, &name).await?;
            Ok(JsonResponse(view(&state, &headers, app).await?))
        }
    };
}

lifecycle_handler!(
    start_app,
    "/api/apps/{app}/start",
    start_app,
    "Starts a stopped app from its running deployment."
);
lifecycle_handler!(
    stop_app,
    "/api/apps/{app}/stop",
    stop_app,
    "Stops an app: its routes go and its containers stop."
);
lifecycle_handler!(
    restart_app,
    "/api/apps/{app}/restart",
    restart_app,
    "Stops and starts an app."
);

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::api::test_support::TestApi;

    fn body(v: Value) -> PlacementBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn placement_is_checked_and_errors_name_the_field() {
        let p = placement(body(json!({
            "constraints": ["node.role==worker", "engine.labels.disk != hdd"],
            "max_per_node": 2,
            "spread": ["node.labels.zone"],
        })))
        .unwrap();
        assert_eq!(p.constraints.len(), 2);
        assert_eq!(p.max_per_node, 2);
        assert_eq!(placement(body(json!({}))).unwrap(), Placement::default());

        let many: Vec<String> = (0..17).map(|i| format!("node.labels.l{i}==x")).collect();
        for (bad, field, says) in [
            (
                json!({"constraints": ["node.role==worker", "zone==eu"]}),
                "placement.constraints[1]",
                "node.",
            ),
            (
                json!({"constraints": ["node.role=worker"]}),
                "placement.constraints[0]",
                "`==` or `!=`",
            ),
            (
                json!({"constraints": ["node.role==a\u{7}"]}),
                "placement.constraints[0]",
                "control character",
            ),
            (
                json!({"constraints": [format!("node.labels.a=={}", "x".repeat(300))]}),
                "placement.constraints[0]",
                "256 bytes",
            ),
            (
                json!({"constraints": many}),
                "placement.constraints",
                "at most 16",
            ),
            (
                json!({"max_per_node": 1001}),
                "placement.max_per_node",
                "between 0 and 1000",
            ),
            (
                json!({"spread": ["node.labels.zone", "zone"]}),
                "placement.spread[1]",
                "node.labels.zone",
            ),
            (
                json!({"spread": ["node.labels.a", "node.labels.b", "node.labels.c", "node.labels.d", "node.labels.e"]}),
                "placement.spread",
                "at most 4",
            ),
        ] {
            let e = placement(body(bad.clone())).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert!(
                e.message.contains(&format!("`{field}`")) && e.message.contains(says),
                "{bad}: {}",
                e.message
            );
        }
        // Unknown keys are refused while the body is read.
        assert!(serde_json::from_value::<PlacementBody>(json!({"constraint": []})).is_err());
    }

    async fn call(
        api: &TestApi,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", api.token))
            .header("content-type", "application/json");
        let req = match body {
            Some(b) => req.body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let res = api.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn placement_is_stored_shown_and_replaced_whole() {
        let api = TestApi::new().await;
        let (status, created) = call(
            &api,
            "POST",
            "/api/apps",
            Some(json!({
                "name": "placed", "image": "nginx",
                "placement": {"constraints": ["node.role==worker"], "max_per_node": 1},
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(
            created["placement"],
            json!({"constraints": ["node.role==worker"], "max_per_node": 1, "spread": []})
        );
        // Without `placement` in a PATCH it stays; with it, it is replaced whole.
        let (status, changed) = call(
            &api,
            "PATCH",
            "/api/apps/placed",
            Some(json!({"port": 9000})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["placement"]["max_per_node"], 1);
        let (status, changed) = call(
            &api,
            "PATCH",
            "/api/apps/placed",
            Some(json!({"placement": {"spread": ["node.labels.zone"]}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(
            changed["placement"],
            json!({"constraints": [], "max_per_node": 0, "spread": ["node.labels.zone"]})
        );
        // A refused placement changes nothing.
        let (status, refused) = call(
            &api,
            "PATCH",
            "/api/apps/placed",
            Some(json!({"port": 7000, "placement": {"constraints": ["node.role==worker", "bad"]}})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`placement.constraints[1]`"),
            "{refused}"
        );
        let (_, shown) = call(&api, "GET", "/api/apps/placed", None).await;
        assert_eq!(shown["port"], 9000);
        assert_eq!(shown["placement"]["spread"], json!(["node.labels.zone"]));
    }
}

//! Preview deployments: a running copy of each open pull request of an app, at its own host.
//!
//! ```text
//! webhook (pull_request) -> policy::plan (settings, what was last heard of the PR)
//!                        -> deploy the head as app `<app>-pr-<n>` | remove it | ignore | refuse
//! ```
//!
//! A preview is an app of its own, tied to the app it previews (`apps.preview_of`), so its
//! deployments, logs, routes, certificate and zero-downtime switches are the engine's as for
//! any app; the engine clones it with the parent's git access and gives it the parent's
//! environment with the previews' overrides on top (see `engine::pipeline::environment`).
//! This module owns when a preview exists: it records every PR's state in `pull_requests`
//! before acting, so a late or repeated delivery changes nothing, and [`Previews::reconcile`]
//! finishes a removal a crash or a stop interrupted.

mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use policy::{Current, Plan, PrAction, PullRequest, plan, preview_host, preview_name};

use crate::config::Config;
use crate::db::apps::{App, AppFields};
use crate::db::deployments::Deployment;
use crate::db::pull_requests::PullRequestRow;
use crate::db::{Db, DbError};
use crate::engine::{DeployRequest, Engine, EngineError, Trigger};
use crate::secrets::{Purpose, Secrets};

/// What an event did.
#[derive(Debug)]
pub enum Outcome {
    /// The preview's deployment was queued.
    Queued {
        preview: String,
        deployment: Box<Deployment>,
    },
    /// The preview and everything of it went.
    Removed {
        preview: String,
        why: String,
    },
    Ignored(String),
    /// The PR gets no preview, and why (recorded for `GET /api/apps/{app}/previews`).
    Refused(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Secret(String),
}

/// The handle; cheap to clone.
#[derive(Clone)]
pub struct Previews {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    engine: Engine,
    secrets: Arc<Secrets>,
    config: Arc<ArcSwap<Config>>,
    /// One event per app at a time: two deliveries of one PR must not both create its preview.
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Previews {
    pub fn new(
        db: Db,
        engine: Engine,
        secrets: Arc<Secrets>,
        config: Arc<ArcSwap<Config>>,
    ) -> Previews {
        Previews {
            inner: Arc::new(Inner {
                db,
                engine,
                secrets,
                config,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Does what `pr` asks of `app`'s previews (see [`policy::plan`]).
    pub async fn handle(
        &self,
        app: &App,
        pr: &PullRequest,
        trigger: Trigger,
    ) -> Result<Outcome, PreviewError> {
        if app.preview_of.is_some() {
            return Ok(Outcome::Ignored(format!(
                "`{}` is itself a preview; point the webhook at the app it previews",
                app.name
            )));
        }
        let lock = self.lock(app.id);
        let _one_at_a_time = lock.lock().await;
        let (app_id, number) = (app.id, pr.number);
        let (known, previews) = self
            .inner
            .db
            .call(move |c| {
                Ok((
                    crate::db::pull_requests::get(c, app_id, number)?,
                    crate::db::apps::previews_of(c, app_id)?,
                ))
            })
            .await?;
        let existing = previews
            .iter()
            .find(|p| p.preview_of.is_some_and(|o| o.number == number))
            .cloned();
        let now = Current {
            known: known.as_ref(),
            has_preview: existing.is_some(),
            previews: previews
                .iter()
                .filter_map(|p| p.preview_of.map(|o| o.number))
                .collect(),
        };
        let (plan, open) = policy::plan(&app.name, &app.previews, pr, &now);
        let refused = match &plan {
            Plan::Refuse(why) => Some(why.clone()),
            _ => None,
        };
        // Recorded before acting: a removal that a crash cuts short is finished at the next
        // start (see `reconcile`), and a later delivery is weighed against this one.
        if let Some(open) = open {
            self.record(app.id, pr, known.as_ref(), open, refused.clone())
                .await?;
        }
        match plan {
            Plan::Ignore(why) => Ok(Outcome::Ignored(why)),
            Plan::Remove { why } => {
                let preview = existing.map(|p| p.name).unwrap_or_default();
                self.remove_preview(&preview, &why).await?;
                Ok(Outcome::Removed { preview, why })
            }
            Plan::Refuse(why) => {
                if let Some(p) = existing {
                    self.remove_preview(&p.name, &why).await?;
                }
                tracing::warn!(app = %app.name, pr = number, reason = %why, "no preview for the pull request");
                Ok(Outcome::Refused(why))
            }
            Plan::Deploy => match self.deploy(app, existing.as_ref(), pr, trigger).await? {
                Ok(outcome) => Ok(outcome),
                Err(why) => {
                    tracing::warn!(app = %app.name, pr = number, reason = %why, "no preview for the pull request");
                    self.record(app.id, pr, known.as_ref(), true, Some(why.clone()))
                        .await?;
                    Ok(Outcome::Refused(why))
                }
            },
        }
    }

    /// Removes the preview of PR `number` of `app` by request (a close the forge never
    /// delivered); the PR is recorded closed, so a late delivery does not bring it back.
    /// False when there was none.
    pub async fn remove(&self, app: &App, number: u64) -> Result<bool, PreviewError> {
        let lock = self.lock(app.id);
        let _one_at_a_time = lock.lock().await;
        let app_id = app.id;
        let (known, previews) = self
            .inner
            .db
            .call(move |c| {
                Ok((
                    crate::db::pull_requests::get(c, app_id, number)?,
                    crate::db::apps::previews_of(c, app_id)?,
                ))
            })
            .await?;
        let Some(preview) = previews
            .into_iter()
            .find(|p| p.preview_of.is_some_and(|o| o.number == number))
        else {
            return Ok(false);
        };
        let mut row = known.unwrap_or_else(|| PullRequestRow {
            app_id,
            number,
            open: true,
            head_ref: preview.branch.clone(),
            head_sha: String::new(),
            forge_updated_at: None,
            refused: None,
            updated_at: String::new(),
        });
        row.open = false;
        self.inner
            .db
            .call(move |c| crate::db::pull_requests::record(c, &row))
            .await?;
        self.remove_preview(&preview.name, "removed through the API")
            .await?;
        Ok(true)
    }

    /// Removes every preview of `app` (which is being deleted).
    pub async fn remove_all(&self, app: &App) -> Result<(), PreviewError> {
        let lock = self.lock(app.id);
        let _one_at_a_time = lock.lock().await;
        let app_id = app.id;
        let previews = self
            .inner
            .db
            .call(move |c| crate::db::apps::previews_of(c, app_id))
            .await?;
        for p in previews {
            self.remove_preview(&p.name, &format!("app `{}` is deleted", app.name))
                .await?;
        }
        Ok(())
    }

    /// After a start: removes the previews whose PR was recorded closed but whose removal
    /// did not finish (Rivetr stopped or crashed on the way). Returns their names.
    pub async fn reconcile(&self) -> Result<Vec<String>, PreviewError> {
        // Removing needs the engine (without it the images would stay behind for good), and
        // Rivetr may start before its engine: wait for one.
        let shutdown = self.inner.engine.shutdown_token();
        let mut pause = std::time::Duration::from_secs(1);
        while !self.inner.engine.has_runtime() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Vec::new()),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(std::time::Duration::from_secs(30));
        }
        let leftovers = self
            .inner
            .db
            .call(|c| crate::db::pull_requests::closed_with_preview(c))
            .await?;
        let mut removed = Vec::new();
        for (name, number) in leftovers {
            self.remove_preview(&name, &format!("PR #{number} was closed"))
                .await?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// The env overrides of `app`'s previews, decrypted (values are secrets to the log).
    pub fn env(&self, app: &App) -> Result<BTreeMap<String, String>, PreviewError> {
        crate::engine::preview_env(&self.inner.secrets, app)
            .map_err(|e| PreviewError::Secret(e.to_string()))
    }

    /// Seals `env` as `app`'s preview overrides.
    pub fn seal_env(
        &self,
        app_id: i64,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, PreviewError> {
        let json = serde_json::to_string(env).map_err(|e| PreviewError::Secret(e.to_string()))?;
        self.inner
            .secrets
            .encrypt_str(Purpose::PreviewEnv { app_id }, &json)
            .map_err(|e| PreviewError::Secret(e.to_string()))
    }

    fn lock(&self, app_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(app_id).or_default())
    }

    async fn record(
        &self,
        app_id: i64,
        pr: &PullRequest,
        known: Option<&PullRequestRow>,
        open: bool,
        refused: Option<String>,
    ) -> Result<(), PreviewError> {
        // The newest time heard of stays, so a late delivery is known as late.
        let forge_updated_at = match (known.and_then(|k| k.forge_updated_at), pr.updated_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let row = PullRequestRow {
            app_id,
            number: pr.number,
            open,
            head_ref: pr.head_ref.clone(),
            head_sha: pr.head_sha.clone(),
            forge_updated_at,
            refused,
            updated_at: String::new(),
        };
        self.inner
            .db
            .call(move |c| crate::db::pull_requests::record(c, &row))
            .await?;
        Ok(())
    }

    /// Creates or updates the preview app of `pr` from `app` and queues its head. The inner
    /// `Err` is a refusal, with its reason.
    async fn deploy(
        &self,
        app: &App,
        existing: Option<&App>,
        pr: &PullRequest,
        trigger: Trigger,
    ) -> Result<Result<Outcome, String>, PreviewError> {
        let fields = match self.preview_fields(app, existing, pr).await? {
            Ok(fields) => fields,
            Err(why) => return Ok(Err(why)),
        };
        let name = fields.name.clone();
        let domains_changed = existing.is_some_and(|e| e.domains != fields.domains);
        let (parent, number) = (app.id, pr.number);
        let stored = match existing {
            Some(e) => {
                let id = e.id;
                self.inner
                    .db
                    .call(move |c| crate::db::apps::update(c, id, &fields))
                    .await
            }
            None => {
                self.inner
                    .db
                    .call(move |c| crate::db::apps::insert_preview(c, &fields, parent, number))
                    .await
            }
        };
        let preview = match stored {
            Ok(p) => p,
            Err(DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Ok(Err(format!(
                    "an app named `{name}` exists and is not this PR's preview; rename it to preview PR #{number}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if domains_changed {
            self.inner.engine.refresh_routes(&preview.name).await?;
        }
        if existing.is_none() {
            self.inner.engine.app_changed(&preview.name, "created");
            tracing::info!(app = %app.name, pr = number, preview = %preview.name, host = %preview.domains.join(", "), "preview created");
        }
        let deployment = self
            .inner
            .engine
            .deploy(DeployRequest {
                app_id: preview.id,
                app: preview.name.clone(),
                git_ref: Some(pr.head_ref.clone()),
                commit_sha: Some(pr.head_sha.clone()),
                trigger,
            })
            .await?;
        Ok(Ok(Outcome::Queued {
            preview: preview.name,
            deployment: Box::new(deployment),
        }))
    }

    /// The preview app's settings: the app's, on the PR's branch, at the template's host, one
    /// replica. The inner `Err` says why there can be no preview.
    async fn preview_fields(
        &self,
        app: &App,
        existing: Option<&App>,
        pr: &PullRequest,
    ) -> Result<Result<AppFields, String>, PreviewError> {
        let Some(git_url) = app.git_url.clone() else {
            return Ok(Err(format!(
                "app `{}` runs an image, not a git repository; a preview builds the PR's code",
                app.name
            )));
        };
        let name = preview_name(&app.name, pr.number);
        if !crate::db::apps::is_valid_name(&name) {
            return Ok(Err(format!(
                "the preview's name `{name}` is over 63 characters; previews need an app name of at most {} characters for this PR number",
                63 - (name.len() - app.name.len())
            )));
        }
        let host = match preview_host(
            &app.previews.domain_template,
            &app.name,
            app.domains.first().map(String::as_str),
            pr.number,
        ) {
            Ok(host) => host,
            Err(why) => return Ok(Err(why)),
        };
        if let Some(holder) = self.inner.config.load().host_holder(&host) {
            return Ok(Err(format!(
                "the preview's host `{host}` belongs to {holder} in Rivetr's configuration"
            )));
        }
        let except = existing.map(|e| e.id);
        let probe = host.clone();
        let owner = self
            .inner
            .db
            .call(move |c| crate::db::apps::domain_owner(c, &probe, except))
            .await?;
        if let Some(owner) = owner {
            return Ok(Err(format!(
                "the preview's host `{host}` is already served by app `{owner}`"
            )));
        }
        Ok(Ok(AppFields {
            name,
            git_url: Some(git_url),
            branch: pr.head_ref.clone(),
            image: None,
            port: app.port,
            domains: vec![host],
            healthcheck: app.healthcheck.clone(),
            memory_bytes: app.memory_bytes,
            cpus: app.cpus,
            replicas: 1,
            // On a swarm a preview runs where the app may.
            placement: app.placement.clone(),
        }))
    }

    async fn remove_preview(&self, name: &str, why: &str) -> Result<(), PreviewError> {
        // Without an engine its containers and images would stay behind for good: refuse
        // (503; the PR is already recorded closed, so a retry or the next start removes it).
        if !self.inner.engine.has_runtime() {
            return Err(EngineError::NoRuntime(format!(
                "cannot remove preview `{name}` now ({why})"
            ))
            .into());
        }
        match self.inner.engine.delete_app(name).await {
            Ok(()) => {
                tracing::info!(preview = %name, reason = %why, "preview removed");
                Ok(())
            }
            Err(EngineError::AppNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

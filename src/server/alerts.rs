//! What happens elsewhere, turned into notifications: the engine's finished deployments,
//! certificates about to end, and containers their engine keeps restarting. It sits here,
//! with the wiring, because it reads the engine, the proxy's certificates and the container
//! engine, none of which [`crate::notify`] may depend on (the proxy and the databases call
//! it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::engine::events::{Event as EngineEvent, EventKind};
use crate::notify::watch::{CRASH_LOOP_WINDOW, EXPIRY_WARNING, RestartHistory};
use crate::notify::{Event, Message, Notifier};
use crate::proxy::tls::CertStore;
use crate::runtime::{LabelFilter, SharedDetection};

/// Announces finished deployments from the engine's events until shutdown.
pub async fn announce_deployments(
    notifier: Notifier,
    mut events: broadcast::Receiver<EngineEvent>,
    db: Db,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Ok(e) if e.kind == EventKind::DeploymentFinished => {
                if let Some(id) = e.deployment {
                    announce_deployment(&notifier, &db, id, &e.status).await;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "deployment events came faster than notifications were queued; some were not announced"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Announces deployment `id`, which ended as `status` (the event's word: by the time the
/// row is read, a newer deployment may already have replaced it).
async fn announce_deployment(notifier: &Notifier, db: &Db, id: i64, status: &str) {
    let found = db
        .call(move |c| {
            let Some(d) = crate::db::deployments::get(c, id)? else {
                return Ok(None);
            };
            let serving = crate::db::deployments::running(c, d.app_id)?;
            Ok(Some((d, serving)))
        })
        .await;
    let Ok(Some((d, serving))) = found else {
        return;
    };
    let (event, title, text) = match status {
        "running" if d.rollback_of.is_some() => (
            Event::DeploymentRolledBack,
            format!(
                "{}: rolled back to deployment {}",
                d.app,
                d.rollback_of.unwrap_or(0)
            ),
            format!(
                "Deployment {} put the image of deployment {} back into service.",
                d.id,
                d.rollback_of.unwrap_or(0)
            ),
        ),
        "running" => (
            Event::DeploymentSucceeded,
            format!("{}: deployment {} is live", d.app, d.id),
            match &d.commit_subject {
                Some(subject) => format!("Now serving: {subject}"),
                None => "The new version is serving.".to_owned(),
            },
        ),
        "failed" => (
            Event::DeploymentFailed,
            format!("{}: deployment {} failed", d.app, d.id),
            format!(
                "{}\n\n{}",
                d.reason.as_deref().unwrap_or("No reason was recorded."),
                match serving {
                    Some(s) => format!("Deployment {} keeps serving.", s.id),
                    None => "Nothing of the app was serving before it, so nothing is served now."
                        .to_owned(),
                }
            ),
        ),
        // Cancelled, superseded or replaced: someone's choice, nothing to tell.
        _ => return,
    };
    notifier.emit(Message {
        app: Some(d.app.clone()),
        deployment: Some(d.id),
        commit: d.commit_sha.clone(),
        url: Some(notifier.deployment_url(d.id)),
        ..Message::new(event, title, text)
    });
}

/// Looks at certificates and containers every `[notifications] check_seconds`.
pub async fn watch_health(
    notifier: Notifier,
    certs: Arc<CertStore>,
    runtime: SharedDetection,
    shutdown: CancellationToken,
) {
    let mut expiring = HashSet::new();
    let mut restarts = RestartHistory::default();
    loop {
        check_certificates(&notifier, &certs, &mut expiring).await;
        if let Some(rt) = runtime.load().runtime.clone() {
            check_containers(&notifier, rt.as_ref(), &mut restarts).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(notifier.settings().check_every) => {}
        }
    }
}

/// Announces each certificate ending within [`EXPIRY_WARNING`], once per certificate
/// (once it reached a channel: one added later still hears of it).
async fn check_certificates(
    notifier: &Notifier,
    certs: &CertStore,
    announced: &mut HashSet<(String, SystemTime)>,
) {
    let now = SystemTime::now();
    for state in certs.certificate_states() {
        let Some(until) = state.valid_until else {
            continue;
        };
        let key = (state.domain.clone(), until);
        if until > now + EXPIRY_WARNING || announced.contains(&key) {
            continue;
        }
        let left = until.duration_since(now).unwrap_or_default();
        let ends = chrono::DateTime::<chrono::Utc>::from(until)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let why = match &state.last_error {
            Some(e) => format!(" The last renewal failed: {e}."),
            None => String::new(),
        };
        let message = Message {
            domain: Some(state.domain.clone()),
            ..Message::new(
                Event::CertificateExpiring,
                format!(
                    "{}: certificate expires in {} days",
                    state.domain,
                    left.as_secs() / 86400
                ),
                format!(
                    "The {} certificate of {} is valid until {ends} and has not been renewed.{why}",
                    state.source.as_str(),
                    state.domain
                ),
            )
        };
        match notifier.enqueue(message).await {
            Ok(0) => {}
            Ok(_) => {
                announced.insert(key);
            }
            Err(e) => tracing::warn!(error = %e, "cannot queue a certificate notification"),
        }
    }
}

/// Announces containers of Rivetr's that their engine restarted
/// [`crate::notify::watch::CRASH_LOOP_RESTARTS`] times within [`CRASH_LOOP_WINDOW`], once
/// per loop.
async fn check_containers(
    notifier: &Notifier,
    runtime: &dyn crate::runtime::ContainerRuntime,
    history: &mut RestartHistory,
) {
    // This installation's containers: its apps' and its databases' (which carry no
    // app label, and are the ones the engine restarts).
    let filter = [LabelFilter::eq(
        crate::runtime::LABEL_INSTANCE,
        notifier.db().instance_id(),
    )];
    let containers = match runtime.list(&filter).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list containers for the crash-loop check");
            return;
        }
    };
    let now = Instant::now();
    let mut seen = HashSet::new();
    for c in containers {
        if !c.labels.contains_key(crate::runtime::LABEL_APP)
            && !c.labels.contains_key(crate::databases::LABEL_DATABASE)
        {
            continue;
        }
        let Ok(info) = runtime.inspect(&c.id).await else {
            continue;
        };
        seen.insert(info.id.clone());
        if history.observe(&info.id, info.restart_count, now) {
            let app = info
                .labels
                .get(crate::runtime::LABEL_APP)
                .cloned()
                .unwrap_or_default();
            let database = info.labels.get(crate::databases::LABEL_DATABASE).cloned();
            let what = database
                .clone()
                .map(|d| format!("database {d}"))
                .unwrap_or_else(|| format!("app {app}"));
            let exit = info
                .exit_code
                .map(|c| format!(" Its last exit code was {c}."))
                .unwrap_or_default();
            notifier.emit(Message {
                app: database.is_none().then_some(app),
                database,
                ..Message::new(
                    Event::ContainerCrashLooping,
                    format!("{what}: container {} is crash looping", info.name),
                    format!(
                        "The engine restarted it {} times in {} minutes.{exit} Its output: \
                         GET the logs of the {what}.",
                        info.restart_count,
                        CRASH_LOOP_WINDOW.as_secs() / 60
                    ),
                )
            });
        }
    }
    history.forget_others(&seen);
}

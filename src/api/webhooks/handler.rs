//! `POST /webhooks/{provider}/{app}`: the HTTP side of a forge's delivery.
//!
//! In order: the provider and the app (404 if unknown), the failure limit of this client for
//! this app's webhook (429), the body (413 over 5 MB), the app's secret, decrypted for this
//! request only; the signature (401, logged with the client's address and counted as a failed
//! authentication); the delivery id
//! and the event (400 naming the header or field). Then [`super::decide`]: a ping answers 200,
//! anything that does not deploy 202 with the reason, and a push to the app's branch claims
//! the delivery id (a repeat answers 200 and queues nothing) and goes to the engine through
//! [`crate::engine::Deployer`]. If the engine refuses, the claim is released so the
//! forge's retry is not mistaken for a repeat. A pull request event claims its delivery the
//! same way and goes to [`crate::previews`].

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{BODY_LIMIT, Decision, Provider, WebhookError};
use crate::AppState;
use crate::api::apps::engine_error;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Path, read_body};
use crate::auth::Scope;
use crate::engine::{DeployRequest, Trigger};
use crate::previews::Outcome;
use crate::secrets::Purpose;

/// The answer to a delivery the signature check let through.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// `queued` (202), `ignored` (202), `duplicate` (200) or `pong` (200); for pull
    /// requests also `removed` (200: the PR's preview went) and `refused` (202: the PR gets
    /// no preview, for the reason given).
    pub outcome: &'static str,
    pub message: String,
    /// The queued deployment, for `queued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<i64>,
    /// The preview app a pull request event deployed or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

fn answer(
    status: StatusCode,
    outcome: &'static str,
    message: String,
    deployment_id: Option<i64>,
) -> Response {
    let body = WebhookOutcome {
        outcome,
        message,
        deployment_id,
        preview: None,
    };
    (status, axum::Json(body)).into_response()
}

/// Receives a forge's webhook delivery for an app.
#[utoipa::path(
    post,
    path = "/webhooks/{provider}/{app}",
    tag = "webhooks",
    params(
        ("provider" = String, Path, description = "`github`, `gitlab` or `gitea` (also Forgejo and Gogs)"),
        ("app" = String, Path, description = "The app's name"),
    ),
    request_body(content = String, description = "The forge's payload as it sent it: JSON, or form-encoded with the JSON in `payload` (GitHub, Gitea)", content_type = "application/json"),
    responses(
        (status = 200, description = "A ping, a delivery already received, or a closed pull request's preview removed", body = WebhookOutcome),
        (status = 202, description = "Queued, or ignored with the reason (another branch, a tag, a deleted branch, another event), or a pull request refused a preview with the reason (a fork, the limit)", body = WebhookOutcome),
        (status = 400, description = "A header or payload field is missing or malformed", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature or token", body = ErrorBody),
        (status = 404, description = "Unknown provider or app", body = ErrorBody),
        (status = 413, description = "Body over 5 MB", body = ErrorBody),
        (status = 429, description = "Too many failed signatures from this address for this app", body = ErrorBody),
        (status = 503, description = "No container engine, or the engine is stopping: nothing was queued", body = ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, app)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let provider = Provider::from_path(&provider).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown webhook provider `{provider}`: use github, gitlab or gitea"
        ))
    })?;
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| *p);
    let client = crate::api::auth::client_of(&state, &parts.headers, peer);
    let name = app.clone();
    let target = state
        .db
        .call(move |c| crate::db::webhooks::target(c, &name))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no app named `{app}`")))?;
    let scope = Scope::Webhook(target.app_id);
    if let Err(wait) = state.auth_failures.check(client, scope, Instant::now()) {
        return Ok(crate::api::auth::rate_limited(client, wait));
    }
    let body = read_body(&parts.headers, body, BODY_LIMIT).await?;
    let sealed = target.sealed_secret.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "webhook_secret_unset",
            format!(
                "app `{app}` has no webhook secret yet: create one with \
                 POST /api/apps/{app}/webhook-secret"
            ),
        )
    })?;
    let secret = state
        .secrets
        .decrypt(
            Purpose::WebhookSecret {
                app_id: target.app_id,
            },
            sealed,
        )
        .map_err(ApiError::internal)?;

    // A failure is set aside just before the signature is checked (nothing is awaited in
    // between), so deliveries read at the same time cannot outrun the limit; it is given back
    // when the signature is good.
    let reservation = match state.auth_failures.reserve(client, scope, Instant::now()) {
        Ok(reservation) => reservation,
        Err(wait) => return Ok(crate::api::auth::rate_limited(client, wait)),
    };
    if let Err(e) = provider.verify(&parts.headers, &body, &secret) {
        reservation.failed();
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        tracing::warn!(provider = provider.as_str(), app = %app, %client, %peer, reason = %e, "webhook refused");
        return Err(ApiError::unauthorized(e.to_string()));
    }
    drop(secret);
    reservation.succeeded();

    let delivery_id = provider.delivery_id(&parts.headers).map_err(invalid)?;
    let event = provider.event(&parts.headers, &body).map_err(invalid)?;
    match super::decide(&event, &target.branch) {
        Decision::Pong => Ok(answer(
            StatusCode::OK,
            "pong",
            "webhook reached Rivetr".to_owned(),
            None,
        )),
        Decision::Ignore(reason) => {
            tracing::info!(provider = provider.as_str(), app = %app, delivery = %delivery_id, %reason, "webhook ignored");
            Ok(answer(StatusCode::ACCEPTED, "ignored", reason, None))
        }
        Decision::Deploy { branch, commit_sha } => {
            let request = DeployRequest {
                app_id: target.app_id,
                app: app.clone(),
                git_ref: Some(branch),
                commit_sha: Some(commit_sha),
                trigger: Trigger::Webhook {
                    provider: provider.as_str(),
                    delivery_id,
                },
            };
            deploy(&state, request).await
        }
        Decision::Preview(pr) => {
            let trigger = Trigger::Webhook {
                provider: provider.as_str(),
                delivery_id,
            };
            preview(&state, target.app_id, &pr, trigger).await
        }
    }
}

/// Claims the delivery and hands the pull request event to the previews; a repeat answers
/// 200 and does nothing. If that fails, the claim is released for the forge's retry.
async fn preview(
    state: &AppState,
    app_id: i64,
    pr: &crate::previews::PullRequest,
    trigger: Trigger,
) -> Result<Response, ApiError> {
    let Trigger::Webhook {
        provider,
        delivery_id,
    } = trigger.clone()
    else {
        return Err(ApiError::internal("preview without a webhook trigger"));
    };
    let app = state
        .db
        .call(move |c| crate::db::apps::get_by_id(c, app_id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("the app was deleted"))?;
    let id = delivery_id.clone();
    let claimed = state
        .db
        .call(move |c| crate::db::webhooks::claim_delivery(c, app_id, provider, &id))
        .await
        .map_err(ApiError::internal)?;
    if !claimed {
        tracing::info!(provider, app = %app.name, delivery = %delivery_id, "webhook delivery already received; nothing done");
        return Ok(answer(
            StatusCode::OK,
            "duplicate",
            format!("delivery `{delivery_id}` was already received; nothing done"),
            None,
        ));
    }
    let outcome = match state.previews.handle(&app, pr, trigger).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let id = delivery_id.clone();
            state
                .db
                .call(move |c| crate::db::webhooks::release_delivery(c, app_id, provider, &id))
                .await
                .map_err(ApiError::internal)?;
            return Err(match e {
                crate::previews::PreviewError::Engine(e) => engine_error(e),
                other => ApiError::internal(other),
            });
        }
    };
    let number = pr.number;
    let (status, kind, message, deployment_id, preview) = match outcome {
        Outcome::Queued {
            preview,
            deployment,
        } => {
            let (id, deployment_id) = (delivery_id.clone(), deployment.id);
            state
                .db
                .call(move |c| {
                    crate::db::webhooks::set_delivery_deployment(
                        c,
                        app_id,
                        provider,
                        &id,
                        deployment_id,
                    )
                })
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(provider, app = %app.name, pr = number, preview = %preview, delivery = %delivery_id, commit = %pr.head_sha, deployment = deployment_id, "webhook queued a preview deployment");
            let message = format!(
                "preview `{preview}` of PR #{number}: deployment {deployment_id} of {} queued",
                pr.head_sha
            );
            (
                StatusCode::ACCEPTED,
                "queued",
                message,
                Some(deployment_id),
                Some(preview),
            )
        }
        Outcome::Removed { preview, why } => {
            let message = format!("preview `{preview}` removed: {why}");
            (StatusCode::OK, "removed", message, None, Some(preview))
        }
        Outcome::Ignored(why) => {
            tracing::info!(provider, app = %app.name, pr = number, delivery = %delivery_id, reason = %why, "webhook ignored");
            (StatusCode::ACCEPTED, "ignored", why, None, None)
        }
        Outcome::Refused(why) => (StatusCode::ACCEPTED, "refused", why, None, None),
    };
    let body = WebhookOutcome {
        outcome: kind,
        message,
        deployment_id,
        preview,
    };
    Ok((status, axum::Json(body)).into_response())
}

fn invalid(e: WebhookError) -> ApiError {
    ApiError::bad_request("invalid_webhook", e.to_string())
}

/// Claims the delivery and queues the deployment, or answers that it was seen before.
async fn deploy(state: &AppState, request: DeployRequest) -> Result<Response, ApiError> {
    let Trigger::Webhook {
        provider,
        delivery_id,
    } = request.trigger.clone()
    else {
        return Err(ApiError::internal(
            "webhook deploy without a webhook trigger",
        ));
    };
    let app_id = request.app_id;
    let key = (provider, delivery_id.clone());
    let claimed = state
        .db
        .call(move |c| crate::db::webhooks::claim_delivery(c, app_id, key.0, &key.1))
        .await
        .map_err(ApiError::internal)?;
    if !claimed {
        tracing::info!(provider, app = %request.app, delivery = %delivery_id, "webhook delivery already received; nothing queued");
        return Ok(answer(
            StatusCode::OK,
            "duplicate",
            format!("delivery `{delivery_id}` was already received; nothing queued"),
            None,
        ));
    }
    let app = request.app.clone();
    let commit = request.commit_sha.clone().unwrap_or_default();
    match state.deployer.enqueue(request).await {
        Ok(queued) => {
            let id = delivery_id.clone();
            let deployment_id = queued.id;
            state
                .db
                .call(move |c| {
                    crate::db::webhooks::set_delivery_deployment(
                        c,
                        app_id,
                        provider,
                        &id,
                        deployment_id,
                    )
                })
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(provider, app = %app, delivery = %delivery_id, commit = %commit, deployment = deployment_id, "webhook queued a deployment");
            Ok(answer(
                StatusCode::ACCEPTED,
                "queued",
                format!("deployment {deployment_id} of {commit} queued"),
                Some(deployment_id),
            ))
        }
        Err(e) => {
            let id = delivery_id.clone();
            state
                .db
                .call(move |c| crate::db::webhooks::release_delivery(c, app_id, provider, &id))
                .await
                .map_err(ApiError::internal)?;
            Err(engine_error(e))
        }
    }
}

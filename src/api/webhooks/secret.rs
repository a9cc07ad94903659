//! An app's webhook secret: made at random, stored encrypted, shown once.
//!
//! [`rotate`] is what `POST /api/apps` (when it creates an app) and `POST
//! /api/apps/{app}/webhook-secret` (to replace a leaked one) call; the old secret stops
//! working at once. [`urls`] gives the addresses to paste into each forge.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use serde::Serialize;
use utoipa::ToSchema;

use super::Provider;
use crate::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::Path;
use crate::db::Db;
use crate::secrets::{Purpose, SecretString, Secrets, SecretsError};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("no app with id {0}")]
    NoApp(i64),
}

/// Gives the app a new random webhook secret, stores it encrypted, and returns it: the only
/// time it is readable.
pub async fn rotate(db: &Db, secrets: &Secrets, app_id: i64) -> Result<SecretString, SecretError> {
    let secret = crate::secrets::random_hex_secret()?;
    let sealed = secrets.encrypt_str(Purpose::WebhookSecret { app_id }, secret.expose())?;
    let updated = db
        .call(move |c| crate::db::webhooks::set_secret(c, app_id, &sealed))
        .await?;
    if !updated {
        return Err(SecretError::NoApp(app_id));
    }
    Ok(secret)
}

/// Where each forge should send an app's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookUrls {
    pub github: String,
    pub gitlab: String,
    pub gitea: String,
}

/// The webhook URLs of `app` under `base` (`https://paas.example.com`, no trailing slash).
pub fn urls(base: &str, app: &str) -> WebhookUrls {
    let url = |p: Provider| format!("{base}/webhooks/{}/{app}", p.as_str());
    WebhookUrls {
        github: url(Provider::GitHub),
        gitlab: url(Provider::GitLab),
        gitea: url(Provider::Gitea),
    }
}

/// The base URL forges reach Rivetr at: `https://<[server] domain>` when one is set, else the
/// host this request was sent to.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let domain = state.config.load().server.domain.clone();
    if !domain.is_empty() {
        return format!("https://{domain}");
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `POST /api/apps/{app}/webhook-secret` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub app: String,
    /// The new secret, shown only in this response. Paste it into the forge's webhook
    /// settings (GitLab: "Secret token").
    pub webhook_secret: String,
    pub webhook_urls: WebhookUrls,
}

/// Replaces an app's webhook secret; the old one stops working at once.
#[utoipa::path(
    post,
    path = "/api/apps/{app}/webhook-secret",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The new secret, shown once", body = RotatedSecret),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn rotate_handler(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<RotatedSecret>, ApiError> {
    let name = app.clone();
    let app_id = state
        .db
        .call(move |c| crate::db::webhooks::app_id(c, &name))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no app named `{app}`")))?;
    let secret = match rotate(&state.db, &state.secrets, app_id).await {
        Ok(secret) => secret,
        Err(SecretError::NoApp(_)) => {
            return Err(ApiError::not_found(format!("no app named `{app}`")));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    tracing::info!(app = %app, "webhook secret rotated");
    Ok(axum::Json(RotatedSecret {
        webhook_urls: urls(&base_url(&state, &headers), &app),
        webhook_secret: secret.expose().to_owned(),
        app,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_per_provider() {
        let u = urls("https://paas.example.com", "blog");
        assert_eq!(u.github, "https://paas.example.com/webhooks/github/blog");
        assert_eq!(u.gitlab, "https://paas.example.com/webhooks/gitlab/blog");
        assert_eq!(u.gitea, "https://paas.example.com/webhooks/gitea/blog");
    }
}

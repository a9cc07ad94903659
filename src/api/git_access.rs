//! How Rivetr reaches an app's private repository: its SSH deploy key
//! (`/api/apps/{app}/deploy-key`), the SSH host keys its clones recorded
//! (`/api/apps/{app}/known-hosts`), and its https credential (`/api/apps/{app}/git-credential`).
//!
//! A deploy key is made here (ed25519), its private half encrypted at rest at once; only the
//! public half is ever shown. POST again makes a new one (rotation: the old one stops working
//! as soon as it is removed from the forge), DELETE removes it. The credential is stored the
//! same way as one given inside the git URL, and is never shown either: the app only says
//! whether it has one.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::find_app;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::secrets::Purpose;

/// An app's deploy key as the API shows it: never the private half.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployKeyView {
    /// One OpenSSH line (`ssh-ed25519 AAAA... rivetr <app>`) to add to the repository as a
    /// read-only deploy key.
    pub public_key: String,
    /// `SHA256:...`, as GitHub, GitLab and Gitea show deploy keys.
    pub fingerprint: String,
    pub created_at: String,
}

/// An SSH host key an app's clones recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct KnownHostView {
    /// As ssh records it: `github.com`, or `[host]:port` for another port than 22.
    pub host: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// `PUT /api/apps/{app}/git-credential` body: what git answers an https server's basic
/// authentication with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    /// The user name: your forge user, `x-access-token` (GitHub), `oauth2` or a deploy token's
    /// user name (GitLab). 1 to 4096 characters, none of them control characters.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub username: String,
    /// The access token or password, 1 to 4096 characters, none of them control characters.
    /// Stored encrypted; never shown again.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub token: String,
}

impl std::fmt::Debug for CredentialBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialBody")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What a stored `user:token` percent-encodes, as in a URL's userinfo (git decodes it).
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b':')
    .add(b'@')
    .add(b'/')
    .add(b'?')
    .add(b'#');

fn not_found_key(app: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_deploy_key",
        format!("app `{app}` has no deploy key; POST /api/apps/{app}/deploy-key makes one"),
    )
}

/// The app's deploy key.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/deploy-key",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The public key and its fingerprint", body = DeployKeyView),
        (status = 404, description = "No such app (`not_found`), or it has no deploy key (`no_deploy_key`)", body = ErrorBody),
    )
)]
pub async fn get_deploy_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<DeployKeyView>, ApiError> {
    let app = find_app(&state, &name).await?;
    let key = state
        .db
        .call(move |c| crate::db::deploy_keys::get(c, app.id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_found_key(&name))?;
    Ok(JsonResponse(DeployKeyView {
        public_key: key.public_key,
        fingerprint: key.fingerprint,
        created_at: key.created_at,
    }))
}

/// Makes a new ed25519 deploy key for the app, replacing the one it had.
#[utoipa::path(
    post,
    path = "/api/apps/{app}/deploy-key",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 201, description = "The new key's public half; clones use it from now on", body = DeployKeyView),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn create_deploy_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, JsonResponse<DeployKeyView>), ApiError> {
    let app = find_app(&state, &name).await?;
    let app_id = app.id;
    let comment = format!("rivetr {name}");
    let new = tokio::task::spawn_blocking(move || crate::secrets::deploy_key::generate(&comment))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let sealed = state
        .secrets
        .encrypt_str(Purpose::DeployKey { app_id }, new.private_key.expose())
        .map_err(ApiError::internal)?;
    let (public, fingerprint) = (new.public_key.clone(), new.fingerprint.clone());
    let stored = state
        .db
        .call(move |c| crate::db::deploy_keys::replace(c, app_id, &public, &fingerprint, &sealed))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(app = %name, fingerprint = %stored.fingerprint, "deploy key created");
    Ok((
        StatusCode::CREATED,
        JsonResponse(DeployKeyView {
            public_key: stored.public_key,
            fingerprint: stored.fingerprint,
            created_at: stored.created_at,
        }),
    ))
}

/// Removes the app's deploy key; its SSH clones stop authenticating.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/deploy-key",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app (`not_found`), or it has no deploy key (`no_deploy_key`)", body = ErrorBody),
    )
)]
pub async fn delete_deploy_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &name).await?;
    let removed = state
        .db
        .call(move |c| crate::db::deploy_keys::delete(c, app.id))
        .await
        .map_err(ApiError::internal)?;
    if !removed {
        return Err(not_found_key(&name));
    }
    tracing::info!(app = %name, "deploy key removed");
    Ok(StatusCode::NO_CONTENT)
}

/// The SSH host keys the app's clones recorded (on first contact with each host).
#[utoipa::path(
    get,
    path = "/api/apps/{app}/known-hosts",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "Each recorded host key; empty before the first SSH clone", body = Vec<KnownHostView>),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn list_known_hosts(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<Vec<KnownHostView>>, ApiError> {
    let app = find_app(&state, &name).await?;
    let file = state
        .db
        .call(move |c| crate::db::known_hosts::get(c, app.id))
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(
        crate::engine::git::ssh::known_hosts(&file)
            .into_iter()
            .map(|h| KnownHostView {
                host: h.host,
                key_type: h.key_type,
                fingerprint: h.fingerprint,
            })
            .collect(),
    ))
}

/// Forgets the app's recorded SSH host keys: the next clone accepts and records whatever key
/// the server presents. For a server whose key really changed.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/known-hosts",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 204, description = "Forgotten (also when there was nothing recorded)"),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn reset_known_hosts(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &name).await?;
    state
        .db
        .call(move |c| crate::db::known_hosts::reset(c, app.id))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(app = %name, "recorded SSH host keys reset");
    Ok(StatusCode::NO_CONTENT)
}

/// Stores the credential the app's https clones answer the server with, replacing the one it
/// had (given here or inside the git URL).
#[utoipa::path(
    put,
    path = "/api/apps/{app}/git-credential",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    request_body = CredentialBody,
    responses(
        (status = 204, description = "Stored encrypted; used from the next deployment on"),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "The app's git URL is not https", body = ErrorBody),
        (status = 422, description = "An empty or malformed user name or token, named", body = ErrorBody),
    )
)]
pub async fn set_git_credential(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<CredentialBody>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &name).await?;
    let https = app
        .git_url
        .as_deref()
        .is_some_and(|u| crate::engine::git::url::https_host(u).is_some());
    if !https {
        return Err(ApiError::conflict(format!(
            "app `{name}` does not clone over https; an ssh repository uses the app's deploy key \
             (POST /api/apps/{name}/deploy-key)"
        )));
    }
    for (field, value) in [("username", &body.username), ("token", &body.token)] {
        // Characters, as the document's maxLength counts them.
        if value.is_empty() || value.chars().count() > 4096 || value.chars().any(char::is_control) {
            return Err(ApiError::invalid_value(
                field,
                "between 1 and 4096 characters, none of them control characters",
            ));
        }
    }
    let credential = format!(
        "{}:{}",
        utf8_percent_encode(&body.username, USERINFO),
        utf8_percent_encode(&body.token, USERINFO)
    );
    super::apps::store_credential(&state, app.id, Some(credential)).await?;
    tracing::info!(app = %name, "git credential stored");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the app's https credential; its clones go without one.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/git-credential",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app (`not_found`), or it has no credential (`no_git_credential`)", body = ErrorBody),
    )
)]
pub async fn delete_git_credential(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &name).await?;
    if app.git_credential.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_git_credential",
            format!("app `{name}` has no git credential"),
        ));
    }
    super::apps::store_credential(&state, app.id, None).await?;
    tracing::info!(app = %name, "git credential removed");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_encoded_as_git_decodes_them() {
        let encoded = format!(
            "{}:{}",
            utf8_percent_encode("me@corp", USERINFO),
            utf8_percent_encode("p:a/s%s", USERINFO)
        );
        assert_eq!(encoded, "me%40corp:p%3Aa%2Fs%25s");
        let (user, token) = crate::engine::git::credential::split_userinfo(&encoded);
        assert_eq!((user.expose(), token.expose()), ("me@corp", "p:a/s%s"));
    }
}

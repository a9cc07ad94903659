//! `/api/registry-credentials`: the user name and password Rivetr pushes swarm builds to
//! `[runtime.swarm] registry` with, which the swarm also hands its nodes to pull them. The
//! password is sealed at rest ([`Purpose::RegistryPassword`]) and never shown again.
//!
//! Without `[runtime] engine = "swarm"` every route answers 409: no other engine pushes.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::Json;
use crate::AppState;
use crate::config::EngineChoice;
use crate::secrets::Purpose;

/// What `PUT /api/registry-credentials` takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentialBody {
    pub username: String,
    /// Stored encrypted; never returned.
    pub password: String,
}

/// The registry's credentials as the API shows them: without the password.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryCredentialView {
    /// `[runtime.swarm] registry`.
    pub registry: String,
    /// Whether credentials are stored; without them pushes and pulls are anonymous.
    pub configured: bool,
    pub username: Option<String>,
    pub updated_at: Option<String>,
}

/// The configured swarm registry, or 409 when Rivetr does not run on a swarm.
fn swarm_registry(state: &AppState) -> Result<String, ApiError> {
    let config = state.config.load();
    if config.runtime.engine != EngineChoice::Swarm {
        return Err(ApiError::conflict(
            "registry credentials are used only with [runtime] engine = \"swarm\"".to_owned(),
        ));
    }
    Ok(config.runtime.swarm.registry.clone())
}

/// Shows whether the swarm's registry has credentials, and for which user.
#[utoipa::path(
    get,
    path = "/api/registry-credentials",
    tag = "nodes",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The registry and its user, never the password", body = RegistryCredentialView),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
    )
)]
pub async fn get_registry_credential(
    State(state): State<AppState>,
) -> Result<JsonResponse<RegistryCredentialView>, ApiError> {
    let registry = swarm_registry(&state)?;
    let key = registry.clone();
    let row = state
        .db
        .call(move |c| crate::db::registry_credentials::get(c, &key))
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(RegistryCredentialView {
        registry,
        configured: row.is_some(),
        username: row.as_ref().map(|r| r.username.clone()),
        updated_at: row.map(|r| r.updated_at),
    }))
}

/// Stores the swarm registry's credentials (replacing any), used from the next deployment on.
#[utoipa::path(
    put,
    path = "/api/registry-credentials",
    tag = "nodes",
    security(("bearer" = [])),
    request_body = RegistryCredentialBody,
    responses(
        (status = 204, description = "Stored encrypted"),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 422, description = "An empty or malformed user name or password, named", body = ErrorBody),
    )
)]
pub async fn set_registry_credential(
    State(state): State<AppState>,
    Json(body): Json<RegistryCredentialBody>,
) -> Result<StatusCode, ApiError> {
    let registry = swarm_registry(&state)?;
    for (field, value) in [("username", &body.username), ("password", &body.password)] {
        if value.is_empty() || value.len() > 4096 || value.chars().any(char::is_control) {
            return Err(ApiError::invalid_value(
                field,
                "between 1 and 4096 characters, none of them control characters",
            ));
        }
    }
    let sealed = state
        .secrets
        .encrypt_str(
            Purpose::RegistryPassword {
                registry: &registry,
            },
            &body.password,
        )
        .map_err(ApiError::internal)?;
    let (key, username) = (registry.clone(), body.username);
    state
        .db
        .call(move |c| crate::db::registry_credentials::set(c, &key, &username, &sealed))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(registry = %registry, "registry credentials stored");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the swarm registry's credentials; pushes and pulls go anonymous.
#[utoipa::path(
    delete,
    path = "/api/registry-credentials",
    tag = "nodes",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (also when there were none)"),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
    )
)]
pub async fn delete_registry_credential(
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    let registry = swarm_registry(&state)?;
    let key = registry.clone();
    state
        .db
        .call(move |c| crate::db::registry_credentials::delete(c, &key))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(registry = %registry, "registry credentials removed");
    Ok(StatusCode::NO_CONTENT)
}

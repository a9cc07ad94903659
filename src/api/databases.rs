//! `/api/databases`: managed databases. The handlers check the request and call
//! [`crate::databases::Databases`], which talks to the container engine.

use axum::Extension;
use axum::Json as JsonResponse;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::deployments::{AppLogParams, open_stream, output_events, output_options};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::databases::service::DeletedDatabase;
use crate::databases::{
    DatabaseError, DatabaseUpdate, DbKind, LinkView, ManagedDatabaseView, NewDatabaseRequest,
};

/// `POST /api/databases` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabaseBody {
    /// A DNS label, like an app's name; also the host name linked apps reach it by.
    pub name: String,
    /// `postgres`, `mariadb`, `mysql` or `redis`.
    pub engine: String,
    /// The image tag's version, such as `16`; default: 16, 11, 8 and 7 respectively.
    pub version: Option<String>,
    /// Bytes, or a size such as `"512M"`; at least 64 MiB; none by default.
    #[schema(value_type = Option<String>)]
    pub memory: Option<serde_json::Value>,
    /// CPU limit, fractions allowed; none by default.
    pub cpus: Option<f64>,
}

/// `PATCH /api/databases/{db}` body: what is absent stays as it is.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabaseBody {
    /// Bytes, or a size such as `"1G"`; `null` removes the limit.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    pub memory: Option<Option<serde_json::Value>>,
    /// CPU limit, fractions allowed; `null` removes it.
    #[schema(value_type = Option<f64>)]
    #[serde(default, deserialize_with = "present")]
    pub cpus: Option<Option<f64>>,
    /// Another image tag of the same major version, such as `16.4` for `16`.
    pub version: Option<String>,
    /// A TCP port (1024 and up) on `[databases] public_address` forwarded to the database,
    /// for administrators' tools; `null` closes it. Rootful Podman and Docker only.
    #[schema(value_type = Option<u16>, minimum = 1024, maximum = 65535)]
    #[serde(default, deserialize_with = "present")]
    pub public_port: Option<Option<u16>>,
}

/// A field that is present, `null` or not: `Some`. Absent ones stay `None` (`default`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true`: remove the data volume too. By default it is kept and the answer says where.
    pub volumes: Option<bool>,
    /// `true`: remove its backups' files too. By default they stay where they are stored
    /// and the answer lists them.
    pub backups: Option<bool>,
}

pub(super) fn database_error(e: DatabaseError) -> ApiError {
    match e {
        DatabaseError::NotFound(_) | DatabaseError::AppNotFound(_) => {
            ApiError::not_found(e.to_string())
        }
        DatabaseError::Exists(_) | DatabaseError::InUse(_) => ApiError::conflict(e.to_string()),
        DatabaseError::Invalid { field, message } => ApiError::invalid_value(field, message),
        DatabaseError::NoRuntime(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        DatabaseError::Lifecycle(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "runtime", e.to_string())
        }
        DatabaseError::Db(_) | DatabaseError::Secrets(_) => ApiError::internal(e),
    }
}

/// Creates a database (container, data volume, internal network, generated credentials)
/// and answers once it accepts connections.
#[utoipa::path(
    post,
    path = "/api/databases",
    tag = "databases",
    security(("bearer" = [])),
    request_body = CreateDatabaseBody,
    responses(
        (status = 201, description = "Created and accepting connections", body = ManagedDatabaseView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
        (status = 502, description = "The engine could not run it; nothing was kept", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn create_database(
    State(state): State<AppState>,
    Json(body): Json<CreateDatabaseBody>,
) -> Result<(StatusCode, JsonResponse<ManagedDatabaseView>), ApiError> {
    let kind: DbKind = body
        .engine
        .parse()
        .map_err(|m: String| ApiError::invalid_value("engine", m))?;
    let memory_bytes = memory_bytes(body.memory)?;
    let created = state
        .databases
        .create(NewDatabaseRequest {
            name: body.name,
            kind,
            version: body.version,
            memory_bytes,
            cpus: body.cpus,
        })
        .await
        .map_err(database_error)?;
    Ok((StatusCode::CREATED, JsonResponse(created)))
}

/// A memory limit as the API takes it: bytes, or a size such as `"512M"`.
fn memory_bytes(value: Option<serde_json::Value>) -> Result<Option<u64>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(
            crate::limits::parse_memory(&s).map_err(|e| ApiError::invalid_value("memory", e))?,
        )),
        Some(serde_json::Value::Number(n)) => {
            Ok(Some(n.as_u64().ok_or_else(|| {
                ApiError::invalid_value("memory", "a positive number of bytes")
            })?))
        }
        Some(_) => Err(ApiError::invalid_value(
            "memory",
            "bytes, or a size such as \"512M\"",
        )),
    }
}

/// Changes a database's memory or CPU limit, or its version within the same major version
/// (`16` to `16.4`). Its container is recreated on the same volume: a running database
/// restarts (seconds of downtime) and the answer comes once it accepts connections again.
/// When the new container does not come up, the previous one is put back and the answer
/// says why. Opening or closing its public port needs no restart.
#[utoipa::path(
    patch,
    path = "/api/databases/{db}",
    tag = "databases",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    request_body = UpdateDatabaseBody,
    responses(
        (status = 200, description = "Changed; the database as it is now", body = ManagedDatabaseView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 409, description = "The public port is taken", body = ErrorBody),
        (status = 422, description = "An invalid value, such as another major version", body = ErrorBody),
        (status = 502, description = "The new container did not come up; the previous one runs again", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn update_database(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UpdateDatabaseBody>,
) -> Result<JsonResponse<ManagedDatabaseView>, ApiError> {
    let update = DatabaseUpdate {
        memory_bytes: body.memory.map(memory_bytes).transpose()?,
        cpus: body.cpus,
        version: body.version,
        public_port: body.public_port,
    };
    Ok(JsonResponse(
        state
            .databases
            .update(&name, update)
            .await
            .map_err(database_error)?,
    ))
}

/// The database server's own output as Server-Sent Events (`event: stdout` /
/// `event: stderr`), the last `tail` lines and with `follow=1` new ones as they come.
#[utoipa::path(
    get,
    path = "/api/databases/{db}/logs",
    tag = "databases",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name"), AppLogParams),
    responses(
        (status = 200, description = "An event stream of the database server's output lines"),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 422, description = "tail above 10000", body = ErrorBody),
        (status = 429, description = "This token has too many streams open", body = ErrorBody),
    )
)]
pub async fn database_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<AppLogParams>,
) -> Result<Response, ApiError> {
    let options = output_options(&params)?;
    let lines = state
        .databases
        .logs(&name, options)
        .await
        .map_err(database_error)?;
    let guard = open_stream(&state, &caller)?;
    Ok(output_events(lines, guard))
}

#[utoipa::path(
    get,
    path = "/api/databases",
    tag = "databases",
    security(("bearer" = [])),
    responses((status = 200, description = "Every database, by name", body = Vec<ManagedDatabaseView>))
)]
pub async fn list_databases(
    State(state): State<AppState>,
) -> Result<JsonResponse<Vec<ManagedDatabaseView>>, ApiError> {
    Ok(JsonResponse(
        state.databases.list().await.map_err(database_error)?,
    ))
}

/// One database; `status` says whether it accepts connections now.
#[utoipa::path(
    get,
    path = "/api/databases/{db}",
    tag = "databases",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    responses(
        (status = 200, description = "The database", body = ManagedDatabaseView),
        (status = 404, description = "No such database", body = ErrorBody),
    )
)]
pub async fn get_database(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<ManagedDatabaseView>, ApiError> {
    Ok(JsonResponse(
        state
            .databases
            .view(&name, true)
            .await
            .map_err(database_error)?,
    ))
}

/// Deletes a database's container and network; its data volume is kept unless
/// `?volumes=true`, and its backups' files unless `?backups=true`; the answer names what
/// was kept and where.
#[utoipa::path(
    delete,
    path = "/api/databases/{db}",
    tag = "databases",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name"), DeleteParams),
    responses(
        (status = 200, description = "Deleted; what was kept", body = DeletedDatabase),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 409, description = "Apps are linked to it", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn delete_database(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<JsonResponse<DeletedDatabase>, ApiError> {
    // Read before the deletion, which takes their rows with it.
    let backups = state
        .backups
        .stored_of(&name)
        .await
        .map_err(super::backups::backup_error)?;
    let mut deleted = state
        .databases
        .delete(&name, params.volumes.unwrap_or(false))
        .await
        .map_err(database_error)?;
    if backups.is_empty() {
        return Ok(JsonResponse(deleted));
    }
    let its = match backups.len() {
        1 => "its backup".to_owned(),
        n => format!("its {n} backups"),
    };
    if params.backups.unwrap_or(false) {
        let failed = state.backups.remove_stored(&backups).await;
        deleted.message.push_str(&if failed.is_empty() {
            format!("; {its} removed too")
        } else {
            format!(
                "; of {its}, these could not be removed: {}",
                failed.join(", ")
            )
        });
        deleted.kept_backups = failed;
    } else {
        deleted.kept_backups = backups
            .iter()
            .map(|b| format!("{}: {}", b.destination, b.location))
            .collect();
        deleted.message.push_str(&format!(
            "; {its} stay where they are stored ({}), no longer listed by Rivetr; delete \
             with ?backups=true to remove them too",
            deleted.kept_backups.join(", ")
        ));
    }
    Ok(JsonResponse(deleted))
}

macro_rules! database_lifecycle_handler {
    ($fn:ident, $path:literal, $op:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "databases",
            security(("bearer" = [])),
            params(("db" = String, Path, description = "The database's name")),
            responses(
                (status = 200, description = "Done; the database as it is now", body = ManagedDatabaseView),
                (status = 404, description = "No such database", body = ErrorBody),
                (status = 502, description = "The engine refused, or it did not come up", body = ErrorBody),
                (status = 503, description = "No container engine", body = ErrorBody),
            )
        )]
        pub async fn $fn(
            State(state): State<AppState>,
            Path(name): Path<String>,
        ) -> Result<JsonResponse<ManagedDatabaseView>, ApiError> {
            Ok(JsonResponse(
                state.databases.$op(&name).await.map_err(database_error)?,
            ))
        }
    };
}

database_lifecycle_handler!(
    start_database,
    "/api/databases/{db}/start",
    start,
    "Starts a stopped database and waits until it accepts connections."
);
database_lifecycle_handler!(
    stop_database,
    "/api/databases/{db}/stop",
    stop,
    "Stops a database cleanly; it stays stopped across Rivetr restarts."
);
database_lifecycle_handler!(
    restart_database,
    "/api/databases/{db}/restart",
    restart,
    "Stops and starts a database."
);

/// `POST /api/apps/{app}/links` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The database's name.
    pub database: String,
    /// The variable that gets the connection URL; default `DATABASE_URL`.
    pub env: Option<String>,
}

/// Links an app to a database: from its next deployment its containers get the URL in `env`
/// (plus `PGHOST`, `MYSQL_HOST` or `REDIS_HOST` and the like for the first link of each
/// engine) and reach the database by its name on the app's own network.
#[utoipa::path(
    post,
    path = "/api/apps/{app}/links",
    tag = "databases",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    request_body = LinkBody,
    responses(
        (status = 201, description = "Linked; applies at the app's next deployment", body = LinkView),
        (status = 404, description = "No such app or database", body = ErrorBody),
        (status = 409, description = "Already linked, or the variable is taken by another link", body = ErrorBody),
        (status = 422, description = "An invalid variable name", body = ErrorBody),
    )
)]
pub async fn create_link(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<LinkBody>,
) -> Result<(StatusCode, JsonResponse<LinkView>), ApiError> {
    let env = body.env.unwrap_or_else(|| "DATABASE_URL".to_owned());
    let link = state
        .databases
        .link(&app, &body.database, &env)
        .await
        .map_err(database_error)?;
    Ok((StatusCode::CREATED, JsonResponse(link)))
}

#[utoipa::path(
    get,
    path = "/api/apps/{app}/links",
    tag = "databases",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app's links", body = Vec<LinkView>),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn list_links(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<JsonResponse<Vec<LinkView>>, ApiError> {
    Ok(JsonResponse(
        state.databases.links(&app).await.map_err(database_error)?,
    ))
}

/// Removes a link: the database leaves the app's network now; the variables go at the app's
/// next deployment.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/links/{db}",
    tag = "databases",
    security(("bearer" = [])),
    params(
        ("app" = String, Path, description = "The app's name"),
        ("db" = String, Path, description = "The database's name"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app, database or link", body = ErrorBody),
    )
)]
pub async fn delete_link(
    State(state): State<AppState>,
    Path((app, db)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .databases
        .unlink(&app, &db)
        .await
        .map_err(database_error)?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/api/databases/{db}/backups`, `.../restore` and `.../schedules`: backups of a managed
//! database, taken now or on a schedule, downloaded, and restored. The handlers check the
//! request and call [`crate::databases::backups::Backups`].

use axum::Json as JsonResponse;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::databases::database_error;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::databases::backups::archive::ArchiveError;
use crate::databases::backups::store::StoreError;
use crate::databases::backups::{
    BackupError, BackupView, DestinationView, NewDestinationRequest, NewScheduleRequest,
    RestoreView, ScheduleView,
};

pub(super) fn backup_error(e: BackupError) -> ApiError {
    match e {
        BackupError::Database(e) => database_error(*e),
        BackupError::NotFound { .. }
        | BackupError::ScheduleNotFound { .. }
        | BackupError::DestinationNotFound(_) => ApiError::not_found(e.to_string()),
        BackupError::Conflict(_) => ApiError::conflict(e.to_string()),
        BackupError::Invalid { field, message } => ApiError::invalid_value(field, message),
        BackupError::Failed(_) => ApiError::new(StatusCode::BAD_GATEWAY, "runtime", e.to_string()),
        BackupError::Archive(ArchiveError::Checksum { .. })
        | BackupError::Store(StoreError::Archive(ArchiveError::Checksum { .. })) => {
            ApiError::conflict(e.to_string())
        }
        // The storage refused or could not be reached: the gateway's fault, said plainly.
        BackupError::Store(StoreError::S3(_)) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "storage", e.to_string())
        }
        // The server's key file is missing or malformed: the message names the file.
        BackupError::Crypt(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backup_key",
            e.to_string(),
        ),
        BackupError::Archive(_)
        | BackupError::Store(_)
        | BackupError::Db(_)
        | BackupError::Secrets(_) => ApiError::internal(e),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// Where the backup goes: `local` (the default) or an S3 destination's name.
    pub destination: Option<String>,
}

/// Starts a backup now and answers at once; poll the list for its end.
#[utoipa::path(
    post,
    path = "/api/databases/{db}/backups",
    tag = "backups",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name"), StartParams),
    responses(
        (status = 202, description = "Started: `running`", body = BackupView),
        (status = 404, description = "No such database or destination", body = ErrorBody),
    )
)]
pub async fn start_backup(
    State(state): State<AppState>,
    Path(db): Path<String>,
    Query(params): Query<StartParams>,
) -> Result<(StatusCode, JsonResponse<BackupView>), ApiError> {
    let started = state
        .backups
        .start(&db, params.destination.as_deref())
        .await
        .map_err(backup_error)?;
    Ok((StatusCode::ACCEPTED, JsonResponse(started)))
}

/// The database's backups, newest first, with their status, size, SHA-256 and, for a failed
/// one, the reason.
#[utoipa::path(
    get,
    path = "/api/databases/{db}/backups",
    tag = "backups",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    responses(
        (status = 200, description = "Newest first", body = Vec<BackupView>),
        (status = 404, description = "No such database", body = ErrorBody),
    )
)]
pub async fn list_backups(
    State(state): State<AppState>,
    Path(db): Path<String>,
) -> Result<JsonResponse<Vec<BackupView>>, ApiError> {
    Ok(JsonResponse(
        state.backups.list(&db).await.map_err(backup_error)?,
    ))
}

/// The backup file as stored (gzip), streamed.
#[utoipa::path(
    get,
    path = "/api/databases/{db}/backups/{id}/download",
    tag = "backups",
    security(("bearer" = [])),
    params(
        ("db" = String, Path, description = "The database's name"),
        ("id" = i64, Path, description = "The backup's id"),
    ),
    responses(
        (status = 200, description = "The file, gzip-compressed", content_type = "application/gzip"),
        (status = 404, description = "No such database or backup", body = ErrorBody),
        (status = 422, description = "The backup is not a good one", body = ErrorBody),
    )
)]
pub async fn download_backup(
    State(state): State<AppState>,
    Path((db, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let (backup, stored) = state.backups.open(&db, id).await.map_err(backup_error)?;
    let name = std::path::Path::new(&backup.location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("backup-{id}.gz"));
    let mut response = Response::new(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(stored, 64 * 1024),
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/gzip".parse().expect("static"),
    );
    if let Some(size) = backup.size_bytes {
        headers.insert(header::CONTENT_LENGTH, size.into());
    }
    if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(sha) = backup.sha256
        && let Ok(value) = sha.parse()
    {
        headers.insert("x-rivetr-sha256", value);
    }
    Ok(response)
}

/// `POST /api/databases/{db}/restore` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The id of one of this database's good backups.
    pub backup: i64,
    /// Restore into a new database of this name (same engine and version) instead of this
    /// one.
    pub into: Option<String>,
}

/// Restores a backup into the database (what the backup holds replaces the same objects;
/// apps linked to it keep running, so stop their writes first if they matter), or into a
/// new database. The file's SHA-256 is checked before anything is changed.
#[utoipa::path(
    post,
    path = "/api/databases/{db}/restore",
    tag = "backups",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    request_body = RestoreBody,
    responses(
        (status = 200, description = "Restored", body = RestoreView),
        (status = 404, description = "No such database or backup", body = ErrorBody),
        (status = 409, description = "The file does not match its SHA-256, or `into` is taken", body = ErrorBody),
        (status = 422, description = "The backup is not a good one, or `into` is not a name", body = ErrorBody),
        (status = 502, description = "The restore tool or the engine failed", body = ErrorBody),
    )
)]
pub async fn restore_backup(
    State(state): State<AppState>,
    Path(db): Path<String>,
    Json(body): Json<RestoreBody>,
) -> Result<JsonResponse<RestoreView>, ApiError> {
    Ok(JsonResponse(
        state
            .backups
            .restore(&db, body.backup, body.into)
            .await
            .map_err(backup_error)?,
    ))
}

/// `POST /api/databases/{db}/schedules` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Five fields, UTC: minute hour day-of-month month day-of-week, such as `0 3 * * *`.
    pub cron: String,
    /// `local` (the default: files under `[databases] backup_dir`) or an S3 destination's
    /// name.
    pub destination: Option<String>,
    /// Keep this many of the schedule's newest good backups.
    #[schema(maximum = 4294967295_u64)]
    pub keep_last: Option<u32>,
    /// Keep the schedule's good backups younger than this many days.
    #[schema(maximum = 4294967295_u64)]
    pub keep_days: Option<u32>,
}

/// Adds a backup schedule. Its first backup is at the pattern's next time; one missed
/// while Rivetr was stopped runs once when it starts.
#[utoipa::path(
    post,
    path = "/api/databases/{db}/schedules",
    tag = "backups",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "Added", body = ScheduleView),
        (status = 404, description = "No such database", body = ErrorBody),
        (status = 422, description = "An invalid pattern or limit, named", body = ErrorBody),
    )
)]
pub async fn create_schedule(
    State(state): State<AppState>,
    Path(db): Path<String>,
    Json(body): Json<ScheduleBody>,
) -> Result<(StatusCode, JsonResponse<ScheduleView>), ApiError> {
    let added = state
        .backups
        .add_schedule(
            &db,
            NewScheduleRequest {
                cron: body.cron,
                destination: body.destination,
                keep_last: body.keep_last,
                keep_days: body.keep_days,
            },
        )
        .await
        .map_err(backup_error)?;
    Ok((StatusCode::CREATED, JsonResponse(added)))
}

#[utoipa::path(
    get,
    path = "/api/databases/{db}/schedules",
    tag = "backups",
    security(("bearer" = [])),
    params(("db" = String, Path, description = "The database's name")),
    responses(
        (status = 200, description = "The database's schedules", body = Vec<ScheduleView>),
        (status = 404, description = "No such database", body = ErrorBody),
    )
)]
pub async fn list_schedules(
    State(state): State<AppState>,
    Path(db): Path<String>,
) -> Result<JsonResponse<Vec<ScheduleView>>, ApiError> {
    Ok(JsonResponse(
        state.backups.schedules(&db).await.map_err(backup_error)?,
    ))
}

/// Runs a schedule's backup now, as at its next time (its retention applies after); answers
/// at once.
#[utoipa::path(
    post,
    path = "/api/databases/{db}/schedules/{id}/run",
    tag = "backups",
    security(("bearer" = [])),
    params(
        ("db" = String, Path, description = "The database's name"),
        ("id" = i64, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 202, description = "Started: `running`", body = BackupView),
        (status = 404, description = "No such database or schedule", body = ErrorBody),
    )
)]
pub async fn run_schedule(
    State(state): State<AppState>,
    Path((db, id)): Path<(String, i64)>,
) -> Result<(StatusCode, JsonResponse<BackupView>), ApiError> {
    let started = state
        .backups
        .start_scheduled(&db, id)
        .await
        .map_err(backup_error)?;
    Ok((StatusCode::ACCEPTED, JsonResponse(started)))
}

/// Removes a schedule; the backups it took stay.
#[utoipa::path(
    delete,
    path = "/api/databases/{db}/schedules/{id}",
    tag = "backups",
    security(("bearer" = [])),
    params(
        ("db" = String, Path, description = "The database's name"),
        ("id" = i64, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such database or schedule", body = ErrorBody),
    )
)]
pub async fn delete_schedule(
    State(state): State<AppState>,
    Path((db, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    state
        .backups
        .remove_schedule(&db, id)
        .await
        .map_err(backup_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/backup-destinations` body: an S3-compatible bucket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    /// A DNS label; `local` is built in.
    pub name: String,
    /// `s3`, the only kind that can be added.
    pub kind: String,
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prepended to each object's key, such as `rivetr/`.
    pub prefix: Option<String>,
    /// `endpoint/bucket/key` addresses (MinIO and most self-hosted servers) rather than
    /// `bucket.endpoint/key`.
    pub path_style: Option<bool>,
    pub access_key_id: String,
    /// Stored encrypted; never shown again.
    pub secret_access_key: String,
}

/// Adds an S3 destination for backups.
#[utoipa::path(
    post,
    path = "/api/backup-destinations",
    tag = "backups",
    security(("bearer" = [])),
    request_body = DestinationBody,
    responses(
        (status = 201, description = "Added (without its secret key)", body = DestinationView),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn create_destination(
    State(state): State<AppState>,
    Json(body): Json<DestinationBody>,
) -> Result<(StatusCode, JsonResponse<DestinationView>), ApiError> {
    if body.kind != "s3" {
        return Err(ApiError::invalid_value(
            "kind",
            format!(
                "`{}`: only `s3` destinations can be added (`local` is built in)",
                body.kind
            ),
        ));
    }
    let added = state
        .backups
        .add_destination(NewDestinationRequest {
            name: body.name,
            endpoint: body.endpoint,
            region: body.region,
            bucket: body.bucket,
            prefix: body.prefix.unwrap_or_default(),
            path_style: body.path_style.unwrap_or(false),
            access_key_id: body.access_key_id,
            secret_access_key: crate::secrets::SecretString::new(body.secret_access_key),
        })
        .await
        .map_err(backup_error)?;
    Ok((StatusCode::CREATED, JsonResponse(added)))
}

#[utoipa::path(
    get,
    path = "/api/backup-destinations",
    tag = "backups",
    security(("bearer" = [])),
    responses((status = 200, description = "`local` and the S3 destinations", body = Vec<DestinationView>))
)]
pub async fn list_destinations(
    State(state): State<AppState>,
) -> Result<JsonResponse<Vec<DestinationView>>, ApiError> {
    Ok(JsonResponse(
        state.backups.destinations().await.map_err(backup_error)?,
    ))
}

/// Removes a destination no schedule uses; what is stored there stays.
#[utoipa::path(
    delete,
    path = "/api/backup-destinations/{name}",
    tag = "backups",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The destination's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "Schedules use it, or it is `local`", body = ErrorBody),
    )
)]
pub async fn delete_destination(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .backups
        .remove_destination(&name)
        .await
        .map_err(backup_error)?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/api/apps/{app}/previews`: the pull requests of an app and their previews, and removing
//! one by hand (when the forge's close never arrived). Previews themselves are apps
//! (`<app>-pr-<number>`): their deployments and logs are under `/api/apps/{preview}/...`.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::apps::{engine_error, find_app};
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::AppState;
use crate::previews::PreviewError;

/// A pull request of the app, and its preview if it has one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    /// The pull (merge) request's number.
    pub number: u64,
    /// `open` or `closed`, as the forge last said.
    pub state: &'static str,
    pub head_ref: String,
    pub head_sha: String,
    /// Why the PR has no preview, when it was refused one (a fork, the limit, no domain).
    pub refused: Option<String>,
    /// The preview app, while there is one.
    pub app: Option<String>,
    /// The preview's host.
    pub host: Option<String>,
    /// The preview's latest deployment.
    pub deployment: Option<super::apps::LatestDeployment>,
    /// The deployment in service, if any.
    pub running_deployment: Option<i64>,
    /// When Rivetr last heard of the PR.
    pub updated_at: String,
}

pub(super) fn preview_error(e: PreviewError) -> ApiError {
    match e {
        PreviewError::Engine(e) => engine_error(e),
        other => ApiError::internal(other),
    }
}

/// The pull requests Rivetr heard of for this app, newest number first, with their previews.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/previews",
    tag = "previews",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app's pull requests and their previews", body = Vec<PreviewView>),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn list_previews(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<JsonResponse<Vec<PreviewView>>, ApiError> {
    let app = find_app(&state, &app).await?;
    let app_id = app.id;
    let rows = state
        .db
        .call(move |c| {
            let prs = crate::db::pull_requests::list(c, app_id)?;
            let previews = crate::db::apps::previews_of(c, app_id)?;
            let mut out = Vec::new();
            for pr in prs {
                let preview = previews
                    .iter()
                    .find(|p| p.preview_of.is_some_and(|o| o.number == pr.number))
                    .cloned();
                let deployments = match &preview {
                    Some(p) => (
                        crate::db::deployments::list_for_app(c, p.id, 1)?.pop(),
                        crate::db::deployments::running(c, p.id)?.map(|d| d.id),
                    ),
                    None => (None, None),
                };
                out.push((pr, preview, deployments));
            }
            Ok(out)
        })
        .await
        .map_err(ApiError::internal)?;
    let mut out: Vec<PreviewView> = rows
        .into_iter()
        .map(|(pr, preview, (latest, running))| PreviewView {
            number: pr.number,
            state: if pr.open { "open" } else { "closed" },
            head_ref: pr.head_ref,
            head_sha: pr.head_sha,
            refused: pr.refused,
            host: preview.as_ref().and_then(|p| p.domains.first().cloned()),
            app: preview.map(|p| p.name),
            deployment: latest.map(|d| super::apps::LatestDeployment {
                id: d.id,
                status: d.status.as_str().to_owned(),
                queued_at: d.queued_at,
                finished_at: d.finished_at.or(d.running_at),
            }),
            running_deployment: running,
            updated_at: pr.updated_at,
        })
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.number));
    Ok(JsonResponse(out))
}

/// Removes the preview of a pull request: its containers, images, route, certificate and
/// work directories. The PR is recorded closed: only a reopen (or an `opened` delivered
/// again) brings a preview back.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/previews/{number}",
    tag = "previews",
    security(("bearer" = [])),
    params(
        ("app" = String, Path, description = "The app's name"),
        ("number" = u64, Path, description = "The pull request's number"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app, or the PR has no preview", body = ErrorBody),
    )
)]
pub async fn remove_preview(
    State(state): State<AppState>,
    Path((app, number)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &app).await?;
    if state
        .previews
        .remove(&app, number)
        .await
        .map_err(preview_error)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "PR #{number} of app `{}` has no preview",
            app.name
        )))
    }
}

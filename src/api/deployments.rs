//! Deployments: trigger, list, show, cancel, roll back, and their logs (a JSON array, or
//! Server-Sent Events that send the backlog, then live lines, then the final status). Also
//! the app's own output, streamed from its containers. Every event stream counts against its
//! token's `[server] log_streams_per_token` and ends when the token is revoked
//! ([`super::streams`]); `tail` is at most [`MAX_TAIL`].

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::Json as JsonResponse;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::apps::{engine_error, find_app};
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::streams::{StreamGuard, guarded};
use crate::AppState;
use crate::db::deployment_logs::LogLine;
use crate::db::deployments::Deployment;
use crate::engine::log::LogEvent;
use crate::engine::{DeployRequest, Trigger};

/// `POST /api/apps/{app}/deployments` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// A branch or a full commit id; default: the app's branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// `POST /api/apps/{app}/rollback` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// An earlier deployment of the app that ran and whose image is kept.
    pub deployment_id: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many, newest first; default 50.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// `1`: stream as Server-Sent Events until the deployment ends.
    pub follow: Option<String>,
}

/// The `Last-Event-ID` header, for the document only: [`deployment_logs`] reads it itself, so
/// that a bad one gets the API's error rather than axum's.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ResumeHeader {
    /// Send only the lines after this one (a browser's EventSource sends it when it
    /// reconnects).
    #[param(rename = "Last-Event-ID", minimum = 0, nullable = false)]
    last_event_id: Option<i64>,
}

/// The most lines `tail` may ask for; more is refused with 422.
pub const MAX_TAIL: u64 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppLogParams {
    /// The last N lines already written; default 100, at most 10000.
    #[param(minimum = 0, maximum = 10000)]
    pub tail: Option<u64>,
    /// `1`: keep streaming new lines.
    pub follow: Option<String>,
}

/// A deployment as the API shows it (the same fields as stored).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Deployment)]
pub struct DeploymentView {
    pub id: i64,
    pub app: String,
    /// queued, cloning, building, starting, health_checking, switching, running, failed,
    /// cancelled, superseded or replaced.
    pub status: String,
    pub trigger: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_subject: Option<String>,
    pub image: Option<String>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// The deployment this one rolled back to.
    pub rollback_of: Option<i64>,
    pub queued_at: String,
    pub cloning_at: Option<String>,
    pub building_at: Option<String>,
    pub starting_at: Option<String>,
    pub health_checking_at: Option<String>,
    pub switching_at: Option<String>,
    pub running_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        DeploymentView {
            id: d.id,
            app: d.app,
            status: d.status.as_str().to_owned(),
            trigger: d.trigger,
            git_ref: d.git_ref,
            commit_sha: d.commit_sha,
            commit_subject: d.commit_subject,
            image: d.image,
            reason: d.reason,
            rollback_of: d.rollback_of,
            queued_at: d.queued_at,
            cloning_at: d.cloning_at,
            building_at: d.building_at,
            starting_at: d.starting_at,
            health_checking_at: d.health_checking_at,
            switching_at: d.switching_at,
            running_at: d.running_at,
            finished_at: d.finished_at,
        }
    }
}

/// One line of a deployment's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineView {
    pub id: i64,
    pub at: String,
    /// rivetr, git, build, health.
    pub stream: String,
    pub line: String,
}

impl From<LogLine> for LogLineView {
    fn from(l: LogLine) -> Self {
        LogLineView {
            id: l.id,
            at: l.at,
            stream: l.stream,
            line: l.line,
        }
    }
}

/// Queues a deployment of the app.
#[utoipa::path(
    post,
    path = "/api/apps/{app}/deployments",
    tag = "deployments",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    request_body(content = Option<DeployBody>, description = "Optional; none or `{}` deploys the app's branch"),
    responses(
        (status = 202, description = "Queued", body = DeploymentView),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn deploy(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, JsonResponse<DeploymentView>), ApiError> {
    // The body is optional: an empty one deploys the app's branch.
    let bytes = super::extract::read_body(&headers, body, super::extract::JSON_BODY_LIMIT).await?;
    let body: DeployBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeployBody::default()
    } else {
        // `null` too: the document's body is optional, so a generated client may send it.
        super::extract::parse_json::<Option<DeployBody>>(&bytes)?.unwrap_or_default()
    };
    let git_ref = body.git_ref.filter(|r| !r.trim().is_empty());
    if let Some(r) = &git_ref
        && (r.starts_with('-')
            || r.contains("..")
            || r.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ApiError::invalid_value(
            "ref",
            format!("`{r}` is not a branch or commit"),
        ));
    }
    let app = find_app(&state, &app).await?;
    let request = DeployRequest {
        app_id: app.id,
        app: app.name,
        git_ref,
        commit_sha: None,
        trigger: Trigger::Api,
    };
    let d = state
        .deployer
        .enqueue(request)
        .await
        .map_err(engine_error)?;
    Ok((StatusCode::ACCEPTED, JsonResponse(d.into())))
}

/// The app's deployments, newest first.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/deployments",
    tag = "deployments",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name"), ListParams),
    responses(
        (status = 200, description = "Newest first", body = Vec<DeploymentView>),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn list_deployments(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<JsonResponse<Vec<DeploymentView>>, ApiError> {
    let app = find_app(&state, &app).await?;
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let list = state
        .db
        .call(move |c| crate::db::deployments::list_for_app(c, app.id, limit))
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(list.into_iter().map(Into::into).collect()))
}

/// One deployment.
#[utoipa::path(
    get,
    path = "/api/deployments/{id}",
    tag = "deployments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment", body = DeploymentView),
        (status = 404, description = "No such deployment", body = ErrorBody),
    )
)]
pub async fn get_deployment(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<JsonResponse<DeploymentView>, ApiError> {
    let d = state.engine.deployment(id).await.map_err(engine_error)?;
    Ok(JsonResponse(d.into()))
}

/// Cancels a queued or running deployment (not once it is switching).
#[utoipa::path(
    post,
    path = "/api/deployments/{id}/cancel",
    tag = "deployments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "Cancelled (a running one ends cancelled shortly)", body = DeploymentView),
        (status = 404, description = "No such deployment", body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    )
)]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<JsonResponse<DeploymentView>, ApiError> {
    let d = state.engine.cancel(id).await.map_err(engine_error)?;
    Ok(JsonResponse(d.into()))
}

/// Rolls the app back to an earlier deployment: its image and settings, no clone, no build.
#[utoipa::path(
    post,
    path = "/api/apps/{app}/rollback",
    tag = "deployments",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    request_body = RollbackBody,
    responses(
        (status = 202, description = "Queued", body = DeploymentView),
        (status = 404, description = "No such app or deployment", body = ErrorBody),
        (status = 409, description = "That deployment cannot be returned to", body = ErrorBody),
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<RollbackBody>,
) -> Result<(StatusCode, JsonResponse<DeploymentView>), ApiError> {
    let d = state
        .engine
        .rollback(&app, body.deployment_id)
        .await
        .map_err(engine_error)?;
    Ok((StatusCode::ACCEPTED, JsonResponse(d.into())))
}

fn wants_follow(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "yes"))
}

/// A deployment's log: a JSON array, or with `follow=1` Server-Sent Events: every stored
/// line (`event: line`, with the line's id as the event's `id:`), then new lines as they
/// come, then `event: end` with the final status. A `Last-Event-ID` header (sent by a
/// browser's EventSource when it reconnects) resumes after that line: no gap, no repeat; on
/// the JSON array it leaves out that line and those before it.
#[utoipa::path(
    get,
    path = "/api/deployments/{id}/logs",
    tag = "deployments",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The deployment's id"),
        LogParams,
        ResumeHeader,
    ),
    responses(
        (status = 200, description = "The lines so far (or an event stream with follow=1)", body = Vec<LogLineView>),
        (status = 404, description = "No such deployment", body = ErrorBody),
        (status = 429, description = "The token has its most log streams open already", body = ErrorBody),
    )
)]
pub async fn deployment_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    Query(params): Query<LogParams>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    state.engine.deployment(id).await.map_err(engine_error)?;
    let after = last_event_id(&headers)?;
    if !wants_follow(&params.follow) {
        let lines = state
            .db
            .call(move |c| crate::db::deployment_logs::list(c, id, after))
            .await
            .map_err(ApiError::internal)?;
        let lines: Vec<LogLineView> = lines.into_iter().map(Into::into).collect();
        return Ok(JsonResponse(lines).into_response());
    }
    let guard = open_stream(&state, &caller)?;
    Ok(
        Sse::new(guarded(follow_deployment(state, id, after), guard))
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

/// Takes one of the caller's log stream places.
pub(super) fn open_stream(state: &AppState, caller: &Caller) -> Result<StreamGuard, ApiError> {
    let limit = state.config.load().server.log_streams_per_token.get();
    state.streams.open(caller.token_id, limit)
}

/// The line a reconnecting client last received; 0 for a first connection.
fn last_event_id(headers: &axum::http::HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                "header `Last-Event-ID`: the id of a log line (a whole number)",
            )
        })
}

fn line_event(l: LogLine) -> Event {
    Event::default()
        .event("line")
        .id(l.id.to_string())
        .json_data(LogLineView::from(l))
        .unwrap_or_else(|_| Event::default().event("line"))
}

fn end_event(status: &str) -> Event {
    Event::default()
        .event("end")
        .json_data(serde_json::json!({ "status": status }))
        .unwrap_or_else(|_| Event::default().event("end"))
}

/// Backlog, then live lines, then the end. Subscribing before reading the backlog, and
/// skipping live lines already in it, leaves neither a gap nor a duplicate.
fn follow_deployment(
    state: AppState,
    id: i64,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream(move |tx| async move {
        let mut last = after;
        loop {
            let live = state.engine.logs().subscribe(id);
            let backlog = state
                .db
                .call(move |c| crate::db::deployment_logs::list(c, id, last))
                .await
                .unwrap_or_default();
            for l in backlog {
                last = l.id;
                if tx.send(line_event(l)).await.is_err() {
                    return;
                }
            }
            match live {
                Some(mut rx) => loop {
                    match rx.recv().await {
                        Ok(LogEvent::Line(l)) if l.id > last => {
                            last = l.id;
                            if tx.send(line_event(l)).await.is_err() {
                                return;
                            }
                        }
                        Ok(LogEvent::Line(_)) => {}
                        Ok(LogEvent::End { status }) => {
                            let _ = tx.send(end_event(&status)).await;
                            return;
                        }
                        // Fell behind or the channel closed: read the table again.
                        Err(_) => break,
                    }
                },
                None => {
                    // Not running: finished (then the table holds everything) or still queued.
                    let d = match state.engine.deployment(id).await {
                        Ok(d) => d,
                        Err(_) => return,
                    };
                    if d.status.is_final() {
                        let rest = state
                            .db
                            .call(move |c| crate::db::deployment_logs::list(c, id, last))
                            .await
                            .unwrap_or_default();
                        for l in rest {
                            let _ = tx.send(line_event(l)).await;
                        }
                        let _ = tx.send(end_event(d.status.as_str())).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}

/// A stream fed by a task through a channel: how the SSE handlers produce their events.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let gone = tx.clone();
    let work = f(tx);
    // Detached on purpose: it ends when the stream ends or the client goes away (the
    // receiver is dropped), even while it waits for a line that may never come.
    tokio::spawn(async move {
        tokio::select! {
            _ = work => {}
            _ = gone.closed() => {}
        }
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// The app's own output as Server-Sent Events (`event: stdout` / `event: stderr`), from all
/// its running containers.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/logs",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name"), AppLogParams),
    responses(
        (status = 200, description = "An event stream of the app's output lines"),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "Never deployed", body = ErrorBody),
        (status = 422, description = "`tail` over 10000", body = ErrorBody),
        (status = 429, description = "The token has its most log streams open already", body = ErrorBody),
    )
)]
pub async fn app_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    Query(params): Query<AppLogParams>,
) -> Result<Response, ApiError> {
    let options = output_options(&params)?;
    let guard = open_stream(&state, &caller)?;
    let lines = state
        .engine
        .app_logs(&app, options)
        .await
        .map_err(engine_error)?;
    Ok(output_events(lines, guard))
}

/// What a request for a container's output asks for, checked.
pub(super) fn output_options(
    params: &AppLogParams,
) -> Result<crate::runtime::LogOptions, ApiError> {
    let tail = params.tail.unwrap_or(100);
    if tail > MAX_TAIL {
        return Err(ApiError::invalid_value(
            "tail",
            format!("{tail} lines is more than the {MAX_TAIL} a request may ask for"),
        ));
    }
    Ok(crate::runtime::LogOptions {
        follow: wants_follow(&params.follow),
        tail: Some(tail),
        since: None,
    })
}

/// Containers' output as Server-Sent Events: `event: stdout` and `event: stderr` per line,
/// `event: error` when the engine's stream fails.
pub(super) fn output_events(lines: crate::runtime::LogStream, guard: StreamGuard) -> Response {
    let events = lines.map(|line| {
        Ok::<_, Infallible>(match line {
            Ok(l) => Event::default()
                .event(match l.source {
                    crate::runtime::LogSource::Stdout => "stdout",
                    crate::runtime::LogSource::Stderr => "stderr",
                })
                .data(l.line),
            Err(e) => Event::default().event("error").data(e.to_string()),
        })
    });
    Sse::new(guarded(events, guard))
        .keep_alive(KeepAlive::default())
        .into_response()
}

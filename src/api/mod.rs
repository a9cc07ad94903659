//! The REST API: axum routers, one module per resource, merged here.
//!
//! The API reads and writes the database and hands work to the engine (through
//! [`crate::engine::Deployer`]); it never talks to a container engine itself. Errors reach clients
//! as `{"error": {"code", "message"}}` (see [`error`]; [`extract`] makes rejections and
//! bare error responses speak it too). Every `/api` route but a few needs a bearer token
//! ([`auth`]) or the dashboard's session cookie ([`session`]); the forge webhooks
//! authenticate by signature ([`webhooks`]).

pub mod apps;
pub mod auth;
pub mod backups;
pub mod certificates;
pub mod databases;
pub mod deployments;
pub mod env;
pub mod error;
pub mod events;
pub mod extract;
pub mod git_access;
mod health;
mod metrics;
pub mod nodes;
pub mod notifications;
pub mod openapi;
pub mod previews;
pub mod registry;
pub mod session;
pub mod stats;
pub mod streams;
mod system;
pub mod tokens;
pub mod webhooks;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use error::ApiError;

/// Every route, each registered once for both the router and the OpenAPI document. Add new
/// handlers here, with a `#[utoipa::path]` annotation; never with a plain `.route()`, which
/// the document would not see (a test compares the two).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(metrics::metrics))
        .routes(routes!(
            session::sign_in,
            session::current,
            session::sign_out
        ))
        .routes(routes!(events::events))
        .routes(routes!(system::system))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(apps::start_app))
        .routes(routes!(apps::stop_app))
        .routes(routes!(apps::restart_app))
        .routes(routes!(stats::app_stats))
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(nodes::drain_node))
        .routes(routes!(nodes::activate_node))
        .routes(routes!(
            registry::get_registry_credential,
            registry::set_registry_credential,
            registry::delete_registry_credential
        ))
        .routes(routes!(previews::list_previews))
        .routes(routes!(previews::remove_preview))
        .routes(routes!(
            git_access::get_deploy_key,
            git_access::create_deploy_key,
            git_access::delete_deploy_key
        ))
        .routes(routes!(
            git_access::list_known_hosts,
            git_access::reset_known_hosts
        ))
        .routes(routes!(
            git_access::set_git_credential,
            git_access::delete_git_credential
        ))
        .routes(routes!(certificates::list_certificates))
        .routes(routes!(
            databases::list_databases,
            databases::create_database
        ))
        .routes(routes!(
            databases::get_database,
            databases::update_database,
            databases::delete_database
        ))
        .routes(routes!(databases::database_logs))
        .routes(routes!(databases::start_database))
        .routes(routes!(databases::stop_database))
        .routes(routes!(databases::restart_database))
        .routes(routes!(databases::list_links, databases::create_link))
        .routes(routes!(databases::delete_link))
        .routes(routes!(backups::list_backups, backups::start_backup))
        .routes(routes!(backups::download_backup))
        .routes(routes!(backups::restore_backup))
        .routes(routes!(backups::list_schedules, backups::create_schedule))
        .routes(routes!(backups::delete_schedule))
        .routes(routes!(backups::run_schedule))
        .routes(routes!(
            backups::list_destinations,
            backups::create_destination
        ))
        .routes(routes!(backups::delete_destination))
        .routes(routes!(
            notifications::list_channels,
            notifications::create_channel
        ))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(
            notifications::get_channel,
            notifications::update_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(deployments::app_logs))
        .routes(routes!(deployments::deploy, deployments::list_deployments))
        .routes(routes!(deployments::rollback))
        .routes(routes!(deployments::get_deployment))
        .routes(routes!(deployments::cancel_deployment))
        .routes(routes!(deployments::deployment_logs))
        .routes(routes!(env::list_env))
        .routes(routes!(env::set_env, env::unset_env))
        .routes(routes!(webhooks::secret::rotate_handler))
        .routes(routes!(webhooks::handler::receive))
}

/// Every API route, behind the token gate and the error format.
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes().split_for_parts();
    // The last layer added is the outermost: the access log sees every answer, and errors
    // from the gates are JSON like the handlers'.
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(auth::refuse_query_tokens))
        .layer(axum::middleware::from_fn(extract::json_errors))
        .layer(axum::middleware::from_fn(database_faults))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

/// Every request's database calls wait at most [`crate::db::REQUEST_WAIT`] each. A request
/// that failed because the database was locked or its disk full is answered 503 or 507 saying
/// so, whatever error the handler made of it (each handler reports a database error as its own
/// 500): the client learns that trying again will work, and nothing hangs meanwhile.
async fn database_faults(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (res, fault) = crate::db::with_budget(crate::db::REQUEST_WAIT, next.run(req)).await;
    match fault {
        Some(fault) if res.status() == axum::http::StatusCode::INTERNAL_SERVER_ERROR => {
            ApiError::database_fault(fault).into_response()
        }
        _ => res,
    }
}

/// `/metrics` alone, for `[metrics] listen`: behind the same token, with nothing else of the
/// API or the dashboard on that address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!(
                "only /metrics is served on this address, not {}",
                uri.path()
            ))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(extract::json_errors))
        .with_state(state)
}

/// One line per request at debug level; nothing is written to the database per request.
async fn access_log(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::debug!(%method, %path, status = res.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "api request");
    res
}

/// The router as a hyper service for one connection, with the peer address available to
/// handlers as `ConnectInfo<SocketAddr>`.
pub fn service(
    router: Router,
    peer: SocketAddr,
) -> TowerToHyperService<
    tower::util::MapRequest<
        Router,
        impl FnMut(hyper::Request<Incoming>) -> hyper::Request<Incoming> + Clone,
    >,
> {
    TowerToHyperService::new(
        router.map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        }),
    )
}

/// Paths no route matched: the dashboard's (see [`crate::ui`]) outside `/api` and
/// `/webhooks`, a JSON 404 everywhere else.
async fn not_found(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::ui::is_dashboard_path(uri.path())
        && let Some(res) = crate::ui::serve(&method, uri.path(), &headers)
    {
        return res;
    }
    ApiError::not_found(format!("no route for {method} {}", uri.path())).into_response()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A router over a fresh database in a temporary directory, with one valid token.

    use std::sync::Arc;

    use crate::AppState;

    pub struct TestApi {
        pub router: axum::Router,
        pub token: String,
        _dir: tempfile::TempDir,
    }

    impl TestApi {
        pub async fn new() -> TestApi {
            let dir = tempfile::tempdir().unwrap();
            let (db, _) = crate::db::Db::open(&dir.path().join("rivetr.db")).unwrap();
            let secrets = Arc::new(crate::secrets::load(&db, dir.path(), None).await.unwrap());
            let config = crate::config::Config::default();
            let runtime = Arc::new(arc_swap::ArcSwap::from_pointee(crate::runtime::Detection {
                runtime: None,
                swarm: None,
                status: crate::runtime::RuntimeStatus::Unavailable {
                    message: "no container engine in API unit tests".to_owned(),
                    tried: Vec::new(),
                },
            }));
            let engine = crate::engine::Engine::start(
                db.clone(),
                Arc::clone(&secrets),
                Arc::clone(&runtime),
                Arc::new(crate::proxy::routes::RouteTable::new()),
                crate::engine::EngineConfig::from_config(&config, dir.path().to_owned()),
                tokio_util::sync::CancellationToken::new(),
            );
            let notifier = crate::notify::Notifier::new(db.clone(), Arc::clone(&secrets), &config);
            let state = AppState::new(db, config, secrets, runtime, engine, notifier);
            let created = crate::auth::create(&state.db, "test")
                .await
                .unwrap()
                .unwrap();
            TestApi {
                router: super::router(state),
                token: created.token.expose().to_owned(),
                _dir: dir,
            }
        }
    }
}

//! The REST API: axum routers, one module per resource, merged here.
//!
//! The API reads and writes the database and hands work to the engine; it never talks to a
//! container engine itself. Errors reach clients as `{"error": {"code", "message"}}` (see
//! [`error`]).

pub mod error;
mod health;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::AppState;
use error::ApiError;

/// Every API route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(access_log))
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

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

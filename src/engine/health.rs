//! The health check of a new container: HTTP GET of the health path on its 127.0.0.1 port
//! until it answers 2xx or 3xx, or the retries run out. Every attempt is logged. A container
//! that exits meanwhile fails the check at once, with its exit code and last lines of output.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::log::DeployLog;
use crate::db::apps::Healthcheck;
use crate::runtime::{ContainerRuntime, ContainerState, LogOptions};

/// Why a container never became healthy.
#[derive(Debug)]
pub enum Unhealthy {
    Cancelled,
    Failed(String),
}

/// Waits until the container answers its health check.
pub async fn wait_healthy(
    runtime: &Arc<dyn ContainerRuntime>,
    container: &str,
    host_port: u16,
    check: &Healthcheck,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<(), Unhealthy> {
    let addr = SocketAddr::from(([127, 0, 0, 1], host_port));
    wait_until_healthy(addr, check, log, cancel, || exited(runtime, container)).await
}

/// Probes `addr` as `check` says until it answers 2xx or 3xx; `gone` says why the thing
/// behind it stopped (then probing stops too), or `None` while it runs.
pub async fn wait_until_healthy<F, Fut>(
    addr: SocketAddr,
    check: &Healthcheck,
    log: &DeployLog,
    cancel: &CancellationToken,
    mut gone: F,
) -> Result<(), Unhealthy>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let retries = check.retries.max(1);
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    let interval = Duration::from_millis(check.interval_ms);
    let path = probe_path(check);
    for attempt in 1..=retries {
        if cancel.is_cancelled() {
            return Err(Unhealthy::Cancelled);
        }
        if let Some(why) = gone().await {
            return Err(Unhealthy::Failed(why));
        }
        match tokio::time::timeout(timeout, get(addr, &path)).await {
            Ok(Ok(status)) if (200..400).contains(&status) => {
                log.line(
                    "health",
                    &format!("attempt {attempt}/{retries}: GET {path} -> {status}: healthy"),
                );
                return Ok(());
            }
            Ok(Ok(status)) => log.line(
                "health",
                &format!("attempt {attempt}/{retries}: GET {path} -> {status}"),
            ),
            Ok(Err(e)) => log.line(
                "health",
                &format!("attempt {attempt}/{retries}: GET {path} -> {e}"),
            ),
            Err(_) => log.line(
                "health",
                &format!("attempt {attempt}/{retries}: GET {path} -> no answer within {timeout:?}"),
            ),
        }
        if attempt < retries {
            tokio::select! {
                _ = cancel.cancelled() => return Err(Unhealthy::Cancelled),
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
    if let Some(why) = gone().await {
        return Err(Unhealthy::Failed(why));
    }
    Err(Unhealthy::Failed(format!(
        "health check failed: GET {path} gave no 2xx or 3xx answer in {retries} attempts"
    )))
}

/// `Some(reason)` when the container is no longer running.
async fn exited(runtime: &Arc<dyn ContainerRuntime>, container: &str) -> Option<String> {
    let info = match runtime.inspect(container).await {
        Ok(info) => info,
        Err(e) => return Some(format!("container {container} cannot be inspected: {e}")),
    };
    if matches!(
        info.state,
        ContainerState::Running | ContainerState::Created | ContainerState::Restarting
    ) {
        return None;
    }
    let code = info
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let mut reason = match info.failure() {
        Some(oom) => format!("the container exited during the health check: {oom}"),
        None => format!("the container exited during the health check with exit code {code}"),
    };
    let tail = last_lines(runtime, container, 20).await;
    if !tail.is_empty() {
        reason.push_str("; its last output:\n");
        reason.push_str(&tail.join("\n"));
    }
    Some(reason)
}

/// The last `n` lines a container wrote.
pub async fn last_lines(
    runtime: &Arc<dyn ContainerRuntime>,
    container: &str,
    n: u64,
) -> Vec<String> {
    let mut stream = runtime.logs(
        container,
        LogOptions {
            follow: false,
            tail: Some(n),
            since: None,
        },
    );
    let mut lines = Vec::new();
    while let Some(Ok(line)) = stream.next().await {
        lines.push(line.line);
    }
    lines
}

/// One probe of `addr` as `check` says, within its timeout: true for a 2xx or 3xx answer.
pub async fn answers(addr: SocketAddr, check: &Healthcheck) -> bool {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    matches!(
        tokio::time::timeout(timeout, get(addr, &probe_path(check))).await,
        Ok(Ok(status)) if (200..400).contains(&status)
    )
}

fn probe_path(check: &Healthcheck) -> String {
    if check.path.starts_with('/') {
        check.path.clone()
    } else {
        format!("/{}", check.path)
    }
}

/// One GET; the status code, or why there was none.
async fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Detached on purpose: ends with the connection, which ends when `send` is dropped.
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .header(
            hyper::header::USER_AGENT,
            concat!("rivetr-healthcheck/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = send.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(res.status().as_u16())
}

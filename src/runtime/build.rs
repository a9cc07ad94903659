//! `POST /build` on the Docker-compatible API, sent by Rivetr itself rather than through
//! bollard: bollard 0.21's build options carry the memory limit as a 32-bit integer
//! (bollard issue 789), so no build could be limited to 2 GiB or more. Everything else about
//! a build (streaming the context, reading the engine's JSON progress, naming the failing
//! step) is the same for Docker and Podman and lives here once.
//!
//! Limits reach each step's container as the engines take them: `memory` and `memswap`
//! (equal: no swap on top), `cpuperiod`/`cpuquota`. Measured: Docker 20.10 and rootful Podman
//! 4.3 on cgroups v1 apply both to `RUN` steps; rootless Podman on cgroups v1 fails every
//! `RUN` step given either (see [`super::PodmanRuntime`]). The time limit is Rivetr's: past
//! it the request is dropped. Docker then stops the build; Podman 4.3 lets the running step
//! finish (within its memory and CPU limits) and discards the build.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::build_output::BuildProgress;
use super::error::{Subject, redact};
use super::{BuildLimits, BuildSpec, RuntimeError};

/// The CFS period the CPU quota is a share of (the engines' default).
const CPU_PERIOD_US: u64 = 100_000;

/// Sends the build and follows it to the end, within `spec.limits.timeout` when set.
pub(crate) async fn run(
    path: &Path,
    socket: &str,
    spec: BuildSpec,
    on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<BuildProgress, RuntimeError> {
    let limits = spec.limits;
    let build = follow(path, socket, spec, on_output);
    match limits.timeout {
        Some(limit) => tokio::time::timeout(limit, build)
            .await
            .unwrap_or(Err(RuntimeError::BuildTimedOut { limit })),
        None => build.await,
    }
}

async fn follow(
    path: &Path,
    socket: &str,
    spec: BuildSpec,
    on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<BuildProgress, RuntimeError> {
    let BuildSpec {
        context,
        dockerfile,
        build_args,
        tag,
        labels,
        limits,
    } = spec;
    let query = query(&dockerfile, &tag, &build_args, &labels, &limits);
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| unreachable(socket, e.to_string()))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(socket, e.to_string()))?;
    let body: ContextBody = StreamBody::new(context.map(data_frame as fn(_) -> _));
    let request = Request::post(format!("/build?{query}"))
        .header(hyper::header::HOST, "d")
        .header(hyper::header::CONTENT_TYPE, "application/x-tar")
        .body(body)
        .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    // The sender moves into the exchange, so the connection ends with it and `join!` returns;
    // dropping both (the time limit) closes the socket, which is how an engine learns to stop.
    let exchange = exchange(
        sender,
        request,
        socket,
        &tag,
        &build_args,
        &limits,
        on_output,
    );
    // Boxed: joined unboxed, the compiler cannot prove the pair `Send` for every lifetime of
    // `on_output` (a "higher-ranked lifetime error" in the trait's boxed future).
    let conn: futures_util::future::BoxFuture<'static, Result<(), hyper::Error>> = Box::pin(conn);
    let (answer, _conn) = tokio::join!(exchange, conn);
    answer
}

type ContextBody = StreamBody<
    futures_util::stream::Map<
        super::BuildContext,
        fn(Result<Bytes, std::io::Error>) -> Result<Frame<Bytes>, std::io::Error>,
    >,
>;

async fn exchange(
    mut sender: hyper::client::conn::http1::SendRequest<ContextBody>,
    request: Request<ContextBody>,
    socket: &str,
    tag: &str,
    build_args: &[(String, String)],
    limits: &BuildLimits,
    on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<BuildProgress, RuntimeError> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(socket, e.to_string()).redacted(build_args))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let bytes = body
            .collect()
            .await
            .map_err(|e| unreachable(socket, e.to_string()))?
            .to_bytes();
        return Err(RuntimeError::from_engine(
            status,
            redact(error_text(&bytes), build_args),
            Subject::Image(tag),
        ));
    }
    let mut progress = BuildProgress::default();
    let mut pending = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreachable(socket, e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            pending.extend_from_slice(&data);
            for message in take_messages(&mut pending)? {
                handle(message, &mut progress, build_args, limits, on_output)?;
            }
        }
    }
    if !pending.iter().all(u8::is_ascii_whitespace) {
        return Err(RuntimeError::Protocol(format!(
            "the build's answer ended inside a message: {:?}",
            String::from_utf8_lossy(&pending)
        )));
    }
    progress.finish(on_output);
    Ok(progress)
}

fn unreachable(socket: &str, message: String) -> RuntimeError {
    RuntimeError::Unreachable {
        socket: socket.to_owned(),
        message,
    }
}

fn data_frame(chunk: Result<Bytes, std::io::Error>) -> Result<Frame<Bytes>, std::io::Error> {
    chunk.map(Frame::data)
}

/// One JSON message of the engine's build stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    stream: Option<String>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorDetail {
    message: Option<String>,
}

/// Takes the complete JSON messages off the front of `pending`; a partial one stays.
fn take_messages(pending: &mut BytesMut) -> Result<Vec<Message>, RuntimeError> {
    let mut messages = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(pending).into_iter::<Message>();
    let mut used = 0;
    loop {
        match stream.next() {
            Some(Ok(m)) => {
                messages.push(m);
                used = stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => {
                return Err(RuntimeError::Protocol(format!(
                    "cannot read the build's progress: {e}"
                )));
            }
            None => {
                used = stream.byte_offset();
                break;
            }
        }
    }
    pending.advance(used);
    Ok(messages)
}

fn handle(
    message: Message,
    progress: &mut BuildProgress,
    build_args: &[(String, String)],
    limits: &BuildLimits,
    on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<(), RuntimeError> {
    if let Some(text) = message.stream {
        progress.feed(&text, on_output);
    }
    let error = message
        .error_detail
        .and_then(|d| d.message)
        .or(message.error);
    let Some(error) = error else {
        return Ok(());
    };
    let error = redact(error, build_args);
    Err(match limits.memory_bytes {
        Some(limit) => progress.failure_under_memory_limit(&error, limit),
        None => progress.failure(&error),
    })
}

/// The `/build` query: what to build, how to name it, and its limits.
fn query(
    dockerfile: &str,
    tag: &str,
    build_args: &[(String, String)],
    labels: &BTreeMap<String, String>,
    limits: &BuildLimits,
) -> String {
    let args: BTreeMap<&str, &str> = build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("dockerfile", dockerfile)
        .append_pair("t", tag)
        .append_pair(
            "buildargs",
            &serde_json::to_string(&args).unwrap_or_default(),
        )
        .append_pair("labels", &serde_json::to_string(labels).unwrap_or_default())
        .append_pair("rm", "1")
        // A failed build leaves no intermediate containers behind.
        .append_pair("forcerm", "1");
    if let Some(memory) = limits.memory_bytes {
        let memory = memory.to_string();
        q.append_pair("memory", &memory)
            .append_pair("memswap", &memory);
    }
    if let Some(cpus) = limits.cpus {
        let quota = ((cpus * CPU_PERIOD_US as f64) as u64).max(1_000);
        q.append_pair("cpuperiod", &CPU_PERIOD_US.to_string())
            .append_pair("cpuquota", &quota.to_string());
    }
    q.finish()
}

/// Engines answer a refused build as `{"message": ...}`; anything else is shown as text.
fn error_text(body: &Bytes) -> String {
    #[derive(Deserialize)]
    struct ErrorJson {
        message: String,
    }
    match serde_json::from_slice::<ErrorJson>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_above_2_gib_reach_the_query() {
        let limits = BuildLimits {
            memory_bytes: Some(3 << 30),
            cpus: Some(0.5),
            timeout: None,
        };
        let q = query(
            "Dockerfile",
            "localhost/rivetr-x/app:1",
            &[("A".into(), "b c".into())],
            &BTreeMap::from([("io.rivetr.app".to_owned(), "app".to_owned())]),
            &limits,
        );
        assert!(q.contains("memory=3221225472&memswap=3221225472"), "{q}");
        assert!(q.contains("cpuperiod=100000&cpuquota=50000"), "{q}");
        assert!(q.contains("t=localhost%2Frivetr-x%2Fapp%3A1"), "{q}");
        assert!(q.contains("buildargs=%7B%22A%22%3A%22b+c%22%7D"), "{q}");
        let q = query(
            "Dockerfile",
            "t",
            &[],
            &BTreeMap::new(),
            &BuildLimits::default(),
        );
        assert!(!q.contains("memory") && !q.contains("cpu"), "{q}");
    }

    #[test]
    fn messages_split_anywhere_are_read_whole() {
        let mut pending = BytesMut::new();
        let mut all = Vec::new();
        let text = "{\"stream\":\"STEP 1/2: FROM x\\n\"}\r\n{\"stream\":\"hi\\n\"}\n{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}";
        for chunk in text.as_bytes().chunks(7) {
            pending.extend_from_slice(chunk);
            all.extend(take_messages(&mut pending).unwrap());
        }
        assert!(pending.is_empty(), "{pending:?}");
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].stream.as_deref(), Some("hi\n"));
        assert_eq!(
            all[2].error_detail.as_ref().unwrap().message.as_deref(),
            Some("boom")
        );
        let mut bad = BytesMut::from(&b"{\"stream\":1}"[..]);
        assert!(take_messages(&mut bad).is_err());
    }
}

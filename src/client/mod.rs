//! The command-line client: `rivetr app|env|db|notify|preview|node|deploy|logs|deployments|rollback`
//! drive a running Rivetr through its REST API, the same API the dashboard and scripts use.
//!
//! [`config`] finds the URL and the token, [`http`] carries requests (hyper 1, TCP or
//! rustls), [`sse`] parses the log streams, [`types`] reads the answers, [`format`] turns
//! them into tables, and [`commands`] runs each subcommand. Errors are one enum,
//! [`ClientError`], whose [`Failure`] tells `main.rs` which exit status to end with. This
//! module never opens the database or a container engine: everything goes through the API.

pub mod commands;
pub mod config;
pub mod format;
pub mod http;
pub mod nodes;
pub mod notify;
pub mod preview;
pub mod sse;
pub mod types;

use std::collections::VecDeque;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};

use config::{ConfigError, Settings};

/// What kind of failure ended a command; `main.rs` maps each to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Bad flags, configuration or input: nothing was sent.
    Usage,
    /// The server refused or failed the request, or the deployment did not end running.
    Failed,
    /// HTTP 404.
    NotFound,
    /// HTTP 401.
    Unauthorized,
    /// No answer from the server.
    Unreachable,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach Rivetr at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// An error answer from the API.
    #[error("{}", api_message(*.status, .code, .message))]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("{message}")]
    Stream { message: String },
    #[error(
        "deployment {id} of {app} ended {status}{}",
        .reason.as_deref().map(|r| format!(": {}", format::one_line(r))).unwrap_or_default()
    )]
    DeploymentFailed {
        id: i64,
        app: String,
        status: String,
        reason: Option<String>,
    },
    /// The request succeeded but what it started failed (a backup).
    #[error("{0}")]
    Failed(String),
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    /// Writing to stdout failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

fn api_message(status: u16, code: &str, message: &str) -> String {
    let hint = match status {
        401 => "; check --token, RIVETR_TOKEN or `token` in cli.toml",
        429 => "; wait before trying again",
        _ => "",
    };
    format!("{message} (HTTP {status} {code}){hint}")
}

impl ClientError {
    pub fn failure(&self) -> Failure {
        match self {
            ClientError::Config(_) | ClientError::Usage(_) | ClientError::Stdin(_) => {
                Failure::Usage
            }
            ClientError::Unreachable { .. } => Failure::Unreachable,
            ClientError::Api { status: 404, .. } => Failure::NotFound,
            ClientError::Api { status: 401, .. } => Failure::Unauthorized,
            ClientError::Api { .. }
            | ClientError::Protocol { .. }
            | ClientError::Stream { .. }
            | ClientError::DeploymentFailed { .. }
            | ClientError::Failed(_)
            | ClientError::Output(_) => Failure::Failed,
        }
    }

    /// True when stdout was closed by its reader (`| head`): nothing worth saying.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Rivetr's API, as seen from the command line.
#[derive(Debug)]
pub struct Client {
    http: http::Http,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Client, ConfigError> {
        Ok(Client {
            http: http::Http::new(settings)?,
        })
    }

    /// The settings of the command line, the environment and cli.toml (see [`config`]).
    /// The file is not read when the flags and variables give both URL and token.
    pub fn from_args(args: &crate::cli::ApiArgs) -> Result<Client, ConfigError> {
        let given = config::Given {
            url: args.url.clone(),
            token: args.token.clone(),
            ca_file: args.ca_file.clone(),
        };
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let path = config::path_from_env();
        let file = match &path {
            Some(p) if !(has(&given.url) && has(&given.token)) => config::load_file(p)?,
            _ => None,
        };
        Client::new(&config::resolve(given, file, path.as_deref())?)
    }

    pub fn url(&self) -> &str {
        self.http.endpoint().url()
    }

    pub async fn get(&self, path: &str) -> Result<Bytes, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        self.call(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Result<Bytes, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> Result<Bytes, ClientError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Bytes, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// One request; a 2xx answer's body, or the API's error as [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = self.http.call(method, path, body).await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// Parses an answer as `T`; an answer of another shape is a protocol error.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol {
            url: self.url().to_owned(),
            message: format!("the answer is not what this client expects: {e}"),
        })
    }

    /// Streams a GET's body into a new file at `to` (written beside it, then renamed);
    /// returns its size.
    pub async fn download(&self, path: &str, to: &std::path::Path) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let res = self.http.stream(path).await?;
        let status = res.status();
        let mut body = res.into_body();
        if !status.is_success() {
            let mut bytes = Vec::new();
            while let Some(chunk) = http::next_chunk(&mut body, self.url()).await? {
                bytes.extend_from_slice(&chunk);
            }
            return Err(api_error(status, &bytes));
        }
        let mut partial = to.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut size = 0u64;
        while let Some(chunk) = http::next_chunk(&mut body, self.url()).await? {
            file.write_all(&chunk).await?;
            size += chunk.len() as u64;
        }
        file.sync_all().await?;
        tokio::fs::rename(&partial, to).await?;
        Ok(size)
    }

    /// Opens a Server-Sent Events stream.
    pub async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let res = self.http.stream(path).await?;
        let status = res.status();
        let is_events = res
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = res.into_body();
        if !status.is_success() || !is_events {
            // An error answer is small; read it whole for its message.
            let mut bytes = Vec::new();
            while let Some(chunk) = http::next_chunk(&mut body, self.url()).await? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > 1024 * 1024 {
                    break;
                }
            }
            if status.is_success() {
                return Err(ClientError::Protocol {
                    url: self.url().to_owned(),
                    message: format!("{path} did not answer with an event stream"),
                });
            }
            return Err(api_error(status, &bytes));
        }
        Ok(EventStream {
            body,
            parser: sse::Parser::new(),
            pending: VecDeque::new(),
            url: self.url().to_owned(),
        })
    }
}

/// The API's `{"error": {"code", "message"}}`, or what the answer held instead (a proxy's
/// HTML page, say).
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<types::ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text: String = text.trim().chars().take(200).collect();
            ClientError::Api {
                status: status.as_u16(),
                code: "http".to_owned(),
                message: if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_ascii_lowercase()
                } else {
                    format::one_line(&text)
                },
            }
        }
    }
}

/// The events of one stream, in order.
pub struct EventStream {
    body: Incoming,
    parser: sse::Parser,
    pending: VecDeque<sse::Event>,
    url: String,
}

impl EventStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<sse::Event>, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            match http::next_chunk(&mut self.body, &self.url).await? {
                Some(chunk) => self.pending.extend(self.parser.feed(&chunk)),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_code_and_message_and_map_to_failures() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"no app named `x`"}}"#,
        );
        assert_eq!(e.failure(), Failure::NotFound);
        assert_eq!(e.to_string(), "no app named `x` (HTTP 404 not_found)");
        let e = api_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"code":"unauthorized","message":"unknown token"}}"#,
        );
        assert_eq!(e.failure(), Failure::Unauthorized);
        assert!(e.to_string().contains("RIVETR_TOKEN"), "{e}");
        let e = api_error(
            StatusCode::BAD_GATEWAY,
            b"<html>\n<b>Bad gateway</b></html>",
        );
        assert_eq!(e.failure(), Failure::Failed);
        assert!(e.to_string().contains("<html>\\n<b>Bad"), "{e}");
        let e = api_error(StatusCode::CONFLICT, b"");
        assert_eq!(e.to_string(), "conflict (HTTP 409 http)");
    }

    #[test]
    fn failures_of_each_kind() {
        let usage = ClientError::Usage("x".into());
        assert_eq!(usage.failure(), Failure::Usage);
        let gone = ClientError::Unreachable {
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(gone.failure(), Failure::Unreachable);
        let failed = ClientError::DeploymentFailed {
            id: 3,
            app: "web".into(),
            status: "failed".into(),
            reason: Some("build failed".into()),
        };
        assert_eq!(failed.failure(), Failure::Failed);
        assert_eq!(
            failed.to_string(),
            "deployment 3 of web ended failed: build failed"
        );
        let pipe = ClientError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
    }
}

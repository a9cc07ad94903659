//! A minimal HTTP/1.1 JSON client over an engine's unix socket, for the few endpoints whose
//! answers bollard's types cannot read reliably (Podman's libpod endpoints, and Docker's
//! `/info`, whose dozens of enum fields Rivetr does not need). Short GETs only; one
//! connection per request, which costs well under a millisecond on a local socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::RuntimeError;
use super::error::Subject;

#[derive(Debug, Clone)]
pub(crate) struct RawClient {
    path: PathBuf,
    /// `unix:///path`, for errors.
    socket: String,
    timeout: Duration,
}

impl RawClient {
    pub(crate) fn new(path: &Path, timeout: Duration) -> RawClient {
        RawClient {
            path: path.to_owned(),
            socket: format!("unix://{}", path.display()),
            timeout,
        }
    }

    /// GETs `path_and_query` and reads the JSON answer; a non-2xx status becomes the
    /// engine's error about `subject`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        subject: Subject<'_>,
    ) -> Result<T, RuntimeError> {
        let (status, _, body) = self.timed_exchange(path_and_query).await?;
        if !(200..300).contains(&status) {
            return Err(RuntimeError::from_engine(
                status,
                error_message(&body),
                subject,
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            let path = path_and_query.split('?').next().unwrap_or_default();
            RuntimeError::Protocol(format!("{path}: {e}"))
        })
    }

    /// GETs `path_and_query` and returns the status and the headers of the answer.
    pub(crate) async fn headers(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, hyper::HeaderMap), RuntimeError> {
        let (status, headers, _) = self.timed_exchange(path_and_query).await?;
        Ok((status, headers))
    }

    async fn timed_exchange(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), RuntimeError> {
        tokio::time::timeout(self.timeout, self.exchange(path_and_query))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {:?}", self.timeout)))?
    }

    async fn exchange(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), RuntimeError> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let request = Request::get(path_and_query)
            .header(hyper::header::HOST, "d")
            .body(Empty::<Bytes>::new())
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        // The sender moves into the exchange, so the connection ends once the answer is read
        // and `join!` returns: no task outlives the call.
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, headers, body))
        };
        let (answer, _conn) = tokio::join!(exchange, conn);
        answer.map_err(|e| self.unreachable(e.to_string()))
    }

    fn unreachable(&self, message: String) -> RuntimeError {
        RuntimeError::Unreachable {
            socket: self.socket.clone(),
            message,
        }
    }
}

/// Engines answer errors as `{"message": ...}` (Podman adds `cause` and `response`);
/// anything else is shown as text.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorJson {
        message: String,
    }
    match serde_json::from_slice::<ErrorJson>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(
            encode(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(br#"{"cause":"x","message":"no such container","response":404}"#),
            "no such container"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
    }
}

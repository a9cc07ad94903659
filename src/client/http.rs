//! The client's HTTP: one hyper 1 HTTP/1.1 connection per request, over TCP or over TLS
//! (rustls with the public web roots, plus a CA file when one is given).
//!
//! A command makes a handful of requests, so there is no pool. Ordinary requests have a
//! deadline; streams (Server-Sent Events) have none, but fail when the server is silent for
//! longer than [`STREAM_IDLE`] (Rivetr sends a keep-alive comment every 15 seconds). This
//! module knows URLs, bytes and status codes, never Rivetr's resources.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;

use super::ClientError;
use super::config::{ConfigError, Settings, Token};

/// Connecting (name lookup, TCP, TLS) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An ordinary request, answer included, may take this long (deleting an app stops its
/// containers, which may take the app's stop timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// A stream with no bytes for this long is considered dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);
/// The largest answer read into memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// Rivetr's API: where to connect and what to put before `/api/...`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    scheme: Scheme,
    /// Without IPv6 brackets: what TCP and TLS want.
    host: String,
    port: u16,
    /// For the Host header: as written in the URL.
    authority: String,
    /// `""` or `/prefix` (no trailing slash).
    base_path: String,
    /// The URL as given, for messages.
    url: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub fn parse(url: &str) -> Result<Endpoint, ConfigError> {
        let err = |message: &str| ConfigError::Url {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| err(&e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(_) => return Err(err("the scheme must be http or https")),
            None => {
                return Err(err(
                    "write it with its scheme, such as http://127.0.0.1:8080",
                ));
            }
        };
        let authority = uri.authority().ok_or_else(|| err("no host"))?;
        if authority.as_str().contains('@') {
            return Err(err(
                "credentials do not belong in the URL; use --token or RIVETR_TOKEN",
            ));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(err("a query or fragment does not belong in the API's URL"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint {
            scheme,
            host,
            port,
            authority: authority.as_str().to_owned(),
            base_path,
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Sends requests to one Rivetr with one token.
pub struct Http {
    endpoint: Endpoint,
    auth: HeaderValue,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Http {
    pub fn new(settings: &Settings) -> Result<Http, ConfigError> {
        let endpoint = Endpoint::parse(&settings.url)?;
        let tls = match endpoint.scheme {
            Scheme::Https => Some(tls_connector(settings.ca_file.as_deref())?),
            Scheme::Http => None,
        };
        Ok(Http {
            endpoint,
            auth: bearer(&settings.token)?,
            tls,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request and reads the whole answer, whatever its status.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let exchange = async {
            let res = self.send(method, path_and_query, body, false).await?;
            let status = res.status();
            let bytes = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| self.unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.unreachable(format!("no complete answer within {REQUEST_TIMEOUT:?}"))
            })?
    }

    /// Sends one GET for a stream and returns the answer with its body still to read.
    pub async fn stream(&self, path_and_query: &str) -> Result<Response<Incoming>, ClientError> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send(Method::GET, path_and_query, None, true),
        )
        .await
        .map_err(|_| self.unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        event_stream: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut sender = self.connect().await?;
        let uri = format!("{}{}", self.endpoint.base_path, path_and_query);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(HOST, &self.endpoint.authority)
            .header(AUTHORIZATION, self.auth.clone())
            .header(
                USER_AGENT,
                concat!("rivetr-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                ACCEPT,
                if event_stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            );
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req =
            req.body(Full::new(body.unwrap_or_default()))
                .map_err(|e| ClientError::Protocol {
                    url: self.endpoint.url.clone(),
                    message: format!("cannot build the request for {uri}: {e}"),
                })?;
        sender
            .send_request(req)
            .await
            .map_err(|e| self.unreachable(format!("sending the request: {e}")))
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let e = &self.endpoint;
        let connecting = async {
            let tcp = TcpStream::connect((e.host.as_str(), e.port))
                .await
                .map_err(|err| self.unreachable(err.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => crate::outbound::handshake(TokioIo::new(tcp)).await,
                Some(tls) => {
                    let name = ServerName::try_from(e.host.clone())
                        .map_err(|err| self.unreachable(format!("host name: {err}")))?;
                    let stream = tls
                        .connect(name, tcp)
                        .await
                        .map_err(|err| self.unreachable(format!("TLS: {err}")))?;
                    crate::outbound::handshake(TokioIo::new(stream)).await
                }
            }
            .map_err(|err| self.unreachable(format!("HTTP handshake: {err}")))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| self.unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
    }

    fn unreachable(&self, message: String) -> ClientError {
        ClientError::Unreachable {
            url: self.endpoint.url.clone(),
            message,
        }
    }
}

fn bearer(token: &Token) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| ConfigError::BadToken { from: "settings" })?;
    value.set_sensitive(true);
    Ok(value)
}

fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, ConfigError> {
    let mut extra = Vec::new();
    if let Some(path) = ca_file {
        let err = |message: String| ConfigError::CaFile {
            path: path.to_owned(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no CERTIFICATE block".to_owned()));
        }
        extra = certs;
    }
    crate::outbound::tls_connector(extra).map_err(|e| ConfigError::CaFile {
        path: ca_file.map(ToOwned::to_owned).unwrap_or_default(),
        message: e.to_string(),
    })
}

/// Reads the next chunk of a streamed body; `Ok(None)` at its end.
pub async fn next_chunk(body: &mut Incoming, url: &str) -> Result<Option<Bytes>, ClientError> {
    loop {
        let frame = tokio::time::timeout(STREAM_IDLE, body.frame())
            .await
            .map_err(|_| ClientError::Unreachable {
                url: url.to_owned(),
                message: format!("the stream was silent for {STREAM_IDLE:?}"),
            })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(ClientError::Unreachable {
                    url: url.to_owned(),
                    message: format!("the stream broke: {e}"),
                });
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would be read as path steps.
    match out.as_str() {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.base_path.as_str()),
            (Scheme::Http, "127.0.0.1", 8080, "")
        );
        let e = Endpoint::parse("https://paas.example.com/rivetr/").unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.base_path.as_str()),
            (Scheme::Https, "paas.example.com", 443, "/rivetr")
        );
        assert_eq!(e.authority, "paas.example.com");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.authority, "[::1]:9000");
        assert_eq!(Endpoint::parse("http://h").unwrap().port, 80);
        for bad in [
            "127.0.0.1:8080",
            "ftp://h",
            "http://user:pw@h",
            "http://h/?token=x",
            "http://h/#x",
            "not a url",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("web-1"), "web-1");
        assert_eq!(segment("a/b"), "a%2Fb");
        assert_eq!(segment("x y?#%"), "x%20y%3F%23%25");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            tls_connector(Some(&dir.path().join("none.pem"))),
            Err(ConfigError::CaFile { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        assert!(matches!(
            tls_connector(Some(&empty)),
            Err(ConfigError::CaFile { .. })
        ));
        assert!(tls_connector(None).is_ok());
    }
}

//! A small S3 client for backups: signed (AWS Signature Version 4) PUT, multipart upload,
//! GET as a stream, and DELETE, on the hyper and rustls Rivetr already has.
//!
//! Why not a crate such as `object_store`: it brings reqwest, a second HTTP and TLS stack and
//! several megabytes of binary for the five calls a backup needs; the signing is a page of
//! HMAC-SHA256 that the unit test below checks against AWS's published example, and the
//! end-to-end tests run it against moto's S3 server.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;

use crate::secrets::SecretString;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Each multipart part but the last: S3's minimum is 5 MiB, and a part is held in memory
/// while it is sent.
pub const PART_SIZE: usize = 8 << 20;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole small request, or the headers of a streamed answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What went wrong talking to the storage.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    /// The storage answered with an error: its status, code and message.
    #[error("{method} {target} answered {status} {code}: {message}")]
    Refused {
        method: Method,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
}

/// Where a bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prepended to every object key (`rivetr/`); may be empty.
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key` (MinIO,
    /// moto and most self-hosted servers want it).
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// The parts of an endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// A path the endpoint sits under, without a trailing `/` (usually empty).
    base: String,
}

fn parse_endpoint(url: &str) -> Result<Endpoint, S3Error> {
    let bad = |why: &str| S3Error::Invalid(format!("endpoint `{url}`: {why}"));
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("must start with https:// or http://"));
    };
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.to_owned(),
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
        ),
        _ => (authority.to_owned(), if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Endpoint {
        tls,
        host,
        port,
        base: base.trim_end_matches('/').to_owned(),
    })
}

/// One bucket, with signed requests.
#[derive(Clone)]
pub struct S3 {
    config: S3Config,
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl S3 {
    pub fn new(config: S3Config) -> Result<S3, S3Error> {
        let endpoint = parse_endpoint(&config.endpoint)?;
        if config.bucket.is_empty()
            || !config
                .bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(S3Error::Invalid(format!(
                "bucket `{}`: letters, digits, `-`, `.` and `_` only",
                config.bucket
            )));
        }
        let tls = endpoint
            .tls
            .then(|| crate::outbound::tls_connector(Vec::new()))
            .transpose()
            .map_err(|e| S3Error::Protocol(format!("TLS setup: {e}")))?;
        Ok(S3 {
            config,
            endpoint,
            tls,
        })
    }

    /// The full key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.config.prefix)
    }

    /// `s3://bucket/key`, as a backup's location is shown.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.config.bucket)
    }

    /// The host the requests go to, and the path of `key` on it.
    fn host_and_path(&self, key: &str) -> (String, String) {
        let e = &self.endpoint;
        let port = match (e.tls, e.port) {
            (true, 443) | (false, 80) => String::new(),
            (_, p) => format!(":{p}"),
        };
        let key = uri_encode(key, false);
        if self.config.path_style {
            (
                format!("{}{port}", e.host),
                format!("{}/{}/{key}", e.base, self.config.bucket),
            )
        } else {
            (
                format!("{}.{}{port}", self.config.bucket, e.host),
                format!("{}/{key}", e.base),
            )
        }
    }

    /// Sends one signed request; a non-2xx answer becomes [`S3Error::Refused`].
    async fn call(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response<Incoming>, S3Error> {
        let (host, path) = self.host_and_path(key);
        let payload_hash = if body.is_empty() {
            EMPTY_SHA256.to_owned()
        } else {
            hex::encode(Sha256::digest(&body))
        };
        let query_string = canonical_query(query);
        let now = Utc::now();
        let headers = vec![
            ("host".to_owned(), host.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.clone()),
            (
                "x-amz-date".to_owned(),
                now.format("%Y%m%dT%H%M%SZ").to_string(),
            ),
        ];
        let authorization = authorization(
            &self.config,
            method.as_str(),
            &path,
            &query_string,
            &headers,
            &payload_hash,
            now,
        );
        let target = if query_string.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query_string}")
        };
        let mut request = Request::builder().method(method.clone()).uri(&target);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header("authorization", authorization)
            .header("content-length", body.len())
            .body(Full::new(body))
            .map_err(|e| S3Error::Protocol(format!("cannot build the request: {e}")))?;
        let mut sender = self.connect().await?;
        let response = tokio::time::timeout(CALL_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| self.unreachable(format!("{method} {target}: {e}")))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        Err(S3Error::Refused {
            method,
            target: self.url_of(key),
            status,
            code: xml_value(&text, "Code").unwrap_or_else(|| "-".to_owned()),
            message: xml_value(&text, "Message")
                .unwrap_or_else(|| text.chars().take(300).collect()),
        })
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, S3Error> {
        let (host, _) = self.host_and_path("");
        let connect_host = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(h, _)| h)
            .to_owned();
        let connecting = async {
            let tcp = TcpStream::connect((connect_host.as_str(), self.endpoint.port))
                .await
                .map_err(|e| self.unreachable(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let handshake = match &self.tls {
                None => crate::outbound::handshake(TokioIo::new(tcp)).await,
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(connect_host.clone())
                        .map_err(|e| self.unreachable(format!("host name: {e}")))?;
                    let stream = tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
                    crate::outbound::handshake(TokioIo::new(stream)).await
                }
            };
            handshake.map_err(|e| self.unreachable(format!("HTTP handshake: {e}")))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| self.unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
    }

    fn unreachable(&self, message: String) -> S3Error {
        S3Error::Unreachable {
            endpoint: self.config.endpoint.clone(),
            message,
        }
    }

    pub async fn put_object(&self, key: &str, body: Bytes) -> Result<(), S3Error> {
        self.call(Method::PUT, key, &[], body).await?;
        Ok(())
    }

    /// Starts a multipart upload; its id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let response = self
            .call(Method::POST, key, &[("uploads", "")], Bytes::new())
            .await?;
        let text = read_text(response).await?;
        xml_value(&text, "UploadId").ok_or_else(|| {
            S3Error::Protocol(format!(
                "no UploadId in the answer to CreateMultipartUpload: {text}"
            ))
        })
    }

    /// Uploads part `number` (from 1); its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let number = number.to_string();
        let response = self
            .call(
                Method::PUT,
                key,
                &[("partNumber", &number), ("uploadId", upload)],
                body,
            )
            .await?;
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| S3Error::Protocol(format!("no ETag for part {number}")))
    }

    pub async fn complete_multipart(
        &self,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml_escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let response = self
            .call(Method::POST, key, &[("uploadId", upload)], Bytes::from(xml))
            .await?;
        // S3 may answer 200 with an error in the body when the completion fails late.
        let text = read_text(response).await?;
        if text.contains("<Error>") {
            return Err(S3Error::Protocol(format!(
                "CompleteMultipartUpload failed: {}",
                xml_value(&text, "Message").unwrap_or(text)
            )));
        }
        Ok(())
    }

    pub async fn abort_multipart(&self, key: &str, upload: &str) -> Result<(), S3Error> {
        self.call(Method::DELETE, key, &[("uploadId", upload)], Bytes::new())
            .await?;
        Ok(())
    }

    /// The object's bytes as they arrive.
    pub async fn get_object(
        &self,
        key: &str,
    ) -> Result<impl AsyncRead + Send + Unpin + use<>, S3Error> {
        let response = self.call(Method::GET, key, &[], Bytes::new()).await?;
        let stream = BodyDataStream::new(response.into_body()).map_err(std::io::Error::other);
        Ok(tokio_util::io::StreamReader::new(stream))
    }

    /// The keys under `prefix` (the first thousand: ListObjectsV2 without continuation).
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let response = self
            .call(
                Method::GET,
                "",
                &[("list-type", "2"), ("prefix", prefix)],
                Bytes::new(),
            )
            .await?;
        let text = read_text(response).await?;
        Ok(xml_elements(&text, "Contents")
            .filter_map(|object| xml_value(object, "Key"))
            .collect())
    }

    /// The multipart uploads begun under `prefix` and never completed nor aborted, as
    /// (key, upload id): the parts of each are stored, and billed, until aborted.
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, S3Error> {
        let response = self
            .call(
                Method::GET,
                "",
                &[("prefix", prefix), ("uploads", "")],
                Bytes::new(),
            )
            .await?;
        let text = read_text(response).await?;
        Ok(xml_elements(&text, "Upload")
            .filter_map(|upload| Some((xml_value(upload, "Key")?, xml_value(upload, "UploadId")?)))
            .collect())
    }

    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.call(Method::DELETE, key, &[], Bytes::new()).await?;
        Ok(())
    }
}

async fn read_text(response: Response<Incoming>) -> Result<String, S3Error> {
    let bytes = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| S3Error::Protocol("the answer's body did not arrive".to_owned()))?
        .map_err(|e| S3Error::Protocol(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// SigV4's URI encoding: every byte but the unreserved characters, and `/` too unless it
/// separates path segments.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header of a request: `headers` are the signed ones, lower-case,
/// with their values as sent.
fn authorization(
    config: &S3Config,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    now: DateTime<Utc>,
) -> String {
    let mut headers: Vec<&(String, String)> = headers.iter().collect();
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_request =
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}");
    let date = now.format("%Y%m%d").to_string();
    let scope = format!("{date}/{}/s3/aws4_request", config.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        now.format("%Y%m%dT%H%M%SZ"),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let secret = format!("AWS4{}", config.secret_access_key.expose());
    let key = hmac(secret.as_bytes(), date.as_bytes());
    let key = hmac(&key, config.region.as_bytes());
    let key = hmac(&key, b"s3");
    let key = hmac(&key, b"aws4_request");
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        config.access_key_id
    )
}

/// The inner text of each `<name>` element, in order.
fn xml_elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        let inner = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(inner)
    })
}

/// The text of the first `<name>` element (S3's answers are small and flat).
fn xml_value(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> S3Config {
        S3Config {
            endpoint: "https://s3.amazonaws.com".into(),
            region: "us-east-1".into(),
            bucket: "examplebucket".into(),
            prefix: String::new(),
            path_style: false,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretString::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        }
    }

    /// AWS's published example of a signed GET Object (Signature Version 4, header-based).
    #[test]
    fn the_signature_matches_aws_published_example() {
        let now = DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let headers = vec![
            (
                "host".to_owned(),
                "examplebucket.s3.amazonaws.com".to_owned(),
            ),
            ("range".to_owned(), "bytes=0-9".to_owned()),
            ("x-amz-content-sha256".to_owned(), EMPTY_SHA256.to_owned()),
            ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()),
        ];
        let auth = authorization(
            &example(),
            "GET",
            "/test.txt",
            "",
            &headers,
            EMPTY_SHA256,
            now,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn path_style_and_virtual_host_addresses() {
        let mut c = example();
        c.endpoint = "http://127.0.0.1:5000".into();
        c.path_style = true;
        let s3 = S3::new(c.clone()).unwrap();
        assert_eq!(
            s3.host_and_path("db/a b.gz"),
            ("127.0.0.1:5000".into(), "/examplebucket/db/a%20b.gz".into())
        );
        c.endpoint = "https://s3.eu-west-1.amazonaws.com".into();
        c.path_style = false;
        let s3 = S3::new(c).unwrap();
        assert_eq!(
            s3.host_and_path("x.gz"),
            (
                "examplebucket.s3.eu-west-1.amazonaws.com".into(),
                "/x.gz".into()
            )
        );
    }

    #[test]
    fn endpoints_and_buckets_are_checked() {
        let mut c = example();
        c.endpoint = "ftp://x".into();
        assert!(S3::new(c.clone()).is_err());
        c.endpoint = "http://x:port".into();
        assert!(S3::new(c.clone()).is_err());
        c.endpoint = "http://x".into();
        c.bucket = "a/b".into();
        assert!(S3::new(c).is_err());
    }

    #[test]
    fn queries_are_sorted_and_encoded() {
        assert_eq!(
            canonical_query(&[("uploadId", "a/b+c"), ("partNumber", "2")]),
            "partNumber=2&uploadId=a%2Fb%2Bc"
        );
        assert_eq!(canonical_query(&[("uploads", "")]), "uploads=");
    }

    #[test]
    fn error_answers_are_read() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The key &amp; id</Message></Error>";
        assert_eq!(
            xml_value(xml, "Code").as_deref(),
            Some("InvalidAccessKeyId")
        );
        assert_eq!(xml_value(xml, "Message").as_deref(), Some("The key & id"));
    }
}

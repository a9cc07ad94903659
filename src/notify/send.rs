//! Sending one message to one channel: an HTTP POST (generic webhook, Slack, Mattermost,
//! Discord) on the outbound HTTP stack Rivetr already has, or an email over SMTP with lettre.
//!
//! A generic webhook's body is the [`Message`] as JSON, with headers receivers can check:
//! `X-Rivetr-Event`, `X-Rivetr-Delivery` (the same id on every retry, so a receiver can drop
//! duplicates) and `X-Rivetr-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the exact body
//! under the channel's signing secret (as GitHub signs its webhooks).

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use lettre::AsyncTransport;
use sha2::Sha256;
use tokio::net::TcpStream;

use super::channel::{Channel, EmailSettings, Security, Target};
use super::message::Message;
use crate::secrets::SecretString;

/// Connecting, and then the whole exchange, may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// This much of an error answer is kept as the reason.
const ERROR_BODY_CHARS: usize = 300;

/// Why a message did not get through.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try: no connection, a timeout, a 5xx, 408 or 429.
    #[error("{0}")]
    Transient(String),
    /// Another try would be refused the same way (a 4xx: wrong URL, revoked token; an
    /// address the mail server refuses).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }
}

/// The header a generic webhook's signature comes in.
pub const SIGNATURE_HEADER: &str = "x-rivetr-signature-256";

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `message` (delivery `delivery_id`) to `channel`.
pub async fn send(
    channel: &Channel,
    message: &Message,
    delivery_id: i64,
    hello_name: &str,
) -> Result<(), SendError> {
    match &channel.target {
        Target::Webhook {
            url,
            signing_secret,
        } => {
            let body = serde_json::to_vec(message).expect("a message serializes");
            let signature = signature(signing_secret.expose(), &body);
            let headers = [
                ("x-rivetr-event", message.event.as_str().to_owned()),
                ("x-rivetr-delivery", delivery_id.to_string()),
                (SIGNATURE_HEADER, signature),
            ];
            post_json(url, body, &headers).await
        }
        Target::Slack { url } => {
            let body = serde_json::json!({"text": message.slack_text()});
            post_json(url, body.to_string().into_bytes(), &[]).await
        }
        Target::Mattermost { url } => {
            let body = serde_json::json!({"text": message.mattermost_text()});
            post_json(url, body.to_string().into_bytes(), &[]).await
        }
        Target::Discord { url } => {
            // No @everyone or role pings from whatever a commit subject says.
            let body = serde_json::json!({
                "content": message.discord_content(),
                "allowed_mentions": {"parse": []},
            });
            post_json(url, body.to_string().into_bytes(), &[]).await
        }
        Target::Email { settings, password } => {
            send_email(settings, password.as_ref(), message, hello_name).await
        }
    }
}

/// POSTs a JSON body; a 2xx answer is success.
async fn post_json(
    url: &SecretString,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), SendError> {
    let uri: hyper::Uri = url
        .expose()
        .parse()
        .map_err(|e| SendError::Permanent(format!("the channel's URL does not parse: {e}")))?;
    // The URL may hold a token: errors name the host only.
    let host = uri.host().unwrap_or_default().to_owned();
    let tls = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // From the host and port only: user information never goes out as the Host header.
    let authority = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let exchange = async {
        let mut sender = connect(&host, port, tls).await?;
        let mut request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("Rivetr/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Permanent(format!("cannot build the request: {e}")))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Transient(format!("{host}: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = answer
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let text: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
        let reason = format!("{host} answered {status}: {text}");
        let transient = status.is_server_error()
            || status == hyper::StatusCode::REQUEST_TIMEOUT
            || status == hyper::StatusCode::TOO_MANY_REQUESTS;
        Err(if transient {
            SendError::Transient(reason)
        } else {
            SendError::Permanent(reason)
        })
    };
    tokio::time::timeout(SEND_TIMEOUT, exchange)
        .await
        .map_err(|_| SendError::Transient(format!("{host}: no answer within {SEND_TIMEOUT:?}")))?
}

async fn connect(
    host: &str,
    port: u16,
    tls: bool,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, SendError> {
    let unreachable = |what: String| SendError::Transient(format!("{host}:{port}: {what}"));
    let connecting = async {
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if !tls {
            return crate::outbound::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| unreachable(format!("HTTP handshake: {e}")));
        }
        let connector = crate::outbound::tls_connector(Vec::new())
            .map_err(|e| SendError::Permanent(format!("TLS setup: {e}")))?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| SendError::Permanent(format!("{host}: not a host name: {e}")))?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        crate::outbound::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(format!("HTTP handshake: {e}")))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
}

/// The email as lettre builds it: a plain-text and an HTML alternative.
fn email(settings: &EmailSettings, message: &Message) -> Result<lettre::Message, SendError> {
    let bad = |field: &str, e: &dyn std::fmt::Display| {
        SendError::Permanent(format!("email {field}: {e}"))
    };
    let mut builder = lettre::Message::builder()
        .from(settings.from.parse().map_err(|e| bad("from", &e))?)
        .subject(message.email_subject());
    for to in &settings.to {
        builder = builder.to(to.parse().map_err(|e| bad("to", &e))?);
    }
    builder
        .multipart(lettre::message::MultiPart::alternative_plain_html(
            message.email_text(),
            message.email_html(),
        ))
        .map_err(|e| bad("body", &e))
}

async fn send_email(
    settings: &EmailSettings,
    password: Option<&SecretString>,
    message: &Message,
    hello_name: &str,
) -> Result<(), SendError> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::transport::smtp::{AsyncSmtpTransport, authentication::Credentials};
    let email = email(settings, message)?;
    let tls = || -> Result<TlsParameters, SendError> {
        let mut params = TlsParameters::builder(settings.host.clone());
        if let Some(pem) = &settings.ca_certificate {
            let cert = Certificate::from_pem(pem.as_bytes())
                .map_err(|e| SendError::Permanent(format!("email ca_certificate: {e}")))?;
            params = params.add_root_certificate(cert);
        }
        params
            .build_rustls()
            .map_err(|e| SendError::Permanent(format!("TLS setup: {e}")))
    };
    let tls = match settings.security {
        Security::Starttls => Tls::Required(tls()?),
        Security::Tls => Tls::Wrapper(tls()?),
        Security::None => Tls::None,
    };
    let mut transport =
        AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port())
            .tls(tls)
            .hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                hello_name.to_owned(),
            ))
            .timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(password)) = (&settings.username, password) {
        transport =
            transport.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    let server = format!("{}:{}", settings.host, settings.port());
    match transport.build().send(email).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("{server}: {e}"))),
        Err(e) => Err(SendError::Transient(format!("{server}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_format() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

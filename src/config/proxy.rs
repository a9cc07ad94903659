//! `[proxy]`, `[[proxy.routes]]` and `[acme]`: the reverse proxy's listeners, timeouts, the
//! routes Rivetr does not deploy itself, and how certificates are obtained.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::host;

/// `[proxy]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Plain-HTTP listener when systemd does not hand over a socket named `http`.
    pub http_listen: SocketAddr,
    /// HTTPS listener when systemd does not hand over a socket named `https`.
    pub https_listen: SocketAddr,
    /// How long connecting to an app may take before the request fails with 502.
    pub connect_timeout_ms: u64,
    /// How long an app may take to send its response headers before the request fails with 504.
    pub response_timeout_seconds: u64,
    /// How long a pooled upstream connection may sit idle, and how long a response body may
    /// stall between two chunks, before it is closed.
    pub idle_timeout_seconds: u64,
    /// How long an upstream that refused a connection is skipped in favour of its siblings.
    pub failover_seconds: u64,
    /// Proxy worker threads, each with its own event loop. 0: one per CPU. TLS connections
    /// go to all of them, plain-HTTP ones to half (`server::workers::plan`).
    pub workers: usize,
    /// Routes to services on the host that Rivetr does not deploy (`[[proxy.routes]]`).
    pub routes: Vec<RouteConfig>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            https_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            connect_timeout_ms: 5_000,
            response_timeout_seconds: 60,
            idle_timeout_seconds: 90,
            failover_seconds: 10,
            workers: 0,
            routes: Vec::new(),
        }
    }
}

/// How a route gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// From the ACME CA (`[acme]`), obtained and renewed by Rivetr.
    Acme,
    /// From the `cert` and `key` files of the route.
    Manual,
    /// Plain HTTP only.
    None,
}

/// One `[[proxy.routes]]` entry, checked as it is read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct RouteConfig {
    /// Lower-cased host name or `*.` wildcard.
    pub host: String,
    pub upstreams: Vec<SocketAddr>,
    pub tls: TlsMode,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: String,
    upstreams: Vec<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<PathBuf>,
}

impl TryFrom<RawRoute> for RouteConfig {
    type Error = String;

    fn try_from(raw: RawRoute) -> Result<Self, Self::Error> {
        let host = host::validate_route_host(&raw.host)?;
        if raw.upstreams.is_empty() {
            return Err(format!(
                "route `{host}`: `upstreams` needs at least one address"
            ));
        }
        let tls = match (raw.tls, &raw.cert, &raw.key) {
            (None | Some(TlsMode::Manual), Some(_), Some(_)) => TlsMode::Manual,
            (Some(TlsMode::Manual), _, _) | (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(format!(
                    "route `{host}`: a manual certificate needs both `cert` and `key`"
                ));
            }
            (Some(mode), Some(_), _) | (Some(mode), _, Some(_)) => {
                return Err(format!(
                    "route `{host}`: `cert` and `key` belong to tls = \"manual\", not {mode:?}"
                ));
            }
            (Some(mode), None, None) => mode,
            (None, None, None) if host::is_wildcard(&host) => TlsMode::None,
            (None, None, None) => TlsMode::Acme,
        };
        if tls == TlsMode::Acme && host::is_wildcard(&host) {
            return Err(format!(
                "route `{host}`: wildcard certificates cannot be obtained with HTTP-01 or TLS-ALPN-01; give `cert` and `key`, or tls = \"none\""
            ));
        }
        Ok(RouteConfig {
            host,
            upstreams: raw.upstreams,
            tls,
            cert: raw.cert,
            key: raw.key,
        })
    }
}

impl From<RouteConfig> for RawRoute {
    fn from(r: RouteConfig) -> Self {
        RawRoute {
            host: r.host,
            upstreams: r.upstreams,
            tls: Some(r.tls),
            cert: r.cert,
            key: r.key,
        }
    }
}

/// The ACME challenge type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Challenge {
    /// Answered on the https listener (port 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Answered on the http listener (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

/// `[acme]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeSettings {
    /// Obtain certificates for routes with tls = "acme". Off: such routes serve plain HTTP.
    pub enabled: bool,
    /// The CA's directory URL.
    pub directory_url: String,
    /// Contact address given to the CA (optional).
    pub contact_email: String,
    pub challenge: Challenge,
    /// A PEM file of extra root certificates to trust when talking to the CA (a private CA,
    /// or Pebble in tests). Empty: only the public web roots.
    pub extra_root_ca: PathBuf,
    /// After a failed order for a domain, the next attempt waits this long, doubling with
    /// each failure in a row up to a day. The default (an hour) keeps within the CA's limit
    /// on failed validations; lower it only for a test CA.
    pub retry_after_failure_seconds: NonZeroU64,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings {
            enabled: true,
            directory_url: "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
            contact_email: String::new(),
            challenge: Challenge::TlsAlpn01,
            extra_root_ca: PathBuf::new(),
            retry_after_failure_seconds: NonZeroU64::new(3600).expect("3600 is not zero"),
        }
    }
}

//! The reverse proxy: routes requests on the public `http` and `https` listeners to apps by
//! their Host, over pooled keep-alive connections, with TLS certificates chosen by SNI.
//!
//! The proxy never touches SQLite and never talks to a container engine. It is handed a
//! [`RouteTable`] (the engine replaces an app's routes when it switches versions; the config
//! supplies `[[proxy.routes]]` and `[server] domain`) and serves whatever that table says at
//! the moment each request arrives. The request path reads the table with one atomic load,
//! bumps atomic counters, and streams bodies; it takes no lock and does no I/O besides the
//! two sockets.
//!
//! - [`routes`]: the table and upstream choice (round-robin, passive failover).
//! - [`forward`]: header rewriting, timeouts, WebSocket upgrades.
//! - [`plain`]: the plain-HTTP listener's own server for HTTP/1.1 requests without a body;
//!   hyper serves everything else.
//! - [`pool`], [`h1`]: keep-alive connections to apps; the lean HTTP/1.1 exchange for
//!   requests without a body, hyper's client for the rest.
//! - [`body`]: streaming bodies with byte counting and stall timeouts.
//! - [`metrics`], [`shard`]: per-route counters, and the per-worker copies that keep the
//!   request path from writing to memory other workers write.
//! - [`tls`], [`acme`]: certificates by SNI, manual or from an ACME CA.
//! - [`ocsp`]: OCSP staples for the manual certificates whose CA has a responder.
//! - [`tunnel`]: upgraded connections (WebSockets) copied both ways, holding a buffer only
//!   while one side lags.
//! - [`handover`]: the client's address, handed to Rivetr's own API in a way no client can
//!   forge.

pub mod acme;
pub mod body;
pub mod forward;
pub mod h1;
pub mod handover;
pub mod metrics;
pub mod ocsp;
mod pages;
pub mod plain;
pub mod pool;
pub mod routes;
pub mod shard;
pub mod tls;
mod tunnel;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};

use crate::config::{Config, ProxyConfig, TlsMode};
use body::ProxyBody;
pub use forward::{Peer, Scheme};
use pool::Pool;
use routes::{Owner, Route, RouteRef, RouteSpec, RouteTable};
use tls::{CertStore, TlsError};

/// Path prefix of ACME HTTP-01 challenges, answered on the http listener.
const ACME_HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("route `{host}`: {source}")]
    Certificate { host: String, source: TlsError },
    #[error("{}", describe_conflicts(.0))]
    HostTaken(Vec<routes::Conflict>),
}

fn describe_conflicts(conflicts: &[routes::Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Timeouts and failover, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    pub failover: Duration,
    /// The public https port, for redirects (omitted from the URL when 443).
    pub https_port: Option<u16>,
}

/// What every proxy worker thread shares: the routes, the certificates and the settings.
/// Connections to apps are per worker (see [`pool`]).
pub struct Proxy {
    pub routes: Arc<RouteTable>,
    pub certs: Arc<CertStore>,
    /// Fetches and refreshes the OCSP staples of manual certificates.
    ocsp: ocsp::Stapler,
    settings: Settings,
    /// Authenticates the client address handed to the API behind `[server] domain`.
    handover: Arc<handover::ClientHandover>,
}

impl Proxy {
    /// `shutdown` ends the proxy's background tasks (OCSP staples).
    pub fn new(
        config: &ProxyConfig,
        https_port: Option<u16>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Proxy {
        let idle = Duration::from_secs(config.idle_timeout_seconds);
        let certs = CertStore::new();
        Proxy {
            routes: Arc::new(RouteTable::new()),
            ocsp: ocsp::Stapler::new(Arc::clone(&certs), shutdown),
            certs,
            settings: Settings {
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                response_timeout: Duration::from_secs(config.response_timeout_seconds),
                idle_timeout: idle,
                failover: Duration::from_secs(config.failover_seconds),
                https_port,
            },
            handover: Arc::new(handover::ClientHandover::new()),
        }
    }

    /// What the API needs to believe the client address this proxy hands it.
    pub fn handover(&self) -> Arc<handover::ClientHandover> {
        Arc::clone(&self.handover)
    }

    /// A connection pool for one worker thread.
    pub fn new_pool(&self) -> Arc<Pool> {
        Pool::new(self.settings.connect_timeout, self.settings.idle_timeout)
    }

    /// Applies the routes the configuration declares (`[[proxy.routes]]`, and `[server]
    /// domain` pointing at the API on `api_addr`), loading manual certificates first: if one
    /// cannot be loaded, or a host is an app's, nothing changes. The manual certificates'
    /// OCSP staples are then fetched in the background.
    pub fn apply_config(
        &self,
        config: &Config,
        api_addr: Option<SocketAddr>,
    ) -> Result<(), ProxyError> {
        let mut manual = HashMap::new();
        let mut stapled = Vec::new();
        for route in &config.proxy.routes {
            if let (TlsMode::Manual, Some(cert), Some(key)) = (route.tls, &route.cert, &route.key) {
                let loaded =
                    tls::load_manual(cert, key).map_err(|source| ProxyError::Certificate {
                        host: route.host.clone(),
                        source,
                    })?;
                stapled.push((cert.clone(), route.host.clone(), Arc::clone(&loaded)));
                manual.insert(route.host.clone(), loaded);
            }
        }
        let acme = config.acme.enabled;
        let tls_of = |mode: TlsMode| {
            if mode == TlsMode::Acme && !acme {
                TlsMode::None
            } else {
                mode
            }
        };
        let configured: Vec<RouteSpec> = config
            .proxy
            .routes
            .iter()
            .map(|r| RouteSpec {
                host: r.host.clone(),
                upstreams: r.upstreams.clone(),
                tls: tls_of(r.tls),
                owner: Owner::Config,
            })
            .collect();
        let server: Vec<RouteSpec> = match api_addr {
            Some(addr) if !config.server.domain.is_empty() => vec![RouteSpec {
                host: config.server.domain.to_ascii_lowercase(),
                upstreams: vec![loopback_if_unspecified(addr)],
                tls: tls_of(TlsMode::Acme),
                owner: Owner::Server,
            }],
            _ => Vec::new(),
        };
        self.routes
            .set_owners(
                &[Owner::Config, Owner::Server],
                configured.into_iter().chain(server).collect(),
            )
            .map_err(ProxyError::HostTaken)?;
        self.certs.set_manual(manual);
        self.ocsp.follow(&stapled);
        Ok(())
    }

    /// Handles one request from either listener.
    pub async fn handle(
        &self,
        pool: &Arc<Pool>,
        req: Request<Incoming>,
        peer: &Peer,
        scheme: Scheme,
    ) -> Response<ProxyBody> {
        let host = match request_host(&req) {
            Ok(host) => host,
            Err(why) => {
                // Whoever sent two hosts may not agree with the proxy on where the next
                // request starts either: like hyper after a head it refuses, close.
                let mut res = pages::bad_request(why);
                res.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                return res;
            }
        };
        if scheme == Scheme::Http {
            if let Some(res) = self.http_only_answers(&req, &host) {
                return res;
            }
        }
        let route = {
            let routes = self.routes.load();
            match routes.for_this_thread().lookup(&host) {
                Some(route) => route,
                None => return pages::no_route(&host),
            }
        };
        let method = req.method().clone();
        let logged = request_started(&route, || req.uri().path().to_owned());
        let mut res = self.forward(pool, &route, req, &host, peer, scheme).await;
        request_answered(route, &mut res, logged, &host, &method, peer);
        res
    }

    /// On plain HTTP: ACME HTTP-01 challenges, and the redirect to HTTPS for hosts that have
    /// a certificate.
    fn http_only_answers(
        &self,
        req: &Request<Incoming>,
        host: &str,
    ) -> Option<Response<ProxyBody>> {
        let path = req.uri().path();
        if let Some(token) = path.strip_prefix(ACME_HTTP01_PREFIX) {
            if let Some(key_auth) = self.certs.http01_key_auth(token) {
                return Some(pages::text(StatusCode::OK, key_auth));
            }
            return None;
        }
        if !self.certs.has_cert(host) {
            return None;
        }
        let port = match self.settings.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        Some(pages::redirect(&format!(
            "https://{host}{port}{path_and_query}"
        )))
    }
}

/// Counts a request for its route; returns when it started, and what the access log needs
/// when it is on (at debug level: the path is copied only then).
fn request_started(route: &Route, path: impl FnOnce() -> String) -> (Instant, Option<String>) {
    route.metrics.count_request();
    (
        Instant::now(),
        tracing::enabled!(tracing::Level::DEBUG).then(path),
    )
}

/// Counts the response's status and, as they go out, its body bytes; writes the access log
/// line.
fn request_answered(
    route: RouteRef,
    res: &mut Response<ProxyBody>,
    (started, logged): (Instant, Option<String>),
    host: &str,
    method: &hyper::Method,
    peer: &Peer,
) {
    route
        .metrics
        .count_answer(method, res.status().as_u16(), started.elapsed());
    if let Some(path) = logged {
        tracing::debug!(%host, %method, %path, status = res.status().as_u16(), peer = %peer.addr, elapsed_ms = started.elapsed().as_millis() as u64, "proxy request");
    }
    if let ProxyBody::Upstream(body) = res.body_mut() {
        body.count_for(route);
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// The normalised host of a request: the Host header, or the authority of an HTTP/2 or
/// absolute-form request. A request that names its host twice, differently or not, is
/// refused (RFC 9112 3.2): a proxy that picked one of two hosts could route a request where
/// a front end or the app believes another was meant.
fn request_host(req: &Request<Incoming>) -> Result<String, &'static str> {
    let mut fields = req.headers().get_all(HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err("more than one Host header");
    }
    let field = field
        .map(|h| h.to_str().ok().and_then(crate::host::normalize))
        .map(|h| h.ok_or("the Host header is not a valid host"))
        .transpose()?;
    let target = req
        .uri()
        .authority()
        .map(|a| crate::host::normalize(a.as_str()).ok_or("the request target's host is not valid"))
        .transpose()?;
    match (field, target) {
        (Some(field), Some(target)) if field != target => {
            Err("the request target names another host than the Host header")
        }
        (Some(host), _) | (None, Some(host)) => Ok(host),
        (None, None) => Err("no Host header"),
    }
}

/// What one proxy worker thread serves with: the shared proxy and the worker's own pool.
/// Requests clone this, not the shared [`Proxy`]: an `Arc` only one thread touches costs
/// nothing, one every worker touches moves its cache line between cores on every request.
pub struct Worker {
    proxy: Arc<Proxy>,
    pool: Arc<Pool>,
}

impl Worker {
    pub fn new(proxy: Arc<Proxy>) -> Arc<Worker> {
        let pool = proxy.new_pool();
        Arc::new(Worker { proxy, pool })
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

/// The hyper service for one connection of a proxy listener.
pub fn service(
    worker: Arc<Worker>,
    peer: SocketAddr,
    scheme: Scheme,
) -> impl Service<Request<Incoming>, Response = Response<ProxyBody>, Error = Infallible, Future: Send>
+ Send
+ 'static {
    let peer = Peer::new(peer);
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let worker = Arc::clone(&worker);
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(worker.proxy.handle(&worker.pool, req, &peer, scheme).await) }
    })
}

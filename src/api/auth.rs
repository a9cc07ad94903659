//! Who may call the API: the bearer-token gate in front of every `/api` route, the refusal of
//! tokens in query strings, and the limit on failed attempts.
//!
//! The gate denies by default: every path under `/api` needs `Authorization: Bearer <token>`
//! except the few in [`PUBLIC_PATHS`], so a route added later is protected without anyone
//! remembering to. Paths outside `/api` (the forge webhooks) authenticate by their own
//! signatures. A token is looked up on every request, with no cache, so a revoked token fails
//! on its next request. Failures are logged with the client's address, never with the token.
//!
//! The limit on failed attempts stops guessing and nothing else. A failure is set aside
//! before each token is looked up (so simultaneous guesses cannot outrun the limit) and given
//! back when the token is good. Once an address has none left, a token from it is looked up
//! only if its hash is among the live tokens held in memory ([`crate::auth::live`]): a valid
//! token still goes through, while every other token (wrong, revoked, malformed) gets 429
//! without a database lookup, so the address cannot have its guesses tested. A request with
//! no credentials is not a guess: it gets 401 whatever the limit.
//!
//! The client is the connection's peer, unless Rivetr's own proxy handed the real client over
//! ([`crate::proxy::handover`], authenticated by a secret only this process knows), or a
//! `[server] trusted_proxies` entry names it in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::AppState;
use crate::auth::Scope;
use crate::db::tokens::Lookup;

/// The `/api` paths that need no token (`/api/session` checks what it is given itself).
pub const PUBLIC_PATHS: &[&str] = &["/api/health", "/api/openapi.json", "/api/session"];

/// Query parameters that look like someone put a credential in the URL.
const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "api_token",
    "api_key",
    "apikey",
    "bearer",
    "auth",
    "authorization",
];

/// The token a request was authenticated with, for handlers that want to know.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: i64,
    pub token_name: String,
}

/// True for paths the gate protects.
pub fn is_protected(path: &str) -> bool {
    ((path == "/api" || path.starts_with("/api/")) && !PUBLIC_PATHS.contains(&path))
        || path == "/metrics"
}

/// The address a request is attributed to: the client Rivetr's own proxy handed over, else
/// its peer, or the client named by a trusted proxy's `X-Forwarded-For`.
pub fn client_of(state: &AppState, req_headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    if let Some(client) = state.client_handover.client(req_headers) {
        return client;
    }
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let config = state.config.load();
    crate::auth::client_ip(peer, req_headers, &config.server.trusted_proxies)
}

fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

/// Refuses `/api` requests that carry a credential in the query string: URLs end up in
/// proxy logs, shell history and browser history, so such a token must not be used even if
/// it is valid.
pub async fn refuse_query_tokens(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        if let Some(query) = req.uri().query() {
            if let Some(param) = credential_in_query(query) {
                return ApiError::bad_request(
                    "token_in_query",
                    format!(
                        "credentials are not accepted in the query string (found `{param}`): send \
                         the token in an `Authorization: Bearer <token>` header"
                    ),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// The name of the first query parameter that carries a credential.
fn credential_in_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| {
        let key = k.to_ascii_lowercase();
        let looks_like_token = v.trim_start().starts_with(crate::auth::TOKEN_PREFIX);
        (CREDENTIAL_PARAMS.contains(&key.as_str()) || looks_like_token).then(|| k.into_owned())
    })
}

/// The bearer-token gate (see the module doc).
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if !is_protected(req.uri().path()) {
        return next.run(req).await;
    }
    // The dashboard's session cookie, for requests without an Authorization header.
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if let Some(outcome) =
        super::session::caller_by_cookie(&state, &method, &path, req.headers()).await
    {
        return match outcome {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(refusal) => refusal,
        };
    }
    let peer = peer_of(&req);
    let client = client_of(&state, req.headers(), peer);
    match authenticate(&state, req.headers(), client).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refusal) => refusal.into_response(peer, client, req.uri().path()),
    }
}

/// Why a request was not let through.
enum Refusal {
    Limited(std::time::Duration),
    /// No credentials at all: not counted as a failed attempt (a browser before login).
    Missing,
    /// Wrong credentials: counted.
    Failed(&'static str),
    Internal(ApiError),
}

impl Refusal {
    fn into_response(self, peer: Option<SocketAddr>, client: IpAddr, path: &str) -> Response {
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let mut res = match self {
            Refusal::Limited(wait) => {
                tracing::debug!(%client, %peer, path, "API request refused: too many failed authentications");
                return rate_limited(client, wait);
            }
            Refusal::Missing => ApiError::unauthorized(
                "this endpoint needs an `Authorization: Bearer <token>` header",
            )
            .into_response(),
            Refusal::Failed(why) => {
                tracing::warn!(%client, %peer, path, reason = why, "API authentication failed");
                ApiError::unauthorized(why).into_response()
            }
            Refusal::Internal(e) => return e.into_response(),
        };
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        res
    }
}

/// 429 with `Retry-After`, for a client that has used up its failed authentications.
pub fn rate_limited(client: IpAddr, wait: std::time::Duration) -> Response {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many failed authentications from {client}; retry in {secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    res
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Caller, Refusal> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    match state
        .auth_failures
        .reserve(client, Scope::Api, Instant::now())
    {
        Ok(reservation) => match check_token(state, value).await {
            Ok(caller) => {
                reservation.succeeded();
                Ok(caller)
            }
            Err(Refusal::Failed(why)) => {
                reservation.failed();
                Err(Refusal::Failed(why))
            }
            // Rivetr failed, not the client: the reservation is given back when dropped.
            Err(other) => Err(other),
        },
        Err(wait) => admit_known_token(state, value, wait).await,
    }
}

/// For an address out of failed attempts: a token whose hash is live in memory is looked up
/// (and goes through if the database agrees); anything else is refused without a lookup.
async fn admit_known_token(
    state: &AppState,
    value: &HeaderValue,
    wait: std::time::Duration,
) -> Result<Caller, Refusal> {
    let known = bearer_token(value)
        .filter(|t| crate::auth::well_formed(t))
        .is_some_and(|t| state.live_tokens.contains(&crate::auth::hash(t)));
    if !known {
        return Err(Refusal::Limited(wait));
    }
    match check_token(state, value).await {
        Ok(caller) => Ok(caller),
        Err(Refusal::Failed(_)) => Err(Refusal::Limited(wait)),
        Err(other) => Err(other),
    }
}

/// Looks the token of an `Authorization` value up: the caller, or why not.
async fn check_token(state: &AppState, value: &HeaderValue) -> Result<Caller, Refusal> {
    let token = bearer_token(value).ok_or(Refusal::Failed(
        "the Authorization header must be `Bearer <token>`",
    ))?;
    if !crate::auth::well_formed(token) {
        return Err(Refusal::Failed(
            "malformed token: a Rivetr token is `rvt_` and 64 hex digits",
        ));
    }
    let digest = crate::auth::hash(token);
    let lookup = state
        .db
        .call(move |c| crate::db::tokens::authenticate(c, &digest))
        .await
        .map_err(|e| Refusal::Internal(ApiError::internal(e)))?;
    match lookup {
        Lookup::Valid { id, name } => Ok(Caller {
            token_id: id,
            token_name: name,
        }),
        Lookup::Revoked { .. } => Err(Refusal::Failed("this token has been revoked")),
        Lookup::Unknown => Err(Refusal::Failed("unknown token")),
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_paths() {
        assert!(is_protected("/api/tokens"));
        assert!(is_protected("/api/tokens/3"));
        assert!(is_protected("/api"));
        assert!(is_protected("/api/health/extra"));
        assert!(is_protected("/api/"));
        assert!(!is_protected("/api/health"));
        assert!(!is_protected("/api/openapi.json"));
        assert!(!is_protected("/webhooks/github/blog"));
        assert!(!is_protected("/apix"));
    }

    #[test]
    fn credentials_in_queries_are_found() {
        assert_eq!(credential_in_query("token=abc").as_deref(), Some("token"));
        assert_eq!(
            credential_in_query("follow=1&Access_Token=x").as_deref(),
            Some("Access_Token")
        );
        assert_eq!(
            credential_in_query("q=rvt_0123").as_deref(),
            Some("q"),
            "a value that is a token, under any name"
        );
        assert_eq!(credential_in_query("x=rvt%5F0123").as_deref(), Some("x"));
        assert_eq!(credential_in_query("follow=1&tail=100"), None);
        assert_eq!(credential_in_query(""), None);
    }

    #[test]
    fn bearer_parsing() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer_token(&v("Bearer rvt_x")), Some("rvt_x"));
        assert_eq!(bearer_token(&v("bearer  rvt_x ")), Some("rvt_x"));
        assert_eq!(bearer_token(&v("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer_token(&v("rvt_x")), None);
    }
}

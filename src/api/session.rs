//! `/api/session`: the dashboard's sign-in. A person pastes an API token once; it is
//! exchanged for a session that lives in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! when the request came over HTTPS), so the token is kept nowhere in the browser.
//!
//! The database keeps only the SHA-256 of a session's cookie value ([`crate::db::sessions`]).
//! Sessions end after `[session] idle_minutes` unused, `max_hours` after sign-in, on sign-out,
//! and when their token is revoked. A failed sign-in counts toward the per-client limit on
//! failed authentications, like a bad bearer token.
//!
//! A cookie is sent by the browser whoever made the page, so a request authenticated by the
//! cookie that changes anything must prove it comes from the dashboard itself: an `Origin`
//! naming this host, or the header [`REQUEST_HEADER`], which a page of another site cannot
//! send without a CORS permission Rivetr never grants. Otherwise 403. Requests with an
//! `Authorization` header are bearer-token clients: the cookie is not looked at for them.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Extension;
use axum::Json as JsonResponse;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, client_of, rate_limited};
use super::error::{ApiError, ErrorBody};
use super::extract::Json;
use crate::AppState;
use crate::auth::Scope;
use crate::db::sessions::Session;

/// The cookie's name.
pub const COOKIE_NAME: &str = "rivetr_session";
/// A header the dashboard sends with every request; a cross-site page cannot.
pub const REQUEST_HEADER: &str = "x-rivetr-request";

/// `POST /api/session` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API token (`rvt_` and 64 hex digits), for example the initial admin token.
    pub token: String,
}

/// The session of the request's cookie.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The token the session was opened with.
    pub token_id: i64,
    pub token_name: String,
    /// When the session ends at the latest if unused (RFC 3339, UTC); use extends it up to
    /// the absolute limit.
    pub expires_at: String,
}

fn view(s: &Session) -> SessionView {
    SessionView {
        token_id: s.token_id,
        token_name: s.token_name.clone(),
        expires_at: rfc3339(s.expires_at),
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A new cookie value: 32 random bytes, hex.
fn new_secret() -> Result<String, ApiError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    crate::secrets::random_bytes(&mut *bytes).map_err(ApiError::internal)?;
    Ok(hex::encode(*bytes))
}

/// The session cookie's value, if the request has one.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// True when the request reached Rivetr over HTTPS (through its proxy, which says so).
/// Believing a forged `https` only makes the cookie stricter for whoever forged it.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, value: &str, max_age: i64) -> HeaderValue {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(headers: &HeaderMap) -> HeaderValue {
    set_cookie(headers, "", 0)
}

/// `host[:port]` of an origin or a Host header, lower-cased, without the scheme's default
/// port.
fn authority(scheme: &str, host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    host.strip_suffix(default)
        .map(str::to_owned)
        .unwrap_or(host)
}

/// True when a cookie-authenticated request that changes something may go ahead (see the
/// module doc).
pub fn origin_allowed(headers: &HeaderMap) -> bool {
    if headers.contains_key(REQUEST_HEADER) {
        return true;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    authority(scheme, origin_host) == authority(scheme, host)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn forbidden() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "a request signed in by the session cookie that changes something must come from the \
         dashboard: an `Origin` header naming this host, or an `X-Rivetr-Request` header",
    )
    .into_response()
}

fn session_ended(headers: &HeaderMap) -> Response {
    let mut res = ApiError::unauthorized("the session has ended or is unknown; sign in again")
        .into_response();
    res.headers_mut().insert(SET_COOKIE, clear_cookie(headers));
    res
}

async fn lookup(state: &AppState, secret: &str) -> Result<Option<Session>, ApiError> {
    let digest = crate::auth::hash(secret);
    let limits = state.config.load().session.limits();
    let now = now();
    state
        .db
        .call(move |c| crate::db::sessions::lookup(c, &digest, now, limits))
        .await
        .map_err(ApiError::internal)
}

/// For the token gate: the caller of a request that has the session cookie and no
/// `Authorization` header, or the refusal (401 for an ended session, 403 for a change
/// without the dashboard's origin). `None` when the cookie is not the request's credential.
pub async fn caller_by_cookie(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Result<Caller, Response>> {
    if headers.contains_key(AUTHORIZATION) {
        return None;
    }
    let secret = cookie_value(headers)?;
    let session = match lookup(state, &secret).await {
        Ok(Some(s)) => s,
        Ok(None) => return Some(Err(session_ended(headers))),
        Err(e) => return Some(Err(e.into_response())),
    };
    if !is_safe(method) && !origin_allowed(headers) {
        tracing::warn!(path, origin = ?headers.get(ORIGIN), "cookie-authenticated change refused: not from the dashboard's origin");
        return Some(Err(forbidden()));
    }
    Some(Ok(Caller {
        token_id: session.token_id,
        token_name: session.token_name,
    }))
}

/// Signs in: exchanges an API token for a session cookie.
#[utoipa::path(
    post,
    path = "/api/session",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in; the session is in the `rivetr_session` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS)", body = SessionView),
        (status = 401, description = "The token is wrong, malformed or revoked (counts as a failed authentication)", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client", body = ErrorBody),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(p))| p);
    let client = client_of(&state, &headers, peer);
    let token = body.token.trim();
    // The same rule as for bearer tokens: a failure is set aside before the token is looked
    // up, and an address out of failures still signs in with a token that is live.
    let (id, name) = match state
        .auth_failures
        .reserve(client, Scope::Api, Instant::now())
    {
        Ok(reservation) => match lookup_token(&state, token).await? {
            Some(found) => {
                reservation.succeeded();
                found
            }
            None => {
                reservation.failed();
                tracing::warn!(%client, "dashboard sign-in failed");
                return Err(ApiError::unauthorized(
                    "this is not a valid API token (it may be revoked); paste a token such as \
                     the initial admin token",
                ));
            }
        },
        Err(wait) => {
            let live = crate::auth::well_formed(token)
                && state.live_tokens.contains(&crate::auth::hash(token));
            match live {
                true => match lookup_token(&state, token).await? {
                    Some(found) => found,
                    None => return Ok(rate_limited(client, wait)),
                },
                false => return Ok(rate_limited(client, wait)),
            }
        }
    };
    let secret = new_secret()?;
    let digest = crate::auth::hash(&secret);
    let limits = state.config.load().session.limits();
    let now = now();
    state
        .db
        .call(move |c| crate::db::sessions::create(c, id, &digest, now, limits))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(token = %name, %client, "dashboard sign-in");
    let session = Session {
        id: 0,
        token_id: id,
        token_name: name,
        expires_at: now + limits.idle.min(limits.max),
    };
    let mut res = (StatusCode::CREATED, JsonResponse(view(&session))).into_response();
    res.headers_mut()
        .insert(SET_COOKIE, set_cookie(&headers, &secret, limits.max));
    Ok(res)
}

/// The session of this request's cookie: who is signed in.
#[utoipa::path(
    get,
    path = "/api/session",
    tag = "session",
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 401, description = "No session, or it has ended", body = ErrorBody),
    )
)]
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(secret) = cookie_value(&headers) else {
        return ApiError::unauthorized("not signed in").into_response();
    };
    match lookup(&state, &secret).await {
        Ok(Some(s)) => JsonResponse(view(&s)).into_response(),
        Ok(None) => session_ended(&headers),
        Err(e) => e.into_response(),
    }
}

/// Signs out: the session ends and the cookie is cleared.
#[utoipa::path(
    delete,
    path = "/api/session",
    tag = "session",
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        (status = 403, description = "Not from the dashboard's origin", body = ErrorBody),
    )
)]
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie_value(&headers) {
        if !origin_allowed(&headers) {
            return forbidden();
        }
        let digest = crate::auth::hash(&secret);
        if let Err(e) = state
            .db
            .call(move |c| crate::db::sessions::delete(c, &digest))
            .await
        {
            return ApiError::internal(e).into_response();
        }
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(SET_COOKIE, clear_cookie(&headers));
    res
}

/// The token's id and name when it is a live API token.
async fn lookup_token(state: &AppState, token: &str) -> Result<Option<(i64, String)>, ApiError> {
    if !crate::auth::well_formed(token) {
        return Ok(None);
    }
    let digest = crate::auth::hash(token);
    let lookup = state
        .db
        .call(move |c| crate::db::tokens::authenticate(c, &digest))
        .await
        .map_err(ApiError::internal)?;
    Ok(match lookup {
        crate::db::tokens::Lookup::Valid { id, name } => Some((id, name)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; rivetr_session=abc; b=2")]);
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "rivetr_session=x")]);
        assert_eq!(cookie_value(&h).as_deref(), Some("x"));
        assert_eq!(
            cookie_value(&headers(&[("cookie", "rivetr_session=")])),
            None
        );
        assert_eq!(cookie_value(&headers(&[])), None);
    }

    #[test]
    fn origins_must_name_this_host() {
        let ok = |pairs| origin_allowed(&headers(pairs));
        assert!(ok(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(ok(&[
            ("origin", "https://paas.example.com"),
            ("host", "paas.example.com:443")
        ]));
        assert!(ok(&[
            ("origin", "http://PAAS.example.com"),
            ("host", "paas.example.com")
        ]));
        assert!(!ok(&[
            ("origin", "http://evil.test"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(!ok(&[
            ("origin", "http://127.0.0.1:9999"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(!ok(&[("origin", "null"), ("host", "127.0.0.1:8080")]));
        assert!(!ok(&[("host", "127.0.0.1:8080")]), "no Origin, no header");
        assert!(ok(&[("x-rivetr-request", "1"), ("host", "127.0.0.1:8080")]));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let plain = set_cookie(&headers(&[]), "v", 60);
        let plain = plain.to_str().unwrap();
        assert!(
            plain.contains("HttpOnly") && plain.contains("SameSite=Strict"),
            "{plain}"
        );
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = set_cookie(&headers(&[("x-forwarded-proto", "https")]), "v", 60);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }
}

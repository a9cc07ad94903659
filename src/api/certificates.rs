//! `GET /api/certificates`, and the `certificates` of an app: where each domain's TLS
//! certificate stands (valid until when, the last error, the next attempt, or why a name is
//! never ordered).
//!
//! The proxy owns the certificates; this module only reads the snapshot its certificate
//! store keeps ([`crate::proxy::tls::CertStore::certificate_states`]).

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::proxy::acme::never_public;
use crate::proxy::tls::{CertSource, CertStatus, CertificateState};

/// Where a domain's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertificateStatus {
    /// Being ordered from the ACME CA; none yet.
    Pending,
    /// A certificate is served (it may be being renewed: see `last_error`).
    Valid,
    /// The served certificate's validity has ended.
    Expired,
    /// No certificate: the last order failed; the next waits until `next_attempt`.
    Failed,
    /// Never ordered: the name can never be public (`reason` says why).
    Reserved,
    /// No certificate is managed for it: the app is not routed yet, `[acme]` is off, or the
    /// domain is a wildcard.
    None,
}

/// One domain's certificate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateView {
    pub domain: String,
    /// `acme` or `manual` (a `[[proxy.routes]]` certificate file); absent when there is none.
    pub source: Option<String>,
    pub status: CertificateStatus,
    /// RFC 3339: when the served certificate stops being valid.
    pub valid_until: Option<String>,
    /// The last failed order, until one succeeds.
    pub last_error: Option<String>,
    /// RFC 3339: when the next order is tried after a failure.
    pub next_attempt: Option<String>,
    /// Why a reserved name is never ordered.
    pub reason: Option<String>,
}

impl CertificateView {
    fn from_state(s: CertificateState, now: SystemTime) -> CertificateView {
        let status = match s.status {
            CertStatus::Valid if s.valid_until.is_some_and(|t| t <= now) => {
                CertificateStatus::Expired
            }
            CertStatus::Valid => CertificateStatus::Valid,
            CertStatus::Pending => CertificateStatus::Pending,
            CertStatus::Failed => CertificateStatus::Failed,
            CertStatus::Reserved => CertificateStatus::Reserved,
        };
        CertificateView {
            domain: s.domain,
            source: Some(
                match s.source {
                    CertSource::Acme => "acme",
                    CertSource::Manual => "manual",
                }
                .to_owned(),
            ),
            status,
            valid_until: s.valid_until.map(rfc3339),
            last_error: s.last_error,
            next_attempt: s.next_attempt.map(rfc3339),
            reason: s.reason,
        }
    }

    /// A domain the certificate store knows nothing of.
    fn unmanaged(domain: &str) -> CertificateView {
        let reason = never_public(domain);
        CertificateView {
            domain: domain.to_owned(),
            source: None,
            status: if reason.is_some() {
                CertificateStatus::Reserved
            } else {
                CertificateStatus::None
            },
            valid_until: None,
            last_error: None,
            next_attempt: None,
            reason: reason.map(str::to_owned),
        }
    }
}

/// Seconds precision, UTC: `2026-03-01T12:00:00Z`.
fn rfc3339(t: SystemTime) -> String {
    let seconds = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The certificate of each of `domains` (an app's), in that order.
pub(super) fn for_domains(state: &AppState, domains: &[String]) -> Vec<CertificateView> {
    let known = state.certificates.certificate_states();
    let now = SystemTime::now();
    domains
        .iter()
        .map(|d| {
            known
                .iter()
                .find(|s| s.source == CertSource::Acme && s.domain.eq_ignore_ascii_case(d))
                .cloned()
                .map(|s| CertificateView::from_state(s, now))
                .unwrap_or_else(|| CertificateView::unmanaged(d))
        })
        .collect()
}

/// Every certificate the proxy manages: ACME domains (including reserved names it refuses to
/// order), then manual certificates.
#[utoipa::path(
    get,
    path = "/api/certificates",
    tag = "certificates",
    security(("bearer" = [])),
    responses((status = 200, description = "Each domain's certificate state", body = Vec<CertificateView>))
)]
pub async fn list_certificates(State(state): State<AppState>) -> Json<Vec<CertificateView>> {
    let now = SystemTime::now();
    Json(
        state
            .certificates
            .certificate_states()
            .into_iter()
            .map(|s| CertificateView::from_state(s, now))
            .collect(),
    )
}

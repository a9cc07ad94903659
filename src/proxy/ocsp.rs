//! OCSP stapling of manual certificates: when a certificate names an OCSP responder (in its
//! Authority Information Access) and its PEM file holds its issuer right after it, Rivetr asks
//! the responder for the certificate's status and staples the answer to its handshakes, so a
//! client need not ask the CA itself (slow, and it tells the CA who visits which site).
//!
//! One task per distinct certificate fetches in the background and refreshes the staple
//! halfway to its `nextUpdate` (every few hours when it has none). The handshake never waits
//! for it: it reads whatever the [`CertStore`] holds, and a staple is swapped in like any
//! certificate change. A response is stapled only once it is checked: it is about this
//! certificate, signed by the issuer or by a responder the issuer authorised
//! (id-kp-OCSPSigning), and current. A client that checks staples may refuse a connection
//! with a bad one, so a bad one is never served. When the responder fails, the certificate is
//! served with its last staple while that is current, then without one, and the failure is
//! logged with the certificate and the responder; the task retries.
//!
//! A `revoked` answer is stapled too: it is the CA's word, and hiding it would keep a revoked
//! certificate working for every client that does not ask the CA itself. It is logged as an
//! error. An `unknown` answer is not stapled.
//!
//! ACME certificates are not stapled: Let's Encrypt ended OCSP in 2025. This module owns no
//! certificate: `Proxy::apply_config` hands it the manual ones it loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use x509_cert::Certificate;
use x509_cert::der::asn1::{AnyRef, Null, ObjectIdentifier, OctetString};
use x509_cert::der::oid::db::rfc5280::{
    ID_AD_OCSP, ID_KP_OCSP_SIGNING, ID_PE_AUTHORITY_INFO_ACCESS,
};
use x509_cert::der::oid::db::rfc5912::ID_SHA_1;
use x509_cert::der::oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};

use super::tls::CertStore;

/// How long one fetch may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read: a response with a responder certificate is 1 to 3 kB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Refresh period of a response without `nextUpdate`.
const REFRESH_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(4 * 60 * 60);
/// How long a response without `nextUpdate` is served after its `thisUpdate`: browsers take
/// such a response as stale after a day (Firefox does).
const LIFETIME_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(24 * 60 * 60);
/// Bounds of the wait before a refresh: not hammering a responder whose responses are short
/// lived, and not keeping a week-old status when the CA says more often.
const MIN_REFRESH: Duration = Duration::from_secs(60);
const MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Retries after a failed fetch: the first after a minute, doubled up to an hour.
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(60 * 60);
/// How far ahead of Rivetr's clock a responder's `thisUpdate` may be.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// id-kp-OCSPSigning: what a delegated responder's certificate must carry.
static OCSP_SIGNING: ObjectIdentifier = ID_KP_OCSP_SIGNING;

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("the responder URL {0} is not http:// (OCSP is fetched over plain HTTP)")]
    NotHttp(String),
    #[error("the responder URL {url} is not valid: {message}")]
    BadUrl { url: String, message: String },
    #[error("the PEM file does not hold the issuer's certificate after the certificate")]
    NoIssuer,
    #[error("the second certificate in the PEM file is not the issuer of the first")]
    NotIssuer,
    #[error("cannot read the certificate: {0}")]
    Certificate(x509_cert::der::Error),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {} seconds", FETCH_TIMEOUT.as_secs())]
    Timeout,
    #[error("the responder answered HTTP {0}")]
    Status(u16),
    #[error("cannot read the answer: {0}")]
    Body(String),
    #[error("the answer is not an OCSP response: {0}")]
    Der(#[from] x509_cert::der::Error),
    #[error("the responder says {0:?}")]
    NotSuccessful(OcspResponseStatus),
    #[error("the answer is not a basic OCSP response")]
    NotBasic,
    #[error("the answer has no status for this certificate")]
    NotThisCertificate,
    #[error(
        "the answer is not signed by the issuer, nor by a responder certificate the issuer signed for OCSP"
    )]
    Signature,
    #[error("the answer is not current: {0}")]
    NotCurrent(&'static str),
    #[error("the responder does not know this certificate (status unknown)")]
    Unknown,
}

/// What a response says of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked,
}

/// A checked response, ready to staple.
#[derive(Debug, Clone)]
pub struct Staple {
    pub der: Vec<u8>,
    pub status: Status,
    pub this_update: SystemTime,
    pub next_update: Option<SystemTime>,
}

impl Staple {
    /// Until when clients take it as current.
    fn valid_until(&self) -> SystemTime {
        self.next_update
            .unwrap_or(self.this_update + LIFETIME_WITHOUT_NEXT_UPDATE)
    }

    /// The wait before fetching a fresh one: halfway to `nextUpdate`, so a responder that is
    /// down for a while still leaves time to retry before clients would reject the staple.
    fn refresh_in(&self, now: SystemTime) -> Duration {
        match self.next_update {
            None => REFRESH_WITHOUT_NEXT_UPDATE,
            Some(next) => {
                let left = next.duration_since(now).unwrap_or_default();
                (left / 2).clamp(MIN_REFRESH, MAX_REFRESH)
            }
        }
    }
}

/// The wait after the `failures`-th failed fetch in a row.
fn retry_in(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

/// One certificate to staple: what its task needs, made once when the certificate is loaded.
pub struct Target {
    /// The certificate's PEM file and the hosts it serves, for log lines.
    file: PathBuf,
    hosts: String,
    leaf: CertificateDer<'static>,
    issuer: CertificateDer<'static>,
    responder: Uri,
    cert_id: CertId,
    request: Bytes,
}

impl Target {
    /// The stapling target of a loaded certificate chain, or `None` when its certificate names
    /// no OCSP responder.
    pub fn new(
        file: &Path,
        hosts: &[&str],
        key: &CertifiedKey,
    ) -> Result<Option<Target>, OcspError> {
        let Some(leaf) = key.cert.first() else {
            return Ok(None);
        };
        let parsed = Certificate::from_der(leaf).map_err(OcspError::Certificate)?;
        let Some(url) = responder_url(&parsed)? else {
            return Ok(None);
        };
        let responder: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| OcspError::BadUrl {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
        if responder.scheme_str() != Some("http") {
            return Err(OcspError::NotHttp(url));
        }
        if responder.host().is_none() {
            return Err(OcspError::BadUrl {
                url,
                message: "no host".to_owned(),
            });
        }
        let issuer = key.cert.get(1).ok_or(OcspError::NoIssuer)?;
        let issuer_parsed = Certificate::from_der(issuer).map_err(OcspError::Certificate)?;
        if issuer_parsed.tbs_certificate.subject != parsed.tbs_certificate.issuer {
            return Err(OcspError::NotIssuer);
        }
        let cert_id = cert_id(&issuer_parsed, &parsed)?;
        // No nonce: responders of public CAs answer from a cache and ignore it, and the
        // answer is checked by its signature and times instead.
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        }
        .to_der()?;
        Ok(Some(Target {
            file: file.to_owned(),
            hosts: hosts.join(", "),
            leaf: leaf.clone().into_owned(),
            issuer: issuer.clone().into_owned(),
            responder,
            cert_id,
            request: Bytes::from(request),
        }))
    }

    /// Asks the responder and checks its answer.
    pub async fn fetch(&self) -> Result<Staple, OcspError> {
        let der = tokio::time::timeout(FETCH_TIMEOUT, post(&self.responder, self.request.clone()))
            .await
            .map_err(|_| OcspError::Timeout)??;
        self.check(&der, SystemTime::now())
    }

    /// Checks a DER OCSPResponse: for this certificate, signed by whom it should be, current.
    fn check(&self, der: &[u8], now: SystemTime) -> Result<Staple, OcspError> {
        let response = OcspResponse::from_der(der)?;
        if response.response_status != OcspResponseStatus::Successful {
            return Err(OcspError::NotSuccessful(response.response_status));
        }
        let bytes = response.response_bytes.ok_or(OcspError::NotBasic)?;
        if bytes.response_type != ID_PKIX_OCSP_BASIC {
            return Err(OcspError::NotBasic);
        }
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
        let single = basic
            .tbs_response_data
            .responses
            .iter()
            .find(|r| same_cert(&r.cert_id, &self.cert_id))
            .ok_or(OcspError::NotThisCertificate)?;
        verify_signature(&basic, &self.issuer, now)?;
        let this_update = single.this_update.0.to_system_time();
        let next_update = single.next_update.map(|t| t.0.to_system_time());
        if this_update > now + CLOCK_SKEW {
            return Err(OcspError::NotCurrent("its thisUpdate is in the future"));
        }
        if next_update.is_some_and(|next| next <= now) {
            return Err(OcspError::NotCurrent("its nextUpdate has passed"));
        }
        let status = match single.cert_status {
            CertStatus::Good(_) => Status::Good,
            CertStatus::Revoked(_) => Status::Revoked,
            CertStatus::Unknown(_) => return Err(OcspError::Unknown),
        };
        let staple = Staple {
            der: der.to_vec(),
            status,
            this_update,
            next_update,
        };
        if staple.valid_until() <= now {
            return Err(OcspError::NotCurrent(
                "it has no nextUpdate and its thisUpdate is over a day old",
            ));
        }
        Ok(staple)
    }
}

/// The URL of the first OCSP responder in the certificate's Authority Information
/// Access extension.
fn responder_url(cert: &Certificate) -> Result<Option<String>, OcspError> {
    let Some(aia) = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_PE_AUTHORITY_INFO_ACCESS)
    else {
        return Ok(None);
    };
    let aia = AuthorityInfoAccessSyntax::from_der(aia.extn_value.as_bytes())
        .map_err(OcspError::Certificate)?;
    Ok(aia.0.iter().find_map(|d| match &d.access_location {
        GeneralName::UniformResourceIdentifier(uri) if d.access_method == ID_AD_OCSP => {
            Some(uri.as_str().to_owned())
        }
        _ => None,
    }))
}

/// The CertID of `cert` (RFC 6960 4.1.1) with SHA-1, the hash every responder answers for
/// (RFC 5019 asks for it).
fn cert_id(issuer: &Certificate, cert: &Certificate) -> Result<CertId, OcspError> {
    let sha1 = |data: &[u8]| {
        OctetString::new(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
                .as_ref()
                .to_vec(),
        )
    };
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA_1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: sha1(&issuer.tbs_certificate.subject.to_der()?)?,
        issuer_key_hash: sha1(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )?,
        serial_number: cert.tbs_certificate.serial_number.clone(),
    })
}

/// True when two CertIDs name the same certificate (the parameters of the hash algorithm may
/// be absent or NULL).
fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// Checks that the response is signed by the issuer, or by a certificate it carries that the
/// issuer signed for OCSP signing and that is valid now (RFC 6960 4.2.2.2).
fn verify_signature(
    basic: &BasicOcspResponse,
    issuer: &CertificateDer<'static>,
    now: SystemTime,
) -> Result<(), OcspError> {
    let tbs = basic.tbs_response_data.to_der()?;
    let algorithm = basic.signature_algorithm.to_der()?;
    // webpki names algorithms by the contents of their AlgorithmIdentifier.
    let algorithm = AnyRef::from_der(&algorithm)?;
    let signature = basic.signature.as_bytes().ok_or(OcspError::Signature)?;
    let all = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let signed_by = |signer: &CertificateDer<'_>| {
        let Ok(signer) = webpki::EndEntityCert::try_from(signer) else {
            return false;
        };
        all.iter()
            .filter(|alg| alg.signature_alg_id().as_ref() == algorithm.value())
            .any(|alg| signer.verify_signature(*alg, &tbs, signature).is_ok())
    };
    if signed_by(issuer) {
        return Ok(());
    }
    let anchor = webpki::anchor_from_trusted_cert(issuer).map_err(|_| OcspError::Signature)?;
    let now = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    for cert in basic.certs.iter().flatten() {
        let der = CertificateDer::from(cert.to_der()?);
        let Ok(responder) = webpki::EndEntityCert::try_from(&der) else {
            continue;
        };
        let authorised = responder
            .verify_for_usage(
                all,
                std::slice::from_ref(&anchor),
                &[],
                now,
                webpki::KeyUsage::required(OCSP_SIGNING.as_bytes()),
                None,
                None,
            )
            .is_ok();
        if authorised && signed_by(&der) {
            return Ok(());
        }
    }
    Err(OcspError::Signature)
}

/// POSTs an OCSP request (RFC 6960 A.1) and reads the answer.
async fn post(responder: &Uri, request: Bytes) -> Result<Vec<u8>, OcspError> {
    let host = responder.host().unwrap_or_default();
    // An IPv6 literal comes with its brackets, which the resolver does not take.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = responder.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(OcspError::Connect)?;
    let mut sender = crate::outbound::handshake(TokioIo::new(stream)).await?;
    let path = responder.path_and_query().map_or("/", |p| p.as_str());
    let authority = responder.authority().map_or(host, |a| a.as_str());
    let req = hyper::Request::post(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/ocsp-request")
        .body(Full::new(request))
        .map_err(|e| OcspError::BadUrl {
            url: responder.to_string(),
            message: e.to_string(),
        })?;
    let res = sender.send_request(req).await?;
    if res.status() != hyper::StatusCode::OK {
        return Err(OcspError::Status(res.status().as_u16()));
    }
    let body = Limited::new(res.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| OcspError::Body(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

/// Runs one task per stapled certificate.
pub struct Stapler {
    store: Arc<CertStore>,
    shutdown: CancellationToken,
    /// The running tasks, by the DER of the certificate they staple.
    tasks: Mutex<HashMap<Vec<u8>, CancellationToken>>,
}

impl Stapler {
    pub fn new(store: Arc<CertStore>, shutdown: CancellationToken) -> Stapler {
        Stapler {
            store,
            shutdown,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Follows the manual certificates now served (`(file, host, key)`): starts a task for
    /// each new certificate that names an OCSP responder, and stops the tasks of certificates
    /// no longer served. A certificate served for several hosts has one task.
    pub fn follow(&self, manual: &[(PathBuf, String, Arc<CertifiedKey>)]) {
        let mut by_leaf: HashMap<&[u8], (&Path, Vec<&str>, &CertifiedKey)> = HashMap::new();
        for (file, host, key) in manual {
            if let Some(leaf) = key.cert.first() {
                by_leaf
                    .entry(leaf.as_ref())
                    .or_insert_with(|| (file, Vec::new(), key))
                    .1
                    .push(host);
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|leaf, token| {
            let keep = by_leaf.contains_key(leaf.as_slice());
            if !keep {
                token.cancel();
            }
            keep
        });
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Only a test builds a proxy outside a runtime; it staples nothing.
            return;
        };
        for (leaf, (file, mut hosts, key)) in by_leaf {
            if tasks.contains_key(leaf) {
                continue;
            }
            hosts.sort_unstable();
            let target = match Target::new(file, &hosts, key) {
                Ok(Some(target)) => target,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(certificate = %file.display(), hosts = %hosts.join(", "), error = %e, "OCSP: not stapling this certificate");
                    continue;
                }
            };
            let token = self.shutdown.child_token();
            tasks.insert(leaf.to_vec(), token.clone());
            tracing::info!(certificate = %target.file.display(), hosts = %target.hosts, responder = %target.responder, "OCSP: stapling this certificate's status");
            // Detached on purpose: the token (a child of the shutdown token) ends it, when the
            // certificate is no longer served or Rivetr stops.
            runtime.spawn(staple(target, Arc::clone(&self.store), token));
        }
    }
}

/// Keeps one certificate's staple fresh until `token` is cancelled.
async fn staple(target: Target, store: Arc<CertStore>, token: CancellationToken) {
    let mut current: Option<Staple> = None;
    let mut failures = 0u32;
    loop {
        let fetched = tokio::select! {
            _ = token.cancelled() => return,
            fetched = target.fetch() => fetched,
        };
        let now = SystemTime::now();
        let wait = match fetched {
            Ok(staple) => {
                failures = 0;
                let first = current.as_ref().is_none_or(|c| c.status != staple.status);
                let next_update = staple.next_update.map(httpdate::fmt_http_date);
                match staple.status {
                    Status::Revoked => {
                        tracing::error!(certificate = %target.file.display(), hosts = %target.hosts, responder = %target.responder, "OCSP: the CA says this certificate is REVOKED; the staple says so and clients that check it refuse the certificate: replace it")
                    }
                    Status::Good if first => {
                        tracing::info!(certificate = %target.file.display(), hosts = %target.hosts, next_update = next_update.as_deref().unwrap_or("none"), "OCSP: stapled a response: good")
                    }
                    Status::Good => {
                        tracing::debug!(certificate = %target.file.display(), next_update = next_update.as_deref().unwrap_or("none"), "OCSP: staple refreshed")
                    }
                }
                let wait = staple.refresh_in(now);
                store.set_ocsp(&target.leaf, Some(staple.der.clone()));
                current = Some(staple);
                wait
            }
            Err(e) => {
                failures += 1;
                let retry = retry_in(failures);
                match current.as_ref().map(Staple::valid_until) {
                    Some(until) if until > now => {
                        tracing::warn!(certificate = %target.file.display(), hosts = %target.hosts, responder = %target.responder, error = %e, retry_in_seconds = retry.as_secs(), valid_until = %httpdate::fmt_http_date(until), "OCSP: cannot refresh the staple; serving the last one while it is current");
                        // Retry by the time it runs out, so it is dropped then at the latest.
                        retry.min(until.duration_since(now).unwrap_or_default())
                    }
                    _ => {
                        if current.take().is_some() {
                            store.set_ocsp(&target.leaf, None);
                        }
                        tracing::warn!(certificate = %target.file.display(), hosts = %target.hosts, responder = %target.responder, error = %e, retry_in_seconds = retry.as_secs(), "OCSP: cannot get a response; serving the certificate without a staple");
                        retry
                    }
                }
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staple_with(this_update: SystemTime, next_update: Option<SystemTime>) -> Staple {
        Staple {
            der: Vec::new(),
            status: Status::Good,
            this_update,
            next_update,
        }
    }

    #[test]
    fn refresh_is_halfway_to_next_update_within_bounds() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            staple_with(now, Some(now + 4 * hour)).refresh_in(now),
            2 * hour
        );
        assert_eq!(
            staple_with(now, Some(now + 30 * 24 * hour)).refresh_in(now),
            MAX_REFRESH
        );
        assert_eq!(
            staple_with(now, Some(now + Duration::from_secs(30))).refresh_in(now),
            MIN_REFRESH
        );
        assert_eq!(
            staple_with(now, None).refresh_in(now),
            REFRESH_WITHOUT_NEXT_UPDATE
        );
    }

    #[test]
    fn a_staple_without_next_update_is_served_a_day() {
        let now = SystemTime::now();
        assert_eq!(
            staple_with(now, None).valid_until(),
            now + LIFETIME_WITHOUT_NEXT_UPDATE
        );
        let next = now + Duration::from_secs(7 * 24 * 3600);
        assert_eq!(staple_with(now, Some(next)).valid_until(), next);
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        assert_eq!(retry_in(1), FIRST_RETRY);
        assert_eq!(retry_in(2), 2 * FIRST_RETRY);
        assert_eq!(retry_in(3), 4 * FIRST_RETRY);
        assert_eq!(retry_in(40), MAX_RETRY);
    }
}

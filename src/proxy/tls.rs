//! Certificates by SNI: one entry per domain, manual (PEM files) or from ACME, swapped in and
//! out while running.
//!
//! The store is an `ArcSwap` of two maps, read on every TLS handshake without a lock: a
//! certificate is found with that load, map lookups and, for an ACME domain, one more
//! `ArcSwap` load of the copy the store keeps of its deployed certificate (rustls-acme's own
//! resolver keeps its copy behind a mutex, and serves only the challenges and a domain's
//! first moments). Manual certificates win over ACME ones for the same name; a manual
//! `*.example.com` certificate covers every name under it. The rustls config also offers the
//! `acme-tls/1` protocol, so the same https listener answers TLS-ALPN-01 challenges (the
//! per-domain ACME resolver picks the challenge certificate for those handshakes).
//!
//! Manual certificates whose CA runs an OCSP responder carry a stapled response ([`super::ocsp`]
//! fetches and refreshes it in the background and swaps it in through [`CertStore::set_ocsp`]);
//! the handshake only reads what is there.
//!
//! Sessions resume by tickets (TLS 1.3 and 1.2), sealed with keys ring's `Ticketer` rotates
//! every 6 hours, and for TLS 1.2 clients without tickets by a bounded in-memory session cache.
//!
//! The store also keeps where each domain's certificate stands ([`CertificateState`]: valid
//! until when, the last error, the next attempt), written by the ACME tasks and read by the
//! API as a snapshot; nothing of it is on the handshake path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_acme::ResolvesServerCertAcme;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {}: {message}", path.display())]
    Cert {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot read private key {}: {message}", path.display())]
    Key {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("certificate {} and key {} do not belong together: {message}", cert.display(), key.display())]
    Mismatch {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        message: String,
    },
}

/// The crypto provider Rivetr uses everywhere (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain and its private key.
pub fn load_manual(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: cert.to_owned(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(certified))
}

/// Parses what rustls-acme caches for a domain (its private key and certificate chain, PEM
/// blocks in one buffer) into what a handshake serves.
pub fn certified_from_acme_pem(pem: &[u8]) -> Option<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .ok()?;
    let private = PrivateKeyDer::from_pem_slice(pem).ok()?;
    if chain.is_empty() {
        return None;
    }
    CertifiedKey::from_der(chain, private, &provider())
        .ok()
        .map(Arc::new)
}

/// A certificate obtained by ACME for one domain.
#[derive(Debug)]
pub struct AcmeCert {
    /// rustls-acme's own resolver: it answers TLS-ALPN-01 challenges, and serves the domain
    /// until a copy of its certificate is in `deployed`.
    pub resolver: Arc<ResolvesServerCertAcme>,
    /// The certificate that last passed through the domain's cache (read at start or stored
    /// after an order), written by the cache; served once rustls-acme says it deployed it.
    pending: Arc<ArcSwapOption<CertifiedKey>>,
    /// The deployed certificate, read by handshakes without a lock (the resolver's copy sits
    /// behind a mutex of its own).
    deployed: ArcSwapOption<CertifiedKey>,
    /// True once a certificate (cached or new) is deployed; until then the domain is served
    /// on plain HTTP without a redirect.
    ready: AtomicBool,
}

impl AcmeCert {
    pub fn new(
        resolver: Arc<ResolvesServerCertAcme>,
        pending: Arc<ArcSwapOption<CertifiedKey>>,
    ) -> Arc<AcmeCert> {
        Arc::new(AcmeCert {
            resolver,
            pending,
            deployed: ArcSwapOption::empty(),
            ready: AtomicBool::new(false),
        })
    }

    /// rustls-acme deployed the certificate that passed through the cache last.
    pub fn mark_ready(&self) {
        if let Some(key) = self.pending.load_full() {
            self.deployed.store(Some(key));
        }
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The certificate for a handshake that is not an ACME challenge.
    fn serve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match &*self.deployed.load() {
            Some(key) => Some(Arc::clone(key)),
            None => self.resolver.resolve(hello),
        }
    }
}

/// Where a certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    Acme,
    Manual,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Acme => "ACME",
            CertSource::Manual => "manual",
        }
    }
}

/// Where a domain's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Being ordered; none yet.
    Pending,
    /// A certificate is served (it may be being renewed: see `last_error`).
    Valid,
    /// No certificate: the last order failed, and the next waits until `next_attempt`.
    Failed,
    /// Never ordered: the name can never be public (see `reason`).
    Reserved,
}

/// One domain's certificate, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateState {
    pub domain: String,
    pub source: CertSource,
    pub status: CertStatus,
    /// The end of the served certificate's validity.
    pub valid_until: Option<SystemTime>,
    /// The last failed order, until an order succeeds.
    pub last_error: Option<String>,
    /// When the next order will be tried after a failure.
    pub next_attempt: Option<SystemTime>,
    /// Why a reserved name is never ordered.
    pub reason: Option<String>,
    /// Failed orders since Rivetr started, for `/metrics`.
    pub failures_total: u64,
}

impl CertificateState {
    fn new(domain: &str, source: CertSource, status: CertStatus) -> CertificateState {
        CertificateState {
            domain: domain.to_owned(),
            source,
            status,
            valid_until: None,
            last_error: None,
            next_attempt: None,
            reason: None,
            failures_total: 0,
        }
    }
}

/// The `notAfter` of a DER certificate.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

#[derive(Debug, Default, Clone)]
struct Certs {
    manual: HashMap<String, Arc<CertifiedKey>>,
    acme: HashMap<String, Arc<AcmeCert>>,
}

/// Every certificate the https listener can present, by host.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: ArcSwap<Certs>,
    writer: Mutex<()>,
    /// ACME domains' states, by domain; written by their tasks, read by the API.
    acme_states: Mutex<BTreeMap<String, CertificateState>>,
}

impl CertStore {
    pub fn new() -> Arc<CertStore> {
        Arc::new(CertStore::default())
    }

    fn modify(&self, f: impl FnOnce(&mut Certs)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Certs::clone(&self.certs.load());
        f(&mut next);
        self.certs.store(Arc::new(next));
    }

    /// Replaces every manual certificate. A certificate that was already served keeps its
    /// OCSP staple: a reload must not leave it unstapled until the next fetch (its OCSP task
    /// goes on, and drops the staple itself once it runs out).
    pub fn set_manual(&self, mut manual: HashMap<String, Arc<CertifiedKey>>) {
        self.modify(|c| {
            let stapled: HashMap<&[u8], &Vec<u8>> = c
                .manual
                .values()
                .filter_map(|k| Some((k.end_entity_cert().ok()?.as_ref(), k.ocsp.as_ref()?)))
                .collect();
            for key in manual.values_mut() {
                let leaf = key.end_entity_cert().map(|c| c.as_ref());
                if let (None, Ok(Some(ocsp))) = (&key.ocsp, leaf.map(|l| stapled.get(l))) {
                    *key = with_ocsp(key, Some((*ocsp).clone()));
                }
            }
            c.manual = manual;
        });
    }

    /// Staples `ocsp` (a DER OCSPResponse) to every manual certificate whose leaf is `leaf`,
    /// or removes their staple (`None`). Certificates swapped out meanwhile are not brought back.
    pub fn set_ocsp(&self, leaf: &[u8], ocsp: Option<Vec<u8>>) {
        self.modify(|c| {
            for key in c.manual.values_mut() {
                if key.end_entity_cert().is_ok_and(|l| l.as_ref() == leaf) && key.ocsp != ocsp {
                    *key = with_ocsp(key, ocsp.clone());
                }
            }
        });
    }

    pub fn insert_acme(&self, host: &str, cert: Arc<AcmeCert>) {
        self.modify(|c| {
            c.acme.insert(host.to_owned(), cert);
        });
    }

    pub fn remove_acme(&self, host: &str) {
        self.modify(|c| {
            c.acme.remove(host);
        });
    }

    /// Changes the ACME state of `domain` (a new one starts as pending).
    pub fn update_acme_state(&self, domain: &str, f: impl FnOnce(&mut CertificateState)) {
        let mut states = self.acme_states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states.entry(domain.to_owned()).or_insert_with(|| {
            CertificateState::new(domain, CertSource::Acme, CertStatus::Pending)
        });
        f(state);
    }

    /// Records that `domain` is never ordered, and why.
    pub fn set_reserved(&self, domain: &str, reason: &str) {
        self.update_acme_state(domain, |s| {
            *s = CertificateState {
                reason: Some(reason.to_owned()),
                ..CertificateState::new(domain, CertSource::Acme, CertStatus::Reserved)
            }
        });
    }

    /// Forgets the ACME state of a domain no route wants any more.
    pub fn forget_acme_state(&self, domain: &str) {
        let mut states = self.acme_states.lock().unwrap_or_else(|e| e.into_inner());
        states.remove(domain);
    }

    /// Every domain's certificate state: the ACME domains, then the manual certificates,
    /// each sorted by domain.
    pub fn certificate_states(&self) -> Vec<CertificateState> {
        let mut all: Vec<CertificateState> = self
            .acme_states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let certs = self.certs.load();
        let mut manual: Vec<CertificateState> = certs
            .manual
            .iter()
            .map(|(domain, key)| CertificateState {
                valid_until: key.cert.first().and_then(|der| not_after(der)),
                ..CertificateState::new(domain, CertSource::Manual, CertStatus::Valid)
            })
            .collect();
        manual.sort_by(|a, b| a.domain.cmp(&b.domain));
        all.extend(manual);
        all
    }

    /// The domains with an ACME entry.
    pub fn acme_domains(&self) -> Vec<String> {
        self.certs.load().acme.keys().cloned().collect()
    }

    /// True when a certificate for `host` can be presented now (plain HTTP then redirects).
    pub fn has_cert(&self, host: &str) -> bool {
        let certs = self.certs.load();
        if certs.manual.is_empty() && certs.acme.is_empty() {
            return false;
        }
        manual_for(&certs, host).is_some() || certs.acme.get(host).is_some_and(|a| a.is_ready())
    }

    /// The key authorization for an HTTP-01 challenge token, if an ACME order is waiting on it.
    pub fn http01_key_auth(&self, token: &str) -> Option<String> {
        let certs = self.certs.load();
        certs
            .acme
            .values()
            .find_map(|a| a.resolver.get_http_01_key_auth(token))
    }
}

/// A copy of `key` with another OCSP staple.
fn with_ocsp(key: &CertifiedKey, ocsp: Option<Vec<u8>>) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey {
        cert: key.cert.clone(),
        key: Arc::clone(&key.key),
        ocsp,
    })
}

fn manual_for(certs: &Certs, host: &str) -> Option<Arc<CertifiedKey>> {
    if let Some(c) = certs.manual.get(host) {
        return Some(Arc::clone(c));
    }
    // Most specific wildcard first: try "*.b.c" for "a.b.c", then "*.c".
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        if let Some(c) = certs.manual.get(&format!("*.{parent}")) {
            return Some(Arc::clone(c));
        }
        rest = parent;
    }
    None
}

/// Picks the certificate for a handshake by its SNI.
#[derive(Debug)]
struct SniResolver(Arc<CertStore>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name()?.to_ascii_lowercase();
        let certs = self.0.certs.load();
        let challenge = rustls_acme::is_tls_alpn_challenge(&hello);
        if challenge {
            return certs.acme.get(&sni).and_then(|a| a.resolver.resolve(hello));
        }
        if let Some(c) = manual_for(&certs, &sni) {
            return Some(c);
        }
        certs.acme.get(&sni).and_then(|a| a.serve(hello))
    }
}

/// TLS 1.2 sessions kept for resumption by session ID, for clients that do not take tickets
/// (TLS 1.3 resumes by tickets only). An entry is a few hundred bytes, so a full cache is a
/// few hundred kB; it fills only as such clients come, and evicts beyond this.
const SESSION_CACHE_ENTRIES: usize = 1024;

/// The rustls configuration of the https listener: SNI over the store, HTTP/2 and HTTP/1.1,
/// the ACME TLS-ALPN-01 protocol, and session resumption.
pub fn server_config(store: Arc<CertStore>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(store)));
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        rustls_acme::acme::ACME_TLS_ALPN_NAME.to_vec(),
    ];
    // Stateless tickets: any worker thread resumes any session, and the keys that seal them
    // are rotated every 6 hours (a ticket sealed by the previous key is still accepted), so a
    // key that leaks opens at most a few hours of recorded sessions.
    match rustls::crypto::ring::Ticketer::new() {
        Ok(ticketer) => config.ticketer = ticketer,
        // Only a broken system random generator fails here; full handshakes still work.
        Err(e) => {
            tracing::error!(error = %e, "cannot make TLS session ticket keys; sessions resume only by session ID")
        }
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    Arc::new(config)
}

/// True when a finished handshake negotiated the ACME challenge protocol: such a connection
/// carries no HTTP and is closed at once.
pub fn is_acme_challenge(alpn: Option<&[u8]>) -> bool {
    alpn == Some(rustls_acme::acme::ACME_TLS_ALPN_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rustls-acme's cache holds for a domain: the private key, then the chain.
    fn acme_cache_pem(host: &str) -> String {
        let cert = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
        cert.signing_key.serialize_pem() + &cert.cert.pem()
    }

    #[test]
    fn a_cached_acme_certificate_parses_into_what_handshakes_serve() {
        let key = certified_from_acme_pem(acme_cache_pem("a.test").as_bytes()).unwrap();
        assert_eq!(key.cert.len(), 1);
        assert!(certified_from_acme_pem(b"not a pem").is_none());
        let key_only = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert!(certified_from_acme_pem(key_only.as_bytes()).is_none());
    }

    #[test]
    fn an_acme_certificate_is_served_from_the_stores_copy_only_once_deployed() {
        let passed = Arc::new(ArcSwapOption::empty());
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let state = rustls_acme::AcmeConfig::new_with_client_config(["a.test"], Arc::new(client))
            .cache(rustls_acme::caches::NoCache::<std::io::Error, std::io::Error>::default())
            .state();
        let cert = AcmeCert::new(state.resolver(), Arc::clone(&passed));
        passed.store(certified_from_acme_pem(acme_cache_pem("a.test").as_bytes()));
        assert!(cert.deployed.load().is_none() && !cert.is_ready());
        cert.mark_ready();
        let deployed = cert.deployed.load_full().unwrap();
        assert!(Arc::ptr_eq(&deployed, passed.load().as_ref().unwrap()));
        assert!(cert.is_ready());
    }
}

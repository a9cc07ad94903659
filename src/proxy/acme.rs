//! Certificates from an ACME CA (Let's Encrypt by default), one ACME state per domain.
//!
//! Each domain gets its own `rustls-acme` state driven by its own task, so domains can be
//! added and removed while running and one domain that fails validation (no DNS, no route to
//! this host) never holds up another. The crate loads the certificate and the account from
//! the cache in the state directory first, orders only when there is no valid certificate,
//! and renews when a third of the validity remains. Every event is logged with the domain.
//!
//! Which domains: every route with `tls = "acme"`, whoever declared it, except names that can
//! never be public ([`never_public`]: `localhost`, `.test`, `.local`, IP addresses, ...),
//! which no public CA will issue for and which are never ordered (said once in the log, and
//! in the certificate state the API shows). A task watches the route table and starts or
//! stops domain tasks to match.
//!
//! A failed order is retried after `[acme] retry_after_failure_seconds` (an hour by
//! default), doubling with each failure in a row up to a day: the crate's own backoff starts
//! at one second, which burns the CA's limit on failed validations per host and hour. Each
//! domain's state (valid until, last error, next attempt) is kept in the [`CertStore`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;
use rustls_acme::caches::DirCache;
use rustls_acme::{AccountCache, AcmeConfig, CertCache, EventError, EventOk, UseChallenge};
use tokio_util::sync::CancellationToken;

use super::routes::RouteTable;
use super::tls::{AcmeCert, CertStatus, CertStore, provider};
use crate::config::{AcmeSettings, Challenge, TlsMode};

/// The longest wait between two orders for a domain that keeps failing (unless the configured
/// first wait is longer still).
const MAX_RETRY: Duration = Duration::from_secs(24 * 3600);

/// Special-use names no public CA issues for: (suffix, why).
const NEVER_PUBLIC: &[(&str, &str)] = &[
    ("localhost", ".localhost names this machine (RFC 6761)"),
    ("test", ".test is reserved for testing (RFC 6761)"),
    (
        "example",
        ".example is reserved for documentation (RFC 6761)",
    ),
    (
        "example.com",
        "example.com is reserved for documentation (RFC 6761)",
    ),
    (
        "example.net",
        "example.net is reserved for documentation (RFC 6761)",
    ),
    (
        "example.org",
        "example.org is reserved for documentation (RFC 6761)",
    ),
    ("invalid", ".invalid can never resolve (RFC 6761)"),
    (
        "local",
        ".local is multicast DNS on the local link (RFC 6762)",
    ),
    (
        "internal",
        ".internal is reserved for private networks (ICANN, 2024)",
    ),
    ("home.arpa", ".home.arpa is for home networks (RFC 8375)"),
    ("arpa", ".arpa is DNS infrastructure"),
    ("onion", ".onion names Tor services (RFC 7686)"),
    ("alt", ".alt is for non-DNS names (RFC 9476)"),
];

/// Why `host` (a lower-case name as routes hold it) can never get a certificate from a public
/// CA, or `None` when it might.
pub fn never_public(host: &str) -> Option<&'static str> {
    let name = host.trim_start_matches("*.");
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Some("an IP address gets no certificate by HTTP-01 or TLS-ALPN-01 here");
    }
    let Some((_, tld)) = name.rsplit_once('.') else {
        return Some("a single-label name is not in the public DNS");
    };
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Some("a numeric top-level domain is not in the public DNS");
    }
    NEVER_PUBLIC
        .iter()
        .find(|(suffix, _)| {
            name == *suffix
                || name
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
        .map(|(_, why)| *why)
}

/// The wait after the `failures`-th failed order in a row: `first`, doubled each time, at
/// most a day (or `first`, when that is longer).
fn retry_delay(first: Duration, failures: u32) -> Duration {
    let doubled = first.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_RETRY.max(first))
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("[acme] extra_root_ca {}: {message}", path.display())]
    ExtraRoot { path: PathBuf, message: String },
    #[error("cannot create the ACME cache directory {}: {source}", path.display())]
    CacheDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the per-domain ACME tasks.
pub struct AcmeManager {
    settings: AcmeSettings,
    client: Arc<rustls::ClientConfig>,
    cache_dir: PathBuf,
    store: Arc<CertStore>,
    tasks: Mutex<HashMap<String, CancellationToken>>,
    /// Reserved names already logged, so each is said once.
    reserved_logged: Mutex<HashSet<String>>,
    /// Told of failed orders.
    notifier: crate::notify::Notifier,
    shutdown: CancellationToken,
}

impl AcmeManager {
    pub fn new(
        settings: AcmeSettings,
        state_dir: &std::path::Path,
        store: Arc<CertStore>,
        notifier: crate::notify::Notifier,
        shutdown: CancellationToken,
    ) -> Result<AcmeManager, AcmeError> {
        let cache_dir = state_dir.join("acme");
        create_private_dir(&cache_dir).map_err(|source| AcmeError::CacheDir {
            path: cache_dir.clone(),
            source,
        })?;
        let client = client_config(&settings)?;
        Ok(AcmeManager {
            settings,
            client,
            cache_dir,
            store,
            tasks: Mutex::new(HashMap::new()),
            reserved_logged: Mutex::new(HashSet::new()),
            notifier,
            shutdown,
        })
    }

    /// Starts tasks for new domains and stops those for domains no longer wanted. Names that
    /// can never be public get no task, only a state saying why.
    pub fn sync(&self, wanted: &BTreeSet<String>) {
        let (reserved, wanted): (BTreeSet<String>, BTreeSet<String>) = wanted
            .iter()
            .cloned()
            .partition(|d| never_public(d).is_some());
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|domain, token| {
            let keep = wanted.contains(domain);
            if !keep {
                tracing::info!(
                    domain,
                    "acme: domain removed; stopping its certificate task"
                );
                token.cancel();
                self.store.remove_acme(domain);
                self.store.forget_acme_state(domain);
            }
            keep
        });
        self.note_reserved(&reserved);
        for domain in &wanted {
            if !tasks.contains_key(domain) {
                let token = self.shutdown.child_token();
                self.spawn_domain(domain.clone(), token.clone());
                tasks.insert(domain.clone(), token);
            }
        }
    }

    /// Records the reserved names' states (dropping those no longer routed), and logs each
    /// name the first time it is seen.
    fn note_reserved(&self, reserved: &BTreeSet<String>) {
        let mut logged = self
            .reserved_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for domain in reserved {
            let why = never_public(domain).unwrap_or_default();
            self.store.set_reserved(domain, why);
            if logged.insert(domain.clone()) {
                tracing::warn!(
                    domain,
                    reason = why,
                    "acme: not ordering a certificate for a name that can never be public; it is served on plain HTTP"
                );
            }
        }
        for gone in self
            .store
            .certificate_states()
            .into_iter()
            .filter(|s| s.status == CertStatus::Reserved && !reserved.contains(&s.domain))
        {
            self.store.forget_acme_state(&gone.domain);
        }
    }

    /// Follows the route table: whenever it changes, the ACME domains follow.
    pub async fn follow(self: Arc<Self>, table: Arc<RouteTable>) {
        let mut changes = table.subscribe();
        loop {
            let wanted = acme_domains(&table);
            self.sync(&wanted);
            for host in table.take_retired() {
                self.forget_cached(&host);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Removes what is cached for a host that will not come back (a closed pull request's
    /// preview): its certificate file and its state. An app's own domains keep theirs when
    /// they stop being routed (a stop, a domain taken off for a while), so a start does not
    /// order again and meet the CA's rate limits.
    fn forget_cached(&self, domain: &str) {
        self.store.forget_acme_state(domain);
        let file = self
            .cache_dir
            .join(cached_cert_file_name(domain, &self.settings.directory_url));
        match std::fs::remove_file(&file) {
            Ok(()) => {
                tracing::info!(domain, file = %file.display(), "acme: removed the certificate of a retired host");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(domain, file = %file.display(), error = %e, "acme: cannot remove the certificate of a retired host");
            }
        }
    }

    fn spawn_domain(&self, domain: String, token: CancellationToken) {
        let challenge = match self.settings.challenge {
            Challenge::TlsAlpn01 => UseChallenge::TlsAlpn01,
            Challenge::Http01 => UseChallenge::Http01,
        };
        let mut config =
            AcmeConfig::new_with_client_config([domain.as_str()], Arc::clone(&self.client))
                .directory(&self.settings.directory_url)
                .challenge_type(challenge);
        if !self.settings.contact_email.is_empty() {
            config = config.contact_push(format!("mailto:{}", self.settings.contact_email));
        }
        let passed = Arc::new(ArcSwapOption::empty());
        let cache = NotingCache {
            dir: DirCache::new(self.cache_dir.clone()),
            store: Arc::clone(&self.store),
            domain: domain.clone(),
            passed: Arc::clone(&passed),
        };
        let mut state = config.cache(cache).state();
        let cert = AcmeCert::new(state.resolver(), passed);
        self.store.insert_acme(&domain, Arc::clone(&cert));
        self.store.update_acme_state(&domain, |_| {});
        let store = Arc::clone(&self.store);
        let notifier = self.notifier.clone();
        let first_retry = Duration::from_secs(self.settings.retry_after_failure_seconds.get());
        tracing::info!(domain, directory = %self.settings.directory_url, challenge = ?self.settings.challenge, "acme: certificate task started");
        // Detached on purpose: the token (a child of the shutdown token) ends it.
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => return,
                    event = state.next() => event,
                };
                // Removed meanwhile: its state is gone and must not come back.
                if token.is_cancelled() {
                    return;
                }
                match event {
                    Some(Ok(EventOk::DeployedCachedCert)) => {
                        cert.mark_ready();
                        store.update_acme_state(&domain, |s| s.status = CertStatus::Valid);
                        tracing::info!(
                            domain,
                            "acme: certificate loaded from cache; renewal is due when a third of its validity remains"
                        );
                    }
                    Some(Ok(EventOk::DeployedNewCert)) => {
                        cert.mark_ready();
                        failures = 0;
                        store.update_acme_state(&domain, |s| {
                            s.status = CertStatus::Valid;
                            s.last_error = None;
                            s.next_attempt = None;
                        });
                        tracing::info!(
                            domain,
                            "acme: new certificate issued and deployed; renewal is due when a third of its validity remains"
                        );
                    }
                    Some(Ok(ok)) => tracing::debug!(domain, event = ?ok, "acme"),
                    Some(Err(EventError::Order(e))) => {
                        failures += 1;
                        let wait = retry_delay(first_retry, failures);
                        let error = e.to_string();
                        store.update_acme_state(&domain, |s| {
                            if s.status != CertStatus::Valid {
                                s.status = CertStatus::Failed;
                            }
                            s.last_error = Some(error.clone());
                            s.next_attempt = Some(SystemTime::now() + wait);
                            s.failures_total += 1;
                        });
                        tracing::warn!(
                            domain,
                            error,
                            failures,
                            retry_in_s = wait.as_secs(),
                            "acme: certificate order failed; next attempt after the backoff"
                        );
                        notifier.certificate_renewal_failed(&domain, &error, wait);
                        // The crate's own wait (one second, doubling) has run out by then.
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        store.update_acme_state(&domain, |s| s.next_attempt = None);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(domain, error = %e, "acme: certificate cache")
                    }
                    None => return,
                }
            }
        });
    }
}

/// The certificate and account cache in the state directory, which also records the validity
/// of every certificate passing through it (loaded at start, or stored after an order).
struct NotingCache {
    dir: DirCache<PathBuf>,
    store: Arc<CertStore>,
    domain: String,
    /// A parsed copy of the certificate passing through, which the store serves lock-free
    /// once rustls-acme deploys it.
    passed: Arc<ArcSwapOption<CertifiedKey>>,
}

impl NotingCache {
    fn note(&self, pem: &[u8]) {
        self.passed.store(super::tls::certified_from_acme_pem(pem));
        let valid_until = x509_parser::pem::Pem::iter_from_buffer(pem)
            .filter_map(Result::ok)
            .find(|p| p.label == "CERTIFICATE")
            .and_then(|p| super::tls::not_after(&p.contents));
        self.store
            .update_acme_state(&self.domain, |s| s.valid_until = valid_until);
    }
}

#[async_trait::async_trait]
impl CertCache for NotingCache {
    type EC = std::io::Error;

    async fn load_cert(
        &self,
        domains: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EC> {
        let pem = self.dir.load_cert(domains, directory_url).await?;
        if let Some(pem) = &pem {
            self.note(pem);
        }
        Ok(pem)
    }

    async fn store_cert(
        &self,
        domains: &[String],
        directory_url: &str,
        cert: &[u8],
    ) -> Result<(), Self::EC> {
        self.note(cert);
        self.dir.store_cert(domains, directory_url, cert).await
    }
}

#[async_trait::async_trait]
impl AccountCache for NotingCache {
    type EA = std::io::Error;

    async fn load_account(
        &self,
        contact: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EA> {
        self.dir.load_account(contact, directory_url).await
    }

    async fn store_account(
        &self,
        contact: &[String],
        directory_url: &str,
        account: &[u8],
    ) -> Result<(), Self::EA> {
        self.dir
            .store_account(contact, directory_url, account)
            .await
    }
}

/// The name rustls-acme's `DirCache` gives the certificate of one domain: `cached_cert_`
/// and the URL-safe base64 of SHA-256 over the domain, a NUL and the directory URL. Its
/// function is private; the test below checks this one against the files it writes.
fn cached_cert_file_name(domain: &str, directory_url: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(domain.as_bytes());
    hash.update([0u8]);
    hash.update(directory_url.as_bytes());
    format!(
        "cached_cert_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize())
    )
}

/// Every host of the current routes that wants an ACME certificate.
fn acme_domains(table: &RouteTable) -> BTreeSet<String> {
    table
        .load()
        .specs()
        .iter()
        .filter(|s| s.tls == TlsMode::Acme && !crate::host::is_wildcard(&s.host))
        .map(|s| s.host.clone())
        .collect()
}

/// Web PKI roots plus the configured extra roots.
fn client_config(settings: &AcmeSettings) -> Result<Arc<rustls::ClientConfig>, AcmeError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !settings.extra_root_ca.as_os_str().is_empty() {
        let path = &settings.extra_root_ca;
        let err = |message: String| AcmeError::ExtraRoot {
            path: path.clone(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no CERTIFICATE block".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| err(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The cache holds account and certificate keys: owner-only.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cached_certificate_is_named_as_rustls_acme_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DirCache::new(dir.path().to_owned());
        let url = "https://127.0.0.1:14000/dir";
        cache
            .store_cert(&["pr-7.web.example.com".to_owned()], url, b"pem")
            .await
            .unwrap();
        let name = cached_cert_file_name("pr-7.web.example.com", url);
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"pem");
    }

    #[test]
    fn names_that_can_never_be_public() {
        for host in [
            "hello.localhost",
            "localhost",
            "app.test",
            "*.test",
            "printer.local",
            "db.internal",
            "docs.example",
            "www.example.com",
            "x.invalid",
            "nas.home.arpa",
            "1.0.0.127.in-addr.arpa",
            "10.0.0.1",
            "[::1]",
            "intranet",
            "abc.onion",
        ] {
            assert!(never_public(host).is_some(), "{host}");
        }
        for host in [
            "app.example.dev",
            "myexample.com",
            "localhost.company.com",
            "test.io",
            "a.b.co.uk",
            "rivetr.org",
        ] {
            assert_eq!(never_public(host), None, "{host}");
        }
    }

    #[test]
    fn retries_wait_at_least_the_first_delay_and_double_up_to_a_day() {
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_delay(hour, 1), hour);
        assert_eq!(retry_delay(hour, 2), 2 * hour);
        assert_eq!(retry_delay(hour, 5), 16 * hour);
        assert_eq!(retry_delay(hour, 6), 24 * hour);
        assert_eq!(retry_delay(hour, 1000), 24 * hour);
        let second = Duration::from_secs(1);
        assert_eq!(retry_delay(second, 3), 4 * second);
        let week = Duration::from_secs(7 * 24 * 3600);
        assert_eq!(retry_delay(week, 3), week);
    }
}

//! Certificates from an ACME CA (Let's Encrypt by default), one ACME state per domain.
//!
//! Each domain gets its own `rustls-acme` state driven by its own task, so domains can be
//! added and removed while running and one domain that fails validation (no DNS, no route to
//! this host) never holds up another. The crate loads the certificate and the account from
//! the cache in the state directory first, orders only when there is no valid certificate,
//! renews when a third of the validity remains, and backs off exponentially after failures.
//! Every event is logged with the domain.
//!
//! Which domains: every route with `tls = "acme"`, whoever declared it. A task watches the
//! route table and starts or stops domain tasks to match.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_acme::caches::DirCache;
use rustls_acme::{AcmeConfig, EventOk, UseChallenge};
use tokio_util::sync::CancellationToken;

use super::routes::RouteTable;
use super::tls::{AcmeCert, CertStore, provider};
use crate::config::{AcmeSettings, Challenge, TlsMode};

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
    shutdown: CancellationToken,
}

impl AcmeManager {
    pub fn new(
        settings: AcmeSettings,
        state_dir: &std::path::Path,
        store: Arc<CertStore>,
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
            shutdown,
        })
    }

    /// Starts tasks for new domains and stops those for domains no longer wanted.
    pub fn sync(&self, wanted: &BTreeSet<String>) {
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
            }
            keep
        });
        for domain in wanted {
            if !tasks.contains_key(domain) {
                let token = self.shutdown.child_token();
                self.spawn_domain(domain.clone(), token.clone());
                tasks.insert(domain.clone(), token);
            }
        }
    }

    /// Follows the route table: whenever it changes, the ACME domains follow.
    pub async fn follow(self: Arc<Self>, table: Arc<RouteTable>) {
        let mut changes = table.subscribe();
        loop {
            let wanted = acme_domains(&table);
            self.sync(&wanted);
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
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
        let mut state = config.cache(DirCache::new(self.cache_dir.clone())).state();
        let cert = AcmeCert::new(state.resolver());
        self.store.insert_acme(&domain, Arc::clone(&cert));
        tracing::info!(domain, directory = %self.settings.directory_url, challenge = ?self.settings.challenge, "acme: certificate task started");
        // Detached on purpose: the token (a child of the shutdown token) ends it.
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => return,
                    event = state.next() => event,
                };
                match event {
                    Some(Ok(EventOk::DeployedCachedCert)) => {
                        cert.mark_ready();
                        tracing::info!(
                            domain,
                            "acme: certificate loaded from cache; renewal is due when a third of its validity remains"
                        );
                    }
                    Some(Ok(EventOk::DeployedNewCert)) => {
                        cert.mark_ready();
                        tracing::info!(
                            domain,
                            "acme: new certificate issued and deployed; renewal is due when a third of its validity remains"
                        );
                    }
                    Some(Ok(ok)) => tracing::debug!(domain, event = ?ok, "acme"),
                    Some(Err(e)) => {
                        tracing::warn!(domain, error = ?e, "acme: certificate order failed; will retry with backoff")
                    }
                    None => return,
                }
            }
        });
    }
}

/// Every host of the current routes that wants an ACME certificate.
fn acme_domains(table: &RouteTable) -> BTreeSet<String> {
    table
        .load()
        .specs()
        .iter()
        .filter(|s| s.tls == TlsMode::Acme && !super::host::is_wildcard(&s.host))
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

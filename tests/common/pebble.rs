//! Pebble, Let's Encrypt's test CA, and its fake DNS server, started as real processes for
//! ACME tests. Pebble validates challenges on the ports the test gives it (the proxy's), and
//! resolves every name to 127.0.0.1 unless told otherwise.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::{TestDir, free_port, wait_for};

/// True when pebble is installed. Without it the caller skips (see [`super::skip`]).
pub fn available() -> bool {
    let found = Command::new("pebble")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        super::skip(
            "ACME test",
            "pebble is not installed (apt-get install pebble)",
        );
    }
    found
}

pub struct Pebble {
    pebble: Child,
    dns: Child,
    pub directory_url: String,
    /// The CA that signed Pebble's own HTTPS listener; Rivetr must trust it (extra_root_ca).
    pub listener_ca: PathBuf,
    listener_ca_der: Vec<u8>,
    management: SocketAddr,
    dns_management: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`.
    pub fn start(dir: &TestDir, http_port: u16, tls_port: u16) -> Pebble {
        let (ca_pem, ca_der, cert_pem, key_pem) = listener_certificate();
        let listener_ca = dir.write("pebble-ca.pem", &ca_pem);
        let cert = dir.write("pebble-cert.pem", &cert_pem);
        let key = dir.write("pebble-key.pem", &key_pem);
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.write("pebble.json", &config.to_string());
        let log = dir.path().join("pebble.log");
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv");
        let out = std::fs::File::create(&log).unwrap();
        let pebble_child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random validation delay, no random nonce rejection: tests stay quick and
            // deterministic.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("pebble");
        let pebble = Pebble {
            pebble: pebble_child,
            dns: dns_child,
            directory_url: format!("https://127.0.0.1:{listen}/dir"),
            listener_ca,
            listener_ca_der: ca_der,
            management: format!("127.0.0.1:{management}").parse().unwrap(),
            dns_management: format!("127.0.0.1:{dns_management}").parse().unwrap(),
            log,
        };
        for port in [listen, management, dns_management] {
            wait_for("pebble to listen", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
        pebble
    }

    /// Makes the fake DNS answer `ip` for `host`.
    pub fn set_a_record(&self, host: &str, ip: &str) {
        let body = serde_json::json!({ "host": format!("{host}."), "addresses": [ip] }).to_string();
        let request = format!(
            "POST /add-a HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, _, _) = super::raw_exchange(self.dns_management, &request);
        assert_eq!(status, 200, "challtestsrv add-a failed");
    }

    /// Pebble's root certificate (it makes a new one at every start), which issued
    /// certificates chain to.
    pub async fn root(&self) -> Vec<u8> {
        let pem = self.management_get("/roots/0").await;
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .expect("a PEM root from pebble")
    }

    async fn management_get(&self, path: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                self.listener_ca_der.clone(),
            ))
            .unwrap();
        let tls = client_config(roots, vec![]);
        let tcp = tokio::net::TcpStream::connect(self.management)
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }
}

pub fn client_config(
    roots: rustls::RootCertStore,
    alpn: Vec<Vec<u8>>,
) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost: (ca pem, ca der, cert pem,
/// key pem).
fn listener_certificate() -> (String, Vec<u8>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rivetr test CA for pebble");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (
        ca.pem(),
        ca.der().to_vec(),
        leaf.pem(),
        leaf_key.serialize_pem(),
    )
}

/// Connects to `addr` with SNI `host`, verifying against `root` only; returns the leaf
/// certificate presented and the body of `GET /`.
pub async fn https_get(
    addr: SocketAddr,
    host: &str,
    root: &[u8],
) -> Result<(Vec<u8>, String), String> {
    let (leaf, res) = https_request(addr, host, root, "GET", "/", &[("host", host)], b"").await?;
    Ok((leaf, res.body))
}

/// One HTTP/1.1 request over TLS to `addr` with SNI `sni`, verifying against `root` only:
/// the leaf certificate presented and the answer (lower-cased header names).
pub async fn https_request(
    addr: SocketAddr,
    sni: &str,
    root: &[u8],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(Vec<u8>, super::api::Resp), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
        .map_err(|e| e.to_string())?;
    let tls = client_config(roots, vec![b"http/1.1".to_vec()]);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no certificate")?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let res = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        leaf,
        super::api::Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    ))
}

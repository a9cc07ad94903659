//! Outbound HTTP/1.1 connections: the command-line client to Rivetr's API, and S3 for
//! backups. Both speak hyper's client connection API directly over a socket they open
//! themselves (a Unix socket, TCP, or TLS), so they share its two pieces here: the handshake
//! that spawns the connection's task, and a rustls connector trusting the Mozilla roots
//! (webpki-roots, so nothing depends on the host's certificate store) and any extra ones.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use rustls::pki_types::CertificateDer;

/// Starts HTTP/1.1 on `io`; the connection's task ends once the answer has been read and
/// the sender dropped (or the process exits).
pub async fn handshake<I>(
    io: I,
) -> hyper::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // writev: a large body (an 8 MiB backup part) goes to the socket from its own buffer;
    // hyper's default may flatten it into a second copy first.
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .writev(true)
        .handshake(io)
        .await?;
    // Detached on purpose: see above.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A TLS connector (TLS 1.2 and 1.3, ring) trusting the Mozilla roots and `extra_roots`.
pub fn tls_connector(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert)?;
    }
    // ring, as everywhere in Rivetr (Cargo.toml enables no other provider).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

//! TLS on the https listener of the real binary, seen by a real client (`openssl s_client`):
//! session resumption by tickets (TLS 1.3 and 1.2) and by session ID, ALPN, and OCSP stapling
//! of manual certificates with a real responder (`openssl ocsp`) of a test CA made with the
//! `openssl` commands.
//!
//! scripts/test-all.sh installs openssl; without it these tests skip, loudly, except under CI
//! where that is a failure.

use crate::common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::*;

/// True when the `openssl` command is there.
fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(
            "TLS test",
            "openssl is not installed (apt-get install openssl)",
        );
    }
    found
}

/// Runs `openssl ARGS` in `dir` (`args` split at whitespace); panics with its output when it
/// fails.
fn openssl(dir: &Path, args: &str) -> String {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

/// One `openssl s_client` connection to `addr` for `servername`, with `input` as what it
/// sends; returns everything it printed. With `-ign_eof` among `extra` it reads until the
/// server closes (after a `Connection: close` request), so it sees the session tickets that
/// come after the handshake.
fn s_client(addr: SocketAddr, servername: &str, extra: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            servername,
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn request(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// A `[[proxy.routes]]` block serving `host` with a manual certificate.
fn manual_route(host: &str, upstream: SocketAddr, cert: &Path, key: &Path) -> String {
    format!(
        "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [\"{upstream}\"]\ncert = \"{}\"\nkey = \"{}\"\n\n",
        cert.display(),
        key.display()
    )
}

fn start_with_config(dir: &TestDir, config: &str) -> Rivetr {
    let path = dir.write("rivetr.toml", config);
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(path.to_str().unwrap())
        .start(dir);
    rivetr.wait_healthy();
    rivetr
}

/// The line of `s_client` output that starts with `prefix`, for failure messages.
fn line_with<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or("(no such line)")
}

#[test]
fn sessions_resume_by_ticket_and_by_session_id_and_alpn_offers_h2_and_http1() {
    if !openssl_available() {
        return;
    }
    let a = Backend::start("A");
    let dir = TestDir::new();
    let cert = rcgen::generate_simple_self_signed(vec!["secure.test".to_owned()]).unwrap();
    let cert_path = dir.write("secure.test.pem", &cert.cert.pem());
    let key_path = dir.write("secure.test.key", &cert.signing_key.serialize_pem());
    let rivetr = start_with_config(
        &dir,
        &manual_route("secure.test", a.addr, &cert_path, &key_path),
    );
    let https = rivetr.https();

    // (what is checked, s_client's options, what the resumed handshake prints)
    let cases: [(&str, &[&str], &str); 3] = [
        ("TLS 1.3 ticket", &["-tls1_3"], "Reused, TLSv1.3"),
        ("TLS 1.2 ticket", &["-tls1_2"], "Reused, TLSv1.2"),
        (
            "TLS 1.2 session ID",
            &["-tls1_2", "-no_ticket"],
            "Reused, TLSv1.2",
        ),
    ];
    for (i, (what, options, reused)) in cases.into_iter().enumerate() {
        let session = dir.path().join(format!("session-{i}.pem"));
        let session = session.to_str().unwrap();
        let first = s_client(
            https,
            "secure.test",
            &[options, &["-ign_eof", "-sess_out", session]].concat(),
            &request("secure.test"),
        );
        assert!(first.contains("New, TLSv1."), "{what}, first:\n{first}");
        assert!(first.contains("HTTP/1.1 200"), "{what}, first:\n{first}");
        assert!(
            std::fs::metadata(session).is_ok_and(|m| m.len() > 0),
            "{what}: s_client saved no session:\n{first}"
        );
        if what.contains("ticket") {
            // A stateless ticket from the rotating ticketer: its lifetime is two rotation
            // periods (2 x 6 h). rustls's session-cache "tickets" would say 86400.
            assert!(
                first.contains("TLS session ticket lifetime hint: 43200"),
                "{what}: no ticket of the rotating ticketer ({}):\n{first}",
                line_with(&first, "TLS session ticket lifetime")
            );
        }
        let second = s_client(
            https,
            "secure.test",
            &[options, &["-ign_eof", "-sess_in", session]].concat(),
            &request("secure.test"),
        );
        assert!(
            second.contains(reused),
            "{what}: the second handshake did not resume ({}):\n{second}",
            line_with(&second, "New,")
        );
        assert!(second.contains("HTTP/1.1 200"), "{what}, second:\n{second}");
        println!("{what}: {}", line_with(&second, "Reused,"));
    }

    for (offered, negotiated) in [
        ("h2", "ALPN protocol: h2"),
        ("http/1.1", "ALPN protocol: http/1.1"),
        ("h2,http/1.1", "ALPN protocol: h2"),
    ] {
        let out = s_client(https, "secure.test", &["-alpn", offered], "");
        assert!(
            out.contains(negotiated),
            "offering {offered}: {}\n{out}",
            line_with(&out, "ALPN")
        );
    }
}

/// A test CA made with `openssl req`/`openssl ca` in a directory of its own, its OCSP
/// responder's certificate (id-kp-OCSPSigning, signed by the CA), and leaf certificates whose
/// Authority Information Access names a responder URL.
struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    fn new(parent: &Path) -> TestCa {
        let dir = parent.join("ca");
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test_ca\n\
             [test_ca]\ndir = .\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
             serial = $dir/serial\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
             default_md = sha256\ndefault_days = 30\npolicy = policy_any\nunique_subject = no\n\
             [policy_any]\ncommonName = supplied\n\
             [responder]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = critical,OCSPSigning\n",
        )
        .unwrap();
        let ca = TestCa { dir };
        openssl(
            &ca.dir,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
             -out ca.pem -subj /CN=Rivetr-Test-CA -days 30 \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        );
        ca.issue("responder", "responder");
        ca
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Issues `<name>.pem` (and `<name>.key`) with the extensions of section `section`.
    fn issue(&self, name: &str, section: &str) {
        openssl(
            &self.dir,
            &format!(
                "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
                 -out {name}.csr -subj /CN={name}"
            ),
        );
        openssl(
            &self.dir,
            &format!(
                "ca -batch -notext -config ca.cnf -extensions {section} -in {name}.csr \
                 -out {name}.pem"
            ),
        );
    }

    /// A server certificate for `host` whose OCSP responder is `responder`; returns the PEM
    /// chain (the certificate, then the CA's) and the key.
    fn leaf(&self, host: &str, responder: &str) -> (PathBuf, PathBuf) {
        let mut cnf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("ca.cnf"))
            .unwrap();
        write!(
            cnf,
            "[{host}]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{host}\n\
             authorityInfoAccess = OCSP;URI:{responder}\n"
        )
        .unwrap();
        drop(cnf);
        self.issue(host, host);
        let chain = [
            std::fs::read_to_string(self.path(&format!("{host}.pem"))).unwrap(),
            std::fs::read_to_string(self.path("ca.pem")).unwrap(),
        ]
        .concat();
        let chain_path = self.path(&format!("{host}-chain.pem"));
        std::fs::write(&chain_path, chain).unwrap();
        (chain_path, self.path(&format!("{host}.key")))
    }

    fn revoke(&self, host: &str) {
        openssl(
            &self.dir,
            &format!("ca -config ca.cnf -revoke {host}.pem -crl_reason keyCompromise"),
        );
    }

    /// A certificate that is not the CA's, self-signed, for OCSP signing: what a forger has.
    fn rogue_signer(&self) {
        openssl(
            &self.dir,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key \
             -out rogue.pem -subj /CN=Rivetr-Test-CA -days 30 \
             -addext extendedKeyUsage=critical,OCSPSigning",
        );
    }

    /// Starts `openssl ocsp` answering for this CA on `port`, signing with `signer` (the
    /// files `<signer>.pem` and `<signer>.key`); its answers are valid for an hour
    /// (`nextUpdate`).
    fn responder(&self, port: u16, signer: &str) -> Responder {
        let child = Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-port", &port.to_string()])
            .args(["-rsigner", &format!("{signer}.pem")])
            .args(["-rkey", &format!("{signer}.key")])
            .args(["-CA", "ca.pem", "-nmin", "60", "-ignore_err"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let responder = Responder(child);
        // Ready once it answers a real query (unverified: the rogue one would fail that); a
        // bare connect to see it listen would not do, as `openssl ocsp` 3.0 spins forever on a
        // connection closed without a request.
        let url = format!("http://127.0.0.1:{port}");
        wait_for("the OCSP responder", Duration::from_secs(10), || {
            Command::new("openssl")
                .args([
                    "ocsp",
                    "-issuer",
                    "ca.pem",
                    "-cert",
                    "responder.pem",
                    "-url",
                    &url,
                ])
                .args(["-noverify", "-timeout", "2"])
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
                .then_some(())
        });
        responder
    }
}

/// A running `openssl ocsp`; killed when dropped.
struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `s_client -status` for `host`, trusting the test CA, with an HTTP request.
fn status_of(https: SocketAddr, host: &str, ca: &TestCa) -> String {
    let ca_file = ca.path("ca.pem");
    s_client(
        https,
        host,
        &["-status", "-ign_eof", "-CAfile", ca_file.to_str().unwrap()],
        &request(host),
    )
}

/// Waits until the handshake for `host` carries a staple, and returns what s_client printed.
fn wait_for_staple(rivetr: &Rivetr, host: &str, ca: &TestCa) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = status_of(rivetr.https(), host, ca);
        if out.contains("Cert Status") {
            return out;
        }
        if Instant::now() > deadline {
            panic!(
                "no staple for {host} after 20 s:\n{out}\nRivetr's log:\n{}",
                rivetr.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ocsp_staples_good_and_revoked_responses_and_serves_unstapled_when_the_responder_is_down() {
    if !openssl_available() {
        return;
    }
    let a = Backend::start("A");
    let dir = TestDir::new();
    let ca = TestCa::new(dir.path());
    ca.rogue_signer();
    // good.test's responder signs with a certificate the CA issued for OCSP signing,
    // revoked.test's with the CA's own key, forged.test's with a look-alike no CA signed;
    // nothing listens for down.test.
    let (delegated, by_ca, rogue, down) = (free_port(), free_port(), free_port(), free_port());
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let (good, good_key) = ca.leaf("good.test", &url(delegated));
    let (revoked, revoked_key) = ca.leaf("revoked.test", &format!("{}/", url(by_ca)));
    let (forged, forged_key) = ca.leaf("forged.test", &url(rogue));
    let (unstapled, unstapled_key) = ca.leaf("down.test", &url(down));
    ca.revoke("revoked.test");
    let _responders = [
        ca.responder(delegated, "responder"),
        ca.responder(by_ca, "ca"),
        ca.responder(rogue, "rogue"),
    ];

    let config = [
        manual_route("good.test", a.addr, &good, &good_key),
        manual_route("revoked.test", a.addr, &revoked, &revoked_key),
        manual_route("down.test", a.addr, &unstapled, &unstapled_key),
        manual_route("forged.test", a.addr, &forged, &forged_key),
    ]
    .concat();
    let rivetr = start_with_config(&dir, &config);
    let https = rivetr.https();

    // The staples are fetched in the background after start: the first handshakes may come
    // before them.
    let stapled = wait_for_staple(&rivetr, "good.test", &ca);
    assert!(
        stapled.contains("OCSP Response Status: successful"),
        "{stapled}"
    );
    assert!(stapled.contains("Cert Status: good"), "{stapled}");
    assert!(stapled.contains("Next Update:"), "{stapled}");
    assert!(stapled.contains("Verify return code: 0 (ok)"), "{stapled}");
    assert!(stapled.contains("HTTP/1.1 200"), "{stapled}");
    // TLS 1.2 carries the staple in another message (CertificateStatus).
    let ca_file = ca.path("ca.pem");
    let tls12 = s_client(
        https,
        "good.test",
        &["-tls1_2", "-status", "-CAfile", ca_file.to_str().unwrap()],
        "",
    );
    assert!(tls12.contains("Cert Status: good"), "{tls12}");

    // Revoked: stapled as the CA says, so a client that checks staples refuses it.
    let revoked_out = wait_for_staple(&rivetr, "revoked.test", &ca);
    assert!(
        revoked_out.contains("OCSP Response Status: successful"),
        "{revoked_out}"
    );
    assert!(
        revoked_out.contains("Cert Status: revoked"),
        "{revoked_out}"
    );
    assert!(
        revoked_out.contains("Revocation Reason: keyCompromise"),
        "{revoked_out}"
    );
    rivetr.wait_log("REVOKED", Duration::from_secs(5));

    // The responder of down.test is down: the handshake works, without a staple, and the
    // log names the certificate and the responder.
    let warning = wait_for("down.test's OCSP warning", Duration::from_secs(20), || {
        rivetr
            .log()
            .lines()
            .find(|l| {
                l.contains("OCSP: cannot get a response; serving the certificate without a staple")
                    && l.contains("down.test")
            })
            .map(str::to_owned)
    });
    assert!(warning.contains("down.test-chain.pem"), "{warning}");
    assert!(
        warning.contains(&format!("http://127.0.0.1:{down}")),
        "{warning}"
    );
    let out = status_of(https, "down.test", &ca);
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");

    // A response signed by a key the CA never authorised is not stapled.
    rivetr.wait_log(
        "the answer is not signed by the issuer",
        Duration::from_secs(20),
    );
    let out = status_of(https, "forged.test", &ca);
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");

    // A reload keeps the staple: it is not dropped until a fetch replaces it.
    rivetr.signal(libc::SIGHUP);
    rivetr.wait_log("configuration reloaded", Duration::from_secs(10));
    let out = status_of(https, "good.test", &ca);
    assert!(out.contains("Cert Status: good"), "after a reload:\n{out}");
}

//! Talking to Rivetr's API in tests: a small HTTP/1.1 client over a plain socket (so tests
//! control every header and byte), and direct access to the state directory's database for
//! the rows the API cannot make yet (apps belong to the engine's issue).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `error.code` of an error body; panics when the body is not the API's error format.
    pub fn code(&self) -> String {
        let v = self.json();
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}: {}", self.status, self.body))
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends one request (Connection: close) and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server that refuses a body early (413) may close before taking all of it; the
    // answer is still waiting to be read.
    let _ = s.write_all(body);
    read_response(&mut s)
}

/// Reads a response to the end of the connection. A reset after some bytes (a server that
/// closed with part of the request unread) still yields what arrived.
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if !raw.is_empty() => {
                eprintln!("read ended with {e} after {} bytes", raw.len());
                break;
            }
            Err(e) => panic!("no response: {e}"),
        }
    }
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap().trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || body.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[(eol + 4 + size).min(body.len())..];
    }
}

/// A client bound to one Rivetr with one token.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
}

impl Api {
    pub fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> Resp {
        request(
            self.addr,
            "GET",
            path,
            &[("Authorization", &self.auth())],
            b"",
        )
    }

    pub fn delete(&self, path: &str) -> Resp {
        request(
            self.addr,
            "DELETE",
            path,
            &[("Authorization", &self.auth())],
            b"",
        )
    }

    pub fn post_json(&self, path: &str, body: &str) -> Resp {
        request(
            self.addr,
            "POST",
            path,
            &[
                ("Authorization", &self.auth()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    pub fn patch_json(&self, path: &str, body: &str) -> Resp {
        request(
            self.addr,
            "PATCH",
            path,
            &[
                ("Authorization", &self.auth()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

/// The state directory `Launch::serve()` uses.
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The token the first start wrote.
pub fn initial_token(dir: &Path) -> String {
    std::fs::read_to_string(state_dir(dir).join("initial-admin-token"))
        .unwrap()
        .trim_end()
        .to_owned()
}

pub fn open_db(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(state_dir(dir).join("rivetr.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// Adds an app row the way the apps API will, minus its webhook secret.
pub fn insert_app(dir: &Path, name: &str, branch: &str) -> i64 {
    open_db(dir)
        .query_row(
            "INSERT INTO apps (name, git_url, branch) VALUES (?1, 'https://example.com/repo.git', ?2) RETURNING id",
            [name, branch],
            |r| r.get(0),
        )
        .unwrap()
}

/// Sets an app's webhook secret to a value of the test's choosing, sealed with the daemon's
/// key exactly as Rivetr seals it.
pub fn set_webhook_secret(dir: &Path, app_id: i64, secret: &str) {
    let (key, _) = rivetr::secrets::key::find(None, &state_dir(dir))
        .unwrap()
        .expect("the daemon created its key");
    let secrets = rivetr::secrets::Secrets::new(&key);
    let sealed = secrets
        .encrypt_str(rivetr::secrets::Purpose::WebhookSecret { app_id }, secret)
        .unwrap();
    open_db(dir)
        .execute(
            "UPDATE apps SET webhook_secret = ?1 WHERE id = ?2",
            rusqlite::params![sealed, app_id],
        )
        .unwrap();
}

/// HMAC-SHA256 of `body` under `secret`, in hex: what GitHub and Gitea send.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/webhooks")
            .join(path),
    )
    .unwrap()
}

//! moto's S3 server (from PyPI, `scripts/test-env/moto.sh`), for the backup tests.

use std::time::Duration;

/// moto's S3 server on a free port of 127.0.0.1, checking signatures after the first four
/// calls, which create an IAM user with a key that may do anything, and the bucket `backups`.
pub struct Moto {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server on a free port, once the socket listening there is its own; `None` when it
/// exited first. A connection alone proved nothing: another test's listener took the port
/// between `free_port` and moto's bind, the wait connected to that one, and moto's first
/// call was refused (ci28, 2026-12-05).
fn spawn_listening(program: &str) -> Option<(std::process::Child, std::net::SocketAddr)> {
    let port = super::free_port();
    let mut child = std::process::Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ours = super::wait_for("moto to listen", Duration::from_secs(60), || {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Some(false);
        }
        listens_on(child.id(), port).then_some(true)
    });
    if ours { Some((child, addr)) } else { None }
}

/// Whether process `pid` holds the socket listening on TCP `port` (IPv4).
fn listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let inode = f.get(9)?;
            (u16::from_str_radix(local_port, 16).ok()? == port && f.get(3)? == &LISTEN)
                .then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.to_str() == Some(i)))
    })
}

impl Moto {
    pub fn start(case: &str) -> Option<Moto> {
        let Some(program) = std::env::var("RIVETR_TEST_MOTO_SERVER")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            super::skip(
                case,
                "RIVETR_TEST_MOTO_SERVER is not set (scripts/test-env/moto.sh prints it)",
            );
            return None;
        };
        let (child, addr) = (0..3)
            .find_map(|_| spawn_listening(&program))
            .expect("moto_server lost its port to another listener three times in a row");
        let mut moto = Moto {
            child,
            addr,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        // moto tells IAM calls from S3 ones by the credential scope of the Authorization
        // header; these first calls are not checked.
        let iam = |body: &str| {
            let request = format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let (status, _, text) = super::raw_exchange(addr, &request);
            assert_eq!(status, 200, "{text}");
            text
        };
        iam("Action=CreateUser&UserName=rivetr&Version=2010-05-08");
        let key = iam("Action=CreateAccessKey&UserName=rivetr&Version=2010-05-08");
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = key.find(&open).unwrap() + open.len();
            key[start..start + key[start..].find('<').unwrap()].to_owned()
        };
        moto.access_key_id = field("AccessKeyId");
        moto.secret_access_key = field("SecretAccessKey");
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        iam(&format!(
            "Action=PutUserPolicy&UserName=rivetr&PolicyName=all&PolicyDocument={policy}&Version=2010-05-08"
        ));
        let (status, _, text) = super::raw_exchange(
            addr,
            &format!(
                "PUT /backups HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{text}");
        Some(moto)
    }

    /// The keys of the objects in the bucket `backups`, listed with Rivetr's own client.
    pub fn objects(&self) -> Vec<String> {
        let mut keys = self.block_on(|s3| async move { s3.list_keys("").await.unwrap() });
        keys.sort();
        keys
    }

    /// The keys of multipart uploads begun and never completed nor aborted.
    pub fn pending_uploads(&self) -> Vec<String> {
        self.block_on(|s3| async move { s3.pending_uploads("").await.unwrap() })
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// Runs `f` with Rivetr's S3 client on the bucket `backups`.
    pub fn block_on<T, F>(&self, f: impl FnOnce(rivetr::databases::backups::s3::S3) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        use rivetr::databases::backups::s3::{S3, S3Config};
        let s3 = S3::new(S3Config {
            endpoint: format!("http://{}", self.addr),
            region: "us-east-1".into(),
            bucket: "backups".into(),
            prefix: String::new(),
            path_style: true,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: rivetr::secrets::SecretString::new(self.secret_access_key.clone()),
        })
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(f(s3))
    }
}

//! The command-line client end to end: the real `rivetr` binary run as a subprocess against
//! a running Rivetr. One test drives a whole app through real git commits on real Podman
//! (through `scripts/test-env/engines.sh`); the others need no container engine and check
//! where the client finds its settings, its exit statuses, `--json` and HTTPS.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::platform::{GitRepo, Platform, podman_socket, unique_name};
use common::{BIN, Launch, Rivetr, TestDir, free_port, wait_for};
use serde_json::Value;

/// What one run of the client gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit status {code}: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

/// The client, with an environment of its own: no RIVETR_* from the caller, and HOME in a
/// temporary directory so no real ~/.config/rivetr/cli.toml is read.
struct Client {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Client {
    /// A client that finds the server through RIVETR_URL and RIVETR_TOKEN.
    fn new(url: &str, token: &str) -> Client {
        let mut c = Client::bare();
        c.env.push(("RIVETR_URL".into(), url.into()));
        c.env.push(("RIVETR_TOKEN".into(), token.into()));
        c
    }

    /// A client with no settings at all.
    fn bare() -> Client {
        Client {
            home: tempfile::Builder::new()
                .prefix("rivetr-cli-home-")
                .tempdir()
                .unwrap(),
            env: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("RIVETR_URL")
            .env_remove("RIVETR_TOKEN")
            .env_remove("RIVETR_CA_FILE")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.home.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args), None)
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with(self.command(args), Some(stdin))
    }

    /// Runs to the end, killing the client after five minutes.
    fn run_with(&self, mut cmd: Command, stdin: Option<&str>) -> Run {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the client ran for 5 minutes:\n{}\n{}",
                    out.lock().unwrap(),
                    err.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The readers finish at EOF, right after the exit.
        let text = |buf: &Arc<Mutex<String>>| {
            wait_for(
                "the client's output to end",
                Duration::from_secs(10),
                || (Arc::strong_count(buf) == 1).then_some(()),
            );
            buf.lock().unwrap().clone()
        };
        Run {
            code: status.code().expect("exited, not killed by a signal"),
            stdout: text(&out),
            stderr: text(&err),
        }
    }

    /// Starts the client and leaves it running, its output collected as it comes.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn write_config(&self, dir: &Path, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("rivetr").join("cli.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

/// Reads a pipe to its end on a thread; the text so far is in the returned buffer.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let shared = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            shared.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    buf
}

struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn wait_output(&self, stream: &str, needle: &str, timeout: Duration) {
        let buf = if stream == "stdout" {
            &self.stdout
        } else {
            &self.stderr
        };
        wait_for(
            &format!("{needle:?} on the client's {stream}"),
            timeout,
            || buf.lock().unwrap().contains(needle).then_some(()),
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_of(rivetr: &Rivetr) -> String {
    format!("http://{}", rivetr.api())
}

// ------------------------------------------------------------------------------------------
// On Podman: an app's whole life through the CLI.
// ------------------------------------------------------------------------------------------

/// Starts with `$GREETING` on stdout, writes `$GREETING|$API_KEY` where the proxy serves it,
/// and logs each request on stderr (`httpd -v`).
const START_SH: &str = "echo \"booted $GREETING\"\nprintf '%s|%s\\n' \"$GREETING\" \"$API_KEY\" > /www/env.txt\nexec httpd -f -v -p 8080 -h /www\n";
const DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nCOPY start.sh /start.sh\nEXPOSE 8080\nCMD [\"sh\", \"/start.sh\"]\n";

#[test]
fn an_app_is_created_configured_deployed_rolled_back_and_deleted_through_the_cli() {
    let Some(socket) = podman_socket("cli on podman") else {
        return;
    };
    let p = Platform::start(&socket, &[]);
    let cli = Client::new(&format!("http://{}", p.rivetr.api()), &p.token);
    let repo = GitRepo::new("v1\n");
    let v1 = repo.commit(
        &[("Dockerfile", DOCKERFILE), ("start.sh", START_SH)],
        "v1 with a start script",
    );
    let app = unique_name("cli");
    let host = format!("{app}.test");
    let secret = "s3cr3t-from-stdin";
    let mut outputs: Vec<String> = Vec::new();
    let mut keep = |r: &Run| outputs.push(format!("{}\n{}", r.stdout, r.stderr));

    // Create.
    let git_url = format!("file://{}", repo.path().display());
    let r = cli
        .run(&[
            "app",
            "create",
            &app,
            "--git",
            &git_url,
            "--domain",
            &host,
            "--port",
            "8080",
            "--health-interval-ms",
            "200",
            "--health-retries",
            "50",
        ])
        .ok();
    keep(&r);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("name:") && l.ends_with(app.as_str())),
        "{r:#?}"
    );
    assert!(r.stdout.contains("webhook secret: "), "{r:#?}");
    assert!(
        r.stdout.contains(&format!("/webhooks/github/{app}")),
        "{r:#?}"
    );
    let webhook_secret = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("webhook secret: "))
        .map(str::to_owned);

    // A plain variable and a secret one from stdin (its trailing newline dropped).
    keep(&cli.run(&["env", "set", &app, "GREETING", "hello"]).ok());
    let r = cli
        .run_stdin(
            &["env", "set", &app, "API_KEY", "-", "--secret"],
            &format!("{secret}\n"),
        )
        .ok();
    keep(&r);
    assert!(r.stdout.contains("API_KEY (secret)"), "{r:#?}");
    let r = cli.run(&["env", "list", &app]).ok();
    keep(&r);
    assert!(
        r.stdout.contains("GREETING") && r.stdout.contains("hello"),
        "{r:#?}"
    );
    assert!(r.stdout.contains("********"), "{r:#?}");
    let r = cli.run(&["env", "list", &app, "--json"]).ok();
    keep(&r);
    let vars = r.json();
    let api_key = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "API_KEY")
        .expect("API_KEY listed");
    assert_eq!(api_key["secret"], true);

    // Deploy and follow: the log as it happens, then success.
    let r = cli.run(&["deploy", &app, "--follow"]).ok();
    keep(&r);
    assert!(r.stdout.contains("queued"), "{r:#?}");
    assert!(r.stdout.contains("[build]"), "no build output: {r:#?}");
    assert!(
        r.stdout.contains("[health]"),
        "no health check lines: {r:#?}"
    );
    let last = r.stdout.lines().last().unwrap_or("");
    assert!(
        last.contains(": running") && last.contains(&v1[..12]),
        "last line: {last}\n{r:#?}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    assert_eq!(
        p.through_proxy(&host, "/env.txt"),
        (200, format!("hello|{secret}\n")),
        "the container got both variables, the secret without stdin's newline"
    );

    // The list has it, with its commit.
    let r = cli.run(&["deployments", &app]).ok();
    keep(&r);
    assert!(r.stdout.starts_with("ID"), "{r:#?}");
    assert!(
        r.stdout.contains("running") && r.stdout.contains(&v1[..12]),
        "{r:#?}"
    );
    let r = cli.run(&["deployments", &app, "--json"]).ok();
    keep(&r);
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["commit_sha"], v1.as_str());
    assert_eq!(list[0]["status"], "running");
    let first = list[0]["id"].as_i64().unwrap();

    // A second commit, deployed by its id; with --json stdout is only the deployment.
    let v2 = repo.commit(&[("www/index.html", "v2\n")], "v2");
    let r = cli
        .run(&["deploy", &app, "--ref", &v2, "--follow", "--json"])
        .ok();
    keep(&r);
    let d = r.json();
    assert_eq!(d["status"], "running", "{r:#?}");
    assert_eq!(d["commit_sha"], v2.as_str());
    assert!(
        r.stderr.contains("[build]"),
        "the log goes to stderr: {r:#?}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v2\n".to_owned()));

    // Back to the first.
    let r = cli
        .run(&["rollback", &app, &first.to_string(), "--follow"])
        .ok();
    keep(&r);
    assert!(
        r.stdout.contains(&format!("rollback to #{first}")),
        "{r:#?}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));

    // A commit that does not build: --follow shows why and fails; v1 keeps serving.
    repo.commit(
        &[(
            "Dockerfile",
            "FROM localhost/busybox:test\nRUN echo about to fail && false\n",
        )],
        "broken build",
    );
    let r = cli.run(&["deploy", &app, "--follow"]).code(1);
    keep(&r);
    assert!(r.stdout.contains("about to fail"), "{r:#?}");
    assert!(
        r.stderr.contains("ended failed") && r.stderr.contains("build failed"),
        "{r:#?}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    let r = cli.run(&["deployments", &app, "--json"]).ok();
    let statuses: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "running", "replaced", "replaced"],
        "newest first: the broken one, the rollback, v2, v1"
    );

    // The app's output: stdout to stdout, stderr (httpd's request log) to stderr.
    let r = cli.run(&["logs", &app, "--tail", "100"]).ok();
    keep(&r);
    assert!(r.stdout.contains("booted hello"), "{r:#?}");
    assert!(r.stderr.contains("response:200"), "{r:#?}");
    // --follow shows lines written after it started.
    let follow = cli.spawn(&["logs", &app, "--follow", "--tail", "1"]);
    wait_for(
        "the last line before following",
        Duration::from_secs(30),
        || {
            let any = !follow.stdout.lock().unwrap().is_empty()
                || !follow.stderr.lock().unwrap().is_empty();
            any.then_some(())
        },
    );
    assert!(
        !follow.stderr.lock().unwrap().contains("response:404"),
        "no 404 was asked for yet"
    );
    assert_eq!(p.through_proxy(&host, "/not-there").0, 404);
    follow.wait_output("stderr", "response:404", Duration::from_secs(30));
    drop(follow);

    // Stop, start, restart.
    let r = cli.run(&["app", "stop", &app]).ok();
    assert!(r.stdout.contains("stopped"), "{r:#?}");
    assert_ne!(p.through_proxy(&host, "/").0, 200);
    let r = cli.run(&["app", "start", &app]).ok();
    assert!(r.stdout.contains("running deployment"), "{r:#?}");
    wait_for("v1 after start", Duration::from_secs(60), || {
        (p.through_proxy(&host, "/") == (200, "v1\n".to_owned())).then_some(())
    });
    let r = cli.run(&["app", "restart", &app, "--json"]).ok();
    assert_eq!(r.json()["stopped"], false, "{r:#?}");
    wait_for("v1 after restart", Duration::from_secs(60), || {
        (p.through_proxy(&host, "/") == (200, "v1\n".to_owned())).then_some(())
    });

    // Show and list.
    let r = cli.run(&["app", "show", &app, "--json"]).ok();
    assert_eq!(r.json()["name"], app.as_str());
    assert!(r.json().get("webhook_secret").is_none(), "shown only once");
    let r = cli.run(&["app", "list"]).ok();
    assert!(
        r.stdout.contains(&app) && r.stdout.contains(&host),
        "{r:#?}"
    );

    // A preview of a pull request: previews on with a variable of their own (its value
    // from the client's environment), then GitHub's `opened` for PR #2 from branch
    // `changes` at v2.
    let webhook_secret = webhook_secret.expect("the creation printed the webhook secret");
    let git = Command::new("git")
        .args(["branch", "changes", &v2])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(git.status.success(), "{git:?}");
    let mut with_env = Client::new(&format!("http://{}", p.rivetr.api()), &p.token);
    with_env
        .env
        .push(("GREETING".into(), "hello from the preview".into()));
    let r = with_env
        .run(&[
            "app",
            "update",
            &app,
            "--previews",
            "on",
            "--preview-env",
            "GREETING",
        ])
        .ok();
    keep(&r);
    assert!(r.stdout.contains("preview env:    GREETING"), "{r:#?}");
    let mut body: Value =
        serde_json::from_slice(&common::api::fixture("github/pull_request.opened.json")).unwrap();
    body["pull_request"]["head"]["sha"] = v2.as_str().into();
    let answer = deliver_pull_request(
        &p.rivetr,
        &app,
        &webhook_secret,
        "pr-2-opened",
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(answer["outcome"], "queued", "{answer}");
    let preview = format!("{app}-pr-2");
    let preview_host = format!("pr-2.{host}");
    let listed = wait_for("the preview to run", Duration::from_secs(180), || {
        let r = cli.run(&["preview", "list", &app, "--json"]).ok();
        let status = r.json()[0]["deployment"]["status"].as_str()?.to_owned();
        assert_ne!(status, "failed", "{r:#?}");
        (status == "running").then_some(r.json())
    });
    assert_eq!(listed[0]["app"], preview.as_str(), "{listed}");
    assert_eq!(listed[0]["host"], preview_host.as_str(), "{listed}");
    let r = cli.run(&["preview", "list", &app]).ok();
    keep(&r);
    let row: Vec<&str> = r
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..6],
        ["#2", "open", "changes", &v2[..12], &preview, &preview_host],
        "{r:#?}"
    );
    assert!(row[6].starts_with('#') && row[7] == "running", "{r:#?}");
    assert_eq!(row.len(), 8, "nothing refused: {r:#?}");
    // The preview serves the PR's code, with the app's variables and its own.
    assert_eq!(
        p.through_proxy(&preview_host, "/"),
        (200, "v2\n".to_owned())
    );
    assert_eq!(
        p.through_proxy(&preview_host, "/env.txt"),
        (200, format!("hello from the preview|{secret}\n"))
    );
    // The preview is an app that follows its app's settings.
    let r = cli.run(&["app", "show", &preview]).ok();
    keep(&r);
    assert!(
        r.stdout.contains(&format!(
            "preview of:     {app} PR #2 (follows its settings)\n"
        )),
        "{r:#?}"
    );
    assert!(!r.stdout.contains("previews:"), "{r:#?}");
    let r = cli
        .run(&["app", "update", &preview, "--replicas", "2"])
        .code(1);
    assert!(
        r.stderr.contains("follows its settings") && r.stderr.contains("409"),
        "{r:#?}"
    );
    // Removed by hand: its containers go, the PR stays listed, closed.
    let r = cli.run(&["preview", "remove", &app, "2"]).ok();
    assert!(r.stdout.contains("removed the preview of PR #2"), "{r:#?}");
    wait_for(
        "no preview containers left",
        Duration::from_secs(30),
        || p.containers(&preview).is_empty().then_some(()),
    );
    let r = cli.run(&["preview", "list", &app, "--json"]).ok();
    assert_eq!(r.json()[0]["state"], "closed", "{r:#?}");
    assert_eq!(r.json()[0]["app"], Value::Null, "{r:#?}");
    cli.run(&["app", "show", &preview]).code(3);
    cli.run(&["preview", "remove", &app, "2"]).code(3);

    // The secret appeared in no output of the client.
    for o in &outputs {
        assert!(!o.contains(secret), "the secret was printed:\n{o}");
    }

    // Delete: refused without --yes when stdin is not a terminal, then done.
    let r = cli.run(&["app", "delete", &app]).code(2);
    assert!(r.stderr.contains("--yes"), "{r:#?}");
    cli.run(&["app", "delete", &app, "--yes"]).ok();
    cli.run(&["app", "show", &app]).code(3);
    wait_for("no containers left", Duration::from_secs(30), || {
        p.containers(&app).is_empty().then_some(())
    });
}

// ------------------------------------------------------------------------------------------
// Without a container engine: settings, exit statuses, --json, HTTPS.
// ------------------------------------------------------------------------------------------

/// Rivetr with no container engine (a socket that does not exist) and its admin token.
fn start_without_engine(dir: &TestDir, launch: Launch) -> (Rivetr, String) {
    let mut rivetr = launch
        .env(
            "RIVETR_RUNTIME_SOCKET",
            "unix:///nonexistent/rivetr-no-engine.sock",
        )
        .start(dir);
    rivetr.wait_healthy();
    let token = std::fs::read_to_string(dir.path().join("data/initial-admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    (rivetr, token)
}

#[test]
fn settings_come_from_flags_then_variables_then_cli_toml() {
    let dir = TestDir::new();
    let (rivetr, token) = start_without_engine(&dir, Launch::serve());
    let url = url_of(&rivetr);
    let wrong = format!("rvt_{}", "0".repeat(64));

    // Variables.
    let cli = Client::new(&url, &token);
    let r = cli.run(&["app", "list", "--json"]).ok();
    assert_eq!(r.json(), serde_json::json!([]));

    // A flag wins over a variable (here, a wrong token in RIVETR_TOKEN).
    let cli = Client::new(&url, &wrong);
    cli.run(&["app", "list"]).code(4);
    cli.run(&["app", "list", "--token", &token]).ok();
    // Global flags go before or after the subcommand.
    cli.run(&["app", "--token", &token, "list"]).ok();

    // cli.toml under XDG_CONFIG_HOME.
    let mut cli = Client::bare();
    let xdg = cli.home.path().join("xdg");
    cli.env
        .push(("XDG_CONFIG_HOME".into(), xdg.display().to_string()));
    let text = format!("url = \"{url}\"\ntoken = \"{token}\"\n");
    let path = cli.write_config(&xdg, &text, 0o600);
    let r = cli.run(&["app", "list"]).ok();
    assert!(r.stdout.starts_with("NAME"), "{r:#?}");

    // ... refused when others can read it, without showing the token.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let r = cli.run(&["app", "list"]).code(2);
    assert!(r.stderr.contains("chmod 600"), "{r:#?}");
    assert!(!r.stderr.contains(&token) && !r.stdout.contains(&token));
    // ... but a flag and a variable that give everything do not need the file.
    let mut both = Client::new(&url, &token);
    both.env
        .push(("XDG_CONFIG_HOME".into(), xdg.display().to_string()));
    both.run(&["app", "list"]).ok();

    // The variables win over the file, key by key: URL from the file, token from RIVETR_TOKEN.
    cli.write_config(&xdg, &format!("url = \"{url}\"\n"), 0o644);
    cli.run(&["app", "list"]).code(2); // no token anywhere
    cli.env.push(("RIVETR_TOKEN".into(), token.clone()));
    cli.run(&["app", "list"]).ok();

    // A mistyped key is refused with its line.
    cli.write_config(&xdg, &format!("url = \"{url}\"\ntokne = \"x\"\n"), 0o600);
    let r = cli.run(&["app", "list"]).code(2);
    assert!(
        r.stderr.contains("line 2") && r.stderr.contains("tokne"),
        "{r:#?}"
    );

    // Without XDG_CONFIG_HOME: ~/.config/rivetr/cli.toml.
    let cli = Client::bare();
    cli.write_config(&cli.home.path().join(".config"), &text, 0o600);
    cli.run(&["app", "list"]).ok();

    // Nothing anywhere: the default URL, and no token, which is a usage error.
    let r = Client::bare().run(&["app", "list"]).code(2);
    assert!(r.stderr.contains("RIVETR_TOKEN"), "{r:#?}");
}

#[test]
fn exit_statuses_and_json_output() {
    let dir = TestDir::new();
    let (rivetr, token) = start_without_engine(&dir, Launch::serve());
    let url = url_of(&rivetr);
    let cli = Client::new(&url, &token);
    let app = "exits";

    // Create with --json: the API's answer, secret included this once.
    let r = cli
        .run(&[
            "app",
            "create",
            app,
            "--git",
            "https://git.example/exits.git",
            "--json",
        ])
        .ok();
    let created = r.json();
    assert_eq!(created["name"], app);
    assert!(created["webhook_secret"].as_str().unwrap().len() > 10);

    // 409 conflict and 422 invalid value: 1, with the API's message.
    let r = cli
        .run(&["app", "create", app, "--git", "https://git.example/x.git"])
        .code(1);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("409"),
        "{r:#?}"
    );
    let r = cli
        .run(&["app", "create", "Not_A_Label", "--git", "https://g/x.git"])
        .code(1);
    assert!(r.stderr.contains("`name`"), "{r:#?}");

    // Not found: 3.
    cli.run(&["app", "show", "nosuch"]).code(3);
    cli.run(&["env", "unset", app, "NOT_SET"]).code(3);
    cli.run(&["deployments", "nosuch"]).code(3);
    cli.run(&["rollback", "nosuch", "1"]).code(3);
    cli.run(&["logs", "nosuch"]).code(3);

    // Unauthorized: 4, the token not echoed.
    let wrong = format!("rvt_{}", "1".repeat(64));
    let r = Client::new(&url, &wrong).run(&["app", "list"]).code(4);
    assert!(r.stderr.contains("unauthorized"), "{r:#?}");
    assert!(!r.stderr.contains(&wrong));
    // A revoked token too.
    let made = Command::new(BIN)
        .args(["token", "create", "--name", "cli-revoked"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let revoked = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let r = cli.run(&["app", "list", "--token", &revoked]).ok();
    assert!(r.stdout.contains(app));
    let list: Value = serde_json::from_slice(
        &Command::new(BIN)
            .args(["token", "list", "--json"])
            .current_dir(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cli-revoked")
        .unwrap()["id"]
        .to_string();
    assert!(
        Command::new(BIN)
            .args(["token", "revoke", &id])
            .current_dir(dir.path())
            .status()
            .unwrap()
            .success()
    );
    cli.run(&["app", "list", "--token", &revoked]).code(4);

    // Unreachable: 5.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let r = cli.run(&["app", "list", "--url", &closed]).code(5);
    assert!(r.stderr.contains("cannot reach"), "{r:#?}");

    // Usage: 2 (clap's own errors too), and nothing is sent.
    cli.run(&["deploy"]).code(2);
    cli.run(&["env", "set", app, "KEY"]).code(2);
    cli.run(&["app", "create", "x"]).code(2); // neither --git nor --image
    let r = cli.run(&["app", "list", "--url", "127.0.0.1:8080"]).code(2);
    assert!(r.stderr.contains("scheme"), "{r:#?}");
    cli.run(&["app", "list", "--url", "http://u:p@127.0.0.1:1"])
        .code(2);

    // A deploy with no container engine: 503, so 1.
    let r = cli.run(&["deploy", app]).code(1);
    assert!(r.stderr.contains("503"), "{r:#?}");

    // --json of every listing parses.
    let r = cli.run(&["app", "list", "--json"]).ok();
    assert_eq!(r.json()[0]["name"], app);
    assert_eq!(
        cli.run(&["app", "show", app, "--json"]).ok().json()["name"],
        app
    );
    let r = cli
        .run(&["env", "set", app, "PLAIN", "a value", "--json"])
        .ok();
    assert_eq!(r.json()["value"], "a value");
    let r = cli
        .run(&[
            "env",
            "set",
            app,
            "HIDDEN",
            "top-secret-value",
            "--secret",
            "--json",
        ])
        .ok();
    assert_eq!(r.json()["value"], "********");
    assert!(r.stderr.contains("shell history"), "a warning: {r:#?}");
    assert!(!r.stdout.contains("top-secret-value"));
    let r = cli
        .run_stdin(
            &["env", "set", app, "FROM_STDIN", "--value-stdin", "--secret"],
            "line one\nline two\r\n",
        )
        .ok();
    assert!(!r.stdout.contains("line"), "{r:#?}");
    let r = cli.run(&["env", "list", app, "--json"]).ok();
    let vars = r.json();
    assert_eq!(vars.as_array().unwrap().len(), 3, "{vars}");
    assert!(!r.stdout.contains("top-secret-value"));
    let r = cli.run(&["env", "list", app]).ok();
    assert!(!r.stdout.contains("top-secret-value") && r.stdout.contains("a value"));
    assert_eq!(
        cli.run(&["deployments", app, "--json"]).ok().json(),
        serde_json::json!([])
    );
    cli.run(&["env", "unset", app, "PLAIN"]).ok();
    assert_eq!(
        cli.run(&["env", "list", app, "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Output to a closed pipe is not an error message.
    let mut child = cli
        .command(&["app", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn https_through_rivetrs_own_proxy_with_a_ca_file() {
    let dir = TestDir::new();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.write("localhost.pem", &cert.cert.pem());
    let key_path = dir.write("localhost.key", &cert.signing_key.serialize_pem());
    // The proxy serves the API itself on https://localhost, with that certificate.
    let launch = Launch::serve();
    let api = launch
        .get_env("RIVETR_SERVER_API_LISTEN")
        .unwrap()
        .to_owned();
    let config = dir.write(
        "rivetr.toml",
        &format!(
            "[[proxy.routes]]\nhost = \"localhost\"\nupstreams = [\"{api}\"]\ntls = \"manual\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let launch = launch.arg("--config").arg(config.to_str().unwrap());
    let (rivetr, token) = start_without_engine(&dir, launch);
    let url = format!("https://localhost:{}", rivetr.https().port());

    // Not trusted without the CA file: unreachable (a TLS error), 5.
    let cli = Client::new(&url, &token);
    let r = cli.run(&["app", "list"]).code(5);
    assert!(r.stderr.contains("TLS"), "{r:#?}");

    // With it, from the flag, the variable, or cli.toml (relative to the file).
    let ca = cert_path.display().to_string();
    cli.run(&["app", "list", "--ca-file", &ca]).ok();
    let mut with_var = Client::new(&url, &token);
    with_var.env.push(("RIVETR_CA_FILE".into(), ca.clone()));
    with_var
        .run(&["app", "create", "tls-app", "--git", "https://g/x.git"])
        .ok();
    let mut from_file = Client::bare();
    let xdg = from_file.home.path().join("xdg");
    from_file
        .env
        .push(("XDG_CONFIG_HOME".into(), xdg.display().to_string()));
    std::fs::create_dir_all(xdg.join("rivetr")).unwrap();
    std::fs::copy(&cert_path, xdg.join("rivetr/ca.pem")).unwrap();
    from_file.write_config(
        &xdg,
        &format!("url = \"{url}\"\ntoken = \"{token}\"\nca_file = \"ca.pem\"\n"),
        0o600,
    );
    let r = from_file.run(&["app", "list", "--json"]).ok();
    assert_eq!(r.json()[0]["name"], "tls-app");

    // A CA file that is not one: a configuration error, 2.
    let r = cli
        .run(&["app", "list", "--ca-file", key_path.to_str().unwrap()])
        .code(2);
    assert!(r.stderr.contains("CA file"), "{r:#?}");
}

/// A signed GitHub `pull_request` delivery to `app`, as GitHub sends it; its answer.
fn deliver_pull_request(
    rivetr: &Rivetr,
    app: &str,
    secret: &str,
    delivery: &str,
    body: &[u8],
) -> Value {
    let sig = format!("sha256={}", common::api::sign(secret, body));
    let r = common::api::request(
        rivetr.api(),
        "POST",
        &format!("/webhooks/github/{app}"),
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &sig),
            ("Content-Type", "application/json"),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
        ],
        body,
    );
    assert!(r.status < 300, "{} {}", r.status, r.body);
    r.json()
}

#[test]
fn preview_settings_and_pull_requests_through_the_cli() {
    let dir = TestDir::new();
    let (rivetr, token) = start_without_engine(&dir, Launch::serve());
    let url = url_of(&rivetr);
    let cli = Client::new(&url, &token);
    let app = "web";

    // Previews on from the creation: the details show the defaults.
    let r = cli
        .run(&[
            "app",
            "create",
            app,
            "--git",
            "https://git.example/web.git",
            "--domain",
            "web.example",
            "--previews",
            "on",
        ])
        .ok();
    let line = |r: &Run, key: &str| -> String {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key}: line: {r:#?}"))
            .split_once(':')
            .unwrap()
            .1
            .trim()
            .to_owned()
    };
    assert_eq!(
        line(&r, "previews"),
        "on, at most 5 at once, forks no, drafts no"
    );
    assert_eq!(line(&r, "preview domain"), "pr-{number}.{domain}");
    assert_eq!(line(&r, "preview env"), "-");

    // Every setting through `app update`, the variables' values from the client's own
    // environment; they show nowhere, only their names do.
    let secret = "preview-secret-value-4d1c";
    let mut with_env = Client::new(&url, &token);
    with_env.env.push(("PREVIEW_API_KEY".into(), secret.into()));
    with_env
        .env
        .push(("API_URL".into(), "https://staging.example".into()));
    let r = with_env
        .run(&[
            "app",
            "update",
            app,
            "--preview-domain-template",
            "{number}.pr.example",
            "--preview-limit",
            "3",
            "--preview-forks",
            "on",
            "--preview-drafts",
            "on",
            "--preview-env",
            "PREVIEW_API_KEY",
            "--preview-env",
            "API_URL",
        ])
        .ok();
    assert_eq!(
        line(&r, "previews"),
        "on, at most 3 at once, forks yes, drafts yes"
    );
    assert_eq!(line(&r, "preview domain"), "{number}.pr.example");
    assert_eq!(line(&r, "preview env"), "API_URL, PREVIEW_API_KEY");
    let shown = cli.run(&["app", "show", app]).ok();
    for key in ["previews", "preview domain", "preview env"] {
        assert_eq!(line(&shown, key), line(&r, key), "{key}");
    }
    assert!(!shown.stdout.contains("preview of"), "{shown:#?}");
    let shown = cli.run(&["app", "show", app, "--json"]).ok();
    assert_eq!(
        shown.json()["previews"],
        serde_json::json!({
            "enabled": true, "domain_template": "{number}.pr.example", "limit": 3,
            "forks": true, "drafts": true, "env_keys": ["API_URL", "PREVIEW_API_KEY"],
        })
    );
    assert_eq!(shown.json()["preview_of"], Value::Null);
    assert!(!r.stdout.contains(secret) && !shown.stdout.contains(secret));
    // Settings not given are left as they are; --json is the API's app.
    let r = cli
        .run(&["app", "update", app, "--previews", "off", "--json"])
        .ok();
    let previews = &r.json()["previews"];
    assert_eq!(previews["enabled"], false);
    assert_eq!(previews["limit"], 3);
    assert_eq!(previews["env_keys"].as_array().unwrap().len(), 2);
    let r = cli.run(&["app", "show", app]).ok();
    assert!(line(&r, "previews").starts_with("off ("), "{r:#?}");

    // Refused before anything is sent (2): a name not set in the environment, a value in
    // the arguments (not echoed), a flag's bad value, nothing to change.
    let r = cli
        .run(&["app", "update", app, "--preview-env", "NOT_SET_ANYWHERE"])
        .code(2);
    assert!(r.stderr.contains("NOT_SET_ANYWHERE is not set"), "{r:#?}");
    let r = cli
        .run(&["app", "update", app, "--preview-env", "TOKEN=hunter2"])
        .code(2);
    assert!(!r.stderr.contains("hunter2"), "{r:#?}");
    cli.run(&["app", "update", app, "--previews", "yes"])
        .code(2);
    let r = cli.run(&["app", "update", app]).code(2);
    assert!(r.stderr.contains("nothing to change"), "{r:#?}");
    let keys = cli.run(&["app", "show", app, "--json"]).ok().json()["previews"]["env_keys"].clone();
    assert_eq!(keys, serde_json::json!(["API_URL", "PREVIEW_API_KEY"]));
    // Refused by the server (1), with its message naming the field.
    let r = cli
        .run(&["app", "update", app, "--preview-limit", "0"])
        .code(1);
    assert!(r.stderr.contains("previews.limit"), "{r:#?}");
    let r = cli
        .run(&[
            "app",
            "update",
            app,
            "--preview-domain-template",
            "pr.example",
        ])
        .code(1);
    assert!(
        r.stderr.contains("previews.domain_template") && r.stderr.contains("{number}"),
        "{r:#?}"
    );
    cli.run(&["app", "update", "nosuch", "--previews", "on"])
        .code(3);

    // --clear-preview-env removes the variables, and nothing else.
    let r = cli.run(&["app", "update", app, "--clear-preview-env"]).ok();
    assert_eq!(line(&r, "preview env"), "-");
    assert_eq!(line(&r, "preview domain"), "{number}.pr.example");

    // No pull request heard of: an empty table, [] in JSON.
    let r = cli.run(&["preview", "list", app]).ok();
    assert_eq!(
        r.stdout,
        "PR  STATE  BRANCH  COMMIT  PREVIEW  HOST  DEPLOYMENT  REFUSED\n"
    );
    assert_eq!(
        cli.run(&["preview", "list", app, "--json"]).ok().json(),
        serde_json::json!([])
    );
    cli.run(&["preview", "list", "nosuch"]).code(3);
    // Removing a preview there is not: 3, with the API's message.
    let r = cli.run(&["preview", "remove", app, "7"]).code(3);
    assert!(
        r.stderr.contains("PR #7 of app `web` has no preview"),
        "{r:#?}"
    );
    assert!(r.stdout.is_empty(), "{r:#?}");
    cli.run(&["preview", "remove", app, "seven"]).code(2);

    // An image app with previews on: a pull request is refused one, and the list says why.
    let r = cli
        .run(&[
            "app",
            "create",
            "img",
            "--image",
            "docker.io/library/nginx:1.27",
            "--domain",
            "img.example",
            "--previews",
            "on",
            "--json",
        ])
        .ok();
    let webhook_secret = r.json()["webhook_secret"].as_str().unwrap().to_owned();
    let answer = deliver_pull_request(
        &rivetr,
        "img",
        &webhook_secret,
        "pr-delivery-1",
        &common::api::fixture("github/pull_request.opened.json"),
    );
    assert_eq!(answer["outcome"], "refused", "{answer}");
    let r = cli.run(&["preview", "list", "img"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:#?}");
    assert!(lines[0].ends_with("REFUSED"), "{r:#?}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["#2", "open", "changes", "ec26c3e57ca3", "-", "-", "-"]
    );
    assert!(
        lines[1].ends_with(
            "app `img` runs an image, not a git repository; a preview builds the PR's code"
        ),
        "{r:#?}"
    );
    let r = cli.run(&["preview", "list", "img", "--json"]).ok();
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["number"], 2);
    assert_eq!(list[0]["state"], "open");
    assert_eq!(list[0]["app"], Value::Null);
    assert!(
        list[0]["refused"]
            .as_str()
            .unwrap()
            .contains("runs an image"),
        "{list}"
    );
    // A refused PR has no preview to remove.
    let r = cli.run(&["preview", "remove", "img", "2"]).code(3);
    assert!(
        r.stderr.contains("PR #2 of app `img` has no preview"),
        "{r:#?}"
    );
}

#[test]
fn placement_flags_and_node_commands_through_the_cli() {
    let dir = TestDir::new();
    let (rivetr, token) = start_without_engine(&dir, Launch::serve());
    let url = url_of(&rivetr);
    let cli = Client::new(&url, &token);
    let app = "placed";
    let line = |r: &Run, key: &str| -> Option<String> {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
    };

    // No swarm: the node commands fail (1) with the API's message; nothing on stdout.
    for args in [
        &["node", "list"][..],
        &["node", "list", "--json"],
        &["node", "drain", "some-node"],
        &["node", "activate", "some-node"],
    ] {
        let r = cli.run(args).code(1);
        assert!(
            r.stderr.contains("not running on a swarm") && r.stderr.contains("409"),
            "{args:?}: {r:#?}"
        );
        assert!(r.stdout.is_empty(), "{args:?}: {r:#?}");
    }
    cli.run(&["node", "drain"]).code(2);

    // Created with a placement; --json is the API's app.
    let r = cli
        .run(&[
            "app",
            "create",
            app,
            "--image",
            "docker.io/library/nginx:1.27",
            "--constraint",
            "node.role==worker",
            "--constraint",
            "node.labels.zone!=eu-3",
            "--max-per-node",
            "1",
            "--json",
        ])
        .ok();
    assert_eq!(
        r.json()["placement"],
        serde_json::json!({
            "constraints": ["node.role==worker", "node.labels.zone!=eu-3"],
            "max_per_node": 1, "spread": [],
        })
    );
    let r = cli.run(&["app", "show", app]).ok();
    assert_eq!(
        line(&r, "constraints").as_deref(),
        Some("node.role==worker, node.labels.zone!=eu-3"),
        "{r:#?}"
    );
    assert_eq!(line(&r, "max per node").as_deref(), Some("1"), "{r:#?}");
    assert_eq!(line(&r, "spread"), None, "{r:#?}");

    // An update changes only the placement options given.
    let r = cli
        .run(&[
            "app",
            "update",
            app,
            "--spread",
            "node.labels.zone",
            "--json",
        ])
        .ok();
    assert_eq!(
        r.json()["placement"],
        serde_json::json!({
            "constraints": ["node.role==worker", "node.labels.zone!=eu-3"],
            "max_per_node": 1, "spread": ["node.labels.zone"],
        })
    );
    let r = cli
        .run(&[
            "app",
            "update",
            app,
            "--constraint",
            "engine.labels.disk==ssd",
        ])
        .ok();
    assert_eq!(
        line(&r, "constraints").as_deref(),
        Some("engine.labels.disk==ssd")
    );
    assert_eq!(line(&r, "spread").as_deref(), Some("node.labels.zone"));

    // A bad value: 1, the API naming the field; nothing changed.
    let r = cli
        .run(&["app", "update", app, "--constraint", "zone==eu"])
        .code(1);
    assert!(
        r.stderr.contains("placement.constraints[0]") && r.stderr.contains("422"),
        "{r:#?}"
    );
    let r = cli
        .run(&["app", "update", app, "--max-per-node", "1001"])
        .code(1);
    assert!(r.stderr.contains("placement.max_per_node"), "{r:#?}");
    // --clear-placement removes it, and takes no other placement option.
    cli.run(&[
        "app",
        "update",
        app,
        "--clear-placement",
        "--spread",
        "node.labels.zone",
    ])
    .code(2);
    let r = cli.run(&["app", "update", app, "--clear-placement"]).ok();
    assert_eq!(line(&r, "constraints"), None, "{r:#?}");
    assert_eq!(line(&r, "max per node"), None, "{r:#?}");
    assert_eq!(
        cli.run(&["app", "show", app, "--json"]).ok().json()["placement"],
        serde_json::json!({"constraints": [], "max_per_node": 0, "spread": []})
    );
    // An unknown app is 3 here too (the current placement is read first).
    cli.run(&["app", "update", "nosuch", "--max-per-node", "2"])
        .code(3);
}

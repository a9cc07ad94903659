//! Human-readable output: aligned tables and `key: value` details. Pure functions from the
//! API's answers to text, so they are tested without a server. Values that could break a
//! table (newlines, tabs, control characters) are escaped.

use super::types::{App, Database, Deployment, EnvVar, KnownHost, LogLine, Node, PullRequest};

/// What a secret value is printed as. The API already masks secret values; the client does
/// not rely on that alone.
const SECRET_SHOWN_AS: &str = "********";

/// Columns separated by two spaces, each as wide as its widest cell; the last one unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A value on one line: control characters shown as escapes.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The first 12 hex digits of a commit id.
pub fn short_sha(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// `2025-01-02T03:04:05.678Z` as `2025-01-02 03:04:05`: enough for a table.
pub fn short_time(t: &str) -> String {
    let t = t.replace('T', " ");
    let t = t.split('.').next().unwrap_or(&t);
    t.trim_end_matches('Z').to_owned()
}

fn app_state(a: &App) -> String {
    match (a.stopped, a.running_deployment) {
        (true, _) => "stopped".to_owned(),
        (false, Some(id)) => format!("running #{id}"),
        (false, None) => "not deployed".to_owned(),
    }
}

fn source(a: &App) -> String {
    match (&a.git_url, &a.image) {
        (Some(url), _) => url.clone(),
        (None, Some(image)) => format!("image {image}"),
        (None, None) => "-".to_owned(),
    }
}

pub fn apps(list: &[App]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                app_state(a),
                if a.image.is_some() {
                    "-".to_owned()
                } else {
                    a.branch.clone()
                },
                if a.domains.is_empty() {
                    "-".to_owned()
                } else {
                    a.domains.join(",")
                },
                source(a),
            ]
        })
        .collect();
    table(&["NAME", "STATE", "BRANCH", "DOMAINS", "SOURCE"], &rows)
}

/// Every detail of one app. The webhook secret, when the answer has one (creation), is the
/// caller's to print.
pub fn app(a: &App) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("name", a.name.clone()),
        ("state", app_state(a)),
        ("source", source(a)),
    ];
    if a.git_url.is_some() {
        lines.push(("branch", a.branch.clone()));
        if a.git_credential {
            lines.push(("git credential", "stored encrypted".to_owned()));
        }
        if let Some(fingerprint) = &a.deploy_key {
            lines.push(("deploy key", fingerprint.clone()));
        }
    }
    lines.push(("port", a.port.to_string()));
    lines.push((
        "domains",
        if a.domains.is_empty() {
            "-".to_owned()
        } else {
            a.domains.join(", ")
        },
    ));
    let h = &a.healthcheck;
    lines.push((
        "health check",
        format!(
            "GET {} every {} ms, {} ms timeout, {} attempts",
            h.path, h.interval_ms, h.timeout_ms, h.retries
        ),
    ));
    lines.push(("replicas", a.replicas.to_string()));
    if let Some(p) = a.placement.as_ref().filter(|p| !p.is_empty()) {
        if !p.constraints.is_empty() {
            lines.push(("constraints", p.constraints.join(", ")));
        }
        if p.max_per_node > 0 {
            lines.push(("max per node", p.max_per_node.to_string()));
        }
        if !p.spread.is_empty() {
            lines.push(("spread", p.spread.join(", ")));
        }
    }
    lines.push((
        "memory",
        a.resources
            .memory_bytes
            .map_or_else(|| "no limit".to_owned(), |b| format!("{b} bytes")),
    ));
    lines.push((
        "cpus",
        a.resources
            .cpus
            .map_or_else(|| "no limit".to_owned(), |c| c.to_string()),
    ));
    if let Some(of) = &a.preview_of {
        lines.push((
            "preview of",
            format!("{} PR #{} (follows its settings)", of.app, of.number),
        ));
    } else if let Some(p) = &a.previews {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        lines.push((
            "previews",
            if p.enabled {
                format!(
                    "on, at most {} at once, forks {}, drafts {}",
                    p.limit,
                    yes_no(p.forks),
                    yes_no(p.drafts)
                )
            } else {
                format!(
                    "off (at most {}, forks {}, drafts {} when on)",
                    p.limit,
                    yes_no(p.forks),
                    yes_no(p.drafts)
                )
            },
        ));
        lines.push(("preview domain", p.domain_template.clone()));
        lines.push((
            "preview env",
            if p.env_keys.is_empty() {
                "-".to_owned()
            } else {
                p.env_keys.join(", ")
            },
        ));
    }
    if let Some(w) = &a.webhooks {
        lines.push(("webhook github", w.github.clone()));
        lines.push(("webhook gitlab", w.gitlab.clone()));
        lines.push(("webhook gitea", w.gitea.clone()));
    }
    lines.push(("created", short_time(&a.created_at)));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{:<width$} {}\n", format!("{k}:"), one_line(&v)));
    }
    out
}

pub fn databases(list: &[Database]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                format!("{} {}", d.engine, d.version),
                d.status.clone(),
                d.volume.clone(),
            ]
        })
        .collect();
    table(&["NAME", "ENGINE", "STATUS", "VOLUME"], &rows)
}

/// A database's backups, newest first.
pub fn backups(list: &[crate::client::types::Backup]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.status.clone(),
                b.size_bytes
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                b.sha256
                    .as_deref()
                    .map(|s| s[..s.len().min(12)].to_owned())
                    .unwrap_or_else(|| "-".into()),
                b.started_at.clone(),
                b.schedule_id
                    .map(|s| format!("schedule {s}"))
                    .unwrap_or_else(|| "asked".into()),
                b.error.as_deref().map(one_line).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "BYTES", "SHA256", "STARTED", "BY", "ERROR"],
        &rows,
    )
}

/// One backup's outcome.
pub fn backup(b: &crate::client::types::Backup) -> String {
    let mut text = format!("backup {} of {}: {}\n", b.id, b.database, b.status);
    if let Some(size) = b.size_bytes {
        text.push_str(&format!("size:   {size} bytes\n"));
    }
    if let Some(sha) = &b.sha256 {
        text.push_str(&format!("sha256: {sha}\n"));
    }
    text.push_str(&format!("file:   {}\n", b.location));
    if let Some(e) = &b.error {
        text.push_str(&format!("error:  {}\n", one_line(e)));
    }
    text
}

/// Every detail of one database (never its password: apps get it through a link).
pub fn database(d: &Database) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("name", d.name.clone()),
        ("engine", format!("{} {}", d.engine, d.version)),
        ("image", d.image.clone()),
        ("status", d.status.clone()),
    ];
    if let Some(user) = &d.username {
        lines.push(("user", user.clone()));
    }
    if let Some(db) = &d.database {
        lines.push(("database", db.clone()));
    }
    lines.push((
        "port",
        match (&d.public_address, d.public_port) {
            (Some(address), _) => format!("{} (public on {address})", d.port),
            (None, Some(p)) => format!("{} (public port {p} not open: see the log)", d.port),
            (None, None) => format!("{} (not published)", d.port),
        },
    ));
    lines.push(("volume", d.volume.clone()));
    lines.push(("network", d.network.clone()));
    lines.push((
        "memory",
        d.memory_bytes
            .map_or_else(|| "no limit".to_owned(), |b| format!("{b} bytes")),
    ));
    lines.push((
        "cpus",
        d.cpus
            .map_or_else(|| "no limit".to_owned(), |c| c.to_string()),
    ));
    lines.push(("created", short_time(&d.created_at)));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{:<width$} {}\n", format!("{k}:"), one_line(&v)));
    }
    out
}

pub fn env(vars: &[EnvVar]) -> String {
    let rows: Vec<Vec<String>> = vars
        .iter()
        .map(|v| {
            vec![
                v.key.clone(),
                if v.secret {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                if v.updated_at.is_empty() {
                    "-".to_owned()
                } else {
                    short_time(&v.updated_at)
                },
                // The API masks secret values; never trust that alone.
                if v.secret {
                    SECRET_SHOWN_AS.to_owned()
                } else {
                    one_line(&v.value)
                },
            ]
        })
        .collect();
    table(&["KEY", "SECRET", "UPDATED", "VALUE"], &rows)
}

/// `rivetr node list`: the swarm's nodes, each with the tasks of Rivetr's apps on it as
/// `app/deployment state`.
pub fn nodes(list: &[Node]) -> String {
    let dash_if_empty = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            let labels: Vec<String> = n
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", one_line(k), one_line(v)))
                .collect();
            let tasks: Vec<String> = n
                .tasks
                .iter()
                .map(|t| {
                    format!(
                        "{}/{} {}",
                        one_line(&t.app),
                        t.deployment,
                        one_line(&t.state)
                    )
                })
                .collect();
            vec![
                one_line(&n.id.chars().take(12).collect::<String>()),
                one_line(&n.hostname),
                one_line(&n.role),
                one_line(&n.state),
                one_line(&n.availability),
                n.addr.as_deref().map_or_else(|| "-".to_owned(), one_line),
                dash_if_empty(labels.join(",")),
                dash_if_empty(tasks.join(", ")),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "HOSTNAME",
            "ROLE",
            "STATE",
            "AVAILABILITY",
            "ADDRESS",
            "LABELS",
            "TASKS",
        ],
        &rows,
    )
}

/// One node after a change of its availability.
pub fn node(n: &Node) -> String {
    format!(
        "node {} ({}): {}, {}\n",
        one_line(&n.id.chars().take(12).collect::<String>()),
        one_line(&n.hostname),
        one_line(&n.availability),
        one_line(&n.state)
    )
}

/// The SSH host keys an app's clones recorded.
pub fn known_hosts(hosts: &[KnownHost]) -> String {
    if hosts.is_empty() {
        return "no SSH host key recorded yet; the first SSH clone records the server's\n"
            .to_owned();
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                one_line(&h.host),
                one_line(&h.key_type),
                one_line(&h.fingerprint),
            ]
        })
        .collect();
    table(&["HOST", "TYPE", "FINGERPRINT"], &rows)
}

/// `rivetr preview list`: an app's pull requests, newest first, with their previews; the last
/// column says why a PR got no preview.
pub fn pull_requests(list: &[PullRequest]) -> String {
    let dash = |v: Option<&String>| v.map_or_else(|| "-".to_owned(), |s| one_line(s));
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|pr| {
            let deployment = match (&pr.deployment, pr.running_deployment) {
                (Some(d), Some(running)) if running != d.id => {
                    format!("#{} {} (#{running} serves)", d.id, d.status)
                }
                (Some(d), _) => format!("#{} {}", d.id, d.status),
                (None, _) => "-".to_owned(),
            };
            vec![
                format!("#{}", pr.number),
                one_line(&pr.state),
                one_line(&pr.head_ref),
                short_sha(&pr.head_sha),
                dash(pr.app.as_ref()),
                dash(pr.host.as_ref()),
                deployment,
                pr.refused.as_deref().map(one_line).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "PR",
            "STATE",
            "BRANCH",
            "COMMIT",
            "PREVIEW",
            "HOST",
            "DEPLOYMENT",
            "REFUSED",
        ],
        &rows,
    )
}

/// What a deployment is about, for the last column: why it failed, what it rolled back to,
/// or its commit's subject.
fn detail(d: &Deployment) -> String {
    if let Some(reason) = d.reason.as_deref().filter(|r| !r.is_empty()) {
        return one_line(reason);
    }
    let mut parts = Vec::new();
    if let Some(to) = d.rollback_of {
        parts.push(format!("rollback to #{to}"));
    }
    if let Some(subject) = &d.commit_subject {
        parts.push(one_line(subject));
    }
    parts.join(": ")
}

pub fn deployments(list: &[Deployment]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.status.clone(),
                d.commit_sha
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), short_sha),
                d.trigger.clone(),
                short_time(&d.queued_at),
                detail(d),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "COMMIT", "TRIGGER", "QUEUED", "DETAIL"],
        &rows,
    )
}

/// One line saying where a deployment stands, such as `deployment 7 of web: running
/// (commit 0123456789ab)`.
pub fn deployment_line(d: &Deployment) -> String {
    let mut s = format!("deployment {} of {}: {}", d.id, d.app, d.status);
    if let Some(sha) = &d.commit_sha {
        s.push_str(&format!(" (commit {})", short_sha(sha)));
    }
    if let Some(to) = d.rollback_of {
        s.push_str(&format!(", rollback to #{to}"));
    }
    if let Some(reason) = d.reason.as_deref().filter(|r| !r.is_empty()) {
        s.push_str(&format!(": {}", one_line(reason)));
    }
    s
}

/// A deployment log line as printed while following: `[stream] line`.
pub fn log_line(l: &LogLine) -> String {
    format!("[{}] {}", l.stream, l.line.trim_end_matches(['\r', '\n']))
}

/// `rivetr app stats`: the containers' use, then the traffic.
pub fn app_stats(s: &serde_json::Value) -> String {
    let mut out = String::new();
    let mib = |b: &serde_json::Value| {
        b.as_f64()
            .map(|b| format!("{:.1} MiB", b / 1048576.0))
            .unwrap_or_else(|| "-".to_owned())
    };
    match s["unavailable"].as_str() {
        Some(why) => out.push_str(&format!("containers: not reported ({why})\n")),
        None => {
            let rows: Vec<Vec<String>> = s["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    vec![
                        c["name"].as_str().unwrap_or("").to_owned(),
                        format!("{:.2}", c["cpu_seconds"].as_f64().unwrap_or(0.0)),
                        mib(&c["memory_bytes"]),
                        mib(&c["memory_limit_bytes"]),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["CONTAINER", "CPU SECONDS", "MEMORY", "LIMIT"],
                &rows,
            ));
        }
    }
    let p = &s["proxy"];
    let classes: Vec<String> = p["by_class"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let ms = |v: &serde_json::Value| {
        v.as_f64()
            .map(|s| format!("{:.1} ms", s * 1000.0))
            .unwrap_or_else(|| "-".to_owned())
    };
    out.push_str(&format!(
        "requests: {} ({})\nmean time to headers: {}, p95 under: {}\nreceived: {}, sent: {}\n",
        p["requests"].as_u64().unwrap_or(0),
        if classes.is_empty() {
            "none answered".to_owned()
        } else {
            classes.join(", ")
        },
        ms(&p["mean_duration_seconds"]),
        ms(&p["p95_duration_seconds"]),
        mib(&p["received_bytes"]),
        mib(&p["sent_bytes"]),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_json() -> serde_json::Value {
        serde_json::json!({
            "name": "web", "git_url": "https://git.example/web.git", "git_credential": true,
            "branch": "main", "image": null, "port": 8080, "domains": ["web.example"],
            "healthcheck": {"path": "/", "interval_ms": 500, "timeout_ms": 2000, "retries": 60},
            "resources": {"memory_bytes": null, "cpus": 0.5}, "replicas": 1, "stopped": false,
            "running_deployment": 4,
            "webhooks": {"github": "http://h/webhooks/github/web", "gitlab": "g", "gitea": "t"},
            "created_at": "2025-01-02T03:04:05.678Z", "updated_at": "x", "new_field": 1
        })
    }

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long cell".into(), "x".into()],
                vec!["y".into(), "".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong cell  x\ny\n");
    }

    #[test]
    fn app_views() {
        let a: App = serde_json::from_value(app_json()).unwrap();
        let list = apps(std::slice::from_ref(&a));
        let mut lines = list.lines();
        assert!(lines.next().unwrap().starts_with("NAME"));
        let row = lines.next().unwrap();
        for want in [
            "web",
            "running #4",
            "main",
            "web.example",
            "https://git.example",
        ] {
            assert!(row.contains(want), "{row}");
        }
        let details = app(&a);
        assert!(details.contains("health check:"), "{details}");
        assert!(details.contains("GET / every 500 ms"), "{details}");
        assert!(details.contains("git credential:"), "{details}");
        assert!(
            details.contains("created:        2025-01-02 03:04:05"),
            "{details}"
        );
        assert!(
            details.contains("http://h/webhooks/github/web"),
            "{details}"
        );
    }

    #[test]
    fn app_placement_shows_only_when_set() {
        let details = app(&serde_json::from_value(app_json()).unwrap());
        assert!(!details.contains("constraints:"), "{details}");
        let mut v = app_json();
        v["placement"] = serde_json::json!({"constraints": [], "max_per_node": 0, "spread": []});
        let details = app(&serde_json::from_value(v.clone()).unwrap());
        assert!(
            !details.contains("constraints:") && !details.contains("per node"),
            "{details}"
        );
        v["placement"] = serde_json::json!({
            "constraints": ["node.role==worker", "node.labels.zone!=eu-3"],
            "max_per_node": 2, "spread": ["node.labels.zone"]
        });
        let details = app(&serde_json::from_value(v).unwrap());
        for want in [
            "constraints:    node.role==worker, node.labels.zone!=eu-3\n",
            "max per node:   2\n",
            "spread:         node.labels.zone\n",
        ] {
            assert!(details.contains(want), "{want}: {details}");
        }
    }

    #[test]
    fn node_table() {
        let list: crate::client::types::NodeList = serde_json::from_value(serde_json::json!({
            "nodes": [
                {
                    "id": "abcdefghijklmnopqrstuvwxy", "hostname": "manager", "role": "manager",
                    "state": "ready", "availability": "active", "addr": "10.0.0.1",
                    "labels": {}, "engine_version": "26.1.5", "leader": true, "tasks": []
                },
                {
                    "id": "zyxwvutsrqponmlkjihgfedcb", "hostname": "worker-1", "role": "worker",
                    "state": "ready", "availability": "drain", "addr": null,
                    "labels": {"zone": "eu", "disk": "ssd"}, "engine_version": "26.1.5",
                    "leader": false, "new_field": 1,
                    "tasks": [
                        {"app": "web", "deployment": 12, "id": "t1", "state": "running",
                         "desired_state": "running", "endpoint": "10.0.0.2:30001", "error": null},
                        {"app": "api", "deployment": 3, "id": "t2", "state": "preparing",
                         "desired_state": "running", "endpoint": null, "error": null}
                    ]
                }
            ]
        }))
        .unwrap();
        let t = nodes(&list.nodes);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "ID",
                "HOSTNAME",
                "ROLE",
                "STATE",
                "AVAILABILITY",
                "ADDRESS",
                "LABELS",
                "TASKS"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "abcdefghijkl",
                "manager",
                "manager",
                "ready",
                "active",
                "10.0.0.1",
                "-",
                "-"
            ]
        );
        assert_eq!(
            lines[2],
            "zyxwvutsrqpo  worker-1  worker   ready  drain         -         disk=ssd,zone=eu  web/12 running, api/3 preparing"
        );
        assert_eq!(
            node(&list.nodes[1]),
            "node zyxwvutsrqpo (worker-1): drain, ready\n"
        );
    }

    #[test]
    fn app_preview_settings_and_preview_of() {
        let mut v = app_json();
        v["previews"] = serde_json::json!({
            "enabled": true, "domain_template": "pr-{number}.{domain}", "limit": 3,
            "forks": false, "drafts": true, "env_keys": ["API_URL", "DEBUG"]
        });
        v["preview_of"] = serde_json::Value::Null;
        let details = app(&serde_json::from_value(v.clone()).unwrap());
        assert!(
            details.contains("previews:       on, at most 3 at once, forks no, drafts yes\n"),
            "{details}"
        );
        assert!(
            details.contains("preview domain: pr-{number}.{domain}\n"),
            "{details}"
        );
        assert!(
            details.contains("preview env:    API_URL, DEBUG\n"),
            "{details}"
        );
        assert!(!details.contains("preview of"), "{details}");

        v["previews"]["enabled"] = false.into();
        v["previews"]["env_keys"] = serde_json::json!([]);
        let details = app(&serde_json::from_value(v.clone()).unwrap());
        assert!(details.contains("previews:       off ("), "{details}");
        assert!(details.contains("preview env:    -\n"), "{details}");

        v["preview_of"] = serde_json::json!({"app": "web", "number": 7});
        let details = app(&serde_json::from_value(v).unwrap());
        assert!(
            details.contains("preview of:     web PR #7 (follows its settings)\n"),
            "{details}"
        );
        assert!(!details.contains("previews:"), "{details}");

        // A server from before previews: nothing about them.
        let details = app(&serde_json::from_value(app_json()).unwrap());
        assert!(!details.contains("preview"), "{details}");
    }

    #[test]
    fn pull_request_table() {
        let list: Vec<PullRequest> = serde_json::from_value(serde_json::json!([
            {"number": 12, "state": "open", "head_ref": "feature/x",
             "head_sha": "0123456789abcdef0123456789abcdef01234567", "refused": null,
             "app": "web-pr-12", "host": "pr-12.web.example",
             "deployment": {"id": 9, "status": "building", "queued_at": "t", "finished_at": null},
             "running_deployment": 8, "updated_at": "t"},
            {"number": 11, "state": "open", "head_ref": "fork\nbranch",
             "head_sha": "fedcba9876543210fedcba9876543210fedcba98",
             "refused": "a fork: previews of forks are off", "app": null, "host": null,
             "deployment": null, "running_deployment": null, "updated_at": "t"},
            {"number": 10, "state": "closed", "head_ref": "old",
             "head_sha": "1111111111111111111111111111111111111111", "refused": null,
             "app": null, "host": null, "deployment": null, "running_deployment": null,
             "updated_at": "t"}
        ]))
        .unwrap();
        let t = pull_requests(&list);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("PR   STATE   BRANCH") && lines[0].ends_with("REFUSED"),
            "{t}"
        );
        for want in [
            "#12",
            "feature/x",
            "0123456789ab ",
            "web-pr-12",
            "pr-12.web.example",
            "#9 building (#8 serves)",
        ] {
            assert!(lines[1].contains(want), "{want}: {t}");
        }
        assert!(lines[2].contains("fork\\nbranch"), "{t}");
        assert!(
            lines[2].ends_with("a fork: previews of forks are off"),
            "{t}"
        );
        assert!(lines[3].starts_with("#10  closed"), "{t}");
        assert_eq!(
            pull_requests(&[]),
            "PR  STATE  BRANCH  COMMIT  PREVIEW  HOST  DEPLOYMENT  REFUSED\n"
        );
    }

    #[test]
    fn env_never_shows_a_secret_even_if_the_server_sent_it() {
        let vars: Vec<EnvVar> = serde_json::from_value(serde_json::json!([
            {"key": "PLAIN", "value": "a\nb", "secret": false, "updated_at": ""},
            {"key": "TOKEN", "value": "leaked-value", "secret": true, "updated_at": "2025-01-01T00:00:00Z"},
        ]))
        .unwrap();
        let t = env(&vars);
        assert!(t.contains("a\\nb"), "{t}");
        assert!(!t.contains("leaked-value"), "{t}");
        assert!(t.contains("********"), "{t}");
    }

    #[test]
    fn deployment_views() {
        let d: Vec<Deployment> = serde_json::from_value(serde_json::json!([
            {"id": 3, "app": "web", "status": "failed", "trigger": "api", "ref": null,
             "commit_sha": "0123456789abcdef", "commit_subject": "broken", "reason": "build failed at step 2",
             "rollback_of": null, "queued_at": "2025-01-02T03:04:05Z", "finished_at": null},
            {"id": 2, "app": "web", "status": "running", "trigger": "rollback", "ref": null,
             "commit_sha": null, "commit_subject": "first", "reason": null,
             "rollback_of": 1, "queued_at": "2025-01-02T03:04:05Z", "finished_at": null}
        ]))
        .unwrap();
        let t = deployments(&d);
        assert!(t.contains("0123456789ab "), "{t}");
        assert!(t.contains("build failed at step 2"), "{t}");
        assert!(t.contains("rollback to #1: first"), "{t}");
        assert_eq!(
            deployment_line(&d[0]),
            "deployment 3 of web: failed (commit 0123456789ab): build failed at step 2"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(one_line("a\tb\u{1b}[1m\\"), "a\\tb\\u{1b}[1m\\\\");
        assert_eq!(short_time("2025-01-02T03:04:05Z"), "2025-01-02 03:04:05");
    }
}

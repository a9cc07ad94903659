//! `rivetr notify ...`: notification channels and their deliveries, through
//! `/api/notifications`. Secrets (a channel's URL, an SMTP password, a signing secret) come
//! from environment variables, never from flags, which other users see in `ps`.

use std::io::Write;

use serde_json::{Value, json};

use super::commands::raw;
use super::http::segment;
use super::{Client, ClientError, format};
use crate::cli::NotifyCommand;

fn secret_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

fn channel_path(name: &str) -> String {
    format!("/api/notifications/{}", segment(name))
}

pub async fn run(
    client: &Client,
    command: NotifyCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        NotifyCommand::Add {
            name,
            kind,
            events,
            smtp_host,
            smtp_port,
            security,
            username,
            from,
            to,
            ca_file,
        } => {
            let mut body = json!({"name": name, "kind": kind, "events": events});
            if kind == "email" {
                let ca = match ca_file {
                    Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                        ClientError::Usage(format!("--ca-file {}: {e}", path.display()))
                    })?),
                    None => None,
                };
                body["email"] = json!({
                    "host": smtp_host.unwrap_or_default(), "port": smtp_port,
                    "security": security, "username": username,
                    "from": from.unwrap_or_default(), "to": to, "ca_certificate": ca,
                });
                if let Some(password) = secret_env("RIVETR_SMTP_PASSWORD") {
                    body["password"] = json!(password);
                }
            } else {
                let url = secret_env("RIVETR_NOTIFY_URL").ok_or_else(|| {
                    ClientError::Usage(format!(
                        "set RIVETR_NOTIFY_URL to the {kind} channel's URL (it is a secret, so \
                         not a flag)"
                    ))
                })?;
                body["url"] = json!(url);
                if let Some(secret) = secret_env("RIVETR_NOTIFY_SIGNING_SECRET") {
                    body["signing_secret"] = json!(secret);
                }
            }
            let bytes = client.post("/api/notifications", Some(&body)).await?;
            if json {
                return raw(out, &bytes);
            }
            let added: Value = client.parse(&bytes)?;
            writeln!(
                out,
                "added {} channel {name}",
                added["kind"].as_str().unwrap_or("")
            )?;
            if let Some(secret) = added["signing_secret"].as_str() {
                writeln!(out, "signing secret: {secret}")?;
                eprintln!(
                    "The signing secret is shown only now: the receiver checks \
                     X-Rivetr-Signature-256 (sha256=HMAC-SHA256 of the body) with it."
                );
            }
            Ok(())
        }
        NotifyCommand::List => {
            let bytes = client.get("/api/notifications").await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Value> = client.parse(&bytes)?;
            let rows: Vec<Vec<String>> = list.iter().map(channel_row).collect();
            write!(
                out,
                "{}",
                format::table(&["NAME", "KIND", "TARGET", "EVENTS", "ENABLED"], &rows)
            )?;
            Ok(())
        }
        NotifyCommand::Update {
            name,
            events,
            enable,
            disable,
            new_url,
        } => {
            let mut body = json!({});
            if let Some(events) = events {
                let all = events.iter().any(|e| e == "all");
                body["events"] = json!(if all { Vec::new() } else { events });
            }
            if enable || disable {
                body["enabled"] = json!(enable);
            }
            if new_url {
                body["url"] = json!(secret_env("RIVETR_NOTIFY_URL").ok_or_else(|| {
                    ClientError::Usage("--new-url: set RIVETR_NOTIFY_URL".to_owned())
                })?);
            }
            let bytes = client.patch(&channel_path(&name), &body).await?;
            if json {
                return raw(out, &bytes);
            }
            let updated: Value = client.parse(&bytes)?;
            write!(
                out,
                "{}",
                format::table(
                    &["NAME", "KIND", "TARGET", "EVENTS", "ENABLED"],
                    &[channel_row(&updated)]
                )
            )?;
            Ok(())
        }
        NotifyCommand::Remove { name } => {
            client.delete(&channel_path(&name)).await?;
            if !json {
                writeln!(out, "removed channel {name}")?;
            }
            Ok(())
        }
        NotifyCommand::Test { name } => {
            let bytes = client
                .post(&format!("{}/test", channel_path(&name)), None)
                .await?;
            if json {
                return raw(out, &bytes);
            }
            writeln!(out, "test message delivered to {name}")?;
            Ok(())
        }
        NotifyCommand::Deliveries {
            channel,
            status,
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            if let Some(c) = channel {
                query.push_str(&format!("&channel={}", segment(&c)));
            }
            if let Some(s) = status {
                query.push_str(&format!("&status={}", segment(&s)));
            }
            let bytes = client
                .get(&format!("/api/notifications/deliveries{query}"))
                .await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Value> = client.parse(&bytes)?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                    vec![
                        d["id"].to_string(),
                        format::short_time(&s("created_at")),
                        s("channel"),
                        s("event"),
                        s("status"),
                        d["attempts"].to_string(),
                        format::one_line(&s("last_error")),
                    ]
                })
                .collect();
            write!(
                out,
                "{}",
                format::table(
                    &[
                        "ID",
                        "CREATED",
                        "CHANNEL",
                        "EVENT",
                        "STATUS",
                        "TRIES",
                        "LAST ERROR"
                    ],
                    &rows
                )
            )?;
            Ok(())
        }
    }
}

fn channel_row(c: &Value) -> Vec<String> {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
    let target = match c["email"].as_object() {
        Some(e) => format!(
            "{} -> {}",
            e.get("host").and_then(Value::as_str).unwrap_or(""),
            e.get("to")
                .and_then(Value::as_array)
                .map(|to| to
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        None => s("url"),
    };
    let events = c["events"]
        .as_array()
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "all".to_owned());
    vec![
        s("name"),
        s("kind"),
        target,
        events,
        if c["enabled"].as_bool().unwrap_or(false) {
            "yes"
        } else {
            "no"
        }
        .to_owned(),
    ]
}

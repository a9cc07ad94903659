//! Channels: where messages go, what of them is secret, and how a request for one is checked.
//!
//! A channel's URL is secret for every kind (Slack, Mattermost and Discord URLs carry the
//! token that lets anyone post; a generic webhook's may too), as are a generic webhook's
//! signing secret and an SMTP password: they are sealed together as one JSON value bound to
//! the channel's row, and never shown again. The API shows a URL as its scheme and host only.

use serde::{Deserialize, Serialize};

use super::message::Event;
use crate::secrets::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON POST of the message, signed with HMAC-SHA256.
    Webhook,
    /// An incoming webhook: `{"text"}`.
    Slack,
    /// An incoming webhook: `{"text"}`.
    Mattermost,
    /// A webhook: `{"content"}`.
    Discord,
    /// SMTP.
    Email,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::Mattermost => "mattermost",
            Kind::Discord => "discord",
            Kind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Webhook,
            Kind::Slack,
            Kind::Mattermost,
            Kind::Discord,
            Kind::Email,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine, and never with a password.
    None,
}

/// An email channel's server, sender and recipients: shown by the API as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub host: String,
    /// 587 for STARTTLS, 465 for TLS, 25 for none, unless given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    pub security: Security,
    #[serde(default)]
    pub username: Option<String>,
    /// `Rivetr <rivetr@example.com>` or an address.
    pub from: String,
    pub to: Vec<String>,
    /// PEM certificates to trust besides the public roots (a private CA's).
    #[serde(default)]
    pub ca_certificate: Option<String>,
}

impl EmailSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }
}

/// The sealed part of a channel.
#[derive(Default, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A channel ready to send to, secrets opened.
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub target: Target,
}

pub enum Target {
    Webhook {
        url: SecretString,
        signing_secret: SecretString,
    },
    Slack {
        url: SecretString,
    },
    Mattermost {
        url: SecretString,
    },
    Discord {
        url: SecretString,
    },
    Email {
        settings: EmailSettings,
        password: Option<SecretString>,
    },
}

/// What is wrong with a request for a channel: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// Checks a URL a message is POSTed to: http or https, with a host.
pub fn check_url(field: &'static str, url: &str) -> Result<(), Invalid> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(invalid(field, "must start with https:// (or http://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(field, "has no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(
            field,
            "holds a user name or password before the host; put a token in the path or the \
             query, as Slack, Mattermost and Discord URLs do",
        ));
    }
    Ok(())
}

/// `https://hooks.slack.com/…`: enough to recognise a URL, nothing of its token.
pub fn redacted_url(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => format!(
            "{}://{}{}/…",
            uri.scheme_str().unwrap_or("https"),
            uri.host().unwrap_or(""),
            uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "…".to_owned(),
    }
}

/// Checks an email channel's settings (and that a password travels encrypted only).
pub fn check_email(settings: &EmailSettings, password: bool) -> Result<(), Invalid> {
    if settings.host.trim().is_empty() {
        return Err(invalid("email.host", "required"));
    }
    if settings.to.is_empty() {
        return Err(invalid("email.to", "at least one recipient"));
    }
    settings
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| invalid("email.from", format!("`{}`: {e}", settings.from)))?;
    for to in &settings.to {
        to.parse::<lettre::message::Mailbox>()
            .map_err(|e| invalid("email.to", format!("`{to}`: {e}")))?;
    }
    if settings.security == Security::None && (password || settings.username.is_some()) {
        return Err(invalid(
            "email.security",
            "`none` sends the password in the clear; use `starttls` or `tls` with a username \
             and password",
        ));
    }
    if password != settings.username.is_some() {
        return Err(invalid(
            "email.password",
            "a username and a password go together",
        ));
    }
    if let Some(pem) = &settings.ca_certificate
        && lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes()).is_err()
    {
        return Err(invalid("email.ca_certificate", "not a PEM certificate"));
    }
    Ok(())
}

/// Parses an event filter; empty means every event.
pub fn parse_events(names: &[String]) -> Result<Vec<Event>, Invalid> {
    names
        .iter()
        .map(|n| {
            Event::parse(n).ok_or_else(|| {
                invalid(
                    "events",
                    format!(
                        "`{n}` is no event; known: {}",
                        Event::ALL.map(Event::as_str).join(", ")
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> EmailSettings {
        EmailSettings {
            host: "smtp.example.com".into(),
            port: None,
            security: Security::Starttls,
            username: Some("ops".into()),
            from: "Rivetr <rivetr@example.com>".into(),
            to: vec!["ops@example.com".into()],
            ca_certificate: None,
        }
    }

    #[test]
    fn urls_show_scheme_and_host_only() {
        assert_eq!(
            redacted_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:9000/hook?token=abc"),
            "http://127.0.0.1:9000/…"
        );
    }

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(check_url("url", "https://discord.com/api/webhooks/1/x").is_ok());
        assert_eq!(check_url("url", "ftp://x/").unwrap_err().field, "url");
        assert!(check_url("url", "not a url").is_err());
        assert!(check_url("url", "/relative").is_err());
        assert!(check_url("url", "https://alice:pw@example.com/hook").is_err());
        assert_eq!(
            redacted_url("https://alice:pw@example.com:8443/hook"),
            "https://example.com:8443/…"
        );
    }

    #[test]
    fn email_settings_are_checked_field_by_field() {
        assert!(check_email(&email(), true).is_ok());
        assert_eq!(
            check_email(&email(), false).unwrap_err().field,
            "email.password"
        );
        let mut plain = email();
        plain.security = Security::None;
        assert_eq!(
            check_email(&plain, true).unwrap_err().field,
            "email.security"
        );
        plain.username = None;
        assert!(check_email(&plain, false).is_ok());
        let mut bad = email();
        bad.to = vec!["not an address".into()];
        assert_eq!(check_email(&bad, true).unwrap_err().field, "email.to");
        assert_eq!(email().port(), 587);
    }

    #[test]
    fn unknown_events_are_refused_naming_the_known_ones() {
        let e = parse_events(&["deployment.failed".into(), "nope".into()]).unwrap_err();
        assert_eq!(e.field, "events");
        assert!(e.message.contains("backup.failed"), "{}", e.message);
    }
}

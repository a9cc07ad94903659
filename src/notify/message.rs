//! What a notification says: the events Rivetr tells about, the message (the JSON a generic
//! webhook receives, and what the queue stores), and its renderings for each kind of channel
//! (Slack and Mattermost text, Discord content, email subject and bodies from templates
//! compiled into the binary).

use serde::{Deserialize, Serialize};

/// Something worth telling a person about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Event {
    #[serde(rename = "deployment.succeeded")]
    DeploymentSucceeded,
    #[serde(rename = "deployment.failed")]
    DeploymentFailed,
    /// A rollback deployment went into service.
    #[serde(rename = "deployment.rolled_back")]
    DeploymentRolledBack,
    /// An ACME order or renewal failed; it is retried after the backoff.
    #[serde(rename = "certificate.renewal_failed")]
    CertificateRenewalFailed,
    /// A certificate ends within 14 days and has not been renewed.
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring,
    /// An app's container keeps dying and being restarted by the engine.
    #[serde(rename = "container.crash_looping")]
    ContainerCrashLooping,
    #[serde(rename = "backup.failed")]
    BackupFailed,
    /// Rivetr started and found that its previous run did not stop cleanly.
    #[serde(rename = "rivetr.started_after_crash")]
    StartedAfterCrash,
    /// Sent on request, to check a channel.
    #[serde(rename = "test")]
    Test,
}

impl Event {
    /// Every event a channel can filter on.
    pub const ALL: [Event; 9] = [
        Event::DeploymentSucceeded,
        Event::DeploymentFailed,
        Event::DeploymentRolledBack,
        Event::CertificateRenewalFailed,
        Event::CertificateExpiring,
        Event::ContainerCrashLooping,
        Event::BackupFailed,
        Event::StartedAfterCrash,
        Event::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::DeploymentSucceeded => "deployment.succeeded",
            Event::DeploymentFailed => "deployment.failed",
            Event::DeploymentRolledBack => "deployment.rolled_back",
            Event::CertificateRenewalFailed => "certificate.renewal_failed",
            Event::CertificateExpiring => "certificate.expiring",
            Event::ContainerCrashLooping => "container.crash_looping",
            Event::BackupFailed => "backup.failed",
            Event::StartedAfterCrash => "rivetr.started_after_crash",
            Event::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Whether the news is bad: the colour of an email's banner.
    fn is_bad(self) -> bool {
        !matches!(self, Event::DeploymentSucceeded | Event::Test)
    }
}

/// One message, as queued and as a generic webhook receives it (its JSON body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub event: Event,
    /// One line: `web: deployment 12 failed`.
    pub title: String,
    /// What happened and why, in a sentence or two.
    pub text: String,
    /// The server Rivetr runs on (`[notifications] server_name`, or the host name).
    pub server: String,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The deployment (or other page) in the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Message {
    /// A message about `event`; the server and time are filled in when it is queued.
    pub fn new(event: Event, title: impl Into<String>, text: impl Into<String>) -> Message {
        Message {
            event,
            title: title.into(),
            text: text.into(),
            server: String::new(),
            at: String::new(),
            app: None,
            deployment: None,
            commit: None,
            database: None,
            domain: None,
            url: None,
        }
    }

    /// The facts after the text, one per line as `name: value`, in a fixed order.
    fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Server", self.server.clone())];
        if let Some(app) = &self.app {
            facts.push(("App", app.clone()));
        }
        if let Some(d) = self.deployment {
            facts.push(("Deployment", d.to_string()));
        }
        if let Some(commit) = &self.commit {
            facts.push(("Commit", short_commit(commit).to_owned()));
        }
        if let Some(db) = &self.database {
            facts.push(("Database", db.clone()));
        }
        if let Some(domain) = &self.domain {
            facts.push(("Domain", domain.clone()));
        }
        facts
    }

    /// Slack's text: bold title, the text, the facts, and a `<url|label>` link.
    pub fn slack_text(&self) -> String {
        self.chat_text(escape_chat, |url| format!("<{url}|Open in Rivetr>"))
    }

    /// Mattermost's text: Markdown.
    pub fn mattermost_text(&self) -> String {
        self.chat_text(
            |s| quiet_mentions(&escape_chat(s)),
            |url| format!("[Open in Rivetr]({url})"),
        )
    }

    /// Discord's content: Markdown, where a bare URL becomes a link; at most 2,000
    /// characters, Discord's limit.
    pub fn discord_content(&self) -> String {
        // Mentions are turned off by the body's `allowed_mentions`.
        let text = self.chat_text(str::to_owned, |url| url.to_owned());
        truncate_chars(&text, 2000)
    }

    /// Title, text and facts through `escape` (what a commit subject says must not become
    /// markup or a mention of everyone), then the link.
    fn chat_text(&self, escape: impl Fn(&str) -> String, link: impl Fn(&str) -> String) -> String {
        let mut out = format!("*{}*\n{}\n", escape(&self.title), escape(&self.text));
        let facts: Vec<String> = self
            .facts()
            .into_iter()
            .map(|(k, v)| format!("{k}: {}", escape(&v)))
            .collect();
        out.push_str(&facts.join(" · "));
        if let Some(url) = &self.url {
            out.push('\n');
            out.push_str(&link(url));
        }
        out
    }

    /// An email's subject line.
    pub fn email_subject(&self) -> String {
        format!("[Rivetr {}] {}", self.server, self.title)
    }

    /// The plain-text body, from `templates/email.txt`.
    pub fn email_text(&self) -> String {
        let facts: String = self
            .facts()
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        let link = self
            .url
            .as_deref()
            .map(|u| format!("Open in Rivetr: {u}\n"))
            .unwrap_or_default();
        fill(
            include_str!("templates/email.txt"),
            &[
                ("title", self.title.clone()),
                ("text", self.text.clone()),
                ("facts", facts),
                ("link", link),
                ("event", self.event.as_str().to_owned()),
                ("at", self.at.clone()),
            ],
        )
    }

    /// The HTML body, from `templates/email.html`; every value is escaped.
    pub fn email_html(&self) -> String {
        let facts: String = self
            .facts()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "<tr><th align=\"left\" style=\"padding:2px 12px 2px 0;color:#555\">{}</th><td>{}</td></tr>",
                    k,
                    escape_html(&v)
                )
            })
            .collect();
        let link = self
            .url
            .as_deref()
            .map(|u| {
                format!(
                    "<p><a href=\"{0}\" style=\"color:#2563eb\">Open in Rivetr</a></p>",
                    escape_html(u)
                )
            })
            .unwrap_or_default();
        let colour = if self.event.is_bad() {
            "#b91c1c"
        } else {
            "#15803d"
        };
        fill(
            include_str!("templates/email.html"),
            &[
                ("colour", colour.to_owned()),
                ("title", escape_html(&self.title)),
                ("text", escape_html(&self.text)),
                ("facts", facts),
                ("link", link),
                ("event", self.event.as_str().to_owned()),
                ("at", escape_html(&self.at)),
            ],
        )
    }
}

/// The first 12 characters of a commit id, as forges show them.
fn short_commit(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Replaces each `{{name}}` of `template` by its value, in one pass: a value that itself
/// holds `{{...}}` (a commit subject can) is inserted as it is.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, end))
        }) {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Mattermost notifies whole channels for `@channel`, `@all` and `@here`: a zero-width space
/// after each `@` keeps the text readable and mentions no one.
fn quiet_mentions(s: &str) -> String {
    s.replace('@', "@\u{200B}")
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack and Mattermost read `<`, `>` and `&` as markup: a title naming `<script>` must show
/// as typed.
fn escape_chat(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Message {
        Message {
            server: "box-1".into(),
            at: "2026-12-03T07:00:00Z".into(),
            app: Some("web".into()),
            deployment: Some(12),
            commit: Some("0123456789abcdef0123".into()),
            url: Some("https://rivetr.example.com/deployments/12".into()),
            ..Message::new(
                Event::DeploymentFailed,
                "web: deployment 12 failed",
                "The build failed: step 3 <RUN make> exited with 2.",
            )
        }
    }

    #[test]
    fn event_names_round_trip_through_json_and_parse() {
        for e in Event::ALL {
            let json = serde_json::to_value(e).unwrap();
            assert_eq!(json, serde_json::json!(e.as_str()));
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(Event::parse("deployment.exploded"), None);
    }

    #[test]
    fn every_rendering_names_the_server_app_commit_and_link() {
        let m = failed();
        for text in [
            m.slack_text(),
            m.mattermost_text(),
            m.discord_content(),
            m.email_text(),
            m.email_html(),
        ] {
            for needle in [
                "box-1",
                "web",
                "0123456789ab",
                "https://rivetr.example.com/deployments/12",
            ] {
                assert!(text.contains(needle), "{needle} missing from {text}");
            }
            assert!(!text.contains("{{"), "unfilled placeholder in {text}");
        }
        assert!(
            m.slack_text()
                .contains("<https://rivetr.example.com/deployments/12|")
        );
        assert!(
            m.mattermost_text()
                .contains("](https://rivetr.example.com/deployments/12)")
        );
        assert_eq!(
            m.email_subject(),
            "[Rivetr box-1] web: deployment 12 failed"
        );
    }

    #[test]
    fn html_escapes_what_it_is_given() {
        let html = failed().email_html();
        assert!(html.contains("&lt;RUN make&gt;"));
        assert!(!html.contains("<RUN make>"));
    }

    #[test]
    fn what_a_commit_subject_says_is_shown_never_obeyed() {
        let mut m = failed();
        m.text = "fix <!channel> for @all, see {{link}}".into();
        assert!(
            m.slack_text().contains("&lt;!channel&gt;"),
            "{}",
            m.slack_text()
        );
        assert!(!m.mattermost_text().contains("@all"));
        assert!(
            m.email_text().contains("see {{link}}"),
            "{}",
            m.email_text()
        );
    }

    #[test]
    fn discord_content_stays_within_its_limit() {
        let mut m = failed();
        m.text = "é".repeat(5000);
        assert_eq!(m.discord_content().chars().count(), 2000);
    }
}

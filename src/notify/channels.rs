//! Adding, changing, listing and removing channels, sending a test message, and listing
//! deliveries: what the API and the CLI call.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::channel::{self, Channel, EmailSettings, Invalid, Kind, Sealed, Target};
use super::message::{Event, Message};
use super::{Notifier, send};
use crate::db::notifications::{self as rows, ChannelRow, DeliveryRow};
use crate::secrets::{Purpose, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notification channel named `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A test message did not get through: the receiver's or the network's words.
    #[error("the test message was not delivered: {0}")]
    NotDelivered(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

impl From<Invalid> for NotifyError {
    fn from(i: Invalid) -> Self {
        NotifyError::Invalid {
            field: i.field,
            message: i.message,
        }
    }
}

/// `POST /api/notifications`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// A DNS label.
    pub name: String,
    pub kind: Kind,
    /// Where messages are POSTed (every kind but `email`). Stored encrypted; shown as its
    /// scheme and host only.
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook` only: the HMAC-SHA256 key of `X-Rivetr-Signature-256`. Generated when
    /// absent, and then shown once in the answer.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// `email` only: the server, sender and recipients.
    #[serde(default)]
    pub email: Option<EmailSettings>,
    /// `email` only: the SMTP password (with `email.username`). Stored encrypted.
    #[serde(default)]
    pub password: Option<String>,
    /// The events sent to this channel; absent or empty: all of them.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /api/notifications/{name}`: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub email: Option<EmailSettings>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A channel as the API shows it: never a secret, except a generated signing secret once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelView {
    pub name: String,
    pub kind: Kind,
    /// The URL's scheme and host (`https://hooks.slack.com/…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// Empty: every event.
    pub events: Vec<Event>,
    pub enabled: bool,
    pub created_at: String,
    /// Only in the answer that created a `webhook` channel without one: keep it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// One message to one channel, and what became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub channel: String,
    pub event: String,
    /// The message's one-line title.
    pub title: String,
    /// `pending` (being tried), `sent` or `failed` (given up).
    pub status: String,
    pub attempts: i64,
    /// Why the last try failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a pending delivery is tried next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
}

pub(super) fn delivery_view(row: DeliveryRow) -> DeliveryView {
    let title = serde_json::from_str::<Message>(&row.payload)
        .map(|m| m.title)
        .unwrap_or_default();
    DeliveryView {
        id: row.id,
        channel: row.channel,
        event: row.event,
        title,
        next_attempt: (row.status == "pending").then_some(row.next_attempt),
        status: row.status,
        attempts: row.attempts,
        last_error: row.last_error,
        created_at: row.created_at,
        sent_at: row.sent_at,
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid {
        field,
        message: message.into(),
    }
}

/// What a channel of `kind` needs and refuses.
fn check_fields(
    kind: Kind,
    url: Option<&str>,
    signing_secret: Option<&str>,
    email: Option<&EmailSettings>,
    password: Option<&str>,
) -> Result<(), NotifyError> {
    match kind {
        Kind::Email => {
            if url.is_some() {
                return Err(invalid("url", "an email channel has no URL"));
            }
            if signing_secret.is_some() {
                return Err(invalid("signing_secret", "only for `webhook` channels"));
            }
            let email = email.ok_or_else(|| invalid("email", "required for `email`"))?;
            channel::check_email(email, password.is_some())?;
        }
        _ => {
            let url = url.ok_or_else(|| invalid("url", "required"))?;
            channel::check_url("url", url)?;
            if email.is_some() || password.is_some() {
                return Err(invalid(
                    if email.is_some() { "email" } else { "password" },
                    "only for `email` channels",
                ));
            }
            if kind != Kind::Webhook && signing_secret.is_some() {
                return Err(invalid("signing_secret", "only for `webhook` channels"));
            }
            if signing_secret.is_some_and(|s| s.len() < 16) {
                return Err(invalid("signing_secret", "at least 16 characters"));
            }
        }
    }
    Ok(())
}

fn events_json(names: Option<&[String]>) -> Result<String, NotifyError> {
    let events = channel::parse_events(names.unwrap_or_default())?;
    Ok(serde_json::to_string(&events).expect("events serialize"))
}

impl Notifier {
    pub async fn add_channel(&self, req: NewChannel) -> Result<ChannelView, NotifyError> {
        if !crate::db::apps::is_valid_name(&req.name) || req.name == "deliveries" {
            return Err(invalid(
                "name",
                format!(
                    "`{}` is not a DNS label (a-z, 0-9, -), or is `deliveries`, which names \
                     the list of deliveries",
                    req.name
                ),
            ));
        }
        check_fields(
            req.kind,
            req.url.as_deref(),
            req.signing_secret.as_deref(),
            req.email.as_ref(),
            req.password.as_deref(),
        )?;
        let events = events_json(req.events.as_deref())?;
        let generated = match (req.kind, &req.signing_secret) {
            (Kind::Webhook, None) => Some(crate::secrets::random_hex_secret()?),
            _ => None,
        };
        let sealed = Sealed {
            url: req.url.clone(),
            signing_secret: req
                .signing_secret
                .clone()
                .or_else(|| generated.as_ref().map(|s| s.expose().to_owned())),
            password: req.password.clone(),
        };
        let settings = match &req.email {
            Some(email) => serde_json::to_string(email).expect("settings serialize"),
            None => "{}".to_owned(),
        };
        let secrets = std::sync::Arc::clone(self.secrets());
        let name = req.name.clone();
        let kind = req.kind;
        let enabled = req.enabled.unwrap_or(true);
        let row = self
            .db()
            .call(move |c| {
                let tx = c.transaction()?;
                if rows::channel(&tx, &name)?.is_some() {
                    return Ok(None);
                }
                let id =
                    rows::insert_channel(&tx, &name, kind.as_str(), &settings, &events, enabled)?;
                let plain = Zeroizing::new(serde_json::to_vec(&sealed).expect("secrets serialize"));
                let sealed = secrets
                    .encrypt(Purpose::NotificationChannel { channel_id: id }, &plain)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                rows::set_secret(&tx, id, &sealed)?;
                let row = rows::channel(&tx, &name)?;
                tx.commit()?;
                Ok(row)
            })
            .await?
            .ok_or_else(|| {
                NotifyError::Conflict(format!("a channel named `{}` already exists", req.name))
            })?;
        tracing::info!(channel = %row.name, kind = %row.kind, "notification channel added");
        let mut view = self.view(&row)?;
        view.signing_secret = generated.map(|s| s.expose().to_owned());
        Ok(view)
    }

    pub async fn channels(&self) -> Result<Vec<ChannelView>, NotifyError> {
        let rows = self.db().call(|c| rows::channels(c)).await?;
        rows.iter().map(|r| self.view(r)).collect()
    }

    pub async fn channel(&self, name: &str) -> Result<ChannelView, NotifyError> {
        let row = self.row(name).await?;
        self.view(&row)
    }

    async fn row(&self, name: &str) -> Result<ChannelRow, NotifyError> {
        let owned = name.to_owned();
        self.db()
            .call(move |c| rows::channel(c, &owned))
            .await?
            .ok_or_else(|| NotifyError::NotFound(name.to_owned()))
    }

    pub async fn update_channel(
        &self,
        name: &str,
        req: ChannelUpdate,
    ) -> Result<ChannelView, NotifyError> {
        let row = self.row(name).await?;
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Webhook);
        let mut sealed = self.open_sealed(&row)?;
        let mut email: Option<EmailSettings> = serde_json::from_str(&row.settings).ok();
        if req.url.is_some() {
            sealed.url = req.url.clone();
        }
        if req.signing_secret.is_some() {
            sealed.signing_secret = req.signing_secret.clone();
        }
        if req.password.is_some() {
            sealed.password = req.password.clone();
        }
        if kind != Kind::Email && (req.email.is_some() || req.password.is_some()) {
            return Err(invalid(
                if req.email.is_some() {
                    "email"
                } else {
                    "password"
                },
                "only for `email` channels",
            ));
        }
        if let Some(e) = &req.email {
            // Another account and no password given: the old one is for the wrong user.
            let same_user =
                email.as_ref().and_then(|old| old.username.as_ref()) == e.username.as_ref();
            if !same_user && req.password.is_none() {
                sealed.password = None;
            }
            email = Some(e.clone());
        }
        // A PATCH that gives a signing secret to another kind is refused like a POST.
        check_fields(
            kind,
            sealed.url.as_deref(),
            req.signing_secret.as_deref().or(if kind == Kind::Webhook {
                None
            } else {
                sealed.signing_secret.as_deref()
            }),
            email.as_ref(),
            sealed.password.as_deref(),
        )?;
        let events = match &req.events {
            Some(names) => events_json(Some(names))?,
            None => row.events.clone(),
        };
        let enabled = req.enabled.unwrap_or(row.enabled);
        let settings = match &email {
            Some(email) => serde_json::to_string(email).expect("settings serialize"),
            None => "{}".to_owned(),
        };
        let secrets = std::sync::Arc::clone(self.secrets());
        let id = row.id;
        let reseal = req.url.is_some()
            || req.signing_secret.is_some()
            || req.password.is_some()
            || req.email.is_some();
        let updated = self
            .db()
            .call(move |c| {
                let tx = c.transaction()?;
                rows::update_channel(&tx, id, &settings, &events, enabled)?;
                if reseal {
                    let plain =
                        Zeroizing::new(serde_json::to_vec(&sealed).expect("secrets serialize"));
                    let sealed = secrets
                        .encrypt(Purpose::NotificationChannel { channel_id: id }, &plain)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    rows::set_secret(&tx, id, &sealed)?;
                }
                let row = rows::channel_by_id(&tx, id)?;
                tx.commit()?;
                Ok(row)
            })
            .await?
            .ok_or_else(|| NotifyError::NotFound(name.to_owned()))?;
        tracing::info!(channel = %updated.name, "notification channel changed");
        self.view(&updated)
    }

    /// Removes a channel and its deliveries.
    pub async fn remove_channel(&self, name: &str) -> Result<(), NotifyError> {
        let owned = name.to_owned();
        if !self
            .db()
            .call(move |c| rows::delete_channel(c, &owned))
            .await?
        {
            return Err(NotifyError::NotFound(name.to_owned()));
        }
        tracing::info!(channel = name, "notification channel removed");
        Ok(())
    }

    /// Sends a test message to `name` now, once, and records it as a delivery.
    pub async fn send_test(&self, name: &str) -> Result<DeliveryView, NotifyError> {
        let row = self.row(name).await?;
        let channel = self.open(&row)?;
        let settings = self.settings();
        let message = self.stamp(Message {
            url: Some(settings.dashboard_url.clone()),
            ..Message::new(
                Event::Test,
                format!("Test message to `{}`", row.name),
                "This channel receives Rivetr's notifications.",
            )
        });
        let payload = serde_json::to_string(&message).expect("a message serializes");
        let channel_id = row.id;
        let id = self
            .db()
            .call(move |c| rows::insert_delivery(c, channel_id, "test", &payload))
            .await?;
        let result = send::send(&channel, &message, id, &settings.server_name).await;
        let error = result.as_ref().err().map(ToString::to_string);
        let recorded = error.clone();
        let row = self
            .db()
            .call(move |c| {
                match &recorded {
                    None => rows::mark_sent(c, id)?,
                    Some(e) => rows::mark_failed(c, id, e, None)?,
                }
                rows::delivery(c, id)
            })
            .await?;
        match error {
            None => Ok(delivery_view(
                row.ok_or_else(|| NotifyError::NotFound(name.to_owned()))?,
            )),
            Some(e) => Err(NotifyError::NotDelivered(e)),
        }
    }

    /// The newest deliveries (at most `limit`), of one channel and/or one status.
    pub async fn deliveries(
        &self,
        channel: Option<String>,
        status: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeliveryView>, NotifyError> {
        if let Some(s) = &status
            && !["pending", "sent", "failed"].contains(&s.as_str())
        {
            return Err(invalid(
                "status",
                format!("`{s}`: one of pending, sent, failed"),
            ));
        }
        if let Some(name) = &channel {
            self.row(name).await?;
        }
        let rows = self
            .db()
            .call(move |c| rows::deliveries(c, channel.as_deref(), status.as_deref(), limit))
            .await?;
        Ok(rows.into_iter().map(delivery_view).collect())
    }

    fn view(&self, row: &ChannelRow) -> Result<ChannelView, NotifyError> {
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Webhook);
        let url = match kind {
            Kind::Email => None,
            _ => self
                .open_sealed(row)?
                .url
                .as_deref()
                .map(channel::redacted_url),
        };
        Ok(ChannelView {
            name: row.name.clone(),
            kind,
            url,
            email: (kind == Kind::Email)
                .then(|| serde_json::from_str(&row.settings).ok())
                .flatten(),
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            enabled: row.enabled,
            created_at: row.created_at.clone(),
            signing_secret: None,
        })
    }

    fn open_sealed(&self, row: &ChannelRow) -> Result<Sealed, NotifyError> {
        let plain = self.secrets().decrypt(
            Purpose::NotificationChannel { channel_id: row.id },
            &row.secret,
        )?;
        Ok(serde_json::from_slice(&plain).unwrap_or_default())
    }

    /// The channel ready to send to.
    pub(super) fn open(&self, row: &ChannelRow) -> Result<Channel, NotifyError> {
        let sealed = self.open_sealed(row)?;
        let secret = |s: Option<String>| SecretString::new(s.unwrap_or_default());
        let target = match Kind::parse(&row.kind).unwrap_or(Kind::Webhook) {
            Kind::Webhook => Target::Webhook {
                url: secret(sealed.url),
                signing_secret: secret(sealed.signing_secret),
            },
            Kind::Slack => Target::Slack {
                url: secret(sealed.url),
            },
            Kind::Mattermost => Target::Mattermost {
                url: secret(sealed.url),
            },
            Kind::Discord => Target::Discord {
                url: secret(sealed.url),
            },
            Kind::Email => Target::Email {
                settings: serde_json::from_str(&row.settings)
                    .map_err(|e| invalid("email", format!("stored settings unreadable: {e}")))?,
                password: sealed.password.map(SecretString::new),
            },
        };
        Ok(Channel {
            id: row.id,
            name: row.name.clone(),
            target,
        })
    }
}

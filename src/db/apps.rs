//! The `apps` table: what to deploy and how.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

/// The health check of an app: an HTTP GET that must answer 2xx or 3xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Healthcheck {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

impl Default for Healthcheck {
    fn default() -> Self {
        Healthcheck {
            path: "/".to_owned(),
            interval_ms: 500,
            timeout_ms: 2_000,
            retries: 60,
        }
    }
}

/// Where an app's replicas may run on a swarm (ignored on a single engine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Placement {
    /// Swarm constraints such as `node.labels.zone==eu` or `node.role==worker`.
    pub constraints: Vec<String>,
    /// At most this many replicas on one node; 0: no limit.
    pub max_per_node: u64,
    /// Node labels to spread replicas evenly over, such as `node.labels.zone`.
    pub spread: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub git_url: Option<String>,
    pub branch: String,
    /// An image to run instead of building from git.
    pub image: Option<String>,
    pub port: u16,
    pub domains: Vec<String>,
    pub healthcheck: Healthcheck,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub replicas: u32,
    /// Where its replicas may run on a swarm.
    pub placement: Placement,
    pub stopped: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The encrypted `user:token` of the git URL, if it had one.
    #[serde(skip)]
    pub git_credential: Option<Vec<u8>>,
    /// How pull requests get previews of this app.
    pub previews: PreviewSettings,
    /// The previews' env overrides, sealed (`Purpose::PreviewEnv`): a JSON object.
    #[serde(skip)]
    pub preview_env: Option<Vec<u8>>,
    /// For a preview: the app it previews and the pull request's number.
    pub preview_of: Option<PreviewOf>,
}

/// Whether and how an app's pull requests get previews (`previews` in the API). Off by
/// default: a preview runs the PR's code with the app's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewSettings {
    pub enabled: bool,
    /// The preview's host: `{number}`, `{app}` and `{domain}` (the app's first domain) are
    /// filled in.
    pub domain_template: String,
    /// Previews at most at once; a PR past it is refused, with the reason.
    pub limit: u32,
    /// Preview PRs whose head lives in a fork. Off by default: they run code from outside the
    /// repository with the app's secrets.
    pub forks: bool,
    /// Preview draft PRs.
    pub drafts: bool,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings {
            enabled: false,
            domain_template: "pr-{number}.{domain}".to_owned(),
            limit: 5,
            forks: false,
            drafts: false,
        }
    }
}

/// What a preview app previews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PreviewOf {
    pub app_id: i64,
    pub number: u64,
}

/// The fields of a new app (and of an update).
#[derive(Debug, Clone, PartialEq)]
pub struct AppFields {
    pub name: String,
    pub git_url: Option<String>,
    pub branch: String,
    pub image: Option<String>,
    pub port: u16,
    pub domains: Vec<String>,
    pub healthcheck: Healthcheck,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub replicas: u32,
    pub placement: Placement,
}

const COLUMNS: &str = "id, name, git_url, branch, image, port, domains, healthcheck, memory_bytes, cpus, replicas, stopped, created_at, updated_at, git_credential, previews, preview_env, preview_of, preview_number, placement";

fn from_row(row: &Row<'_>) -> rusqlite::Result<App> {
    let domains: String = row.get(6)?;
    let healthcheck: String = row.get(7)?;
    Ok(App {
        id: row.get(0)?,
        name: row.get(1)?,
        git_url: row.get(2)?,
        branch: row.get(3)?,
        image: row.get(4)?,
        port: row.get(5)?,
        domains: serde_json::from_str(&domains).unwrap_or_default(),
        healthcheck: serde_json::from_str(&healthcheck).unwrap_or_default(),
        memory_bytes: row.get::<_, Option<i64>>(8)?.map(|b| b as u64),
        cpus: row.get(9)?,
        replicas: row.get(10)?,
        stopped: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
        git_credential: row.get(14)?,
        previews: row
            .get::<_, Option<String>>(15)?
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
        preview_env: row.get(16)?,
        placement: serde_json::from_str(&row.get::<_, String>(19)?).unwrap_or_default(),
        preview_of: match (
            row.get::<_, Option<i64>>(17)?,
            row.get::<_, Option<i64>>(18)?,
        ) {
            (Some(app_id), Some(number)) => Some(PreviewOf {
                app_id,
                number: number as u64,
            }),
            _ => None,
        },
    })
}

pub fn insert(c: &Connection, f: &AppFields) -> rusqlite::Result<App> {
    c.execute(
        "INSERT INTO apps (name, git_url, branch, image, port, domains, healthcheck, memory_bytes, cpus, replicas, placement)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            f.name,
            f.git_url,
            f.branch,
            f.image,
            f.port,
            serde_json::to_string(&f.domains).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&f.healthcheck).unwrap_or_else(|_| "{}".into()),
            f.memory_bytes.map(|b| b as i64),
            f.cpus,
            f.replicas,
            serde_json::to_string(&f.placement).unwrap_or_else(|_| "{}".into()),
        ],
    )?;
    get_by_id(c, c.last_insert_rowid())?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

pub fn update(c: &Connection, id: i64, f: &AppFields) -> rusqlite::Result<App> {
    c.execute(
        "UPDATE apps SET name = ?2, git_url = ?3, branch = ?4, image = ?5, port = ?6, domains = ?7,
            healthcheck = ?8, memory_bytes = ?9, cpus = ?10, replicas = ?11, placement = ?12,
            updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
        params![
            id,
            f.name,
            f.git_url,
            f.branch,
            f.image,
            f.port,
            serde_json::to_string(&f.domains).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&f.healthcheck).unwrap_or_else(|_| "{}".into()),
            f.memory_bytes.map(|b| b as i64),
            f.cpus,
            f.replicas,
            serde_json::to_string(&f.placement).unwrap_or_else(|_| "{}".into()),
        ],
    )?;
    get_by_id(c, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

pub fn get_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<App>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM apps WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

pub fn get_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<App>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM apps WHERE name = ?1"),
        [name],
        from_row,
    )
    .optional()
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<App>> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM apps ORDER BY name"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// The previews of an app, by PR number.
pub fn previews_of(c: &Connection, app_id: i64) -> rusqlite::Result<Vec<App>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM apps WHERE preview_of = ?1 ORDER BY preview_number"
    ))?;
    let rows = stmt.query_map([app_id], from_row)?;
    rows.collect()
}

/// Records a new preview of `parent` for PR `number`, from `fields`.
pub fn insert_preview(
    c: &Connection,
    f: &AppFields,
    parent: i64,
    number: u64,
) -> rusqlite::Result<App> {
    let tx = c.unchecked_transaction()?;
    let app = insert(&tx, f)?;
    tx.execute(
        "UPDATE apps SET preview_of = ?2, preview_number = ?3 WHERE id = ?1",
        params![app.id, parent, number as i64],
    )?;
    tx.commit()?;
    get_by_id(c, app.id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// Stores an app's preview settings and (when `env` is `Some`) its sealed env overrides
/// (`Some(None)` removes them).
pub fn set_previews(
    c: &Connection,
    id: i64,
    settings: &PreviewSettings,
    env: Option<Option<&[u8]>>,
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(settings).unwrap_or_else(|_| "{}".into());
    c.execute(
        "UPDATE apps SET previews = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        params![id, json],
    )?;
    if let Some(env) = env {
        c.execute(
            "UPDATE apps SET preview_env = ?2 WHERE id = ?1",
            params![id, env],
        )?;
    }
    Ok(())
}

pub fn set_stopped(c: &Connection, id: i64, stopped: bool) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE apps SET stopped = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        params![id, stopped],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM apps WHERE id = ?1", [id])? > 0)
}

/// True for a name Rivetr accepts: a DNS label (lower-case letters, digits, inner hyphens,
/// 1 to 63 characters), since it becomes part of container and image names.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Stores (or clears) the encrypted credential of the app's git URL.
pub fn set_git_credential(c: &Connection, id: i64, sealed: Option<&[u8]>) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE apps SET git_credential = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

/// The app, if any, that serves `domain`, other than `except`.
pub fn domain_owner(
    c: &Connection,
    domain: &str,
    except: Option<i64>,
) -> rusqlite::Result<Option<String>> {
    let mut stmt = c.prepare("SELECT id, name, domains FROM apps")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (id, name, domains) = row?;
        if Some(id) == except {
            continue;
        }
        let domains: Vec<String> = serde_json::from_str(&domains).unwrap_or_default();
        if domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

//! Links from apps to databases: what a linked app's containers get. The app runs on a
//! network of its own (`rivetr-<instance>-app-<app>`); each linked database joins it at a
//! fixed address, and the app finds it by the database's name through an `/etc/hosts` entry
//! (Podman 4.3 with CNI has no DNS on its networks). The connection URL goes in the link's
//! variable, and the engine's usual separate variables (`PGHOST`, ...) come from the first
//! link of each engine.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use super::kinds::{Credentials, DbKind};
use crate::db::Db;
use crate::runtime::{LABEL_APP, LABEL_INSTANCE, NetworkSpec};
use crate::secrets::{Purpose, Secrets};

/// What a linked app's containers get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppLinks {
    /// Variables: each link's URL, then the separate ones. Values are secrets.
    pub env: Vec<(String, String)>,
    /// The app's own network, when it has links.
    pub network: Option<NetworkSpec>,
    /// `/etc/hosts` entries: each database's name and address.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Values to hide in logs (passwords and URLs).
    pub secrets: Vec<String>,
}

/// The name of an app's own network.
pub fn app_network_name(instance: &str, app: &str) -> String {
    format!("rivetr-{instance}-app-{app}")
}

/// The app's own network, as created for its links.
pub fn app_network(instance: &str, app: &str) -> NetworkSpec {
    NetworkSpec {
        name: app_network_name(instance, app),
        internal: false,
        labels: BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
            (LABEL_APP.to_owned(), app.to_owned()),
        ]),
    }
}

/// What the app's links give its containers at its next start.
pub async fn for_app(
    db: &Db,
    secrets: &Secrets,
    app_id: i64,
    app: &str,
) -> Result<AppLinks, String> {
    let rows = db
        .call(move |c| {
            let links = crate::db::databases::links_of_app(c, app_id)?;
            let mut out = Vec::new();
            for link in links {
                let row = crate::db::databases::get_by_name(c, &link.database)?;
                out.push((link, row));
            }
            Ok(out)
        })
        .await
        .map_err(|e| format!("database: {e}"))?;
    if rows.is_empty() {
        return Ok(AppLinks::default());
    }
    let mut links = AppLinks {
        network: Some(app_network(db.instance_id(), app)),
        ..AppLinks::default()
    };
    let mut separate_done: HashSet<DbKind> = HashSet::new();
    for (link, row) in rows {
        let Some(row) = row else { continue };
        let kind: DbKind = row.engine.parse()?;
        let address: Ipv4Addr = link
            .address
            .parse()
            .map_err(|_| format!("link to {}: bad address {}", row.name, link.address))?;
        let password = secrets
            .decrypt_str(
                Purpose::DatabasePassword {
                    database_id: row.id,
                },
                &row.password,
            )
            .map_err(|e| format!("database {}: {e}", row.name))?;
        let credentials = Credentials {
            user: row.username.clone(),
            password,
            root_password: None,
            database: row.database_name.clone(),
        };
        let url = kind.url(&row.name, &credentials);
        links.secrets.push(credentials.password.expose().to_owned());
        links.secrets.push(url.expose().to_owned());
        links.env.push((link.env.clone(), url.expose().to_owned()));
        if separate_done.insert(kind) {
            links
                .env
                .extend(separate_variables(kind, &row.name, &credentials));
        }
        links.hosts.push((row.name.clone(), address));
    }
    Ok(links)
}

/// The engine's usual variables besides the URL.
fn separate_variables(kind: DbKind, host: &str, c: &Credentials) -> Vec<(String, String)> {
    let port = kind.port().to_string();
    let pw = c.password.expose().to_owned();
    let pairs: Vec<(&str, String)> = match kind {
        DbKind::Postgres => vec![
            ("PGHOST", host.to_owned()),
            ("PGPORT", port),
            ("PGUSER", c.user.clone()),
            ("PGPASSWORD", pw),
            ("PGDATABASE", c.database.clone()),
        ],
        DbKind::Mariadb | DbKind::Mysql => vec![
            ("MYSQL_HOST", host.to_owned()),
            ("MYSQL_PORT", port),
            ("MYSQL_USER", c.user.clone()),
            ("MYSQL_PASSWORD", pw),
            ("MYSQL_DATABASE", c.database.clone()),
        ],
        DbKind::Redis => vec![
            ("REDIS_HOST", host.to_owned()),
            ("REDIS_PORT", port),
            ("REDIS_PASSWORD", pw),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

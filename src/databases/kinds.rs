//! The contract of each database engine's official image: which variables create the
//! credentials, where the data lives, which port it serves, how to ask whether it accepts
//! connections, and the URL an app connects with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::runtime::{ExecSpec, percent_encode as encode};
use crate::secrets::SecretString;

/// A database engine Rivetr can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Postgres,
    Mariadb,
    Mysql,
    Redis,
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The MySQL family's client programs Rivetr runs inside a database's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlTool {
    Client,
    Dump,
    Admin,
}

impl FromStr for DbKind {
    type Err = String;

    fn from_str(s: &str) -> Result<DbKind, String> {
        match s {
            "postgres" => Ok(DbKind::Postgres),
            "mariadb" => Ok(DbKind::Mariadb),
            "mysql" => Ok(DbKind::Mysql),
            "redis" => Ok(DbKind::Redis),
            other => Err(format!(
                "unknown database engine {other:?} (expected postgres, mariadb, mysql or redis)"
            )),
        }
    }
}

/// The credentials Rivetr generates for a database.
#[derive(Clone)]
pub struct Credentials {
    /// The user apps connect as (unused by Redis, which has one password).
    pub user: String,
    pub password: SecretString,
    /// MariaDB's and MySQL's root password; the other engines have none apart.
    pub root_password: Option<SecretString>,
    /// The database created for the apps (Redis: unused).
    pub database: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mariadb => "mariadb",
            DbKind::Mysql => "mysql",
            DbKind::Redis => "redis",
        }
    }

    /// The official image for `version`, the default when the configuration names none.
    pub fn official_image(self, version: &str) -> String {
        format!("docker.io/library/{}:{version}", self.as_str())
    }

    /// The version used when a request names none.
    pub fn default_version(self) -> &'static str {
        match self {
            DbKind::Postgres => "16",
            DbKind::Mariadb => "11",
            DbKind::Mysql => "8",
            DbKind::Redis => "7",
        }
    }

    /// The name of one of the MySQL family's client programs in this engine's image: MariaDB
    /// renamed them (`mariadb-dump`, `mariadb-admin`, `mariadb`) and its images no longer
    /// ship all the old `mysql*` names; MySQL's images have only those.
    pub fn mysql_tool(self, tool: MysqlTool) -> &'static str {
        match (self, tool) {
            (DbKind::Mariadb, MysqlTool::Client) => "mariadb",
            (DbKind::Mariadb, MysqlTool::Dump) => "mariadb-dump",
            (DbKind::Mariadb, MysqlTool::Admin) => "mariadb-admin",
            (_, MysqlTool::Client) => "mysql",
            (_, MysqlTool::Dump) => "mysqldump",
            (_, MysqlTool::Admin) => "mysqladmin",
        }
    }

    /// The port the server listens on inside its container.
    pub fn port(self) -> u16 {
        match self {
            DbKind::Postgres => 5432,
            DbKind::Mariadb | DbKind::Mysql => 3306,
            DbKind::Redis => 6379,
        }
    }

    /// Where the image keeps its data (the volume's mount point).
    pub fn data_path(self) -> &'static str {
        match self {
            DbKind::Postgres => "/var/lib/postgresql/data",
            DbKind::Mariadb | DbKind::Mysql => "/var/lib/mysql",
            DbKind::Redis => "/data",
        }
    }

    /// Whether the engine has users and databases of its own (Redis has one password).
    pub fn has_users(self) -> bool {
        !matches!(self, DbKind::Redis)
    }

    /// What the official image reads on its first start to create the credentials.
    pub fn container_env(self, c: &Credentials) -> Vec<(String, String)> {
        let pw = c.password.expose().to_owned();
        let root = c
            .root_password
            .as_ref()
            .map(|r| r.expose().to_owned())
            .unwrap_or_else(|| pw.clone());
        let pairs: Vec<(&str, String)> = match self {
            DbKind::Postgres => vec![
                ("POSTGRES_USER", c.user.clone()),
                ("POSTGRES_PASSWORD", pw),
                ("POSTGRES_DB", c.database.clone()),
            ],
            DbKind::Mariadb => vec![
                ("MARIADB_ROOT_PASSWORD", root),
                ("MARIADB_USER", c.user.clone()),
                ("MARIADB_PASSWORD", pw),
                ("MARIADB_DATABASE", c.database.clone()),
            ],
            DbKind::Mysql => vec![
                ("MYSQL_ROOT_PASSWORD", root),
                ("MYSQL_USER", c.user.clone()),
                ("MYSQL_PASSWORD", pw),
                ("MYSQL_DATABASE", c.database.clone()),
            ],
            // The official image takes no variables; the password goes in the command.
            DbKind::Redis => Vec::new(),
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The command replacing the image's, when the engine needs one: Redis reads its
    /// password and persistence from its arguments. (Redis rewrites its process title, so
    /// the password does not stay visible in `ps`; it is in the container's configuration,
    /// as the other engines' variables are.)
    pub fn container_cmd(self, c: &Credentials) -> Vec<String> {
        match self {
            DbKind::Redis => [
                "redis-server",
                "--requirepass",
                c.password.expose(),
                "--appendonly",
                "yes",
                "--dir",
                "/data",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            _ => Vec::new(),
        }
    }

    /// A command run inside the container that succeeds once the server accepts
    /// connections over TCP. The official images start a temporary server without TCP
    /// while they initialise, so a TCP probe only passes for the real one.
    pub fn ready_probe(self, c: &Credentials) -> ExecSpec {
        let (cmd, env): (Vec<&str>, Vec<(String, String)>) = match self {
            DbKind::Postgres => (
                vec![
                    "pg_isready",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    &c.user,
                    "-d",
                    &c.database,
                ],
                Vec::new(),
            ),
            DbKind::Mariadb | DbKind::Mysql => (
                vec![
                    self.mysql_tool(MysqlTool::Admin),
                    "ping",
                    "-h",
                    "127.0.0.1",
                    "-u",
                    &c.user,
                ],
                vec![("MYSQL_PWD".to_owned(), c.password.expose().to_owned())],
            ),
            DbKind::Redis => (
                vec!["redis-cli", "-h", "127.0.0.1", "ping"],
                vec![("REDISCLI_AUTH".to_owned(), c.password.expose().to_owned())],
            ),
        };
        ExecSpec {
            cmd: cmd.into_iter().map(str::to_owned).collect(),
            env,
            ..ExecSpec::default()
        }
    }

    /// The connection URL for `host`.
    pub fn url(self, host: &str, c: &Credentials) -> SecretString {
        let user = encode(&c.user);
        let pw = encode(c.password.expose());
        let db = encode(&c.database);
        let port = self.port();
        SecretString::new(match self {
            DbKind::Postgres => format!("postgres://{user}:{pw}@{host}:{port}/{db}"),
            DbKind::Mariadb => format!("mariadb://{user}:{pw}@{host}:{port}/{db}"),
            DbKind::Mysql => format!("mysql://{user}:{pw}@{host}:{port}/{db}"),
            // `default` by name: redis-cli (7.0) reads `redis://:pw@` as the user "" and
            // fails to authenticate; Redis 6 and later call the password's user `default`.
            DbKind::Redis => format!("redis://default:{pw}@{host}:{port}/0"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            user: "main".into(),
            password: SecretString::new("p@ss/word".into()),
            root_password: Some(SecretString::new("root".into())),
            database: "main".into(),
        }
    }

    #[test]
    fn official_image_variables() {
        let env = DbKind::Postgres.container_env(&creds());
        assert!(env.contains(&("POSTGRES_PASSWORD".into(), "p@ss/word".into())));
        let env = DbKind::Mariadb.container_env(&creds());
        assert!(env.contains(&("MARIADB_ROOT_PASSWORD".into(), "root".into())));
        let env = DbKind::Mysql.container_env(&creds());
        assert!(env.contains(&("MYSQL_DATABASE".into(), "main".into())));
        assert!(DbKind::Redis.container_env(&creds()).is_empty());
        assert!(
            DbKind::Redis
                .container_cmd(&creds())
                .contains(&"p@ss/word".to_owned())
        );
    }

    #[test]
    fn urls_encode_the_password() {
        let url = DbKind::Postgres.url("main", &creds());
        assert_eq!(url.expose(), "postgres://main:p%40ss%2Fword@main:5432/main");
        let url = DbKind::Redis.url("cache", &creds());
        assert_eq!(url.expose(), "redis://default:p%40ss%2Fword@cache:6379/0");
    }

    #[test]
    fn probes_never_put_the_password_in_the_command() {
        for kind in [
            DbKind::Postgres,
            DbKind::Mariadb,
            DbKind::Mysql,
            DbKind::Redis,
        ] {
            let probe = kind.ready_probe(&creds());
            assert!(
                probe.cmd.iter().all(|a| !a.contains("p@ss")),
                "{kind}: {probe:?}"
            );
        }
    }

    #[test]
    fn the_configuration_defaults_are_the_official_images() {
        let config = crate::config::Config::default();
        for kind in [
            DbKind::Postgres,
            DbKind::Mariadb,
            DbKind::Mysql,
            DbKind::Redis,
        ] {
            assert_eq!(
                config.databases.image(kind.as_str(), "9"),
                Some(kind.official_image("9"))
            );
        }
    }

    #[test]
    fn unknown_engines_are_named_in_the_error() {
        let err = "oracle".parse::<DbKind>().unwrap_err();
        assert!(err.contains("oracle") && err.contains("postgres"), "{err}");
    }
}

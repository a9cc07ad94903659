//! Each engine's own dump and restore tools, as commands run inside the database's
//! container: `pg_dump -Fc` / `pg_restore`, `mariadb-dump --single-transaction` / `mariadb`
//! (MySQL: `mysqldump` / `mysql`), and for Redis a `BGSAVE` whose RDB file is then read.
//! Passwords travel in the command's environment, never in its arguments.

use crate::databases::kinds::{Credentials, DbKind, MysqlTool};
use crate::runtime::ExecSpec;

/// Where the Redis image keeps the RDB file `BGSAVE` writes (`--dir /data`).
pub const REDIS_RDB: &str = "/data/dump.rdb";

fn spec(cmd: &[&str], env: Vec<(String, String)>, stdin: bool) -> ExecSpec {
    ExecSpec {
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        env,
        user: None,
        stdin,
    }
}

fn pg_env(c: &Credentials) -> Vec<(String, String)> {
    vec![("PGPASSWORD".to_owned(), c.password.expose().to_owned())]
}

/// MariaDB and MySQL dump and restore as root: the app's user lacks the privileges that
/// routines, triggers and events need.
fn mysql_env(c: &Credentials) -> Vec<(String, String)> {
    let root = c.root_password.as_ref().unwrap_or(&c.password);
    vec![("MYSQL_PWD".to_owned(), root.expose().to_owned())]
}

fn redis_env(c: &Credentials) -> Vec<(String, String)> {
    vec![("REDISCLI_AUTH".to_owned(), c.password.expose().to_owned())]
}

/// The command whose standard output is the dump. For Redis it only reads the RDB file:
/// [`redis_bgsave`] must have written it first.
pub fn dump_command(kind: DbKind, c: &Credentials) -> ExecSpec {
    match kind {
        // -Z0: Rivetr compresses the whole stream once; pg_dump's own compression would
        // make that second pass useless work.
        DbKind::Postgres => spec(
            &[
                "pg_dump",
                "-Fc",
                "-Z0",
                "-h",
                "127.0.0.1",
                "-U",
                &c.user,
                "-d",
                &c.database,
            ],
            pg_env(c),
            false,
        ),
        DbKind::Mariadb | DbKind::Mysql => spec(
            &[
                kind.mysql_tool(MysqlTool::Dump),
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                &c.database,
            ],
            mysql_env(c),
            false,
        ),
        DbKind::Redis => spec(&["cat", REDIS_RDB], Vec::new(), false),
    }
}

/// The command that reads a dump on its standard input and loads it into the database.
/// Redis has none: its restore replaces the data files (see the service).
pub fn restore_command(kind: DbKind, c: &Credentials) -> Option<ExecSpec> {
    match kind {
        // --clean --if-exists: a restore into the same database replaces what the dump
        // holds. --no-owner: a restore into another database belongs to its own user.
        DbKind::Postgres => Some(spec(
            &[
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-h",
                "127.0.0.1",
                "-U",
                &c.user,
                "-d",
                &c.database,
            ],
            pg_env(c),
            true,
        )),
        DbKind::Mariadb | DbKind::Mysql => Some(spec(
            &[
                kind.mysql_tool(MysqlTool::Client),
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                &c.database,
            ],
            mysql_env(c),
            true,
        )),
        DbKind::Redis => None,
    }
}

/// `redis-cli` with `args`, authenticated.
pub fn redis_cli(c: &Credentials, args: &[&str]) -> ExecSpec {
    let mut cmd = vec!["redis-cli", "-h", "127.0.0.1"];
    cmd.extend_from_slice(args);
    spec(&cmd, redis_env(c), false)
}

/// What a Redis `INFO persistence` answer says of the last background save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgsaveState {
    InProgress,
    Done { ok: bool },
}

/// Reads `rdb_bgsave_in_progress` and `rdb_last_bgsave_status` from `INFO persistence`.
pub fn bgsave_state(info: &str) -> Option<BgsaveState> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    match field("rdb_bgsave_in_progress")? {
        "1" => Some(BgsaveState::InProgress),
        _ => Some(BgsaveState::Done {
            ok: field("rdb_last_bgsave_status")? == "ok",
        }),
    }
}

/// The shell script a helper container runs to put an RDB file read on its standard input
/// in place of a Redis data directory's contents. The append-only log is what Redis
/// loads at start when it is on (Rivetr runs Redis with `--appendonly yes`); an RDB file is
/// a valid base for it: Redis 7 names it in the manifest of `appendonlydir`, Redis 6 reads
/// `appendonly.aof` starting with an RDB preamble.
pub const REDIS_RESTORE_SCRIPT: &str = r#"set -eu
cd /data
cat > restore.rdb.partial
owner=$(stat -c %u:%g .)
if [ -d appendonlydir ]; then
    rm -f appendonlydir/*
    cp restore.rdb.partial appendonlydir/appendonly.aof.1.base.rdb
    printf 'file appendonly.aof.1.base.rdb seq 1 type b\n' > appendonlydir/appendonly.aof.manifest
    chown -R "$owner" appendonlydir
else
    cp restore.rdb.partial appendonly.aof
    chown "$owner" appendonly.aof
fi
mv restore.rdb.partial dump.rdb
chown "$owner" dump.rdb
sync
"#;

/// The file name ending of a backup of `kind`: the dump's format, compressed.
pub fn file_suffix(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Postgres => "pgdump.gz",
        DbKind::Mariadb | DbKind::Mysql => "sql.gz",
        DbKind::Redis => "rdb.gz",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretString;

    fn creds() -> Credentials {
        Credentials {
            user: "main".into(),
            password: SecretString::new("user-secret".into()),
            root_password: Some(SecretString::new("root-secret".into())),
            database: "main".into(),
        }
    }

    #[test]
    fn passwords_never_appear_in_the_commands() {
        for kind in [
            DbKind::Postgres,
            DbKind::Mariadb,
            DbKind::Mysql,
            DbKind::Redis,
        ] {
            let c = creds();
            let mut all = vec![dump_command(kind, &c), redis_cli(&c, &["PING"])];
            all.extend(restore_command(kind, &c));
            for s in all {
                assert!(
                    s.cmd.iter().all(|a| !a.contains("secret")),
                    "{kind}: {:?}",
                    s.cmd
                );
            }
        }
    }

    #[test]
    fn mariadb_dumps_as_root_and_postgres_without_its_own_compression() {
        let c = creds();
        let d = dump_command(DbKind::Mariadb, &c);
        assert!(d.cmd.contains(&"--single-transaction".to_owned()));
        assert_eq!(d.env, vec![("MYSQL_PWD".into(), "root-secret".into())]);
        let p = dump_command(DbKind::Postgres, &c);
        assert_eq!(&p.cmd[..3], ["pg_dump", "-Fc", "-Z0"]);
    }

    #[test]
    fn bgsave_state_is_read_from_info() {
        let info = "# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:1\r\nrdb_last_bgsave_status:ok\r\n";
        assert_eq!(bgsave_state(info), Some(BgsaveState::InProgress));
        let info = "rdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:err\r\n";
        assert_eq!(bgsave_state(info), Some(BgsaveState::Done { ok: false }));
        assert_eq!(bgsave_state("garbage"), None);
    }
}

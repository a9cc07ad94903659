//! The `databases` table: managed databases as stored. Passwords are stored and returned
//! sealed; this module never decrypts.

use rusqlite::{Connection, OptionalExtension, Row, params};

/// One managed database as stored.
#[derive(Clone, PartialEq)]
pub struct DatabaseRow {
    pub id: i64,
    pub name: String,
    pub engine: String,
    pub version: String,
    pub image: String,
    pub username: String,
    pub database_name: String,
    /// Sealed.
    pub password: Vec<u8>,
    /// Sealed; MariaDB and MySQL only.
    pub root_password: Option<Vec<u8>>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub stopped: bool,
    pub created_at: String,
    /// Where Rivetr forwards connections to it from; `None`: only linked apps reach it.
    pub public_port: Option<u16>,
}

impl std::fmt::Debug for DatabaseRow {
    // The sealed passwords never reach Debug output, even encrypted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("engine", &self.engine)
            .field("version", &self.version)
            .field("image", &self.image)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

/// What a new row holds besides its id and creation time.
pub struct NewDatabase<'a> {
    pub name: &'a str,
    pub engine: &'a str,
    pub version: &'a str,
    pub image: &'a str,
    pub username: &'a str,
    pub database_name: &'a str,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
}

const COLUMNS: &str = "id, name, engine, version, image, username, database_name, password, \
                       root_password, memory_bytes, cpus, stopped, created_at, public_port";

fn from_row(r: &Row<'_>) -> rusqlite::Result<DatabaseRow> {
    Ok(DatabaseRow {
        id: r.get(0)?,
        name: r.get(1)?,
        engine: r.get(2)?,
        version: r.get(3)?,
        image: r.get(4)?,
        username: r.get(5)?,
        database_name: r.get(6)?,
        password: r.get(7)?,
        root_password: r.get(8)?,
        memory_bytes: r.get::<_, Option<i64>>(9)?.map(|m| m as u64),
        cpus: r.get(10)?,
        stopped: r.get(11)?,
        created_at: r.get(12)?,
        public_port: r.get(13)?,
    })
}

/// Inserts a database with placeholder passwords and returns its id: the passwords are
/// sealed with the row's id (see [`set_passwords`]), in the same transaction.
pub fn insert(c: &Connection, new: &NewDatabase<'_>) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO databases (name, engine, version, image, username, database_name, password,
             memory_bytes, cpus)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, x'', ?7, ?8)",
        params![
            new.name,
            new.engine,
            new.version,
            new.image,
            new.username,
            new.database_name,
            new.memory_bytes.map(|m| m as i64),
            new.cpus
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn set_passwords(
    c: &Connection,
    id: i64,
    password: &[u8],
    root_password: Option<&[u8]>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE databases SET password = ?2, root_password = ?3 WHERE id = ?1",
        params![id, password, root_password],
    )?;
    Ok(())
}

pub fn get_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<DatabaseRow>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM databases WHERE name = ?1"),
        [name],
        from_row,
    )
    .optional()
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<DatabaseRow>> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM databases ORDER BY name"))?;
    stmt.query_map([], from_row)?.collect()
}

pub fn set_stopped(c: &Connection, id: i64, stopped: bool) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE databases SET stopped = ?2 WHERE id = ?1",
        params![id, stopped],
    )?;
    Ok(())
}

/// A database's version, image and limits after an update.
pub fn set_runtime(
    c: &Connection,
    id: i64,
    version: &str,
    image: &str,
    memory_bytes: Option<u64>,
    cpus: Option<f64>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE databases SET version = ?2, image = ?3, memory_bytes = ?4, cpus = ?5 WHERE id = ?1",
        params![id, version, image, memory_bytes.map(|m| m as i64), cpus],
    )?;
    Ok(())
}

pub fn set_public_port(c: &Connection, id: i64, port: Option<u16>) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE databases SET public_port = ?2 WHERE id = ?1",
        params![id, port],
    )?;
    Ok(())
}

/// Removes a database's row; false when there was none.
pub fn delete(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM databases WHERE id = ?1", [id])? > 0)
}

/// One app's link to a database, with both names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub app_id: i64,
    pub app: String,
    pub database_id: i64,
    pub database: String,
    pub env: String,
    pub address: String,
    pub created_at: String,
}

const LINK_SELECT: &str =
    "SELECT l.app_id, a.name, l.database_id, d.name, l.env, l.address, l.created_at
     FROM database_links l JOIN apps a ON a.id = l.app_id JOIN databases d ON d.id = l.database_id";

fn link_from_row(r: &Row<'_>) -> rusqlite::Result<LinkRow> {
    Ok(LinkRow {
        app_id: r.get(0)?,
        app: r.get(1)?,
        database_id: r.get(2)?,
        database: r.get(3)?,
        env: r.get(4)?,
        address: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// The links of one app, oldest first.
pub fn links_of_app(c: &Connection, app_id: i64) -> rusqlite::Result<Vec<LinkRow>> {
    let mut stmt = c.prepare(&format!(
        "{LINK_SELECT} WHERE l.app_id = ?1 ORDER BY l.created_at, l.database_id"
    ))?;
    stmt.query_map([app_id], link_from_row)?.collect()
}

/// The links to one database.
pub fn links_to_database(c: &Connection, database_id: i64) -> rusqlite::Result<Vec<LinkRow>> {
    let mut stmt = c.prepare(&format!(
        "{LINK_SELECT} WHERE l.database_id = ?1 ORDER BY a.name"
    ))?;
    stmt.query_map([database_id], link_from_row)?.collect()
}

pub fn insert_link(
    c: &Connection,
    app_id: i64,
    database_id: i64,
    env: &str,
    address: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO database_links (app_id, database_id, env, address) VALUES (?1, ?2, ?3, ?4)",
        params![app_id, database_id, env, address],
    )?;
    Ok(())
}

/// Removes a link; false when there was none.
pub fn delete_link(c: &Connection, app_id: i64, database_id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM database_links WHERE app_id = ?1 AND database_id = ?2",
        params![app_id, database_id],
    )? > 0)
}

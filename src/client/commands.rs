//! One function per subcommand: the API calls it makes and what it prints.
//!
//! Standard output gets the result: a table or details, or with `--json` the API's JSON
//! exactly as the server sent it (one document per command; `logs --json` writes one JSON
//! object per line). While following a deployment its log lines go to standard output as
//! `[stream] line`, or to standard error under `--json`, so that standard output stays one
//! JSON document: the deployment as it ended. Notes for people go to standard error.
//!
//! A secret value is never printed: the API masks it and [`super::format::env`] masks it
//! again.

use std::io::{IsTerminal, Write};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::http::segment;
use super::types::{
    App, Backup, Database, DeletedDatabase, DeployKey, Deployment, End, EnvVar, KnownHost, LogLine,
    Placement, succeeded,
};
use super::{Client, ClientError, format};
use crate::cli::{
    AppCommand, AppCreateArgs, AppSettingsArgs, AppUpdateArgs, Command, DbCommand, DeployArgs,
    DeploymentsArgs, DestinationCommand, EnvCommand, LogsArgs, PlacementArgs, PreviewSettingsArgs,
    RollbackArgs, ScheduleCommand,
};

/// Runs an API command (not `serve` or `token`) and writes its output to `out`.
pub async fn run(command: Command, out: &mut dyn Write) -> Result<(), ClientError> {
    let Some(api) = command.api_args().cloned() else {
        return Err(ClientError::Usage(
            "this command does not talk to the API".to_owned(),
        ));
    };
    let client = Client::from_args(&api)?;
    let json = api.json;
    match command {
        Command::App(a) => app(&client, a.command, json, out).await,
        Command::Env(a) => env(&client, a.command, json, out).await,
        Command::Db(a) => db(&client, a.command, json, out).await,
        Command::Notify(a) => super::notify::run(&client, a.command, json, out).await,
        Command::Preview(a) => super::preview::run(&client, a.command, json, out).await,
        Command::Node(a) => super::nodes::run(&client, a.command, json, out).await,
        Command::Deploy(a) => deploy(&client, a, json, out).await,
        Command::Logs(a) => logs(&client, a, json, out).await,
        Command::Deployments(a) => deployments(&client, a, json, out).await,
        Command::Rollback(a) => rollback(&client, a, json, out).await,
        Command::Serve(_)
        | Command::Token(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::GitCredential { .. } => {
            unreachable!("api_args() is None for these")
        }
    }
}

pub(super) fn app_path(app: &str) -> String {
    format!("/api/apps/{}", segment(app))
}

/// Writes the API's bytes as they came, ending with a newline.
pub(super) fn raw(out: &mut dyn Write, bytes: &Bytes) -> Result<(), ClientError> {
    out.write_all(bytes)?;
    if !bytes.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    Ok(())
}

async fn app(
    client: &Client,
    command: AppCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        AppCommand::Create(args) => {
            let body = create_body(&args, &process_env)?;
            let bytes = client.post("/api/apps", Some(&body)).await?;
            if json {
                return raw(out, &bytes);
            }
            let created: App = client.parse(&bytes)?;
            write!(out, "{}", format::app(&created))?;
            if let Some(secret) = &created.webhook_secret {
                writeln!(out, "webhook secret: {secret}")?;
                eprintln!(
                    "The webhook secret is shown only now; give it to the forge with one of the \
                     webhook URLs above. `POST /api/apps/{}/webhook-secret` makes a new one.",
                    created.name
                );
            }
            Ok(())
        }
        AppCommand::Update(args) => {
            // The API replaces an app's placement whole: start from the app's, so that only
            // the options given change.
            let current = if args.settings.placement.any() {
                let app: App = client.parse(&client.get(&app_path(&args.app)).await?)?;
                Some(app.placement.unwrap_or_default())
            } else {
                None
            };
            let body = update_body(&args, current.as_ref(), &process_env)?;
            let bytes = client.patch(&app_path(&args.app), &body).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::app(&client.parse(&bytes)?))?;
            Ok(())
        }
        AppCommand::List => {
            let bytes = client.get("/api/apps").await?;
            if json {
                return raw(out, &bytes);
            }
            let apps: Vec<App> = client.parse(&bytes)?;
            write!(out, "{}", format::apps(&apps))?;
            Ok(())
        }
        AppCommand::Show { app } => {
            let bytes = client.get(&app_path(&app)).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::app(&client.parse(&bytes)?))?;
            Ok(())
        }
        AppCommand::Delete { app, yes } => {
            if !yes {
                confirm_delete(&app)?;
            }
            let bytes = client.delete(&app_path(&app)).await?;
            if json {
                // 204: nothing to print; a future body would be printed as it came.
                if !bytes.is_empty() {
                    raw(out, &bytes)?;
                }
                return Ok(());
            }
            writeln!(out, "deleted app {app}")?;
            Ok(())
        }
        AppCommand::Start { app } => lifecycle(client, &app, "start", json, out).await,
        AppCommand::Stop { app } => lifecycle(client, &app, "stop", json, out).await,
        AppCommand::Restart { app } => lifecycle(client, &app, "restart", json, out).await,
        AppCommand::Stats { app } => {
            let bytes = client.get(&format!("{}/stats", app_path(&app))).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::app_stats(&client.parse(&bytes)?))?;
            Ok(())
        }
        AppCommand::DeployKey {
            app,
            rotate,
            remove,
        } => deploy_key(client, &app, rotate, remove, json, out).await,
        AppCommand::KnownHosts { app, reset } => known_hosts(client, &app, reset, json, out).await,
        AppCommand::Credential {
            app,
            username,
            remove,
        } => credential(client, &app, username, remove, out).await,
    }
}

/// Shows the deploy key (making one when the app has none), rotates or removes it. The
/// public key alone goes to stdout, so it can be piped.
async fn deploy_key(
    client: &Client,
    app: &str,
    rotate: bool,
    remove: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = format!("{}/deploy-key", app_path(app));
    if remove {
        client.delete(&path).await?;
        if !json {
            writeln!(out, "removed the deploy key of app {app}")?;
            eprintln!("Remove it from the repository's deploy keys on the forge too.");
        }
        return Ok(());
    }
    let (bytes, new) = if rotate {
        (client.post(&path, None).await?, true)
    } else {
        match client.get(&path).await {
            Ok(bytes) => (bytes, false),
            Err(ClientError::Api { code, .. }) if code == "no_deploy_key" => {
                (client.post(&path, None).await?, true)
            }
            Err(e) => return Err(e),
        }
    };
    if json {
        return raw(out, &bytes);
    }
    let key: DeployKey = client.parse(&bytes)?;
    writeln!(out, "{}", key.public_key)?;
    eprintln!(
        "{} deploy key of app {app}, fingerprint {}. Add it to the repository as a read-only \
         deploy key (GitHub: Settings > Deploy keys; GitLab: Settings > Repository > Deploy \
         keys; Gitea: Settings > Deploy Keys){}.",
        if new { "New" } else { "The" },
        key.fingerprint,
        if rotate {
            ", then delete the old one there"
        } else {
            ""
        }
    );
    Ok(())
}

async fn known_hosts(
    client: &Client,
    app: &str,
    reset: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = format!("{}/known-hosts", app_path(app));
    if reset {
        client.delete(&path).await?;
        if !json {
            writeln!(
                out,
                "forgot the SSH host keys of app {app}; its next clone records the key the server presents"
            )?;
        }
        return Ok(());
    }
    let bytes = client.get(&path).await?;
    if json {
        return raw(out, &bytes);
    }
    let hosts: Vec<KnownHost> = client.parse(&bytes)?;
    write!(out, "{}", format::known_hosts(&hosts))?;
    Ok(())
}

/// Stores (the token read from stdin) or removes the app's https credential.
async fn credential(
    client: &Client,
    app: &str,
    username: Option<String>,
    remove: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = format!("{}/git-credential", app_path(app));
    if remove {
        client.delete(&path).await?;
        writeln!(out, "removed the git credential of app {app}")?;
        return Ok(());
    }
    let Some(username) = username else {
        return Err(ClientError::Usage(
            "give --username, or --remove".to_owned(),
        ));
    };
    let token = read_value_stdin("the token").await?;
    client
        .put(&path, &json!({ "username": username, "token": token }))
        .await?;
    writeln!(
        out,
        "stored the git credential of app {app}; it is used from the next deployment on"
    )?;
    Ok(())
}

/// A variable of this process's environment, as `--preview-env` reads it.
fn process_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name)
}

/// The `POST /api/apps` body: only what was given, so the server's defaults apply.
fn create_body(
    a: &AppCreateArgs,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Value, ClientError> {
    let mut body = json!({ "name": a.name });
    if let Some(git) = &a.git {
        body["git_url"] = json!(git);
    }
    if let Some(image) = &a.image {
        body["image"] = json!(image);
    }
    settings_body(&mut body, &a.settings, env)?;
    if a.settings.placement.any() {
        body["placement"] = placement_body(&a.settings.placement, &Placement::default());
    }
    Ok(body)
}

/// The `PATCH /api/apps/{app}` body: only what was given changes. `current` is the app's
/// placement, needed when a placement option is given (the API replaces the placement whole).
fn update_body(
    a: &AppUpdateArgs,
    current: Option<&Placement>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Value, ClientError> {
    let mut body = json!({});
    if let Some(git) = &a.git {
        body["git_url"] = json!(git);
    }
    if let Some(image) = &a.image {
        body["image"] = json!(image);
    }
    if a.clear_domains {
        body["domains"] = json!([]);
    }
    settings_body(&mut body, &a.settings, env)?;
    if a.clear_placement {
        body["placement"] = json!({});
    } else if a.settings.placement.any() {
        let none = Placement::default();
        body["placement"] = placement_body(&a.settings.placement, current.unwrap_or(&none));
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        return Err(ClientError::Usage(
            "nothing to change: give the settings to change (see `rivetr app update --help`)"
                .to_owned(),
        ));
    }
    Ok(body)
}

/// The settings `app create` and `app update` share, added to `body` when given.
fn settings_body(
    body: &mut Value,
    a: &AppSettingsArgs,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(), ClientError> {
    if let Some(branch) = &a.branch {
        body["branch"] = json!(branch);
    }
    if let Some(port) = a.port {
        body["port"] = json!(port);
    }
    if !a.domains.is_empty() {
        body["domains"] = json!(a.domains);
    }
    let mut health = serde_json::Map::new();
    if let Some(p) = &a.health_path {
        health.insert("path".into(), json!(p));
    }
    if let Some(v) = a.health_interval_ms {
        health.insert("interval_ms".into(), json!(v));
    }
    if let Some(v) = a.health_timeout_ms {
        health.insert("timeout_ms".into(), json!(v));
    }
    if let Some(v) = a.health_retries {
        health.insert("retries".into(), json!(v));
    }
    if !health.is_empty() {
        body["healthcheck"] = Value::Object(health);
    }
    let mut resources = serde_json::Map::new();
    if let Some(m) = &a.memory {
        resources.insert("memory".into(), json!(m));
    }
    if let Some(c) = a.cpus {
        resources.insert("cpus".into(), json!(c));
    }
    if !resources.is_empty() {
        body["resources"] = Value::Object(resources);
    }
    if let Some(r) = a.replicas {
        body["replicas"] = json!(r);
    }
    if let Some(previews) = previews_body(&a.previews, env)? {
        body["previews"] = previews;
    }
    Ok(())
}

/// The `placement` object of an app's body: `base` with the parts given replaced.
fn placement_body(p: &PlacementArgs, base: &Placement) -> Value {
    json!({
        "constraints": if p.constraints.is_empty() { &base.constraints } else { &p.constraints },
        "max_per_node": p.max_per_node.unwrap_or(base.max_per_node),
        "spread": if p.spread.is_empty() { &base.spread } else { &p.spread },
    })
}

/// The `previews` object of an app's body, `None` when no preview flag was given. The
/// values of `--preview-env NAME` come from the variables of those names in `env` (this
/// process's environment): never from arguments, which show in `ps` and the shell history.
fn previews_body(
    p: &PreviewSettingsArgs,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Option<Value>, ClientError> {
    let mut out = serde_json::Map::new();
    if let Some(on) = p.previews {
        out.insert("enabled".into(), json!(on.is_on()));
    }
    if let Some(t) = &p.preview_domain_template {
        out.insert("domain_template".into(), json!(t));
    }
    if let Some(n) = p.preview_limit {
        out.insert("limit".into(), json!(n));
    }
    if let Some(on) = p.preview_forks {
        out.insert("forks".into(), json!(on.is_on()));
    }
    if let Some(on) = p.preview_drafts {
        out.insert("drafts".into(), json!(on.is_on()));
    }
    if p.clear_preview_env {
        out.insert("env".into(), json!({}));
    } else if !p.preview_env.is_empty() {
        let mut vars = serde_json::Map::new();
        for name in &p.preview_env {
            if let Some((key, _)) = name.split_once('=') {
                return Err(ClientError::Usage(format!(
                    "--preview-env takes a name only, and reads its value from this command's \
                     environment (a value in the arguments would show in `ps` and the shell \
                     history): `{key}=... rivetr app update APP --preview-env {key}`"
                )));
            }
            if name.is_empty() || name.contains('\0') {
                return Err(ClientError::Usage(format!(
                    "--preview-env {name:?}: not a variable name"
                )));
            }
            let value = env(name).ok_or_else(|| {
                ClientError::Usage(format!(
                    "--preview-env {name}: {name} is not set in this command's environment; \
                     run `{name}=... rivetr app update APP --preview-env {name}` (the value is \
                     read from there, so it stays out of the arguments)"
                ))
            })?;
            let value = value.into_string().map_err(|_| {
                ClientError::Usage(format!("--preview-env {name}: its value is not UTF-8"))
            })?;
            vars.insert(name.clone(), json!(value));
        }
        out.insert("env".into(), Value::Object(vars));
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

fn db_path(db: &str) -> String {
    format!("/api/databases/{}", segment(db))
}

async fn db(
    client: &Client,
    command: DbCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        DbCommand::Create {
            name,
            engine,
            version,
            memory,
            cpus,
        } => {
            let mut body = json!({"name": name, "engine": engine});
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            if let Some(m) = memory {
                body["memory"] = json!(m);
            }
            if let Some(c) = cpus {
                body["cpus"] = json!(c);
            }
            eprintln!("Creating database {name}; waiting until it accepts connections...");
            let bytes = client.post("/api/databases", Some(&body)).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::database(&client.parse(&bytes)?))?;
            Ok(())
        }
        DbCommand::List => {
            let bytes = client.get("/api/databases").await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Database> = client.parse(&bytes)?;
            write!(out, "{}", format::databases(&list))?;
            Ok(())
        }
        DbCommand::Show { db } => {
            let bytes = client.get(&db_path(&db)).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::database(&client.parse(&bytes)?))?;
            Ok(())
        }
        DbCommand::Delete {
            db,
            volumes,
            backups,
            yes,
        } => {
            if !yes {
                confirm(
                    &format!(
                        "Delete database {db}{}{}?",
                        if volumes {
                            " and its data volume (the data is gone)"
                        } else {
                            " (its data volume is kept)"
                        },
                        if backups {
                            " and its backups"
                        } else {
                            " (its backups' files are kept)"
                        }
                    ),
                    &format!("deleting database {db}"),
                    &format!("database {db} not deleted"),
                )?;
            }
            let query: Vec<&str> = [(volumes, "volumes=true"), (backups, "backups=true")]
                .into_iter()
                .filter_map(|(on, q)| on.then_some(q))
                .collect();
            let path = if query.is_empty() {
                db_path(&db)
            } else {
                format!("{}?{}", db_path(&db), query.join("&"))
            };
            let bytes = client.delete(&path).await?;
            if json {
                return raw(out, &bytes);
            }
            let deleted: DeletedDatabase = client.parse(&bytes)?;
            writeln!(out, "{}", deleted.message)?;
            Ok(())
        }
        DbCommand::Update {
            db,
            memory,
            cpus,
            version,
            public_port,
        } => {
            let body = db_update_body(memory, cpus, version, public_port)?;
            let bytes = client.patch(&db_path(&db), &body).await?;
            if json {
                return raw(out, &bytes);
            }
            write!(out, "{}", format::database(&client.parse(&bytes)?))?;
            Ok(())
        }
        DbCommand::Logs { db, follow, tail } => {
            let path = logs_path(&format!("{}/logs", db_path(&db)), tail, follow);
            print_output(client, &path, "the database's", json, out).await
        }
        DbCommand::Start { db } => db_lifecycle(client, &db, "start", json, out).await,
        DbCommand::Stop { db } => db_lifecycle(client, &db, "stop", json, out).await,
        DbCommand::Restart { db } => db_lifecycle(client, &db, "restart", json, out).await,
        DbCommand::Link { db, app, env } => {
            let mut body = json!({"database": db});
            if let Some(env) = env {
                body["env"] = json!(env);
            }
            let bytes = client
                .post(&format!("{}/links", app_path(&app)), Some(&body))
                .await?;
            if json {
                return raw(out, &bytes);
            }
            let link: Value = client.parse(&bytes)?;
            writeln!(
                out,
                "linked app {app} to database {db}: {} from its next deployment (host {})",
                link["env"].as_str().unwrap_or("?"),
                link["host"].as_str().unwrap_or("?")
            )?;
            Ok(())
        }
        DbCommand::Unlink { db, app } => {
            client
                .delete(&format!("{}/links/{}", app_path(&app), segment(&db)))
                .await?;
            if !json {
                writeln!(out, "unlinked app {app} from database {db}")?;
            }
            Ok(())
        }
        DbCommand::Links { app } => {
            let bytes = client.get(&format!("{}/links", app_path(&app))).await?;
            if json {
                return raw(out, &bytes);
            }
            let links: Vec<Value> = client.parse(&bytes)?;
            let rows: Vec<Vec<String>> = links
                .iter()
                .map(|l| {
                    ["database", "engine", "env", "host"]
                        .iter()
                        .map(|k| l[*k].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .collect();
            write!(
                out,
                "{}",
                format::table(&["DATABASE", "ENGINE", "VARIABLE", "HOST"], &rows)
            )?;
            Ok(())
        }
        DbCommand::Backup {
            db,
            no_wait,
            destination,
        } => {
            let mut path = format!("{}/backups", db_path(&db));
            if let Some(d) = destination {
                path.push_str(&format!("?destination={}", segment(&d)));
            }
            db_backup(client, &db, &path, no_wait, json, out).await
        }
        DbCommand::Backups { db } => {
            let bytes = client.get(&format!("{}/backups", db_path(&db))).await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Backup> = client.parse(&bytes)?;
            write!(out, "{}", format::backups(&list))?;
            Ok(())
        }
        DbCommand::Download { db, backup, output } => {
            let path = format!("{}/backups/{backup}/download", db_path(&db));
            let size = client.download(&path, &output).await?;
            if !json {
                writeln!(
                    out,
                    "wrote backup {backup} of {db} to {} ({size} bytes)",
                    output.display()
                )?;
            }
            Ok(())
        }
        // Needs no API: `main` runs it before a client exists.
        DbCommand::Decrypt { .. } => Err(ClientError::Usage(
            "rivetr db decrypt runs on this machine, not through the API".to_owned(),
        )),
        DbCommand::Restore {
            db,
            backup,
            into,
            yes,
        } => {
            if into.is_none() && !yes {
                confirm(
                    &format!(
                        "Restore backup {backup} into database {db}? What the backup holds replaces the same objects now."
                    ),
                    &format!("restoring into database {db}"),
                    &format!("database {db} not restored"),
                )?;
            }
            let mut body = json!({"backup": backup});
            if let Some(into) = &into {
                body["into"] = json!(into);
            }
            eprintln!("Restoring backup {backup} of {db}; checking its SHA-256 first...");
            let bytes = client
                .post(&format!("{}/restore", db_path(&db)), Some(&body))
                .await?;
            if json {
                return raw(out, &bytes);
            }
            let done: Value = client.parse(&bytes)?;
            writeln!(out, "{}", done["message"].as_str().unwrap_or("restored"))?;
            Ok(())
        }
        DbCommand::Schedule { command } => db_schedule(client, command, json, out).await,
        DbCommand::Destination { command } => db_destination(client, command, json, out).await,
    }
}

async fn db_destination(
    client: &Client,
    command: DestinationCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        DestinationCommand::AddS3 {
            name,
            endpoint,
            region,
            bucket,
            prefix,
            path_style,
            access_key_id,
        } => {
            let secret = std::env::var("RIVETR_S3_SECRET_ACCESS_KEY")
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ClientError::Usage(
                        "set RIVETR_S3_SECRET_ACCESS_KEY to the bucket's secret access key"
                            .to_owned(),
                    )
                })?;
            let body = json!({
                "name": name, "kind": "s3", "endpoint": endpoint, "region": region,
                "bucket": bucket, "prefix": prefix, "path_style": path_style,
                "access_key_id": access_key_id, "secret_access_key": secret,
            });
            let bytes = client.post("/api/backup-destinations", Some(&body)).await?;
            if json {
                return raw(out, &bytes);
            }
            writeln!(
                out,
                "added backup destination {name} (s3://{bucket}/{prefix})"
            )?;
            Ok(())
        }
        DestinationCommand::List => {
            let bytes = client.get("/api/backup-destinations").await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Value> = client.parse(&bytes)?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let place = match d["kind"].as_str() {
                        Some("s3") => format!(
                            "{} s3://{}/{}",
                            d["endpoint"].as_str().unwrap_or(""),
                            d["bucket"].as_str().unwrap_or(""),
                            d["prefix"].as_str().unwrap_or("")
                        ),
                        _ => d["directory"].as_str().unwrap_or("").to_owned(),
                    };
                    vec![
                        d["name"].as_str().unwrap_or("").to_owned(),
                        d["kind"].as_str().unwrap_or("").to_owned(),
                        place,
                    ]
                })
                .collect();
            write!(out, "{}", format::table(&["NAME", "KIND", "WHERE"], &rows))?;
            Ok(())
        }
        DestinationCommand::Remove { name } => {
            client
                .delete(&format!("/api/backup-destinations/{}", segment(&name)))
                .await?;
            if !json {
                writeln!(out, "removed backup destination {name}")?;
            }
            Ok(())
        }
    }
}

/// Starts a backup and, unless `no_wait`, polls until it ends.
async fn db_backup(
    client: &Client,
    db: &str,
    start: &str,
    no_wait: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let bytes = client.post(start, None).await?;
    let mut backup: Backup = client.parse(&bytes)?;
    if !no_wait {
        eprintln!(
            "Backing up {db} (backup {}); waiting for the end...",
            backup.id
        );
    }
    while !no_wait && backup.status == "running" {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let bytes = client.get(&format!("{}/backups", db_path(db))).await?;
        let list: Vec<Backup> = client.parse(&bytes)?;
        match list.into_iter().find(|b| b.id == backup.id) {
            Some(now) => backup = now,
            None => {
                return Err(ClientError::Failed(format!(
                    "backup {} of {db} is no longer listed",
                    backup.id
                )));
            }
        }
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&backup).unwrap_or_default()
        )?;
    } else {
        write!(out, "{}", format::backup(&backup))?;
    }
    if backup.status == "failed" {
        return Err(ClientError::Failed(format!(
            "backup {} of {db} failed: {}",
            backup.id,
            backup.error.as_deref().unwrap_or("no reason recorded")
        )));
    }
    Ok(())
}

async fn db_schedule(
    client: &Client,
    command: ScheduleCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        ScheduleCommand::Add {
            db,
            cron,
            keep_last,
            keep_days,
            destination,
        } => {
            let mut body = json!({"cron": cron});
            if let Some(d) = destination {
                body["destination"] = json!(d);
            }
            if let Some(n) = keep_last {
                body["keep_last"] = json!(n);
            }
            if let Some(n) = keep_days {
                body["keep_days"] = json!(n);
            }
            let bytes = client
                .post(&format!("{}/schedules", db_path(&db)), Some(&body))
                .await?;
            if json {
                return raw(out, &bytes);
            }
            let s: Value = client.parse(&bytes)?;
            writeln!(
                out,
                "schedule {} of {db}: `{}` (UTC), next at {}",
                s["id"],
                s["cron"].as_str().unwrap_or("?"),
                s["next_run_at"].as_str().unwrap_or("never")
            )?;
            Ok(())
        }
        ScheduleCommand::List { db } => {
            let bytes = client.get(&format!("{}/schedules", db_path(&db))).await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<Value> = client.parse(&bytes)?;
            let text = |v: &Value| match v {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    [
                        "id",
                        "cron",
                        "keep_last",
                        "keep_days",
                        "last_run_at",
                        "next_run_at",
                    ]
                    .iter()
                    .map(|k| text(&s[*k]))
                    .collect()
                })
                .collect();
            write!(
                out,
                "{}",
                format::table(
                    &["ID", "CRON (UTC)", "KEEP", "DAYS", "LAST RUN", "NEXT RUN"],
                    &rows
                )
            )?;
            Ok(())
        }
        ScheduleCommand::Run { db, id } => {
            let path = format!("{}/schedules/{id}/run", db_path(&db));
            db_backup(client, &db, &path, false, json, out).await
        }
        ScheduleCommand::Remove { db, id } => {
            client
                .delete(&format!("{}/schedules/{id}", db_path(&db)))
                .await?;
            if !json {
                writeln!(out, "removed schedule {id} of {db}; its backups stay")?;
            }
            Ok(())
        }
    }
}

/// The PATCH body of `rivetr db update`: only what was given; `none` removes a limit.
fn db_update_body(
    memory: Option<String>,
    cpus: Option<String>,
    version: Option<String>,
    public_port: Option<String>,
) -> Result<serde_json::Value, ClientError> {
    let mut body = json!({});
    if let Some(m) = memory {
        body["memory"] = if m == "none" { json!(null) } else { json!(m) };
    }
    if let Some(c) = cpus {
        body["cpus"] = if c == "none" {
            json!(null)
        } else {
            json!(c.parse::<f64>().map_err(|_| ClientError::Usage(format!(
                "--cpus {c}: a number such as 1.5, or none"
            )))?)
        };
    }
    if let Some(v) = version {
        body["version"] = json!(v);
    }
    if let Some(p) = public_port {
        body["public_port"] = if p == "none" {
            json!(null)
        } else {
            json!(p.parse::<u16>().map_err(|_| ClientError::Usage(format!(
                "--public-port {p}: a port number, or none"
            )))?)
        };
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        return Err(ClientError::Usage(
            "nothing to change: give --memory, --cpus, --version or --public-port".to_owned(),
        ));
    }
    Ok(body)
}

async fn db_lifecycle(
    client: &Client,
    db: &str,
    op: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let bytes = client.post(&format!("{}/{op}", db_path(db)), None).await?;
    if json {
        return raw(out, &bytes);
    }
    let d: Database = client.parse(&bytes)?;
    writeln!(out, "database {}: {}", d.name, d.status)?;
    Ok(())
}

/// Asks `question` on the terminal; without one, `--yes` is required for `what`.
fn confirm(question: &str, what: &str, declined: &str) -> Result<(), ClientError> {
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(format!(
            "{what} needs --yes when stdin is not a terminal"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(ClientError::Stdin)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(ClientError::Usage(declined.to_owned()))
    }
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm_delete(app: &str) -> Result<(), ClientError> {
    confirm(
        &format!("Delete app {app} with its containers, images, deployments and variables?"),
        &format!("deleting app {app}"),
        &format!("app {app} not deleted"),
    )
}

async fn lifecycle(
    client: &Client,
    app: &str,
    op: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let bytes = client
        .post(&format!("{}/{op}", app_path(app)), None)
        .await?;
    if json {
        return raw(out, &bytes);
    }
    let a: App = client.parse(&bytes)?;
    let state = match (a.stopped, a.running_deployment) {
        (true, _) => "stopped".to_owned(),
        (false, Some(id)) => format!("running deployment {id}"),
        (false, None) => "not deployed".to_owned(),
    };
    writeln!(out, "app {}: {state}", a.name)?;
    Ok(())
}

async fn env(
    client: &Client,
    command: EnvCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        EnvCommand::Set {
            app,
            key,
            value,
            value_stdin,
            secret,
        } => {
            let value = match value {
                Some(v) if v != "-" && !value_stdin => {
                    if secret {
                        eprintln!(
                            "rivetr: note: a value given as an argument stays in the shell \
                             history and the process list; `-` or --value-stdin reads it from \
                             stdin"
                        );
                    }
                    v
                }
                _ => read_value_stdin(&key).await?,
            };
            let path = format!("{}/env/{}", app_path(&app), segment(&key));
            let bytes = client
                .put(&path, &json!({ "value": value, "secret": secret }))
                .await?;
            if json {
                return raw(out, &bytes);
            }
            let var: EnvVar = client.parse(&bytes)?;
            writeln!(
                out,
                "set {}{} on app {app}; it applies at the next deployment",
                var.key,
                if var.secret { " (secret)" } else { "" }
            )?;
            Ok(())
        }
        EnvCommand::Unset { app, key } => {
            let path = format!("{}/env/{}", app_path(&app), segment(&key));
            let bytes = client.delete(&path).await?;
            if json {
                if !bytes.is_empty() {
                    raw(out, &bytes)?;
                }
                return Ok(());
            }
            writeln!(
                out,
                "removed {key} from app {app}; it is gone from the next deployment"
            )?;
            Ok(())
        }
        EnvCommand::List { app } => {
            let bytes = client.get(&format!("{}/env", app_path(&app))).await?;
            if json {
                return raw(out, &bytes);
            }
            let vars: Vec<EnvVar> = client.parse(&bytes)?;
            write!(out, "{}", format::env(&vars))?;
            Ok(())
        }
    }
}

/// The whole of stdin as the value, less one trailing newline (`echo` adds one).
async fn read_value_stdin(key: &str) -> Result<String, ClientError> {
    if std::io::stdin().is_terminal() {
        eprintln!("Value for {key}, then Enter and Ctrl-D:");
    }
    let mut bytes = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut bytes)
        .await
        .map_err(ClientError::Stdin)?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| ClientError::Usage(format!("the value for {key} on stdin is not UTF-8")))
}

async fn deploy(
    client: &Client,
    a: DeployArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let body = match &a.git_ref {
        Some(r) => json!({ "ref": r }),
        None => json!({}),
    };
    let bytes = client
        .post(&format!("{}/deployments", app_path(&a.app)), Some(&body))
        .await?;
    queued(client, bytes, a.follow, json, out).await
}

async fn rollback(
    client: &Client,
    a: RollbackArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let bytes = client
        .post(
            &format!("{}/rollback", app_path(&a.app)),
            Some(&json!({ "deployment_id": a.deployment })),
        )
        .await?;
    queued(client, bytes, a.follow, json, out).await
}

/// After a deployment was queued: print it, or follow it to its end.
async fn queued(
    client: &Client,
    bytes: Bytes,
    follow: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let d: Deployment = client.parse(&bytes)?;
    if !follow {
        if json {
            return raw(out, &bytes);
        }
        writeln!(out, "{}", format::deployment_line(&d))?;
        return Ok(());
    }
    if json {
        eprintln!("{}", format::deployment_line(&d));
    } else {
        writeln!(out, "{}", format::deployment_line(&d))?;
    }
    follow_deployment(client, &d, json, out).await
}

/// Streams a deployment's log until its end event; an error unless it ended running.
pub async fn follow_deployment(
    client: &Client,
    d: &Deployment,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut stream = client
        .events(&format!("/api/deployments/{}/logs?follow=1", d.id))
        .await?;
    let mut end: Option<End> = None;
    while let Some(event) = stream.next().await? {
        match event.event.as_str() {
            "line" => {
                let line: LogLine = client.parse(event.data.as_bytes())?;
                if json {
                    eprintln!("{}", format::log_line(&line));
                } else {
                    writeln!(out, "{}", format::log_line(&line))?;
                }
            }
            "end" => {
                end = Some(client.parse(event.data.as_bytes())?);
                break;
            }
            // The server ended the stream early (its token was revoked).
            "error" => {
                return Err(ClientError::Stream {
                    message: format!(
                        "the log stream of deployment {} ended: {}",
                        d.id, event.data
                    ),
                });
            }
            _ => {}
        }
    }
    drop(stream);
    let Some(end) = end else {
        return Err(ClientError::Stream {
            message: format!(
                "the log stream of deployment {} ended before the deployment did; \
                 `rivetr deployments {}` shows where it stands",
                d.id, d.app
            ),
        });
    };
    let bytes = client.get(&format!("/api/deployments/{}", d.id)).await?;
    let last: Deployment = client.parse(&bytes)?;
    if json {
        raw(out, &bytes)?;
    } else if succeeded(&end.status) {
        writeln!(out, "{}", format::deployment_line(&last))?;
    }
    if succeeded(&end.status) {
        Ok(())
    } else {
        Err(ClientError::DeploymentFailed {
            id: last.id,
            app: last.app,
            status: end.status,
            reason: last.reason,
        })
    }
}

async fn deployments(
    client: &Client,
    a: DeploymentsArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut path = format!("{}/deployments", app_path(&a.app));
    if let Some(limit) = a.limit {
        path.push_str(&format!("?limit={limit}"));
    }
    let bytes = client.get(&path).await?;
    if json {
        return raw(out, &bytes);
    }
    let list: Vec<Deployment> = client.parse(&bytes)?;
    write!(out, "{}", format::deployments(&list))?;
    Ok(())
}

/// The app's output: its stdout lines to stdout and stderr lines to stderr; with `--json`,
/// one `{"stream", "line"}` object per line on stdout.
async fn logs(
    client: &Client,
    a: LogsArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = logs_path(&format!("{}/logs", app_path(&a.app)), a.tail, a.follow);
    print_output(client, &path, "the app's", json, out).await
}

fn logs_path(base: &str, tail: Option<u64>, follow: bool) -> String {
    let mut path = format!("{base}?");
    if let Some(tail) = tail {
        path.push_str(&format!("tail={tail}&"));
    }
    if follow {
        path.push_str("follow=1");
    }
    path.trim_end_matches(['&', '?']).to_owned()
}

/// Prints a stream of containers' output: stdout lines to stdout, stderr lines to stderr,
/// or every line as JSON with `--json`. `whose` names it in errors.
async fn print_output(
    client: &Client,
    path: &str,
    whose: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut stream = client.events(path).await?;
    while let Some(event) = stream.next().await? {
        let stream_name = event.event.as_str();
        match stream_name {
            "stdout" | "stderr" if json => {
                writeln!(
                    out,
                    "{}",
                    json!({ "stream": stream_name, "line": event.data })
                )?;
            }
            "stdout" => writeln!(out, "{}", event.data)?,
            "stderr" => {
                let mut err = std::io::stderr().lock();
                writeln!(err, "{}", event.data)?;
            }
            "error" => {
                return Err(ClientError::Stream {
                    message: format!("{whose} log stream failed: {}", event.data),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<std::ffi::OsString> {
        None
    }

    #[test]
    fn create_sends_only_what_was_given() {
        let args = AppCreateArgs {
            name: "web".into(),
            git: Some("https://git.example/web.git".into()),
            image: None,
            settings: AppSettingsArgs {
                port: Some(3000),
                domains: vec!["a.example".into(), "b.example".into()],
                health_path: Some("/up".into()),
                health_retries: Some(5),
                memory: Some("256M".into()),
                ..AppSettingsArgs::default()
            },
        };
        assert_eq!(
            create_body(&args, &no_env).unwrap(),
            json!({
                "name": "web", "git_url": "https://git.example/web.git", "port": 3000,
                "domains": ["a.example", "b.example"],
                "healthcheck": {"path": "/up", "retries": 5},
                "resources": {"memory": "256M"},
            })
        );
    }

    fn parse_update(args: &[&str]) -> AppUpdateArgs {
        use clap::Parser;
        let words = ["rivetr", "app", "update"].iter().chain(args);
        match crate::cli::Cli::try_parse_from(words).unwrap().command {
            Command::App(a) => match a.command {
                AppCommand::Update(u) => *u,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_sends_only_what_was_given_and_preview_values_from_the_environment() {
        let env = |name: &str| match name {
            "API_URL" => Some("https://staging.example".into()),
            "EMPTY" => Some("".into()),
            _ => None,
        };
        let a = parse_update(&[
            "web",
            "--previews",
            "on",
            "--preview-domain-template",
            "{number}.pr.example",
            "--preview-limit",
            "3",
            "--preview-forks",
            "off",
            "--preview-drafts",
            "on",
            "--preview-env",
            "API_URL",
            "--preview-env",
            "EMPTY",
        ]);
        assert_eq!(
            update_body(&a, None, &env).unwrap(),
            json!({"previews": {
                "enabled": true, "domain_template": "{number}.pr.example", "limit": 3,
                "forks": false, "drafts": true,
                "env": {"API_URL": "https://staging.example", "EMPTY": ""},
            }})
        );
        let a = parse_update(&["web", "--previews", "off", "--port", "9000"]);
        assert_eq!(
            update_body(&a, None, &env).unwrap(),
            json!({"port": 9000, "previews": {"enabled": false}})
        );
        let a = parse_update(&["web", "--clear-preview-env", "--clear-domains"]);
        assert_eq!(
            update_body(&a, None, &env).unwrap(),
            json!({"domains": [], "previews": {"env": {}}})
        );

        // Refused, with nothing sent: a variable that is not set, a value in the arguments,
        // nothing to change.
        let a = parse_update(&["web", "--preview-env", "NOT_SET"]);
        let e = update_body(&a, None, &env).unwrap_err();
        assert!(matches!(e, ClientError::Usage(_)), "{e}");
        assert!(e.to_string().contains("NOT_SET is not set"), "{e}");
        let a = parse_update(&["web", "--preview-env", "TOKEN=hunter2"]);
        let e = update_body(&a, None, &env).unwrap_err();
        assert!(e.to_string().contains("name only"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = update_body(&parse_update(&["web"]), None, &env).unwrap_err();
        assert!(e.to_string().contains("nothing to change"), "{e}");

        // Flags that contradict each other are clap's usage errors.
        use clap::Parser;
        for bad in [
            &["--previews", "maybe"][..],
            &["--preview-env", "A", "--clear-preview-env"],
            &["--domain", "a.example", "--clear-domains"],
            &["--git", "https://g/x.git", "--image", "nginx"],
        ] {
            let words = ["rivetr", "app", "update", "web"].iter().chain(bad);
            assert!(crate::cli::Cli::try_parse_from(words).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placement_options_make_a_whole_placement() {
        use clap::Parser;
        let words = [
            "rivetr",
            "app",
            "create",
            "web",
            "--image",
            "nginx",
            "--constraint",
            "node.role==worker",
            "--constraint",
            "node.labels.zone!=eu-3",
            "--max-per-node",
            "1",
        ];
        let Command::App(a) = crate::cli::Cli::try_parse_from(words).unwrap().command else {
            panic!("not app");
        };
        let AppCommand::Create(args) = a.command else {
            panic!("not create");
        };
        assert_eq!(
            create_body(&args, &no_env).unwrap(),
            json!({
                "name": "web", "image": "nginx",
                "placement": {
                    "constraints": ["node.role==worker", "node.labels.zone!=eu-3"],
                    "max_per_node": 1, "spread": [],
                },
            })
        );

        // On update the API replaces the placement whole: the parts not given come from the
        // app's current one.
        let current = Placement {
            constraints: vec!["node.role==worker".into()],
            max_per_node: 2,
            spread: vec!["node.labels.zone".into()],
        };
        let a = parse_update(&[
            "web",
            "--spread",
            "node.labels.rack",
            "--spread",
            "node.labels.zone",
        ]);
        assert_eq!(
            update_body(&a, Some(&current), &no_env).unwrap(),
            json!({"placement": {
                "constraints": ["node.role==worker"], "max_per_node": 2,
                "spread": ["node.labels.rack", "node.labels.zone"],
            }})
        );
        let a = parse_update(&[
            "web",
            "--max-per-node",
            "0",
            "--constraint",
            "node.role==manager",
        ]);
        assert_eq!(
            update_body(&a, Some(&current), &no_env).unwrap(),
            json!({"placement": {
                "constraints": ["node.role==manager"], "max_per_node": 0,
                "spread": ["node.labels.zone"],
            }})
        );
        let a = parse_update(&["web", "--clear-placement"]);
        assert_eq!(
            update_body(&a, None, &no_env).unwrap(),
            json!({"placement": {}})
        );
        for bad in [
            &["--clear-placement", "--constraint", "node.role==worker"][..],
            &["--clear-placement", "--max-per-node", "1"],
            &["--clear-placement", "--spread", "node.labels.zone"],
            &["--max-per-node", "-1"],
        ] {
            let words = ["rivetr", "app", "update", "web"].iter().chain(bad);
            assert!(crate::cli::Cli::try_parse_from(words).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn app_names_cannot_escape_their_path() {
        assert_eq!(app_path("../tokens"), "/api/apps/..%2Ftokens");
        assert_eq!(app_path(".."), "/api/apps/%2E%2E");
    }
}

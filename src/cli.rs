//! The command line: every subcommand and flag of the `rivetr` binary.
//!
//! Kept in the library (not in `main.rs`) so the man page and shell completions can be
//! generated from the same definition. `serve`, `token`, `backup` and `restore` work on this
//! host's files; the
//! other commands drive a running Rivetr through its API (see [`crate::client`]), and share
//! their flags ([`ApiArgs`]) and exit statuses ([`exit`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rivetr",
    version,
    about = "Self-hosted PaaS: git push to a running container behind HTTPS",
    after_help = TOP_AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The exit statuses, in `rivetr --help` (each API command repeats them in its own help).
const TOP_AFTER_HELP: &str = "\
Exit status: 0 ok, 1 failed, 2 bad usage or configuration. The commands that talk to the API
(app, env, db, notify, preview, node, deploy, logs, deployments, rollback) add 3 not found,
4 unauthorized (wrong or revoked token) and 5 server unreachable; with --follow, 1 also means
the deployment failed.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: API, reverse proxy and deployment engine.
    Serve(ServeArgs),
    /// Manage API tokens directly in the database, as the administrator on the host.
    Token(TokenArgs),
    /// Copy Rivetr's database to a file while it runs (consistent, 0600, without the key).
    Backup(BackupArgs),
    /// Put a database copied by `rivetr backup` back in place; Rivetr must be stopped.
    Restore(RestoreArgs),
    /// Create, list, show, update, delete, start, stop and restart apps (through the API).
    App(AppArgs),
    /// Set, unset and list an app's environment variables (through the API).
    Env(EnvArgs),
    /// Create, list, show, delete, start, stop and restart managed databases (through the API).
    Db(DbArgs),
    /// Notification channels (webhook, Slack, Mattermost, Discord, email) and their deliveries.
    Notify(NotifyArgs),
    /// An app's pull requests and their previews; remove a preview by hand.
    Preview(PreviewArgs),
    /// The swarm's nodes with the apps' tasks on each; drain a node or make it active again.
    Node(NodeArgs),
    /// Deploy an app's branch or a given commit; --follow streams the log.
    Deploy(DeployArgs),
    /// Show an app's output (its containers' stdout and stderr).
    Logs(LogsArgs),
    /// List an app's deployments, newest first.
    Deployments(DeploymentsArgs),
    /// Return an app to an earlier deployment's image, without a build.
    Rollback(RollbackArgs),
    /// git's credential helper for Rivetr's own clones: git runs it, people do not.
    #[command(name = "git-credential", hide = true)]
    GitCredential {
        /// `get`, `store` or `erase`, as git says.
        operation: String,
    },
}

impl Command {
    /// The API settings of a command that talks to a running Rivetr; `None` for the local
    /// ones (`serve`, `token`).
    pub fn api_args(&self) -> Option<&ApiArgs> {
        match self {
            Command::Serve(_)
            | Command::Token(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::GitCredential { .. } => None,
            Command::App(a) => Some(&a.api),
            Command::Env(a) => Some(&a.api),
            Command::Db(a) => Some(&a.api),
            Command::Notify(a) => Some(&a.api),
            Command::Preview(a) => Some(&a.api),
            Command::Node(a) => Some(&a.api),
            Command::Deploy(a) => Some(&a.api),
            Command::Logs(a) => Some(&a.api),
            Command::Deployments(a) => Some(&a.api),
            Command::Rollback(a) => Some(&a.api),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (see rivetr.toml for every key). Without it, built-in defaults.
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Configuration file, read for the state directory (where rivetr.db is).
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it on stdout; it is shown only this once.
    Create {
        /// A name that no other valid token has, such as `ci` or `laptop`.
        #[arg(long)]
        name: String,
    },
    /// List every token: id, name, created, last used, revoked.
    List,
    /// Revoke a token; requests made with it fail from the next one on.
    Revoke {
        /// The token's id, from `rivetr token list`.
        id: i64,
    },
}

const BACKUP_AFTER_HELP: &str = "\
The copy is made with SQLite's online backup API, so Rivetr keeps serving. It holds the
fingerprint of the key that encrypts secrets, not the key: back up the key file apart
(/etc/rivetr/rivetr.key in the packages, else <state dir>/secret.key).

Exit status: 0 written, 1 failed, 2 bad configuration.";

#[derive(Debug, clap::Args)]
#[command(after_long_help = BACKUP_AFTER_HELP)]
pub struct BackupArgs {
    /// Configuration file, read for the state directory (where rivetr.db is).
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG")]
    pub config: Option<PathBuf>,
    /// The file to write (replaced if it exists), or a directory to write
    /// rivetr-<UTC time>.db in.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
}

const RESTORE_AFTER_HELP: &str = "\
Refused while Rivetr runs on the state directory (stop rivetr.service and its sockets), for a
file that is not an intact Rivetr database or was written by a newer Rivetr, and when the key
on this machine is not the one the backup was made with (unless --force). The replaced
database is kept as rivetr.db.before-restore.<UTC time>.bak in the state directory.

Exit status: 0 restored, 1 refused or failed, 2 bad configuration.";

#[derive(Debug, clap::Args)]
#[command(after_long_help = RESTORE_AFTER_HELP)]
pub struct RestoreArgs {
    /// Configuration file, read for the state directory (where rivetr.db is).
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG")]
    pub config: Option<PathBuf>,
    /// The backup to restore, as written by `rivetr backup`.
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// The key file to check the backup against [default: where `rivetr serve` finds it:
    /// $CREDENTIALS_DIRECTORY/rivetr.key, else <state dir>/secret.key]. Packages:
    /// /etc/rivetr/rivetr.key.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Restore even when the key on this machine is missing or is not the backup's; Rivetr
    /// will not start until the right key is in place.
    #[arg(long)]
    pub force: bool,
}

// ---------------------------------------------------------------------------------------
// Commands that drive a running Rivetr through its REST API (see `crate::client`).
// ---------------------------------------------------------------------------------------

/// Exit statuses of the commands that talk to the API, as documented in `--help`, the man
/// pages and the README. `main.rs` decides which one a run ends with.
pub mod exit {
    /// Done; for `--follow`, the deployment ended running.
    pub const OK: u8 = 0;
    /// The server refused or failed the request (other than 401/404), answered something
    /// unexpected, or the followed deployment ended failed, cancelled or superseded.
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration (flags, cli.toml, URL, no token): nothing was sent.
    pub const USAGE: u8 = 2;
    /// The app, deployment, variable, preview or node does not exist (HTTP 404).
    pub const NOT_FOUND: u8 = 3;
    /// The token is missing, wrong or revoked (HTTP 401).
    pub const UNAUTHORIZED: u8 = 4;
    /// The server could not be reached (connection refused, name not found, TLS failure,
    /// timeout).
    pub const UNREACHABLE: u8 = 5;

    /// Every status with what it means, for the documentation.
    pub const TABLE: &[(u8, &str)] = &[
        (OK, "success; with --follow, the deployment ended running"),
        (
            FAILED,
            "the server refused or failed the request, or the followed deployment ended failed, cancelled or superseded",
        ),
        (
            USAGE,
            "bad usage or configuration (flags, cli.toml, URL, no token); nothing was sent",
        ),
        (
            NOT_FOUND,
            "no such app, deployment, variable, preview or node (HTTP 404)",
        ),
        (
            UNAUTHORIZED,
            "the server did not accept the token: wrong or revoked (HTTP 401)",
        ),
        (
            UNREACHABLE,
            "the server could not be reached (refused, unknown host, TLS error, timeout)",
        ),
    ];
}

const API_AFTER_HELP: &str = "\
Exit status: 0 ok (with --follow: the deployment ended running), 1 the server refused or
failed the request or the deployment ended failed/cancelled/superseded, 2 bad usage or
configuration, 3 not found, 4 unauthorized, 5 server unreachable.

The URL and token come from --url/--token, else RIVETR_URL/RIVETR_TOKEN, else
$XDG_CONFIG_HOME/rivetr/cli.toml (default ~/.config/rivetr/cli.toml) with
url = \"...\" and token = \"...\"; the URL defaults to http://127.0.0.1:8080.";

/// Where the API is and how to talk to it; accepted by every API command, before or after
/// its subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApiArgs {
    /// Rivetr's API, such as https://paas.example.com [default: http://127.0.0.1:8080, or
    /// `url` in cli.toml].
    #[arg(long, value_name = "URL", env = "RIVETR_URL", global = true)]
    pub url: Option<String>,
    /// An API token (`rvt_...`). Prefer RIVETR_TOKEN or cli.toml: a flag is visible in the
    /// process list and the shell history.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RIVETR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Extra root certificates (PEM) to trust for an https URL, besides the public web roots.
    #[arg(long, value_name = "PATH", env = "RIVETR_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct AppArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: AppCommand,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app from a git repository (or an image); prints its webhook secret once.
    // Boxed: its many flags would make every variant as large as this one.
    Create(Box<AppCreateArgs>),
    /// Change an app's settings, previews of pull requests included: only what is given
    /// changes. Settings apply at its next deployment; domains change at once.
    // Boxed, as Create.
    Update(Box<AppUpdateArgs>),
    /// List every app.
    List,
    /// An app's running containers' CPU and memory, and its traffic since Rivetr started.
    Stats {
        /// The app's name.
        app: String,
    },
    /// Show one app: source, port, domains, health check, limits, previews, webhook URLs.
    Show {
        /// The app's name.
        app: String,
    },
    /// Delete an app with its containers, images, routes, deployments and variables.
    Delete {
        /// The app's name.
        app: String,
        /// Do not ask; needed when stdin is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Start a stopped app from its running deployment.
    Start {
        /// The app's name.
        app: String,
    },
    /// Stop an app: its routes go and its containers stop.
    Stop {
        /// The app's name.
        app: String,
    },
    /// Stop and start an app.
    Restart {
        /// The app's name.
        app: String,
    },
    /// Print the app's SSH deploy key (made on first use) to add to the repository as a
    /// read-only deploy key; --rotate makes a new one, --remove deletes it.
    DeployKey {
        /// The app's name.
        app: String,
        /// Replace the key with a new one (then replace it on the forge too).
        #[arg(long, conflicts_with = "remove")]
        rotate: bool,
        /// Delete the key; SSH clones stop authenticating.
        #[arg(long)]
        remove: bool,
    },
    /// List the SSH host keys the app's clones recorded; --reset forgets them, for a server
    /// whose key really changed.
    KnownHosts {
        /// The app's name.
        app: String,
        /// Forget the recorded keys: the next clone records the key the server presents.
        #[arg(long)]
        reset: bool,
    },
    /// Store the https credential the app's clones use: --username, and the token on stdin
    /// (so it stays out of the shell history); --remove deletes it.
    Credential {
        /// The app's name.
        app: String,
        /// The user name (GitHub: x-access-token; GitLab: oauth2 or the deploy token's user).
        #[arg(long, required_unless_present = "remove")]
        username: Option<String>,
        /// Delete the stored credential.
        #[arg(long, conflicts_with = "username")]
        remove: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["git", "image"])))]
pub struct AppCreateArgs {
    /// A DNS label: lower-case letters, digits and inner hyphens.
    pub name: String,
    /// The git repository: https, ssh, file:// or an absolute path. A credential in an https
    /// URL (`https://user:token@host/...`) is stored encrypted and never shown.
    #[arg(long, value_name = "URL", alias = "git-url")]
    pub git: Option<String>,
    /// Run this image instead of building from git.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    #[command(flatten)]
    pub settings: AppSettingsArgs,
}

#[derive(Debug, clap::Args)]
pub struct AppUpdateArgs {
    /// The app's name (it cannot change).
    pub app: String,
    /// Build from this git repository from now on (an image app becomes a git app). A
    /// credential in an https URL is stored encrypted and never shown.
    #[arg(long, value_name = "URL", alias = "git-url", conflicts_with = "image")]
    pub git: Option<String>,
    /// Run this image from now on instead of building from git.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Remove every domain: the proxy stops serving the app.
    #[arg(long, conflicts_with = "domains")]
    pub clear_domains: bool,
    /// Remove the app's placement: no constraint, no limit per node, no spread.
    #[arg(long, conflicts_with_all = ["constraints", "max_per_node", "spread"])]
    pub clear_placement: bool,
    #[command(flatten)]
    pub settings: AppSettingsArgs,
}

/// What `app create` and `app update` both set; on update, only what is given changes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppSettingsArgs {
    /// The branch deployed by default and by webhooks [new apps: main].
    #[arg(long)]
    pub branch: Option<String>,
    /// The port the app listens on in its container [new apps: 8080].
    #[arg(long)]
    pub port: Option<u16>,
    /// A host name the proxy serves the app on; repeat for more. On update, the ones given
    /// replace the app's domains.
    #[arg(long = "domain", value_name = "HOST")]
    pub domains: Vec<String>,
    /// The health check's HTTP path [new apps: /].
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,
    /// Milliseconds between health check attempts.
    #[arg(long, value_name = "MS")]
    pub health_interval_ms: Option<u64>,
    /// Milliseconds per health check attempt.
    #[arg(long, value_name = "MS")]
    pub health_timeout_ms: Option<u64>,
    /// Health check attempts before a deployment fails.
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Memory limit: bytes, or a size such as 256M or 1G.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit; fractions allowed.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Containers to run [new apps: 1].
    #[arg(long)]
    pub replicas: Option<u32>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    #[command(flatten)]
    pub previews: PreviewSettingsArgs,
}

/// Where the app's replicas may run when Rivetr deploys to a swarm (ignored on a single
/// engine). On update, each option given replaces that part of the app's placement; the
/// others stay.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Placement on a swarm")]
pub struct PlacementArgs {
    /// A constraint such as node.role==worker or node.labels.zone!=eu-3 (a key under node.
    /// or engine.labels., == or !=, a value); repeat for more, at most 16. On update, the
    /// ones given replace the app's constraints.
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraints: Vec<String>,
    /// At most N replicas of the app on one node, 0 to 1000; 0 for no limit. A deployment
    /// runs the new replicas beside the old ones: leave the nodes room [new apps: 0].
    #[arg(long, value_name = "N")]
    pub max_per_node: Option<u64>,
    /// A node label such as node.labels.zone to spread replicas evenly over; repeat for
    /// more, at most 4. On update, the ones given replace the app's.
    #[arg(long, value_name = "LABEL")]
    pub spread: Vec<String>,
}

impl PlacementArgs {
    /// True when any placement option was given.
    pub fn any(&self) -> bool {
        !self.constraints.is_empty() || self.max_per_node.is_some() || !self.spread.is_empty()
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}

/// How the app's pull requests get previews: each open PR's head deployed as an app of its
/// own, `<app>-pr-<number>`, at the template's host. Only what is given changes.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Previews of pull requests")]
pub struct PreviewSettingsArgs {
    /// Deploy a preview of each open pull request (GitHub, GitLab and Gitea webhooks)
    /// [new apps: off].
    #[arg(long, value_name = "on|off")]
    pub previews: Option<OnOff>,
    /// The previews' host, with {number} (required), {app} and {domain} (the app's first
    /// domain) [new apps: pr-{number}.{domain}].
    #[arg(long, value_name = "TEMPLATE")]
    pub preview_domain_template: Option<String>,
    /// Previews at most at once, 1 to 100; a PR past it gets none, with the reason in
    /// `rivetr preview list` [new apps: 5].
    #[arg(long, value_name = "N")]
    pub preview_limit: Option<u32>,
    /// Preview pull requests from forks: they run code from outside the repository with the
    /// app's environment [new apps: off].
    #[arg(long, value_name = "on|off")]
    pub preview_forks: Option<OnOff>,
    /// Preview draft pull requests [new apps: off].
    #[arg(long, value_name = "on|off")]
    pub preview_drafts: Option<OnOff>,
    /// A variable the previews get on top of the app's, by name: its value is read from
    /// this command's environment; repeat for more. The ones given replace all set before.
    ///
    /// `API_URL=https://staging.example rivetr app update web --preview-env API_URL` gives
    /// the previews API_URL with that value; a name not set in the environment is refused.
    /// The values are secrets (stored encrypted, never shown again), so they are not taken
    /// from arguments, which show in `ps` and the shell history; and there can be several,
    /// so not from stdin either, which holds one (`rivetr env set APP KEY -`). The
    /// environment it is, as RIVETR_NOTIFY_URL for `rivetr notify`. The names given replace
    /// all the previews' variables set before (only their names can be read back): give
    /// every one each time.
    #[arg(long = "preview-env", value_name = "NAME")]
    pub preview_env: Vec<String>,
    /// Remove all the previews' own variables (they keep the app's).
    #[arg(long, conflicts_with = "preview_env")]
    pub clear_preview_env: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add a channel. Its URL is read from RIVETR_NOTIFY_URL and an SMTP password from
    /// RIVETR_SMTP_PASSWORD (never flags: flags show in `ps`); both are stored encrypted. A
    /// webhook's signing secret comes from RIVETR_NOTIFY_SIGNING_SECRET, or is generated and
    /// printed once.
    Add {
        /// A DNS label.
        name: String,
        /// webhook, slack, mattermost, discord or email.
        #[arg(long)]
        kind: String,
        /// Only these events (comma-separated), such as deployment.failed,backup.failed
        /// [default: all].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// email: the SMTP server's host name.
        #[arg(long, value_name = "HOST")]
        smtp_host: Option<String>,
        /// email: its port [default: 587 for starttls, 465 for tls, 25 for none].
        #[arg(long, value_name = "PORT")]
        smtp_port: Option<u16>,
        /// email: starttls, tls or none (a relay on this machine, no password).
        #[arg(long, default_value = "starttls")]
        security: String,
        /// email: the SMTP user (with RIVETR_SMTP_PASSWORD).
        #[arg(long)]
        username: Option<String>,
        /// email: the sender, such as "Rivetr <rivetr@example.com>".
        #[arg(long)]
        from: Option<String>,
        /// email: a recipient; repeat for more.
        #[arg(long)]
        to: Vec<String>,
        /// email: a PEM file of a private CA to trust for the SMTP server.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
    },
    /// List the channels (URLs shown as their host only).
    List,
    /// Change which events a channel gets, turn it on or off, or (with --new-url) replace
    /// its URL with RIVETR_NOTIFY_URL.
    Update {
        name: String,
        /// Only these events (comma-separated); `all` for every event.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Take the URL from RIVETR_NOTIFY_URL.
        #[arg(long)]
        new_url: bool,
    },
    /// Remove a channel and the record of its deliveries.
    Remove { name: String },
    /// Send a test message now; fails (exit 1) with the receiver's words if it is not taken.
    Test { name: String },
    /// The newest deliveries: sent, being retried, or given up and why.
    Deliveries {
        /// Only this channel's.
        #[arg(long)]
        channel: Option<String>,
        /// pending, sent or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: PreviewCommand,
}

#[derive(Debug, Subcommand)]
pub enum PreviewCommand {
    /// List the pull requests Rivetr heard of for an app, newest first: their branch and
    /// commit, their preview's app, host and latest deployment, or why they got none.
    List {
        /// The app's name (the one previewed, not a preview).
        app: String,
    },
    /// Remove the preview of a pull request (its containers, images, route and
    /// certificate), for a close the forge never delivered; only a reopen brings it back.
    Remove {
        /// The app's name (the one previewed, not a preview).
        app: String,
        /// The pull (merge) request's number.
        number: u64,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct NodeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// The nodes of the swarm Rivetr deploys to (`[runtime] engine = "swarm"`); without a swarm
/// these commands fail (exit 1) saying so.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes: id, hostname, role, state, availability, address, labels, and the
    /// tasks of Rivetr's apps on each.
    List,
    /// Drain a node: the swarm moves its tasks to the other nodes, and the routes follow.
    Drain {
        /// The node's id or hostname.
        id: String,
    },
    /// Make a drained node active again: the swarm may place tasks there from now on.
    Activate {
        /// The node's id or hostname.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct DbArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create a database and wait until it accepts connections; its password is generated
    /// and never shown (apps get the URL through a link).
    Create {
        /// A DNS label: lower-case letters, digits and inner hyphens.
        name: String,
        /// postgres, mariadb, mysql or redis.
        #[arg(long)]
        engine: String,
        /// The image's version tag [server default: 16, 11, 8 or 7].
        #[arg(long)]
        version: Option<String>,
        /// Memory limit: bytes, or a size such as 512M or 1G.
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// CPU limit; fractions allowed.
        #[arg(long)]
        cpus: Option<f64>,
    },
    /// List every database.
    List,
    /// Show one database: engine, version, status, volume, network.
    Show {
        /// The database's name.
        db: String,
    },
    /// Delete a database's container and network; its data volume is kept unless --volumes.
    Delete {
        /// The database's name.
        db: String,
        /// Remove the data volume too: the data is gone.
        #[arg(long)]
        volumes: bool,
        /// Remove its backups' files too (by default they stay where they are stored).
        #[arg(long)]
        backups: bool,
        /// Do not ask; needed when stdin is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Change a database's limits, or its version within the major version (16 to 16.4):
    /// its container is recreated on the same volume, so a running database restarts.
    Update {
        /// The database's name.
        db: String,
        /// Memory limit: bytes, a size such as 1G, or `none` to remove it.
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// CPU limit (fractions allowed), or `none` to remove it.
        #[arg(long, value_name = "CPUS")]
        cpus: Option<String>,
        /// Another image tag of the same major version.
        #[arg(long)]
        version: Option<String>,
        /// Forward this TCP port on `[databases] public_address` to the database, for
        /// administrators' tools, or `none` to close it.
        #[arg(long, value_name = "PORT")]
        public_port: Option<String>,
    },
    /// Show a database server's output; --follow keeps streaming it.
    Logs {
        /// The database's name.
        db: String,
        /// Keep streaming new lines until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Start with the last N lines already written [server default: 100].
        #[arg(long, short = 'n', value_name = "N")]
        tail: Option<u64>,
    },
    /// Start a stopped database.
    Start {
        /// The database's name.
        db: String,
    },
    /// Stop a database cleanly; it stays stopped across Rivetr restarts.
    Stop {
        /// The database's name.
        db: String,
    },
    /// Stop and start a database.
    Restart {
        /// The database's name.
        db: String,
    },
    /// Link an app to a database: from the app's next deployment its containers get the
    /// connection URL (and PGHOST and the like) and reach the database by its name.
    Link {
        /// The database's name.
        db: String,
        /// The app's name.
        #[arg(long)]
        app: String,
        /// The variable that gets the URL [server default: DATABASE_URL].
        #[arg(long, value_name = "VAR")]
        env: Option<String>,
    },
    /// Remove an app's link to a database; the database leaves the app's network at once.
    Unlink {
        /// The database's name.
        db: String,
        /// The app's name.
        #[arg(long)]
        app: String,
    },
    /// List an app's links to databases.
    Links {
        /// The app's name.
        #[arg(long)]
        app: String,
    },
    /// Back a database up now (its engine's dump tool, compressed, with a SHA-256) and wait
    /// for the end; exits non-zero when the backup failed.
    Backup {
        /// The database's name.
        db: String,
        /// Answer once the backup has started, without waiting for its end.
        #[arg(long)]
        no_wait: bool,
        /// Where it goes: `local` or an S3 destination's name [server default: local].
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// List a database's backups, newest first, with why failed ones failed.
    Backups {
        /// The database's name.
        db: String,
    },
    /// Download a backup file (gzip, as stored) to a path.
    Download {
        /// The database's name.
        db: String,
        /// The backup's id.
        backup: i64,
        /// Where to write it.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: std::path::PathBuf,
    },
    /// Decrypt a backup encrypted with `[databases] backup_key_file`, here, without a running
    /// Rivetr: what comes out is the gzip file an unencrypted backup is.
    Decrypt {
        /// The encrypted backup (downloaded, or copied from the directory or bucket).
        file: std::path::PathBuf,
        /// A copy of the key file it was encrypted with.
        #[arg(long, value_name = "PATH")]
        key_file: std::path::PathBuf,
        /// Where to write it; `-` for standard output.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: std::path::PathBuf,
    },
    /// Restore a backup into the database (what it holds replaces the same objects; stop
    /// linked apps' writes first if they matter), or into a new database with --into.
    Restore {
        /// The database's name.
        db: String,
        /// The backup's id.
        #[arg(long)]
        backup: i64,
        /// Create this database (same engine and version) and restore into it instead.
        #[arg(long, value_name = "NEW_NAME")]
        into: Option<String>,
        /// Do not ask; needed when stdin is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A database's backup schedules.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Where backups can go: `local` and S3-compatible buckets.
    Destination {
        #[command(subcommand)]
        command: DestinationCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// Add an S3-compatible bucket; the secret key is read from RIVETR_S3_SECRET_ACCESS_KEY
    /// (never a flag: flags show in `ps`) and stored encrypted.
    AddS3 {
        /// A DNS label.
        name: String,
        /// https://s3.eu-west-1.amazonaws.com, http://127.0.0.1:9000, ...
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        bucket: String,
        /// Prepended to each object's key, such as rivetr/.
        #[arg(long, default_value = "")]
        prefix: String,
        /// endpoint/bucket/key addresses (MinIO and most self-hosted servers).
        #[arg(long)]
        path_style: bool,
        #[arg(long, value_name = "ID")]
        access_key_id: String,
    },
    /// List the destinations.
    List,
    /// Remove a destination no schedule uses; what is stored there stays.
    Remove {
        /// The destination's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Back the database up on a cron schedule (five fields, UTC), keeping the newest N
    /// and/or those younger than N days.
    Add {
        /// The database's name.
        db: String,
        /// Minute hour day-of-month month day-of-week, UTC; quote it: "0 3 * * *".
        #[arg(long)]
        cron: String,
        /// Keep this many of the schedule's newest good backups.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep the schedule's good backups younger than this many days.
        #[arg(long, value_name = "DAYS")]
        keep_days: Option<u32>,
        /// Where its backups go: `local` or an S3 destination's name [server default: local].
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// List a database's schedules with their next run.
    List {
        /// The database's name.
        db: String,
    },
    /// Run a schedule's backup now (its retention applies after) and wait for the end.
    Run {
        /// The database's name.
        db: String,
        /// The schedule's id.
        id: i64,
    },
    /// Remove a schedule; the backups it took stay.
    Remove {
        /// The database's name.
        db: String,
        /// The schedule's id.
        id: i64,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct EnvArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set a variable; it applies at the app's next deployment.
    Set {
        /// The app's name.
        app: String,
        /// The variable's name: letters, digits and `_`, not starting with a digit.
        key: String,
        /// The value; `-` reads it from stdin (so it stays out of the shell history).
        #[arg(required_unless_present = "value_stdin", allow_hyphen_values = true)]
        value: Option<String>,
        /// Read the value from stdin (one trailing newline is dropped).
        #[arg(long, conflicts_with = "value")]
        value_stdin: bool,
        /// Encrypt the value at rest and never show it again.
        #[arg(long)]
        secret: bool,
    },
    /// Remove a variable; it is gone from the app's next deployment.
    Unset {
        /// The app's name.
        app: String,
        /// The variable's name.
        key: String,
    },
    /// List an app's variables; secret values are masked.
    List {
        /// The app's name.
        app: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct DeployArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The app's name.
    pub app: String,
    /// A branch or a full commit id [default: the app's branch].
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Stream the deployment's log until it ends; exit 1 unless it ends running.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct LogsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The app's name.
    pub app: String,
    /// Keep streaming new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Start with the last N lines already written [server default: 100].
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<u64>,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct DeploymentsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The app's name.
    pub app: String,
    /// At most this many, newest first [server default: 50].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = API_AFTER_HELP)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The app's name.
    pub app: String,
    /// The earlier deployment to return to (its id, from `rivetr deployments APP`).
    pub deployment: i64,
    /// Stream the rollback's log until it ends; exit 1 unless it ends running.
    #[arg(long, short)]
    pub follow: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// The `rivetr ...` invocations in the README's shell blocks, split into words: the part
    /// after a pipe, up to a comment. Good enough for the README, which quotes nothing there.
    fn readme_commands() -> Vec<Vec<String>> {
        let mut in_sh = false;
        let mut commands = Vec::new();
        for line in include_str!("../README.md").lines() {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            let line = line.split(" #").next().unwrap_or_default();
            let line = line.rsplit("| ").next().unwrap_or_default().trim();
            if in_sh && line.starts_with("rivetr ") {
                commands.push(shell_words(line));
            }
        }
        commands
    }

    /// Splits a command line as the shell would for the README's simple commands: on
    /// whitespace, with double-quoted words kept whole (`--cron "0 3 * * *"`).
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        for (i, part) in line.split('"').enumerate() {
            if i % 2 == 1 {
                words.push(part.to_owned());
            } else {
                words.extend(part.split_whitespace().map(str::to_owned));
            }
        }
        words
    }

    #[test]
    fn every_command_in_the_readme_parses() {
        let commands = readme_commands();
        // The client's examples and the token ones, at least.
        for name in [
            "app",
            "env",
            "deploy",
            "deployments",
            "rollback",
            "logs",
            "token",
        ] {
            assert!(
                commands.iter().any(|c| c[1] == name),
                "no `rivetr {name}` example in the README: {commands:?}"
            );
        }
        for words in commands {
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("README: `{}` does not parse: {e}", words.join(" "));
            }
        }
    }
}

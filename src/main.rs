//! The `rivetr` binary: parses the command line and hands over to the library.
//!
//! Exit codes are decided here and only here: 0 success, 1 a failure while running,
//! 2 bad usage or bad configuration (nothing was started or created). The commands that talk
//! to the API add 3 not found, 4 unauthorized and 5 unreachable ([`rivetr::cli::exit`]).

use std::process::ExitCode;

use clap::Parser;
use rivetr::cli::{
    BackupArgs, Cli, Command, DbArgs, DbCommand, RestoreArgs, ServeArgs, TokenArgs, TokenCommand,
    exit,
};
use rivetr::client::Failure;
use rivetr::config::Config;
use rivetr::systemd;

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Backup(args) => backup(args),
        Command::Restore(args) => restore(args),
        Command::GitCredential { operation } => git_credential(&operation),
        Command::Db(DbArgs {
            command:
                DbCommand::Decrypt {
                    file,
                    key_file,
                    output,
                },
            ..
        }) => decrypt_backup(&file, &key_file, &output),
        command => client(command),
    }
}

/// `rivetr app|env|deploy|logs|deployments|rollback`: through the API of a running Rivetr.
fn client(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rivetr: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let outcome = runtime
        .block_on(rivetr::client::commands::run(command, &mut stdout))
        .and_then(|()| std::io::Write::flush(&mut stdout).map_err(Into::into));
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        // The reader went away (`| head`): nothing to say to anyone.
        Err(e) if e.is_broken_pipe() => ExitCode::from(exit::FAILED),
        Err(e) => {
            eprintln!("rivetr: {e}");
            ExitCode::from(match e.failure() {
                Failure::Usage => exit::USAGE,
                Failure::Failed => exit::FAILED,
                Failure::NotFound => exit::NOT_FOUND,
                Failure::Unauthorized => exit::UNAUTHORIZED,
                Failure::Unreachable => exit::UNREACHABLE,
            })
        }
    }
}

/// `rivetr git-credential <operation>`: run by git during Rivetr's own clones (see
/// `rivetr::engine::git::credential`).
fn git_credential(operation: &str) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match rivetr::engine::git::credential::helper(operation, stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivetr git-credential: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `rivetr token ...`: on the database directly, without the daemon.
fn token(args: TokenArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rivetr: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let state_dir = config.state_dir();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rivetr: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(token_command(&state_dir, args.command, args.json));
    drop(runtime);
    // The database is closed now; hand any side files this process created to its owner.
    rivetr::auth::admin::restore_ownership(&state_dir);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivetr: {e}");
            ExitCode::from(if e.is_usage() {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            })
        }
    }
}

async fn token_command(
    state_dir: &std::path::Path,
    command: TokenCommand,
    json: bool,
) -> Result<(), rivetr::auth::admin::AdminError> {
    use rivetr::auth::admin;
    let db = admin::open_existing(state_dir)?;
    match command {
        TokenCommand::Create { name } => {
            let created = admin::create(&db, &name).await?;
            if json {
                let mut value = serde_json::to_value(&created.row).unwrap_or_default();
                value["token"] = created.token.expose().into();
                println!("{value}");
            } else {
                // The token alone on stdout, so `TOKEN=$(rivetr token create ...)` works.
                println!("{}", created.token.expose());
                eprintln!(
                    "created token {} ({}); it is shown only now",
                    created.row.id, created.row.name
                );
            }
        }
        TokenCommand::List => {
            let rows = admin::list(&db).await?;
            if json {
                println!("{}", serde_json::to_string(&rows).unwrap_or_default());
            } else {
                print!("{}", admin::table(&rows));
            }
        }
        TokenCommand::Revoke { id } => {
            let row = admin::revoke(&db, id).await?;
            if json {
                println!("{}", serde_json::to_string(&row).unwrap_or_default());
            } else {
                println!("revoked token {} ({})", row.id, row.name);
            }
        }
    }
    Ok(())
}

/// The configuration for a command on this host's files, or the exit status that says it is
/// invalid.
fn local_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("rivetr: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `rivetr backup --to PATH`: an online copy of the database, beside a running daemon or not.
fn backup(args: BackupArgs) -> ExitCode {
    let config = match local_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let state_dir = config.state_dir();
    let outcome = rivetr::state_backup::backup(&state_dir, &args.to);
    // Reading a WAL database may create its `-shm` file; as root, give it back.
    rivetr::auth::admin::restore_ownership(&state_dir);
    match outcome {
        Ok(report) => {
            print!("{}", rivetr::state_backup::describe_backup(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rivetr: cannot back up: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `rivetr db decrypt FILE --key-file KEY -o OUT`: no daemon, no API, only the key.
fn decrypt_backup(
    file: &std::path::Path,
    key_file: &std::path::Path,
    output: &std::path::Path,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rivetr: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(rivetr::databases::backups::crypt::decrypt_file(
        file, key_file, output,
    )) {
        Ok(size) if output != std::path::Path::new("-") => {
            eprintln!("wrote {} ({size} bytes, gzip)", output.display());
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivetr: cannot decrypt {}: {e}", file.display());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `rivetr restore --from PATH`: a backup back in place, with the daemon stopped.
fn restore(args: RestoreArgs) -> ExitCode {
    let config = match local_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let opts = rivetr::state_backup::RestoreOptions {
        state_dir: config.state_dir(),
        from: args.from,
        key: args.key,
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(Into::into),
        force: args.force,
    };
    match rivetr::state_backup::restore(&opts) {
        Ok(report) => {
            if let rivetr::state_backup::KeyCheck::Forced(why) = &report.key {
                eprintln!("rivetr: warning (--force): {why}");
            }
            print!("{}", rivetr::state_backup::describe_restore(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rivetr: cannot restore: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // systemd's variables are read and removed while this is the only thread.
    // SAFETY: no other thread exists yet; the tokio runtime is built below.
    let sockets = match unsafe { systemd::listen::take_from_env() } {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("rivetr: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // SAFETY: as above.
    let watchdog = unsafe { systemd::watchdog::take_from_env() };
    rivetr::memory::return_large_blocks_at_once();

    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rivetr: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let log = rivetr::logging::init(&config.log.level);

    // The proxy runs on worker threads of its own (see server::workers); the main runtime
    // carries the API, the engine and the timers, for which two threads are plenty.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rivetr")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let opts = rivetr::server::Options {
        config_path: args.config,
        config,
        sockets,
        watchdog,
        log,
    };
    match runtime.block_on(rivetr::server::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "rivetr stopped with an error");
            eprintln!("rivetr: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

//! The `rivetr` binary: parses the command line and hands over to the library.
//!
//! Exit codes are decided here and only here: 0 success, 1 a failure while running,
//! 2 bad usage or bad configuration (nothing was started or created).

use std::process::ExitCode;

use clap::Parser;
use rivetr::cli::{Cli, Command, ServeArgs};
use rivetr::config::Config;
use rivetr::systemd;

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
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

//! Writes Rivetr's man pages and shell completions into a directory; `packaging/build.sh` runs
//! it as `cargo run --release --example generate-assets -- DIR`.
//!
//! It is an example rather than a subcommand of `rivetr` so the product's own command line,
//! and the completions generated from it, carry no packaging-only entry.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: generate-assets DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match rivetr::generate::write_all(&dir) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("generate-assets: cannot write to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

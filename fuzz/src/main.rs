//! Rivetr's fuzz targets, one binary for all of them (one link of Rivetr instead of one per
//! target): `rivetr-fuzz TARGET` reads inputs the way AFL++ hands them over (persistent mode
//! under `cargo afl fuzz`, one input on stdin otherwise, which is how a crash is replayed).
//! Each target checks properties beyond "does not panic" where they are cheap; a failed
//! property is a panic, so AFL++ records it as a crash. `scripts/fuzz.sh` builds and runs them.

mod chunked;
mod conn;
mod deploy_toml;
mod request_head;
mod response_head;
mod rivetr_toml;
mod webhook;

/// Every target: its name (the folder of its seeds under `fuzz/seeds/`) and what it checks.
const TARGETS: [(&str, fn(&[u8])); 6] = [
    ("request_head", request_head::check),
    ("response_head", response_head::check),
    ("chunked", chunked::check),
    ("deploy_toml", deploy_toml::check),
    ("rivetr_toml", rivetr_toml::check),
    ("webhook", webhook::check),
];

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "--list" {
        for (name, _) in TARGETS {
            println!("{name}");
        }
        return;
    }
    let Some(&(_, check)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        eprintln!("usage: rivetr-fuzz TARGET (one of: --list to print them)");
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| check(data));
}

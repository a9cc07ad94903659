//! Build steps that are not Rust:
//!
//! - Link settings for the release binary: the functions an idle daemon runs are laid out next
//!   to each other (link/startup-symbols.txt, written by scripts/startup-order.sh), so the
//!   kernel maps a few MB of the binary instead of most of it. Only lld (Rust's default linker
//!   on x86_64 Linux) knows the option; other targets link as usual.
//! - The dashboard (cargo feature `dashboard`, on by default): `npm ci` and `npm run build` in
//!   `frontend/` when its sources change, into `OUT_DIR`, precompressed (gzip and brotli) by
//!   `frontend/scripts/precompress.mjs`; then a table of the files for `src/ui.rs` to embed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    link_order();
    if std::env::var_os("CARGO_FEATURE_DASHBOARD").is_some() {
        dashboard();
    }
}

fn link_order() {
    const ORDER: &str = "link/startup-symbols.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let lld_by_default = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    if release && lld_by_default && manifest_dir().join(ORDER).exists() {
        // Relative: rustc and its linker run in the package's folder. Cargo keeps this
        // script's output while its inputs stay unchanged, also when the checkout moves and
        // the build folder goes with it; an absolute path would name the old checkout.
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={ORDER}");
        // The list goes stale as the code changes; a missing name is expected, not an error.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
}

/// What the dashboard's build reads: a change to any of them rebuilds it.
const FRONTEND_SOURCES: &[&str] = &[
    "src",
    "public",
    "scripts",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn dashboard() {
    let frontend = manifest_dir().join("frontend");
    for source in FRONTEND_SOURCES {
        println!("cargo:rerun-if-changed=frontend/{source}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out.join("dashboard");
    check_node();
    if needs_install(&frontend) {
        npm(&frontend, &["ci", "--no-audit", "--no-fund"], &dist);
    }
    let _ = std::fs::remove_dir_all(&dist);
    npm(&frontend, &["run", "build"], &dist);
    write_table(&dist, &out.join("dashboard_files.rs"));
}

/// Fails the build with what to do when Node.js is missing: install it, or leave the
/// dashboard out.
fn check_node() {
    let found = Command::new("node").arg("--version").output();
    let version = match found {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => fail_without_node(&format!(
            "`node --version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => fail_without_node(&format!("cannot run `node`: {e}")),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        fail_without_node(&format!("found Node.js {version}, which is too old"));
    }
}

fn fail_without_node(why: &str) -> ! {
    panic!(
        "\n\nThe dashboard (cargo feature `dashboard`, on by default) is built with Node.js 20.19 \
         or newer and npm: {why}.\nEither install Node.js 20.19+ with npm and build again, or \
         build a binary without the dashboard:\n    cargo build --release --no-default-features\n\
         (its `/` then says that it has no dashboard; the API and the CLI work the same).\n\n"
    );
}

/// `npm ci` is needed when `node_modules` is missing or older than the lock file (npm writes
/// `node_modules/.package-lock.json` on every install).
fn needs_install(frontend: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&frontend.join("node_modules/.package-lock.json")),
        modified(&frontend.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn npm(frontend: &Path, args: &[&str], dist: &Path) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(frontend)
        .env("RIVETR_DASHBOARD_OUT", dist)
        .output()
        .unwrap_or_else(|e| fail_without_node(&format!("cannot run `npm`: {e}")));
    if !output.status.success() {
        panic!(
            "\n\n`npm {}` in {} failed ({}):\n{}\n{}\n",
            args.join(" "),
            frontend.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Turns `manifest.tsv` (path, content type, digest, gzip?, brotli?; written by the
/// precompress script) into a Rust table of `include_bytes!`.
fn write_table(dist: &Path, table: &Path) {
    let manifest = std::fs::read_to_string(dist.join("manifest.tsv"))
        .unwrap_or_else(|e| panic!("the dashboard build wrote no manifest.tsv: {e}"));
    let mut rust = String::from("pub static FILES: &[Asset] = &[\n");
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [path, mime, digest, gzip, brotli] = fields[..] else {
            panic!("bad line in the dashboard's manifest.tsv: {line:?}");
        };
        let file = dist.join(path.trim_start_matches('/'));
        let include = |suffix: &str, present: &str| {
            if present == "1" {
                format!(
                    "Some(include_bytes!({:?}))",
                    format!("{}{suffix}", file.display())
                )
            } else {
                "None".to_owned()
            }
        };
        rust.push_str(&format!(
            "    Asset {{ path: {path:?}, content_type: {mime:?}, digest: {digest:?}, \
             identity: include_bytes!({:?}), gzip: {}, brotli: {} }},\n",
            file.display().to_string(),
            include(".gz", gzip),
            include(".br", brotli),
        ));
    }
    rust.push_str("];\n");
    std::fs::write(table, rust).expect("write the dashboard's file table");
}

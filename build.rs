//! Link settings for the release binary: the functions an idle daemon runs are laid out next
//! to each other (link/startup-symbols.txt, written by scripts/startup-order.sh), so the
//! kernel maps a few MB of the binary instead of most of it. Only lld (Rust's default linker
//! on x86_64 Linux) knows the option; other targets link as usual.

fn main() {
    const ORDER: &str = "link/startup-symbols.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let lld_by_default = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = std::path::Path::new(&root).join(ORDER);
    if release && lld_by_default && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // The list goes stale as the code changes; a missing name is expected, not an error.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

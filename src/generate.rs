//! Files generated from the command line definition for the packages: the man pages
//! (`rivetr(1)` and one page per subcommand) and the bash, zsh and fish completions.
//!
//! They are produced from [`crate::cli::Cli`], the same definition the binary parses, so they
//! cannot drift from it. `packaging/build.sh` writes them with the `generate-assets` example
//! (`examples/generate-assets.rs`) and the packages install them in their standard paths.
//! This module owns nothing the daemon uses at run time.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// Sections appended to `rivetr(1)`: where the packaged files live and what to read next.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/rivetr/rivetr.toml",
        "The configuration; every key is documented in it. Read again on SIGHUP.",
    ),
    (
        "/etc/rivetr/rivetr.key",
        "The key that encrypts secrets at rest, handed to the service as the credential rivetr.key.",
    ),
    (
        "/var/lib/rivetr/rivetr.db",
        "The SQLite database (StateDirectory=rivetr).",
    ),
];
const SEE_ALSO: &[(&str, &str)] = &[
    ("systemctl", "1"),
    ("journalctl", "1"),
    ("systemd.socket", "5"),
    ("podman", "1"),
];

/// Writes every generated file into `out_dir` (created if missing) and returns their paths:
/// `rivetr.1`, `rivetr-<subcommand>.1`, `rivetr.bash`, `_rivetr` (zsh) and `rivetr.fish`.
pub fn write_all(out_dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(out_dir)?;
    let mut written = man_pages(out_dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        written.push(clap_complete::generate_to(
            shell, &mut cmd, "rivetr", out_dir,
        )?);
    }
    Ok(written)
}

fn man_pages(out_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("rivetr {}", crate::VERSION);
    let page = |cmd: clap::Command| Man::new(cmd).source(source.clone()).manual("Rivetr Manual");

    let mut written = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.push(page(sub.clone()).generate_to(out_dir)?);
    }

    let main = page(cmd);
    let path = out_dir.join(main.get_filename());
    let mut text = Vec::new();
    main.render(&mut text)?;
    text.extend_from_slice(extra_sections().to_roff().as_bytes());
    fs::write(&path, text)?;
    written.push(path);
    Ok(written)
}

fn extra_sections() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []);
        roff.text([italic(*path)]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for (i, (page, section)) in SEE_ALSO.iter().enumerate() {
        if i > 0 {
            refs.push(roman(", "));
        }
        refs.push(bold(*page));
        refs.push(roman(format!("({section})")));
    }
    roff.text(refs);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn writes_man_pages_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("assets");
        let mut names: Vec<String> = write_all(&out)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| format!("rivetr-{}.1", s.get_name()))
            .chain(["_rivetr", "rivetr.1", "rivetr.bash", "rivetr.fish"].map(String::from))
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        assert!(names.contains(&"rivetr-serve.1".to_owned()));

        let man = read(&out, "rivetr.1");
        assert!(man.contains(".TH rivetr 1"), "{man}");
        assert!(man.contains(&format!("rivetr {}", crate::VERSION)), "{man}");
        assert!(man.contains("rivetr\\-serve(1)"), "{man}");
        assert!(man.contains(".SH FILES") && man.contains("/etc/rivetr/rivetr.toml"));
        assert!(man.contains(".SH \"SEE ALSO\""), "{man}");

        let serve = read(&out, "rivetr-serve.1");
        assert!(serve.contains("\\-\\-config"), "{serve}");
        assert!(serve.contains("RIVETR_CONFIG"), "{serve}");

        let bash = read(&out, "rivetr.bash");
        assert!(bash.contains("complete -F _rivetr"), "{bash}");
        assert!(bash.contains("--config"), "{bash}");
        assert!(read(&out, "_rivetr").starts_with("#compdef rivetr"));
        let fish = read(&out, "rivetr.fish");
        assert!(fish.contains("complete -c rivetr"), "{fish}");
        assert!(fish.contains("serve"), "{fish}");
    }
}

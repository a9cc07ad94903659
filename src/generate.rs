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
    (CLI_TOML, CLI_TOML_WHAT),
];
/// The client's settings file, in FILES of `rivetr(1)` and of the client commands' pages.
const CLI_TOML: &str = "$XDG_CONFIG_HOME/rivetr/cli.toml (default ~/.config/rivetr/cli.toml)";
const CLI_TOML_WHAT: &str = "Settings of the commands that talk to the API: url = \"...\", token = \"rvt_...\" \
     and ca_file = \"...\". Flags and RIVETR_URL, RIVETR_TOKEN, RIVETR_CA_FILE win over it. A file \
     holding a token is refused unless only its owner can read and write it (chmod 600).";
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
        if !talks_to_api(sub) {
            written.push(page(sub.clone()).generate_to(out_dir)?);
            continue;
        }
        // The exit statuses are in `--help` as trailing text; the page gets them as a
        // section of their own, with the settings file.
        let man = page(sub.clone().after_long_help(None::<&str>));
        let path = out_dir.join(man.get_filename());
        let mut text = Vec::new();
        man.render(&mut text)?;
        text.extend_from_slice(client_sections().to_roff().as_bytes());
        fs::write(&path, text)?;
        written.push(path);
    }

    // The exit statuses are trailing text in `--help`; the page has its own section.
    let main = page(cmd.after_help(None::<&str>));
    let path = out_dir.join(main.get_filename());
    let mut text = Vec::new();
    main.render(&mut text)?;
    let mut extra = Roff::new();
    exit_status(&mut extra);
    text.extend_from_slice(extra.to_roff().as_bytes());
    text.extend_from_slice(extra_sections().to_roff().as_bytes());
    fs::write(&path, text)?;
    written.push(path);
    Ok(written)
}

/// True for the commands that drive a running Rivetr through its API (they take the token
/// from RIVETR_TOKEN).
fn talks_to_api(cmd: &clap::Command) -> bool {
    cmd.get_arguments()
        .any(|a| a.get_env() == Some(std::ffi::OsStr::new("RIVETR_TOKEN")))
}

/// EXIT STATUS of the API commands (`serve` and `token` use 0, 1 and 2 alike).
fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "rivetr serve and rivetr token exit with 0, 1 or 2 as below; the commands that talk to the API use them all:",
    )]);
    for (code, what) in crate::cli::exit::TABLE {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*what)]);
    }
}

fn client_sections() -> Roff {
    let mut roff = Roff::new();
    exit_status(&mut roff);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([italic(CLI_TOML)]);
    roff.text([roman(CLI_TOML_WHAT)]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold("rivetr"), roman("(1)")]);
    roff
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

        assert!(man.contains(".SH \"EXIT STATUS\""), "{man}");
        assert!(!man.contains(".SH EXTRA"), "{man}");
        assert!(man.contains("cli.toml"), "{man}");
        for name in [
            "app",
            "env",
            "deploy",
            "logs",
            "deployments",
            "rollback",
            "token",
        ] {
            assert!(
                man.contains(&format!("rivetr\\-{name}(1)")),
                "{name}: {man}"
            );
        }

        // Every command that talks to the API has a page with its exit statuses and the
        // settings file; the exit statuses are not left as clap's trailing text.
        for name in ["app", "env", "deploy", "logs", "deployments", "rollback"] {
            let page = read(&out, &format!("rivetr-{name}.1"));
            assert!(page.contains(".SH \"EXIT STATUS\""), "{name}: {page}");
            for (code, _) in crate::cli::exit::TABLE {
                assert!(
                    page.contains(&format!("\\fB{code}\\fR")),
                    "{name} lacks {code}: {page}"
                );
            }
            assert!(page.contains("RIVETR_TOKEN"), "{name}: {page}");
            assert!(page.contains("cli.toml"), "{name}: {page}");
            assert!(!page.contains(".SH EXTRA"), "{name}: {page}");
        }
        let app = read(&out, "rivetr-app.1");
        for sub in [
            "create", "list", "show", "delete", "start", "stop", "restart",
        ] {
            assert!(
                app.contains(&format!("rivetr\\-app\\-{sub}")),
                "{sub}: {app}"
            );
        }
        assert!(!read(&out, "rivetr-serve.1").contains("EXIT STATUS"));

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

//! Where the command-line client finds Rivetr and its token: flags, then `RIVETR_URL` /
//! `RIVETR_TOKEN` / `RIVETR_CA_FILE` (clap reads both, a flag winning), then the file
//! `$XDG_CONFIG_HOME/rivetr/cli.toml` (`~/.config/rivetr/cli.toml` without it), then the
//! default URL. Each setting is resolved on its own, so a flag can change the URL while the
//! token still comes from the file.
//!
//! A file holding a token is refused when other users can read it, or when anyone but its
//! owner can write it (who can write it can point the token at their own server). The
//! token never appears in an error message or a `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The URL used when no flag, variable or file gives one: the daemon's default API address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{} holds a token but is {what} (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Unsafe {
        path: PathBuf,
        what: &'static str,
        mode: u32,
    },
    #[error("invalid URL `{url}`: {message}")]
    Url { url: String, message: String },
    #[error(
        "no API token: pass --token, set RIVETR_TOKEN, or put `token = \"rvt_...\"` in {file} \
         (on the server, `rivetr token create --name NAME` makes one)"
    )]
    NoToken { file: String },
    #[error("the token from {from} is not usable in an HTTP header (a stray character?)")]
    BadToken { from: &'static str },
    #[error("cannot load the CA file {}: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
}

/// An API token. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: String) -> Token {
        Token(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The contents of cli.toml.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub token: Option<String>,
    /// Extra root certificates (PEM) for an https URL; relative to the file's directory.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What the client runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub token: Token,
    pub ca_file: Option<PathBuf>,
}

/// The settings given on the command line or in the environment (clap has merged the two).
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub url: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/rivetr/cli.toml`, else `$HOME/.config/rivetr/cli.toml`. XDG says a
/// relative `XDG_CONFIG_HOME` is to be ignored.
pub fn default_path(
    xdg_config_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })?;
    Some(base.join("rivetr").join("cli.toml"))
}

/// The path for this process's environment.
pub fn path_from_env() -> Option<PathBuf> {
    default_path(
        std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()),
        std::env::var_os("HOME").filter(|v| !v.is_empty()),
    )
}

/// Reads cli.toml; `Ok(None)` when it does not exist.
pub fn load_file(path: &Path) -> Result<Option<FileConfig>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        message: toml_message(&text, &e),
    })?;
    if file.token.is_some() {
        check_private(path)?;
    }
    if let Some(ca) = &file.ca_file
        && ca.is_relative()
        && let Some(dir) = path.parent()
    {
        file.ca_file = Some(dir.join(ca));
    }
    Ok(Some(file))
}

/// A TOML error with its line, and without the source excerpt (which could hold the token).
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().trim();
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message.to_owned(),
    }
}

/// Refuses a file others can read, or others can write.
fn check_private(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    let what = if mode & 0o004 != 0 {
        "readable by every user"
    } else if mode & 0o022 != 0 {
        "writable by others than its owner"
    } else if mode & 0o040 != 0 {
        "readable by its group"
    } else {
        return Ok(());
    };
    Err(ConfigError::Unsafe {
        path: path.to_owned(),
        what,
        mode,
    })
}

/// Resolves each setting: given (flag or variable), else the file, else the default.
/// `file_path` is only for messages.
pub fn resolve(
    given: Given,
    file: Option<FileConfig>,
    file_path: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let file = file.unwrap_or_default();
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let url = non_empty(given.url)
        .or_else(|| non_empty(file.url))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let (token, from) = match non_empty(given.token) {
        Some(t) => (Some(t), "--token or RIVETR_TOKEN"),
        None => (non_empty(file.token), "cli.toml"),
    };
    let Some(token) = token else {
        return Err(ConfigError::NoToken {
            file: file_path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.config/rivetr/cli.toml".to_owned()),
        });
    };
    if token
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return Err(ConfigError::BadToken { from });
    }
    let ca_file = given
        .ca_file
        .filter(|p| !p.as_os_str().is_empty())
        .or(file.ca_file);
    Ok(Settings {
        url,
        token: Token::new(token),
        ca_file,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("cli.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn xdg_config_home_wins_over_home_and_relative_ones_are_ignored() {
        let p = default_path(Some("/x/conf".into()), Some("/home/u".into())).unwrap();
        assert_eq!(p, Path::new("/x/conf/rivetr/cli.toml"));
        let p = default_path(Some("rel".into()), Some("/home/u".into())).unwrap();
        assert_eq!(p, Path::new("/home/u/.config/rivetr/cli.toml"));
        let p = default_path(None, Some("/home/u".into())).unwrap();
        assert_eq!(p, Path::new("/home/u/.config/rivetr/cli.toml"));
        assert_eq!(default_path(None, None), None);
    }

    #[test]
    fn each_setting_is_resolved_on_its_own() {
        let file = FileConfig {
            url: Some("https://file.example".into()),
            token: Some("rvt_file".into()),
            ca_file: None,
        };
        let s = resolve(
            Given {
                url: Some("http://flag:1".into()),
                ..Given::default()
            },
            Some(file),
            None,
        )
        .unwrap();
        assert_eq!(s.url, "http://flag:1");
        assert_eq!(s.token.expose(), "rvt_file");

        let s = resolve(
            Given {
                token: Some(" rvt_given \n".into()),
                url: Some(String::new()),
                ..Given::default()
            },
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.url, DEFAULT_URL, "an empty URL counts as not given");
        assert_eq!(s.token.expose(), "rvt_given", "whitespace is trimmed");
    }

    #[test]
    fn no_token_names_the_places_to_put_one() {
        let e = resolve(
            Given::default(),
            None,
            Some(Path::new("/c/rivetr/cli.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--token") && e.contains("RIVETR_TOKEN"), "{e}");
        assert!(e.contains("/c/rivetr/cli.toml"), "{e}");
        let e = resolve(
            Given {
                token: Some("rvt_a\nb".into()),
                ..Given::default()
            },
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::BadToken { .. }), "{e}");
        assert!(!e.to_string().contains("rvt_a"), "{e}");
    }

    #[test]
    fn a_file_with_a_token_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let text = "url = \"http://h:1\"\ntoken = \"rvt_secretvalue\"\n";
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o644, false),
            (0o640, false),
            (0o620, false),
            (0o602, false),
        ] {
            let p = write(dir.path(), text, mode);
            let got = load_file(&p);
            assert_eq!(got.is_ok(), ok, "mode {mode:o}: {got:?}");
            if let Err(e) = got {
                let e = e.to_string();
                assert!(e.contains("chmod 600"), "{e}");
                assert!(!e.contains("secretvalue"), "{e}");
            }
        }
        // Without a token, the file may be public.
        let p = write(dir.path(), "url = \"http://h:1\"\n", 0o644);
        let f = load_file(&p).unwrap().unwrap();
        assert_eq!(f.url.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn unknown_keys_and_bad_syntax_name_the_line_but_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "token = \"rvt_secretvalue\"\nulr = \"x\"\n",
            0o600,
        );
        let e = load_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("ulr"), "{e}");
        assert!(!e.contains("secretvalue"), "{e}");
        let p = write(dir.path(), "token = \"rvt_secretvalue\n", 0o600);
        let e = load_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(!e.contains("secretvalue"), "{e}");
        assert!(
            load_file(&dir.path().join("missing.toml"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_relative_ca_file_is_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ca_file = \"ca.pem\"\n", 0o644);
        let f = load_file(&p).unwrap().unwrap();
        assert_eq!(f.ca_file.unwrap(), dir.path().join("ca.pem"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let f = FileConfig {
            url: None,
            token: Some("rvt_secretvalue".into()),
            ca_file: None,
        };
        assert!(!format!("{f:?}").contains("secretvalue"));
        let t = Token::new("rvt_secretvalue".into());
        assert!(!format!("{t:?}").contains("secretvalue"));
    }
}

//! Configuration errors, and the deserialization that gives them a file, a line and a key.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A problem in the file, located by line and key.
    #[error("{file}:{line}: {}{message}", key_prefix(key))]
    File {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    /// A problem in a `RIVETR_*` environment variable.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("key `{key}`: ")
    }
}

/// Deserializes `text`, turning any error into [`ConfigError::File`] with the 1-based line
/// of the offending span and the dotted path of the key (`server.api_listen`).
pub fn deserialize_with_location<T: DeserializeOwned>(
    source: &str,
    text: &str,
) -> Result<T, ConfigError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| toml_error(source, text, &e, ""))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // A `toml::Spanned` value adds a private segment to the path; the key is its parent.
        let path = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        toml_error(source, text, e.inner(), &path)
    })
}

fn toml_error(source: &str, text: &str, error: &toml::de::Error, path: &str) -> ConfigError {
    let message = error.message().trim().to_owned();
    let line = error
        .span()
        .map(|span| line_of(text, span.start))
        .unwrap_or(1);
    // serde reports an unknown field at its parent; name the field itself.
    let key = match unknown_field(&message) {
        Some(field) if path.is_empty() || path == "." => field.to_owned(),
        Some(field) if path == field || path.ends_with(&format!(".{field}")) => path.to_owned(),
        Some(field) => format!("{path}.{field}"),
        None if path == "." => String::new(),
        None => path.to_owned(),
    };
    ConfigError::File {
        file: source.to_owned(),
        line,
        key,
        message,
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// An error for a problem found after deserializing: located at the `nth` line of `text`
/// containing `needle` (the last such line if there are fewer), or line 1.
pub(super) fn located(
    source: &str,
    text: &str,
    needle: &str,
    nth: usize,
    key: &str,
    message: String,
) -> ConfigError {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle) && !l.trim_start().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect();
    let line = lines
        .get(nth.saturating_sub(1))
        .or(lines.last())
        .copied()
        .unwrap_or(1);
    ConfigError::File {
        file: source.to_owned(),
        line,
        key: key.to_owned(),
        message,
    }
}

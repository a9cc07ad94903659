//! `RIVETR_<SECTION>_<KEY>` environment overrides.
//!
//! Section names never contain `_`, so `RIVETR_SERVER_API_LISTEN` splits unambiguously into
//! section `server` and key `api_listen`. A variable whose first word is not a section
//! (`RIVETR_URL`, `RIVETR_TOKEN`, `RIVETR_TEST_*`) belongs to someone else and is left alone;
//! one that names a section but an unknown key is an error, like an unknown key in the file.

use super::{Config, ConfigError};

pub(super) struct Override {
    var: String,
    section: String,
    key: String,
    value: String,
}

/// Picks the variables that address a config section.
pub(super) fn overrides(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let defaults = default_table();
    let mut found = Vec::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("RIVETR_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !defaults.contains_key(section) {
            continue;
        }
        if key.is_empty() {
            return Err(ConfigError::Env {
                var,
                message: "names a section but no key".to_owned(),
            });
        }
        found.push(Override {
            section: section.to_owned(),
            key: key.to_owned(),
            var,
            value,
        });
    }
    Ok(found)
}

/// Merges the overrides over the (already validated) file and deserializes the result.
pub(super) fn apply(
    source: &str,
    text: &str,
    overrides: &[Override],
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
        file: source.to_owned(),
        line: 1,
        key: String::new(),
        message: e.message().to_owned(),
    })?;
    let defaults = default_table();
    for o in overrides {
        let default = defaults
            .get(&o.section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(&o.key));
        let section = table
            .entry(o.section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(ConfigError::Env {
                var: o.var.clone(),
                message: format!("`{}` in {source} is not a table", o.section),
            });
        };
        section.insert(o.key.clone(), typed_value(&o.value, default));
    }
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().trim().to_owned();
        let var = overrides
            .iter()
            .find(|o| path == format!("{}.{}", o.section, o.key))
            .or_else(|| {
                overrides
                    .iter()
                    .find(|o| message.contains(&format!("`{}`", o.key)))
            })
            .or(overrides.first())
            .map(|o| o.var.clone())
            .unwrap_or_default();
        ConfigError::Env { var, message }
    })
}

/// Strings stay strings when the key holds a string; anything else is read as a TOML value
/// (`30`, `true`, `["a", "b"]`), falling back to a string.
fn typed_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    if let Some(toml::Value::String(_)) = default {
        return toml::Value::String(raw.to_owned());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn default_table() -> toml::Table {
    toml::Table::try_from(Config::default()).expect("the default config serializes")
}

//! Every key the configuration accepts, derived from the config types themselves, and a check
//! that a configuration file documents each of them.
//!
//! `rivetr.toml` at the repository root and the packaged `/etc/rivetr/rivetr.toml` both
//! promise to show every key. The list is read from the types (a configuration with every key
//! present is serialized and walked), never kept by hand, so a key added without documentation
//! fails the tests that call [`undocumented`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Config, RouteConfig, TlsMode};

/// One key the configuration accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The table it lives in, dotted: `server`, `proxy.routes`.
    pub section: String,
    pub name: String,
    /// True for keys of an array of tables (`[[proxy.routes]]`), which are documented by a
    /// commented-out example and cannot be set from the environment.
    pub in_table_array: bool,
}

impl Key {
    /// The environment variable that overrides it, for keys of a top-level section.
    pub fn env_var(&self) -> Option<String> {
        (!self.in_table_array && !self.section.contains('.'))
            .then(|| format!("RIVETR_{}_{}", self.section, self.name).to_uppercase())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.section, self.name)
    }
}

/// Every key, from the defaults plus one example of each array of tables with all its
/// optional keys given. Serialized through JSON, which keeps `None` fields as `null` where
/// TOML would drop them, so an optional key cannot slip through.
pub fn accepted() -> Vec<Key> {
    let value = serde_json::to_value(every_key_present()).expect("the config serializes");
    let mut keys = Vec::new();
    if let serde_json::Value::Object(sections) = value {
        for (section, table) in sections {
            walk(&section, &table, false, &mut keys);
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A configuration in which every key is present: the defaults, and one route with every
/// optional key set. Building the route by its full struct literal means a new route key
/// does not compile until it is given here too.
fn every_key_present() -> Config {
    let mut config = Config::default();
    config.proxy.routes.push(RouteConfig {
        host: "example.com".to_owned(),
        upstreams: vec![SocketAddr::from(([127, 0, 0, 1], 1))],
        tls: TlsMode::Manual,
        cert: Some(PathBuf::from("cert.pem")),
        key: Some(PathBuf::from("key.pem")),
    });
    config
}

fn walk(section: &str, table: &serde_json::Value, in_array: bool, keys: &mut Vec<Key>) {
    let serde_json::Value::Object(entries) = table else {
        return;
    };
    for (name, value) in entries {
        let nested = format!("{section}.{name}");
        match value {
            serde_json::Value::Object(_) => walk(&nested, value, in_array, keys),
            serde_json::Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                for item in items {
                    walk(&nested, item, true, keys);
                }
            }
            _ => keys.push(Key {
                section: section.to_owned(),
                name: name.clone(),
                in_table_array: in_array,
            }),
        }
    }
}

/// The keys of [`accepted`] that `text` (a configuration file) does not document, each with
/// what is missing. A key is documented when its table holds a `name = ` line (commented out
/// for arrays of tables, which appear as an example) and, for keys the environment can set,
/// its `RIVETR_*` variable is named.
pub fn undocumented(text: &str) -> Vec<String> {
    let shown = keys_shown(text);
    let mut missing = Vec::new();
    for key in accepted() {
        let in_section = shown
            .get(&key.section)
            .is_some_and(|names| names.contains(&key.name));
        if !in_section {
            let header = if key.in_table_array {
                format!("[[{}]]", key.section)
            } else {
                format!("[{}]", key.section)
            };
            missing.push(format!("{key}: no `{} = ` line under {header}", key.name));
        }
        if let Some(var) = key.env_var()
            && !text.contains(&var)
        {
            missing.push(format!("{key}: {var} is not mentioned"));
        }
    }
    missing
}

/// Table name -> the keys set in it. Comment markers are ignored inside an array-of-tables
/// example (`# [[proxy.routes]]`, `# host = ...`) but not elsewhere: a plain key must be
/// really set, so the file shows its value.
fn keys_shown(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut shown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut in_example = false;
    for raw in text.lines() {
        let line = raw.trim();
        let uncommented = line.trim_start_matches('#').trim();
        let is_comment = line.starts_with('#');
        if let Some(name) = uncommented
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            section = name.to_owned();
            in_example = is_comment;
            continue;
        }
        if !is_comment
            && let Some(name) = line
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map(|(n, _)| n.trim())
        {
            section = name.to_owned();
            in_example = false;
            continue;
        }
        if is_comment && !in_example {
            continue;
        }
        let candidate = if is_comment { uncommented } else { line };
        if let Some((name, _)) = candidate.split_once('=') {
            let name = name.trim();
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                shown
                    .entry(section.clone())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_comes_from_the_types() {
        let keys: Vec<String> = accepted().iter().map(|k| k.to_string()).collect();
        for expected in [
            "server.api_listen",
            "server.trusted_proxies",
            "proxy.workers",
            "proxy.routes.host",
            "proxy.routes.cert",
            "acme.retry_after_failure_seconds",
            "engine.stop_timeout_seconds",
            "runtime.socket",
            "log.level",
        ] {
            assert!(
                keys.contains(&expected.to_owned()),
                "{expected} in {keys:?}"
            );
        }
        assert!(!keys.contains(&"proxy.routes".to_owned()), "{keys:?}");
    }

    #[test]
    fn a_missing_key_a_commented_key_and_a_missing_variable_are_reported() {
        let complete = include_str!("../../rivetr.toml");
        assert_eq!(undocumented(complete), Vec::<String>::new());

        let without = complete.replace("\nworkers = 0\n", "\n");
        assert!(
            undocumented(&without)
                .iter()
                .any(|m| m.starts_with("proxy.workers: no `workers = ` line")),
            "{:?}",
            undocumented(&without)
        );
        let commented = complete.replace("\nworkers = 0\n", "\n# workers = 0\n");
        assert!(
            undocumented(&commented)
                .iter()
                .any(|m| m.starts_with("proxy.workers:"))
        );
        let in_wrong_section = complete
            .replace("\nworkers = 0\n", "\n")
            .replace("[log]\n", "[log]\nworkers = 0\n");
        assert!(
            undocumented(&in_wrong_section)
                .iter()
                .any(|m| m.starts_with("proxy.workers:"))
        );
        let no_var = complete.replace("RIVETR_PROXY_WORKERS", "");
        assert_eq!(
            undocumented(&no_var),
            ["proxy.workers: RIVETR_PROXY_WORKERS is not mentioned"]
        );
        let no_example = complete.replace("# [[proxy.routes]]", "");
        assert!(
            undocumented(&no_example)
                .iter()
                .any(|m| m.starts_with("proxy.routes.host:")),
            "{:?}",
            undocumented(&no_example)
        );
    }
}

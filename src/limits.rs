//! The limits an app's settings stay within, wherever a setting comes from: the API's JSON
//! (`/api/apps`, `/api/apps/{app}/env/{key}`), a repository's `deploy.toml`, or the
//! administrator's `[build]` section of `rivetr.toml`. One check per kind of value, so the
//! same value is accepted or refused with the same words everywhere.
//!
//! Each check answers what is allowed ("between 10 and 600000 milliseconds"); the caller
//! says where the value came from: the API names the JSON field, the TOML readers the key and
//! the line (the newtypes here refuse a value while it is deserialized, so the TOML
//! deserializer locates it). A leaf module: it uses nothing else of Rivetr, so the API, the
//! engine and the configuration can all depend on it without depending on each other.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value outside its limits; the text says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfLimits(pub String);

pub const PORTS: RangeInclusive<u16> = 1..=65535;
pub const HEALTHCHECK_MS: RangeInclusive<u64> = 10..=600_000;
pub const HEALTHCHECK_RETRIES: RangeInclusive<u32> = 1..=10_000;
pub const REPLICAS: RangeInclusive<u32> = 1..=32;
pub const DRAIN_SECONDS: RangeInclusive<u64> = 0..=3_600;
pub const BUILD_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=86_400;
pub const MAX_CPUS: f64 = 1024.0;
/// Docker refuses a memory limit under 6 MiB, and nothing useful runs in less.
pub const MIN_MEMORY: u64 = 6 << 20;
/// Stored as a signed 64-bit integer by SQLite and the engines; far above any real machine.
pub const MAX_MEMORY: u64 = 1 << 40;
pub const MAX_VARIABLE_NAME: usize = 256;
/// Swarm placement: constraints per app, the length of one, replicas per node, spread labels.
pub const MAX_CONSTRAINTS: usize = 16;
pub const MAX_PLACEMENT_TEXT: usize = 256;
pub const MAX_PER_NODE: RangeInclusive<u64> = 0..=1_000;
pub const MAX_SPREAD: usize = 4;

fn in_range<T: PartialOrd + fmt::Display + Copy>(
    value: T,
    range: &RangeInclusive<T>,
    unit: &str,
) -> Result<T, OutOfLimits> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(OutOfLimits(format!(
            "{value} is out of range: between {} and {}{unit}",
            range.start(),
            range.end()
        )))
    }
}

/// The port an app listens on inside its container.
pub fn port(p: u16) -> Result<u16, OutOfLimits> {
    in_range(p, &PORTS, "")
}

/// A health check's interval or timeout, in milliseconds.
pub fn healthcheck_ms(ms: u64) -> Result<u64, OutOfLimits> {
    in_range(ms, &HEALTHCHECK_MS, " milliseconds")
}

pub fn healthcheck_retries(n: u32) -> Result<u32, OutOfLimits> {
    in_range(n, &HEALTHCHECK_RETRIES, "")
}

/// The path a health check GETs.
pub fn healthcheck_path(path: &str) -> Result<(), OutOfLimits> {
    if path.starts_with('/')
        && path.len() <= 1024
        && !path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(())
    } else {
        Err(OutOfLimits(format!(
            "`{path}` is not a path starting with `/` (no spaces, at most 1024 bytes)"
        )))
    }
}

pub fn replicas(n: u32) -> Result<u32, OutOfLimits> {
    in_range(n, &REPLICAS, "")
}

pub fn drain_seconds(s: u64) -> Result<u64, OutOfLimits> {
    in_range(s, &DRAIN_SECONDS, " seconds")
}

pub fn build_timeout_seconds(s: u64) -> Result<u64, OutOfLimits> {
    in_range(s, &BUILD_TIMEOUT_SECONDS, " seconds")
}

/// CPUs, fractions allowed.
pub fn cpus(c: f64) -> Result<f64, OutOfLimits> {
    if c > 0.0 && c.is_finite() && c <= MAX_CPUS {
        Ok(c)
    } else {
        Err(OutOfLimits(format!(
            "{c} is not a number of CPUs above 0 and at most {MAX_CPUS}"
        )))
    }
}

/// A memory limit in bytes.
pub fn memory(bytes: u64) -> Result<u64, OutOfLimits> {
    if (MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(OutOfLimits(format!(
            "{} is out of range: at least {} and at most {}",
            human_bytes(bytes),
            human_bytes(MIN_MEMORY),
            human_bytes(MAX_MEMORY)
        )))
    }
}

/// The name of an environment variable or a build argument: letters, digits and `_`, not
/// starting with a digit, as shells and Dockerfiles accept them.
pub fn variable_name(name: &str) -> Result<(), OutOfLimits> {
    let mut chars = name.chars();
    let ok = name.len() <= MAX_VARIABLE_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(OutOfLimits(format!(
            "`{name}` is not a variable name (letters, digits and `_`, not starting with a digit, at most {MAX_VARIABLE_NAME} characters)"
        )))
    }
}

/// A label key as a swarm takes it: letters, digits, `-`, `_` and `.`.
fn is_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A swarm placement constraint: `<key>==<value>` or `<key>!=<value>`, the key under `node.`
/// (`node.role`, `node.hostname`, `node.labels.zone`, ...) or `engine.labels.`, the value in
/// the characters the swarm accepts (spaces around the operator allowed), at most
/// [`MAX_PLACEMENT_TEXT`] bytes.
pub fn placement_constraint(c: &str) -> Result<(), OutOfLimits> {
    let refuse = |why: &str| {
        Err(OutOfLimits(format!(
            "`{}` is not a constraint such as `node.labels.zone==eu` or `node.role!=manager`: {why}",
            c.escape_debug()
        )))
    };
    if c.len() > MAX_PLACEMENT_TEXT {
        return refuse(&format!("longer than {MAX_PLACEMENT_TEXT} bytes"));
    }
    if c.chars().any(char::is_control) {
        return refuse("it holds a control character");
    }
    // The swarm's own parser looks for `==` first, then `!=`.
    let Some((key, value)) = c.split_once("==").or_else(|| c.split_once("!=")) else {
        return refuse("no `==` or `!=`");
    };
    let (key, value) = (key.trim(), value.trim());
    let under = ["node.", "engine.labels."]
        .into_iter()
        .find_map(|prefix| key.strip_prefix(prefix));
    match under {
        None => return refuse("the key must start with `node.` or `engine.labels.`"),
        Some(rest) if !is_label_key(rest) || rest.starts_with('.') || rest.ends_with('.') => {
            return refuse(&format!(
                "`{key}` is not a key (letters, digits, `-`, `_` and `.`)"
            ));
        }
        Some(_) => {}
    }
    let value_ok = !value.is_empty()
        && value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == ' ' || ":-_.*()?+[]\\^$|/".contains(ch));
    if !value_ok {
        return refuse(
            "the value must be letters, digits, spaces or `: - _ . * ( ) ? + [ ] \\ ^ $ | /`",
        );
    }
    Ok(())
}

/// How many constraints an app may have.
pub fn constraint_count(n: usize) -> Result<(), OutOfLimits> {
    if n <= MAX_CONSTRAINTS {
        Ok(())
    } else {
        Err(OutOfLimits(format!(
            "{n} constraints: at most {MAX_CONSTRAINTS}"
        )))
    }
}

/// Replicas of one app on one node; 0 for no limit.
pub fn max_per_node(n: u64) -> Result<u64, OutOfLimits> {
    in_range(n, &MAX_PER_NODE, " (0: no limit)")
}

/// A node label to spread replicas over: `node.labels.<name>`.
pub fn spread_label(s: &str) -> Result<(), OutOfLimits> {
    let ok = s.len() <= MAX_PLACEMENT_TEXT
        && s.strip_prefix("node.labels.").is_some_and(|name| {
            is_label_key(name) && !name.starts_with('.') && !name.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(OutOfLimits(format!(
            "`{}` is not a node label such as `node.labels.zone` (letters, digits, `-`, `_` and `.` after `node.labels.`, at most {MAX_PLACEMENT_TEXT} bytes)",
            s.escape_debug()
        )))
    }
}

/// How many labels an app's replicas may be spread over.
pub fn spread_count(n: usize) -> Result<(), OutOfLimits> {
    if n <= MAX_SPREAD {
        Ok(())
    } else {
        Err(OutOfLimits(format!(
            "{n} spread labels: at most {MAX_SPREAD}"
        )))
    }
}

/// `"512K"`, `"256M"`, `"1G"`, `"1048576"` (binary multiples), within [`memory`]'s limits.
pub fn parse_memory(s: &str) -> Result<u64, OutOfLimits> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| OutOfLimits(format!("`{s}` is not a size such as \"256M\"")))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => {
            return Err(OutOfLimits(format!(
                "`{s}`: unknown unit `{unit}` (use K, M, G or T)"
            )));
        }
    };
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| OutOfLimits(format!("`{s}` is too large")))?;
    memory(bytes)
}

/// Bytes for people: `64 MiB`, `1.5 GiB`, `1000 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

/// Bytes as a config file writes them: `64M`, `2G`, or plain bytes when no unit divides.
pub fn config_bytes(bytes: u64) -> String {
    for (size, unit) in [
        (1u64 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A memory size read from TOML: an integer of bytes or a string such as `"256M"`, within
/// [`memory`]'s limits. Written back as a string (`"256M"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemorySize(pub u64);

impl MemorySize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&config_bytes(self.0))
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MemorySize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, or a size such as \"256M\"")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MemorySize, E> {
                memory(v).map(MemorySize).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MemorySize, E> {
                let v = u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not a number of bytes")))?;
                self.visit_u64(v)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MemorySize, E> {
                parse_memory(v).map(MemorySize).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for MemorySize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&config_bytes(self.0))
    }
}

/// Defines a newtype that refuses, while it is deserialized, a value [`check`] refuses.
macro_rules! checked {
    ($(#[$doc:meta])* $name:ident($raw:ty, $raw_name:literal) = $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
        #[serde(try_from = $raw_name, into = $raw_name)]
        pub struct $name(pub $raw);

        impl TryFrom<$raw> for $name {
            type Error = OutOfLimits;

            fn try_from(v: $raw) -> Result<Self, OutOfLimits> {
                $check(v).map($name)
            }
        }

        impl From<$name> for $raw {
            fn from(v: $name) -> $raw {
                v.0
            }
        }
    };
}

checked!(
    /// A port between 1 and 65535.
    Port(u16, "u16") = port
);
checked!(
    /// A health check interval or timeout in milliseconds.
    HealthcheckMs(u64, "u64") = healthcheck_ms
);
checked!(
    /// Health check attempts.
    Retries(u32, "u32") = healthcheck_retries
);
checked!(
    /// Containers of one deployment.
    Replicas(u32, "u32") = replicas
);
checked!(
    /// CPUs, fractions allowed.
    Cpus(f64, "f64") = cpus
);
checked!(
    /// How long an old version keeps serving after a switch.
    DrainSeconds(u64, "u64") = drain_seconds
);
checked!(
    /// How long one build may take.
    BuildTimeoutSeconds(u64, "u64") = build_timeout_seconds
);

checked!(
    /// Replicas of one app on one node; 0 for no limit.
    MaxPerNode(u64, "u64") = max_per_node
);

/// A string checked while it is deserialized (inside the deserializer's visit, so the TOML
/// deserializer locates the value itself, an element of an array included, not its parent).
struct CheckedStr {
    check: fn(&str) -> Result<(), OutOfLimits>,
    expecting: &'static str,
}

impl serde::de::Visitor<'_> for CheckedStr {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        (self.check)(v).map_err(E::custom)?;
        Ok(v.to_owned())
    }
}

/// A swarm placement constraint, checked by [`placement_constraint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Constraint(pub String);

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CheckedStr {
            check: placement_constraint,
            expecting: "a constraint such as \"node.role==worker\"",
        })
        .map(Constraint)
    }
}

impl From<Constraint> for String {
    fn from(v: Constraint) -> String {
        v.0
    }
}

/// An app's constraints, at most [`MAX_CONSTRAINTS`]: each is checked as it is read, so the
/// TOML deserializer names the element (`constraints[1]`), then their number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Vec<Constraint>", into = "Vec<Constraint>")]
pub struct Constraints(pub Vec<Constraint>);

impl Constraints {
    pub fn strings(&self) -> Vec<String> {
        self.0.iter().map(|c| c.0.clone()).collect()
    }
}

impl TryFrom<Vec<Constraint>> for Constraints {
    type Error = OutOfLimits;

    fn try_from(v: Vec<Constraint>) -> Result<Self, OutOfLimits> {
        constraint_count(v.len())?;
        Ok(Constraints(v))
    }
}

impl From<Constraints> for Vec<Constraint> {
    fn from(v: Constraints) -> Vec<Constraint> {
        v.0
    }
}

/// A node label to spread replicas over, checked by [`spread_label`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct SpreadLabel(pub String);

impl<'de> Deserialize<'de> for SpreadLabel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CheckedStr {
            check: spread_label,
            expecting: "a node label such as \"node.labels.zone\"",
        })
        .map(SpreadLabel)
    }
}

impl From<SpreadLabel> for String {
    fn from(v: SpreadLabel) -> String {
        v.0
    }
}

/// The labels to spread over, at most [`MAX_SPREAD`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Vec<SpreadLabel>", into = "Vec<SpreadLabel>")]
pub struct SpreadLabels(pub Vec<SpreadLabel>);

impl SpreadLabels {
    pub fn strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

impl TryFrom<Vec<SpreadLabel>> for SpreadLabels {
    type Error = OutOfLimits;

    fn try_from(v: Vec<SpreadLabel>) -> Result<Self, OutOfLimits> {
        spread_count(v.len())?;
        Ok(SpreadLabels(v))
    }
}

impl From<SpreadLabels> for Vec<SpreadLabel> {
    fn from(v: SpreadLabels) -> Vec<SpreadLabel> {
        v.0
    }
}

/// An environment variable's or build argument's name, checked by [`variable_name`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct VariableName(String);

impl VariableName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VariableName {
    type Error = OutOfLimits;

    fn try_from(v: String) -> Result<Self, OutOfLimits> {
        variable_name(&v)?;
        Ok(VariableName(v))
    }
}

impl From<VariableName> for String {
    fn from(v: VariableName) -> String {
        v.0
    }
}

/// A health check path, checked by [`healthcheck_path`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HealthcheckPath(pub String);

impl TryFrom<String> for HealthcheckPath {
    type Error = OutOfLimits;

    fn try_from(v: String) -> Result<Self, OutOfLimits> {
        healthcheck_path(&v)?;
        Ok(HealthcheckPath(v))
    }
}

impl From<HealthcheckPath> for String {
    fn from(v: HealthcheckPath) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("6144k").unwrap(), 6 << 20);
        assert_eq!(parse_memory("8388608").unwrap(), 8 << 20);
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("1K").unwrap_err().0.contains("at least 6 MiB"));
        assert!(parse_memory("5P").is_err());
        assert!(parse_memory("99999999999999999999G").is_err());
        assert!(parse_memory("2T").is_err());
    }

    #[test]
    fn ranges_say_what_is_allowed() {
        assert_eq!(
            healthcheck_ms(1).unwrap_err().0,
            "1 is out of range: between 10 and 600000 milliseconds"
        );
        assert!(port(0).is_err() && port(1).is_ok());
        assert!(replicas(33).unwrap_err().0.contains("between 1 and 32"));
        assert!(cpus(0.0).is_err() && cpus(f64::NAN).is_err() && cpus(1024.5).is_err());
        assert!(cpus(0.25).is_ok());
    }

    #[test]
    fn variable_names() {
        for ok in ["A", "_x", "NODE_ENV", "a1"] {
            assert!(variable_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "É"] {
            assert!(variable_name(bad).is_err(), "{bad}");
        }
        assert!(variable_name(&"A".repeat(257)).is_err());
    }

    #[test]
    fn placement_constraints() {
        for ok in [
            "node.role==worker",
            "node.role != manager",
            "node.labels.zone==eu-west-1",
            "node.hostname!=node-2",
            "engine.labels.storage==ssd",
            "node.platform.os==linux",
            "node.labels.rack==r[0-9]*",
        ] {
            assert!(placement_constraint(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("node.role=worker", "no `==` or `!=`"),
            ("role==worker", "must start with `node.`"),
            ("labels.zone==eu", "must start with `node.`"),
            ("engine.role==x", "must start with `node.`"),
            ("node.==x", "is not a key"),
            ("node.labels zone==x", "is not a key"),
            ("node.role==", "the value"),
            ("node.labels.a==b==c", "the value"),
            ("node.labels.a==b,c", "the value"),
            ("node.role==worker\n", "control character"),
        ] {
            let e = placement_constraint(bad).unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("node.labels.a=={}", "x".repeat(MAX_PLACEMENT_TEXT));
        assert!(placement_constraint(&long).unwrap_err().0.contains("256"));
        assert!(constraint_count(16).is_ok());
        assert!(constraint_count(17).unwrap_err().0.contains("at most 16"));
    }

    #[test]
    fn max_per_node_and_spread() {
        assert_eq!(max_per_node(0), Ok(0));
        assert_eq!(max_per_node(1000), Ok(1000));
        assert!(
            max_per_node(1001)
                .unwrap_err()
                .0
                .contains("between 0 and 1000")
        );
        assert!(spread_label("node.labels.zone").is_ok());
        for bad in [
            "node.zone",
            "node.labels.",
            "zone",
            "node.labels.a b",
            "node.labels.a\n",
        ] {
            assert!(spread_label(bad).is_err(), "{bad}");
        }
        assert!(spread_count(4).is_ok());
        assert!(spread_count(5).unwrap_err().0.contains("at most 4"));
    }

    #[test]
    fn sizes_for_people_and_for_files() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(config_bytes(2 << 30), "2G");
        assert_eq!(config_bytes((2 << 30) + 1), "2147483649");
    }

    #[test]
    fn newtypes_refuse_while_deserializing() {
        #[derive(Deserialize)]
        struct T {
            #[allow(dead_code)]
            m: MemorySize,
            #[allow(dead_code)]
            r: Replicas,
        }
        let t: Result<T, _> = toml::from_str("m = \"64M\"\nr = 40\n");
        assert!(t.err().unwrap().to_string().contains("between 1 and 32"));
        let t: Result<T, _> = toml::from_str("m = 1024\nr = 1\n");
        assert!(t.err().unwrap().to_string().contains("at least 6 MiB"));
        let t: T = toml::from_str("m = 67108864\nr = 1\n").unwrap();
        assert_eq!(t.m, MemorySize(64 << 20));
    }
}

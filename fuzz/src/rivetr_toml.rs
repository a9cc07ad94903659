//! Rivetr's own configuration file (`config` `Config::parse`), without environment overrides.
//!
//! Property: a file Rivetr refuses gets an error naming the file and a line within it (the
//! administrator is told where to look). Bytes that are not UTF-8 never reach the parser:
//! `Config::load` refuses them when it reads the file.

use rivetr::config::{Config, ConfigError};

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("rivetr.toml", text, Vec::<(String, String)>::new()) {
        Ok(_) => {}
        Err(ConfigError::File { file, line, .. }) => {
            let lines = text.lines().count().max(1) + 1;
            assert_eq!(file, "rivetr.toml");
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
        Err(other) => panic!("error without a line: {other}"),
    }
}

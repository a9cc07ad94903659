//! An app's `deploy.toml` (`engine/deploy_toml.rs` `read`), read from a repository folder of
//! its own as a deployment reads it, under build limits an administrator might set.
//!
//! Property: a file Rivetr refuses gets an error naming `deploy.toml` and a line within it.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use rivetr::config::ConfigError;
use rivetr::engine::deploy_toml::{DeployTomlError, FILE_NAME, read};
use rivetr::runtime::BuildLimits;

/// The repository: a folder of this process's own, with a Dockerfile and a context folder
/// for `build.dockerfile` and `build.context` to name.
static REPO: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("rivetr-fuzz-repo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    dir
});

pub fn check(data: &[u8]) {
    std::fs::write(REPO.join(FILE_NAME), data).unwrap();
    let max = BuildLimits {
        memory_bytes: Some(2 << 30),
        cpus: Some(2.0),
        timeout: Some(Duration::from_secs(1800)),
    };
    match read(&REPO, &max) {
        Err(DeployTomlError::Invalid(ConfigError::File { file, line, .. })) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert_eq!(file, FILE_NAME);
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
        Err(DeployTomlError::Invalid(other)) => panic!("error without a line: {other}"),
        Ok(_) | Err(_) => {}
    }
}

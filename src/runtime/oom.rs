//! Recognising an OOM kill the engine did not flag.
//!
//! The engines' own `OOMKilled` cannot be relied on everywhere:
//! - Podman before 5.0 never sets it (containers/podman#13102): conmon notices the kill but
//!   writes its marker file into its working directory, where Podman does not look. Debian
//!   12 ships Podman 4.3.1.
//! - Docker 20.10 sets it only when containerd's OOM event arrives before the exit event;
//!   when the killed process is PID 1 the exit often wins (seen on cgroups v1 with a recent
//!   kernel: most OOM kills were reported as a plain exit 137).
//!
//! So when the engine says no, a container is taken as OOM-killed if it died of SIGKILL
//! (exit code 137) while running under a memory limit, after this client was made, and this
//! client did not stop or remove it. A `kill -9` from someone else looks the same, which is
//! why such a verdict is marked [`ContainerInfo::oom_inferred`] and its message says so.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::SystemTime;

use super::ContainerInfo;

/// Exit code of a process killed by SIGKILL (128 + 9).
const SIGKILL_EXIT: i64 = 137;

#[derive(Debug)]
pub(crate) struct OomWatch {
    /// Containers (ids or names, as given) this client asked to stop or remove: their
    /// SIGKILL is no OOM kill.
    stopped: Mutex<HashSet<String>>,
    /// Exits before this instant may be stops this client never saw.
    since: SystemTime,
}

impl OomWatch {
    pub(crate) fn new() -> OomWatch {
        OomWatch {
            stopped: Mutex::new(HashSet::new()),
            since: SystemTime::now(),
        }
    }

    /// Records that this client is about to stop or remove `id`.
    pub(crate) fn stopping(&self, id: &str) {
        if let Ok(mut stopped) = self.stopped.lock() {
            stopped.insert(id.to_owned());
        }
    }

    /// Whether `info` (which the engine did not flag) looks like an OOM kill.
    pub(crate) fn looks_oom_killed(&self, info: &ContainerInfo) -> bool {
        let stopped_here = self
            .stopped
            .lock()
            .map(|s| s.contains(&info.id) || s.contains(&info.name))
            .unwrap_or(true);
        !info.oom_killed
            && info.memory_limit_bytes.is_some()
            && info.exit_code == Some(SIGKILL_EXIT)
            && info.finished_at.is_some_and(|t| t >= self.since)
            && !stopped_here
    }

    /// Marks `info` as OOM-killed by inference; `why` says why the engine's word was not
    /// enough.
    pub(crate) fn mark(info: &mut ContainerInfo, why: &str) {
        let limit = info.memory_limit_bytes.unwrap_or_default();
        info.oom_killed = true;
        info.oom_inferred = true;
        info.error = Some(format!(
            "killed by SIGKILL (exit code 137) while limited to {} MiB of memory, and not stopped by Rivetr: \
             taken as out of memory (inferred: {why})",
            limit >> 20
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::runtime::ContainerState;

    fn exited(code: i64, limit: Option<u64>) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "web".into(),
            image: "img".into(),
            state: ContainerState::Exited,
            engine_state: "exited".into(),
            exit_code: Some(code),
            oom_killed: false,
            oom_inferred: false,
            memory_limit_bytes: limit,
            error: None,
            host_port: None,
            started_at: None,
            finished_at: Some(SystemTime::now() + Duration::from_secs(1)),
            labels: BTreeMap::new(),
            restart_count: 0,
        }
    }

    #[test]
    fn only_an_unexplained_sigkill_under_a_memory_limit_counts() {
        let watch = OomWatch::new();
        assert!(watch.looks_oom_killed(&exited(137, Some(32 << 20))));
        assert!(!watch.looks_oom_killed(&exited(137, None)), "no limit");
        assert!(
            !watch.looks_oom_killed(&exited(1, Some(32 << 20))),
            "not SIGKILL"
        );
        let mut before = exited(137, Some(32 << 20));
        before.finished_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1));
        assert!(
            !watch.looks_oom_killed(&before),
            "ended before this client existed"
        );
        watch.stopping("web");
        assert!(
            !watch.looks_oom_killed(&exited(137, Some(32 << 20))),
            "stopped here"
        );
    }

    #[test]
    fn the_mark_says_it_is_inferred() {
        let mut info = exited(137, Some(32 << 20));
        OomWatch::mark(&mut info, "because");
        assert!(info.oom_killed && info.oom_inferred);
        let err = info.failure().unwrap().to_string();
        assert!(
            err.contains("32 MiB") && err.contains("inferred: because"),
            "{err}"
        );
    }
}

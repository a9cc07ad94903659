//! Rivetr's own process, read from `/proc/self` at each scrape: the standard `process_*`
//! metrics that Prometheus' client libraries export.

/// What `/proc` says of this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    /// Unix seconds.
    pub start_time: f64,
    pub threads: u64,
}

impl Process {
    /// Reads `/proc/self`; a value it cannot read stays 0.
    pub fn read() -> Process {
        let mut p = Process::default();
        // SAFETY: sysconf only reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // The command name (field 2) may hold spaces and parentheses: fields are counted
            // from after its closing parenthesis, where field 3 starts.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
                p.cpu_seconds = (field(14).unwrap_or(0) + field(15).unwrap_or(0)) as f64 / ticks;
                p.threads = field(20).unwrap_or(0);
                p.virtual_bytes = field(23).unwrap_or(0);
                p.resident_bytes = field(24).unwrap_or(0) * page;
                if let Some(boot) = boot_time() {
                    p.start_time = boot + field(22).unwrap_or(0) as f64 / ticks;
                }
            }
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            p.max_fds = limit.rlim_cur;
        }
        p
    }
}

/// When the machine booted, in Unix seconds (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_running_now_with_memory_and_files() {
        let p = Process::read();
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3 && p.max_fds >= p.open_fds, "{p:?}");
        assert!(p.threads >= 1, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time > now - 3600.0 && p.start_time <= now + 1.0,
            "{p:?}"
        );
    }
}

//! Gives back the pages of Rivetr's own code that only starting up needed.
//!
//! Starting runs several MB of code once (argument parsing, configuration, migrations,
//! reconcile); the kernel keeps every page it mapped for that in the process until memory is
//! short. Once Rivetr is ready, the code mapping of its executable is dropped from the process
//! with `MADV_DONTNEED`: its pages stay in the page cache, and the few the idle daemon runs
//! come back on first use as minor faults. Code is never written, so nothing is lost. Only
//! code: a read-only data mapping may be RELRO, written by the loader's relocations before it
//! was made read-only, and dropping it would bring back the unrelocated bytes.

/// Drops the resident pages of the executable's code mapping; returns the bytes advised.
pub fn release() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let exe = exe.to_string_lossy();
    let mut released = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or_default();
        if path != exe || perms != "r-xp" {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is the whole private, never-written code mapping of our own
        // executable, as the kernel lists it; its pages fault back in from the file on the
        // next access.
        let advised =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if advised == 0 {
            released += end - start;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_keeps_running_after_its_pages_are_dropped() {
        let advised = super::release();
        assert!(advised > 0, "the test binary's own mappings were found");
        // Running code and reading constants fault the pages back in.
        let text = format!("{:?}", vec![1, 2, 3]);
        assert_eq!(text, "[1, 2, 3]");
    }
}

//! Gives back the pages of Rivetr's own code that only starting up needed.
//!
//! Starting runs several MB of code once (argument parsing, configuration, migrations,
//! reconcile); the kernel keeps every page it mapped for that in the process until memory is
//! short. Once Rivetr is ready, the code mapping of its executable is dropped from the process
//! with `MADV_DONTNEED`: its pages stay in the page cache, and the few the idle daemon runs
//! come back on first use as minor faults. Code is never written, so nothing is lost. The same
//! goes for the read-only data (string constants, tables, unwind information), except the RELRO
//! segment: the loader wrote relocations into it before making it read-only, and dropping it
//! would bring back the unrelocated bytes. Its range comes from the executable's own program
//! headers (`PT_GNU_RELRO`), and no page of it is dropped.

/// Drops the resident pages of the executable's code and read-only data mappings (not its
/// RELRO segment); returns the bytes advised.
pub fn release() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    // Without the RELRO range no read-only data mapping is known to be safe to drop.
    let relro = relro_pages();
    let exe = exe.to_string_lossy();
    let mut released = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or_default();
        if path != exe {
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
        let droppable = match perms {
            "r-xp" => true,
            "r--p" => relro.is_some_and(|(from, to)| end <= from || start >= to),
            _ => false,
        };
        if !droppable {
            continue;
        }
        // SAFETY: the range is a whole private mapping of our own executable that was never
        // written (code, or read-only data outside RELRO), as the kernel lists it; its pages
        // fault back in from the file on the next access.
        let advised =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if advised == 0 {
            released += end - start;
        }
    }
    released
}

/// The page-aligned address range of the executable's RELRO segment, or `(0, 0)` when it has
/// none; `None` when the program headers could not be read.
fn relro_pages() -> Option<(usize, usize)> {
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points at `dlpi_phnum`
        // program headers; `data` is the `Option` `relro_pages` passed in.
        unsafe {
            let info = &*info;
            let found = &mut *(data as *mut Option<(usize, usize)>);
            let mut range = (0, 0);
            for i in 0..usize::from(info.dlpi_phnum) {
                let header = &*info.dlpi_phdr.add(i);
                if header.p_type == libc::PT_GNU_RELRO {
                    let start = info.dlpi_addr as usize + header.p_vaddr as usize;
                    range = (start, start + header.p_memsz as usize);
                }
            }
            *found = Some(range);
        }
        // The first object the loader reports is the executable; no other is needed.
        1
    }
    let mut found: Option<(usize, usize)> = None;
    // SAFETY: the callback only reads what the loader hands it and writes `found`, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first_object),
            &mut found as *mut Option<(usize, usize)> as *mut libc::c_void,
        )
    };
    let page = 4096;
    found.map(|(start, end)| (start & !(page - 1), end.div_ceil(page) * page))
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
        // Relocated pointers (RELRO: vtables, function pointer tables) still point right.
        let shown: Box<dyn std::fmt::Display> = Box::new("still relocated");
        assert_eq!(shown.to_string(), "still relocated");
        std::panic::catch_unwind(|| panic!("unwinding reads .eh_frame")).unwrap_err();
    }

    #[test]
    fn the_relro_segment_is_found_and_holds_relocated_data() {
        let (start, end) = super::relro_pages().expect("the program headers were read");
        assert!(start < end, "a PIE Rust binary has a RELRO segment");
    }
}

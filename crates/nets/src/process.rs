//! The allocator setting that training needs on glibc.

/// Keeps freed memory in the process for reuse instead of returning it to the kernel. glibc
/// gives every block over 128 KiB back on `free` and maps a fresh one on the next `malloc`,
/// so the tensors of a training step (megabytes each, allocated afresh by every op) are
/// faulted in page by page every step: a third of the small CNN's step time went to the
/// kernel's page faults. Call once at the start of a program that trains; it changes nothing
/// but speed, and nothing on other C libraries. Returns whether the setting took.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation thresholds; both values are in range.
        unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_takes_the_setting() {
        assert!(super::keep_freed_memory());
    }
}

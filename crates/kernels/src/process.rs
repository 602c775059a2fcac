//! Process-wide settings that make training fast: glibc's allocator keeps freed memory, and
//! candle's own thread pool stays out of rayon's way.

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

/// Runs candle's elementwise CPU ops on the calling thread (`CANDLE_NUM_THREADS=1`), unless
/// the user set that variable; returns whether it set it. candle runs large elementwise ops
/// (the gradients backward sums) on a pool of its own, one thread per core, pinned to it and
/// spinning between ops, while this crate's convolutions and dense layers run on rayon's
/// threads: on 2 cores that spinning cost a LeNet epoch 13% (1.50 s against 1.30 s), and the
/// small CNN's epoch is the same either way.
///
/// # Safety
/// It sets an environment variable, which [`std::env::set_var`] allows only while no other
/// thread runs: call it first thing in `main`, before anything starts a thread.
pub unsafe fn candle_on_one_thread() -> bool {
    if std::env::var_os("CANDLE_NUM_THREADS").is_some() {
        return false;
    }
    // SAFETY: the caller guarantees that no other thread runs yet.
    unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    true
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_takes_the_setting() {
        assert!(super::keep_freed_memory());
    }
}

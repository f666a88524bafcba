//! glibc malloc settings for a long-running proxy that holds every Service and EndpointSlice of the cluster.
//!
//! Two of glibc's defaults keep freed memory resident. Each thread that allocates may get its own arena
//! (up to 8 × cores), and memory freed inside an arena mostly stays with the process; and the threshold above
//! which an allocation gets its own mapping grows to the size of every large block freed (up to 32 MiB), so
//! after the first list page or netlink batch is freed, the next ones come from the arenas and fragment them.
//! At 10,000 Services × 10 endpoints (nftables) capping arenas at 2 and fixing the threshold at glibc's
//! default 128 KiB lowered the peak RSS from 111 to 96 MiB with no visible cost in sync latency or CPU
//! (BENCHMARKS.md, "Memory"). A setting the operator gave through `MALLOC_ARENA_MAX`,
//! `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` is left alone. Other C libraries: nothing to do.

/// At most this many malloc arenas.
pub const ARENA_MAX: i32 = 2;
/// Allocations of this many bytes or more always get their own mapping, returned to the kernel on free.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Which settings to apply, given the environment: (arena cap, mmap threshold).
fn wanted(env: impl Fn(&str) -> Option<String>) -> (bool, bool) {
    let tunables = env("GLIBC_TUNABLES").unwrap_or_default();
    (
        env("MALLOC_ARENA_MAX").is_none() && !tunables.contains("glibc.malloc.arena_max"),
        env("MALLOC_MMAP_THRESHOLD_").is_none()
            && !tunables.contains("glibc.malloc.mmap_threshold"),
    )
}

/// Applies the settings; call first thing in `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn apply() {
    let (arenas, threshold) = wanted(|k| std::env::var(k).ok());
    // SAFETY: mallopt only changes malloc's parameters; glibc documents both as settable at any time, and
    // this runs before the process starts its other threads. There is no safe wrapper in libc or std.
    #[allow(unsafe_code)]
    unsafe {
        if arenas {
            libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        }
        if threshold {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Not glibc: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn apply() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn operator_settings_win() {
        assert_eq!(wanted(env_of(&[])), (true, true));
        assert_eq!(wanted(env_of(&[("MALLOC_ARENA_MAX", "4")])), (false, true));
        assert_eq!(
            wanted(env_of(&[("MALLOC_MMAP_THRESHOLD_", "65536")])),
            (true, false)
        );
        assert_eq!(
            wanted(env_of(&[(
                "GLIBC_TUNABLES",
                "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=4096"
            )])),
            (false, false)
        );
    }
}

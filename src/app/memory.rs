//! Giving freed heap memory back to the operating system once a load has passed, and the two
//! allocators' settings.
//!
//! The service's own allocations go to mimalloc (the binary's global allocator), which returns
//! freed pages to the system at once with the setting [`configure_allocators`] makes. SQLite's
//! C code allocates through glibc, whose allocator keeps the memory a burst of large requests
//! freed in its per-thread arenas (measured when glibc served every allocation: a flood of 3 MB
//! batches raised the resident size from 28 MB to 112 MB, and it stayed there idle). Its
//! `malloc_trim` returns every free page of every arena. The service calls it, and asks mimalloc
//! to purge too, when it is calm again: no request body being read and nothing waiting in the
//! append queues, after a period in which it was busy. During a load it is never called, so it
//! costs the hot path nothing.
//!
//! It also bounds how many arenas glibc makes (see [`limit_allocator_arenas`]): by default up to
//! eight per core, each keeping its own free memory, which is most of what the service held after
//! a load that `malloc_trim` could not give back.

use std::time::Duration;

/// How often the service looks whether a load has passed.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Quiet checks at which memory is returned after a load: the read side catches up on what was
/// written for some seconds after the writes stop, and frees its memory then.
const TRIMS_AFTER_A_LOAD: u32 = 3;

/// Bytes of request bodies that must have passed since the last trim before the next: a trickle
/// of small requests frees too little to be worth a walk over the heap.
const TRIM_AFTER_BYTES: u64 = 8 * 1024 * 1024;

/// Checks every few seconds and, when at least [`TRIM_AFTER_BYTES`] of request bodies have passed
/// since the last trim and `quiet()` says nothing is held now, returns free heap pages to the
/// system. Runs until aborted (the server does at shutdown) or the runtime stops.
pub fn spawn_trimmer(
    bodies: super::bodies::BodyBudget,
    quiet: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        let mut trimmed_at = bodies.passed_bytes();
        let mut again = 0u32;
        loop {
            tick.tick().await;
            let passed = bodies.passed_bytes();
            if bodies.reserved_bytes() > 0 || !quiet() {
                continue;
            }
            if passed.saturating_sub(trimmed_at) >= TRIM_AFTER_BYTES {
                again = TRIMS_AFTER_A_LOAD;
            }
            if again == 0 {
                continue;
            }
            again -= 1;
            trimmed_at = passed;
            let released = tokio::task::spawn_blocking(release_free_memory)
                .await
                .unwrap_or(false);
            tracing::debug!(released, "returned free heap memory to the system");
        }
    })
}

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, version 3), which the Rust bindings do not
/// name. mimalloc keeps retired options as placeholders so that the numbers never move; a test
/// checks the number against the option's default (1000 ms in version 3, `options.c`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed pages before it returns them to the system.
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Sets both allocators up; called first thing in `main`, before any thread exists.
///
/// - mimalloc returns the pages it frees to the system at once (`purge_delay` 0; its default is
///   1 s) unless `MIMALLOC_PURGE_DELAY` says otherwise. With its default delay, resident memory
///   stayed at 134–154 MB 10 s after the load benchmark, against 109–117 MB with immediate
///   purging, for ingestion and proof rates within the noise (BENCHMARKS.md "The allocator").
/// - glibc gets one arena per core (at least two), see [`limit_allocator_arenas`].
pub fn configure_allocators() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's tuning options; it takes no pointers, and the option is
        // read at each purge decision, so setting it after mimalloc started is defined.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
    limit_allocator_arenas();
}

/// Limits glibc's allocator to one arena per core (at least two) unless the environment sets the
/// number (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`), which glibc then
/// reads itself.
///
/// Measured with the load benchmark on the embedded database (2 cores, `cargo bench --bench
/// load`, BENCHMARKS.md "Allocator arenas"): resident memory after the work / idle went from
/// 184–207 / 151–171 MB with glibc's default (up to 16 arenas here) to 125–130 / 105–107 MB with
/// two, ingestion and proof rates within the run-to-run noise.
fn limit_allocator_arenas() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max"));
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tuned {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    set_arena_max(i32::try_from(cores.max(2)).unwrap_or(i32::MAX));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: i32) {
    // SAFETY: `mallopt` changes a tuning parameter of glibc's allocator; M_ARENA_MAX only bounds
    // how many arenas future threads may create, and the call takes no pointers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other allocators and C libraries size their pools themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) {}

/// Returns free pages of both allocators to the system; true if glibc released any (mimalloc does
/// not say).
fn release_free_memory() -> bool {
    // SAFETY: `mi_collect(true)` frees what the calling thread's heap no longer uses and purges
    // mimalloc's arenas process-wide, under mimalloc's own synchronization; no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) };
    release_glibc_free_memory()
}

/// Returns free pages of every glibc arena to the system; true if any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_glibc_free_memory() -> bool {
    // SAFETY: `malloc_trim` only walks glibc's own arenas under their locks; it takes no
    // pointers from us and is documented as safe to call at any time from any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_glibc_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_with_a_default_of_1000_ms() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's tuning options; no pointers.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not the purge delay"
        );
    }
}

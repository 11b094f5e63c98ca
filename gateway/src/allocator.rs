//! Tuning of the process's allocator (mimalloc, declared by the `gateway` binary and the
//! benchmark examples).

/// mimalloc's option number for the purge delay (`mi_option_purge_delay` in `mimalloc.h`, the
/// same in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before it is returned to the system, in milliseconds.
/// A batch frees and allocates again tens of megabytes every few hundred milliseconds; with
/// mimalloc's default (10 ms) those pages went back to the system between batches and were
/// zeroed again by page faults on the next one: ~20 % of the gateway's CPU time in an ingest
/// (perf, 200,000 records). Peak memory is set by the largest batch either way.
pub const PURGE_DELAY_MS: i64 = 1_000;

/// Keep freed memory for [`PURGE_DELAY_MS`] before returning it to the system, unless the
/// operator chose otherwise with mimalloc's own `MIMALLOC_PURGE_DELAY` environment variable.
/// Call once, first thing in `main`.
pub fn keep_freed_memory_for_reuse() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer option in mimalloc's option table; the option
    // number is one that mimalloc defines, and the call has no other precondition.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_set_unless_the_environment_chooses() {
        keep_freed_memory_for_reuse();
        // SAFETY: reads an integer option of mimalloc's option table.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(chosen) => assert_eq!(delay.to_string(), chosen),
            Err(_) => assert_eq!(delay as i64, PURGE_DELAY_MS),
        }
    }
}

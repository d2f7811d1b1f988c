// SPDX-License-Identifier: GPL-2.0

//! Where a system call's time goes: the per-call path split into
//! sections, each timed with the time-stamp counter and summed.
//!
//! Only a module built with `PROCFT_PROFILE=1` (`make profile` builds one
//! of its own) counts; in every other build a [`Lap`] is empty and its
//! calls compile to nothing. The sums are printed when the module is
//! unloaded ([`report`]). In the test VM under `-icount` (shift 0, a
//! 1 GHz TSC) a TSC tick is one guest instruction, so the figures are
//! instructions per call, exact and independent of the host; the
//! profiler's own reads are measured too ([`Section::Overhead`]) and
//! subtracted from every figure.
//!
//! The C trampolines time the whole hook (their part and Rust's), as
//! [`Section::HookEnter`] and [`Section::HookExit`] (and the duplicates'
//! `Dup` ones); the sections below them split the Rust side.

/// The sections, in the order they are printed. The first five are the
/// C trampolines' (`procft_shim.c` passes their numbers, so Rust never
/// names them).
#[allow(dead_code)]
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum Section {
    /// A primary's whole `sys_enter` hook.
    HookEnter,
    /// A duplicate's whole `sys_enter` hook.
    DupHookEnter,
    /// A primary's whole `sys_exit` hook.
    HookExit,
    /// A duplicate's whole `sys_exit` hook.
    DupHookExit,
    /// The C trampolines' part, before Rust: the caller's role (the
    /// hook's word, or the filter's entry) and the arguments.
    Trampoline,
    /// The primary's checks before its lock (ptrace, call classes).
    Checks,
    /// The primary's `sys_enter` without the lock (see `group::Fast`).
    Fast,
    /// The primary's first critical section at `sys_enter`, up to arming.
    EnterLocked,
    /// Arming the record (ring space, records the duplicates are done with).
    Arm,
    /// The primary's memory-error policy and signal check at `sys_exit`.
    ExitChecks,
    /// Recording a call that wrote nothing, or only outputs kept in its
    /// record (`ring::Inline`, read just before), under the lock.
    RecordPlain,
    /// Recording a call with outputs or input, all of it (the next two
    /// are parts of it).
    Record,
    /// Copying a call's output bytes into its record.
    RecordCopy,
    /// Hashing the bytes a call sent.
    RecordHash,
    /// Acting on an append once the lock is dropped (wake-ups, kills).
    Published,
    /// A duplicate taking its record in its `sys_enter` hook, all of it
    /// (the next two are parts of it, when the record has bytes).
    Take,
    /// A duplicate hashing the bytes its call would send.
    TakeHash,
    /// A duplicate writing a record's output bytes into its memory.
    TakeWrite,
    /// The rest of a duplicate's `sys_enter` hook (classification, and
    /// queueing its task_work when it must wait).
    DupEnter,
    /// A duplicate's task_work for a record it did not find published at
    /// its `sys_enter`: hashing what its call would send (its vote).
    DupVoteHash,
    /// The same: waiting for the record (a poll, then sleep: a lap that
    /// slept is left out).
    DupWait,
    /// The same: taking the record.
    DupTake,
    /// An empty section: the profiler's own cost, subtracted from every
    /// other figure.
    Overhead,
}

#[cfg(procft_profile)]
mod imp {
    use super::Section;
    use core::sync::atomic::{AtomicU64, Ordering};
    use kernel::prelude::*;

    extern "C" {
        fn procft_profile_now() -> u64;
    }

    /// What the report calls each section, in [`Section`]'s order.
    const NAMES: [&str; Section::Overhead as usize + 1] = [
        "primary sys_enter hook (whole)",
        "duplicate sys_enter hook (whole)",
        "primary sys_exit hook (whole)",
        "duplicate sys_exit hook (whole)",
        "  C trampoline (role, arguments)",
        "  primary: checks before the lock",
        "  primary: arm the record without the lock",
        "  primary: sys_enter critical section",
        "  primary: arm the record",
        "  primary: sys_exit checks",
        "  primary: record a plain call (locked)",
        "  primary: record a call with bytes, all",
        "    of which: copy output bytes",
        "    of which: hash input bytes",
        "  primary: after the append (wake-ups)",
        "  duplicate: take the record, all",
        "    of which: hash input bytes",
        "    of which: write output bytes",
        "  duplicate: the rest of sys_enter",
        "duplicate task_work: hash its vote",
        "duplicate task_work: wait for the record",
        "duplicate task_work: take the record",
        "(profiler overhead)",
    ];

    const N: usize = NAMES.len();
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU64 = AtomicU64::new(0);
    static TICKS: [AtomicU64; N] = [ZERO; N];
    static COUNT: [AtomicU64; N] = [ZERO; N];
    static CLIPPED: [AtomicU64; N] = [ZERO; N];

    /// A lap longer than this is left out, and counted apart: the other
    /// vCPU ran meanwhile (under `-icount` the vCPUs take turns, and the
    /// counter counts both), or the task slept (perhaps waking on a CPU
    /// whose counter is behind: the difference then wraps, and is left
    /// out too).
    const CLIP: u64 = 1 << 16;

    pub(crate) fn now() -> u64 {
        // SAFETY: Reads the time-stamp counter; no precondition.
        unsafe { procft_profile_now() }
    }

    pub(crate) fn add(s: Section, ticks: u64) {
        if ticks > CLIP {
            CLIPPED[s as usize].fetch_add(1, Ordering::Relaxed);
            return;
        }
        TICKS[s as usize].fetch_add(ticks, Ordering::Relaxed);
        COUNT[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// C trampolines' sections (`s` up to [`Section::Trampoline`]).
    #[no_mangle]
    extern "C" fn procft_rs_profile_hook(s: usize, t0: u64) {
        if s <= Section::Trampoline as usize {
            // SAFETY: `Section` is `repr(usize)` and `s` names one of its
            // first variants (checked just above).
            add(
                unsafe { core::mem::transmute::<usize, Section>(s) },
                now().wrapping_sub(t0),
            );
        }
    }

    pub(crate) fn report() {
        // What an empty section measures: the profiler's own cost.
        let mut lap = super::Lap::start();
        for _ in 0..64 {
            lap.lap(Section::Overhead);
        }
        let avg = |i: usize| {
            let n = COUNT[i].load(Ordering::Relaxed);
            (n > 0).then(|| TICKS[i].load(Ordering::Relaxed) / n)
        };
        let overhead = avg(Section::Overhead as usize).unwrap_or(0);
        pr_info!("profile: per call, TSC ticks (instructions under -icount 0), profiler's own {} subtracted\n", overhead);
        for (i, name) in NAMES.iter().enumerate().take(N - 1) {
            if let Some(ticks) = avg(i) {
                pr_info!(
                    "profile: {:<42} {:>8} calls {:>6} ({} left out)\n",
                    name,
                    COUNT[i].load(Ordering::Relaxed),
                    ticks.saturating_sub(overhead),
                    CLIPPED[i].load(Ordering::Relaxed)
                );
            }
        }
    }
}

/// A stopwatch over consecutive sections of one call path.
pub(crate) struct Lap {
    #[cfg(procft_profile)]
    at: u64,
}

impl Lap {
    /// Starts timing.
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(procft_profile)]
            at: imp::now(),
        }
    }

    /// Counts the time since the start or the last lap as section `s`.
    #[inline(always)]
    pub(crate) fn lap(&mut self, _s: Section) {
        #[cfg(procft_profile)]
        {
            let now = imp::now();
            imp::add(_s, now.wrapping_sub(self.at));
            self.at = now;
        }
    }
}

/// At module unload: prints the figures (profiling builds only).
pub(crate) fn report() {
    #[cfg(procft_profile)]
    imp::report();
}

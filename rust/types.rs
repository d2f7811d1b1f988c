// SPDX-License-Identifier: GPL-2.0

//! The crate's vocabulary: plain types that every layer names (a group's
//! counters, a replica's vote, what a duplicate's task_work does, why a
//! primary is replaced). They hold no references and take no locks, and
//! this module imports nothing of the crate.

/// Event counters of a group, as shown in `/proc/procft`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Primaries replaced by a duplicate.
    pub(crate) failovers: u64,
    /// Duplicates created to replace lost ones.
    pub(crate) respawns: u64,
    /// Memory errors that hit one of the group's replicas.
    pub(crate) mce_events: u64,
    /// Replicas that disagreed with the others.
    pub(crate) divergences: u64,
    /// Threads of a multi-threaded primary stopped at a point that is not
    /// a system call, its duplicates re-created from it there.
    pub(crate) preemptions: u64,
}

/// A replica's vote on the call it stands before: the call, its
/// arguments and a hash of the bytes it would send out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Vote {
    pub(crate) nr: i64,
    pub(crate) args: [usize; 6],
    pub(crate) hash: u64,
}

/// How far a new duplicate is in giving itself its own copy of the pages
/// it shares with the primary copy-on-write ([`crate::replica::separate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Separation {
    /// The address its walk of the address space goes on from.
    pub(crate) pos: usize,
    /// Pages copied so far.
    pub(crate) copied: usize,
    /// Records taken since its last step while far behind the primary.
    pub(crate) skipped: u32,
    /// Steps in a row that failed ([`crate::replica::separate`]).
    pub(crate) failures: u32,
    /// The memory node it moved to, if the machine has another.
    pub(crate) node: Option<i32>,
    /// One of its threads is taking a step: no other starts one.
    pub(crate) stepping: bool,
}

/// What a duplicate's task_work does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DupWork {
    /// Nothing queued.
    None,
    /// Separate its memory (first return to user space).
    Birth,
    /// Wait for the primary's record of this call and take its result.
    Consume { nr: i64, args: [usize; 6] },
    /// Wait for the primary's record of this call that changes the
    /// address-space layout, then make it itself.
    Follow { nr: i64, args: [usize; 6] },
    /// Wait until it is killed (it reached an exit or exec that is the
    /// primary's to make).
    Park,
    /// A new thread's first return: wait for the record of its
    /// counterpart's and take it ([`crate::sync::threads`]).
    Start,
    /// A thread's exit (one of several threads): wait for the record of
    /// its counterpart's, then make it ([`crate::sync::threads`]).
    ThreadExit { args: [usize; 6] },
    /// Wait for the primary's record of this time-stamp counter read
    /// (`rdtscp` or `rdtsc`) and take its value ([`crate::sync::tsc`]).
    Trap { rdtscp: bool },
    /// A thread a new duplicate made for a thread of the primary: take
    /// that thread's state (image this index) and wait for its record
    /// ([`crate::replica::threads`]).
    Adopt(usize),
}

/// Why a primary is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// It consumed poisoned memory at this address (action-required memory
    /// error): the kernel has queued SIGBUS, which procft discards once a
    /// duplicate has taken over.
    Poison(usize),
    /// Test-only fault injection (`PROCFT_IOC_FAIL`): its memory is
    /// treated as lost.
    Injected,
    /// A majority of duplicates disagreed with it on a call that sends
    /// bytes out ([`crate::vote`]).
    Outvoted,
}

impl Cause {
    /// Its name in the event log and the tracepoint.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cause::Poison(_) => "poison",
            Cause::Outvoted => "outvoted",
            Cause::Injected => "injected",
        }
    }

    /// Its `PROCFT_CAUSE_*` code for the `procft_promotion` tracepoint
    /// (`include/procft_trace.h`).
    pub(crate) fn trace_code(self) -> i32 {
        match self {
            Cause::Poison(_) => 0,
            Cause::Outvoted => 1,
            Cause::Injected => 2,
        }
    }
}

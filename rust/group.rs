// SPDX-License-Identifier: GPL-2.0

//! Protected processes: one [`Group`] per process whose fault-tolerance
//! level is above zero, with its duplicates, kept in a registry keyed by
//! the primary's (global) tgid, plus an index from each duplicate's tgid to
//! its group.
//!
//! A group is created when a level above zero is first set and released
//! when the level goes back to zero or the process exits (the
//! `sched_process_exit` probe), so records never outlive their process.
//! Releasing a group kills its duplicates.
//!
//! Locking: the registry's spinlock, then a group's spinlock, never the
//! other way round. Both are taken from tracepoint probes, so nothing under
//! them sleeps; allocations happen before they are taken and records are
//! freed after they are dropped. Both are also taken under a primary's
//! siglock (the signal probes), which interrupt handlers take (a timer's
//! signal): they keep interrupts off while held, or an interrupt sending
//! the primary a signal on the CPU holding one of them would wait for a
//! siglock whose holder waits for that lock. The whole order is in
//! `Documentation/procft.rst` ("Locking").

use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use kernel::{
    new_spinlock_irq,
    pid_namespace::PidNamespace,
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{
        aref::ARef, lock::spinlock::SpinLockIrqBackend, lock::Guard, Arc, ArcBorrow, SpinLockIrq,
    },
    task::{Pid, Task},
    time::{delay::fsleep, ClockSource, Delta, Monotonic},
};

use crate::{
    events::{self, What},
    ring::{Record, Ring},
    shim::{self, SavedRegs, Waited},
    syscalls::{self, Interrupt},
    types::{Cause, Counters, DupWork, Separation, Vote},
    uapi,
};

pub(crate) mod threads;

/// Highest accepted level; see `PROCFT_MAX_LEVEL` in the UAPI header.
pub(crate) const MAX_LEVEL: u32 = uapi::PROCFT_MAX_LEVEL;
pub(crate) const MAX_DUPS: usize = MAX_LEVEL as usize;

/// Whether a duplicate's waits for a record poll before they sleep: a
/// poll pays where the record usually comes within it (the primary runs
/// on another CPU, close ahead), and is time thrown away where it does
/// not (the primary is far ahead or behind, blocked in a call, or shares
/// the duplicate's CPU). So a duplicate polls while its recent polls
/// paid: each poll that saw its record come gives it [`Poll::CREDIT`]
/// polling waits, each poll that ended in sleep takes one (a record there
/// at the poll's first look proves nothing either way). Out of credit, one
/// wait in [`Poll::PROBE`] polls still, to find out whether polling pays
/// again. (One for all the threads of a duplicate.)
#[derive(Clone, Copy)]
pub(crate) struct Poll {
    credit: u8,
    skipped: u8,
}

impl Poll {
    /// How many polls in a row may fail before the duplicate stops
    /// polling.
    const CREDIT: u8 = 8;
    /// Out of credit, one wait in this many polls.
    const PROBE: u8 = 16;

    pub(crate) const fn new() -> Self {
        Self {
            credit: Self::CREDIT,
            skipped: 0,
        }
    }

    /// Whether the next wait polls.
    pub(crate) fn polls(&mut self) -> bool {
        if self.credit > 0 {
            return true;
        }
        self.skipped += 1;
        if self.skipped < Self::PROBE {
            return false;
        }
        self.skipped = 0;
        true
    }

    /// A wait is over: it polled or not (`polled`), and ended as `how`.
    pub(crate) fn waited(&mut self, polled: bool, how: Waited) {
        match how {
            Waited::Polled => {
                self.credit = Self::CREDIT;
                self.skipped = 0;
            }
            Waited::Slept if polled => self.credit = self.credit.saturating_sub(1),
            // (Its producer asleep, a poll could not have paid.)
            Waited::Slept | Waited::Unpolled | Waited::AtOnce => {}
        }
    }
}

/// A duplicate replica.
pub(crate) struct Dup {
    /// Its task (a process of its own: tgid == pid).
    pub(crate) task: ARef<Task>,
    /// Its global tgid (the duplicate index's key).
    pub(crate) tgid: Pid,
    /// The primary's registers at the call where it was created.
    pub(crate) saved: SavedRegs,
    /// It has run its first `sys_exit` (registers restored).
    pub(crate) born: bool,
    /// Its memory is on its own frames; it is waiting in step.
    pub(crate) ready: bool,
    /// Until its memory is on its own frames: how far it got
    /// ([`crate::replica::separate`]).
    pub(crate) separating: Option<Separation>,
    /// procft killed it on purpose (level lowered, protection ended), so
    /// its death is not a loss to replace.
    pub(crate) leaving: bool,
    /// The primary ran a signal handler the duplicate cannot follow (not
    /// on the way back from a recorded call): it is out of step, never
    /// taken over from or counted in a vote, and replaced at the primary's
    /// next system call.
    pub(crate) stale: bool,
    /// It holds the primary's wipe-on-fork memory, which its fork() left
    /// empty: the primary copies it in its return from the fork, and the
    /// duplicate runs no user instruction before
    /// ([`crate::replica::birth`]).
    pub(crate) wiped: bool,
    /// When it was made (monotonic ns), and when its memory was all on
    /// its own frames (0: not yet): what a re-creation costs
    /// ([`Resync`]).
    pub(crate) born_ns: i64,
    pub(crate) ready_ns: i64,
    /// A memory error was reported on one of its frames: it is about to
    /// be replaced, and may meanwhile run the program's `SIGBUS` handler
    /// (the kernel's early kill). It never takes over or votes, and what
    /// it does then is not counted as a divergence.
    /// (`Some`: whether it was in step then, restored if the kernel
    /// does not act on the error.)
    pub(crate) hit: Option<bool>,
    /// Sequence number of the next ring record it consumes.
    pub(crate) next_seq: u64,
    /// It waits at an exit or exec for the primary to make it (and holds
    /// back no record).
    pub(crate) parked: bool,
    /// It is blocked waiting for the record with this sequence number.
    pub(crate) waiting_for: Option<u64>,
    /// Whether its waits for a record poll before they sleep
    /// ([`Poll`]).
    pub(crate) poll: Poll,
    /// How many of its threads wait for a record without a bound, by
    /// [`unbounded_slot`] of their key: the primary wakes them at each
    /// record of that key ([`LAZY_RECORDS`]).
    pub(crate) unbounded: [u8; UNBOUNDED_SLOTS],
    /// The primary woke it for falling [`LAZY_RECORDS`] behind, and none of
    /// its threads began a wait for a record since: it is not woken for
    /// that again meanwhile (a thread woken may not run before the
    /// primary's next records, on a busy CPU).
    pub(crate) lazy_woken: bool,
    /// The system call it stands before while it waits or is parked.
    pub(crate) at: i64,
    /// Its vote on that call, while it stands there ([`crate::vote`]).
    pub(crate) vote: Option<Vote>,
    /// What its task_work is to do next.
    pub(crate) work: DupWork,
    /// Its threads, once its primary created threads
    /// ([`crate::sync::threads`]).
    pub(crate) threads: Option<KBox<threads::DupThreads>>,
    /// Its task_work, allocated at its first return ([`None`] until then,
    /// or if there was no memory: each call then allocates one).
    pub(crate) own_work: Option<shim::OwnWork>,
    /// The primary's other threads it is to re-create, if it is a
    /// duplicate of a multi-threaded process ([`crate::replica::threads`]).
    pub(crate) images: Option<KBox<threads::Images>>,
}

/// The pace of re-creations after signal handlers the duplicates cannot
/// follow ([`Dup::stale`]).
///
/// Each such handler makes every duplicate stale, and the primary's next
/// call replaces them. A process whose handlers run that way more often
/// than a duplicate can be made (a fast interval timer, a large process on
/// a slow machine) would spend its time making duplicates that are stale
/// before their memory is even copied. So once two replacements in a row
/// found their duplicates still unfinished, the next duplicate waits: at
/// least as long as the unfinished one had been at it, doubled at each
/// further such replacement, [`Resync::MAX_HOLD_NS`] at most. A duplicate
/// that finishes its copy ends this. Meanwhile the process runs with fewer
/// duplicates than its level (it had no usable one anyway). The duplicate
/// is made at the primary's first call after the hold, or by
/// [`crate::replica::queue_hold`]'s worker, which brings a primary blocked
/// in a call to its system-call boundary then.
pub(crate) struct Resync {
    /// Replacements in a row whose duplicates had not finished.
    streak: u32,
    /// The hold now (ns).
    hold_ns: i64,
    /// No duplicate is made before this time (monotonic ns; 0: none).
    not_before: i64,
    /// Replacements so far (logged at powers of two).
    pub(crate) count: u64,
}

impl Resync {
    /// The longest a re-creation is held back.
    pub(crate) const MAX_HOLD_NS: i64 = 1_000_000_000;
    /// The shortest hold, once there is one.
    const MIN_HOLD_NS: i64 = 1_000_000;

    /// No replacement yet.
    pub(crate) const fn new() -> Self {
        Self {
            streak: 0,
            hold_ns: 0,
            not_before: 0,
            count: 0,
        }
    }

    /// At a replacement of the stale duplicates, at `now`: `unfinished`,
    /// how long the youngest of those that had not finished copying their
    /// memory had been at it (`None`: each had finished). Returns the hold
    /// before the next duplicate (ns, 0 for none), and whether it is the
    /// first of a streak.
    pub(crate) fn replaced(&mut self, now: i64, unfinished: Option<i64>) -> (i64, bool) {
        self.count += 1;
        let Some(age) = unfinished else {
            self.clear();
            return (0, false);
        };
        self.streak = self.streak.saturating_add(1);
        if self.streak < 2 {
            return (0, false);
        }
        self.hold_ns = if self.hold_ns == 0 {
            age.max(Self::MIN_HOLD_NS)
        } else {
            self.hold_ns.saturating_mul(2).max(age)
        }
        .min(Self::MAX_HOLD_NS);
        self.not_before = now.saturating_add(self.hold_ns);
        (self.hold_ns, self.streak == 2)
    }

    /// No hold and no streak (the count stays): a duplicate finished
    /// copying its memory (re-creations are not outrun), or a new program
    /// or level starts afresh.
    pub(crate) fn clear(&mut self) {
        self.streak = 0;
        self.hold_ns = 0;
        self.not_before = 0;
    }

    /// Whether a duplicate may not be made yet (at `now`, read only if
    /// there is a hold).
    pub(crate) fn holds(&self, now: impl FnOnce() -> i64) -> bool {
        self.end().is_some_and(|end| now() < end)
    }

    /// A duplicate is being made: the hold, if any, is over.
    pub(crate) fn started(&mut self) {
        self.not_before = 0;
    }

    /// When the hold set ends (monotonic ns), if one is set.
    pub(crate) fn end(&self) -> Option<i64> {
        (self.not_before != 0).then_some(self.not_before)
    }
}

impl Dup {
    /// Queues the duplicate's task_work: `own`, its preallocated one, if
    /// it has one ([`Dup::own_work`], taken under the group's lock).
    ///
    /// Must be called by the duplicate itself, from a probe or task_work
    /// (where its exit probe, which drops the work, cannot run).
    pub(crate) fn queue_work(own: Option<shim::OwnWorkRef>) -> Result {
        match own {
            // SAFETY: Only the duplicate queues its own work, and it is
            // dropped by its exit probe (or with the group, once the
            // duplicate is gone), which cannot run meanwhile: by the
            // function's contract.
            Some(w) => unsafe { w.queue() },
            None => shim::queue_task_work(),
        }
    }
}

impl Dup {
    /// Whether it has made its own calls (those every replica makes, such
    /// as `mmap`) up to the primary's recorded call at ring position
    /// `seq`: it consumed that record, stands at it, or is parked.
    pub(crate) fn passed(&self, seq: u64) -> bool {
        self.next_seq > seq || self.waiting_for == Some(seq) || self.parked
    }

    /// Whether it could take the primary's place: it has all of the
    /// process's state, in an address space of its own. It is ready, or
    /// still separating its memory ([`crate::replica::separate`]): its
    /// address space is then whole, and frames it still shares with the
    /// primary are left to it when the primary's is released. Never one
    /// leaving, out of step ([`Dup::stale`]), or hit by a memory error
    /// ([`Dup::hit`]).
    pub(crate) fn can_succeed(&self) -> bool {
        !self.leaving
            && !self.stale
            && self.hit.is_none()
            && self.born
            && (self.ready || self.separating.is_some())
    }

    /// Whether it can take the primary's place once it reaches the
    /// primary's next call: it [can now](Dup::can_succeed), or it is one
    /// the primary has just made that has not run yet. Such a duplicate
    /// starts from the primary's state at the call that made it (its fork
    /// has returned, its wipe-on-fork memory is copied), so a takeover
    /// waits for it ([`crate::failover`]) as for one still catching up.
    /// Without this, a primary that fails right after it made a
    /// duplicate, before the scheduler has run that one, died of the
    /// failure as if it had none.
    pub(crate) fn may_succeed(&self) -> bool {
        self.can_succeed()
            || (!self.born && self.wiped && !self.leaving && !self.stale && self.hit.is_none())
    }

    /// Whether it stands before the call whose record will have sequence
    /// number `head` (it consumed every earlier record and waits, or is
    /// parked at an exit or exec with nothing left to consume).
    pub(crate) fn stands_at(&self, head: u64) -> bool {
        if self.threads.is_some() {
            // Several threads wait at once; the one that ran last must.
            return threads::standing(self, head).is_some();
        }
        self.waiting_for == Some(head) || (self.parked && self.next_seq == head)
    }
}

/// Files the primary mapped (`mmap` of a descriptor) that a duplicate may
/// not have mapped yet.
///
/// Every replica makes its own `mmap`, on the descriptor table they all
/// share, and a duplicate makes it later than the primary: when it gets
/// there, the primary may have closed the descriptor (the duplicate's
/// `mmap` fails with `EBADF`) or opened another file on the same number
/// (it would map the wrong file). So the primary's calls that release a
/// descriptor (`close`, `dup2`, `dup3`, `close_range`) wait while a
/// duplicate may still have to map a file through it ([`crate::sync`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct Mapped {
    /// Descriptor, and the ring position of the primary's next record when
    /// it mapped the file: a duplicate that consumed up to that record or
    /// stands at it has made its `mmap`.
    pub(crate) slots: [Option<(usize, u64)>; 8],
    /// More files than slots: the latest such position, whatever the
    /// descriptor.
    pub(crate) overflow: Option<u64>,
}

impl Mapped {
    /// The primary mapped a file through `fd` before its recorded call at
    /// ring position `seq`.
    pub(crate) fn note(&mut self, fd: usize, seq: u64) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.is_none() || s.is_some_and(|(f, _)| f == fd))
        {
            *slot = Some((fd, seq));
        } else {
            self.overflow = Some(seq);
        }
    }
}

/// Creation of a duplicate in progress.
pub(crate) enum Spawn {
    /// Nothing in flight.
    Idle,
    /// The primary's current system call is our `clone3`; the reservation
    /// becomes the new duplicate's index entry in the fork probe.
    Injected(RBTreeNodeReservation<Pid, Arc<Group>>),
    /// The child exists; waiting for the primary's `sys_exit`.
    Forked(ARef<Task>),
}

/// What the primary's task_work does, on its way back to user space from
/// the call whose probe queued it (one at a time: a probe that queues
/// one returns through it before the next call). A promotion
/// ([`State::promote`]) comes first and supersedes it.
#[derive(Default)]
pub(crate) enum PrimaryWork {
    /// Nothing.
    #[default]
    None,
    /// Collect the duplicates' votes on this call, suppressed, then make
    /// it, or let the majority take over ([`crate::vote`]).
    Vote(Vote),
    /// Wait for a duplicate in step, restore the page in
    /// [`State::repair`] from it, then make call `nr` (suppressed) again.
    Repair(i64),
    /// The record of the call the primary just made, held back until the
    /// page in [`State::repair`] is restored (the duplicates wait for it,
    /// in the state the primary was in before the call), then published.
    Held(Arc<crate::ring::Record>),
    /// Wait until every duplicate has mapped the files the primary is
    /// about to close (descriptors `lo..=hi`), then make call `nr`
    /// (suppressed) again.
    FdBarrier { nr: i64, lo: usize, hi: usize },
    /// Wait for room in the ring, then make call `nr` (suppressed) again.
    WaitSpace(i64),
    /// A time-stamp counter read that could not be recorded at its trap:
    /// restore the page in [`State::repair`], or wait for room in the
    /// ring; the read then traps again ([`crate::sync::tsc`]).
    Trap,
}

/// Mutable state of a group.
///
/// # Invariants
///
/// Under the group's lock:
/// - a duplicate in `dups` that is not `leaving` has not passed its exit
///   probe (its task, sighand and registers may be read);
/// - `ring` holds every record from the oldest `next_seq` of the
///   duplicates that are neither `leaving` nor `parked` up to its head
///   (`trim_ring` drops only what all of them took);
/// - `spawn` is not `Idle` exactly while the primary is inside the
///   `clone3()` procft injected; no injection starts once `closed` or the
///   module is stopping;
/// - `mce_wish` is set exactly while procft holds the primary to late
///   memory-error kill, and holds the program's own policy.
///
/// Under the registry's lock (taken before a group's): a tgid is in the
/// tree iff the C filter marks it a primary (or, once ended, holds the
/// policy it takes back), and in the duplicate index iff the filter marks
/// it a duplicate; a task is never both. The filter's entry for either is
/// its group's role ([`shim::Roles`]), which stays valid for as long as a
/// system-call hook may have read it: a group leaves the tree through
/// [`retire`], and a duplicate's entry goes at its own exit.
pub(crate) struct State {
    pub(crate) level: u32,
    pub(crate) counters: Counters,
    pub(crate) dups: [Option<Dup>; MAX_DUPS],
    pub(crate) spawn: Spawn,
    /// The primary's registers from before the injected `clone3`.
    pub(crate) saved: SavedRegs,
    /// Duplicates lost (not killed by procft) and not yet replaced.
    pub(crate) lost: u32,
    /// Consecutive failed creations (backs off retrying at every call).
    pub(crate) spawn_failures: u32,
    /// Set when the group is released: no more duplicates.
    pub(crate) closed: bool,
    /// The primary's records, consumed by the duplicates.
    pub(crate) ring: Ring,
    /// The primary's call in flight that will be recorded at its sys_exit.
    pub(crate) call: Option<(i64, [usize; 6])>,
    /// What the primary's task_work does next, queued by its probe.
    pub(crate) work: PrimaryWork,
    /// The primary is waiting for room in the ring: a duplicate taking a
    /// record wakes it only once the ring is low ([`Ring::is_low`]).
    pub(crate) space_wait: bool,
    /// A page of the primary on a failed frame (address, frame), to be
    /// re-established from a duplicate at its next recorded call.
    pub(crate) repair: Option<(usize, usize)>,
    /// The primary has failed: at its next entry into procft it takes the
    /// state of a duplicate ([`crate::failover`]).
    pub(crate) promote: Option<Cause>,
    /// Promotions started so far, and whether one is under way (a memory
    /// error noted before a promotion must not be mended after it).
    pub(crate) promotions: u64,
    pub(crate) promoting: bool,
    /// The duplicate that takes over at the next promotion, if one is
    /// preferred (one of the majority that outvoted the primary).
    pub(crate) successor: Option<Pid>,
    /// Some duplicates are stale ([`Dup::stale`]) and wait to be replaced.
    pub(crate) resync: bool,
    /// How fast stale duplicates are re-created ([`Resync`]).
    pub(crate) resyncs: Resync,
    /// The ring position of the last call that passed a vote (it is then
    /// made without voting again).
    pub(crate) voted: Option<u64>,
    /// The primary's vote on that call: its hash of the bytes is the
    /// record's if the call sends them all (they are hashed once).
    pub(crate) passed: Option<Vote>,
    /// Files the primary mapped that a duplicate may not have mapped yet
    /// ([`Mapped`]).
    pub(crate) mapped: Mapped,
    /// The record of the call the primary just made, held back because a
    /// signal is pending: if the primary handles it on its way back to
    /// user space, the record carries it to the duplicates.
    pub(crate) held_sig: Option<kernel::sync::UniqueArc<crate::ring::Record>>,
    /// The primary's thread whose last call was a sleep cut short to go on
    /// as `restart_syscall()` (`-ERESTART_RESTARTBLOCK`), and that sleep's
    /// `rem` address: the continuation writes there if it is cut short
    /// again, which its own arguments do not say.
    pub(crate) sleep_rem: Option<(kernel::task::Pid, usize)>,
    /// The program's own memory-error kill policy (`PR_MCE_KILL_*`), kept
    /// while procft holds the primary to late kill ([`crate::mce::policy`]).
    pub(crate) mce_wish: Option<i32>,
    /// Its threads, once it created threads under protection: the run
    /// token and their calls in flight ([`crate::sync::threads`]).
    pub(crate) threads: Option<KBox<threads::Threads>>,
    /// The primary's other threads, for the duplicate its injected
    /// `clone3()` is making ([`crate::replica::threads`]).
    pub(crate) images: Option<KBox<threads::Images>>,
}

impl State {
    /// Promotions finished so far: a memory error looked at now that is
    /// acted on later is moot if this has changed by then (the promotion
    /// under way, if any, counts as one started since: it may end between
    /// the look and the act).
    pub(crate) fn promotions_done(&self) -> u64 {
        self.promotions - u64::from(self.promoting)
    }

    /// Number of live duplicates procft has not asked to leave.
    pub(crate) fn nr_dups(&self) -> usize {
        self.dups.iter().flatten().filter(|d| !d.leaving).count()
    }

    /// How many duplicates are `ready` (on their own frames and in step;
    /// leaving ones included): two or more vote.
    pub(crate) fn nr_ready(&self) -> usize {
        self.dups.iter().flatten().filter(|d| d.ready).count()
    }

    /// The duplicate whose global tgid is `tgid`.
    pub(crate) fn dup_mut(&mut self, tgid: Pid) -> Option<&mut Dup> {
        self.dups.iter_mut().flatten().find(|d| d.tgid == tgid)
    }

    /// [`State::dup_mut`], shared.
    pub(crate) fn dup(&self, tgid: Pid) -> Option<&Dup> {
        self.dups.iter().flatten().find(|d| d.tgid == tgid)
    }

    /// For duplicate `tgid` taking its next record: the duplicate, and the
    /// record at its position if it is published (borrowed apart, so that
    /// the caller may change the duplicate while it reads the record).
    /// `None` once the group is closed, or if it has no such duplicate.
    /// The caller decides what a leaving or separating duplicate, or
    /// another thread's record, means for it.
    pub(crate) fn dup_and_next(&mut self, tgid: Pid) -> Option<(&mut Dup, Option<&Arc<Record>>)> {
        if self.closed {
            return None;
        }
        let d = self.dups.iter_mut().flatten().find(|d| d.tgid == tgid)?;
        let record = self.ring.peek(d.next_seq);
        Some((d, record))
    }

    /// A duplicate that stands at the primary's next call (it consumed
    /// every record and waits for the next, or is parked at an exit or
    /// exec with nothing left to consume), and could succeed the primary.
    pub(crate) fn dup_at_head(&self) -> Option<&Dup> {
        let head = self.ring.head();
        let in_step = self
            .dups
            .iter()
            .flatten()
            .filter(|d| d.can_succeed() && d.stands_at(head));
        // The chosen successor first, then one done separating its memory
        // (one still separating may share the failed frame).
        in_step
            .clone()
            .find(|d| Some(d.tgid) == self.successor)
            .or_else(|| in_step.clone().find(|d| d.ready))
            .or_else(|| in_step.clone().next())
    }

    /// Whether every live duplicate has [passed](Dup::passed) ring
    /// position `seq`.
    pub(crate) fn dups_passed(&self, seq: u64) -> bool {
        self.dups
            .iter()
            .flatten()
            .filter(|d| !d.leaving)
            .all(|d| d.passed(seq))
    }

    /// Whether a file the primary mapped through a descriptor in
    /// `lo..=hi` may not be mapped by every duplicate yet. Forgets the
    /// files every duplicate has mapped.
    pub(crate) fn mapping_pending(&mut self, lo: usize, hi: usize) -> bool {
        let mut pending = false;
        let mut slots = self.mapped.slots;
        for slot in slots.iter_mut() {
            if let Some((fd, seq)) = *slot {
                if self.dups_passed(seq) {
                    *slot = None;
                } else if (lo..=hi).contains(&fd) {
                    pending = true;
                }
            }
        }
        self.mapped.slots = slots;
        if let Some(seq) = self.mapped.overflow {
            if self.dups_passed(seq) {
                self.mapped.overflow = None;
            } else {
                pending = true;
            }
        }
        pending
    }

    /// Whether a duplicate could take over from the primary, at once or
    /// once it has run ([`Dup::may_succeed`]).
    pub(crate) fn can_take_over(&self) -> bool {
        self.dups.iter().flatten().any(Dup::may_succeed)
    }

    /// Marks the duplicates matching `pred` (and not already leaving) as
    /// leaving and counts them as lost, so that they are re-created;
    /// returns them, to be killed once the caller's locks are dropped, and
    /// how many there are.
    pub(crate) fn replace_where(&mut self, pred: impl Fn(&Dup) -> bool) -> (Kills, u32) {
        let (kills, n) = self.kill_where(pred);
        self.lost += n;
        (kills, n)
    }

    /// Duplicate `tgid` gave its address space to the primary in a
    /// promotion: it is killed, and replaced at the primary's next call
    /// like a lost one, but not counted as lost (the failover counts).
    pub(crate) fn retire(&mut self, tgid: Pid) -> Kills {
        self.kill_where(|d| d.tgid == tgid).0
    }

    /// Marks the duplicates not yet leaving for which `pred` holds as
    /// leaving; they are to be killed, and how many there are.
    fn kill_where(&mut self, pred: impl Fn(&Dup) -> bool) -> (Kills, u32) {
        let mut kills = Kills::none();
        let mut n = 0;
        for d in self.dups.iter_mut().flatten() {
            if !d.leaving && pred(d) {
                d.leaving = true;
                kills.add(d.task.clone());
                n += 1;
            }
        }
        (kills, n)
    }

    /// Whether some duplicate may still come to stand at the primary's
    /// next call.
    pub(crate) fn dup_may_come(&self) -> bool {
        self.dups.iter().flatten().any(|d| !d.leaving)
    }

    /// The CPU time (ns) each live duplicate has had so far, by tgid.
    pub(crate) fn dup_runtimes(&self) -> [Option<(Pid, u64)>; MAX_DUPS] {
        let mut out = [None; MAX_DUPS];
        for (slot, d) in out.iter_mut().zip(self.dups.iter().flatten()) {
            *slot = Some((d.tgid, shim::runtime_ns(&d.task)));
        }
        out
    }

    /// Sequence number of the oldest record a duplicate still needs.
    pub(crate) fn min_next_seq(&self) -> u64 {
        self.dups
            .iter()
            .flatten()
            .filter(|d| !d.parked && !d.leaving)
            .map(|d| d.next_seq)
            .min()
            .unwrap_or_else(|| self.ring.head())
    }

    /// Drops the records every duplicate has consumed.
    pub(crate) fn trim_ring(&mut self) {
        let upto = self.min_next_seq();
        self.ring.trim(upto);
    }

    /// Marks the newest duplicates as leaving until at most `keep` remain;
    /// the caller kills them once it has dropped its locks.
    pub(crate) fn trim_dups(&mut self, keep: usize) -> Kills {
        let mut kills = Kills::none();
        let mut live = self.nr_dups();
        for slot in self.dups.iter_mut().rev() {
            if live <= keep {
                break;
            }
            if let Some(d) = slot.as_mut().filter(|d| !d.leaving) {
                d.leaving = true;
                kills.add(d.task.clone());
                live -= 1;
            }
        }
        kills
    }
}

/// What the primary's `sys_enter` needs to know to make a call without
/// taking the group's lock (unless module parameter `lockfree_entry` is
/// 0: see `Documentation/procft.rst`, "Performance"): that nothing is
/// pending, so the call only has to be recorded at its `sys_exit` (or,
/// for a call the duplicates make too, nothing at all), and that the ring
/// has room for its record.
///
/// The primary sets `quiet` from the state at the end of its own critical
/// sections ([`Fast::set`]); every other taking of the lock
/// ([`Group::lock`]) clears it before it changes anything, so a change
/// made under the lock is seen by the primary's next call, in its slow
/// path. A call that read `quiet` just before the change behaves as if it
/// had taken the lock first. Only the primary's own context arms a call
/// (`nr`, `args`) and takes it back at its `sys_exit`.
///
/// In a multi-threaded group the thread holding the run token takes this
/// path too while no other thread waits for the token ([`Fast::solo`]);
/// whoever takes the lock then may take its armed call back instead, to
/// give the token up on its behalf.
pub(crate) struct Fast {
    quiet: AtomicBool,
    /// In a multi-threaded group: the thread that held the run token when
    /// `quiet` was set (0: none), the only one that may take this path.
    holder: AtomicI32,
    /// The token holder, in a recorded call it armed here, that keeps
    /// the token through the call instead of giving it up at its
    /// `sys_enter` (0: none). Whoever takes the lock ([`Group::lock`])
    /// gives it up on its behalf, as the thread would have
    /// ([`threads::give_up_for`]); the thread takes this back at its
    /// `sys_exit` ([`Fast::leave_solo`]) unless that happened.
    solo: AtomicI32,
    /// Two duplicates or more are in step: calls that send bytes are
    /// voted on, in the slow path.
    voting: AtomicBool,
    /// The ring has room for one more record after the next.
    room: AtomicBool,
    /// The call armed without the lock at the primary's `sys_enter`, or -1.
    nr: AtomicI64,
    args: [AtomicUsize; 6],
}

impl Fast {
    fn new() -> Self {
        Self {
            quiet: AtomicBool::new(false),
            holder: AtomicI32::new(0),
            solo: AtomicI32::new(0),
            voting: AtomicBool::new(false),
            room: AtomicBool::new(false),
            nr: AtomicI64::new(-1),
            args: [const { AtomicUsize::new(0) }; 6],
        }
    }

    /// Whether the lock-free entry is on (module parameter
    /// `lockfree_entry`); off, none of this is kept up.
    fn on() -> bool {
        crate::module_parameters::lockfree_entry.value()
    }

    /// At the end of one of the primary's critical sections (`st` locked
    /// with [`Group::lock_quiet`] or [`Group::lock`]): `quiet` if nothing
    /// is pending for its next call (`quiet(st)` decides, see
    /// `sync::is_quiet`), with what the ring and the duplicates allow.
    pub(crate) fn set(&self, st: &State, quiet: impl FnOnce(&State) -> bool) {
        if !Self::on() {
            return;
        }
        let quiet = quiet(st);
        // (Nothing is voted on in a multi-threaded group: `vote::wanted_in`.)
        self.voting.store(
            st.nr_ready() >= 2 && st.threads.is_none(),
            Ordering::Relaxed,
        );
        self.room
            .store(st.ring.has_room(threads::room(st) + 1), Ordering::Relaxed);
        let holder = st.threads.as_ref().and_then(|t| t.token).unwrap_or(0);
        self.holder.store(holder, Ordering::Relaxed);
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    /// After the primary appended a record armed without the lock, and
    /// nothing else changed (`st` locked): whether the ring has room for
    /// the next.
    pub(crate) fn set_room(&self, st: &State) {
        if !Self::on() {
            return;
        }
        self.room
            .store(st.ring.has_room(threads::room(st) + 1), Ordering::Relaxed);
    }

    /// Whether nothing is pending for the primary's next call.
    pub(crate) fn quiet(&self) -> bool {
        Self::on() && self.quiet.load(Ordering::Relaxed)
    }

    /// Whether the primary's call `nr` may go on without the lock: it is
    /// quiet, and, if `records`, the ring has room and the call is not
    /// voted on (`sends`: it sends bytes).
    pub(crate) fn allows(&self, records: bool, sends: bool) -> bool {
        self.quiet()
            && (!records
                || (self.room.load(Ordering::Relaxed)
                    && !(sends && self.voting.load(Ordering::Relaxed))))
    }

    /// Arms the primary's call `nr` with `args`, to be recorded at its
    /// `sys_exit` ([`Fast::take`]). The ring's room is spent on it.
    pub(crate) fn arm(&self, nr: i64, args: &[usize; 6]) {
        for (a, &v) in self.args.iter().zip(args) {
            a.store(v, Ordering::Relaxed);
        }
        self.nr.store(nr, Ordering::Relaxed);
        self.room.store(false, Ordering::Relaxed);
    }

    /// In a multi-threaded group, whether thread `me` held the run token
    /// when `quiet` was set: only it may take this path (and arm a call:
    /// [`Fast::arm`] overwrites the armed call).
    pub(crate) fn holds(&self, me: Pid) -> bool {
        self.holder.load(Ordering::Relaxed) == me
    }

    /// In a multi-threaded group, for the token holder `me` ([`Fast::holds`])
    /// whose call [`Fast::allows`] and [`Fast::arm`] just armed: it keeps
    /// the token through the call ([`Fast::solo`]). False if a taking of
    /// the lock came between (the caller then takes its slow path, the
    /// call disarmed); true if the call may go on, holding the token or
    /// given up for it already.
    pub(crate) fn arm_solo(&self, me: Pid) -> bool {
        // Against `Group::lock`, which clears `quiet` and then reads
        // `solo`: one of the two sees the other's store.
        self.solo.store(me, Ordering::SeqCst);
        if self.quiet.load(Ordering::SeqCst) {
            return true;
        }
        if self
            .solo
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // Given up for it already.
            return true;
        }
        self.take();
        false
    }

    /// At the `sys_exit` of thread `me` of a multi-threaded primary:
    /// whether it kept the run token through its call ([`Fast::arm_solo`])
    /// and nobody gave it up since; it holds the token then.
    pub(crate) fn leave_solo(&self, me: Pid) -> bool {
        self.solo.load(Ordering::Relaxed) == me
            && self
                .solo
                .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// At the primary's `sys_exit`: the call [`Fast::arm`] armed, if any.
    pub(crate) fn take(&self) -> Option<(i64, [usize; 6])> {
        if !Self::on() {
            return None;
        }
        let nr = self.nr.swap(-1, Ordering::Relaxed);
        (nr >= 0).then(|| {
            (
                nr,
                core::array::from_fn(|i| self.args[i].load(Ordering::Relaxed)),
            )
        })
    }
}

/// How long a duplicate procft let go of waits for its kill before it
/// kills itself ([`Group::await_kill`]), in milliseconds: the kill is sent
/// right after it is marked leaving.
const AWAIT_KILL_MS: u32 = 5000;

/// A wait condition that never holds: only a kill ends the wait (a
/// duplicate procft let go of, [`Group::await_kill`], or one parked at an
/// exit or exec the primary is to make).
///
/// # Safety
///
/// Any argument is accepted; it is not dereferenced.
pub(crate) unsafe extern "C" fn never(_arg: *const c_void) -> bool {
    false
}

/// Duplicates to kill once procft's locks are dropped. Sending a signal
/// takes the target's siglock, and the `signal_deliver` probe takes
/// procft's locks under a siglock: the two must never nest the other way.
#[must_use]
pub(crate) struct Kills([Option<ARef<Task>>; MAX_DUPS]);

impl Kills {
    /// Nobody to kill.
    pub(crate) const fn none() -> Self {
        Self([const { None }; MAX_DUPS])
    }

    /// Adds `task` (there is room for every duplicate of a group).
    pub(crate) fn add(&mut self, task: ARef<Task>) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some(task);
        }
    }

    /// Whether there is anyone to kill.
    pub(crate) fn any(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }

    /// Sends SIGKILL to each; call with no procft lock held.
    pub(crate) fn send(self) {
        for task in self.0.iter().flatten() {
            shim::kill(task);
        }
    }
}

/// A consistent copy of a group's state, taken under its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Pid of the process as the caller sees it.
    pub(crate) pid: Pid,
    /// Fault-tolerance level: the number of duplicates wanted.
    pub(crate) level: u32,
    /// Pids of the replicas, primary first; `nr_replicas` are valid.
    pub(crate) replicas: [Pid; uapi::PROCFT_MAX_REPLICAS],
    /// How many entries of `replicas` are valid.
    pub(crate) nr_replicas: usize,
    /// How many duplicates are on their own frames and waiting.
    pub(crate) ready: usize,
    /// Records of the primary's calls the slowest duplicate has yet to
    /// take (0: every duplicate has caught up with the primary).
    pub(crate) lag: u64,
    /// Event counters.
    pub(crate) counters: Counters,
    /// Bytes of output the ring holds for the duplicates, and the most it
    /// held at once.
    pub(crate) buffered: (usize, usize),
}

impl Snapshot {
    /// The state of a process procft does not protect.
    pub(crate) fn unprotected(pid: Pid) -> Self {
        let mut replicas = [0; uapi::PROCFT_MAX_REPLICAS];
        replicas[0] = pid;
        Self {
            pid,
            level: 0,
            replicas,
            nr_replicas: 1,
            ready: 0,
            lag: 0,
            counters: Counters::default(),
            buffered: (0, 0),
        }
    }
}

/// A hold on a group's separation steps ([`Group::hold_steps`]).
pub(crate) struct StepsHeld<'a>(&'a Group);

impl Drop for StepsHeld<'_> {
    fn drop(&mut self) {
        if self.0.steps_held.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The unkeyed sleepers re-check what they wait for. (A
            // duplicate separating its memory goes back to its steps when
            // its record comes or its wait times out, `replica::RETRY_MS`.)
            // The threads of multi-threaded duplicates waiting for their
            // own records, with the key of the primary's thread they
            // mirror, have nothing to do with the steps and are not woken.
            self.0.wake_only(shim::Wake::Unkeyed);
        }
    }
}

/// One protected process.
#[pin_data(PinnedDrop)]
pub(crate) struct Group {
    /// Thread-group leader of the primary: the process the world sees.
    primary: ARef<Task>,
    /// The ring's head as of its last append: every record before it has
    /// been published. Stored under the group's lock by every append
    /// ([`Group::push`], release), read without it (acquire) by a duplicate polling for
    /// its next record; it only grows.
    published: AtomicU64,
    /// How many waits of the primary for its duplicates (and promotions)
    /// are under way ([`Group::hold_steps`]): while there is one, a
    /// duplicate separating its memory takes no step, and stops the one
    /// under way at the next page ([`crate::replica::separate`]).
    steps_held: AtomicU32,
    /// What the primary's `sys_enter` reads without the lock.
    pub(crate) fast: Fast,
    /// What the group's replicas wait on: duplicates for a record, the
    /// primary for its duplicates (room in the ring, a vote, a barrier, a
    /// successor); woken ([`Group::wake`]) by the changes of this group
    /// only.
    #[pin]
    pub(crate) wq: shim::WaitQueue,
    #[pin]
    state: SpinLockIrq<State>,
    /// What the filter entries of the group's processes and the hook's
    /// word for their threads point to ([`shim::Roles`]): the system-call
    /// path finds the group from it ([`Group::of_role`]).
    roles: shim::Roles,
    /// For dropping the registry's reference once no hook may still use
    /// a role ([`retire`]).
    retired: shim::DeferHead,
    /// Set once the group is in the registry (one made for a process that
    /// another caller protected meanwhile is dropped unused): only those
    /// are counted when freed ([`freed`]).
    listed: AtomicBool,
    /// Set once the primary's vDSO time functions were routed through
    /// procft, or that was tried ([`crate::determinism::route_vdso`]).
    pub(crate) vdso_routed: AtomicBool,
    /// Its primary created threads under protection (`State::threads` is
    /// set): read without the lock at each call.
    threaded: AtomicBool,
}

/// Groups freed since the module was loaded ([`freed`]).
static FREED: AtomicU64 = AtomicU64::new(0);

#[pinned_drop]
impl PinnedDrop for Group {
    fn drop(self: Pin<&mut Self>) {
        if self.listed.load(Ordering::Relaxed) {
            FREED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How many groups have been freed: released ([`Stats::released`]), and
/// then their last reference dropped (the registry's a grace period after
/// the release, see [`retire`]; each duplicate's at its exit).
pub(crate) fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

impl Group {
    fn new(primary: ARef<Task>, level: u32) -> Result<Arc<Self>> {
        let ring = Ring::new()?;
        Arc::pin_init(
            pin_init!(Self {
                primary,
                published: AtomicU64::new(0),
                steps_held: AtomicU32::new(0),
                fast: Fast::new(),
                wq <- shim::WaitQueue::new(),
                // (Made in place: a `State` is several kilobytes, too much
                // for the stack of the call that protects a process.)
                state <- new_spinlock_irq!(init!(State {
                    level,
                    counters: Counters::default(),
                    dups <- pin_init::init_array_from_fn(|_| None),
                    spawn: Spawn::Idle,
                    saved: SavedRegs([0; 32]),
                    lost: 0,
                    spawn_failures: 0,
                    closed: false,
                    ring,
                    call: None,
                    work: PrimaryWork::None,
                    space_wait: false,
                    repair: None,
                    held_sig: None,
                    sleep_rem: None,
                    promote: None,
                    promotions: 0,
                    promoting: false,
                    successor: None,
                    mce_wish: None,
                    threads: None,
                    images: None,
                    resync: false,
                    resyncs: Resync::new(),
                    voted: None,
                    passed: None,
                    mapped: Mapped::default(),
                }), "procft_group"),
                roles: shim::Roles::new(),
                retired: shim::DeferHead::new(),
                listed: AtomicBool::new(false),
                vdso_routed: AtomicBool::new(false),
                threaded: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// The group whose role `role` is, and whether it is a duplicate's
    /// (the role the system-call hook or probe was handed).
    ///
    /// # Safety
    ///
    /// `role` must be a filter entry's role (the entry, or the hook's word
    /// for the calling thread, which is that entry or NULL), read inside
    /// the Tasks Trace RCU section the caller is still in (the group is
    /// then alive until the section ends, see [`retire`]); `'a` must not
    /// outlast it.
    pub(crate) unsafe fn of_role<'a>(role: *const shim::Role) -> (ArcBorrow<'a, Group>, bool) {
        let (roles, dup) = shim::Roles::from_role(role);
        // SAFETY: A role is the field `roles` of a group in an `Arc`
        // (`filter::add` is only given those), alive for `'a` by the
        // function's contract.
        let group =
            unsafe { ArcBorrow::from_raw(kernel::container_of!(roles.cast_mut(), Group, roles)) };
        (group, dup)
    }

    /// Global tgid of the process (the registry's key).
    pub(crate) fn tgid(&self) -> Pid {
        self.primary.tgid()
    }

    /// A duplicate of this group that procft let go of (it is leaving,
    /// or the group is closing) waits in the kernel for the kill that
    /// follows, and never returns to user space: its address space may be
    /// the primary's already (a promotion takes the successor's over right
    /// after marking it leaving and killing it, see
    /// [`crate::failover`]), and its next call is not its to make. If no
    /// kill came within [`AWAIT_KILL_MS`] it kills itself.
    pub(crate) fn await_kill(&self) {
        let waited = self
            .wq
            .wait_killable_timeout(never, core::ptr::null(), AWAIT_KILL_MS);
        if waited.is_err_and(|e| e == ETIMEDOUT) {
            shim::kill(current!());
        }
    }

    /// Makes the replicas waiting on the group ([`Group::wq`]) re-check
    /// what they wait for; no wake-up unless one sleeps.
    pub(crate) fn wake(&self) {
        self.wake_only(shim::Wake::All);
    }

    /// [`Group::wake`] for the sleepers `which` selects: a thread of a
    /// multi-threaded duplicate waiting for a record sleeps with the id of
    /// the primary's thread it mirrors as its key, and only a record of
    /// that thread (or a wake-up for all) can let it go on.
    pub(crate) fn wake_only(&self, which: shim::Wake) {
        self.wq.wake(which);
    }

    /// Pid of the process as the caller sees it.
    pub(crate) fn pid(&self) -> Pid {
        self.primary.tgid_nr_ns(None)
    }

    /// Whether its primary created threads under protection
    /// ([`crate::sync::threads`]).
    pub(crate) fn threaded(&self) -> bool {
        self.threaded.load(Ordering::Relaxed)
    }

    /// Sets [`Group::threaded`], under the group's lock, with
    /// `State::threads`.
    pub(crate) fn set_threaded(&self, on: bool) {
        self.threaded.store(on, Ordering::Relaxed);
    }

    /// Appends `record` to the ring (`st`, this group's state under its
    /// lock) and publishes it to duplicates polling without the lock:
    /// every append goes through here, so `published` never lags the ring.
    /// Fails, giving the record back, only if every slot is taken.
    pub(crate) fn push(
        &self,
        st: &mut State,
        record: Arc<crate::ring::Record>,
    ) -> Result<(), Arc<crate::ring::Record>> {
        let pushed = st.ring.push(record);
        self.published.store(st.ring.head(), Ordering::Release);
        pushed
    }

    /// Whether the record with sequence number `seq` has been published
    /// (it may be consumed, or dropped with the ring, since). Lock-free.
    pub(crate) fn is_published(&self, seq: u64) -> bool {
        self.published.load(Ordering::Acquire) > seq
    }

    /// Locks the group's state. The primary's next call takes its slow
    /// path, which looks at everything under the lock (see [`Fast`]).
    pub(crate) fn lock(&self) -> Guard<'_, State, SpinLockIrqBackend> {
        let mut st = self.state.lock();
        if !self.threaded() {
            self.fast.quiet.store(false, Ordering::Relaxed);
            return st;
        }
        self.fast.quiet.store(false, Ordering::SeqCst);
        // A thread keeping the run token through a call ([`Fast::solo`])
        // gives it up now: under the lock, no holder is in a call. (Only
        // a multi-threaded group's threads do; it never stops being one.)
        let solo = self.fast.solo.load(Ordering::SeqCst);
        if solo != 0
            && self
                .fast
                .solo
                .compare_exchange(solo, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            threads::give_up_for(&mut st, solo, self.fast.take());
        }
        st
    }

    /// Locks the group's state for a critical section that leaves nothing
    /// for the primary's next call to do: one of the primary's own, which
    /// ends by setting [`Fast`] from the state ([`Fast::set`]), or a
    /// duplicate taking a record (the ring only gains room).
    pub(crate) fn lock_quiet(&self) -> Guard<'_, State, SpinLockIrqBackend> {
        self.state.lock()
    }

    /// The group's current fault-tolerance level.
    pub(crate) fn level(&self) -> u32 {
        self.lock().level
    }

    /// A consistent copy of the group's state, pids as the caller sees
    /// them.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.snapshot_in(None)
    }

    /// A consistent copy of the group's state, pids as seen in `ns` (the
    /// caller's namespace if `None`): 0 for a process that has no pid
    /// there, and duplicates without one are not listed.
    pub(crate) fn snapshot_in(&self, ns: Option<&PidNamespace>) -> Snapshot {
        let pid = self.primary.tgid_nr_ns(ns);
        let state = self.lock_quiet();
        let mut snap = Snapshot::unprotected(pid);
        snap.level = state.level;
        snap.counters = state.counters;
        snap.buffered = state.ring.bytes();
        for d in state.dups.iter().flatten().filter(|d| !d.leaving) {
            snap.ready += usize::from(d.ready);
            let nr = d.task.tgid_nr_ns(ns);
            if nr != 0 {
                snap.replicas[snap.nr_replicas] = nr;
                snap.nr_replicas += 1;
            }
        }
        snap.lag = state.ring.head() - state.min_next_seq();
        snap
    }

    /// The primary's task.
    pub(crate) fn primary(&self) -> &Task {
        &self.primary
    }

    /// Holds its duplicates' separation steps back while the returned
    /// guard lives: the primary is about to wait for them (or to take one
    /// over), and must not wait for a step too. Dropping the last guard
    /// wakes the duplicates, which go back to separating.
    pub(crate) fn hold_steps(&self) -> StepsHeld<'_> {
        self.steps_held.fetch_add(1, Ordering::AcqRel);
        StepsHeld(self)
    }

    /// Whether separation steps are held back ([`Group::hold_steps`]).
    pub(crate) fn steps_held(&self) -> bool {
        self.steps_held.load(Ordering::Acquire) > 0
    }

    /// The hold count itself, which a step under way polls at every page.
    pub(crate) fn steps_hold(&self) -> &AtomicU32 {
        &self.steps_held
    }

    /// If the primary sleeps in a system call that the kernel makes again
    /// unseen when interrupted without a signal (see
    /// [`syscalls::interrupt`]), interrupts it: the call returns to the
    /// system-call boundary, where procft does what it has pending for the
    /// primary (a duplicate to create, a page to restore), and is then
    /// made again. Safe in atomic context.
    pub(crate) fn interrupt_blocked(&self) {
        const S_IFIFO: u32 = 0o010000;
        const S_IFCHR: u32 = 0o020000;
        let task = self.primary();
        let Some((nr, arg0)) = shim::blocked_call(task) else {
            return;
        };
        let unseen = match syscalls::interrupt(nr) {
            Interrupt::Unseen => true,
            Interrupt::UnseenUnlessSocket => {
                matches!(shim::fd_type(task, arg0), S_IFIFO | S_IFCHR)
            }
            Interrupt::Seen => false,
        };
        if unseen {
            let _ = shim::kick(task);
        }
    }

    /// The primary and the live duplicates, primary first.
    pub(crate) fn replicas(&self) -> [Option<ARef<Task>>; MAX_DUPS + 1] {
        let mut out = [const { None }; MAX_DUPS + 1];
        out[0] = Some(self.primary.clone());
        let st = self.lock();
        for (slot, d) in out[1..]
            .iter_mut()
            .zip(st.dups.iter().flatten().filter(|d| !d.leaving))
        {
            *slot = Some(d.task.clone());
        }
        out
    }

    /// Ends the group: no more duplicates; returns the existing ones, to be
    /// killed (then [`Group::wake`]) once the caller's locks are dropped.
    fn close(&self) -> Kills {
        let mut state = self.lock();
        state.closed = true;
        state.ring.clear();
        state.trim_dups(0)
    }
}

/// The table of protected processes.
struct Table {
    /// Groups keyed by the primary's global tgid; `None` until module init.
    tree: Option<RBTree<Pid, Arc<Group>>>,
    /// Groups keyed by each duplicate's global tgid.
    dups: Option<RBTree<Pid, Arc<Group>>>,
    created: u64,
    released: u64,
}

kernel::sync::global_lock! {
    // SAFETY: `Registry::init` initialises the lock in module init, before
    // any other use.
    unsafe(uninit) static GROUPS: SpinLockIrq<Table> = Table {
        tree: None,
        dups: None,
        created: 0,
        released: 0,
    };
}

/// Module-wide figures, for `PROCFT_IOC_GET_INFO`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) nr_groups: u32,
    pub(crate) created: u64,
    pub(crate) released: u64,
}

/// Ownership of the registry: created in module init, and on drop (module
/// unload, after every hook is gone) ends all protection, kills every
/// duplicate and waits until none runs module code.
pub(crate) struct Registry(());

impl Registry {
    /// Initialises the registry.  Must be called exactly once, from module
    /// init, before any hook that uses it is registered.
    pub(crate) fn init() -> Self {
        // SAFETY: Called once, from module init, before any other use.
        unsafe { GROUPS.init() };
        let mut table = GROUPS.lock();
        table.tree = Some(RBTree::new());
        table.dups = Some(RBTree::new());
        drop(table);
        Self(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Unlink everything under the lock; the records are freed after it
        // is released.
        let (tree, dups) = {
            let mut table = GROUPS.lock();
            (table.tree.take(), table.dups.take())
        };
        if let Some(tree) = tree {
            let n = tree.iter().count();
            if n > 0 {
                pr_info!("unloading: ending protection of {} process(es)\n", n);
            }
            for (_, g) in tree.iter() {
                g.close().send();
                // Its replicas may be waiting in procft code; the
                // duplicates are dying now.
                g.wake();
            }
            drop(tree);
        }
        drop(dups);
        // Readers of the event log.
        shim::wake_all();
        shim::drain();
        // Groups ended before unload, still in `retire`.
        shim::defer_barrier();
    }
}

/// Set once the module is being unloaded: no duplicate is created any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether the module is being unloaded.
pub(crate) fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Before the probes are unregistered at unload: ends every protection
/// while the probes still hold the duplicates.
///
/// 1. Stops the creation of duplicates and waits until no primary is
///    inside an injected `clone3()`, which needs the `sys_exit` probe to
///    give the primary its own call back (without it, the primary would
///    return to its program with the registers procft put there). No new
///    one starts, and one in flight is a `fork()` in the kernel: it ends,
///    successfully or not, without waiting for anything procft or the
///    program does.
/// 2. Ends every protection (killing the duplicates) and waits until every
///    duplicate has exited: a duplicate the probes no longer hold back
///    would make its system calls for real (its output twice).
pub(crate) fn quiesce() {
    wait_no_spawn();
    // One at a time, without allocating; as many as there are now (a
    // process protected meanwhile gets no duplicate any more).
    let count = GROUPS.lock().tree.as_ref().map_or(0, |t| t.iter().count());
    let mut ended = 0;
    for _ in 0..count {
        let first = GROUPS
            .lock()
            .tree
            .as_ref()
            .and_then(|t| t.iter().next().map(|(tgid, _)| *tgid));
        let Some(tgid) = first else {
            break;
        };
        remove(tgid);
        ended += 1;
    }
    if ended > 0 {
        pr_info!("unloading: ended the protection of {} process(es)\n", ended);
    }
    // SIGKILL'd, each is gone within a scheduling round or two; one
    // stuck in an uninterruptible sleep is waited for (it cannot return
    // to user space meanwhile either).
    wait_for_none("duplicate(s) to exit", || {
        GROUPS.lock().dups.as_ref().map_or(0, |d| d.iter().count())
    });
}

/// Stops the creation of duplicates; waits until none is in flight.
fn wait_no_spawn() {
    STOPPING.store(true, Ordering::Relaxed);
    wait_for_none("duplicate creation(s) in flight", || {
        let mut busy = 0;
        for_each(|g| busy += usize::from(!matches!(g.lock().spawn, Spawn::Idle)));
        busy
    });
}

/// At unload: polls `left` every 10 ms until it is zero, saying every two
/// seconds how many `what` it still waits for.
fn wait_for_none(what: &str, left: impl Fn() -> usize) {
    let mut polls = 0u32;
    loop {
        let n = left();
        if n == 0 {
            return;
        }
        polls = polls.wrapping_add(1);
        if polls % 200 == 0 {
            pr_warn!("unloading: waiting for {} {}\n", n, what);
        }
        fsleep(Delta::from_millis(10));
    }
}

/// The group of the process whose global tgid is `tgid`, if protected.
pub(crate) fn lookup(tgid: Pid) -> Option<Arc<Group>> {
    GROUPS.lock().tree.as_ref()?.get(&tgid).cloned()
}

/// The group of the duplicate whose global tgid is `tgid`.
pub(crate) fn lookup_dup(tgid: Pid) -> Option<Arc<Group>> {
    GROUPS.lock().dups.as_ref()?.get(&tgid).cloned()
}

/// Under the registry's lock (`table`): the level of `tgid`'s group set to
/// `level`, if it has one, with the old level and the duplicates to kill
/// (beyond the new level); `EBUSY` for a duplicate (its primary decides)
/// or a group still ending. `None` if `tgid` has no group (or the registry
/// is gone: the caller's insertion finds that).
fn change_level(table: &mut Table, tgid: Pid, level: u32) -> Option<Result<(u32, Kills)>> {
    if table.dups.as_ref().is_some_and(|d| d.get(&tgid).is_some()) {
        return Some(Err(EBUSY));
    }
    let existing = table.tree.as_ref()?.get(&tgid)?;
    let mut state = existing.lock();
    if state.closed {
        // Still ending, after a second.
        return Some(Err(EBUSY));
    }
    let old = state.level;
    state.level = level;
    state.spawn_failures = 0;
    state.resyncs.clear();
    Some(Ok((old, state.trim_dups(level as usize))))
}

/// Records level `level` (> 0) for the process led by `leader`.  Returns
/// the previous level (0 if it was unprotected).  Lowering the level kills
/// the newest duplicates; raising it makes the primary create more at its
/// next system calls. `EBUSY` if the process is a duplicate or its
/// protection is still ending, `ENODEV` while the module unloads, `ESRCH`
/// if it is exiting.
pub(crate) fn set_level(
    leader: &Task,
    level: u32,
    threads: Option<KBox<threads::Threads>>,
) -> Result<u32> {
    let tgid = leader.tgid();
    settle(tgid);
    // A protected process's level changes in place, with nothing allocated.
    let changed = change_level(&mut GROUPS.lock(), tgid, level);
    if let Some(changed) = changed {
        let (old, kills) = changed?;
        kills.send();
        if shim::is_exiting(leader) {
            // As below: an exiting process is given no level.
            remove(tgid);
            return Err(ESRCH);
        }
        return Ok(old);
    }
    // Allocate before taking the lock; unused if the group appeared since.
    let group = Group::new(leader.into(), level)?;
    if let Some(t) = threads {
        // A process multi-threaded already: its threads come under the
        // token once it is registered ([`crate::sync::threads::join`]).
        group.lock().threads = Some(t);
        group.set_threaded(true);
    }
    let node_group = group.clone();
    let mut node = Some(RBTreeNode::new(tgid, group, GFP_KERNEL)?);
    let mut kills = Kills::none();
    // Threads listed since the count, for a process multi-threaded
    // already (`None`: too many).
    let mut recounted = Some(0);
    // The filter's slot is reserved (outside the lock: it may sleep) unless
    // it holds an entry; one the process drops meanwhile (taking back its
    // memory-error policy) leaves `add` to allocate without sleeping,
    // which may fail: then the slot is reserved again. A few times at most.
    let mut tries = 0;
    let old = loop {
        tries += 1;
        shim::filter::reserve(tgid)?;
        let mut table = GROUPS.lock();
        match change_level(&mut table, tgid, level) {
            Some(Ok((old, k))) => {
                kills = k;
                break old;
            }
            Some(Err(e)) => {
                drop(table);
                shim::filter::release(tgid);
                return Err(e);
            }
            None => {
                let Some(tree) = table.tree.as_mut() else {
                    drop(table);
                    shim::filter::release(tgid);
                    return Err(ENODEV);
                };
                // Held from before the marking: none of the threads the
                // marking makes visible to procft runs its probes on the
                // group before the count below.
                let mut st = node_group.lock();
                // The key is absent (checked above), so nothing is replaced.
                match shim::filter::add(tgid, &node_group.roles) {
                    Ok(Some(wish)) => {
                        // Protected again before it took its own policy back.
                        st.mce_wish = Some(wish);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        drop(st);
                        drop(table);
                        shim::filter::release(tgid);
                        if e == ENOMEM && tries < 3 {
                            continue;
                        }
                        return Err(e);
                    }
                }
                // A process multi-threaded already: its threads listed
                // since the count join too.
                if let Some(t) = st.threads.as_mut() {
                    recounted = threads::recount(leader, t);
                }
                drop(st);
                node_group.listed.store(true, Ordering::Relaxed);
                if let Some(node) = node.take() {
                    let _ = tree.insert(node);
                }
                table.created += 1;
                break 0;
            }
        }
    };
    kills.send();
    // A no-op if `add` used the reservation.
    shim::filter::release(tgid);
    // The exit probe removes a group only if it already exists when the
    // process exits; PF_EXITING is set before that probe runs.  Seeing it
    // clear here, after inserting under the lock, means the probe will
    // find our record; seeing it set means we must remove it ourselves.
    if shim::is_exiting(leader) {
        remove(tgid);
        return Err(ESRCH);
    }
    match recounted {
        None => {
            // Threads made meanwhile took it past procft's limit.
            remove(tgid);
            return Err(EOPNOTSUPP);
        }
        Some(0) => {}
        Some(n) => pr_info!(
            "pid {}: {} thread(s) created as its protection began join the others\n",
            leader.tgid_nr_ns(None),
            n
        ),
    }
    Ok(old)
}

/// Ends protection of the process whose global tgid is `tgid`, killing its
/// duplicates.  Returns the level it had (0 if it was not protected).
///
/// If the primary is inside the `clone3()` procft injected, the group is
/// closed (level 0, duplicates killed) but stays registered until that
/// call's `sys_exit`, which completes the removal: the primary must pass
/// its `sys_exit` probe to get its own call back, and the child its fork
/// probe to be killed rather than run the primary's code as a process of
/// its own.
pub(crate) fn remove(tgid: Pid) -> u32 {
    end(tgid, false, None)
}

/// At the `sys_exit` of the `clone3()` procft injected into `group`'s
/// primary, whose protection ended while it was in flight: completes the
/// removal ([`remove`]), unless `group` is no longer registered. The
/// protection may have ended in full meanwhile (a level change that came
/// after the fork probe), and a new one of the same process begun, whose
/// group is not this one.
pub(crate) fn remove_closed(group: &Group) {
    end(group.primary.tgid(), false, Some(group));
}

/// [`remove`], from process context: returns once the record is gone
/// (after the primary's injected `clone3()`, if one was in flight).
pub(crate) fn remove_settled(tgid: Pid) -> u32 {
    let old = remove(tgid);
    settle(tgid);
    old
}

/// Waits (a second at most) until the protection of `tgid` is not ending
/// any more (see [`remove`]): a matter of milliseconds. May sleep.
fn settle(tgid: Pid) {
    for _ in 0..1000 {
        if !lookup(tgid).is_some_and(|g| g.lock().closed) {
            return;
        }
        fsleep(Delta::from_millis(1));
    }
}

/// At the exit of the process whose global tgid is `tgid`: ends its
/// protection (it cannot be inside a call of its own any more).
pub(crate) fn remove_exiting(tgid: Pid) -> u32 {
    end(tgid, true, None)
}

/// Ends the protection of `tgid` (only if its group is `only`, if given).
fn end(tgid: Pid, exiting: bool, only: Option<&Group>) -> u32 {
    let (removed, kills, old, closed) = {
        let mut table = GROUPS.lock();
        let Some(tree) = table.tree.as_mut() else {
            return 0;
        };
        let Some(g) = tree.get(&tgid) else {
            return 0;
        };
        if only.is_some_and(|only| !core::ptr::eq(&**g, only)) {
            return 0;
        }
        // `maybe_spawn` injects a clone3() only if, under the group lock,
        // the group is open: either it did (and the group must wait for
        // that call's end), or it will find the group closed.
        let mut st = g.lock();
        if !exiting && !matches!(st.spawn, Spawn::Idle) {
            let old = st.level;
            st.level = 0;
            st.closed = true;
            st.ring.clear();
            let kills = st.trim_dups(0);
            drop(st);
            (None, kills, old, Some(g.clone()))
        } else {
            st.closed = true;
            // A process that goes on unprotected has its own memory-error
            // kill policy back, at its next system call.
            let wish = st.mce_wish.take().filter(|_| !exiting);
            drop(st);
            let removed = tree.remove(&tgid);
            let mut kills = Kills::none();
            if let Some(g) = &removed {
                shim::filter::remove(tgid, wish);
                table.released += 1;
                kills = g.close();
            }
            let closed = removed.clone();
            (removed, kills, 0, closed)
        }
    };
    kills.send();
    if let Some(g) = closed {
        g.wake();
    }
    // Dropped outside the registry lock, once no hook can use it.
    let level = removed.as_ref().map_or(old, |g| g.level());
    if let Some(g) = removed {
        retire(g);
    }
    level
}

/// Drops the registry's reference to `group`, whose primary's filter entry
/// was just replaced or removed, after a Tasks Trace RCU grace period: a
/// system-call hook or probe of the primary that read its role before may
/// use the group until then ([`Group::of_role`]). (A duplicate's entry is
/// removed at its own exit, when no hook of it runs: its reference is
/// dropped at once.)
fn retire(group: Arc<Group>) {
    let group = Arc::into_raw(group);
    // SAFETY: The reference just leaked keeps the group, and so `retired`,
    // alive until `drop_retired` takes it back; a group is retired once,
    // when it leaves the registry.
    unsafe { (*group).retired.defer(drop_retired) };
}

/// [`retire`]'s callback.
///
/// # Safety
///
/// `head` must be the `retired` field of a group [`retire`] was given.
unsafe extern "C" fn drop_retired(head: *mut kernel::bindings::callback_head) {
    let head = shim::DeferHead::from_raw(head);
    // SAFETY: `head` is a group's `retired`, by the function's contract.
    let group = unsafe { kernel::container_of!(head.cast_mut(), Group, retired) };
    // SAFETY: The reference `retire` leaked with `Arc::into_raw`.
    drop(unsafe { Arc::from_raw(group) });
}

/// Indexes the new duplicate `child` of `group`, using the reservation
/// taken when its creation was injected. Called from the fork probe (no
/// sleeping). Returns false if it could not be tracked (it must then die
/// before running user code).
pub(crate) fn add_dup(
    group: &Arc<Group>,
    reservation: RBTreeNodeReservation<Pid, Arc<Group>>,
    child: &Task,
) -> bool {
    let tgid = child.tgid();
    let mut table = GROUPS.lock();
    if table.tree.as_ref().is_some_and(|t| t.get(&tgid).is_some()) {
        // Someone set the child's level between its creation and this
        // probe: a process of its own now, it cannot be a duplicate.
        return false;
    }
    let Some(dups) = table.dups.as_mut() else {
        return false;
    };
    let mut state = group.lock();
    if state.closed {
        return false;
    }
    let saved = state.saved;
    let next_seq = state.ring.head();
    let mut images = state.images.take();
    let Some(slot) = state.dups.iter_mut().find(|d| d.is_none()) else {
        return false;
    };
    if shim::filter::add_atomic(tgid, &group.roles).is_err() {
        return false;
    }
    *slot = Some(Dup {
        task: child.into(),
        tgid,
        saved,
        born: false,
        ready: false,
        separating: Some(Separation::default()),
        leaving: false,
        stale: false,
        born_ns: Monotonic::ktime_get(),
        ready_ns: 0,
        wiped: false,
        hit: None,
        next_seq,
        parked: false,
        waiting_for: None,
        poll: Poll::new(),
        unbounded: [0; UNBOUNDED_SLOTS],
        lazy_woken: false,
        at: -1,
        vote: None,
        work: DupWork::None,
        threads: images.as_mut().and_then(|i| i.threads.take()).map(|mut t| {
            // Its first thread mirrors the primary's that made it; the
            // others are made at its first return.
            t.running = Some(tgid);
            t.last = tgid;
            t.alive = 1 + images.as_ref().map_or(0, |i| i.list.len());
            t
        }),
        own_work: None,
        images,
    });
    let _ = dups.insert(reservation.into_node(tgid, group.clone()));
    true
}

/// Forgets the duplicate whose global tgid is `tgid` (it is exiting).
/// Returns its group and whether it was lost (procft had not asked it to
/// leave): then it is counted for replacement in the same critical
/// section that frees its slot, so the replacement counts as a respawn.
pub(crate) fn remove_dup(tgid: Pid) -> Option<(Arc<Group>, bool)> {
    let mut table = GROUPS.lock();
    let group = table.dups.as_mut()?.remove(&tgid)?;
    shim::filter::remove(tgid, None);
    let lost = {
        let mut state = group.lock();
        let slot = state
            .dups
            .iter_mut()
            .find(|d| d.as_ref().is_some_and(|d| d.tgid == tgid));
        let leaving = slot.and_then(|s| s.take()).is_none_or(|d| d.leaving);
        let lost = !leaving && !state.closed;
        if lost {
            state.lost += 1;
        }
        state.trim_ring();
        lost
    };
    drop(table);
    // The primary may be waiting for room in the ring.
    group.wake();
    Some((group, lost))
}

/// Calls `f` for each protected process, in tgid order, under the registry
/// lock (so `f` must not sleep).
pub(crate) fn for_each(mut f: impl FnMut(&Group)) {
    let table = GROUPS.lock();
    if let Some(tree) = table.tree.as_ref() {
        for (_, group) in tree.iter() {
            f(group);
        }
    }
}

/// Every protected process's group (allocates; may sleep).
pub(crate) fn all() -> KVec<Arc<Group>> {
    loop {
        let want = GROUPS.lock().tree.as_ref().map_or(0, |t| t.iter().count());
        let Ok(mut v) = KVec::with_capacity(want, GFP_KERNEL) else {
            return KVec::new();
        };
        let table = GROUPS.lock();
        let Some(tree) = table.tree.as_ref() else {
            return v;
        };
        if tree.iter().count() > want {
            continue;
        }
        for (_, g) in tree.iter() {
            let _ = v.push_within_capacity(g.clone());
        }
        return v;
    }
}

/// Module-wide figures.
pub(crate) fn stats() -> Stats {
    let table = GROUPS.lock();
    Stats {
        nr_groups: u32::try_from(table.created - table.released).unwrap_or(u32::MAX),
        created: table.created,
        released: table.released,
    }
}

/// Ends the protection of `group`'s process because it is doing something
/// procft cannot replicate (`why`), with one log line.
pub(crate) fn end_protection(group: &Group, why: &'static str) {
    let level = remove(group.tgid());
    if level > 0 {
        events::emit(group.pid(), What::Ended { why });
        pr_info!(
            "pid {}: {} cannot be replicated; protection ended (level {} -> 0)\n",
            group.pid(),
            why,
            level
        );
    }
}

/// Appends `record` to the ring and wakes the duplicates.
pub(crate) fn publish(group: &Arc<Group>, record: Arc<Record>) {
    let appended = append(group, &mut group.lock(), record);
    published(group, appended);
}

/// What [`append`] found, acted on by [`published`] once the group's lock
/// is dropped.
pub(crate) struct Appended {
    /// Every slot of the ring was taken.
    overflow: bool,
    /// Duplicates that diverged, to kill.
    kills: Kills,
    /// A duplicate of the group waits for a record: the wake-up for it.
    wake: Option<shim::Wake>,
}

/// How many records a multi-threaded duplicate may fall behind, asleep,
/// before the primary wakes it. Each sleep and wake-up costs the duplicate
/// two context switches and the primary the wake-up; a duplicate that
/// keeps up would pay them at nearly every record. So its threads sleep
/// for one scheduler tick at most, and the primary wakes it only once it
/// is this far behind, or when the primary waits for it (a vote, a
/// repair, a takeover: [`wait_for_dups`], [`crate::vote::tally`]). A
/// thread whose tick passes without its record sleeps on without a bound,
/// counted in `Dup::unbounded`, and is woken at the next record as before:
/// a process that waits for input leaves no duplicate waking each tick.
/// Its other waits for a record are counted there too, without a key (woken
/// at every record): a thread waiting for its turn at its start or exit,
/// and one whose duplicate is still separating its memory.
pub(crate) const LAZY_RECORDS: u64 = 48;

/// How many counters `Dup::unbounded` has (keys share them modulo this:
/// one that shares another's only wakes it more often; the first counts
/// the waits without a key too, woken at every record).
const UNBOUNDED_SLOTS: usize = 64;

/// The counter of `Dup::unbounded` for the key `tid`.
fn unbounded_slot(tid: Pid) -> usize {
    tid.unsigned_abs() as usize % UNBOUNDED_SLOTS
}

/// Runs `wait`, a wait without a bound of a thread of duplicate `tgid`
/// (`key`: the key of the records it waits for, 0 for every record),
/// counted in `Dup::unbounded` meanwhile, so that the primary wakes it at
/// each record of that key.
pub(crate) fn while_unbounded<T>(
    group: &Group,
    tgid: Pid,
    key: Pid,
    wait: impl FnOnce() -> T,
) -> T {
    sleeps_unbounded(group, tgid, key, true);
    let waited = wait();
    sleeps_unbounded(group, tgid, key, false);
    waited
}

/// Notes, under the lock, that a thread of duplicate `tgid` waiting with
/// `key` sleeps for its record without a bound (`on`), or no longer.
fn sleeps_unbounded(group: &Group, tgid: Pid, key: Pid, on: bool) {
    let mut st = group.lock_quiet();
    if let Some(d) = st.dup_mut(tgid) {
        let n = &mut d.unbounded[unbounded_slot(key)];
        *n = if on {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }
}

/// [`publish`], under the group's lock (`st`): appends `record`.
pub(crate) fn append(group: &Group, st: &mut State, record: Arc<Record>) -> Appended {
    // The thread whose record it is: only its mirrors take it.
    let tid = record.tid;
    let overflow = group.push(st, record).is_err();
    // A duplicate sets `waiting_for` under this lock before it sleeps:
    // one that sets it later sees the record published.
    let head = st.ring.head();
    // (A ring no longer low may hold large records: the primary may soon
    // wait for room.)
    let low = st.ring.is_low();
    let (mut parked, mut waits, mut behind) = (false, false, false);
    for d in st.dups.iter_mut().flatten() {
        parked |= d.parked && !d.leaving;
        if d.threads.is_none() {
            waits |= d.waiting_for.is_some();
        } else if d.unbounded[0] > 0 || d.unbounded[unbounded_slot(tid)] > 0 {
            // The thread that takes it may sleep without a bound. (The
            // threads of a multi-threaded duplicate wait each for its
            // own, and `waiting_for` is not each one's.)
            waits = true;
        } else if !d.lazy_woken && (!low || head.saturating_sub(d.next_seq) >= LAZY_RECORDS) {
            // It sleeps a tick at most: woken once it is LAZY_RECORDS
            // behind, and not again until one of its threads waits again,
            // if the thread woken (this record's) is the one whose record
            // is next; another one's next record wakes that one.
            d.lazy_woken = st.ring.peek(d.next_seq).is_some_and(|r| r.tid == tid);
            behind = true;
        }
    }
    // (Only the thread the record is for: one waiting for an earlier
    // record of another thread, not woken for it, wakes within its tick;
    // a wake-up for all would wake the threads that sleep for long too.)
    let wake = (waits || behind).then_some(shim::Wake::for_record(tid));
    // A duplicate waiting at an exit or exec the primary did not make
    // has diverged.
    let (kills, diverged) = if parked {
        st.replace_where(|d| d.parked)
    } else {
        (Kills::none(), 0)
    };
    st.counters.divergences += u64::from(diverged);
    Appended {
        overflow,
        kills,
        wake,
    }
}

impl Appended {
    /// Whether the append found duplicates to kill (they diverged).
    pub(crate) fn killed(&self) -> bool {
        self.kills.any()
    }
}

/// [`publish`], the group's lock dropped: acts on what [`append`] found,
/// and wakes the duplicates if one waits.
pub(crate) fn published(group: &Group, appended: Appended) {
    appended.kills.send();
    if appended.overflow {
        end_protection(group, "a synchronisation buffer overflow");
    }
    if let Some(which) = appended.wake {
        group.wake_only(which);
    }
}

/// Waits, killably, until `cond(arg)` holds for the primary of `group`,
/// which needs its duplicates to get somewhere (`what`, for the log).
///
/// The primary never waits on a duplicate for ever. Every module parameter
/// `lag_timeout_ms` without the condition, each duplicate that `behind`
/// selects (given the ring's head and the oldest record still needed) and
/// that got less than a millisecond of CPU time meanwhile is declared lost:
/// stopped, frozen, traced, stuck, or starved of CPU, it is killed and
/// replaced, exactly like one a memory error hit. One that computes is
/// doing the work the primary did and is waited for, [`LAG_ROUNDS`] times
/// the timeout at most (it may loop for ever on corrupted memory). A
/// leaving duplicate never holds the primary back, so the condition holds
/// at the latest once none is left (its "no duplicate" case). `Err` if a
/// fatal signal came (or, `ETIMEDOUT`, if the replacements did not let the
/// condition hold).
pub(crate) fn wait_for_dups(
    group: &Group,
    what: &str,
    cond: unsafe extern "C" fn(*const c_void) -> bool,
    arg: *const c_void,
    behind: impl Fn(&Dup, u64, u64) -> bool,
) -> Result {
    // No duplicate takes a separation step until the wait is over.
    let _held = group.hold_steps();
    // Duplicates left asleep for a while ([`LAZY_RECORDS`]) come now.
    group.wake();
    let ms = crate::module_parameters::lag_timeout_ms.value().max(100);
    for round in 1..=LAG_ROUNDS {
        let before = group.lock().dup_runtimes();
        match group.wq.wait_killable_timeout(cond, arg, ms) {
            Err(e) if e == ETIMEDOUT => {}
            done => return done,
        }
        let (kills, n) = {
            let mut st = group.lock();
            let (head, oldest) = (st.ring.head(), st.min_next_seq());
            st.replace_where(|d| {
                let idle = before.iter().flatten().any(|&(tgid, ns)| {
                    tgid == d.tgid && shim::runtime_ns(&d.task) < ns + 1_000_000
                });
                behind(d, head, oldest) && (idle || round >= LAG_ROUNDS)
            })
        };
        kills.send();
        group.wake();
        if n > 0 {
            let how = if round >= LAG_ROUNDS {
                "and more"
            } else {
                "without running (stopped, frozen, traced or stuck)"
            };
            pr_warn!(
                "pid {}: {} duplicate(s) kept the primary waiting ({}) for {} ms {}; replacing \
                 them\n",
                group.pid(),
                n,
                what,
                ms,
                how
            );
        }
    }
    // Every duplicate behind was replaced in the last round.
    group.wq.wait_killable_timeout(cond, arg, ms)
}

/// How many [`wait_for_dups`] timeouts a duplicate that computes is given.
pub(crate) const LAG_ROUNDS: u32 = 12;

#[kunit_tests(procft_poll)]
mod tests {
    use super::{Poll, Waited};

    /// Runs `n` waits that end as `how` says (a poll that paid, if they
    /// did not sleep and polled); how many of them polled.
    fn polls(p: &mut Poll, n: usize, how: Waited) -> usize {
        (0..n)
            .filter(|_| {
                let polled = p.polls();
                let how = match how {
                    Waited::Polled if !polled => Waited::AtOnce,
                    how => how,
                };
                p.waited(polled, how);
                polled
            })
            .count()
    }

    #[test]
    fn stops_polling_where_it_does_not_pay() {
        let mut p = Poll::new();
        // Every poll fails: the first CREDIT waits poll, then one in PROBE.
        let credit = usize::from(Poll::CREDIT);
        let probe = usize::from(Poll::PROBE);
        assert_eq!(polls(&mut p, credit, Waited::Slept), credit);
        assert_eq!(polls(&mut p, probe * 10, Waited::Slept), 10);
    }

    #[test]
    fn records_there_already_prove_nothing() {
        // A server: each request's first wait polls in vain (the primary
        // waits for the next request), the others find their records.
        let mut p = Poll::new();
        let mut polled = 0;
        for _ in 0..100 {
            polled += polls(&mut p, 1, Waited::Slept);
            polls(&mut p, 4, Waited::AtOnce);
        }
        // Credit runs out after CREDIT requests; then only the probes.
        assert!(polled < usize::from(Poll::CREDIT) + 100 * 5 / usize::from(Poll::PROBE) + 1);
    }

    #[test]
    fn a_sleeping_primary_costs_no_credit() {
        // Waits that did not poll because the primary slept (a server
        // waiting for its next request) say nothing about polls.
        let mut p = Poll::new();
        assert_eq!(polls(&mut p, 100, Waited::Unpolled), 100);
        let credit = usize::from(Poll::CREDIT);
        assert_eq!(polls(&mut p, credit, Waited::Slept), credit);
        assert!(!p.polls());
        // Out of credit, such a wait neither gives any back nor brings
        // the next probe closer.
        while !p.polls() {}
        p.waited(true, Waited::Unpolled);
        let probe = usize::from(Poll::PROBE);
        assert_eq!(polls(&mut p, probe - 1, Waited::Slept), 0);
        assert!(p.polls());
    }

    #[test]
    fn polls_again_once_a_poll_paid() {
        let mut p = Poll::new();
        polls(&mut p, 100, Waited::Slept);
        // A probe that sees its record come gives the credit back.
        while !p.polls() {}
        p.waited(true, Waited::Polled);
        assert_eq!(polls(&mut p, 5, Waited::Polled), 5);
        let credit = usize::from(Poll::CREDIT);
        assert_eq!(polls(&mut p, credit, Waited::Slept), credit);
        assert!(!p.polls());
    }
}

#[kunit_tests(procft_resync)]
mod resync_tests {
    use super::Resync;

    const MS: i64 = 1_000_000;

    #[test]
    fn finished_duplicates_are_never_held() {
        let mut r = Resync::new();
        for i in 0..100 {
            assert_eq!(r.replaced(i * MS, None), (0, false));
            assert!(!r.holds(|| i * MS));
        }
        assert_eq!(r.count, 100);
    }

    #[test]
    fn one_unfinished_replacement_is_not_held() {
        // A single handler while a duplicate copies (one just made).
        let mut r = Resync::new();
        assert_eq!(r.replaced(0, Some(5 * MS)), (0, false));
        assert!(r.end().is_none());
        // One that then finishes starts the count again.
        assert_eq!(r.replaced(10 * MS, None), (0, false));
        assert_eq!(r.replaced(20 * MS, Some(5 * MS)), (0, false));
    }

    #[test]
    fn a_streak_doubles_the_hold_up_to_its_bound() {
        let mut r = Resync::new();
        let mut now = 0;
        assert_eq!(r.replaced(now, Some(3 * MS)).0, 0);
        // The second in a row: held as long as the copy had run.
        assert_eq!(r.replaced(now, Some(3 * MS)), (3 * MS, true));
        assert!(r.holds(|| now + 2 * MS));
        assert!(!r.holds(|| now + 3 * MS));
        let mut last = 3 * MS;
        for _ in 0..20 {
            now += last;
            let (hold, first) = r.replaced(now, Some(MS / 2));
            assert!(!first);
            assert_eq!(hold, (last * 2).min(Resync::MAX_HOLD_NS));
            last = hold;
        }
        assert_eq!(last, Resync::MAX_HOLD_NS);
        // A duplicate made ends the hold; one that finished, the streak.
        r.started();
        assert!(r.end().is_none() && !r.holds(|| now));
        assert_eq!(r.replaced(now, None), (0, false));
        assert_eq!(r.replaced(now, Some(MS)), (0, false));
    }

    #[test]
    fn a_short_copy_is_held_a_millisecond() {
        let mut r = Resync::new();
        r.replaced(0, Some(1000));
        assert_eq!(r.replaced(0, Some(1000)), (MS, true));
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The time-stamp counter: `rdtsc` and `rdtscp` executed by a protected
//! program itself, trapped and replayed, events of the protocol like the
//! system calls of [`super`].
//!
//! They are the reads of outside state that bypass the system-call
//! boundary: each replica would read its own counter, at its own moment,
//! and a replica whose output depends on the value would diverge. With
//! the kernel's hook for them (`kernel/patches/0005`), the primary makes
//! its counter reads trap (`CR4.TSD` for the task, as `PR_SET_TSC` does)
//! just before its first duplicate is forked, which inherits that
//! ([`crate::determinism::trap_tsc`]):
//!
//! - at a trap of the primary ([`primary`]), procft reads the counter for
//!   it, appends a record of the read to the ring (a pseudo call number,
//!   `NR_RDTSC`, with the value as its result and `TSC_AUX` beside it)
//!   and steps over the instruction;
//! - at a trap of a duplicate ([`dup`]), its next record must be such a
//!   record (anything else is divergence): it takes the value from it and
//!   steps over the instruction; without a record yet, it waits in its
//!   task_work and executes the instruction again, which traps again;
//! - whatever would make the primary wait (a full ring, a page to restore
//!   from a duplicate, a promotion) is handled in its task_work, the
//!   instruction pointer left where it is: the read traps again after it.
//!
//! A process with no duplicate, or whose protection ended, declines the
//! trap: the kernel stops trapping it and the instruction runs natively.
//! Without the kernel's hook nothing traps, and each replica reads its own
//! counter, as before.

use kernel::{prelude::*, sync::Arc, task::Task};

use super::Call;
use crate::{
    group::{self, Group, PrimaryWork, Spawn},
    ring::Record,
    shim, sync,
    syscalls::NR_RDTSC,
    types::DupWork,
};

/// The record arguments of a read (`rdtscp`, and the `TSC_AUX` it gave).
fn args(rdtscp: bool, aux: u32) -> [usize; 6] {
    [usize::from(rdtscp), aux as usize, 0, 0, 0, 0]
}

/// The hook's trap of an `rdtsc` (or `rdtscp`) of a protected process or
/// duplicate (`dup`) of `group`. False to decline it: the kernel then stops
/// trapping the task, and the instruction runs natively.
pub(crate) fn trapped(group: &Arc<Group>, rdtscp: bool, dup: bool) -> bool {
    if dup {
        self::dup(group, current!(), rdtscp);
        true
    } else {
        primary(group, rdtscp)
    }
}

/// What a primary's trap found to do, under its group's lock.
enum Step {
    /// Nobody needs a record: decline the trap.
    Decline,
    /// The read runs, unrecorded (a duplicate is being forked).
    Native,
    /// Wait in a task_work first (see [`PrimaryWork::Trap`]).
    Wait,
    /// A record from the ring's pool is needed, and the pool is empty.
    Allocate,
    /// Recorded.
    Done,
}

/// At a trap of the primary of `group`: reads the counter, records the
/// read and steps over the instruction (or declines, or waits first).
fn primary(group: &Arc<Group>, rdtscp: bool) -> bool {
    // Held for a signal that was not handled after all: published first.
    let held = group.lock().held_sig.take();
    if let Some(record) = held {
        group::publish(group, record.into());
    }
    let mut spare: Option<kernel::sync::UniqueArc<Record>> = None;
    for _ in 0..2 {
        match step(group, rdtscp, &mut spare) {
            Step::Decline => return false,
            Step::Native => {
                let (tsc, aux) = shim::tsc::read();
                shim::tsc::emulate(rdtscp, tsc, aux);
                return true;
            }
            Step::Wait => {
                if shim::queue_task_work().is_err() {
                    // No memory, or the module is going: neither recorded
                    // nor waited for, the read would part the replicas.
                    group.lock().work = PrimaryWork::None;
                    group::end_protection(group, "no task_work to wait in at a counter read");
                    return false;
                }
                return true;
            }
            Step::Allocate => match Record::new() {
                Ok(r) => spare = Some(r),
                Err(_) => {
                    group::end_protection(group, "out of memory for a record");
                    return false;
                }
            },
            Step::Done => return true,
        }
    }
    // The lock was dropped to allocate, and the pool emptied again
    // meanwhile: the read traps again.
    true
}

/// [`primary`] under the group's lock: what to do, or the read recorded
/// (with `spare`, if the ring's pool has no record).
fn step(
    group: &Arc<Group>,
    rdtscp: bool,
    spare: &mut Option<kernel::sync::UniqueArc<Record>>,
) -> Step {
    // The primary's own section: it sets `group.fast` itself.
    let mut st = group.lock_quiet();
    if st.closed || (st.dups.iter().flatten().next().is_none() && matches!(st.spawn, Spawn::Idle)) {
        return Step::Decline;
    }
    if !matches!(st.spawn, Spawn::Idle) || st.resync {
        // No record for it: a duplicate being made starts after it, and
        // stale ones are replaced at the next call.
        return Step::Native;
    }
    st.trim_ring();
    if st.promote.is_some() || st.repair.is_some() || !st.ring.has_room(super::threads::room(&st)) {
        st.work = PrimaryWork::Trap;
        group.fast.set(&st, |_| false);
        return Step::Wait;
    }
    let Some(mut record) = st.ring.take_record().or_else(|| spare.take()) else {
        return Step::Allocate;
    };
    let (tsc, aux) = shim::tsc::read();
    shim::tsc::emulate(rdtscp, tsc, aux);
    record.start(NR_RDTSC, args(rdtscp, aux));
    // The counter, as the register pair it is read into.
    record.ret = tsc as isize;
    super::threads::stamp(group, &mut record);
    record.input_hash = Some(0);
    record.ip = shim::user_ip();
    if shim::signal_pending() && st.held_sig.is_none() {
        // Published when the signal is delivered, carrying it to the
        // duplicates at the same point (or at the next call or read).
        st.held_sig = Some(record);
        group.fast.set(&st, |_| false);
        return Step::Done;
    }
    let appended = group::append(group, &mut st, record.into());
    group.fast.set(&st, sync::is_quiet);
    drop(st);
    group::published(group, appended);
    Step::Done
}

/// The primary's task_work after a trap it could not record at once
/// ([`PrimaryWork::Trap`]): restores a lost page from a duplicate, then
/// waits for room in the ring if it is still full. The read then traps
/// again.
pub(crate) fn primary_wait(group: &Arc<Group>) {
    if group.lock().repair.is_some() {
        sync::repair(group);
    }
    let full = {
        let mut st = group.lock();
        st.trim_ring();
        st.space_wait = !st.ring.has_room(super::threads::room(&st));
        st.space_wait
    };
    if full {
        sync::wait_space(group);
    }
}

/// What a duplicate's trap found.
enum Take {
    /// Its record, taken: the read is done.
    Took,
    /// Not published yet (or the duplicate is still separating its memory
    /// and not in its task_work): it waits for it.
    NotYet,
    /// It is to die (leaving, diverged, or the group closed).
    Gone,
}

/// At a trap of duplicate `task` of `group`: takes the primary's record of
/// the read if it is published, or waits for it in its task_work.
fn dup(group: &Group, task: &Task, rdtscp: bool) {
    match take(group, task, rdtscp, false) {
        Take::Took => return,
        // Let go of: it must not run on (its kill is on its way).
        Take::Gone => {
            shim::kill(task);
            return;
        }
        Take::NotYet => {}
    }
    let own = {
        let mut st = group.lock_quiet();
        let Some(d) = st.dup_mut(task.tgid()) else {
            return;
        };
        d.at = NR_RDTSC;
        let Ok(own) = super::threads::set_work(d, task.pid(), DupWork::Trap { rdtscp }) else {
            drop(st);
            shim::kill(task);
            return;
        };
        own
    };
    if group::Dup::queue_work(own).is_err() {
        shim::kill(task);
    }
}

/// A duplicate's task_work after its trap found no record
/// ([`DupWork::Trap`]): waits for it and takes it; the instruction is then
/// done, or (not taken) runs and traps again.
pub(crate) fn dup_wait(group: &Group, task: &Task, rdtscp: bool) {
    if sync::wait_record(group, task, NR_RDTSC, &args(rdtscp, 0), None).is_err() {
        return;
    }
    if matches!(take(group, task, rdtscp, true), Take::Gone) {
        group.await_kill();
    }
}

/// Takes the primary's record of the calling duplicate's counter read, if
/// it is published (and, unless `separating`, the duplicate is done
/// separating its memory): finishes the read with its value.
fn take(group: &Group, task: &Task, rdtscp: bool, separating: bool) -> Take {
    let tgid = task.tgid();
    let (tsc, aux, signal, wake) = {
        let mut guard = group.lock_quiet();
        let st = &mut *guard;
        let Some((d, record)) = st.dup_and_next(tgid).filter(|(d, _)| !d.leaving) else {
            return Take::Gone;
        };
        if d.separating.is_some() && !separating {
            return Take::NotYet;
        }
        let seq = d.next_seq;
        let Some(record) = record else {
            return Take::NotYet;
        };
        if d.threads.is_some() && !super::threads::may_take(d, record, task.pid()) {
            // Another thread's turn ([`super::threads`]).
            return Take::NotYet;
        }
        if record.nr != NR_RDTSC || record.args[0] != usize::from(rdtscp) {
            let (nr, args) = (record.nr, record.args);
            drop(guard);
            sync::diverge(
                group,
                task,
                format_args!(
                    "it made {} where the primary made {}",
                    Call(NR_RDTSC, &self::args(rdtscp, 0)),
                    Call(nr, &args)
                ),
            );
            return Take::Gone;
        }
        let (tsc, aux, signal) = (record.ret as u64, record.args[1] as u32, record.signal);
        d.next_seq = seq + 1;
        super::threads::took(d, task.pid());
        (tsc, aux, signal, sync::consumed(st))
    };
    shim::tsc::emulate(rdtscp, tsc, aux);
    sync::replay_signal(&signal);
    if wake {
        group.wake();
    }
    Take::Took
}

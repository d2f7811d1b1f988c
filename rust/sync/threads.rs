// SPDX-License-Identifier: GPL-2.0

//! Threads created under protection: the run token, and the schedule the
//! duplicates follow.
//!
//! Each replica runs user code in one thread at a time. In the primary
//! that thread holds the group's *run token*:
//!
//! - it keeps it through the calls every replica makes ([`Class::Local`]
//!   and [`Class::Mmap`]: they do not block on another thread) and
//!   through the creation of a thread;
//! - it gives it up at the `sys_enter` of a recorded call (any call of
//!   class [`Class::Primary`], which the `futex` calls and `sched_yield`
//!   become in a multi-threaded group: they may wait for another thread),
//!   after the call is armed ([`give_up`]);
//! - a thread takes it back at that call's `sys_exit`, before its record
//!   is appended ([`take_turn`]). A new thread takes it at its first
//!   return, and the record of that return is its start.
//!
//! The ring's order is then the schedule: each record carries the thread
//! that made it ([`Record::tid`]), and names the thread that ran user code
//! next. A duplicate's thread takes a record only when it is its own
//! (the primary's thread it mirrors made it) and no other thread of that
//! duplicate is still running the user code its last record let it run
//! ([`DupThreads::running`], cleared at the next call that gives the token
//! up). Between two calls a thread's user code is deterministic given the
//! memory it starts from, so the replicas stay identical, racy code
//! included; a duplicate never blocks in a futex, it takes the results of
//! the primary's.
//!
//! A thread creation (`clone` or `clone3` with `CLONE_THREAD`) is a call
//! every replica makes: a duplicate makes its own once the primary's
//! record of it is published ([`dup_clone`]), its child mirrors the
//! primary's, and both see the primary's thread ids. A thread's exit is a
//! record too: a duplicate's thread clears its `clear_child_tid` word
//! there ([`dup_exit`]), so a joining thread finds it cleared at the same
//! point as in the primary.
//!
//! A duplicate of a multi-threaded process re-creates its threads
//! ([`crate::replica::threads`]), and a takeover stops them all
//! ([`crate::failover`]). A thread that runs on without a call while
//! another waits for the token is preempted (after
//! [`module_parameters::thread_wait_ms`]): the duplicates are re-created
//! from the primary there ([`preempted`]).
//!
//! A process already multi-threaded when its protection begins has its
//! threads join the token's order ([`call_to_join`]) before its first
//! duplicate is made.
//!
//! What is not built for a multi-threaded group (each ends protection
//! with one log line, or is not offered): restoring one page of the
//! primary (a takeover replaces its whole memory), votes, and a signal
//! handler run outside a call's return.

use core::cell::Cell;

use kernel::{
    ffi::c_void,
    prelude::*,
    sync::{Arc, UniqueArc},
    task::{Pid, Task},
    uaccess::{UserPtr, UserSlice},
};

pub(crate) use crate::group::threads::{
    creating, dup_gives_up, dup_one_of_several, exiting, give_up, holder_waits, may_take, me,
    mirrored, new_dup_threads, new_threads, one_of_several, room, set_work, solo, stands, took,
    work_of,
};
use crate::group::threads::{DThread, DupThreads, PendingChild, ThreadClone, MAX_THREADS};
use crate::{
    group::{self, Group, PrimaryWork, State},
    ring::Record,
    shim,
    syscalls::{Class, NR_PREEMPTED},
    types::DupWork,
};

const NR_SCHED_YIELD: i64 = 24;
const NR_CLONE: i64 = 56;
const NR_EXIT: i64 = 60;
const NR_FUTEX: i64 = 202;
const NR_CLONE3: i64 = 435;

use crate::group::threads::{
    CLONE_CHILD_CLEARTID, CLONE_SETTLS, CLONE_SYSVSEM, CLONE_THREAD, THREAD,
};

const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// What else it may ask for.
const THREAD_MAY: u64 = CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

/// The flags of call `nr` with `args`, if it is `clone` or `clone3` (read
/// from the caller's memory for `clone3`: `None` if it cannot be read,
/// and the call fails with `EFAULT`), and where it writes the new task's
/// id.
pub(crate) fn clone_args(nr: i64, args: &[usize; 6]) -> Option<ThreadClone> {
    Some(match nr {
        NR_CLONE => ThreadClone {
            flags: args[0] as u64,
            parent_tid: args[2],
            child_tid: args[3],
        },
        NR_CLONE3 => {
            // struct clone_args: flags, pidfd, child_tid, parent_tid.
            let mut r = UserSlice::new(UserPtr::from_addr(args[0]), 32).reader();
            let flags = r.read::<u64>().ok()?;
            let _pidfd = r.read::<u64>().ok()?;
            let child_tid = r.read::<u64>().ok()? as usize;
            let parent_tid = r.read::<u64>().ok()? as usize;
            ThreadClone {
                flags,
                parent_tid,
                child_tid,
            }
        }
        _ => return None,
    })
}

/// Call `nr` with `args`, if it creates a thread (`CLONE_THREAD`).
pub(crate) fn thread_clone(nr: i64, args: &[usize; 6]) -> Option<ThreadClone> {
    clone_args(nr, args).filter(|c| c.flags & CLONE_THREAD != 0)
}

/// Why the thread creation `c` is not replicated, if it is not.
pub(crate) fn refused(c: &ThreadClone) -> Option<&'static str> {
    if !crate::module_parameters::threads.value() {
        Some("creating a thread (clone with CLONE_VM)")
    } else if c.flags & THREAD != THREAD || c.flags & !(THREAD | THREAD_MAY | 0xff) != 0 {
        Some("creating a thread with clone flags procft does not replicate")
    } else {
        None
    }
}

/// The class of call `nr` in a multi-threaded group (`class`: its class
/// otherwise): a call that may wait for another thread of the process is
/// recorded, so that it gives the run token up.
pub(crate) fn class(nr: i64, class: Class) -> Class {
    match nr {
        NR_FUTEX | NR_SCHED_YIELD | 449 | 454..=456 => Class::Primary,
        _ => class,
    }
}

/// `FUTEX_CMD_MASK`: the operation, without the private and clock flags.
const FUTEX_CMD_MASK: usize = !(128 | 256);

/// Why call `nr` with `args` cannot be replicated in a multi-threaded
/// group, if it cannot: the futex operations in which the kernel writes
/// the futex word (priority inheritance, `FUTEX_WAKE_OP`) would leave the
/// duplicates' words as they were.
pub(crate) fn unreplicable(nr: i64, args: &[usize; 6]) -> Option<&'static str> {
    // WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAIT_BITSET, WAKE_BITSET.
    let plain = matches!(args[1] & FUTEX_CMD_MASK, 0..=1 | 3..=4 | 9..=10);
    (nr == NR_FUTEX && !plain).then_some("a futex operation in which the kernel writes the word")
}

/// What a primary's thread waiting for the token waits for.
struct TokenWaiter<'a> {
    group: &'a Group,
    me: Pid,
    /// The last takeover it stopped for ([`Threads::stops`]; 0: none).
    parked: Cell<u64>,
}

/// Whether the waiting thread holds the run token now (passed to it), is
/// to stop for a takeover, or the group no longer needs one.
///
/// # Safety
///
/// `arg` must point to a live [`TokenWaiter`].
unsafe extern "C" fn token_passed(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<TokenWaiter<'_>>() };
    let st = w.group.lock();
    st.closed
        || st
            .threads
            .as_ref()
            .is_none_or(|t| t.token == Some(w.me) || (t.stop && w.parked.get() != t.stops))
}

/// Under the group's lock (`st`), for thread `me` that just got the run
/// token at its `sys_exit` of call `nr`: takes back the call it armed, so
/// that its record is appended now, next in the schedule (unless `record`
/// is false: it makes the call again). A new thread's first return is
/// recorded as the call that created it, returning 0.
fn claim(group: &Group, st: &mut State, me: Pid, nr: i64, record: bool) {
    let call = match st.threads.as_mut().and_then(|t| t.slot(me)) {
        Some(slot) => match slot.take() {
            Some(p) => p.call,
            None if matches!(nr, NR_CLONE | NR_CLONE3) => Some((nr, shim::syscall_args())),
            None => None,
        },
        None => None,
    };
    if record && call.is_some() && st.dups.iter().flatten().next().is_some() {
        st.call = call;
    }
    group.fast.set(st, |_| false);
}

/// What a thread of a multi-threaded primary found at its `sys_exit`
/// ([`take_turn`]).
pub(crate) enum Turn {
    /// It holds the run token: its call is recorded now.
    Go,
    /// The process's protection ended while it waited.
    Ended,
    /// Its call was interrupted only to stop it for a takeover: it makes
    /// the call again, unrecorded.
    Again,
}

/// How many times a thread waiting for the token preempts its holder at
/// one turn before it ends protection ([`take_turn`]).
const PREEMPT_TRIES: u32 = 3;

/// At a `sys_exit` of a thread of a multi-threaded primary (`nr`, the
/// call, which returned `ret`): unless it holds the run token, it waits
/// for it, in the order the threads asked ([`claim`] then).
///
/// The wait is bounded: if the token did not change hands for
/// `thread_wait_ms` while its holder was not waiting in procft, the
/// holder runs on without a call and is preempted ([`preempted`]); if it
/// still holds the token after [`PREEMPT_TRIES`] such waits, the
/// process's protection ends.
///
/// While it waits, a takeover may stop it ([`crate::failover`]): it keeps
/// what its call wrote to memory ([`keep_outputs`]), which the takeover
/// replaces, and writes it again once it holds the token; a call that a
/// takeover's kick interrupted with `EINTR` is made again.
pub(crate) fn take_turn(group: &Arc<Group>, nr: i64, ret: isize) -> Turn {
    const EINTR_RET: isize = -4;
    let me = me();
    // A thread of a process multi-threaded when its protection began,
    // coming under the token at this return: a call that the kick meant
    // to bring it here interrupted with `EINTR` is made again.
    let joined;
    let mut seen = {
        let mut guard = group.lock();
        let st = &mut *guard;
        let Some(t) = st.threads.as_mut() else {
            return if st.closed { Turn::Ended } else { Turn::Go };
        };
        // (Once the last has, the token holder's next call makes the
        // duplicates.)
        joined = t.joined(me);
        if t.token == Some(me) {
            return Turn::Go;
        }
        let again = joined && ret == EINTR_RET && !shim::signal_pending();
        if t.ask(me) {
            claim(group, st, me, nr, !again);
            drop(guard);
            if again {
                shim::restart_call(nr);
                return Turn::Again;
            }
            return Turn::Go;
        }
        if joined && !again {
            // Its call began before its protection. Once it has the token
            // the thread runs on from its return, which a duplicate made
            // meanwhile starts its mirror at, as at a preemption
            // ([`preempted`]); or, interrupted, the call is recorded as
            // such (and made again) as any call is.
            if !t.waits(me) {
                let call = if crate::syscalls::is_restart(ret) {
                    (nr, shim::syscall_args())
                } else {
                    (NR_PREEMPTED, [0; 6])
                };
                t.wait_at(me, call);
            }
        }
        t.handovers
    };
    let w = TokenWaiter {
        group,
        me,
        parked: Cell::new(0),
    };
    let arg = core::ptr::from_ref(&w).cast();
    let ms = crate::module_parameters::thread_wait_ms.value().max(100);
    // What its call wrote, once a takeover stopped it.
    let mut kept: Option<UniqueArc<Record>> = None;
    // The token's turn at which it preempted the holder, and how many
    // times.
    let mut preempts = (seen, 0u32);
    // The holder was stopped or frozen at the last timeout.
    let mut was_stopped = false;
    loop {
        let waited = group.wq.wait_killable_timeout(token_passed, arg, ms);
        let mut guard = group.lock();
        let st = &mut *guard;
        if st.closed {
            return Turn::Ended;
        }
        let Some(t) = st.threads.as_mut() else {
            return Turn::Go;
        };
        if t.token == Some(me) {
            // Interrupted by a takeover's kick, or the kick that made it
            // join, not by a signal.
            let kicked = w.parked.get() != 0 || joined;
            let again = kicked && ret == EINTR_RET && !shim::signal_pending();
            claim(group, st, me, nr, !again);
            drop(guard);
            if let Some(record) = kept {
                if record.write_outputs().is_err() {
                    group::end_protection(group, "a call's results lost in a takeover");
                    return Turn::Ended;
                }
            }
            if again {
                shim::restart_call(nr);
                return Turn::Again;
            }
            return Turn::Go;
        }
        if t.stop && w.parked.get() != t.stops {
            // A takeover replaces the memory: keep what the call wrote
            // there (once: after a first takeover, memory no longer has
            // it).
            let first = w.parked.get() == 0;
            let call = t.threads.iter().flatten().find(|p| p.tid == me);
            let call = call.and_then(|p| p.call);
            w.parked.set(t.stops);
            drop(guard);
            let ok = !first || keep_outputs(call, ret).map(|r| kept = r).is_ok();
            let mut st = group.lock();
            // Counted for this takeover only, if it is still under way.
            if let Some(t) = st
                .threads
                .as_mut()
                .filter(|t| t.stop && t.stops == w.parked.get())
            {
                t.parked += 1;
                t.unparkable |= !ok;
            }
            drop(st);
            group.wake();
            continue;
        }
        match waited {
            Err(e) if e == ETIMEDOUT => {
                let takeover = t.stop || st.promote.is_some() || st.promoting;
                if t.handovers != seen || t.holder_waits || takeover {
                    // Others took turns, or the holder waits in procft
                    // (or takes over).
                    seen = t.handovers;
                    continue;
                }
                let holder = t.token.and_then(|h| shim::thread_of(current!(), h));
                let traced = holder.as_ref().is_some_and(|h| shim::is_ptraced(h));
                if !traced && holder.as_ref().is_some_and(|h| shim::is_stopped(h)) {
                    // Stopped (`SIGSTOP`) or frozen: it runs nothing, and
                    // waits to be let go, as this thread does; that time
                    // does not count, nor the wait it ends in (once let
                    // go, it has a whole `thread_wait_ms` again).
                    drop(guard);
                    drop(holder);
                    was_stopped = true;
                    continue;
                }
                if core::mem::take(&mut was_stopped) && !traced {
                    continue;
                }
                // The holder runs on without a call: it is preempted (a
                // few times at most at one turn: its task_work lets it
                // run on if it finds it busy in procft).
                if preempts.0 != seen {
                    preempts = (seen, 0);
                }
                let holder = holder.filter(|_| !traced && preempts.1 < PREEMPT_TRIES);
                if let Some(holder) = holder {
                    drop(guard);
                    let queued = shim::preempt(&holder, seen).is_ok();
                    drop(holder);
                    preempts.1 += 1;
                    if queued {
                        continue;
                    }
                    guard = group.lock();
                    // The holder may have given the token up meanwhile
                    // (an exiting one cannot be preempted).
                    let t = guard.threads.as_ref();
                    if t.is_none_or(|t| t.handovers != seen || t.token == Some(me)) {
                        continue;
                    }
                }
                // It did not stop in `thread_wait_ms` either (it runs in
                // the kernel all along), or cannot be preempted, or a
                // tracer holds it (which may change it unseen).
                if let Some(t) = guard.threads.as_mut() {
                    t.leave(me);
                }
                drop(guard);
                group::end_protection(
                    group,
                    if traced {
                        "being traced"
                    } else {
                        "a thread that runs on without a system call while another waits to run"
                    },
                );
                return Turn::Ended;
            }
            // A fatal signal: it dies without running user code.
            Err(_) => {
                t.leave(me);
                drop(guard);
                group.wake();
                return Turn::Ended;
            }
            Ok(()) => {}
        }
    }
}

/// In the thread of a multi-threaded primary that held the run token at
/// turn `turn` and ran on without a system call while another waited for
/// the token ([`take_turn`]), on its way back to user mode: unless the
/// token changed hands since, it gives the token up there and waits for
/// it again.
///
/// The duplicates cannot stop at that point: they count no instructions.
/// They are out of step from here: they are killed, and re-created from
/// the primary at its next recorded call ([`crate::replica::threads`]: the
/// new duplicate's thread for this one starts at that point, standing at
/// [`NR_PREEMPTED`], and waits for the record this one makes when it takes
/// the token back).
pub(crate) fn preempted(turn: u64) {
    let task = current!();
    let Some(group) = group::lookup(task.tgid()) else {
        return;
    };
    if turn == JOIN {
        join(&group);
        return;
    }
    let me = me();
    let (kills, lost, first) = {
        let mut guard = group.lock();
        let st = &mut *guard;
        let quiet = matches!(st.work, PrimaryWork::None)
            && st.promote.is_none()
            && !st.promoting
            && !st.closed;
        let Some(t) = st.threads.as_mut() else {
            return;
        };
        if !quiet
            || t.token != Some(me)
            || t.handovers != turn
            || t.holder_waits
            || t.stop
            || shim::is_exiting(task)
            || shim::call_restarting()
        {
            return;
        }
        t.wait_at(me, (NR_PREEMPTED, [0; 6]));
        t.pass();
        st.counters.preemptions += 1;
        // Killed here (out of step, none may take a record again), and
        // replaced at the next call like lost ones.
        let (kills, lost) = st.replace_where(|_| true);
        (kills, lost, st.counters.preemptions == 1)
    };
    kills.send();
    group.wake_only(shim::Wake::Unkeyed);
    if first {
        // The first time only: /proc/procft counts them.
        pr_info!(
            "pid {}: thread {} ran {} ms without a system call while another waited to run: \
             preempted; its {} duplicate(s) are re-created at the next call (preemptions are \
             counted in /proc/procft)\n",
            group.pid(),
            me,
            crate::module_parameters::thread_wait_ms.value(),
            lost
        );
    }
    wait_at_point(&group);
}

/// The turn [`call_to_join`] passes to the task_work it queues, which no
/// real turn reaches.
pub(crate) const JOIN: u64 = u64::MAX;

/// Makes every thread of `leader`'s process, multi-threaded when its
/// protection (`group`) began, come under the run token: each is stopped
/// on its way back to user mode ([`join`]), or at its next call's return
/// ([`take_turn`]), whichever comes first. No duplicate is made before.
/// A thread in a call that the kick interrupts makes it again (the
/// kernel does, or procft for one that returned `EINTR`).
pub(crate) fn call_to_join(group: &Group, leader: &Task) {
    let mut tids = [0; MAX_THREADS];
    let n = {
        let st = group.lock();
        let Some(t) = st.threads.as_ref() else {
            return;
        };
        let joining = t.still_joining();
        tids[..joining.len()].copy_from_slice(joining);
        joining.len()
    };
    for &tid in &tids[..n] {
        let gone = match shim::thread_of(leader, tid) {
            Some(task) => shim::preempt(&task, JOIN) == Err(ESRCH),
            None => true,
        };
        // (Not queued for want of memory: it joins at its next call's
        // return, and no duplicate is made before.)
        if gone {
            // Exited, or exiting: it will not run user code again, and no
            // record counts its exit.
            if let Some(t) = group.lock().threads.as_mut() {
                t.exited_unjoined(tid);
            }
        }
    }
}

/// The task_work [`call_to_join`] queued, in a thread of a process that
/// was multi-threaded when its protection began: unless it came under the
/// run token already (at a call's return), it does now. It takes the
/// token if it is free and runs on; otherwise it waits for it there, a
/// point that is not a call, as a preempted thread does.
fn join(group: &Arc<Group>) {
    let me = me();
    if shim::call_restarting() {
        // Its call, begun before protection, is made again: it joins at
        // that call's return.
        return;
    }
    {
        let mut st = group.lock();
        let Some(t) = st.threads.as_mut() else {
            return;
        };
        if shim::is_exiting(current!()) {
            // Its exit began before protection: no record counts it.
            t.exited_unjoined(me);
            t.leave(me);
            drop(st);
            group.wake();
            return;
        }
        if !t.joined(me) || t.ask(me) {
            return;
        }
        t.wait_at(me, (NR_PREEMPTED, [0; 6]));
    }
    wait_at_point(group);
}

/// A thread of a multi-threaded primary stopped where it runs user code,
/// not at a call ([`preempted`], [`join`]), its slot noting
/// [`NR_PREEMPTED`]: waits for the run token, then appends the record that
/// lets its mirror in a duplicate made meanwhile go on from the same
/// point.
fn wait_at_point(group: &Arc<Group>) {
    if !matches!(take_turn(group, NR_PREEMPTED, 0), Turn::Go) {
        return;
    }
    // Its record, for a duplicate made meanwhile ([`claim`] armed it if
    // there is one).
    // A signal pending here is delivered at this point: the record holds
    // it back for the duplicates ([`super::record`]).
    let signal = shim::signal_pending();
    let appended = {
        let mut st = group.lock_quiet();
        super::record_plain(group, &mut st, 0, signal, None)
    };
    if let Some(appended) = appended {
        group::published(group, appended);
        return;
    }
    // (The lock is dropped before recording, which takes it again.)
    let pending = super::Pending::take(&mut group.lock_quiet());
    if pending.call.is_some() {
        super::record(group, 0, pending);
    }
}

/// What call `call` (of the calling thread, which returned `ret`) wrote to
/// the process's memory, in a record of its own; `None` if it wrote
/// nothing. `Err` if it cannot be read (a page of it is lost).
fn keep_outputs(call: Option<(i64, [usize; 6])>, ret: isize) -> Result<Option<UniqueArc<Record>>> {
    let Some((nr, args)) = call else {
        return Ok(None);
    };
    let mut record = Record::new()?;
    record.start(nr, args);
    super::capture(&mut record, ret, None).map_err(|_| EFAULT)?;
    Ok(record.has_outputs().then_some(record))
}

/// A thread of a multi-threaded primary, exiting (its task_work, after
/// the kernel cleared and woke its `clear_child_tid` word): it gives the
/// run token up for good, so that the thread that runs next finds that
/// word cleared, as its mirror in each duplicate does ([`dup_exit`]).
pub(crate) fn gone(group: &Group) {
    if let Some(t) = group.lock().threads.as_mut() {
        let me = me();
        t.leave(me);
        // One still to join counts out here (see [`primary_exit`]).
        t.exited_unjoined(me);
    }
    group.wake();
}

/// Fills in the thread fields of `record`, the primary's record of its
/// call (with its result) just made by the calling thread, in a
/// multi-threaded group: the thread, and for a thread creation the new
/// thread's global id.
pub(crate) fn stamp(group: &Group, record: &mut Record) {
    if group.threaded() {
        record.tid = me();
        if matches!(record.nr, NR_CLONE | NR_CLONE3) && record.ret > 0 {
            record.child = shim::find_task(record.ret as Pid).map_or(0, |t| t.pid());
        }
    }
}

/// At the `sys_enter` of `exit` of a thread of a multi-threaded primary
/// (one of several): records it. The thread keeps the run token until
/// the kernel has cleared its `clear_child_tid` word, in its task_work at
/// its exit ([`gone`]). True if it must first wait for room in the ring
/// ([`PrimaryWork::WaitSpace`] set), and make the call again.
pub(crate) fn primary_exit(group: &Arc<Group>, args: &[usize; 6]) -> bool {
    let record = Record::new().ok();
    let mut st = group.lock();
    let me = me();
    st.trim_ring();
    if st.threads.is_some() && !st.ring.has_room(room(&st)) {
        st.work = PrimaryWork::WaitSpace(NR_EXIT);
        return true;
    }
    let Some(t) = st.threads.as_mut() else {
        return false;
    };
    // A thread still to join is counted out where it leaves the joining
    // list, at its exit's end ([`gone`]) or at its join task_work
    // ([`join`]): until then it keeps duplicates from being made, and it
    // may still have its `clear_child_tid` word to clear, which a
    // duplicate made meanwhile would not.
    if !t.still_joining().contains(&me) {
        t.alive = t.alive.saturating_sub(1);
    }
    if let Some(slot) = t.slot(me) {
        *slot = None;
    }
    let appended = if st.closed || st.dups.iter().flatten().next().is_none() {
        None
    } else if let Some(mut record) = record {
        record.start(NR_EXIT, *args);
        record.input_hash = Some(0);
        record.tid = me;
        Some(group::append(group, &mut st, record.into()))
    } else {
        drop(st);
        group::end_protection(group, "a thread's exit, for want of memory for its record,");
        gone(group);
        return false;
    };
    drop(st);
    if let Some(appended) = appended {
        group::published(group, appended);
    }
    if shim::queue_task_work().is_err() {
        // Without it, at once.
        gone(group);
    }
    false
}

/// What a duplicate's thread creation found ([`dup_clone`]).
pub(crate) enum Cloned {
    /// The primary's record, taken: the duplicate makes the call.
    Made,
    /// No record of it yet (or not this thread's turn): it waits.
    Wait,
    /// The primary made another call: it diverged (and is killed).
    Diverged,
    /// The primary's creation failed, or was interrupted to be made
    /// again (its result, and a signal it handled on its way back): the
    /// duplicate does not make it, and returns that.
    Failed(isize, Option<(i32, shim::SigInfo)>),
}

/// At a duplicate's `sys_enter` of the thread creation `c` (`nr` with
/// `args`): if the primary's record of it is published (and is this
/// thread's next), takes it, and the duplicate makes the call itself.
/// `spare` is allocated beforehand, for its first creation.
pub(crate) fn dup_clone(
    group: &Group,
    task: &Task,
    nr: i64,
    args: &[usize; 6],
    c: ThreadClone,
    spare: &mut Option<KBox<DupThreads>>,
) -> Cloned {
    let tid = task.pid();
    let tgid = task.tgid();
    let mut st = group.lock_quiet();
    if st.closed {
        return Cloned::Wait;
    }
    let State { dups, ring, .. } = &mut *st;
    let Some(d) = dups.iter_mut().flatten().find(|d| d.tgid == tgid) else {
        return Cloned::Wait;
    };
    if d.leaving {
        return Cloned::Wait;
    }
    let Some(record) = ring.peek(d.next_seq) else {
        return Cloned::Wait;
    };
    let first = d.threads.is_none();
    if !first && !may_take(d, record, tid) {
        return Cloned::Wait;
    }
    if record.nr != nr || record.args != *args {
        let record = record.clone();
        drop(st);
        super::same_call(group, task, &record, nr, args);
        return Cloned::Diverged;
    }
    if first {
        let Some(mut t) = spare.take() else {
            return Cloned::Wait;
        };
        t.first = record.tid;
        d.threads = Some(t);
    }
    let (ret, signal) = (record.ret, record.signal);
    if let Some(t) = d.threads.as_mut() {
        t.running = Some(tid);
        t.last = tid;
        t.standing = None;
        t.child = (ret > 0).then_some(PendingChild {
            ptid: record.child,
            pvnr: ret as Pid,
            clone: c,
            signal,
        });
    }
    d.next_seq += 1;
    let wake = super::consumed(&mut st);
    drop(st);
    if wake {
        group.wake();
    }
    if ret > 0 {
        Cloned::Made
    } else {
        Cloned::Failed(ret, signal)
    }
}

/// At the `sys_exit` of a duplicate's own thread creation (`ret`: its new
/// thread, as the duplicate sees it): notes the new thread as the mirror of
/// the primary's, and gives the caller the primary's result, written where
/// the primary's call wrote it too.
pub(crate) fn dup_clone_exit(group: &Group, task: &Task, ret: isize) {
    let tgid = task.tgid();
    let child = (ret > 0)
        .then(|| shim::find_task(ret as Pid))
        .flatten()
        .map(|t| t.pid());
    let pending = {
        let mut st = group.lock_quiet();
        let Some(d) = st.dup_mut(tgid) else {
            return;
        };
        let Some(t) = d.threads.as_mut() else {
            return;
        };
        let Some(pending) = t.child.take() else {
            return;
        };
        // A free place, or that of a thread that exits (which finds
        // itself gone: see [`exiting`]).
        let free = t
            .threads
            .iter()
            .position(Option::is_none)
            .or_else(|| t.threads.iter().position(|x| x.is_some_and(|x| x.exiting)));
        match (child, free) {
            (Some(child), Some(i)) => {
                t.alive += 1;
                let c = pending.clone;
                t.threads[i] = Some(DThread {
                    tid: child,
                    ptid: pending.ptid,
                    pvnr: pending.pvnr,
                    settid: if c.flags & CLONE_CHILD_SETTID != 0 {
                        c.child_tid
                    } else {
                        0
                    },
                    work: DupWork::Start,
                    exiting: false,
                });
                Ok(pending)
            }
            // Its own creation failed where the primary's did not, or a
            // thread too many: the primary's new thread has no mirror.
            _ => Err(ret),
        }
    };
    let pending = match pending {
        Ok(p) => p,
        // Being killed (by the program's own kill(), say) cut the creation
        // short: it dies, without having diverged.
        Err(_) if !shim::keep_going() => return,
        Err(ret) => {
            super::diverge(
                group,
                task,
                format_args!(
                    "its own thread creation gave {} where the primary's made a thread",
                    ret
                ),
            );
            return;
        }
    };
    group.wake();
    let (pvnr, c) = (pending.pvnr, pending.clone);
    super::replay_signal(&pending.signal);
    shim::set_return(pvnr as isize);
    if c.flags & CLONE_PARENT_SETTID != 0 {
        let _ = UserSlice::new(UserPtr::from_addr(c.parent_tid), 4)
            .writer()
            .write(&pvnr);
    }
}

/// At the first return of a duplicate's new thread (from `ret_from_fork`):
/// it takes the record of its counterpart's first return before it runs
/// user code, in a task_work.
pub(crate) fn dup_thread_born(task: &Task) {
    if shim::queue_task_work().is_err() {
        shim::kill(task);
    }
}

/// What a duplicate's thread waits for.
struct ThreadWaiter<'a> {
    group: &'a Group,
    task: &'a Task,
}

/// Whether the duplicate's thread in `arg` (a [`ThreadWaiter`]) can go on:
/// its next record is published and its own, and no other thread of the
/// duplicate runs, or it is to die.
///
/// # Safety
///
/// `arg` must point to a live [`ThreadWaiter`].
unsafe extern "C" fn thread_can_go(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<ThreadWaiter<'_>>() };
    let (tgid, tid) = (w.task.tgid(), w.task.pid());
    let st = w.group.lock_quiet();
    if st.closed {
        return true;
    }
    let Some(d) = st.dup(tgid) else {
        return true;
    };
    if d.leaving || d.parked {
        return true;
    }
    st.ring
        .get(d.next_seq)
        .is_some_and(|r| may_take(d, &r, tid))
}

/// A duplicate's thread waits (killable) until its next record is its
/// own and none of its duplicate's other threads runs ([`thread_can_go`]).
/// The wait has no key and no bound: it is counted as such
/// ([`group::while_unbounded`]), so that the primary wakes it at every
/// record, which a duplicate that keeps up is otherwise not
/// ([`group::LAZY_RECORDS`]).
fn wait_turn(group: &Group, task: &Task) -> Result {
    let w = ThreadWaiter { group, task };
    group::while_unbounded(group, task.tgid(), 0, || {
        group.wq.wait_killable(
            thread_can_go,
            None,
            core::ptr::from_ref(&w).cast(),
            None,
            false,
        )
    })
    .map(|_| ())
}

/// A duplicate's thread's task_work at its first return: waits for the
/// record of its counterpart's first return and takes it.
pub(crate) fn dup_start(group: &Group, task: &Task) {
    let nr = shim::syscall_nr();
    let args = shim::syscall_args();
    if wait_turn(group, task).is_err() {
        return;
    }
    if !super::take(group, task, nr, &args, None, super::Take::Waited) {
        group.await_kill();
        return;
    }
    let settid = {
        let mut st = group.lock_quiet();
        st.dup_mut(task.tgid())
            .and_then(|d| d.threads.as_mut())
            .and_then(|t| t.find(task.pid()))
            .map_or((0, 0), |x| (core::mem::take(&mut x.settid), x.pvnr))
    };
    if settid.0 != 0 {
        let _ = UserSlice::new(UserPtr::from_addr(settid.0), 4)
            .writer()
            .write(&settid.1);
    }
}

/// A thread a new duplicate made for one of the primary's
/// ([`crate::replica::threads`]), at its first return: takes the state of
/// image `i`, then waits for the record of that thread's call and takes
/// it, as any duplicate thread standing at that call would.
pub(crate) fn adopt(group: &Group, task: &Task, i: usize) {
    let image = group
        .lock_quiet()
        .dup_mut(task.tgid())
        .and_then(|d| d.images.as_mut())
        .and_then(|images| images.list.get_mut(i))
        .and_then(Option::take);
    let Some(image) = image else {
        shim::kill(task);
        return;
    };
    shim::set_regs(&image.regs);
    if image.fpu.set().is_err() {
        shim::kill(task);
        return;
    }
    image.sig.set_thread();
    let (nr, args) = image.call;
    drop(image);
    super::consume(group, task, nr, &args);
}

/// A duplicate's thread's task_work at its `exit` (one of several
/// threads): waits for the record of its counterpart's exit and takes it,
/// clears its `clear_child_tid` word itself there (the kernel would do it
/// later, at a moment of its own), then makes the call.
pub(crate) fn dup_exit(group: &Group, task: &Task, args: &[usize; 6]) {
    if let Some(d) = group.lock_quiet().dup_mut(task.tgid()) {
        stands(d, task.pid(), NR_EXIT);
    }
    if wait_turn(group, task).is_err() {
        return;
    }
    let taken = {
        let mut st = group.lock_quiet();
        let tid = task.pid();
        let closed = st.closed;
        let State { dups, ring, .. } = &mut *st;
        match dups.iter_mut().flatten().find(|d| d.tgid == task.tgid()) {
            Some(d) if !closed && !d.leaving => match ring.peek(d.next_seq) {
                Some(r) if r.nr == NR_EXIT && r.args == *args && may_take(d, r, tid) => {
                    d.next_seq += 1;
                    took(d, tid);
                    if let Some(t) = d.threads.as_mut() {
                        t.alive = t.alive.saturating_sub(1);
                    }
                    Ok(())
                }
                // Its turn, and another call: diverged.
                Some(r) if may_take(d, r, tid) => Err(Some(r.clone())),
                _ => Err(None),
            },
            _ => Err(None),
        }
    };
    if let Err(other) = taken {
        if let Some(record) = other {
            super::same_call(group, task, &record, NR_EXIT, args);
        }
        group.await_kill();
        return;
    }
    // A duplicate made of a multi-threaded process has its first thread
    // from fork(), without the word of the primary's thread it mirrors
    // ([`crate::replica::threads`]).
    let addr = match shim::take_clear_child_tid() {
        0 if task.pid() == task.tgid() => group
            .lock_quiet()
            .dup_mut(task.tgid())
            .and_then(|d| d.threads.as_mut())
            .map_or(0, |t| core::mem::take(&mut t.first_clear_tid)),
        addr => addr,
    };
    if addr != 0 {
        let _ = UserSlice::new(UserPtr::from_addr(addr), 4)
            .writer()
            .write(&0u32);
    }
    {
        let mut st = group.lock_quiet();
        if let Some(d) = st.dup_mut(task.tgid()) {
            let tid = task.pid();
            dup_gives_up(d, tid);
            let first = tid == d.tgid;
            if let Some(t) = d.threads.as_mut() {
                if first {
                    t.first_exiting = true;
                } else if let Some(x) = t.find(tid) {
                    x.exiting = true;
                }
            }
        }
        let _ = super::consumed(&mut st);
    }
    // Another thread's record may be next.
    group.wake();
    shim::restart_call(NR_EXIT);
}

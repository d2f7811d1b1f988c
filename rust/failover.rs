// SPDX-License-Identifier: GPL-2.0

//! Failover: a duplicate takes over from a failed primary.
//!
//! The primary's task is what the world knows: its pid, its parent and
//! children, its place in wait(), its descriptor table (shared with the
//! duplicates). So the task stays and its *state* is replaced: when the
//! primary fails, its task takes the memory and registers of a duplicate
//! that stands at the primary's next system call ("promotion by state
//! transfer"):
//!
//! 1. The failure is noted ([`Cause`]) and the primary is stopped in its
//!    own context, in a task_work, before it runs another user
//!    instruction. Whatever it computed since its last recorded call is
//!    abandoned: nothing of it reached the world, because only recorded
//!    calls do.
//! 2. Any record it still held back is published, so the duplicates can
//!    run up to its next call, which it has not made.
//! 3. It waits until a duplicate stands at that call (it has consumed
//!    every record and waits for the next one, or is parked at an exit or
//!    exec).
//! 4. It copies the duplicate's general registers, FPU/extended state
//!    (once the duplicate was switched out, so that they are in memory) and
//!    signal state (handlers, blocked mask, alternate stack: the duplicate
//!    may have changed them since the last record with calls the primary
//!    had not made yet) ([`shim::copy_regs`], [`shim::FpuState`],
//!    [`shim::SigState`]), takes its memory, then makes them its own. The
//!    memory, two ways:
//!    - *Takeover* (a kernel with `replace_mm()`, kernel/patches/0004, the
//!      default there): the primary's task continues on the duplicate's
//!      address space, switched as `execve()` switches, and its own,
//!      poisoned frames included, is released ([`shim::take_memory`]). No
//!      page is copied: the cost is a pass over the mappings (the check
//!      that the duplicate has the primary's), whatever the process's
//!      size. The duplicate is killed *before* its memory is taken: one
//!      instruction of it in user space afterwards would write into the
//!      primary's memory (a duplicate that procft lets go of waits in the
//!      kernel for its kill). It is replaced at the primary's next call,
//!      like any lost duplicate; until its replacement has separated its
//!      memory, the
//!      group has one duplicate fewer in step. That replacement can take
//!      over already ([`group::Dup::can_succeed`]), unless the failed
//!      frame is one it still shares with the primary.
//!    - *Copy* (kernels without it, or `copy_promotion=1`): the primary
//!      drops its private pages and copies each of the duplicate's into
//!      fresh frames ([`shim::adopt_memory`]), in time that grows with the
//!      resident size; the duplicate goes on as a duplicate.
//! 5. It re-issues the duplicate's pending call, as the primary: the
//!    record of that call lets every duplicate go on. No output is lost
//!    (the duplicate computed everything up to the call) and none is
//!    repeated (the primary had not made it).
//!
//! If no duplicate can take over (none left, or the layouts differ), the
//! primary dies of SIGBUS as an unprotected process would.
//!
//! A multi-threaded primary ([`crate::sync::threads`]) is taken over by its
//! thread holding the run token, the only one that runs user code: the
//! others are in the kernel, in a recorded call or waiting for the token.
//! First they are all stopped at their system-call boundaries
//! ([`stop_others`]), keeping what their calls wrote; the failing thread
//! takes the state of its mirror (the duplicate's thread that ran last),
//! the others keep theirs (each stands where its mirror does), and the
//! memory is copied (the takeover by `replace_mm()` switches one thread).

use kernel::{
    ffi::c_void,
    prelude::*,
    sync::Arc,
    task::{Pid, Task},
    time::{Instant, Monotonic},
};

use crate::{
    events::{self, What},
    group::threads,
    group::{self, Group, Kills, PrimaryWork},
    shim, syscalls,
    types::Cause,
};

/// From the `signal_generate` probe (the primary's own context, under its
/// siglock, interrupts off: no sleeping, no allocation): the kernel is
/// sending the primary SIGBUS for poisoned memory it consumed. Returns
/// true if a duplicate can take over; the caller then queues the task_work
/// that does it, which runs before the signal is dequeued.
pub(crate) fn primary_poisoned(addr: usize) -> bool {
    let task = current!();
    let Some(group) = group::lookup(task.tgid()) else {
        return false;
    };
    match claim_poison(&group, addr) {
        Claim::Taken => true,
        Claim::Busy => {
            pr_warn!(
                "pid {}: primary consumed poisoned memory at {:#x} while its protection ends or \
                 a takeover is due; it dies of SIGBUS\n",
                group.pid(),
                addr
            );
            false
        }
        Claim::NoSuccessor => {
            pr_warn!(
                "pid {}: primary consumed poisoned memory at {:#x} and no duplicate can take \
                 over; it dies of SIGBUS\n",
                group.pid(),
                addr
            );
            false
        }
    }
}

/// What [`claim_poison`] decided.
enum Claim {
    /// A promotion is due.
    Taken,
    /// The group is closing, or a promotion is already due.
    Busy,
    /// No duplicate could take over.
    NoSuccessor,
}

/// The primary lost its page at `addr` and consumed it: records the event
/// and, if a duplicate can take over, makes a promotion due. Does not sleep.
fn claim_poison(group: &Group, addr: usize) -> Claim {
    events::emit(group.pid(), What::Poisoned { addr: addr as u64 });
    let mut st = group.lock();
    st.counters.mce_events += 1;
    if st.closed || st.promote.is_some() {
        Claim::Busy
    } else if !st.can_take_over() {
        Claim::NoSuccessor
    } else {
        st.promote = Some(Cause::Poison(addr));
        Claim::Taken
    }
}

/// At the primary's `sys_exit`: the kernel failed to read the buffer of a
/// call that sends bytes because the primary's page at `addr` is lost to
/// memory failure (no SIGBUS comes: the kernel's own access was fixed up).
/// Treated as the primary consuming poison; the takeover runs in a
/// task_work before it returns to user space.
pub(crate) fn kernel_read_poison(group: &Arc<Group>, addr: usize) {
    if !matches!(claim_poison(group, addr), Claim::Taken) {
        pr_warn!(
            "pid {}: the kernel could not read the primary's poisoned page at {:#x} and no \
             duplicate can take over\n",
            group.pid(),
            addr
        );
        return;
    }
    pr_info!(
        "pid {}: the kernel could not read the primary's poisoned page at {:#x}; a duplicate \
         takes over\n",
        group.pid(),
        addr
    );
    if shim::queue_task_work().is_err() {
        group.lock().promote = None;
    }
}

/// Test-only: the primary of `group` fails. It is replaced at its next
/// system call (or at once if it is waiting in procft). `EAGAIN` if no
/// duplicate can take over, now or once it has run
/// ([`group::Dup::may_succeed`]).
pub(crate) fn inject(group: &Group) -> Result {
    {
        let mut st = group.lock();
        if st.closed {
            return Err(ESRCH);
        }
        if !st.can_take_over() {
            return Err(EAGAIN);
        }
        if st.promote.is_none() {
            st.promote = Some(Cause::Injected);
        }
    }
    pr_info!(
        "pid {}: primary failure injected; a duplicate takes over at its next system call\n",
        group.pid()
    );
    shim::wake_all();
    Ok(())
}

/// Whether the primary of the group in `arg` (a [`Group`]) can go on: a
/// duplicate stands at its next call, or none can come.
///
/// # Safety
///
/// `arg` must point to a live [`Group`].
unsafe extern "C" fn successor_ready(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let group = unsafe { &*arg.cast::<Group>() };
    let st = group.lock();
    st.closed || st.dup_at_head().is_some() || !st.dup_may_come()
}

/// In the failed primary's task_work: take over a duplicate's state, or
/// die as an unprotected process would.
pub(crate) fn promote(group: &Arc<Group>, task: &Task) {
    take_over(group, task);
    group.lock().promoting = false;
}

fn take_over(group: &Arc<Group>, task: &Task) {
    let start = Instant::<Monotonic>::now();
    // No duplicate takes a separation step until this is over: the
    // successor must be asleep at its call (its FPU state saved) when it
    // is taken.
    let _held = group.hold_steps();
    let claimed = group.lock().promote;
    if let Some(Cause::Poison(addr)) = claimed {
        if !shim::page_lost(task, addr) {
            // Nothing is lost there: the SIGBUS was sent, not caused by a
            // memory error (a program may send itself any siginfo). It is
            // delivered as sent, and no duplicate takes over.
            group.lock().promote = None;
            pr_info!(
                "pid {}: SIGBUS for poison at {:#x}, but the page is not lost; delivered as sent\n",
                group.pid(),
                addr
            );
            return;
        }
    }
    // A multi-threaded primary's other threads stop first, at their
    // system-call boundaries, keeping what their calls wrote: its memory
    // is about to be replaced under them.
    let threaded = group.threaded();
    let _resume = if threaded {
        let resume = Resume(group);
        match stop_others(group, task) {
            Stop::Stopped => Some(resume),
            // Left to the thread that runs (at its next recorded call).
            Stop::NotHolder if !matches!(claimed, Some(Cause::Poison(_))) => return,
            // A thread that consumed poison runs user code, so it holds the
            // token: this is not expected, and it dies of the SIGBUS.
            Stop::NotHolder => {
                let cause = group.lock().promote.take();
                if let Some(cause) = cause {
                    give_up(
                        group,
                        cause,
                        "the thread that consumed it does not hold the run token",
                    );
                }
                return;
            }
            Stop::Failed(why) => {
                let cause = group.lock().promote.take();
                if let Some(cause) = cause {
                    give_up(group, cause, why);
                }
                return;
            }
        }
    } else {
        None
    };
    let (cause, held, held_sig) = {
        let mut st = group.lock();
        let Some(cause) = st.promote.take() else {
            return;
        };
        st.promotions += 1;
        st.promoting = true;
        // The duplicate's state replaces the primary's, restart blocks
        // included.
        st.sleep_rem = None;
        // Calls of the failed primary that procft was holding back or
        // was about to re-issue are superseded by the duplicate's.
        // Whatever it had queued for its task_work goes too (a call to
        // make again would be the failed primary's).
        st.call = None;
        st.repair = None;
        let held = match core::mem::take(&mut st.work) {
            PrimaryWork::Held(record) => Some(record),
            _ => None,
        };
        (cause, held, st.held_sig.take())
    };
    // Records of calls the primary made: the duplicates must consume them
    // to reach the primary's next call.
    if let Some(record) = held_sig {
        group::publish(group, record.into());
    }
    if let Some(record) = held {
        group::publish(group, record);
    }
    // The duplicate's signal state is copied with its registers, under the
    // group lock (it may die right after); the room is allocated first.
    let Ok(mut sigstate) = shim::SigState::new() else {
        give_up(group, cause, "no memory to take a duplicate's state");
        return;
    };
    // A multi-threaded primary's memory is copied: its other threads, asleep
    // in the kernel, keep their address space (futex keys, for one).
    let takeover = takes_over() && !threaded;
    if let Cause::Poison(addr) = cause {
        // Not waited for: one that shares the poisoned frame.
        rule_out_lost(group, addr);
    }
    // Each try that fails without changing anything rules one duplicate
    // out; at most every slot once.
    let mut tries = 0;
    // `early`: the successor was still separating its memory.
    let (from_nr, nr, seq, regs, fpu, memory, early) = loop {
        tries += 1;
        // Duplicates not at the primary's next call lag (see
        // `State::dup_at_head`).
        let waited = group::wait_for_dups(
            group,
            "to take over",
            successor_ready,
            core::ptr::from_ref(&**group).cast(),
            |d, head, _| !(d.can_succeed() && d.stands_at(head)),
        );
        if let Err(e) = waited {
            if e == ETIMEDOUT {
                give_up(group, cause, "no duplicate reached its next call");
            }
            // Otherwise dying anyway (a fatal signal).
            return;
        }
        let (from, twin, nr, seq, regs, early) = {
            let st = group.lock();
            let head = st.ring.head();
            match st.dup_at_head() {
                Some(d) if !st.closed && tries <= group::MAX_DUPS + 1 => {
                    // The state taken is that of the duplicate's thread
                    // that mirrors the caller: in a multi-threaded
                    // duplicate, the one that ran last (the caller made
                    // the last record, and ran on from there).
                    let (twin, nr) = match threads::standing(d, head) {
                        Some((tid, nr)) if threads::mirror(d, task.pid()) == Some(tid) => {
                            (shim::thread_of(&d.task, tid), nr)
                        }
                        Some(_) => (None, 0),
                        None => (Some(d.task.clone()), d.at),
                    };
                    let Some(twin) = twin else {
                        // Its thread that ran last is not the failed one's
                        // mirror: it is out of step.
                        let from = d.task.clone();
                        drop(st);
                        pr_warn!(
                            "pid {}: duplicate {} cannot take over (its last thread to run does \
                             not mirror thread {}); replacing it\n",
                            group.pid(),
                            from.tgid_nr_ns(None),
                            task.pid()
                        );
                        rule_out(group, &from, true).send();
                        continue;
                    };
                    // Under the lock the duplicate cannot go on or exit.
                    let regs = shim::copy_regs(&twin);
                    sigstate.copy(&twin);
                    (d.task.clone(), twin, nr, head, regs, !d.ready)
                }
                _ => {
                    drop(st);
                    give_up(group, cause, "no duplicate left to take over");
                    return;
                }
            }
        };
        // Its pid for the log, read while it lives (it is killed before its
        // memory is taken): the pid of a task that has exited reads as 0.
        let from_nr = from.tgid_nr_ns(None);
        if let Cause::Poison(addr) = cause {
            // A duplicate still separating its memory may share the
            // poisoned frame (the kernel then kills it soon, and marks it
            // hit); it cannot take over then.
            if lost_too(group, &twin, from_nr, addr) {
                rule_out(group, &from, false).send();
                continue;
            }
        }
        // Its FPU registers are read from memory once it has been switched
        // out: a duplicate's vCPU can be held up longer than it polls.
        let fpu = match shim::FpuState::copy(&twin) {
            Ok(fpu) => fpu,
            Err(e) => {
                let late = if e == EBUSY {
                    ": not switched out in 1 s"
                } else {
                    ""
                };
                pr_warn!(
                    "pid {}: could not copy duplicate {}'s FPU state ({:?}{}); trying again\n",
                    group.pid(),
                    from_nr,
                    e,
                    late
                );
                continue;
            }
        };
        let took = if takeover {
            take_memory(group, &from)
        } else {
            // (A multi-threaded duplicate's first thread may have exited:
            // its memory is read through the thread that takes over.)
            shim::adopt_memory(&twin).map(Memory::Copied)
        };
        match took {
            Ok(memory) => break (from_nr, nr, seq, regs, fpu, memory, early),
            Err(e) if e == ESRCH || e == ESTALE || e == EHWPOISON => {
                // It is exiting, it is not the primary's twin (then it has
                // diverged; nothing changed), or a page of it is lost as
                // well (found before anything changed, or while copying:
                // the next duplicate's copy then replaces every page
                // again). Try another.
                let why = if e == ESTALE {
                    "its mappings differ from the primary's"
                } else if e == EHWPOISON {
                    "its copy of a page is poisoned too"
                } else {
                    "it is exiting"
                };
                pr_warn!(
                    "pid {}: duplicate {} cannot take over ({}); replacing it\n",
                    group.pid(),
                    from_nr,
                    why
                );
                rule_out(group, &from, e == ESTALE).send();
            }
            Err(e) => {
                lost(group, task, from_nr, "memory", e);
                return;
            }
        }
    };
    if let Err(e) = fpu.set() {
        // Its memory is the duplicate's already, its FPU registers the
        // failed primary's: it must not go on.
        lost(group, task, from_nr, "FPU state", e);
        return;
    }
    drop(fpu);
    shim::set_regs(&regs);
    sigstate.set();
    if nr != syscalls::NR_RDTSC {
        shim::restart_call(nr);
    }
    // (At a counter read it stood at the instruction, which the primary
    // now executes, as the primary: it traps and is recorded.)
    if matches!(cause, Cause::Poison(_)) {
        shim::flush_sigbus();
    }
    {
        let mut st = group.lock();
        st.counters.failovers += 1;
        st.successor = None;
        // The call it re-issues is the duplicates' own: no second vote.
        st.voted = Some(seq);
    }
    let us = start.elapsed().as_micros_ceil();
    events::emit(
        group.pid(),
        What::Promotion {
            from: from_nr,
            cause,
            seq,
            pages: memory.pages() as u64,
            us: us as u64,
        },
    );
    let what = if cause == Cause::Injected {
        "injected failure of the"
    } else {
        "outvoted"
    };
    match cause {
        Cause::Poison(addr) => pr_info!(
            "pid {}: primary consumed poisoned memory at {:#x}; took over duplicate {}'s state \
             at call #{} ({}): {} in {} us\n",
            group.pid(),
            addr,
            from_nr,
            seq,
            syscalls::name(nr),
            memory,
            us
        ),
        Cause::Injected | Cause::Outvoted => pr_info!(
            "pid {}: {} primary; took over duplicate {}'s state at call #{} ({}): {} in {} us\n",
            group.pid(),
            what,
            from_nr,
            seq,
            syscalls::name(nr),
            memory,
            us
        ),
    }
    if early {
        pr_info!(
            "pid {}: duplicate {} took over while still separating its memory\n",
            group.pid(),
            from_nr
        );
    }
}

/// Lets a multi-threaded primary's other threads go on once its takeover
/// is over, whatever its outcome ([`resume_others`]).
struct Resume<'a>(&'a Group);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        resume_others(self.0);
    }
}

/// The calling primary takes `from`'s address space whole
/// ([`shim::take_memory`]). `from` stands at the primary's next call, its
/// registers, FPU and signal state copied: from here on it must never run
/// in user space again, since its memory becomes the primary's. So it is
/// retired (marked leaving: a duplicate woken then waits for its kill,
/// see [`Group::await_kill`]) and killed *before* its memory is taken;
/// whatever wakes it, it dies on its way out of the kernel, and its exit
/// writes nothing to that memory (a duplicate has no clear_child_tid or
/// robust list). The reference taken first keeps the address space while
/// it exits. It is replaced at the primary's next call, like a lost one.
fn take_memory(group: &Group, from: &Task) -> Result<Memory> {
    let mm = shim::task_mm(from)?;
    let kills = {
        let mut st = group.lock();
        // A memory error may have hit it since it was chosen.
        match st.dup_mut(from.tgid()) {
            Some(d) if d.can_succeed() => {}
            Some(d) if d.hit.is_some() => return Err(EHWPOISON),
            _ => return Err(ESRCH),
        }
        st.retire(from.tgid())
    };
    kills.send();
    shim::take_memory(mm)?;
    Ok(Memory::TakenOver)
}

/// Taking duplicate `from`'s `what` failed once the failed primary's own state was
/// given up: the process cannot go on, and is killed.
fn lost(group: &Group, task: &Task, from: Pid, what: &str, e: Error) {
    pr_err!(
        "pid {}: taking duplicate {}'s {} failed ({:?}); the process is lost\n",
        group.pid(),
        from,
        what,
        e
    );
    shim::kill(task);
}

/// How the primary came by a duplicate's memory.
#[derive(Clone, Copy)]
enum Memory {
    /// Its address space whole ([`shim::take_memory`]).
    TakenOver,
    /// That many pages copied ([`shim::adopt_memory`]).
    Copied(usize),
}

impl Memory {
    /// Pages copied, for the event log (none for a takeover).
    fn pages(self) -> usize {
        match self {
            Memory::TakenOver => 0,
            Memory::Copied(pages) => pages,
        }
    }
}

impl kernel::fmt::Display for Memory {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            Memory::TakenOver => f.write_str("its address space taken over"),
            Memory::Copied(pages) => write!(f, "{pages} pages copied"),
        }
    }
}

/// Whether a promotion takes the duplicate's address space whole
/// (`replace_mm()`) rather than copying its pages: when the kernel has it,
/// unless the `copy_promotion` parameter asks for the copy.
pub(crate) fn takes_over() -> bool {
    shim::have_replace_mm() && !crate::module_parameters::copy_promotion.value()
}

/// No duplicate could take over: the process ends as it would have
/// without procft.
fn give_up(group: &Group, cause: Cause, why: &str) {
    pr_warn!(
        "pid {}: primary failed and {}; it dies of SIGBUS\n",
        group.pid(),
        why
    );
    if !matches!(cause, Cause::Poison(_)) {
        shim::kill_self_sigbus();
    }
    // For a memory error the kernel's SIGBUS is still pending.
}

/// Before a takeover for poison the primary consumed at `addr` waits for
/// its duplicates: rules out each whose page there is lost too. That is
/// one that still shares the poisoned frame with the primary (it is
/// still separating its memory, or has not run yet since its creation),
/// which the kernel has not killed yet (a duplicate sets its early-kill
/// policy before it runs). Waiting for it would end only once its own
/// replay consumed the same poison. May sleep.
fn rule_out_lost(group: &Group, addr: usize) {
    for dup in group.replicas().into_iter().skip(1).flatten() {
        if lost_too(group, &dup, dup.tgid_nr_ns(None), addr) {
            rule_out(group, &dup, false).send();
        }
    }
}

/// Whether duplicate `dup` (`nr`, its pid, for the log) lost its page at
/// `addr` too, which the primary lost; if so, says it is replaced. May
/// sleep.
fn lost_too(group: &Group, dup: &Task, nr: Pid, addr: usize) -> bool {
    let lost = shim::page_lost(dup, addr);
    if lost {
        pr_warn!(
            "pid {}: duplicate {} cannot take over (its page at {:#x} is lost too); replacing \
             it\n",
            group.pid(),
            nr,
            addr
        );
    }
    lost
}

/// `from` cannot take over: it is killed and replaced (counted as a
/// divergence if its state disagreed with the primary's).
fn rule_out(group: &Group, from: &Task, diverged: bool) -> Kills {
    let mut st = group.lock();
    st.counters.divergences += u64::from(diverged);
    let tgid = from.tgid();
    st.replace_where(|d| d.tgid == tgid).0
}

/// What [`stop_others`] found.
enum Stop {
    /// Every other thread of the primary stands at its system-call
    /// boundary and keeps what its call wrote.
    Stopped,
    /// The caller does not hold the run token: the takeover is left to
    /// the thread that does.
    NotHolder,
    /// They could not all be stopped: why.
    Failed(&'static str),
}

/// Whether the takeover in `arg` (a [`Group`]) may go on: every thread of
/// the primary but the caller stopped, or one cannot, or it is over.
///
/// # Safety
///
/// `arg` must point to a live [`Group`].
unsafe extern "C" fn all_parked(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let group = unsafe { &*arg.cast::<Group>() };
    let st = group.lock();
    st.closed
        || st
            .threads
            .as_ref()
            .is_none_or(|t| t.unparkable || t.parked + 1 >= t.alive)
}

/// For a takeover by the calling thread of a multi-threaded primary, which
/// must hold the run token (every other thread is then in the kernel: in
/// a recorded call, or waiting for the token): stops every other thread at
/// its system-call boundary, where it waits for the token having kept what
/// its call wrote ([`crate::sync::threads::take_turn`]). Threads asleep in a call are kicked out
/// of it (a call the kernel does not make again by itself, one that
/// returns `EINTR`, is made again there). The wait is bounded
/// by `thread_wait_ms`. [`resume_others`] lets them go on, whatever this
/// returned.
fn stop_others(group: &Group, task: &Task) -> Stop {
    {
        let mut st = group.lock();
        let Some(t) = st.threads.as_mut() else {
            return Stop::Stopped;
        };
        if t.token != Some(task.pid()) {
            return Stop::NotHolder;
        }
        t.stop = true;
        t.stops += 1;
        t.parked = 0;
        t.unparkable = false;
    }
    shim::kick_threads();
    group.wake();
    let ms = crate::module_parameters::thread_wait_ms.value().max(100);
    let waited = group
        .wq
        .wait_killable_timeout(all_parked, core::ptr::from_ref(group).cast(), ms);
    let st = group.lock();
    match (waited, st.threads.as_ref()) {
        _ if st.closed => Stop::Failed("its protection ended"),
        (_, Some(t)) if t.unparkable => Stop::Failed("a thread's call results could not be kept"),
        (Ok(()), _) => Stop::Stopped,
        (Err(e), _) if e == ETIMEDOUT => {
            Stop::Failed("a thread did not reach its system-call boundary")
        }
        (Err(_), _) => Stop::Failed("a fatal signal came"),
    }
}

/// After a takeover ([`stop_others`]): the other threads wait for the run
/// token again, as before it.
fn resume_others(group: &Group) {
    if let Some(t) = group.lock().threads.as_mut() {
        t.stop = false;
        t.parked = 0;
        // A thread that waited for the token through the takeover starts
        // counting its wait afresh.
        t.handovers += 1;
    }
    group.wake();
}

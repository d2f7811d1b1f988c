// SPDX-License-Identifier: GPL-2.0

//! Synchronisation at system-call boundaries: the handlers of the
//! `sys_enter` and `sys_exit` probes and of replicas' task_work.
//!
//! - Before a protected process makes a call procft cannot replicate (see
//!   [`crate::syscalls`]: shared memory, threads, ptrace, ..., and every
//!   call through a 32-bit or x32 entry), protection ends cleanly, with one
//!   log line, so procft never gives a wrong result. A duplicate reaching
//!   such a call first waits there to be killed: it never makes it.
//! - Calls of class `Local` and `Mmap` run in every replica.
//! - Calls of class `Primary` and `Fork` run in the primary only. At its
//!   `sys_exit` the primary records the call, its arguments, its result and
//!   every byte it wrote into user memory ([`syscalls::outputs`]) in the
//!   group's bounded [`Ring`](crate::ring::Ring). A duplicate reaching the
//!   same call skips it (`orig_ax = -1`) and, in a task_work on its way
//!   back to user space (never inside the tracepoint), waits for the
//!   record, checks the call and its arguments against it, writes the
//!   recorded bytes into its own memory and returns the recorded result.
//! - A duplicate whose call differs from the record has diverged: it is
//!   counted, logged and replaced.
//! - Exit and exec are the primary's: a duplicate reaching one waits to
//!   be killed (the primary's exit or exec ends its duplicates).

use kernel::{
    ffi::{c_ulong, c_void},
    prelude::*,
    sync::{Arc, ArcBorrow, UniqueArc},
    task::{Pid, Task},
    time::{ClockSource, Monotonic},
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    determinism,
    events::{self, What},
    failover,
    group::{self, Group, Kills, PrimaryWork, Spawn},
    profile::{Lap, Section},
    replica,
    ring::{Inline, Output, Record, CAPACITY},
    shim::{self, Regs},
    syscalls::{self, is_restart, Abi, Class, Input, Len, Out, Outputs},
    types::{DupWork, Vote},
    vote,
};

pub(crate) mod threads;
pub(crate) mod tsc;

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const MAP_TYPE: c_ulong = 0x0f;
const MAP_SHARED: c_ulong = 0x01;
const MAP_SHARED_VALIDATE: c_ulong = 0x03;
const PROT_WRITE: c_ulong = 0x2;
const NR_MPROTECT: i64 = 10;
const NR_PKEY_MPROTECT: i64 = 329;
const NR_CLONE: i64 = 56;
const NR_CLONE3: i64 = 435;
const NR_EXIT: i64 = 60;
const NR_PRCTL: i64 = 157;
const NR_MADVISE: i64 = 28;
const NR_MREMAP: i64 = 25;
const MADV_HWPOISON: usize = 100;
const MADV_MERGEABLE: usize = 12;
const MADV_DONTFORK: usize = 10;
const PR_SET_MEMORY_MERGE: c_ulong = 67;
const MADV_SOFT_OFFLINE: usize = 101;

/// Why call `nr` with arguments `args` cannot be replicated, if it cannot.
/// Runs in the calling task's context; may read its memory.
fn unreplicable(nr: i64, args: &[c_ulong; 6]) -> Option<&'static str> {
    // KSM would merge the duplicates' pages with the primary's (they are
    // the same): the separate frames would be gone.
    if nr == NR_MADVISE && args[2] == MADV_MERGEABLE as c_ulong {
        return Some("letting KSM merge identical pages (madvise MADV_MERGEABLE)");
    }
    if nr == NR_PRCTL && args[0] == PR_SET_MEMORY_MERGE && args[1] != 0 {
        return Some("letting KSM merge identical pages (prctl PR_SET_MEMORY_MERGE)");
    }
    // A duplicate made from then on (by fork()) would lack that memory.
    if nr == NR_MADVISE && args[2] == MADV_DONTFORK as c_ulong {
        return Some("memory that fork() does not copy (madvise MADV_DONTFORK)");
    }
    let call = syscalls::classify(nr);
    match call.class {
        Class::Unsupported => Some(call.name),
        Class::Fork => {
            // `fork` and `vfork` have no flags; unreadable ones make the
            // call fail with EFAULT anyway.
            let c = threads::clone_args(nr, args);
            let flags = c.map_or(0, |c| c.flags);
            if let Some(c) = c.filter(|_| flags & crate::group::threads::CLONE_THREAD != 0) {
                return threads::refused(&c);
            }
            // A vfork-style child borrows the memory until it execs; a
            // CLONE_VM child without CLONE_VFORK shares it for good.
            (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0)
                .then_some("creating a thread (clone with CLONE_VM)")
        }
        Class::Mmap => {
            let (prot, flags) = (args[2], args[3]);
            let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
            (shared && prot & PROT_WRITE != 0).then_some("a writable MAP_SHARED mapping")
        }
        Class::Local if nr == NR_MPROTECT || nr == NR_PKEY_MPROTECT => {
            let (start, len, prot) = (args[0], args[1], args[2]);
            (prot & PROT_WRITE != 0 && shim::range_is_shared(start, len))
                .then_some("making shared memory writable (mprotect)")
        }
        Class::Local | Class::Primary | Class::Exec | Class::Exit => None,
    }
}

/// Largest output one call may have (bytes); beyond it protection ends.
const MAX_OUTPUT: usize = 4 << 20;

/// A system call `nr` with `args` of a protected process or duplicate
/// (`dup`) of `group`, at its `sys_enter` ([`crate::hooks`]: the C side
/// hands over the caller's role, so there is no lookup).
pub(crate) fn sys_enter(
    group: ArcBorrow<'_, Group>,
    regs: Regs,
    nr: i64,
    args: &[usize; 6],
    dup: bool,
) {
    let abi = Abi::of(nr, shim::in_ia32_syscall());
    if dup {
        dup_enter(&group, current!(), regs, abi, nr, args);
    } else {
        primary_enter(group, regs, abi, nr, args);
    }
}

fn primary_enter(group: ArcBorrow<'_, Group>, regs: Regs, abi: Abi, nr: i64, args: &[usize; 6]) {
    let mut lap = Lap::start();
    // Only x86-64 numbers are classified; a call through another entry
    // ends protection below.
    let threaded = group.threaded();
    let class = match abi {
        Abi::X64 if threaded => threads::class(nr, determinism::class(nr)),
        Abi::X64 => determinism::class(nr),
        Abi::Ia32 | Abi::X32 => Class::Unsupported,
    };
    // The duplicates stop at such a call too (see `dup_enter`), so a
    // failed primary takes a duplicate's state there first, like at an
    // exit.
    let reshape = abi == Abi::X64 && reshapes(nr, args);
    let recorded = abi != Abi::X64
        || reshape
        || matches!(
            class,
            Class::Primary | Class::Fork | Class::Exit | Class::Exec
        );
    // What needs no lock (some of it reads the caller's memory), acted on
    // below in the order of its importance.
    let why = if shim::is_ptraced(current!()) {
        Some("being traced")
    } else if let Some(why) = abi.unreplicable() {
        Some(why)
    } else if let Some(why) = threaded.then(|| threads::unreplicable(nr, args)).flatten() {
        Some(why)
    } else {
        unreplicable(nr, args)
    };
    lap.lap(Section::Checks);
    // The fast path: nothing is pending (see `group::Fast`), and the call
    // is one the duplicates make too, or one whose record the primary
    // only has to make at its `sys_exit`.
    if why.is_none() && abi == Abi::X64 && !reshape {
        let fast = &group.fast;
        match class {
            Class::Local if fast.allows(false, false) => return,
            Class::Primary
                if releases_fds(nr, args).is_none()
                    && fast.allows(true, syscalls::input(nr).is_some())
                    && (!threaded || fast.holds(threads::me())) =>
            {
                fast.arm(nr, args);
                // The run token's holder keeps it through the call, unless
                // a thread came to wait for it meanwhile.
                if !threaded || fast.arm_solo(threads::me()) {
                    lap.lap(Section::Fast);
                    return;
                }
            }
            _ => {}
        }
    }
    // The slow path holds a reference of its own (what it calls may keep
    // the group).
    let group: Arc<Group> = group.into();
    let group = &group;
    if why.is_none() && class == Class::Fork && threads::thread_clone(nr, args).is_some() {
        // The first thread makes the group multi-threaded.
        let mut spare = (!threaded).then(threads::new_threads).flatten();
        if !threads::creating(group, &mut group.lock(), &mut spare) {
            group::end_protection(group, "a thread beyond procft's limit (or memory for it)");
            return;
        }
    }
    let (stale, promote, held, (hold, first_hold), count) = {
        // The primary's own section: it sets `group.fast` itself below.
        let mut st = group.lock_quiet();
        crate::mce::policy::primary(&mut st);
        // Duplicates a signal handler left out of step are re-created
        // from the primary at its next calls.
        let (stale, hold) = if st.resync {
            st.resync = false;
            // How long the youngest one still copying its memory had been
            // at it ([`group::Resync`]). (None left: they died meanwhile,
            // and say nothing of the pace.)
            let now = Monotonic::ktime_get();
            let stale = st.dups.iter().flatten().filter(|d| d.stale && !d.leaving);
            let hold = if stale.clone().next().is_some() {
                let unfinished = stale
                    .filter(|d| d.ready_ns == 0)
                    .map(|d| now - d.born_ns)
                    .min();
                st.resyncs.replaced(now, unfinished)
            } else {
                (0, false)
            };
            (st.replace_where(|d| d.stale), hold)
        } else {
            ((Kills::none(), 0), (0, false))
        };
        let count = st.resyncs.count;
        let promote = recorded && st.promote.is_some();
        // A record held for a signal that was not handled after all (a
        // promotion publishes it itself).
        let held = if promote { None } else { st.held_sig.take() };
        if stale.1 == 0
            && !promote
            && held.is_none()
            && why.is_none()
            && !matches!(class, Class::Exec | Class::Exit)
            && !replica::wants(&st)
        {
            // The common case, in this one taking of the lock: no
            // duplicate to create, nothing held back.
            if !reshape && !matches!(class, Class::Primary | Class::Fork) {
                group.fast.set(&st, is_quiet);
                return;
            }
            if !vote::wanted_in(&st, nr) {
                lap.lap(Section::EnterLocked);
                let wait = arm(&mut st, nr, args, class);
                // A thread's recorded call hands the run token over.
                let handed =
                    !wait && class == Class::Primary && threads::give_up(&mut st, nr, args);
                group.fast.set(&st, is_quiet);
                drop(st);
                lap.lap(Section::Arm);
                if wait {
                    wait_in_task_work(group, regs);
                }
                if handed {
                    // Its threads waiting for the token (those of the
                    // duplicates wait for records).
                    group.wake_only(shim::Wake::Unkeyed);
                }
                return;
            }
        }
        // Something to act on: the next call looks again.
        group.fast.set(&st, |_| false);
        (stale, promote, held, hold, count)
    };
    let (kills, n) = stale;
    kills.send();
    if n > 0 && threaded {
        // A handler's point in a thread is not built for a multi-threaded
        // primary ([`threads`]).
        group::end_protection(group, "a signal handler run in a thread between its calls");
        return;
    }
    // (Logged the first time, then at each power of two: a process may
    // take such signals thousands of times a second.)
    if n > 0 && count.is_power_of_two() {
        pr_info!(
            "pid {}: a signal handler ran in the primary outside a system-call return; \
             re-creating its {} duplicate(s) ({} so far)\n",
            group.pid(),
            n,
            count
        );
    }
    if hold > 0 {
        // For a primary that comes to no call by itself once it is over.
        replica::queue_hold(hold);
    }
    if n > 0 && hold > 0 && (first_hold || count.is_power_of_two()) {
        pr_info!(
            "pid {}: its duplicates are replaced faster than they copy its memory: the next is \
             made in {} ms at the earliest\n",
            group.pid(),
            hold / 1_000_000
        );
    }
    if promote {
        // The primary has failed: a duplicate's state replaces it, in a
        // task_work, and this call is not made (the duplicate's is). At a
        // recorded call the duplicate stands at the same point, having
        // made the same calls that change a process's own kernel state
        // (signal mask, mappings, ...) since the last record.
        if shim::queue_task_work().is_ok() {
            shim::suppress(regs);
        }
        return;
    }
    if let Some(record) = held {
        group::publish(group, record.into());
    }
    if let Some(why) = why {
        group::end_protection(group, why);
        return;
    }
    match class {
        Class::Exec if threaded => {
            // Its other threads end with it, or it fails: either way a
            // duplicate would be made of a process that had threads.
            group::end_protection(group, "an exec in a process that created threads");
            return;
        }
        Class::Exec => {
            // The new image gets new duplicates, at its first calls.
            let kills = {
                let mut st = group.lock();
                st.ring.clear();
                st.call = None;
                st.sleep_rem = None;
                st.resyncs.clear();
                st.trim_dups(0)
            };
            kills.send();
            return;
        }
        Class::Exit => {
            if nr == NR_EXIT
                && threaded
                && threads::one_of_several(&group.lock())
                && threads::primary_exit(group, args)
            {
                // One thread's exit is a record of the schedule: it waits
                // for room in the ring first.
                wait_in_task_work(group, regs);
            }
            return;
        }
        _ => {}
    }
    replica::maybe_spawn(group, regs);
    if !reshape && !matches!(class, Class::Primary | Class::Fork) {
        return;
    }
    if vote::wanted(group, nr) {
        if let Ok(Hashed { hash, .. }) = hash_input(nr, args, None) {
            let mine = Vote {
                nr,
                args: *args,
                hash,
            };
            let ready = {
                let mut st = group.lock();
                let ready = matches!(st.spawn, Spawn::Idle) && st.repair.is_none();
                if ready {
                    st.work = PrimaryWork::Vote(mine);
                    st.call = None;
                }
                ready
            };
            // The call is made, or not, once the duplicates have voted.
            if ready {
                if shim::queue_task_work().is_ok() {
                    shim::suppress(regs);
                } else {
                    group.lock().work = PrimaryWork::None;
                }
                return;
            }
        }
    }
    let (wait, handed) = {
        let mut st = group.lock();
        // A call that became a duplicate's creation keeps the run token:
        // the other threads' images were taken with it held
        // ([`replica::threads`]).
        let spawning = !matches!(st.spawn, Spawn::Idle);
        let wait = arm(&mut st, nr, args, class);
        (
            wait,
            !wait && !spawning && class == Class::Primary && threads::give_up(&mut st, nr, args),
        )
    };
    if wait {
        wait_in_task_work(group, regs);
    }
    if handed {
        group.wake_only(shim::Wake::Unkeyed);
    }
}

/// Whether nothing is pending for the primary's next call (`st`, the
/// group's state, locked): its `sys_enter` would only arm a record, or do
/// nothing, so it may do that without the lock (see [`group::Fast`]).
pub(crate) fn is_quiet(st: &group::State) -> bool {
    !st.closed
        && !st.resync
        && !st.promoting
        && st.promote.is_none()
        && matches!(st.work, PrimaryWork::None)
        && st.held_sig.is_none()
        && st.repair.is_none()
        && st.passed.is_none()
        && st.call.is_none()
        && st.mce_wish.is_some()
        && matches!(st.spawn, Spawn::Idle)
        && st.dups.iter().flatten().any(|d| !d.leaving)
        && !replica::wants(st)
        // A thread's call hands the run token over ([`threads`]), unless
        // no other waits for it.
        && st.threads.as_ref().is_none_or(|t| threads::solo(t))
}

/// At the primary's call `nr` that is recorded, under the group's lock
/// (`st`): arms its record (made at its `sys_exit`), or notes what the
/// primary must wait for before it makes the call. True if it must wait
/// ([`wait_in_task_work`]).
fn arm(st: &mut group::State, nr: i64, args: &[usize; 6], class: Class) -> bool {
    if !matches!(st.spawn, Spawn::Idle) || st.dups.iter().flatten().next().is_none() {
        // This call became a clone3() and will be made again, or nobody
        // needs a record of it.
        st.call = None;
        return false;
    }
    if let Some((lo, hi)) = releases_fds(nr, args).filter(|&(lo, hi)| st.mapping_pending(lo, hi)) {
        // A duplicate may still have to map a file through a descriptor
        // this call releases: it must find the same file there.
        st.work = PrimaryWork::FdBarrier { nr, lo, hi };
    } else if st.repair.is_some() {
        // A page of the primary is on a failed frame: the duplicates will
        // stop at this very call, in the state the primary is in now.
        st.work = PrimaryWork::Repair(nr);
    } else {
        st.trim_ring();
        if st.ring.has_room(threads::room(st)) {
            st.call = Some((nr, *args));
            if class == Class::Mmap {
                note_mapping(st, args);
            }
            return false;
        }
        // Back-pressure: the slowest duplicate must catch up first.
        st.work = PrimaryWork::WaitSpace(nr);
    }
    st.call = None;
    true
}

/// After [`arm`] asked the primary to wait: it waits outside the
/// tracepoint, in a task_work, and its call is then made again.
fn wait_in_task_work(group: &Group, regs: Regs) {
    if shim::queue_task_work().is_ok() {
        shim::suppress(regs);
    } else {
        group.lock().work = PrimaryWork::None;
    }
}

const MAP_ANONYMOUS: usize = 0x20;
const NR_CLOSE: i64 = 3;
const NR_DUP2: i64 = 33;
const NR_DUP3: i64 = 292;
const NR_CLOSE_RANGE: i64 = 436;

/// At the primary's `mmap` that is to be recorded (at ring position
/// `head`): a file mapped through a descriptor is noted until every
/// duplicate has made its own `mmap`, that is, until it stands at the
/// primary's next call or beyond ([`group::Mapped`]).
fn note_mapping(st: &mut group::State, args: &[usize; 6]) {
    let fd = args[4] as i32;
    if args[3] & MAP_ANONYMOUS == 0 && fd >= 0 {
        let next = st.ring.head() + 1;
        st.mapped.note(fd as usize, next);
    }
}

/// The descriptors call `nr` may release (close, or replace with another
/// file), if it is one that does.
fn releases_fds(nr: i64, args: &[usize; 6]) -> Option<(usize, usize)> {
    let fd = |a: usize| a as u32 as usize;
    match nr {
        NR_CLOSE => Some((fd(args[0]), fd(args[0]))),
        NR_DUP2 | NR_DUP3 => Some((fd(args[1]), fd(args[1]))),
        NR_CLOSE_RANGE => Some((fd(args[0]), fd(args[1]))),
        _ => None,
    }
}

/// How long the primary waits at a call releasing a descriptor for the
/// duplicates to map their files through it.
const FD_BARRIER_MS: u32 = 2000;

/// What a primary waiting at a descriptor barrier waits for.
struct Barrier<'a> {
    group: &'a Group,
    lo: usize,
    hi: usize,
}

/// Whether the primary waiting at a descriptor barrier (in `arg`, a
/// [`Barrier`]) can go on: every duplicate has mapped its files through
/// those descriptors.
///
/// # Safety
///
/// `arg` must point to a live [`Barrier`].
unsafe extern "C" fn files_mapped(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let b = unsafe { &*arg.cast::<Barrier<'_>>() };
    let mut st = b.group.lock();
    st.closed || !st.mapping_pending(b.lo, b.hi)
}

/// The primary's task_work at a call releasing descriptors `lo..=hi`
/// that a duplicate may still have to map a file through: it waits until
/// every duplicate has (a duplicate that does not come in time is
/// replaced: it would find another file there), then re-issues call `nr`.
fn fd_barrier(group: &Group, nr: i64, lo: usize, hi: usize) {
    let b = Barrier { group, lo, hi };
    let held = group.hold_steps();
    // Duplicates left asleep for a while ([`group::LAZY_RECORDS`]) come now.
    group.wake();
    let waited =
        group
            .wq
            .wait_killable_timeout(files_mapped, core::ptr::from_ref(&b).cast(), FD_BARRIER_MS);
    drop(held);
    if waited.is_err_and(|e| e == kernel::error::code::ERESTARTSYS) {
        // A fatal signal: it is dying.
        return;
    }
    let kills = {
        let mut st = group.lock();
        if st.mapping_pending(lo, hi) {
            // The latest of those mappings: a duplicate short of it has
            // not made one of them.
            let latest = st
                .mapped
                .slots
                .iter()
                .flatten()
                .filter(|(fd, _)| (lo..=hi).contains(fd))
                .map(|&(_, seq)| seq)
                .fold(st.mapped.overflow.unwrap_or(0), u64::max);
            let late = st.replace_where(|d| !d.passed(latest));
            st.mapped = group::Mapped::default();
            late
        } else {
            (Kills::none(), 0)
        }
    };
    let (kills, n) = kills;
    kills.send();
    if n > 0 {
        pr_info!(
            "pid {}: {} duplicate(s) did not map their files before the primary released \
             descriptor {}; replacing them\n",
            group.pid(),
            n,
            lo
        );
    }
    shim::restart_call(nr);
}

/// Whether call `nr` with `args` changes the address-space layout and is
/// recorded ([`syscalls::reshapes`]). Error injection into the primary
/// (`madvise(MADV_HWPOISON)`, `MADV_SOFT_OFFLINE`) is not: a duplicate
/// skips it.
fn reshapes(nr: i64, args: &[usize; 6]) -> bool {
    syscalls::reshapes(nr)
        && !(nr == NR_MADVISE && matches!(args[2], MADV_HWPOISON | MADV_SOFT_OFFLINE))
}

fn dup_enter(group: &Group, task: &Task, regs: Regs, abi: Abi, nr: i64, args: &[usize; 6]) {
    if abi == Abi::X64 && nr == NR_MADVISE && matches!(args[2], MADV_HWPOISON | MADV_SOFT_OFFLINE) {
        // Error injection into the primary's frame: the duplicates' own
        // frames stay good (this is how a test makes only the primary
        // consume poison).
        shim::suppress(regs);
        shim::set_return(0);
        return;
    }
    if abi == Abi::X64
        && matches!(nr, NR_CLONE | NR_CLONE3)
        && replica::threads::building(group, task)
    {
        // A new duplicate makes a thread for one of the primary's: the
        // call is procft's ([`replica::threads`]).
        return;
    }
    let clone = (abi == Abi::X64 && matches!(nr, NR_CLONE | NR_CLONE3))
        .then(|| threads::thread_clone(nr, args))
        .flatten();
    let own_class = determinism::class(nr);
    let threaded_class = threads::class(nr, own_class);
    let takes = |class| matches!(class, Class::Primary | Class::Fork | Class::Unsupported);
    // Whether the call is one whose record it takes (`DupWork::Consume`
    // below) in a multi-threaded duplicate: in the primary, it hands the
    // run token over.
    let consumes = abi == Abi::X64 && clone.is_none() && takes(threaded_class);
    if consumes && nr != NR_EXIT && takes(own_class) {
        // The common case: a call whose record it takes whether or not it
        // made its first thread yet. Its thread gives the token up and
        // takes the record, if it is there, in one critical section.
        let mut lap = Lap::start();
        let took = take(group, task, nr, args, None, Take::GiveUp);
        lap.lap(Section::Take);
        if took {
            shim::suppress(regs);
            return;
        }
        queue_work(
            group,
            task,
            regs,
            nr,
            args,
            DupWork::Consume { nr, args: *args },
        );
        return;
    }
    // Whether this duplicate made its first thread creation: its primary
    // may have made its own already, and its calls until then are classed
    // as they were in the primary ([`threads`]). If so, at a call it
    // consumes, the thread of the next record may go on: its publication
    // wakes it, or (published already) this (not if it is this thread's
    // own: it takes it itself).
    let (threaded, next) = if group.threaded() {
        let mut guard = group.lock_quiet();
        let st = &mut *guard;
        match st.dup_mut(task.tgid()) {
            Some(d) if d.threads.is_some() => {
                let gave = consumes && threads::dup_gives_up(d, task.pid());
                let d = st.dup(task.tgid()).filter(|_| gave);
                let next = d.and_then(|d| {
                    let tid = st.ring.peek(d.next_seq)?.tid;
                    (threads::mirrored(d, task.pid()) != Some(tid)).then_some(tid)
                });
                (true, next)
            }
            _ => (false, None),
        }
    } else {
        (false, None)
    };
    if let Some(tid) = next {
        group.wake_only(shim::Wake::for_record(tid));
    }
    let class = match abi {
        Abi::X64 if threaded => threaded_class,
        Abi::X64 => own_class,
        Abi::Ia32 | Abi::X32 => Class::Unsupported,
    };
    let mut lap = Lap::start();
    let (thread_exit, exiting) = if threaded && abi == Abi::X64 && nr == NR_EXIT {
        let mut st = group.lock_quiet();
        st.dup_mut(task.tgid()).map_or((false, false), |d| {
            (
                threads::dup_one_of_several(d),
                threads::exiting(d, task.pid()),
            )
        })
    } else {
        (false, false)
    };
    if exiting {
        // It took the record of its exit: it makes it now.
        return;
    }
    if let Some(c) = clone {
        // A thread creation: each replica makes its own, once the
        // primary's is recorded.
        let mut spare = threads::new_dup_threads();
        match threads::dup_clone(group, task, nr, args, c, &mut spare) {
            threads::Cloned::Made => return,
            threads::Cloned::Diverged => {
                shim::suppress(regs);
                return;
            }
            threads::Cloned::Failed(ret, signal) => {
                shim::suppress(regs);
                set_result(nr, ret);
                replay_signal(&signal);
                return;
            }
            threads::Cloned::Wait => {}
        }
    }
    let work = match (abi, class) {
        _ if clone.is_some() => DupWork::Follow { nr, args: *args },
        _ if thread_exit => DupWork::ThreadExit { args: *args },
        // Its number means something else in the x86-64 table. The
        // primary ends protection at this call (killing the duplicates),
        // or has diverged: either way the duplicate never makes it, and
        // waits to be killed, as at an exit.
        (Abi::Ia32 | Abi::X32, _) => DupWork::Park,
        (Abi::X64, Class::Local | Class::Mmap) if reshapes(nr, args) => {
            DupWork::Follow { nr, args: *args }
        }
        (Abi::X64, Class::Local | Class::Mmap) => return,
        (Abi::X64, Class::Exit | Class::Exec) => DupWork::Park,
        (Abi::X64, Class::Primary | Class::Fork | Class::Unsupported) => {
            DupWork::Consume { nr, args: *args }
        }
    };
    if clone.is_none() && matches!(work, DupWork::Follow { .. }) && follow(group, task, nr, args) {
        // The primary has made it: so does the duplicate, now.
        return;
    }
    // One still separating its memory takes its records in the task_work,
    // where it can take a step of that first ([`replica::separate`]).
    lap.lap(Section::DupEnter);
    let took =
        matches!(work, DupWork::Consume { .. }) && take(group, task, nr, args, None, Take::Enter);
    lap.lap(Section::Take);
    if took {
        // A duplicate behind the primary found its record published and
        // took it right here (the tracepoint may fault and take locks; it
        // only must not wait), without a task_work. (If not, nothing
        // changed: it waits in the task_work, or, leaving, is killed.)
        shim::suppress(regs);
        return;
    }
    queue_work(group, task, regs, nr, args, work);
    lap.lap(Section::DupEnter);
}

/// A duplicate's call `nr` (`args`) that it cannot finish at its
/// `sys_enter`: `work` is done in its task_work, instead of the call.
fn queue_work(group: &Group, task: &Task, regs: Regs, nr: i64, args: &[usize; 6], work: DupWork) {
    let own = {
        // Only a duplicate parked at an exit or exec has news for the
        // primary (its vote); one waiting for a record has none.
        let mut st = if work == DupWork::Park {
            group.lock()
        } else {
            group.lock_quiet()
        };
        let Some(dup) = st.dup_mut(task.tgid()) else {
            return;
        };
        dup.at = nr;
        // A duplicate parked at an exit, exec or 32-bit call votes for it.
        dup.vote = (work == DupWork::Park).then_some(Vote {
            nr,
            args: *args,
            hash: 0,
        });
        let Ok(own) = threads::set_work(dup, task.pid(), work) else {
            drop(st);
            shim::kill(task);
            return;
        };
        own
    };
    if group::Dup::queue_work(own).is_ok() {
        shim::suppress(regs);
    } else {
        shim::kill(task);
    }
}

/// The return of a system call (result `ret`) of a protected process or
/// duplicate (`dup` as for [`sys_enter`]), at its `sys_exit`, including a
/// new duplicate's first return, from `ret_from_fork` ([`crate::hooks`]).
pub(crate) fn sys_exit(group: ArcBorrow<'_, Group>, regs: Regs, ret: isize, dup: bool) {
    let task = current!();
    let mut lap = Lap::start();
    if dup {
        // A duplicate's return needs procft only at its first (from
        // `ret_from_fork`, the primary's injected clone3()) and after a
        // prctl() (its memory-error policy); its own clone3() calls are
        // never made (suppressed, their number is -1).
        let nr = shim::syscall_nr();
        // (Not its first return, from the primary's injected clone3(),
        // which returns 0.)
        if matches!(nr, NR_CLONE | NR_CLONE3)
            && ret != 0
            && replica::threads::building(&group, task)
        {
            // One of the threads a new duplicate makes for the primary's.
            replica::threads::built(&group, task, regs, ret);
            return;
        }
        // (Not the first return of a new duplicate, from the clone3()
        // procft injected in the primary: the same call returning 0, in
        // its first thread.)
        if group.threaded()
            && matches!(nr, NR_CLONE | NR_CLONE3)
            && (ret > 0 || task.pid() != task.tgid())
        {
            // Its own thread creation ([`threads`]): the new thread's
            // first return, or the creator's.
            if task.pid() != task.tgid() && ret == 0 {
                threads::dup_thread_born(task);
            } else {
                threads::dup_clone_exit(&group, task, ret);
            }
            return;
        }
        if !matches!(nr, NR_CLONE3 | NR_PRCTL) {
            return;
        }
        replica::dup_first_exit(&group, task, regs);
        crate::mce::policy::after_call(&group, true, ret);
    } else {
        crate::mce::policy::after_call(&group, false, ret);
        // (A thread that kept the run token through its call holds it.)
        if group.threaded() && !group.fast.leave_solo(threads::me()) {
            let nr = shim::syscall_nr();
            match threads::take_turn(&group.into(), nr, ret) {
                threads::Turn::Go => {}
                // Its protection ended while it waited to run.
                threads::Turn::Ended => {
                    determinism::after_call(ret);
                    return;
                }
                // Made again, and recorded then.
                threads::Turn::Again => return,
            }
        }
        let signal = shim::signal_pending();
        lap.lap(Section::ExitChecks);
        // A call armed without the lock (see `group::Fast`); with none,
        // and nothing pending, there is nothing to do here.
        let armed = group.fast.take();
        if armed.is_none() && group.fast.quiet() {
            determinism::after_call(ret);
            return;
        }
        // The output of a call armed without the lock, if it is a few
        // structures of fixed size (a time read's), read now, before the
        // lock: the call is then recorded in the one critical section
        // below, as one that wrote nothing is.
        let inline = armed
            .filter(|_| ret >= 0 && !signal)
            .and_then(|(nr, args)| read_inline(nr, &args));
        // One taking of the lock: the call to record, unless this is the
        // return of an injected clone3(); a call that wrote nothing is
        // recorded right there.
        let call = {
            // The primary's own section: it sets `group.fast` itself.
            let mut st = group.lock_quiet();
            if armed.is_some() {
                st.call = armed;
            }
            if !matches!(st.spawn, Spawn::Idle) {
                group.fast.set(&st, |_| false);
                None
            } else if let Some(appended) =
                record_plain(&group, &mut st, ret, signal, inline.as_ref())
            {
                if armed.is_some() && !appended.killed() {
                    // Armed without the lock: nothing was pending then,
                    // and nobody else has taken the lock since (that
                    // clears `quiet`; in a multi-threaded group, one
                    // that did gave the token up for this thread, which
                    // then has no armed call here); only the ring's room
                    // changed.
                    group.fast.set_room(&st);
                } else {
                    group.fast.set(&st, is_quiet);
                }
                drop(st);
                lap.lap(Section::RecordPlain);
                group::published(&group, appended);
                lap.lap(Section::Published);
                determinism::after_call(ret);
                return;
            } else {
                let pending = Pending::take(&mut st);
                // A call with bytes sets it once it is recorded.
                let nothing = pending.call.is_none();
                group.fast.set(&st, |st| nothing && is_quiet(st));
                Some(pending)
            }
        };
        if let Some(call) = call {
            record(&group.into(), ret, call);
            lap.lap(Section::Record);
        } else if replica::primary_spawn_exit(&group, regs, ret) && group.lock().closed {
            // Its protection ended while its clone3() was in flight.
            group::remove_closed(&group);
            return;
        }
        determinism::after_call(ret);
    }
}

/// The primary's call in flight, taken at its `sys_exit` with a record
/// from the ring's pool to hold it.
struct Pending {
    call: Option<(i64, [usize; 6])>,
    passed: Option<Vote>,
    record: Option<UniqueArc<Record>>,
    /// For a `restart_syscall()` continuing a sleep of the calling
    /// thread: that sleep's `rem` address ([`group::State::sleep_rem`]).
    sleep_rem: Option<usize>,
}

impl Pending {
    /// Takes the call in flight from `st` (the group's state, locked), and
    /// a pooled record if there is one.
    fn take(st: &mut group::State) -> Self {
        let call = st.call.take();
        let record = call.and_then(|_| st.ring.take_record());
        let sleep_rem = match (call, st.sleep_rem) {
            (Some((NR_RESTART_SYSCALL, _)), Some((tid, rem))) if tid == current!().pid() => {
                Some(rem)
            }
            _ => None,
        };
        Self {
            call,
            passed: st.passed.take(),
            record,
            sleep_rem,
        }
    }
}

/// What [`group::State::sleep_rem`] becomes once the calling thread's
/// call `nr` (`args`) returned `ret` (`rem`: the `rem` address a
/// continuation of it writes to, as [`Pending::sleep_rem`]): set by a
/// sleep cut short to be continued, kept by its continuations cut short
/// again, dropped by the thread's other calls (nothing runs between a
/// sleep and its continuation: a handled signal makes it `-EINTR`).
fn next_sleep_rem(
    st: &group::State,
    nr: i64,
    args: &[usize; 6],
    ret: isize,
    rem: Option<usize>,
) -> Option<(Pid, usize)> {
    let tid = current!().pid();
    if ret == ERESTART_RESTARTBLOCK {
        if let Some((addr, _)) = written_failing(nr, args, ret, rem) {
            return Some((tid, addr));
        }
    }
    st.sleep_rem.filter(|&(t, _)| t != tid)
}

/// What the primary's call `nr` (`args`) wrote although it failed with
/// `ret` (address, length): [`syscalls::written_when_interrupted`], or, for
/// a `restart_syscall()` continuing a sleep and cut short again, that
/// sleep's `rem` (`sleep_rem`, as [`Pending::sleep_rem`]).
fn written_failing(
    nr: i64,
    args: &[usize; 6],
    ret: isize,
    sleep_rem: Option<usize>,
) -> Option<(usize, usize)> {
    let continued = sleep_rem
        .filter(|_| nr == NR_RESTART_SYSCALL && ret == ERESTART_RESTARTBLOCK)
        .map(|rem| (rem, 16));
    syscalls::written_when_interrupted(nr, args, ret).or(continued)
}

/// At the primary's `sys_exit`, under the group's lock (`st`): if the call
/// in flight needs nothing read from the primary's memory now (it sends no
/// bytes, and wrote none or only `inline`, its outputs read already) and
/// nothing else is pending (a signal, a repair, a restart), records it
/// from the ring's pool and appends it; what [`append`] found, to act on
/// once the lock is dropped.
fn record_plain(
    group: &Group,
    st: &mut group::State,
    ret: isize,
    signal: bool,
    inline: Option<&Inline>,
) -> Option<group::Appended> {
    let (nr, args) = st.call?;
    if signal
        || is_restart(ret)
        || st.repair.is_some()
        || syscalls::input(nr).is_some()
        || syscalls::written_when_interrupted(nr, &args, ret).is_some()
    {
        return None;
    }
    // `capture` reads nothing after a failure (but the above).
    let inline = inline.filter(|_| ret >= 0);
    if ret >= 0 && inline.is_none() && !matches!(syscalls::outputs(nr), Outputs::Bufs([])) {
        return None;
    }
    let mut record = st.ring.take_record()?;
    st.call = None;
    st.passed = None;
    record.start(nr, args);
    if let Some(inline) = inline {
        record.set_inline(inline);
    }
    record.ret = ret;
    threads::stamp(group, &mut record);
    if st.sleep_rem.is_some() && nr != syscalls::NR_PREEMPTED {
        // (A preemption's record is no call: a sleep to go on stays so.)
        st.sleep_rem = next_sleep_rem(st, nr, &args, ret, None);
    }
    // What `hash_input` gives a call that sends nothing.
    record.input_hash = Some(0);
    record.ip = shim::user_ip();
    Some(group::append(group, st, record.into()))
}

/// The outputs of the primary's call `nr` with `args`, read at its
/// `sys_exit` before the group's lock is taken, if it writes only a few
/// structures of fixed size ([`Inline`]). (A call that sends bytes has none
/// of those, and [`record_plain`] refuses it anyway.)
fn read_inline(nr: i64, args: &[usize; 6]) -> Option<Inline> {
    Inline::read(syscalls::fixed_outputs(nr)?.map(|(arg, len)| (args[arg], len)))
}

/// At the primary's `sys_exit`: appends the call in flight to the ring.
fn record(group: &Arc<Group>, ret: isize, pending: Pending) {
    let Pending {
        call,
        passed,
        record,
        sleep_rem,
    } = pending;
    let Some((nr, args)) = call else {
        return;
    };
    // The hash of everything the call asked to send, if it passed a vote.
    let whole = passed
        .filter(|v| v.nr == nr && v.args == args)
        .map(|v| v.hash);
    let signal = shim::signal_pending();
    if is_restart(ret) && !signal && ret != ERESTART_RESTARTBLOCK {
        // Interrupted without a signal to handle: the same call is made
        // again, and recorded then. (A call with a restart block goes on
        // as `restart_syscall()`: the record tells the duplicates to.)
        return;
    }
    let lost = lost_input(nr, &args, ret);
    if let Some(addr) = lost {
        if ret < 0 {
            // The kernel could not read what the primary asked to send: a
            // poisoned page of the primary, not the world's answer. Nothing
            // was sent; a duplicate, waiting at this very call with good
            // memory, takes over and makes it.
            failover::kernel_read_poison(group, addr);
            return;
        }
    }
    // A record from the pool, or (the pool is empty) a new one.
    let Some(mut record) = record.or_else(|| Record::new().ok()) else {
        group::end_protection(group, "out of memory for a record");
        return;
    };
    record.start(nr, args);
    let mut lap = Lap::start();
    if let Err(why) = capture(&mut record, ret, sleep_rem) {
        pr_info!(
            "pid {}: the record of {} (result {}) cannot be made\n",
            group.pid(),
            format_args!("{}", Call(nr, &args)),
            ret
        );
        group::end_protection(group, why);
        return;
    }
    lap.lap(Section::RecordCopy);
    let hashed = match lost {
        Some(_) => None,
        None => match hash_after(nr, &args, ret, whole) {
            Ok(hashed) => Some(hashed),
            Err(_) => {
                group::end_protection(group, "a call whose bytes procft could not hash");
                return;
            }
        },
    };
    record.input_hash = match hashed {
        None => None,
        Some(h) => match h.unread {
            // What the kernel read could not be read again here: the page
            // was lost since (its loss is dealt with on its own, in
            // [`crate::mce`]), or this very read raised the machine check
            // (`memory_failure()` runs later, on the way back to user
            // space), or it was unmapped since. What the kernel read is
            // then not known, so the duplicates' bytes are not held to
            // it. A call that failed read nothing past where it stopped
            // (a bad pointer, which the duplicates' hashes mark as well),
            // unless its page was lost.
            Some((addr, _)) if ret >= 0 || h.lost().is_some() => {
                pr_info!(
                    "pid {}: the primary's memory at {:#x}, which the kernel read for {}, \
                     could not be read again; its bytes are not compared\n",
                    group.pid(),
                    addr,
                    format_args!("{}", Call(nr, &args))
                );
                None
            }
            _ => Some(h.hash),
        },
    };
    lap.lap(Section::RecordHash);
    record.ret = ret;
    threads::stamp(group, &mut record);
    record.ip = shim::user_ip();
    if signal {
        let mut st = group.lock();
        if st.repair.is_none() && st.held_sig.is_none() {
            st.sleep_rem = next_sleep_rem(&st, nr, &args, ret, sleep_rem);
            // Published when the signal is delivered (or at the next call).
            st.held_sig = Some(record);
            return;
        }
    }
    let record: Arc<Record> = record.into();
    let appended = {
        // The primary's own section: it sets `group.fast` itself.
        let mut st = group.lock_quiet();
        st.sleep_rem = next_sleep_rem(&st, nr, &args, ret, sleep_rem);
        let appended = if st.repair.is_some() && matches!(st.work, PrimaryWork::None) {
            // A page of the primary failed while it was in this call: mend
            // it before it returns to user space, from a duplicate waiting
            // for this very record, then publish the record.
            st.work = PrimaryWork::Held(record);
            None
        } else {
            Some(group::append(group, &mut st, record))
        };
        group.fast.set(&st, is_quiet);
        appended
    };
    let Some(appended) = appended else {
        if shim::queue_task_work().is_ok() {
            return;
        }
        let work = core::mem::take(&mut group.lock().work);
        if let PrimaryWork::Held(record) = work {
            group::publish(group, record);
        }
        return;
    };
    group::published(group, appended);
    if let Some(addr) = lost {
        // A short count: what was sent is recorded; the duplicates go on
        // to the next call, where one of them takes over.
        failover::kernel_read_poison(group, addr);
    }
}

/// For a call that sends bytes and failed (`-EFAULT`) or sent fewer than
/// asked: the page the kernel's read of the primary's memory (its
/// descriptors or its bytes) stopped at, if the primary has lost that page
/// to memory failure.
///
/// The kernel reads in order and stops at the first page it cannot read,
/// so only that page matters: after a short count, the first unreadable
/// page from the first byte not sent; after `-EFAULT`, the first one of
/// everything it reads. The work is bounded by what is resident there, not
/// by the length the caller passed.
fn lost_input(nr: i64, args: &[usize; 6], ret: isize) -> Option<usize> {
    const EFAULT_RET: isize = -14;
    if let Input::Buf(_, len) = syscalls::input(nr)? {
        // One buffer: its length is the count asked for, known without
        // reading anything.
        if ret != EFAULT_RET && usize::try_from(ret).map_or(true, |n| n >= args[len]) {
            return None;
        }
    }
    let mut sent = Sent::new();
    sent.read(nr, args).ok()?;
    if ret != EFAULT_RET && !(ret >= 0 && (ret as usize) < sent.bytes) {
        return None;
    }
    // With a count, every descriptor was read and `ret` bytes were sent.
    let mut skip = usize::try_from(ret).ok();
    for r in sent.ranges.iter() {
        let mut start = r.addr;
        if let Some(left) = skip.as_mut() {
            if !r.payload {
                continue;
            }
            if *left >= r.len {
                *left -= r.len;
                continue;
            }
            start += *left;
            *left = 0;
        }
        let end = r.addr.checked_add(r.len)?;
        if let Some((page, lost)) = shim::read_stop(start, end) {
            return lost.then_some(page);
        }
    }
    None
}

/// A range of user memory the kernel reads for a call that sends bytes.
#[derive(Clone, Copy, Default)]
struct Range {
    addr: usize,
    len: usize,
    /// A descriptor (`struct user_msghdr`, iovec array) rather than bytes
    /// sent.
    desc: bool,
    /// Bytes the call's count is made of (not a destination address or
    /// control data, which are read in full before any byte is sent).
    payload: bool,
}

/// What a call that sends bytes has the kernel read, in the order it reads
/// it: descriptors before what they point to.
struct Sent {
    ranges: Ranges,
    /// How many payload bytes it asks to send.
    bytes: usize,
    /// The first descriptor that could not be read (address, length), if
    /// any: `ranges` ends there.
    unread: Option<(usize, usize)>,
}

/// [`Sent`]'s ranges: the first few in place, the rest (long iovec
/// arrays) allocated. A `write()` or `send()` has one, a `sendmsg()` of
/// one iovec five at most (its header, address, iovec array, buffer and
/// control data): the calls a server makes for each request then allocate
/// nothing to be hashed or checked.
#[derive(Default)]
struct Ranges {
    first: [Range; Ranges::IN_PLACE],
    len: usize,
    rest: KVec<Range>,
}

impl Ranges {
    const IN_PLACE: usize = 5;

    fn push(&mut self, range: Range) -> Result {
        if let Some(slot) = self.first.get_mut(self.len) {
            *slot = range;
        } else {
            self.rest.push(range, GFP_KERNEL)?;
        }
        self.len += 1;
        Ok(())
    }

    fn iter(&self) -> impl Iterator<Item = &Range> {
        Iterator::chain(
            self.first[..self.len.min(Self::IN_PLACE)].iter(),
            self.rest.iter(),
        )
    }
}

/// `UIO_MAXIOV`: the kernel refuses longer iovec arrays (`-EINVAL`)
/// without reading them.
const MAX_IOV: usize = 1024;
const IOVEC: usize = 16;
const MSGHDR: usize = 56;

impl Sent {
    /// Nothing sent, to be filled in by [`Sent::read`]. (Made in its
    /// caller's frame and filled in there: a `Sent` is not small, and
    /// returned by value it was copied twice on every call.)
    fn new() -> Self {
        Sent {
            ranges: Ranges::default(),
            bytes: 0,
            unread: None,
        }
    }

    /// Notes what call `nr` with `args` has the kernel read.
    fn read(&mut self, nr: i64, args: &[usize; 6]) -> Result {
        match syscalls::input(nr) {
            None => {}
            Some(Input::Buf(buf, len)) => self.data(args[buf], args[len])?,
            Some(Input::Iov(iov, count)) => self.iov(args[iov], args[count])?,
            Some(Input::Msg(msg)) => {
                // struct user_msghdr { void *name; int namelen; struct
                // iovec *iov; size_t iovlen; void *control; size_t
                // controllen; unsigned flags; }
                self.desc(args[msg], MSGHDR)?;
                let Ok(hdr) = UserSlice::new(UserPtr::from_addr(args[msg]), MSGHDR)
                    .reader()
                    .read::<[usize; 7]>()
                else {
                    self.unread = Some((args[msg], MSGHDR));
                    return Ok(());
                };
                self.push(hdr[0], hdr[1] & 0xffff_ffff, false, false)?;
                self.iov(hdr[2], hdr[3])?;
                self.push(hdr[4], hdr[5], false, false)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, addr: usize, len: usize, desc: bool, payload: bool) -> Result {
        if addr != 0 && len != 0 {
            let range = Range {
                addr,
                len,
                desc,
                payload,
            };
            self.ranges.push(range)?;
        }
        Ok(())
    }

    fn desc(&mut self, addr: usize, len: usize) -> Result {
        self.push(addr, len, true, false)
    }

    fn data(&mut self, addr: usize, len: usize) -> Result {
        self.bytes = self.bytes.saturating_add(len);
        self.push(addr, len, false, true)
    }

    fn iov(&mut self, addr: usize, count: usize) -> Result {
        if self.unread.is_some() || count > MAX_IOV {
            return Ok(());
        }
        self.desc(addr, count * IOVEC)?;
        for i in 0..count {
            let Ok(iov) = UserSlice::new(UserPtr::from_addr(addr + i * IOVEC), IOVEC)
                .reader()
                .read::<[usize; 2]>()
            else {
                self.unread = Some((addr + i * IOVEC, IOVEC));
                return Ok(());
            };
            self.data(iov[0], iov[1])?;
        }
        Ok(())
    }
}

/// A protected process is about to run a handler for signal `sig`
/// (`info`; `restart`: the handler has `SA_RESTART`) at user address `ip`,
/// under its siglock, interrupts off (no allocation, no sleeping)
/// ([`crate::hooks`]). If it is on its way back from a recorded call, the
/// record carries the signal to the duplicates, with the call's result as
/// the handler sees it (`-EINTR`, or made again after `SA_RESTART`).
pub(crate) fn signal_deliver(sig: i32, info: &shim::SigInfo, restart: bool, ip: usize) {
    let task = current!();
    let Some(group) = group::lookup(task.tgid()) else {
        return;
    };
    let mut st = group.lock();
    // A handler runs: no sleep of this thread goes on as restart_syscall()
    // (an interrupted one returns -EINTR).
    let tid = task.pid();
    st.sleep_rem = st.sleep_rem.filter(|&(t, _)| t != tid);
    let held = st.held_sig.take();
    let mut record = match held {
        Some(record) if record.ip == ip => record,
        other => {
            // A handler runs where no record can carry the signal (the
            // primary was computing, or returns from a call that is not
            // recorded): the duplicates cannot follow. They are out of
            // step from here on and are replaced at the primary's next
            // call (killing them here, under a siglock, is not allowed).
            st.held_sig = other;
            let mut stale = 0;
            for d in st.dups.iter_mut().flatten().filter(|d| !d.leaving) {
                d.stale = true;
                d.ready = false;
                stale += 1;
            }
            st.resync = stale > 0;
            return;
        }
    };
    record.signal = Some((sig, *info));
    // What arch/x86/kernel/signal.c makes of an interrupted call when a
    // handler runs.
    record.ret = match record.ret {
        ERESTARTNOHAND | ERESTART_RESTARTBLOCK => -EINTR_RET,
        ERESTARTSYS if !restart => -EINTR_RET,
        ERESTARTSYS => ERESTARTNOINTR,
        r => r,
    };
    let _ = group.push(&mut st, record.into());
    drop(st);
    group.wake();
}

const ERESTARTSYS: isize = -512;
const ERESTARTNOINTR: isize = -513;
const ERESTARTNOHAND: isize = -514;
const ERESTART_RESTARTBLOCK: isize = -516;
const NR_RESTART_SYSCALL: i64 = 219;
const EINTR_RET: isize = 4;

const PAGE: usize = kernel::page::PAGE_SIZE;
/// `MAX_RW_COUNT`: the most bytes the kernel transfers in one call (it
/// shortens longer writes, sends and iovec arrays to this).
const MAX_RW_COUNT: usize = i32::MAX as usize & !(PAGE - 1);

/// A streaming 64-bit hash of the bytes a call sends: four lanes, each
/// mixing one word of every 32-byte block by `h = (rotl(h, 5) ^ word) * K`
/// with an odd `K` (FxHash's step), folded together by the same step at
/// the end; four independent multiplies per block keep the CPU busy where
/// one chain of them would wait. For a given word the step is a bijection
/// of `h`, and the fold one of each lane, so two streams of the same
/// length that differ in one word never hash alike; what it is for is
/// telling replicas' bytes apart, not resisting an adversary. The result
/// does not depend on how the stream is cut into [`Hash::write`]s.
struct Hash {
    lanes: [u64; 4],
    /// Bytes not yet mixed in (fewer than a block).
    buf: [u8; Hash::BLOCK],
    nbuf: usize,
}

impl Hash {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    const BLOCK: usize = 32;

    fn new() -> Self {
        Self {
            lanes: [
                0xcbf2_9ce4_8422_2325,
                0x9e37_79b9_7f4a_7c15,
                0xc2b2_ae3d_27d4_eb4f,
                0x1656_67b1_9e37_79f9,
            ],
            buf: [0; Self::BLOCK],
            nbuf: 0,
        }
    }

    fn mix(lane: u64, word: u64) -> u64 {
        (lane.rotate_left(5) ^ word).wrapping_mul(Self::K)
    }

    /// Mixes block `b` into `lanes` (not a method: `b` may be the
    /// hash's own buffer, borrowed beside its lanes rather than copied).
    fn block(lanes: &mut [u64; 4], b: &[u8; Self::BLOCK]) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[8 * i..8 * i + 8]);
            *lane = Self::mix(*lane, u64::from_le_bytes(w));
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        if self.nbuf > 0 {
            let n = bytes.len().min(Self::BLOCK - self.nbuf);
            self.buf[self.nbuf..self.nbuf + n].copy_from_slice(&bytes[..n]);
            self.nbuf += n;
            bytes = &bytes[n..];
            if self.nbuf < Self::BLOCK {
                return;
            }
            Self::block(&mut self.lanes, &self.buf);
            self.nbuf = 0;
        }
        let mut blocks = bytes.chunks_exact(Self::BLOCK);
        for b in &mut blocks {
            // (`chunks_exact` gives whole blocks.)
            if let Ok(b) = b.try_into() {
                Self::block(&mut self.lanes, b);
            }
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.nbuf = rest.len();
    }

    /// Mixes in the bytes not yet mixed (zero-padded) with `word`, which
    /// says how many there were; the stream starts a new block after.
    fn flush(&mut self, word: u64) {
        self.buf[self.nbuf..].fill(0);
        Self::block(&mut self.lanes, &self.buf);
        self.lanes[0] = Self::mix(self.lanes[0], word ^ self.nbuf as u64);
        self.nbuf = 0;
    }

    /// Marks where the bytes stopped (`tag`, after `done` bytes), so that
    /// it is told apart from bytes that went on.
    fn mark(&mut self, tag: u64, done: usize) {
        self.flush(tag << 56);
        self.lanes[1] = Self::mix(self.lanes[1], done as u64);
    }

    fn finish(mut self) -> u64 {
        // The length of the tail is mixed in with it: a stream ending in
        // zero bytes differs from a shorter one.
        self.flush(0);
        self.lanes[1..]
            .iter()
            .fold(self.lanes[0], |h, &lane| Self::mix(h, lane))
    }
}

/// A [`Hash`] of the bytes a call sends out (0 for calls that send none), so
/// duplicates can be checked against what the primary sent without keeping
/// a copy. `ret` is the call's result once it is made: only what it sent
/// is hashed then (its first `ret` bytes, with their destination and
/// control data; nothing if it failed). `None` before the call (a vote):
/// everything it asks to send.
///
/// The bytes are read as the kernel reads them: in order, at most
/// [`MAX_RW_COUNT`] of them, up to the first page that cannot be read
/// (where the kernel stops too; how far it got is hashed instead of what
/// follows). So the work is at most what the kernel itself may do for the
/// call, and a call that fails with `-EFAULT` or a short count is checked
/// like any other. Fails only without memory or on a fatal signal.
fn hash_input(nr: i64, args: &[usize; 6], ret: Option<isize>) -> Result<Hashed> {
    let mut hash = Hash::new();
    if syscalls::input(nr).is_none() {
        return Ok(Hashed {
            hash: 0,
            unread: None,
        });
    }
    let mut sent = Sent::new();
    sent.read(nr, args)?;
    // What may have been sent: payload bytes, and whether anything was.
    let (mut payload, any) = match ret {
        None => (MAX_RW_COUNT, true),
        Some(ret) => usize::try_from(ret).map_or((0, false), |n| (n, true)),
    };
    let mut left = MAX_RW_COUNT;
    let mut done = 0usize;
    let mut unread = None;
    // Not zeroed: each read fills what is hashed of it.
    let mut chunk = shim::SMALL_READ_BUF;
    'ranges: for r in sent.ranges.iter().filter(|r| !r.desc && any) {
        let (mut addr, mut len) = (r.addr, r.len.min(left));
        if r.payload {
            len = len.min(payload);
            payload -= len;
        }
        left -= len;
        while len > 0 {
            // Never across a page: a failed read is an unreadable page.
            let n = len.min(shim::SMALL_READ).min(PAGE - addr % PAGE);
            let Ok(read) = shim::read_user_small(&mut chunk, addr, n) else {
                hash.mark(0xff, done);
                unread = Some((addr, n));
                break 'ranges;
            };
            hash.write(read);
            (addr, len, done) = (addr + n, len - n, done + n);
            if addr % PAGE == 0 && !shim::keep_going() {
                return Err(EINTR);
            }
        }
    }
    if sent.unread.is_some() {
        // A descriptor could not be read: nothing after it is sent.
        hash.mark(0xfe, done);
        unread = unread.or(sent.unread);
    }
    Ok(Hashed {
        hash: hash.finish(),
        unread,
    })
}

/// What [`hash_input`] made of a call's bytes.
struct Hashed {
    hash: u64,
    /// The first range of the caller's memory it could not read, if any
    /// (address, length): where the kernel stops too, unless it changed
    /// since the kernel read it (lost to memory failure, unmapped).
    unread: Option<(usize, usize)>,
}

impl Hashed {
    /// The page in `unread` if the caller has lost it to memory failure.
    fn lost(&self) -> Option<usize> {
        let (addr, len) = self.unread?;
        match shim::read_stop(addr, addr.checked_add(len)?) {
            Some((page, true)) => Some(page),
            _ => None,
        }
    }
}

/// The hash [`hash_input`] gives for call `nr` with `args` made with result
/// `ret`. `whole`, if given, is its hash before the call (of everything
/// it asks to send, taken since without the caller running): the same
/// when the call sent every byte it asked to (or sends none), so the
/// bytes are hashed once.
fn hash_after(nr: i64, args: &[usize; 6], ret: isize, whole: Option<u64>) -> Result<Hashed> {
    match whole {
        Some(hash) if sent_all(nr, args, ret) => Ok(Hashed { hash, unread: None }),
        _ => hash_input(nr, args, Some(ret)),
    }
}

/// Whether call `nr` with `args`, having returned `ret`, sent every byte it
/// asked to (as many as the kernel sends in one call), or sends none:
/// [`hash_input`] then hashes the same bytes with and without `ret`.
fn sent_all(nr: i64, args: &[usize; 6], ret: isize) -> bool {
    let Some(input) = syscalls::input(nr) else {
        return true;
    };
    let Ok(sent) = usize::try_from(ret) else {
        return false;
    };
    let asked = match input {
        Input::Buf(_, len) => args[len],
        Input::Iov(..) | Input::Msg(_) => {
            let mut s = Sent::new();
            match s.read(nr, args) {
                Ok(()) if s.unread.is_none() => s.bytes,
                _ => return false,
            }
        }
    };
    sent >= asked.min(MAX_RW_COUNT)
}

/// The buffers `record`'s call (which returned `ret`) wrote, read back
/// from the primary into `record`: those of a successful call; of a failed
/// one, only the time a sleep cut short or a wait had left
/// ([`syscalls::written_when_interrupted`]).
fn capture(record: &mut Record, ret: isize, sleep_rem: Option<usize>) -> Result<(), &'static str> {
    let oom = "out of memory for a record";
    let (nr, args) = (record.nr, record.args);
    let args = &args;
    if ret < 0 {
        // A failed call wrote nothing, unless it was a sleep cut short or
        // a wait: the time it had left.
        if let Some((addr, len)) = written_failing(nr, args, ret, sleep_rem) {
            record.add_output(addr, len).map_err(|_| oom)?;
            return read_outputs(record);
        }
        return Ok(());
    }
    let ret = ret as usize;
    let mut add = |addr: usize, len: usize| -> Result<(), &'static str> {
        if len > MAX_OUTPUT {
            return Err("a call with an output too large to replicate");
        }
        if addr != 0 && len != 0 {
            record.add_output(addr, len).map_err(|_| oom)?;
        }
        Ok(())
    };
    match syscalls::outputs(nr) {
        Outputs::Unknown => return Err("a call whose output procft cannot replay yet"),
        Outputs::Bufs(list) => {
            for &Out(arg, len) in list {
                let n = match len {
                    Len::Ret => ret,
                    Len::RetTimes(k) => ret.saturating_mul(k),
                    Len::Fixed(n) => n,
                    Len::ArgTimes(i, k) => args[i].saturating_mul(k),
                    Len::Arg(i) => args[i],
                    // The length the call wrote next to its output (its
                    // page may have been lost since, like the output's).
                    Len::DerefU32(i) if args[i] != 0 && args[arg] != 0 => {
                        let mut len = [core::mem::MaybeUninit::new(0u8); 4];
                        if shim::read_user_or_lost(args[i], &mut len).is_err() {
                            return Err("an output procft could not read");
                        }
                        // SAFETY: Every byte was initialised above.
                        u32::from_ne_bytes(len.map(|b| unsafe { b.assume_init() })) as usize
                    }
                    Len::DerefU32(_) => 0,
                    Len::FdSet => args[0].div_ceil(64) * 8,
                };
                add(args[arg], n)?;
            }
        }
        Outputs::Iov => {
            // struct iovec { void *base; size_t len; }, filled in order.
            let mut left = ret;
            for i in 0..args[2].min(1024) {
                if left == 0 {
                    break;
                }
                let iov = UserSlice::new(UserPtr::from_addr(args[1] + i * 16), 16)
                    .reader()
                    .read::<[usize; 2]>()
                    .map_err(|_| "an unreadable iovec")?;
                let n = iov[1].min(left);
                add(iov[0], n)?;
                left -= n;
            }
        }
        Outputs::Ioctl => {
            let req = args[1] as u32;
            let n = match req {
                0x5401 => 36,         // TCGETS: struct termios
                0x5413 => 8,          // TIOCGWINSZ
                0x540f | 0x541b => 4, // TIOCGPGRP, FIONREAD
                // _IOR/_IOWR requests encode their size.
                r if (r >> 30) & 2 != 0 => ((r >> 16) & 0x3fff) as usize,
                _ => 0,
            };
            add(args[2], n)?;
        }
        Outputs::Fcntl => {
            let n = match args[1] {
                5 | 36 => 32, // F_GETLK, F_OFD_GETLK: struct flock
                16 => 8,      // F_GETOWN_EX
                _ => 0,
            };
            add(args[2], n)?;
        }
    }
    read_outputs(record)
}

/// [`Record::read_outputs`], its error for the log.
fn read_outputs(record: &mut Record) -> Result<(), &'static str> {
    record.read_outputs().map_err(|e| {
        if e == ENOMEM {
            "out of memory for a record"
        } else {
            "an output procft could not read"
        }
    })
}

/// What a duplicate waits for: its next record (sequence number `seq`).
struct DupWaiter<'a> {
    group: &'a Group,
    tgid: Pid,
    /// The waiting thread ([`threads`]).
    tid: Pid,
    seq: u64,
}

/// A check of a duplicate's wait ([`dup_record_ready`]).
type DupCheck = unsafe extern "C" fn(*const c_void) -> bool;

/// Whether the duplicate in `arg` (a [`DupWaiter`]) may be able to go on:
/// its next record is published. Lock-free, for polling; [`dup_can_go`]
/// then decides (in a multi-threaded group, the record must be the
/// thread's own too).
///
/// # Safety
///
/// `arg` must point to a live [`DupWaiter`].
unsafe extern "C" fn dup_record_ready(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<DupWaiter<'_>>() };
    w.group.is_published(w.seq)
}

/// What the primary waits for.
struct Waiter<'a> {
    group: &'a Group,
}

/// Whether the duplicate in `arg` (a [`DupWaiter`]) can go on: its next
/// record exists, or it is to die.
///
/// # Safety
///
/// `arg` must point to a live [`DupWaiter`].
unsafe extern "C" fn dup_can_go(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<DupWaiter<'_>>() };
    if !w.group.threaded() && w.group.is_published(w.seq) {
        return true;
    }
    let st = w.group.lock_quiet();
    if st.closed {
        return true;
    }
    match st.dup(w.tgid) {
        // In a multi-threaded group, it must be the thread's own too.
        Some(d) if !d.leaving && !d.parked => st
            .ring
            .peek(d.next_seq)
            .is_some_and(|r| threads::may_take(d, r, w.tid)),
        _ => true,
    }
}

/// Whether the primary waiting for room (in `arg`, a [`Waiter`]) can go
/// on: the ring is low again (see [`Ring::is_low`](crate::ring::Ring)),
/// or no duplicate needs it.
///
/// # Safety
///
/// `arg` must point to a live [`Waiter`].
unsafe extern "C" fn primary_can_go(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<Waiter<'_>>() };
    let mut st = w.group.lock();
    st.trim_ring();
    st.closed || st.ring.is_low() || st.dups.iter().flatten().next().is_none()
}

/// Whether the primary waiting to repair a page (in `arg`, a [`Waiter`])
/// can go on: a ready duplicate waits for the record the primary is about
/// to make (it is at the same point of the program), or none is left.
///
/// # Safety
///
/// `arg` must point to a live [`Waiter`].
unsafe extern "C" fn dup_in_step(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<Waiter<'_>>() };
    let st = w.group.lock();
    let head = st.ring.head();
    let mut live = st.dups.iter().flatten().filter(|d| d.ready && !d.leaving);
    st.closed || live.clone().next().is_none() || live.any(|d| d.waiting_for == Some(head))
}

/// The primary's task_work when one of its pages is on a failed frame:
/// wait for a duplicate in the same state, then take that duplicate's copy
/// of the page on a fresh frame.
pub(crate) fn repair(group: &Group) {
    let w = Waiter { group };
    // Ready duplicates not at the primary's point lag.
    let waited = group::wait_for_dups(
        group,
        "to restore a page",
        dup_in_step,
        core::ptr::from_ref(&w).cast(),
        |d, head, _| d.ready && d.waiting_for != Some(head),
    );
    if waited.is_err() {
        return;
    }
    let (damage, from) = {
        let mut st = group.lock();
        let head = st.ring.head();
        let from = st
            .dups
            .iter()
            .flatten()
            .find(|d| d.ready && !d.leaving && d.waiting_for == Some(head))
            .map(|d| d.task.clone());
        (st.repair.take(), from)
    };
    let (Some((addr, pfn)), Some(from)) = (damage, from) else {
        pr_warn!(
            "pid {}: no duplicate in step to restore the primary's page from\n",
            group.pid()
        );
        return;
    };
    match shim::repair_page(addr, pfn, &from) {
        Ok(()) => {
            group.lock().counters.failovers += 1;
            events::emit(
                group.pid(),
                What::Restore {
                    from: from.tgid_nr_ns(None),
                    addr: addr as u64,
                    frame: pfn as u64,
                },
            );
            pr_info!(
                "pid {}: page {:#x} restored on a fresh frame from duplicate {}; frame {:#x} \
                 retired\n",
                group.pid(),
                addr,
                from.tgid_nr_ns(None),
                pfn
            );
        }
        Err(e) => pr_warn!(
            "pid {}: restoring page {:#x} from duplicate {} failed ({:?})\n",
            group.pid(),
            addr,
            from.tgid_nr_ns(None),
            e
        ),
    }
}

/// A duplicate's task_work: take the primary's record of call `nr`.
fn consume(group: &Group, task: &Task, nr: i64, args: &[usize; 6]) {
    let mut lap = Lap::start();
    // Its vote, should the primary put this call to one.
    let hash = hash_input(nr, args, None).ok().map(|h| h.hash);
    lap.lap(Section::DupVoteHash);
    let waited = wait_record(group, task, nr, args, hash);
    lap.lap(Section::DupWait);
    let took = waited.is_ok() && take(group, task, nr, args, hash, Take::Waited);
    lap.lap(Section::DupTake);
    if waited.is_ok() && !took {
        // Let go of (leaving, or the group closing): its kill follows.
        group.await_kill();
    }
}

/// A duplicate waits (killable) until the primary's record of its next
/// call (`nr`, `args`, bytes hashed to `hash`) is published, or it is to
/// die; meanwhile it stands at that call, with its vote.
pub(crate) fn wait_record(
    group: &Group,
    task: &Task,
    nr: i64,
    args: &[usize; 6],
    hash: Option<u64>,
) -> Result {
    let tgid = task.tgid();
    let mut w = DupWaiter {
        group,
        tgid,
        tid: task.pid(),
        seq: u64::MAX,
    };
    // The primary's thread whose records it takes, once there are several.
    let mut key = None;
    let mut polls = false;
    // Whether the primary may leave it asleep for a while (see
    // [`group::LAZY_RECORDS`]).
    let mut lazy = false;
    {
        // Its own wait: nothing for the primary's next call to do.
        let mut st = group.lock_quiet();
        if let Some(d) = st.dup_mut(tgid) {
            polls = d.poll.polls();
            lazy = d.threads.is_some();
            w.seq = d.next_seq;
            key = threads::mirrored(d, w.tid);
            threads::stands(d, w.tid, nr);
            d.waiting_for = Some(d.next_seq);
            // Woken for falling behind again, if it does.
            d.lazy_woken = false;
            d.vote = Some(Vote {
                nr,
                args: *args,
                hash: hash.unwrap_or(u64::MAX),
            });
        }
    }
    // The primary may be waiting for a duplicate to stop here (the other
    // threads of duplicates wait for records, not for this).
    group.wake_only(shim::Wake::Unkeyed);
    let arg = core::ptr::from_ref(&w).cast();
    // How its unbounded wait ended (`None`: it took none, or how its poll
    // went is not known).
    let mut how = None;
    let waited = loop {
        // Standing here, it separates its memory while the record is not
        // there (a step, if it is): one step at a time, whichever of its
        // threads waits.
        replica::separate(group, task);
        if !replica::separating(group, tgid) {
            // The record comes from the primary's thread it mirrors, or
            // from the primary (its first thread's global id is the tgid).
            let owner = key.unwrap_or_else(|| group.tgid());
            let ready = polls.then_some((dup_record_ready as DupCheck, owner));
            // A wait without a bound in a multi-threaded duplicate, noted
            // so that the primary wakes it at each record of its key (0:
            // at each record).
            let unbounded = |ready| {
                group::while_unbounded(group, tgid, key.unwrap_or(0), || {
                    group.wq.wait_killable(dup_can_go, ready, arg, key, false)
                })
            };
            // (`None`: how its poll went is not known.)
            let waited = match (lazy, key) {
                (false, _) => group
                    .wq
                    .wait_killable(dup_can_go, ready, arg, key, false)
                    .map(Some),
                (true, None) => unbounded(ready).map(Some),
                (true, Some(_)) => {
                    match group.wq.wait_killable(dup_can_go, ready, arg, key, true) {
                        // Not woken within a tick: it sleeps on without a
                        // bound, and the primary wakes it at its next record.
                        // How its poll went is lost with the timeout: the
                        // wait counts for nothing in `d.poll` then.
                        Err(e) if e == ETIMEDOUT => unbounded(None).map(|_| None),
                        waited => waited.map(Some),
                    }
                }
            };
            how = waited.as_ref().ok().copied().flatten();
            break waited.map(|_| ());
        }
        // Steps held back, or one failed: back to them after a while,
        // unless the record comes first. (Counted as a wait without a
        // bound in a multi-threaded duplicate, so that the primary wakes
        // it at each record, as [`group::LAZY_RECORDS`] does not.)
        let retry = || {
            group
                .wq
                .wait_killable_timeout(dup_can_go, arg, replica::RETRY_MS)
        };
        let waited = if lazy {
            group::while_unbounded(group, tgid, 0, retry)
        } else {
            retry()
        };
        match waited {
            Err(e) if e == ETIMEDOUT => {}
            done => break done,
        }
    };
    {
        let mut st = group.lock_quiet();
        if let Some(d) = st.dup_mut(tgid) {
            d.waiting_for = None;
            d.vote = None;
            if let Some(how) = how {
                d.poll.waited(polls, how);
            }
        }
    }
    waited
}

/// The published record the duplicate `tgid` of `group` takes next, and
/// its position in the ring; `None` if it is not published yet, or the
/// duplicate is to die.
fn next_record(group: &Group, task: &Task) -> Option<(Arc<Record>, u64)> {
    let mut st = group.lock_quiet();
    let (d, record) = st.dup_and_next(task.tgid())?;
    let record = record.filter(|_| !d.leaving)?;
    // Not another thread's turn ([`threads`]).
    threads::may_take(d, record, task.pid()).then(|| (record.clone(), d.next_seq))
}

/// Whether the calling duplicate makes the call `record` holds (`nr` with
/// `args`); if not, it has diverged and is replaced.
fn same_call(group: &Group, task: &Task, record: &Record, nr: i64, args: &[usize; 6]) -> bool {
    let same = record.nr == nr && record.args == *args;
    if !same {
        diverge(
            group,
            task,
            format_args!(
                "it made {} where the primary made {}",
                Call(nr, args),
                Call(record.nr, &record.args)
            ),
        );
    }
    same
}

/// At a duplicate's `sys_enter` of call `nr` that changes its address-space
/// layout ([`syscalls::reshapes`]): if the primary's record of it is
/// published, checks it (a different call is a divergence) and moves past
/// it; the duplicate then makes the call itself. False if the record is
/// not published yet (or the duplicate is to die): it waits for it first.
fn follow(group: &Group, task: &Task, nr: i64, args: &[usize; 6]) -> bool {
    let tgid = task.tgid();
    let Some((record, _)) = next_record(group, task) else {
        return false;
    };
    if !same_call(group, task, &record, nr, args) {
        return true;
    }
    replay_signal(&record.signal);
    if nr == NR_MREMAP && record.ret >= 0 {
        // Its own mremap() lands where the primary's did.
        replica::moved(group, task, record.ret as usize);
    }
    // Let go of it first: the last duplicate to consume it then puts it
    // back in the ring's pool.
    drop(record);
    let wake = {
        let mut st = group.lock_quiet();
        if let Some(d) = st.dup_mut(tgid) {
            d.next_seq += 1;
            threads::took(d, task.pid());
        }
        consumed(&mut st)
    };
    if wake {
        group.wake_only(shim::Wake::Unkeyed);
    }
    true
}

/// After a duplicate consumed a record (under the group's lock): drops
/// what every duplicate consumed; whether the primary may be waiting for
/// this duplicate to get where it is now. A primary waiting for room in
/// the ring waits until the ring is low: it is woken once, then, not for
/// every record. (The duplicates drop the records, not the primary: that
/// work is then off the primary's path.)
pub(crate) fn consumed(st: &mut group::State) -> bool {
    st.trim_ring();
    !st.space_wait || st.ring.is_low()
}

/// Where a duplicate [`take`]s a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// At its `sys_enter`, not waiting (not while it separates its memory:
    /// it takes its records in its task_work then, see [`dup_enter`]).
    Enter,
    /// The same, at a call that gives the run token up in the primary
    /// (`threads::dup_gives_up`): one of its several threads gives it up
    /// first, in the same critical section. If it takes no record, the
    /// thread of the next one, another, may go on: it is woken.
    GiveUp,
    /// Once it waited for it, or in its task_work.
    Waited,
}

/// Takes the primary's record of call `nr` if it is published, checking
/// that the caller would have sent the same bytes (`whole`: their hash
/// before the call, if the caller has it already). Returns false,
/// changing nothing (but the run token, given up as `how` says), if it is
/// not (or the duplicate is to die), or if the duplicate is still
/// separating its memory and `how` is not [`Take::Waited`].
fn take(
    group: &Group,
    task: &Task,
    nr: i64,
    args: &[usize; 6],
    whole: Option<u64>,
    how: Take,
) -> bool {
    let tgid = task.tgid();
    // The primary's thread whose record is next, to wake.
    let mut next = None;
    let taken = take_locked(group, task, nr, args, how, &mut next);
    if let Some(tid) = next {
        group.wake_only(shim::Wake::for_record(tid));
    }
    let (record, seq) = match taken {
        Taken::No => return false,
        Taken::Done => return true,
        Taken::Record(record, seq) => (record, seq),
    };
    if !same_call(group, task, &record, nr, args) {
        return true;
    }
    let mut lap = Lap::start();
    if let Some(h) = record.input_hash {
        // As far as the kernel read for the primary.
        let ours = hash_after(nr, args, record.ret, whole).ok().map(|h| h.hash);
        if ours != Some(h) {
            diverge(
                group,
                task,
                format_args!(
                    "{} with other bytes than the primary's (hash {:#x}, the primary's {:#x})",
                    Call(nr, args),
                    ours.unwrap_or(0),
                    h
                ),
            );
            return true;
        }
    }
    lap.lap(Section::TakeHash);
    let written = record.write_outputs();
    lap.lap(Section::TakeWrite);
    if let Err(output) = written {
        cannot_write(group, task, nr, args, output);
        return true;
    }
    set_result(nr, record.ret);
    replay_signal(&record.signal);
    // Let go of it first: the last duplicate to consume it then puts it
    // back in the ring's pool.
    drop(record);
    let wake = {
        let mut st = group.lock_quiet();
        if let Some(d) = st.dup_mut(tgid) {
            d.next_seq = seq + 1;
            threads::took(d, task.pid());
        }
        consumed(&mut st)
    };
    if wake {
        group.wake_only(shim::Wake::Unkeyed);
    }
    true
}

/// What [`take_locked`] did.
enum Taken {
    /// No record taken.
    No,
    /// The record taken whole.
    Done,
    /// The record to take (at this position in the ring) once the lock is
    /// dropped.
    Record(Arc<Record>, u64),
}

/// [`take`]'s critical section. A record that needs nothing checked in
/// the duplicate's memory, and nothing or a few bytes written into it, is
/// taken here whole. `next`: set to the primary's thread whose record is
/// next when a thread gave the run token up and took no record.
fn take_locked(
    group: &Group,
    task: &Task,
    nr: i64,
    args: &[usize; 6],
    how: Take,
    next: &mut Option<Pid>,
) -> Taken {
    let (tgid, tid) = (task.tgid(), task.pid());
    // Taking a record leaves the primary nothing to do.
    let mut guard = group.lock_quiet();
    let st = &mut *guard;
    let Some((d, record)) = st.dup_and_next(tgid) else {
        return Taken::No;
    };
    let gave = how == Take::GiveUp && threads::dup_gives_up(d, tid);
    let seq = d.next_seq;
    let may = !d.leaving
        && (d.separating.is_none() || how == Take::Waited)
        && record.is_some_and(|r| d.threads.is_none() || threads::may_take(d, r, tid));
    let Some(record) = record.filter(|_| may) else {
        if gave {
            // Another thread of the duplicate may go on: the next record's.
            *next = record
                .map(|r| r.tid)
                .filter(|&t| threads::mirrored(d, tid) != Some(t));
        }
        return Taken::No;
    };
    if record.nr != nr
        || record.args != *args
        || record.signal.is_some()
        || syscalls::input(nr).is_some()
    {
        return Taken::Record(record.clone(), seq);
    }
    let Some(inline) = record.inline() else {
        return Taken::Record(record.clone(), seq);
    };
    // Nothing to check in the duplicate's memory, and nothing or a few
    // bytes (copied here) to write into it.
    let (ret, inline) = (record.ret, record.has_outputs().then_some(*inline));
    d.next_seq = seq + 1;
    threads::took(d, tid);
    let wake = consumed(st);
    drop(guard);
    if wake {
        group.wake_only(shim::Wake::Unkeyed);
    }
    if let Some(Err(output)) = inline.map(|i| i.write()) {
        cannot_write(group, task, nr, args, output);
        return Taken::Done;
    }
    set_result(nr, ret);
    Taken::Done
}

/// A duplicate cannot write the output of the primary's call `nr` into its
/// memory at the same address: it has diverged.
fn cannot_write(group: &Group, task: &Task, nr: i64, args: &[usize; 6], output: Output) {
    diverge(
        group,
        task,
        format_args!(
            "{}: it cannot take the primary's {} bytes at {:#x}",
            Call(nr, args),
            output.len,
            output.addr
        ),
    );
}

/// Sends the calling duplicate the signal a record carries, if it does:
/// handled on the way back to user space, as in the primary.
pub(crate) fn replay_signal(signal: &Option<(i32, shim::SigInfo)>) {
    if let Some((sig, info)) = signal {
        let _ = shim::send_self(*sig, info);
    }
}

/// Gives the calling duplicate, at its call `nr`, the result `ret` of the
/// primary's.
fn set_result(nr: i64, ret: isize) {
    if nr == syscalls::NR_PREEMPTED {
        // Not a call: the thread goes on with the registers it has.
        return;
    }
    if ret == ERESTART_RESTARTBLOCK {
        // The primary's call was interrupted and goes on as
        // restart_syscall(), whose record comes next.
        shim::restart_call(NR_RESTART_SYSCALL);
    } else if is_restart(ret) {
        // The primary's call was interrupted and is made again.
        shim::restart_call(nr);
    } else {
        shim::set_return(ret);
    }
}

/// A system call and its six argument registers, as log lines show it:
/// `close(0x3, 0x0, 0x7ffc5ab0, 0x0, 0x0, 0x0)`. Every register is shown,
/// because every one is compared.
pub(crate) struct Call<'a>(pub(crate) i64, pub(crate) &'a [usize; 6]);

impl core::fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.1;
        if self.0 == syscalls::NR_RDTSC {
            return f.write_str(if a[0] != 0 { "rdtscp" } else { "rdtsc" });
        }
        write!(
            f,
            "{}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
            syscalls::name(self.0),
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5]
        )
    }
}

/// The calling duplicate disagrees with the primary (`how`: both calls,
/// with their arguments): count it, log it, and let it die (it is then
/// replaced like any lost duplicate).
pub(crate) fn diverge(group: &Group, task: &Task, how: core::fmt::Arguments<'_>) {
    let hit = {
        let mut st = group.lock();
        let hit = st.dup_mut(task.tgid()).is_some_and(|d| d.hit.is_some());
        st.counters.divergences += u64::from(!hit);
        hit
    };
    if hit {
        // A memory error hit it, and the program's SIGBUS handler ran.
        pr_info!(
            "pid {}: duplicate {}, hit by a memory error, went its own way ({}); replacing it\n",
            group.pid(),
            task.tgid_nr_ns(None),
            how
        );
        shim::kill(task);
        return;
    }
    events::emit(
        group.pid(),
        What::Divergence {
            replica: task.tgid_nr_ns(None),
        },
    );
    pr_info!(
        "pid {}: duplicate {} diverged ({}); replacing it\n",
        group.pid(),
        task.tgid_nr_ns(None),
        how
    );
    shim::kill(task);
}

/// The primary's task_work when the ring is full: waits (killable, and
/// bounded by the lag timeout) until it is low again, or no duplicate
/// needs it.
pub(crate) fn wait_space(group: &Group) {
    let w = Waiter { group };
    // Those holding the oldest record the ring keeps lag.
    let _ = group::wait_for_dups(
        group,
        "for room in the ring",
        primary_can_go,
        core::ptr::from_ref(&w).cast(),
        |d, _, oldest| !d.parked && d.next_seq == oldest,
    );
    group.lock().space_wait = false;
}

/// Runs in a replica on its way back to user space (or as it exits), for
/// whatever its probe queued while in system call `nr`; `dup` as for
/// [`sys_enter`] ([`crate::hooks`]).
pub(crate) fn task_work(nr: i64, dup: bool) {
    let task = current!();
    if let Some(group) = (!dup).then(|| group::lookup(task.tgid())).flatten() {
        let threaded = group.threaded();
        if threaded && shim::is_exiting(task) {
            // A thread's exit ([`threads::primary_exit`]).
            threads::gone(&group);
            return;
        }
        if group.lock().promote.is_some() {
            failover::promote(&group, task);
            return;
        }
        let work = {
            let mut st = group.lock();
            let work = core::mem::take(&mut st.work);
            st.space_wait = matches!(work, PrimaryWork::WaitSpace(_));
            work
        };
        if threaded {
            // Its waits here are not a thread running on.
            threads::holder_waits(&group, true);
        }
        match work {
            PrimaryWork::None => {}
            PrimaryWork::Vote(mine) => vote::tally(&group, task, mine),
            PrimaryWork::Repair(nr) => {
                repair(&group);
                shim::restart_call(nr);
            }
            PrimaryWork::Held(record) => {
                // The page is mended from a duplicate in the state before
                // this call; the call's own writes are then made again on
                // top.
                repair(&group);
                let _ = record.write_outputs();
                group::publish(&group, record);
            }
            PrimaryWork::FdBarrier { nr, lo, hi } => fd_barrier(&group, nr, lo, hi),
            PrimaryWork::WaitSpace(nr) => {
                wait_space(&group);
                // Made again (and waiting again if the ring is still
                // full), unless a fatal signal ends the task first.
                shim::restart_call(nr);
            }
            PrimaryWork::Trap => tsc::primary_wait(&group),
        }
        if threaded {
            threads::holder_waits(&group, false);
        }
        return;
    }
    let Some(group) = dup.then(|| group::lookup_dup(task.tgid())).flatten() else {
        if shim::syscall_nr() == -1 && nr >= 0 {
            // A primary whose protection ended (or whose module is being
            // unloaded) after procft held its call back: the call is
            // made, as if procft had never been there. (A duplicate is
            // only ever forgotten once it is killed: it never returns to
            // user space to make it.)
            shim::restart_call(nr);
        }
        return;
    };
    let work = {
        // Nothing for the primary's next call: a parked duplicate matters
        // only to an append, which looks for it under the lock itself.
        let mut st = group.lock_quiet();
        let Some(d) = st.dup_mut(task.tgid()) else {
            return;
        };
        let work = match threads::work_of(d, task.pid()) {
            (Some(slot), _) => core::mem::replace(slot, DupWork::None),
            // A new thread, before its creator noted it.
            (None, _) if task.pid() != task.tgid() => DupWork::Start,
            (None, _) => return,
        };
        if work == DupWork::Park {
            d.parked = true;
        }
        work
    };
    match work {
        DupWork::None => {}
        DupWork::Birth => replica::birth(&group, task),
        DupWork::Consume { nr, args } => consume(&group, task, nr, &args),
        DupWork::Follow { nr, args } => {
            // Once the primary has made it, make it again (the record is
            // then taken at its sys_enter, by `follow`).
            if wait_record(&group, task, nr, &args, None).is_ok() {
                if next_record(&group, task).is_some() {
                    shim::restart_call(nr);
                } else {
                    // Let go of (leaving, or the group closing).
                    group.await_kill();
                }
            }
        }
        DupWork::Trap { rdtscp } => tsc::dup_wait(&group, task, rdtscp),
        DupWork::Start => threads::dup_start(&group, task),
        DupWork::Adopt(i) => threads::adopt(&group, task, i),
        DupWork::ThreadExit { args } => threads::dup_exit(&group, task, &args),
        DupWork::Park => {
            // The primary's exit or exec will kill it.
            group.wake();
            let _ = group
                .wq
                .wait_killable(group::never, None, core::ptr::null(), None, false);
        }
    }
}

const _: () = assert!(CAPACITY > 0);

#[kunit_tests(procft_hash)]
mod tests {
    use super::Hash;

    fn hash_of(pieces: &[&[u8]]) -> u64 {
        let mut h = Hash::new();
        for p in pieces {
            h.write(p);
        }
        h.finish()
    }

    #[test]
    fn any_split_gives_the_same_hash() {
        let mut bytes = [0u8; 100];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let whole = hash_of(&[&bytes]);
        for cut in 0..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(hash_of(&[a, b]), whole);
            let (b1, b2) = b.split_at(b.len() / 3);
            assert_eq!(hash_of(&[a, b1, &[], b2]), whole);
        }
    }

    #[test]
    fn different_bytes_differ() {
        let bytes = [0x5au8; 100];
        let whole = hash_of(&[&bytes]);
        for i in 0..bytes.len() {
            let mut other = bytes;
            other[i] ^= 1;
            assert_ne!(hash_of(&[&other]), whole);
        }
        // Trailing zero bytes, and where the bytes stopped, count.
        assert_ne!(hash_of(&[&[0; 3]]), hash_of(&[&[0; 4]]));
        assert_ne!(hash_of(&[&[0; 32]]), hash_of(&[&[0; 31]]));
        assert_ne!(hash_of(&[]), hash_of(&[&[0]]));
        let mut a = Hash::new();
        a.write(&bytes[..40]);
        a.mark(0xff, 40);
        assert_ne!(a.finish(), hash_of(&[&bytes[..40]]));
    }
}

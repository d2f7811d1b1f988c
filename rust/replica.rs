// SPDX-License-Identifier: GPL-2.0

//! Duplicates: their creation at a system-call boundary of the primary,
//! the separation of their memory, and their loss.
//!
//! Life of a duplicate:
//!
//! 1. At a `sys_enter` of the primary, if the group has fewer duplicates
//!    than its level, the call is turned into `clone3()` with
//!    [`DUP_CLONE`]: the child shares the descriptor table and cwd, has
//!    exit signal 0 and `CLONE_AUTOREAP`, so it never shows up in anyone's
//!    `wait()`.
//! 2. The fork probe (in the primary, before the child can run) indexes the
//!    child as a duplicate and gives it a copy of the primary's registers.
//! 3. At the `sys_exit` of the `clone3()`, the primary's registers are
//!    restored and its original call is made afresh; the child's first
//!    `sys_exit` does the same, so both stand before the same call.
//! 4. It then runs in step with the primary ([`crate::sync`]), starting
//!    with the call the primary was making.
//! 5. Meanwhile, between the records it takes, it gives itself its own
//!    copy of every anonymous page it shares with the primary, a step at a
//!    time ([`separate`]); once done it is ready: counted in the level,
//!    able to take over and to vote.
//!
//! A duplicate that dies without procft asking (SIGKILL, a memory error)
//! is replaced at the primary's next system call and counted in `respawns`.

pub(crate) mod threads;

use kernel::{
    bindings,
    ffi::c_void,
    impl_has_delayed_work, new_delayed_work,
    prelude::*,
    rbtree::RBTreeNodeReservation,
    sync::Arc,
    task::{Pid, Task},
    time::{msecs_to_jiffies, ClockSource, Monotonic},
    workqueue::{self, DelayedWork, WorkItem},
};

use crate::{
    events::{self, What},
    group::{self, Group, Spawn},
    ring::CAPACITY,
    shim::{self, Regs, SavedRegs},
    types::DupWork,
};

/// How a duplicate is created: it shares the primary's descriptor table
/// and cwd (`CLONE_FILES | CLONE_FS`: a promoted duplicate keeps them), is
/// invisible to `wait()` and never a zombie (exit signal 0 and
/// `CLONE_AUTOREAP`), and is not traced with the primary
/// (`CLONE_UNTRACED`). Everything else is copied, memory included, which
/// the duplicate then separates ([`separate`]).
const DUP_CLONE: bindings::clone_args = bindings::clone_args {
    flags: (bindings::CLONE_FILES | bindings::CLONE_FS | bindings::CLONE_UNTRACED) as u64
        | bindings::CLONE_AUTOREAP,
    pidfd: 0,
    child_tid: 0,
    parent_tid: 0,
    exit_signal: 0,
    stack: 0,
    stack_size: 0,
    tls: 0,
    set_tid: 0,
    set_tid_size: 0,
    cgroup: 0,
};

/// Consecutive failed creations after which the group stops trying until
/// its level is set again.
const MAX_SPAWN_FAILURES: u32 = 8;

/// Whether the group should create a duplicate at its primary's next
/// system call. Never from a primary known to have lost a page: the copy
/// would carry the poisoned entry. It is mended (or replaced) first.
pub(crate) fn wants(st: &group::State) -> bool {
    !st.closed
        && !group::stopping()
        && st.repair.is_none()
        && st.promote.is_none()
        && matches!(st.spawn, Spawn::Idle)
        && st.nr_dups() < st.level as usize
        && st.spawn_failures < MAX_SPAWN_FAILURES
        // Not before every thread of a process multi-threaded when its
        // protection began is under the token.
        && st.threads.as_ref().is_none_or(|t| t.nr_joining == 0)
        // Nor while re-creations after signal handlers are held back.
        && !st.resyncs.holds(Monotonic::ktime_get)
}

/// The work item that makes the duplicates [`group::Resync`] held back,
/// once their hold is over, for a primary that does not come to a system
/// call by itself (blocked in one, or computing): one for the module,
/// queued for the end of a hold, and again from its run while a hold is
/// left. A hold that ends before a run queued earlier waits for that run
/// (1 s at most, [`group::Resync::MAX_HOLD_NS`]).
#[pin_data]
struct HoldWorker {
    #[pin]
    work: DelayedWork<HoldWorker>,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for HoldWorker { self.work }
}

impl WorkItem for HoldWorker {
    type Pointer = Arc<HoldWorker>;

    fn run(_this: Arc<HoldWorker>) {
        let now = Monotonic::ktime_get();
        let mut next: Option<i64> = None;
        // (Not under the registry's lock, which interrupts may take:
        // `hurry` looks at the primary's files, under its task lock.)
        let groups = group::all();
        if groups.is_empty() && group::stats().nr_groups > 0 {
            // No memory for the list: again in 10 ms.
            next = Some(now + 10_000_000);
        }
        for group in groups {
            let end = group.lock_quiet().resyncs.end();
            match end {
                Some(t) if t <= now => hurry(&group),
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        if let Some(t) = next {
            queue_hold(t - now);
        }
    }
}

kernel::sync::global_lock! {
    // SAFETY: `Holds::init` initialises the lock in module init, before
    // any other use.
    unsafe(uninit) static HOLDS: SpinLock<Option<Arc<HoldWorker>>> = None;
}

/// The module's [`HoldWorker`], from module init to module exit.
pub(crate) struct Holds(());

impl Holds {
    /// Makes the worker. Must be called exactly once, from module init,
    /// before any hook that may queue it is registered.
    pub(crate) fn init() -> Result<Self> {
        // SAFETY: Called once, from module init, before any other use.
        unsafe { HOLDS.init() };
        let worker = Arc::pin_init(
            pin_init!(HoldWorker { work <- new_delayed_work!("procft_hold") }),
            GFP_KERNEL,
        )?;
        *HOLDS.lock() = Some(worker);
        Ok(Self(()))
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        // Nothing queues it from here on (the hooks are gone, and
        // `queue_hold` finds no worker); a run queued or running is
        // cancelled or waited for, and the work is left disabled, so a run
        // that queues itself again fails (`Err`, its reference given back).
        let worker = HOLDS.lock().take();
        if let Some(worker) = worker {
            // SAFETY: `worker.work` is an initialised delayed work, kept
            // alive by `worker` for the call; `work` is the first member
            // of `struct delayed_work`, so a pointer to it points to the
            // `delayed_work`.
            let pending = unsafe {
                bindings::disable_delayed_work_sync(
                    DelayedWork::raw_as_work(&worker.work).cast::<bindings::delayed_work>(),
                )
            };
            if pending {
                // SAFETY: A queued run held the reference `enqueue_delayed`
                // made with `Arc::into_raw` (the pointer `Arc::as_ptr`
                // gives); it was cancelled, so its `run` never takes it
                // back: this does.
                drop(unsafe { Arc::from_raw(Arc::as_ptr(&worker)) });
            }
        }
    }
}

/// Queues the [`HoldWorker`] to run in `ns` nanoseconds (unless it is
/// queued already, or the module is leaving).
pub(crate) fn queue_hold(ns: i64) {
    let Some(worker) = HOLDS.lock().clone() else {
        return;
    };
    let ms = u32::try_from(ns.max(0) / 1_000_000 + 1).unwrap_or(u32::MAX);
    // Already queued (`Err`): that run looks at this hold too.
    let _ = workqueue::system_unbound().enqueue_delayed(worker, msecs_to_jiffies(ms));
}

/// Counts a failed attempt to make a duplicate of `group` (`st`, its
/// state, locked), and says so once the group stops trying
/// ([`MAX_SPAWN_FAILURES`] in a row). No sleeping.
pub(crate) fn spawn_failed(group: &Group, st: &mut group::State) {
    st.spawn_failures += 1;
    if st.spawn_failures == MAX_SPAWN_FAILURES {
        pr_warn!(
            "pid {}: no duplicate made in {} attempts in a row; procft stops trying until \
             the level is set again\n",
            group.pid(),
            MAX_SPAWN_FAILURES
        );
    }
}

/// If `group` lacks a duplicate, brings its primary to a system-call
/// boundary now ([`interrupt_blocked`]), where [`maybe_spawn`] creates the
/// duplicate, rather than when its call returns, which may be much later.
/// A primary blocked in another call gets its duplicates when the call
/// returns. Safe in atomic context.
pub(crate) fn hurry(group: &Group) {
    if wants(&group.lock()) {
        group.interrupt_blocked();
    }
}

/// At a `sys_enter` of `group`'s primary: if the group wants another
/// duplicate, turns this call into its creation.
pub(crate) fn maybe_spawn(group: &Arc<Group>, regs: Regs) {
    if !wants(&group.lock()) {
        return;
    }
    // Before any duplicate exists: each one inherits the rewritten vDSO.
    crate::determinism::route_vdso(group);
    // Its counter reads trap from now on; the duplicate inherits that.
    crate::determinism::trap_tsc();
    let Ok(reservation) = RBTreeNodeReservation::new(GFP_KERNEL) else {
        return;
    };
    // Only the thread holding the run token of a multi-threaded primary
    // makes one (another one's call, made again after a kick, comes
    // before it has the token).
    let me = current!().pid();
    if group
        .lock()
        .threads
        .as_ref()
        .is_some_and(|t| t.token != Some(me))
    {
        return;
    }
    // A multi-threaded primary's other threads, which the duplicate
    // re-creates ([`threads`]). They wait for the token meanwhile, and
    // for its return from the fork.
    group::threads::holder_waits(group, true);
    let images = match threads::images(group) {
        Ok(images) => images,
        Err(why) => {
            group::threads::holder_waits(group, false);
            spawn_failed(group, &mut group.lock());
            pr_info!(
                "pid {}: no duplicate made at this call: {}\n",
                group.pid(),
                why
            );
            return;
        }
    };
    {
        let mut st = group.lock();
        if !wants(&st) {
            drop(st);
            drop(images);
            group::threads::holder_waits(group, false);
            return;
        }
        st.spawn = Spawn::Injected(reservation);
        st.images = images;
        st.resyncs.started();
    }
    // Writing the clone3 arguments may fault: outside the lock.
    let mut saved = SavedRegs([0; 32]);
    let injected = shim::inject_clone(regs, &DUP_CLONE, &mut saved);
    let mut st = group.lock();
    let images = match injected {
        Ok(()) => {
            st.saved = saved;
            None
        }
        Err(_) => {
            st.spawn = Spawn::Idle;
            spawn_failed(group, &mut st);
            st.images.take()
        }
    };
    drop(st);
    if images.is_some() {
        drop(images);
        group::threads::holder_waits(group, false);
    }
}

/// Fork probe (must not sleep): `parent`, a thread of a protected
/// primary, created thread `child`. In a multi-threaded group it counts
/// ([`group::threads::forked`]). A creation procft saw at its `sys_enter`
/// made the group multi-threaded there ([`crate::sync::threads`]); one it
/// did not see in a single-threaded group (a `clone` begun before the
/// protection, and held since, in a seccomp notification say) leaves a
/// single-threaded group with two threads, which its duplicates cannot
/// follow: protection ends.
fn primary_thread(parent: &Task, child: &Task) {
    let Some(group) = group::lookup(parent.tgid()) else {
        return;
    };
    if !group.threaded() {
        group::end_protection(&group, "a thread created as its protection began");
    } else if !group::threads::forked(&mut group.lock(), parent.pid(), child.pid()) {
        group::end_protection(&group, "a thread beyond procft's limit");
    }
}

/// Fork probe: `parent` (a protected primary) created `child`. If this is
/// the `clone3()` procft injected, `child` becomes a duplicate.
pub(crate) fn on_fork(parent: &Task, child: &Task) {
    if child.tgid() == parent.tgid() {
        // A thread ([`crate::sync::threads`]): it shares its process's
        // state, memory-error policy included. A new duplicate's may be
        // one it makes for a thread of the primary.
        if !threads::forked(parent, child) {
            primary_thread(parent, child);
        }
        return;
    }
    let Some(group) = group::lookup(parent.tgid()) else {
        return;
    };
    let reservation = {
        let mut st = group.lock();
        match core::mem::replace(&mut st.spawn, Spawn::Forked(child.into())) {
            Spawn::Injected(r) => r,
            other => {
                // The primary's own fork: its child is not protected.
                st.spawn = other;
                drop(st);
                crate::mce::policy::on_fork(&group, child);
                return;
            }
        }
    };
    if group::add_dup(&group, reservation, child) {
        // A memory error on a frame it shares with the primary kills it
        // at once, even before it first runs, when it may already be
        // chosen to take over ([`group::Dup::may_succeed`]); its birth
        // sets the same policy again, as its own.
        shim::set_child_mce_policy(child, crate::mce::PR_MCE_KILL_EARLY);
    } else {
        // Untracked, it must never run user code; it dies before it does.
        shim::kill(child);
    }
}

/// `sys_exit` of the primary: if this is the return of the `clone3()`
/// procft injected, restores the primary's call so that it is made
/// afresh, and returns true.
pub(crate) fn primary_spawn_exit(group: &Group, regs: Regs, ret: isize) -> bool {
    let (saved, child, images, failed) = {
        let mut st = group.lock();
        let child = match core::mem::replace(&mut st.spawn, Spawn::Idle) {
            Spawn::Idle => return false,
            Spawn::Injected(_) => None,
            Spawn::Forked(child) => Some(child),
        };
        // A child the fork probe could not index, or one already leaving,
        // is dying: nothing to finish.
        let child = child
            .filter(|c| ret > 0 && !st.closed && st.dup_mut(c.tgid()).is_some_and(|d| !d.leaving));
        if child.is_none() {
            spawn_failed(group, &mut st);
        }
        // Images no duplicate took (the fork probe did not run).
        (
            st.saved,
            child,
            st.images.take(),
            ret < 0 && !crate::syscalls::is_restart(ret),
        )
    };
    drop(images);
    if failed {
        // The call itself failed: a limit on the number of tasks, or
        // memory. (A seccomp filter never sees it: the primary's call
        // became this clone3() after the filter checked it.)
        pr_info!(
            "pid {}: no duplicate made at this call: its clone3() failed ({})\n",
            group.pid(),
            ret
        );
    }
    if let Some(child) = child {
        finish_spawn(group, &child, ret);
    }
    group::threads::holder_waits(group, false);
    shim::regs_restart(regs, &saved);
    true
}

/// In the primary's return from the `fork()` that made duplicate `child`
/// (`ret`, its pid as the primary sees it): copies the primary's
/// wipe-on-fork memory into it, which fork() left empty, and lets it run
/// ([`birth`] waits for this); a duplicate that did not get it is
/// replaced, the failure counted against further attempts.
fn finish_spawn(group: &Group, child: &Task, ret: isize) {
    let copied = shim::copy_wipeonfork(child);
    let mut respawned = false;
    let kills = {
        let mut st = group.lock();
        match copied {
            Ok(()) => {
                // (A duplicate of a multi-threaded process succeeds once
                // its threads are made: [`threads::built`].)
                if st.dup(child.tgid()).is_some_and(|d| d.images.is_none()) {
                    st.spawn_failures = 0;
                }
                if st.lost > 0 {
                    st.lost -= 1;
                    st.counters.respawns += 1;
                    respawned = true;
                }
                if let Some(d) = st.dup_mut(child.tgid()) {
                    d.wiped = true;
                }
                group::Kills::none()
            }
            Err(_) => {
                spawn_failed(group, &mut st);
                // Not a loss: its replacement is the next attempt.
                st.retire(child.tgid())
            }
        }
    };
    kills.send();
    // It waits for `wiped` before its first user instruction.
    group.wake();
    if let Err(e) = copied {
        pr_warn!(
            "pid {}: could not copy wipe-on-fork memory into duplicate {} ({:?}); it is replaced\n",
            group.pid(),
            ret,
            e
        );
    }
    if respawned {
        events::emit(
            group.pid(),
            What::Respawn {
                replica: ret as Pid,
            },
        );
    }
}

/// First `sys_exit` of a duplicate (from `ret_from_fork`): take the
/// primary's registers, so that it makes the same call, and queue its
/// birth ([`birth`]) before its first user instruction.
pub(crate) fn dup_first_exit(group: &Group, task: &Task, regs: Regs) {
    let (saved, own) = {
        let mut st = group.lock();
        let Some(dup) = st.dup_mut(task.tgid()) else {
            return;
        };
        if dup.born {
            return;
        }
        dup.born = true;
        dup.work = DupWork::Birth;
        (dup.saved, dup.own_work.is_none())
    };
    shim::regs_restart(regs, &saved);
    // Its task_work for every call from now on (without it, each call
    // allocates one).
    let own = if own {
        shim::OwnWork::new().ok().and_then(|w| {
            let mut st = group.lock();
            let dup = st.dup_mut(task.tgid())?;
            let handle = w.handle();
            dup.own_work = Some(w);
            Some(handle)
        })
    } else {
        None
    };
    if group::Dup::queue_work(own).is_err() {
        shim::kill(task);
    }
}

/// In a new duplicate, before its first user instruction: it then
/// returns to user space and remakes the primary's call, which it takes
/// from the ring. Its memory is separated afterwards, step by step
/// ([`separate`]), while the primary goes on.
pub(crate) fn birth(group: &Group, task: &Task) {
    // Its wipe-on-fork memory comes from the primary's return from the
    // fork ([`finish_spawn`]): no user instruction before it is there.
    if !wait_wiped(group, task.tgid()) {
        shim::kill(task);
        return;
    }
    if group
        .lock_quiet()
        .dup_mut(task.tgid())
        .is_none_or(|d| d.leaving)
    {
        // Let go of before its first instruction: its kill follows.
        group.await_kill();
        return;
    }
    // A memory error on a duplicate's page kills it at once (and procft
    // replaces it) instead of waiting for it to touch the page.
    shim::set_mce_policy(crate::mce::PR_MCE_KILL_EARLY);
    // On a NUMA machine its memory (copied from now on, allocated later) is
    // in another node than the primary's.
    let node = shim::prefer_other_node(group.primary());
    {
        let mut st = group.lock();
        if let Some(sep) = st.dup_mut(task.tgid()).and_then(|d| d.separating.as_mut()) {
            sep.node = node;
        }
    }
    // A duplicate of a multi-threaded process makes its other threads
    // first ([`threads`]).
    threads::build(group, task);
}

/// How long a new duplicate waits for the primary to copy its wipe-on-fork
/// memory into it (milliseconds): the copy is as long as that memory, a
/// few pages for a C library's random-number state.
const WIPE_WAIT_MS: u32 = 30_000;

/// What a new duplicate waits for in [`wait_wiped`].
struct Wiped<'a> {
    group: &'a Group,
    tgid: Pid,
}

/// Whether the new duplicate (in `arg`, a [`Wiped`]) has its wipe-on-fork
/// memory, or is to die anyway.
///
/// # Safety
///
/// `arg` must point to a live [`Wiped`].
unsafe extern "C" fn wiped(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let w = unsafe { &*arg.cast::<Wiped<'_>>() };
    let mut st = w.group.lock_quiet();
    st.closed || st.dup_mut(w.tgid).is_none_or(|d| d.wiped || d.leaving)
}

/// Waits (killably, [`WIPE_WAIT_MS`] at most) until the primary has
/// copied its wipe-on-fork memory into new duplicate `tgid`, or it is to
/// die; false if that did not happen in time.
fn wait_wiped(group: &Group, tgid: Pid) -> bool {
    let w = Wiped { group, tgid };
    group
        .wq
        .wait_killable_timeout(wiped, core::ptr::from_ref(&w).cast(), WIPE_WAIT_MS)
        .is_ok()
}

/// Present pages a duplicate looks at in one step of its separation
/// (1 MiB: well under a millisecond of copying natively, a few under TCG).
/// It bounds how long a primary whose ring is full waits for the step.
const STEP_PAGES: usize = 256;

/// A duplicate half the ring or more behind the primary takes one step per
/// this many records it takes, so that it catches up first; one closer
/// takes a step per record, and one with nothing to take steps until a
/// record comes.
const STEP_EVERY: u32 = 8;

/// A new duplicate (`task` of `group`), standing at a call and about to
/// wait for or take the primary's record of it: moves the separation of
/// its memory on, if it is not done.
///
/// Its `fork()` left it sharing every anonymous page with the primary
/// copy-on-write. It gives itself its own copy of those pages a step at a
/// time ([`shim::unshare_some`]), between the records it takes, instead of
/// all at once before the first: the primary goes on meanwhile, and never
/// waits for a step (it holds them back while it waits for its
/// duplicates, [`Group::hold_steps`]).
/// The primary's own writes meanwhile copy the pages they touch (the
/// copy-on-write fault), so nothing it changes is missed: what is left
/// shared is what neither has written. Once its walk reaches the end of
/// the address space, it is on its own frames: ready, counted in the
/// group's level, able to take over and to vote.
///
/// The caller has marked the duplicate as standing at its call
/// ([`group::Dup::waiting_for`]), so that a primary waiting for it to get
/// there finds it there while it steps.
pub(crate) fn separate(group: &Group, task: &Task) {
    let tgid = task.tgid();
    let mut stepped = false;
    loop {
        let pos = {
            // Nothing here for the primary's next call: a step's position.
            let mut guard = group.lock_quiet();
            let st = &mut *guard;
            // Never while the primary waits for its duplicates or takes
            // one over (it holds the steps), or is to be replaced: it
            // would wait for the step.
            if group.steps_held() || st.promote.is_some() {
                return;
            }
            let head = st.ring.head();
            let Some(d) = st.dup_mut(tgid).filter(|d| !d.leaving) else {
                return;
            };
            let behind = head - d.next_seq;
            let Some(sep) = d.separating.as_mut() else {
                return;
            };
            if sep.stepping {
                // Another of its threads ([`crate::sync::threads`]).
                return;
            }
            if behind > 0 {
                if stepped {
                    return;
                }
                sep.skipped += 1;
                if behind >= (CAPACITY / 2) as u64 && sep.skipped < STEP_EVERY {
                    return;
                }
                sep.skipped = 0;
            }
            sep.stepping = true;
            sep.pos
        };
        stepped = true;
        let stepped = shim::unshare_some(pos, STEP_PAGES, group.steps_hold());
        let mut st = group.lock();
        let Some(sep) = st.dup_mut(tgid).and_then(|d| d.separating.as_mut()) else {
            return;
        };
        sep.stepping = false;
        let (copied, next) = match stepped {
            Ok(done) => done,
            // A fatal signal: it is dying.
            Err((e, _)) if e == EINTR => return,
            Err((e, at)) => {
                drop(st);
                failed(group, task, at, e);
                return;
            }
        };
        let Some(d) = st.dup_mut(tgid) else {
            return;
        };
        let Some(sep) = d.separating.as_mut() else {
            return;
        };
        sep.copied += copied;
        sep.failures = 0;
        if sep.pos != pos {
            // Another of its threads moved pages (mremap()) below where
            // this step began, meanwhile ([`moved`]): back there.
            continue;
        }
        if let Some(next) = next {
            sep.pos = next;
            continue;
        }
        let sep = *sep;
        d.separating = None;
        d.ready_ns = Monotonic::ktime_get();
        // Unless a signal handler left it behind meanwhile; a memory
        // error on one of its frames decides for itself.
        match d.hit.as_mut() {
            Some(was) => *was = !d.stale,
            None => d.ready = !d.stale,
        }
        if !d.stale {
            // Made faster than handlers outdate them: no hold.
            st.resyncs.clear();
        }
        drop(st);
        // A primary may wait for a duplicate in step.
        group.wake();
        match sep.node {
            Some(node) => pr_info!(
                "pid {}: duplicate {} on its own frames ({} pages copied, node {})\n",
                group.pid(),
                task.tgid_nr_ns(None),
                sep.copied,
                node
            ),
            None => pr_info!(
                "pid {}: duplicate {} on its own frames ({} pages copied)\n",
                group.pid(),
                task.tgid_nr_ns(None),
                sep.copied
            ),
        }
        return;
    }
}

/// Consecutive failed steps (the kernel could not give it its own copy of
/// a page: out of memory, or a mapping it cannot write) after which a
/// duplicate is replaced: one that cannot separate its memory must not
/// stay one that never becomes ready.
const MAX_FAILURES: u32 = 8;

/// How long a duplicate still separating its memory waits for its next
/// record before it tries another step (steps held back while the primary
/// waits for it, or a failed step), in milliseconds.
pub(crate) const RETRY_MS: u32 = 10;

/// Whether duplicate `tgid` of `group` is still separating its memory.
pub(crate) fn separating(group: &Group, tgid: Pid) -> bool {
    group
        .lock_quiet()
        .dup_mut(tgid)
        .is_some_and(|d| d.separating.is_some())
}

/// A separation step of `task` failed with `e` at `pos` (its walk goes on
/// from there next time): after [`MAX_FAILURES`] in a row, it is replaced.
fn failed(group: &Group, task: &Task, pos: usize, e: Error) {
    let tgid = task.tgid();
    let (kills, n) = {
        let mut st = group.lock();
        let Some(sep) = st.dup_mut(tgid).and_then(|d| d.separating.as_mut()) else {
            return;
        };
        sep.pos = pos;
        sep.failures += 1;
        if sep.failures < MAX_FAILURES {
            return;
        }
        st.replace_where(|d| d.tgid == tgid)
    };
    kills.send();
    if n > 0 {
        pr_warn!(
            "pid {}: duplicate {} could not get its own copy of the page at {:#x} ({:?}, {} \
             times); replacing it\n",
            group.pid(),
            task.tgid_nr_ns(None),
            pos,
            e,
            MAX_FAILURES
        );
    }
}

/// A duplicate still separating its memory made `mremap()` (its own, after
/// the primary's), which moved pages to `to`: if that is below where its
/// walk goes on, the walk goes back there, so that the moved pages, which
/// it may not have seen yet, are not missed.
pub(crate) fn moved(group: &Group, task: &Task, to: usize) {
    let mut st = group.lock();
    if let Some(sep) = st.dup_mut(task.tgid()).and_then(|d| d.separating.as_mut()) {
        sep.pos = sep.pos.min(to);
    }
}

/// A duplicate is exiting: forget it, and if procft did not ask for it,
/// have it replaced.
pub(crate) fn on_dup_exit(task: &Task) -> bool {
    let Some((group, lost)) = group::remove_dup(task.tgid()) else {
        return false;
    };
    hurry(&group);
    if lost {
        events::emit(
            group.pid(),
            What::Lost {
                replica: task.tgid_nr_ns(None),
            },
        );
        pr_info!(
            "pid {}: duplicate {} lost; replacing it\n",
            group.pid(),
            task.tgid_nr_ns(None)
        );
    }
    true
}

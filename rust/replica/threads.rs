// SPDX-License-Identifier: GPL-2.0

//! Duplicates of a multi-threaded process ([`crate::sync::threads`]).
//!
//! A duplicate is made by `fork()` ([`super`]), which copies one thread:
//! the primary's thread holding the run token, at a system-call boundary.
//! Its other threads are all in the kernel then, each in a recorded call
//! or waiting for the token at a call's return (or at a new thread's
//! first return), and none of them can append a record or run user code
//! before the token holder gives the token up. So the state of each is
//! fixed at the point its next record comes from:
//!
//! 1. At the primary's `sys_enter`, before its call becomes the
//!    duplicate's `clone3()`, every other thread's *image* is taken
//!    ([`images`]): its registers, FPU and signal state, FS base (TLS),
//!    `clear_child_tid` address, and the call whose record it waits for.
//! 2. The new duplicate, at its first return and before any user
//!    instruction ([`build`]), makes one thread per image with `clone3()`
//!    (`CLONE_THREAD` and the usual flags, the image's TLS and
//!    `clear_child_tid`), which procft makes it issue from the `syscall`
//!    instruction it stands at; then it remakes the primary's call.
//! 3. Each new thread, at its first return, takes its image's state and
//!    waits for the record of its counterpart's call
//!    ([`crate::sync::threads::adopt`]). From there the duplicate follows
//!    the primary's schedule like any other.
//!
//! What a thread's call wrote before the fork is in the copied memory
//! already; its record writes it again, at the same point of the schedule
//! in every replica.

use kernel::{bindings, prelude::*, task::Task};

use crate::{
    group::{
        self,
        threads::{
            self, Images, ThreadImage, CLONE_CHILD_CLEARTID, CLONE_SETTLS, CLONE_SYSVSEM,
            MAX_THREADS, THREAD,
        },
        Group,
    },
    shim::{self, Regs},
    types::DupWork,
};

/// At the `sys_enter` of the primary's thread holding the run token (the
/// caller), before its call becomes a duplicate's creation: the images of
/// every other thread of a multi-threaded primary, with the new
/// duplicate's thread state; `None` for a single-threaded one. `Err` (why)
/// if they cannot be taken now. May sleep (an FPU state is read once its
/// thread is switched out).
pub(crate) fn images(group: &Group) -> Result<Option<KBox<Images>>, &'static str> {
    if !group.threaded() {
        return Ok(None);
    }
    let me = current!();
    let mut tids = [0; MAX_THREADS];
    let n = shim::thread_ids(&mut tids);
    if n >= MAX_THREADS {
        return Err("too many threads");
    }
    let oom = "no memory for its threads' images";
    let mut dup_threads = threads::new_dup_threads().ok_or(oom)?;
    dup_threads.first = me.pid();
    dup_threads.first_clear_tid = shim::thread_state(me).1;
    let mut list = KVec::with_capacity(n, GFP_KERNEL_ACCOUNT).map_err(|_| oom)?;
    {
        let st = group.lock();
        let t = st.threads.as_ref().ok_or("its protection ends")?;
        if t.token != Some(me.pid()) {
            return Err("the caller does not hold the run token");
        }
        // A thread that made its exit, or a new one not counted yet.
        if t.alive != n + 1 {
            return Err("a thread is exiting or being created");
        }
    }
    let gone = "a thread exited meanwhile";
    for &tid in &tids[..n] {
        let task = shim::thread_of(me, tid).ok_or(gone)?;
        let mut sig = shim::SigState::new().map_err(|_| oom)?;
        let regs = shim::copy_thread(&task, &mut sig).map_err(|_| gone)?;
        // The call it is in (noted when it gave the run token up), or,
        // with none, a new thread's first return: its registers are still
        // its creator's, at the creating call.
        let call = {
            let st = group.lock();
            let t = st.threads.as_ref().ok_or("its protection ends")?;
            t.threads
                .iter()
                .flatten()
                .find(|p| p.tid == tid)
                .and_then(|p| p.call)
        };
        let call = call.unwrap_or_else(|| regs.call());
        let fpu = shim::FpuState::copy(&task).map_err(|_| "a thread's FPU state was not saved")?;
        let (tls, clear_tid) = shim::thread_state(&task);
        let image = ThreadImage {
            ptid: tid,
            call,
            regs,
            fpu,
            sig,
            tls,
            clear_tid,
        };
        list.push(Some(image), GFP_KERNEL_ACCOUNT)
            .map_err(|_| oom)?;
    }
    KBox::new(
        Images {
            list,
            made: 0,
            asked: 0,
            building: true,
            legacy: false,
            threads: Some(dup_threads),
        },
        GFP_KERNEL_ACCOUNT,
    )
    .map(Some)
    .map_err(|_| oom)
}

/// The `clone3()` arguments that make a thread for `image`.
fn thread_args(image: &ThreadImage) -> bindings::clone_args {
    let mut flags = THREAD | CLONE_SYSVSEM | CLONE_SETTLS;
    if image.clear_tid != 0 {
        flags |= CLONE_CHILD_CLEARTID;
    }
    bindings::clone_args {
        flags,
        pidfd: 0,
        child_tid: image.clear_tid as u64,
        parent_tid: 0,
        exit_signal: 0,
        stack: 0,
        stack_size: 0,
        tls: image.tls as u64,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    }
}

/// In new duplicate `task`'s first thread, on its way to user space (at
/// its birth, `rewind` false, or at the return of the thread creation
/// before, `rewind` true): makes it create the thread for the next image,
/// if there is one. False if there is none left to make (the duplicate
/// then makes the primary's call).
fn make_next(group: &Group, task: &Task, rewind: bool) -> Result<bool> {
    let (args, legacy) = {
        let mut st = group.lock_quiet();
        let Some(images) = st.dup_mut(task.tgid()).and_then(|d| d.images.as_mut()) else {
            return Ok(false);
        };
        match images.list.get(images.made).and_then(Option::as_ref) {
            Some(image) if images.building => {
                let args = (thread_args(image), images.legacy);
                images.asked = images.made + 1;
                args
            }
            _ => {
                images.building = false;
                return Ok(false);
            }
        }
    };
    shim::inject_thread_clone(&args, rewind, legacy)?;
    Ok(true)
}

/// At the birth of new duplicate `task` (its first thread, before its
/// first user instruction): it starts making its threads, if it is a
/// duplicate of a multi-threaded process. A duplicate that cannot is
/// killed (and replaced).
pub(crate) fn build(group: &Group, task: &Task) {
    if make_next(group, task, false).is_err() {
        shim::kill(task);
    }
}

/// Whether duplicate `task` (its first thread, entering `clone3()` or
/// `clone()`) makes one of its threads now: the call is procft's and runs
/// as it is.
pub(crate) fn building(group: &Group, task: &Task) -> bool {
    task.pid() == task.tgid()
        && group
            .lock_quiet()
            .dup(task.tgid())
            .and_then(|d| d.images.as_ref())
            .is_some_and(|i| i.building)
}

/// The fork probe, in duplicate `parent` (its first thread) that made
/// thread `child`: if it is one of those it makes for the primary's
/// threads, `child` mirrors the next image. False if it is not.
pub(crate) fn forked(parent: &Task, child: &Task) -> bool {
    let Some(group) = group::lookup_dup(parent.tgid()) else {
        return false;
    };
    let mut st = group.lock_quiet();
    let Some(d) = st.dup_mut(parent.tgid()) else {
        return false;
    };
    let (Some(images), Some(t)) = (d.images.as_mut(), d.threads.as_mut()) else {
        return false;
    };
    if !images.building {
        return false;
    }
    let i = images.made;
    let Some(Some(image)) = images.list.get(i) else {
        return false;
    };
    let Some(slot) = t.threads.iter_mut().find(|x| x.is_none()) else {
        return false;
    };
    *slot = Some(threads::DThread {
        tid: child.pid(),
        ptid: image.ptid,
        pvnr: 0,
        settid: 0,
        work: DupWork::Adopt(i),
        exiting: false,
    });
    images.made += 1;
    true
}

/// At the return of a thread creation of new duplicate `task`'s first
/// thread that made one of its threads (`ret`: the new thread, or an
/// error): it makes the next, or, all made, the primary's call. A
/// duplicate that could not make one is killed (and replaced).
pub(crate) fn built(group: &Group, task: &Task, regs: Regs, ret: isize) {
    const ERESTARTNOINTR: isize = -513;
    const ENOSYS: isize = -(bindings::ENOSYS as isize);
    if ret <= 0 && !shim::keep_going() {
        // Being killed cut the creation short.
        return;
    }
    if ret == ENOSYS && use_clone(group, task) {
        // A seccomp filter refused clone3() (the C library's own thread
        // creations fall back to clone() the same way): clone() from now
        // on.
        pr_info!(
            "pid {}: duplicate {} makes its threads with clone(): clone3() is refused (ENOSYS)\n",
            group.pid(),
            task.tgid_nr_ns(None)
        );
        if make_next(group, task, true).is_err() {
            shim::kill(task);
        }
        return;
    }
    if ret == ERESTARTNOINTR {
        // A signal came first (the fork made nothing): again.
        if make_next(group, task, true).is_err() {
            shim::kill(task);
        }
        return;
    }
    if ret <= 0 {
        pr_warn!(
            "pid {}: a new duplicate could not re-create a thread ({}); it is replaced\n",
            group.pid(),
            ret
        );
        give_up(group, task);
        return;
    }
    let faked = group
        .lock_quiet()
        .dup(task.tgid())
        .and_then(|d| d.images.as_ref())
        .is_some_and(|i| i.made != i.asked);
    if faked {
        // Its fork probe saw no thread: a seccomp filter answered the
        // call (a trap leaves the call's number as its result, a
        // supervisor may give any). Made again, it would be answered
        // again.
        pr_warn!(
            "pid {}: a new duplicate's thread creation returned {} but made no thread (a seccomp \
             filter answered it?); it is replaced\n",
            group.pid(),
            ret
        );
        give_up(group, task);
        return;
    }
    match make_next(group, task, true) {
        Ok(true) => {}
        Ok(false) => {
            // All made: the primary's call, as any new duplicate makes it.
            // The primary's stack holds the arguments of the clone3() that
            // made this duplicate where this one's own were written: they
            // are written there again.
            let saved = {
                let mut st = group.lock_quiet();
                st.spawn_failures = 0;
                st.dup(task.tgid()).map(|d| d.saved)
            };
            if let Some(saved) = saved {
                let mut scratch = shim::SavedRegs([0; 32]);
                let _ = shim::inject_clone(regs, &super::DUP_CLONE, &mut scratch);
                shim::regs_restart(regs, &saved);
            }
        }
        Err(_) => give_up(group, task),
    }
}

/// New duplicate `task` makes its threads with `clone()` from now on;
/// false if it did already.
fn use_clone(group: &Group, task: &Task) -> bool {
    let mut st = group.lock_quiet();
    match st.dup_mut(task.tgid()).and_then(|d| d.images.as_mut()) {
        Some(images) if !images.legacy => {
            images.legacy = true;
            true
        }
        _ => false,
    }
}

/// New duplicate `task` could not make its threads: it is killed, not
/// counted as lost, and the failure counts against further attempts (it
/// may be a limit on the number of tasks, which another attempt would
/// meet again).
fn give_up(group: &Group, task: &Task) {
    let kills = {
        let mut st = group.lock();
        super::spawn_failed(group, &mut st);
        st.retire(task.tgid())
    };
    kills.send();
}

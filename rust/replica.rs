// SPDX-License-Identifier: GPL-2.0

//! Duplicates: their creation at a system-call boundary of the primary,
//! the separation of their memory, and their loss.
//!
//! Life of a duplicate:
//!
//! 1. At a `sys_enter` of the primary, if the group has fewer duplicates
//!    than its level, the call is turned into `clone3()` (see
//!    `procft_inject_clone`): the child shares the descriptor table and
//!    cwd, has exit signal 0 and `CLONE_AUTOREAP`, so it never shows up in
//!    anyone's `wait()`.
//! 2. The fork probe (in the primary, before the child can run) indexes the
//!    child as a duplicate and gives it a copy of the primary's registers.
//! 3. At the `sys_exit` of the `clone3()`, the primary's registers are
//!    restored and its original call is made afresh; the child's first
//!    `sys_exit` does the same, so both stand before the same call.
//! 4. Before the child's first user instruction, a task_work gives it its
//!    own copy of every anonymous page ([`shim::unshare_memory`]).
//! 5. It then waits. Keeping it in step with the primary is the next
//!    stage of procft; today a duplicate waits at the call where it was
//!    created until it dies (`sync=standby` in `/proc/procft`).
//!
//! A duplicate that dies without procft asking (SIGKILL, a memory error)
//! is replaced at the primary's next system call and counted in `respawns`.

use kernel::{ffi::c_void, prelude::*, rbtree::RBTreeNodeReservation, sync::Arc, task::Task};

use crate::{
    group::{self, Group, SavedRegs, Spawn},
    shim::{self, Regs},
};

/// Consecutive failed creations after which the group stops trying until
/// its level is set again.
const MAX_SPAWN_FAILURES: u32 = 8;

/// At a `sys_enter` of `group`'s primary: if the group wants another
/// duplicate, turns this call into its creation.
pub(crate) fn maybe_spawn(group: &Arc<Group>, regs: Regs) {
    let wants = |st: &group::State| {
        !st.closed
            && matches!(st.spawn, Spawn::Idle)
            && st.nr_dups() < st.level as usize
            && st.spawn_failures < MAX_SPAWN_FAILURES
    };
    if !wants(&group.lock()) {
        return;
    }
    let Ok(reservation) = RBTreeNodeReservation::new(GFP_KERNEL) else {
        return;
    };
    {
        let mut st = group.lock();
        if !wants(&st) {
            return;
        }
        st.spawn = Spawn::Injected(reservation);
    }
    // Writing the clone3 arguments may fault: outside the lock.
    let mut saved = SavedRegs([0; 32]);
    let injected = shim::inject_clone(regs, &mut saved);
    let mut st = group.lock();
    match injected {
        Ok(()) => st.saved = saved,
        Err(_) => {
            st.spawn = Spawn::Idle;
            st.spawn_failures += 1;
        }
    }
}

/// Fork probe: `parent` (a protected primary) created `child`. If this is
/// the `clone3()` procft injected, `child` becomes a duplicate.
pub(crate) fn on_fork(parent: &Task, child: &Task) {
    let Some(group) = group::lookup(parent.tgid()) else {
        return;
    };
    let reservation = {
        let mut st = group.lock();
        match core::mem::replace(&mut st.spawn, Spawn::Forked) {
            Spawn::Injected(r) => r,
            other => {
                // The primary's own fork: its child is not protected.
                st.spawn = other;
                return;
            }
        }
    };
    if !group::add_dup(&group, reservation, child) {
        // Untracked, it must never run user code; it dies before it does.
        shim::kill(child);
    }
}

/// `sys_exit` of a protected primary or of a duplicate.
pub(crate) fn on_sys_exit(task: &Task, regs: Regs, ret: isize) {
    if let Some(group) = group::lookup(task.tgid()) {
        let saved = {
            let mut st = group.lock();
            let forked = match st.spawn {
                Spawn::Idle => return,
                Spawn::Injected(_) => false,
                Spawn::Forked => true,
            };
            // This is the return of our clone3().
            st.spawn = Spawn::Idle;
            if forked && ret > 0 {
                st.spawn_failures = 0;
                if st.lost > 0 {
                    st.lost -= 1;
                    st.counters.respawns += 1;
                }
            } else {
                st.spawn_failures += 1;
            }
            st.saved
        };
        shim::regs_restart(regs, &saved);
        return;
    }
    let Some(group) = group::lookup_dup(task.tgid()) else {
        return;
    };
    let saved = {
        let mut st = group.lock();
        let Some(dup) = st.dups.iter_mut().flatten().find(|d| d.tgid == task.tgid()) else {
            return;
        };
        if dup.born {
            return;
        }
        dup.born = true;
        dup.saved
    };
    shim::regs_restart(regs, &saved);
    if shim::queue_task_work().is_err() {
        shim::kill(task);
    }
}

/// Never true yet: duplicates are not released into user space; they wait
/// until they die (SIGKILL ends the wait).
///
/// # Safety
///
/// Any argument is accepted; it is not dereferenced.
unsafe extern "C" fn released(_dup: *const c_void) -> bool {
    false
}

/// In a new duplicate, before its first user instruction: separate its
/// memory, then wait.
#[no_mangle]
pub(crate) extern "C" fn procft_rs_task_work() {
    let task = current!();
    let Some(group) = group::lookup_dup(task.tgid()) else {
        return;
    };
    let Ok(pages) = shim::unshare_memory() else {
        // A fatal signal came: it is dying.
        return;
    };
    {
        let mut st = group.lock();
        if let Some(dup) = st.dups.iter_mut().flatten().find(|d| d.tgid == task.tgid()) {
            dup.ready = true;
        }
    }
    pr_info!(
        "pid {}: duplicate {} on its own frames ({} pages copied)\n",
        group.pid(),
        task.tgid_nr_ns(None),
        pages
    );
    drop(group);
    // Returns only on SIGKILL; the duplicate then exits without running
    // user code.
    let _ = shim::wait_killable(released, core::ptr::null());
}

/// A duplicate is exiting: forget it, and if procft did not ask for it,
/// have it replaced.
pub(crate) fn on_dup_exit(task: &Task) -> bool {
    let Some((group, leaving)) = group::remove_dup(task.tgid()) else {
        return false;
    };
    let mut st = group.lock();
    if !leaving && !st.closed {
        st.lost += 1;
        drop(st);
        pr_info!(
            "pid {}: duplicate {} lost; replacing it\n",
            group.pid(),
            task.tgid_nr_ns(None)
        );
    }
    true
}

// SPDX-License-Identifier: GPL-2.0

//! Reading and changing fault-tolerance levels: the one place every
//! interface (`/proc/<pid>/ft_level`, the `/dev/procft` ioctls, and through
//! them `ftctl`) goes through, so that all of them accept and refuse
//! exactly the same things.
//!
//! Rules, checked in this order, each refusal changing nothing:
//! 1. a pid below zero is `EINVAL`; a pid no process has is `ESRCH`;
//! 2. a kernel thread is `EINVAL` (it has no user space to replicate);
//! 3. a level above [`MAX_LEVEL`] is `EINVAL`;
//! 4. a duplicate (a replica procft created for a protected process) is
//!    `EBUSY`, whatever the level: it belongs to its primary, whose level
//!    is the one to change;
//! 5. the caller must be allowed to ptrace-attach to the process, else
//!    `EPERM`: itself always; another process if the kernel's
//!    `ptrace_may_access()` allows it (LSMs such as Yama included), or,
//!    on a kernel that does not export it, with `CAP_SYS_PTRACE`;
//! 6. a process procft cannot replicate cannot be protected
//!    (`EOPNOTSUPP`, with a log line): a multi-threaded one while the
//!    module's `threads` is 0 (or with more threads than procft
//!    replicates), one being traced, one with writable shared memory;
//!    ending protection is always possible;
//! 7. a process that is exiting is `ESRCH`.
//!
//! Reading is allowed to anyone who can see the process. A duplicate reads
//! as the process it replicates: its level and its group's status (whose
//! `pid` is the primary's).
//!
//! A protected process that later starts doing what cannot be replicated
//! (see [`crate::sync`]) loses its protection through [`end_protection`].
//!
//! Inheritance: the level belongs to the process and survives `execve()`
//! (so `echo 2 > /proc/self/ft_level; exec prog` protects `prog`); a child
//! created by `fork()` starts unprotected, since it is a new process with
//! its own failure domain, to be protected explicitly.

use kernel::{
    prelude::*,
    sync::{aref::ARef, Arc},
    task::{Pid, Task},
};

use crate::{
    events::{self, What},
    group::{self, Group, Snapshot, MAX_LEVEL},
    shim, uapi,
};

/// Resolves a user-supplied pid (0: the caller) to its process, that is,
/// the thread-group leader.
pub(crate) fn find_process(pid: Pid) -> Result<ARef<Task>> {
    match pid {
        p if p < 0 => Err(EINVAL),
        0 => Ok(current!().group_leader().into()),
        p => {
            let task = shim::find_task(p).ok_or(ESRCH)?;
            Ok(shim::leader(&task))
        }
    }
}

/// The group `leader` belongs to, as its primary or as a duplicate.
fn group_of(leader: &Task) -> Option<Arc<Group>> {
    let tgid = leader.tgid();
    group::lookup(tgid).or_else(|| group::lookup_dup(tgid))
}

/// The level of the process led by `leader` (0 when unprotected); a
/// duplicate's is its primary's.
pub(crate) fn level(leader: &Task) -> u32 {
    group_of(leader).map_or(0, |g| g.level())
}

/// The state of the process led by `leader`, protected or not; a
/// duplicate's is its primary's group.
pub(crate) fn status(leader: &Task) -> Snapshot {
    match group_of(leader) {
        Some(g) => g.snapshot(),
        None => Snapshot::unprotected(leader.tgid_nr_ns(None)),
    }
}

/// Checks a level change without making it: see the module documentation
/// for the rules.
pub(crate) fn check_level_change(leader: &Task, level: u32) -> Result {
    if shim::is_kthread(leader) {
        return Err(EINVAL);
    }
    if level > MAX_LEVEL {
        return Err(EINVAL);
    }
    if group::lookup_dup(leader.tgid()).is_some() {
        // Checked again where a new group is registered, under the
        // registry lock (see `group::set_level`).
        return Err(EBUSY);
    }
    if !shim::may_attach(leader) {
        return Err(EPERM);
    }
    if level > 0 {
        // One that created its threads under protection has them
        // replicated, and its duplicates re-create them
        // ([`crate::replica::threads`]); one that created them before
        // cannot be protected.
        let keeps = group::lookup(leader.tgid()).is_some_and(|g| g.threaded());
        let threads = shim::nr_threads(leader);
        let why = if threads > 1 && !keeps && !crate::module_parameters::threads.value() {
            Some("it is multi-threaded (procft's threads=0)")
        } else if threads as usize >= group::threads::MAX_THREADS && !keeps {
            Some("it has more threads than procft replicates")
        } else if shim::is_ptraced(leader) {
            Some("it is being traced")
        } else if shim::has_shared_writable(leader) {
            Some("it maps shared memory writably")
        } else if shim::shares_memory(leader) {
            // Another process writes the primary's memory directly.
            Some("it shares its memory with another process (clone with CLONE_VM)")
        } else if shim::merges_pages(leader) {
            // Its duplicates would inherit it, and KSM would merge their
            // pages with the primary's, which are the same.
            Some("it lets KSM merge identical pages")
        } else if shim::has_dontfork(leader) {
            // A duplicate, made by fork(), would lack that memory.
            Some("it maps memory that fork() does not copy (MADV_DONTFORK)")
        } else {
            None
        };
        if let Some(why) = why {
            pr_info!(
                "pid {}: refusing protection: {}\n",
                leader.tgid_nr_ns(None),
                why
            );
            return Err(EOPNOTSUPP);
        }
    }
    if shim::is_exiting(leader) {
        return Err(ESRCH);
    }
    Ok(())
}

/// Sets the level of the process led by `leader`.
pub(crate) fn set_level(leader: &Task, level: u32) -> Result {
    check_level_change(leader, level)?;
    // A process multi-threaded already, not protected yet: its threads
    // are to come under the run token ([`crate::sync::threads::join`]).
    let joining = level > 0
        && crate::module_parameters::threads.value()
        && shim::nr_threads(leader) > 1
        && group::lookup(leader.tgid()).is_none();
    let threads = if joining {
        Some(group::threads::joining(leader).ok_or(EOPNOTSUPP)?)
    } else {
        None
    };
    if joining && crate::module_parameters::fault_injection.value() {
        // Test-only: a thread listed between the count and the
        // registration ([`group::threads::recount`]).
        let ms = crate::module_parameters::test_join_delay_ms
            .value()
            .min(1000);
        if ms > 0 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(ms.into()));
        }
    }
    let old = if level == 0 {
        group::remove_settled(leader.tgid())
    } else {
        group::set_level(leader, level, threads)?
    };
    if old == 0 && level > 0 && !joining && shim::nr_threads(leader) > 1 {
        // A thread appeared after the count, before the group was
        // registered: its fork probe found no group to tell. (One that
        // appears from here on ends protection there,
        // `replica::primary_thread`.) The caller may try again.
        if group::lookup(leader.tgid()).is_some_and(|g| !g.threaded()) {
            group::remove_settled(leader.tgid());
            return Err(EAGAIN);
        }
    }
    if level > old {
        if let Some(group) = group::lookup(leader.tgid()) {
            if joining {
                crate::sync::threads::call_to_join(&group, leader);
            }
            // A primary blocked in a system call gets its duplicates now.
            crate::replica::hurry(&group);
        }
    }

    if old != level {
        events::emit(leader.tgid_nr_ns(None), What::Level { old, new: level });
        pr_info!(
            "pid {}: fault-tolerance level {} -> {}\n",
            leader.tgid_nr_ns(None),
            old,
            level
        );
    }
    Ok(())
}

/// Test-only fault injection (`PROCFT_IOC_FAIL`): replica `replica` of
/// process `pid` (0: the primary, k: the k-th duplicate as
/// `PROCFT_IOC_GET_STATUS` lists them) is lost (`PROCFT_FAIL_LOSE`) or has
/// the byte at `addr` corrupted (`PROCFT_FAIL_CORRUPT`). `EPERM` unless the
/// module was loaded with `fault_injection=1` and the caller has
/// `CAP_SYS_ADMIN`.
pub(crate) fn inject_failure(pid: Pid, replica: u32, how: u32, addr: usize) -> Result {
    if !crate::module_parameters::fault_injection.value() {
        return Err(EPERM);
    }
    // SAFETY: `capable` only reads the caller's credentials.
    if !unsafe { kernel::bindings::capable(kernel::bindings::CAP_SYS_ADMIN as i32) } {
        return Err(EPERM);
    }
    if how != uapi::PROCFT_FAIL_LOSE && how != uapi::PROCFT_FAIL_CORRUPT {
        return Err(EINVAL);
    }
    let leader = find_process(pid)?;
    let group = group::lookup(leader.tgid()).ok_or(ESRCH)?;
    let target = group
        .replicas()
        .into_iter()
        .nth(replica as usize)
        .flatten()
        .ok_or(EINVAL)?;
    if how == uapi::PROCFT_FAIL_CORRUPT {
        shim::corrupt_byte(&target, addr)?;
        pr_info!(
            "pid {}: byte {:#x} of replica {} corrupted (injected)\n",
            group.pid(),
            addr,
            target.tgid_nr_ns(None)
        );
        return Ok(());
    }
    if replica == 0 {
        crate::failover::inject(&group)?;
        // The primary may be waiting for its duplicates: it takes the
        // failure at once.
        group.wake();
        return Ok(());
    }
    pr_info!(
        "pid {}: failure of duplicate {} injected\n",
        group.pid(),
        target.tgid_nr_ns(None)
    );
    shim::kill(&target);
    Ok(())
}

/// At the exit of `task`, the last thread of a process (from the
/// `sched_process_exit` probe; must not sleep): a duplicate is forgotten
/// (and replaced if it was lost); a primary's protection ends.
pub(crate) fn on_exit(task: &Task) {
    if crate::replica::on_dup_exit(task) {
        return;
    }
    let level = group::remove_exiting(task.tgid());
    if level > 0 {
        pr_info!(
            "pid {}: exited, protection (level {}) ended\n",
            task.tgid_nr_ns(None),
            level
        );
    }
}

#[kunit_tests(procft_control)]
mod tests {
    use super::*;

    #[test]
    fn kernel_threads_are_refused() {
        // KUnit runs each test in a kernel thread.
        let me: ARef<Task> = current!().group_leader().into();
        assert_eq!(check_level_change(&me, 1).err(), Some(EINVAL));
        assert_eq!(set_level(&me, 0).err(), Some(EINVAL));
        assert_eq!(level(&me), 0);
    }

    #[test]
    fn negative_pids_are_invalid_and_unknown_pids_absent() {
        assert_eq!(find_process(-1).err(), Some(EINVAL));
        assert_eq!(find_process(Pid::MIN).err(), Some(EINVAL));
        // Above PID_MAX_LIMIT (4M): no process can have it.
        assert_eq!(find_process(1 << 23).err(), Some(ESRCH));
    }

    #[test]
    fn unprotected_status_lists_only_the_process() {
        let s = Snapshot::unprotected(42);
        assert_eq!(s.level, 0);
        assert_eq!(s.nr_replicas, 1);
        assert_eq!(s.replicas[0], 42);
        assert_eq!(s.counters, crate::types::Counters::default());
    }
}

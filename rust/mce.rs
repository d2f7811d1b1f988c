// SPDX-License-Identifier: GPL-2.0

//! Memory errors reported by the machine-check decode chain.
//!
//! The chain calls procft twice for each logged memory error with a usable
//! address, in a kworker, one record at a time:
//!
//! 1. Before the kernel's own uncorrected-error handler
//!    ([`procft_rs_memory_error`]): the replicas mapping the frame are found
//!    while their mappings still exist (only protected replicas are walked,
//!    never every process) and noted.
//! 2. After it ([`procft_rs_memory_error_done`]): if that handler retired the
//!    frame (`memory_failure()` succeeded: the frame is poisoned, never
//!    reused, and unmapped from everyone), procft acts on the noted hits;
//!    if it did not (the error's severity needs no action, or
//!    `memory_failure()` failed), neither does procft, exactly as for an
//!    unprotected process.
//!
//! Acting means: a duplicate on the frame is killed (SIGKILL, whatever
//! signal handlers the program has) and replaced from a healthy replica
//! like any lost duplicate; its frame is already retired, so its
//! replacement cannot be given it. For a primary the error is
//! action-optional (nobody consumed the data yet): at its next system call
//! that the duplicates wait at, procft waits for a duplicate to reach the
//! same point and gives the primary a fresh frame holding that duplicate's
//! copy ([`crate::sync`]): the primary goes on with its pid, descriptors and
//! output untouched (`failovers`). If it touches the page before that, the
//! kernel sends it SIGBUS (action required) and it fails over by promotion
//! ([`crate::failover`]).
//!
//! Errors that reach `memory_failure()` without a machine check (hwpoison
//! injection, `MADV_HWPOISON`) are handled by the kernel's early kill of a
//! duplicate (duplicates ask for it, see [`crate::replica`]), which procft
//! sees as a lost duplicate and replaces, and by promotion when the primary
//! consumes the page. Action-required machine checks go the same way
//! (`kill_me_maybe()` calls `memory_failure()` in the consuming task).

use kernel::{
    ffi::c_ulong,
    prelude::*,
    sync::{aref::ARef, Arc},
    task::{Pid, Task},
};

use crate::{
    events::{self, What},
    group::{self, Group},
    shim,
};

/// A replica found on a failed frame, waiting for the kernel's verdict.
struct Hit {
    pfn: usize,
    group: Arc<Group>,
    task: ARef<Task>,
    /// Its pid, taken while it surely lived (the kernel's early kill may
    /// end a duplicate before the second look).
    pid: Pid,
    primary: bool,
    addr: usize,
}

kernel::sync::global_lock! {
    // SAFETY: `init` initialises the lock in module init, before the
    // decode-chain notifiers are registered.
    unsafe(uninit) static PENDING: Mutex<KVec<Hit>> = KVec::new();
}

/// Initialises the list of pending hits. Called once from module init.
pub(crate) fn init() {
    // SAFETY: Called once, from module init, before any other use.
    unsafe { PENDING.init() };
}

/// Before the kernel's handler: notes every replica that maps frame `pfn`.
/// Process context; may sleep.
#[no_mangle]
pub(crate) extern "C" fn procft_rs_memory_error(pfn: c_ulong) {
    let mut found = KVec::new();
    for group in group::all().iter() {
        for (i, task) in group.replicas().iter().enumerate() {
            let Some(task) = task else {
                continue;
            };
            let Some(addr) = shim::find_pfn(task, pfn) else {
                continue;
            };
            let hit = Hit {
                pfn,
                group: group.clone(),
                task: task.clone(),
                pid: task.tgid_nr_ns(None),
                primary: i == 0,
                addr,
            };
            if found.push(hit, GFP_KERNEL).is_err() {
                pr_warn!("out of memory noting a memory error at frame {:#x}\n", pfn);
            }
        }
    }
    // Whatever is left from a record whose second call never came (the
    // chain stops early only if a notifier says so) is stale: replaced,
    // and dropped after the lock.
    let stale = core::mem::replace(&mut *PENDING.lock(), found);
    drop(stale);
}

/// Drops the hits still noted (module exit, after the notifiers are
/// gone), releasing their references.
pub(crate) fn clear() {
    let stale = core::mem::take(&mut *PENDING.lock());
    drop(stale);
}

/// After the kernel's handler: acts on the replicas noted for frame `pfn`
/// if the kernel retired it (`handled`). Process context; may sleep.
#[no_mangle]
pub(crate) extern "C" fn procft_rs_memory_error_done(pfn: c_ulong, handled: bool) {
    let hits = {
        let mut pending = PENDING.lock();
        core::mem::take(&mut *pending)
    };
    for hit in hits.into_iter().filter(|h| h.pfn == pfn) {
        let group = &hit.group;
        let replica = hit.pid;
        if !handled {
            pr_info!(
                "pid {}: memory error at frame {:#x} of replica {} not acted on by the kernel; \
                 procft leaves it too\n",
                group.pid(),
                pfn,
                replica
            );
            continue;
        }
        events::emit(
            group.pid(),
            What::MemoryError {
                replica,
                primary: hit.primary,
                frame: pfn as u64,
            },
        );
        let promotions = group.lock().promotions;
        if hit.primary && !shim::page_lost(&hit.task, hit.addr) {
            // The primary consumed the page in the meantime and took a
            // duplicate's whole state (promotion): nothing left to mend.
            group.lock().counters.mce_events += 1;
            pr_info!(
                "pid {}: memory error at frame {:#x} in the primary, already replaced\n",
                group.pid(),
                pfn
            );
        } else if hit.primary {
            let (replaced, repairable) = {
                let mut st = group.lock();
                st.counters.mce_events += 1;
                // A promotion pending, under way or done since the page
                // was found lost replaces the page anyway.
                let replaced = st.promote.is_some() || st.promoting || st.promotions != promotions;
                let ok =
                    !replaced && st.repair.is_none() && st.dups.iter().flatten().any(|d| d.ready);
                if ok {
                    st.repair = Some((hit.addr, pfn));
                }
                (replaced, ok)
            };
            if replaced {
                pr_info!(
                    "pid {}: memory error at frame {:#x} in the primary, which a duplicate is \
                     taking over\n",
                    group.pid(),
                    pfn
                );
            } else if repairable {
                pr_info!(
                    "pid {}: memory error at frame {:#x} in the primary (address {:#x}); \
                     restoring it from a duplicate at its next system call\n",
                    group.pid(),
                    pfn,
                    hit.addr
                );
            } else {
                pr_warn!(
                    "pid {}: memory error at frame {:#x} in the primary and no duplicate in \
                     step to restore it from\n",
                    group.pid(),
                    pfn
                );
            }
        } else {
            group.lock().counters.mce_events += 1;
            pr_info!(
                "pid {}: memory error at frame {:#x} in duplicate {}; replacing it\n",
                group.pid(),
                pfn,
                replica
            );
            shim::kill(&hit.task);
        }
    }
}

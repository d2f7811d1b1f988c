// SPDX-License-Identifier: GPL-2.0

//! Memory errors: the machine-check decode chain's report of a bad frame
//! (`procft_mce_notify` in the shim, called before the kernel's own
//! handler runs `memory_failure()`).
//!
//! Every protected replica mapping the frame is found (only replicas are
//! walked, never every process) and the event is counted and logged. A
//! duplicate on the frame is killed (SIGKILL, whatever signal handlers the
//! program has) as soon as the kernel's `memory_failure()`, which runs
//! next, has claimed the frame (so the frame cannot be freed and handed to
//! its replacement first), and is replaced from a healthy replica like any
//! lost duplicate. For a primary on the frame the error is action-optional
//! (nobody has consumed the data yet): at the primary's next system call
//! that the duplicates wait at, procft waits for a duplicate to reach the
//! same point, drops the primary's mapping of the page and gives it a
//! fresh frame holding the duplicate's copy ([`crate::sync`]): the primary
//! goes on with its pid, descriptors and output untouched (`failovers`).
//! If the primary touches the page before that, the kernel sends it SIGBUS
//! (action required) and it fails over by promotion ([`crate::failover`]).
//! Errors that reach `memory_failure()` without a machine check (hwpoison
//! injection, `MADV_HWPOISON`) are handled by the kernel's early kill of a
//! duplicate (duplicates ask for it, see [`crate::replica`]), which procft
//! sees as a lost duplicate and replaces, and by promotion when the
//! primary consumes the page.

use kernel::{ffi::c_ulong, prelude::*};

use crate::{
    events::{self, What},
    group, shim,
};

/// Called from the machine-check decode chain (process context, may
/// sleep) with the frame an uncorrected memory error hit.
#[no_mangle]
pub(crate) extern "C" fn procft_rs_memory_error(pfn: c_ulong) {
    for group in group::all().iter() {
        for (i, task) in group.replicas().iter().enumerate() {
            let Some(task) = task else {
                continue;
            };
            let Some(addr) = shim::find_pfn(task, pfn) else {
                continue;
            };
            events::emit(
                group.pid(),
                What::MemoryError {
                    replica: task.tgid_nr_ns(None),
                    primary: i == 0,
                    frame: pfn as u64,
                },
            );
            let mut st = group.lock();
            st.counters.mce_events += 1;
            if i == 0 {
                let repairable = st.repair.is_none() && st.dups.iter().flatten().any(|d| d.ready);
                if repairable {
                    st.repair = Some((addr, pfn));
                }
                drop(st);
                if repairable {
                    pr_info!(
                        "pid {}: memory error at frame {:#x} in the primary (address {:#x}); \
                         restoring it from a duplicate at its next system call\n",
                        group.pid(),
                        pfn,
                        addr
                    );
                } else {
                    pr_warn!(
                        "pid {}: memory error at frame {:#x} in the primary and no duplicate \
                         in step to restore it from\n",
                        group.pid(),
                        pfn
                    );
                }
            } else {
                drop(st);
                pr_info!(
                    "pid {}: memory error at frame {:#x} in duplicate {}; replacing it\n",
                    group.pid(),
                    pfn,
                    task.tgid_nr_ns(None)
                );
                // Killed once memory_failure() has claimed the frame, so
                // its replacement cannot be given the bad frame.
                if shim::kill_after_poison(task, pfn).is_err() {
                    shim::kill(task);
                }
            }
        }
    }
}

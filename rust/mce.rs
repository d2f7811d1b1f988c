// SPDX-License-Identifier: GPL-2.0

//! Memory errors: the machine-check decode chain's report of a bad frame
//! (`procft_mce_notify` in the shim, called before the kernel's own
//! handler runs `memory_failure()`).
//!
//! Every protected replica mapping the frame is found (only replicas are
//! walked, never every process) and the event is counted and logged. A
//! duplicate on the frame is killed at once, whatever signal handlers the
//! program has, and replaced from a healthy replica like any lost
//! duplicate. A primary on the frame is only reported: failover is not
//! implemented yet, so it meets the kernel's usual treatment. Errors that
//! reach `memory_failure()` without a machine check (hwpoison injection,
//! `MADV_HWPOISON`) are handled by the kernel's early kill of the
//! duplicate (duplicates ask for it, see [`crate::replica`]), which procft
//! sees as a lost duplicate and replaces.

use kernel::{ffi::c_ulong, prelude::*};

use crate::{group, shim};

/// Called from the machine-check decode chain (process context, may
/// sleep) with the frame an uncorrected memory error hit.
#[no_mangle]
pub(crate) extern "C" fn procft_rs_memory_error(pfn: c_ulong) {
    for group in group::all().iter() {
        for (i, task) in group.replicas().iter().enumerate() {
            let Some(task) = task else {
                continue;
            };
            if !shim::maps_pfn(task, pfn) {
                continue;
            }
            group.lock().counters.mce_events += 1;
            if i == 0 {
                pr_warn!(
                    "pid {}: memory error at frame {:#x} in the primary (no failover yet)\n",
                    group.pid(),
                    pfn
                );
            } else {
                pr_info!(
                    "pid {}: memory error at frame {:#x} in duplicate {}; replacing it\n",
                    group.pid(),
                    pfn,
                    task.tgid_nr_ns(None)
                );
                shim::kill(task);
            }
        }
    }
}

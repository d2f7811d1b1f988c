// SPDX-License-Identifier: GPL-2.0

//! procfs: `/proc/<pid>/ft_level` and `/proc/procft`.
//!
//! The entries themselves are created by the C shim (procfs has no Rust
//! abstraction); these are the handlers it calls.

use kernel::{
    bindings,
    ffi::{c_int, c_uint},
    fmt,
    pid_namespace::PidNamespace,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
};

use crate::{control, group, group::Snapshot, shim};

/// Reads `/proc/<pid>/ft_level`: the level, or a negative errno.
///
/// # Safety
///
/// `task` must be a valid task for the duration of the call (procfs holds
/// a reference).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_level_show(task: *mut bindings::task_struct) -> c_int {
    // SAFETY: Valid for the call, by the function's contract.
    let task = unsafe { shim::task_ref(task) };
    // The level is at most `MAX_LEVEL`, far below `c_int::MAX`.
    control::level(&shim::leader(task)) as c_int
}

/// Writes `/proc/<pid>/ft_level` (procfs has parsed the number): 0 or a
/// negative errno.
///
/// # Safety
///
/// `task` must be a valid task for the duration of the call (procfs holds
/// a reference).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_level_store(
    task: *mut bindings::task_struct,
    level: c_uint,
) -> c_int {
    // SAFETY: Valid for the call, by the function's contract.
    let task = unsafe { shim::task_ref(task) };
    match control::set_level(&shim::leader(task), level) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// One line of `/proc/procft`: space-separated `key=value` fields.
/// `replicas` lists the primary and every live duplicate; `duplicates`
/// counts those on their own frames against the level; `sync` says how
/// duplicates follow the primary (`lockstep`: at system-call boundaries);
/// `lag` counts the primary's records the slowest duplicate has yet to
/// take.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid={} level={} replicas=", self.pid, self.level)?;
        for (i, pid) in self.replicas[..self.nr_replicas].iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pid}")?;
        }
        let c = &self.counters;
        write!(
            f,
            " duplicates={}/{} sync=lockstep failovers={} respawns={} mce_events={} divergences={} \
             lag={}",
            self.ready,
            self.level,
            c.failovers,
            c.respawns,
            c.mce_events,
            c.divergences,
            self.lag
        )?;
        let (bytes, peak) = self.buffered;
        write!(f, " buffered={bytes} buffered_peak={peak}")
    }
}

/// Shows `/proc/procft`: one line per protected process that has a pid in
/// `ns`, the pid namespace of the proc mount it is read through (as for
/// `/proc/<pid>` directories), with the pids it has there.
///
/// # Safety
///
/// `m` must be the seq_file of a `/proc/procft` read in progress and `ns`
/// the pid namespace of its proc mount (held by the mount).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_status_show(
    m: *mut bindings::seq_file,
    ns: *mut bindings::pid_namespace,
) {
    // SAFETY: A valid seq_file, used only by this thread during the show
    // callback, by the function's contract.
    let m = unsafe { SeqFile::from_raw(m) };
    // SAFETY: Valid while the file is open, by the function's contract.
    let ns = unsafe { PidNamespace::from_ptr(ns) };
    group::for_each(|g| {
        let snap = g.snapshot_in(Some(ns));
        if snap.pid != 0 {
            seq_print!(m, "{}\n", snap);
        }
    });
}

/// Called by the `sched_process_exit` probe when the last thread of a
/// process exits: releases its record.  Must not sleep.
///
/// # Safety
///
/// `task` must be the exiting task (valid for the call).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_process_exit(task: *mut bindings::task_struct) {
    // SAFETY: Valid for the call, by the function's contract.
    let task = unsafe { shim::task_ref(task) };
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

#[kunit_tests(procft_procfs)]
mod tests {
    use super::*;
    use kernel::str::CString;

    #[test]
    fn status_line_has_every_field() -> Result {
        let mut s = Snapshot::unprotected(100);
        s.level = 2;
        s.replicas[1] = 101;
        s.replicas[2] = 102;
        s.nr_replicas = 3;
        s.ready = 2;
        s.counters.failovers = 1;
        s.counters.respawns = 2;
        s.counters.mce_events = 3;
        s.counters.divergences = 4;
        s.lag = 5;
        s.buffered = (4096, 65536);
        let line = CString::try_from_fmt(fmt!("{}", s))?;
        assert_eq!(
            line.to_bytes(),
            b"pid=100 level=2 replicas=100,101,102 duplicates=2/2 sync=lockstep failovers=1 \
              respawns=2 mce_events=3 divergences=4 lag=5 buffered=4096 buffered_peak=65536"
        );
        Ok(())
    }
}

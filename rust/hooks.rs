// SPDX-License-Identifier: GPL-2.0

//! The entry points the C shim calls (`procft_rs_*`, declared in
//! `include/procft_shim.h`): procfs handlers, the process-exit probe, the
//! machine-check decode-chain notifiers and the poisoned-primary probe.
//!
//! Each turns the raw pointers and C integers it is given into the crate's
//! types and calls the function that decides; none holds logic of its own.
//! The entry points of the per-call protocol (`procft_rs_sys_enter`,
//! `procft_rs_sys_exit`, `procft_rs_fork`, `procft_rs_signal_deliver`,
//! `procft_rs_task_work`) are still in [`crate::sync`].

use kernel::{
    bindings,
    ffi::{c_int, c_uint, c_ulong},
    pid_namespace::PidNamespace,
    seq_file::SeqFile,
};

use crate::{control, failover, mce, procfs, shim};

// The `/proc/<pid>/ft_level` handlers, whose addresses the shim puts in a
// `struct proc_ft_level_ops`, checked against its prototypes.
const _: unsafe extern "C" fn(*mut bindings::task_struct) -> c_int = procft_rs_level_show;
const _: unsafe extern "C" fn(*mut bindings::task_struct, c_uint) -> c_int = procft_rs_level_store;

/// Reads `/proc/<pid>/ft_level`: the level, or a negative errno.
///
/// # Safety
///
/// `task` must be a valid task for the duration of the call (procfs holds
/// a reference).
#[no_mangle]
unsafe extern "C" fn procft_rs_level_show(task: *mut bindings::task_struct) -> c_int {
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
unsafe extern "C" fn procft_rs_level_store(
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

/// Shows `/proc/procft` ([`procfs::status_show`]).
///
/// # Safety
///
/// `m` must be the seq_file of a `/proc/procft` read in progress and `ns`
/// the pid namespace of its proc mount (held by the mount).
#[no_mangle]
unsafe extern "C" fn procft_rs_status_show(
    m: *mut bindings::seq_file,
    ns: *mut bindings::pid_namespace,
) {
    // SAFETY: A valid seq_file, used only by this thread during the show
    // callback, by the function's contract.
    let m = unsafe { SeqFile::from_raw(m) };
    // SAFETY: Valid while the file is open, by the function's contract.
    let ns = unsafe { PidNamespace::from_ptr(ns) };
    procfs::status_show(m, ns);
}

/// The `sched_process_exit` probe, when the last thread of a process exits
/// ([`control::on_exit`]). Must not sleep.
///
/// # Safety
///
/// `task` must be the exiting task (valid for the call).
#[no_mangle]
unsafe extern "C" fn procft_rs_process_exit(task: *mut bindings::task_struct) {
    // SAFETY: Valid for the call, by the function's contract.
    let task = unsafe { shim::task_ref(task) };
    control::on_exit(task);
}

/// The `signal_generate` probe: the kernel is sending the calling primary
/// SIGBUS for poisoned memory at `addr` it consumed
/// ([`failover::primary_poisoned`]). Under its siglock, interrupts off.
#[no_mangle]
extern "C" fn procft_rs_primary_poisoned(addr: c_ulong) -> bool {
    failover::primary_poisoned(addr)
}

/// The decode chain, before the kernel's own handler, for a memory error
/// at frame `pfn` ([`mce::memory_error`]). Process context.
#[no_mangle]
extern "C" fn procft_rs_memory_error(pfn: c_ulong) {
    mce::memory_error(pfn);
}

/// The decode chain, after the kernel's own handler (`handled`: it retired
/// frame `pfn`) ([`mce::memory_error_done`]). Process context.
#[no_mangle]
extern "C" fn procft_rs_memory_error_done(pfn: c_ulong, handled: bool) {
    mce::memory_error_done(pfn, handled);
}

/// The `memory_failure_event` probe, for a frame `pfn` that
/// `memory_failure()` retired while something is protected: queued for
/// [`mce::memory_failure`] in a worker ([`mce::retired`]). Must not sleep.
#[no_mangle]
extern "C" fn procft_rs_memory_failure(pfn: c_ulong) {
    mce::retired(pfn);
}

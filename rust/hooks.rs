// SPDX-License-Identifier: GPL-2.0

//! The entry points the C shim calls (`procft_rs_*`, declared in
//! `include/procft_shim.h`), all of them: the per-call protocol's
//! (`sys_enter`, `sys_exit`, fork, signal delivery, task_work), procfs
//! handlers, the process-exit probe, the machine-check decode-chain
//! notifiers and the memory-failure and poisoned-primary probes.
//!
//! Each turns the raw pointers and C integers it is given into the crate's
//! types and calls the function that decides; none holds logic of its own.

use kernel::{
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong},
    pid_namespace::PidNamespace,
    seq_file::SeqFile,
};

use crate::{
    control, failover,
    group::Group,
    mce, procfs, replica,
    shim::{self, Regs},
    sync::{self, tsc},
};

/// The `sys_enter` hook, for every system call `nr` of a protected process
/// or duplicate, whose `role` in its group the C side passes (its filter
/// entry, or the kernel hook's word for the thread): the group, without a
/// lookup ([`sync::sys_enter`]).
///
/// # Safety
///
/// `regs` must be the caller's registers and `args` point to the call's
/// six arguments; the caller is the task making the call, in a faultable
/// context (it may sleep briefly), inside the Tasks Trace RCU section in
/// which it read `role`: its filter entry, or the hook's word for it,
/// which is always that entry or NULL (the shim sets both under the
/// filter's lock, a fork child's word is synced from the entry before the
/// child runs, and the kernel does not copy the word).
#[no_mangle]
unsafe extern "C" fn procft_rs_sys_enter(
    regs: *mut bindings::pt_regs,
    nr: c_long,
    args: *const c_ulong,
    role: *const shim::Role,
) {
    // SAFETY: Six arguments, valid for the call, by the function's contract.
    let args = unsafe { *args.cast::<[c_ulong; 6]>() };
    // SAFETY: The caller's registers, valid during the hook.
    let regs = unsafe { Regs::from_raw(regs) };
    // SAFETY: Read in the Tasks Trace RCU section the hook runs in, by the
    // function's contract; the borrow ends with the hook.
    let (group, dup) = unsafe { Group::of_role(role) };
    sync::sys_enter(group, regs, nr as i64, &args, dup);
}

/// The `sys_exit` hook, for protected processes and duplicates, including
/// a new duplicate's first return, from `ret_from_fork`; `role` as for
/// [`procft_rs_sys_enter`] ([`sync::sys_exit`]).
///
/// # Safety
///
/// `regs` must be the caller's registers, in a faultable context, inside
/// the Tasks Trace RCU section in which it read `role`.
#[no_mangle]
unsafe extern "C" fn procft_rs_sys_exit(
    regs: *mut bindings::pt_regs,
    ret: c_long,
    role: *const shim::Role,
) {
    // SAFETY: The caller's registers, valid during the hook.
    let regs = unsafe { Regs::from_raw(regs) };
    // SAFETY: As for `procft_rs_sys_enter`.
    let (group, dup) = unsafe { Group::of_role(role) };
    sync::sys_exit(group, regs, ret, dup);
}

/// The hook's trap of an `rdtsc` (`rdtscp`: of an `rdtscp`) of a protected
/// process or duplicate whose counter reads procft traps, `role` as for
/// [`procft_rs_sys_enter`] ([`tsc::trapped`]). False declines it: the
/// kernel stops trapping the task and the instruction runs natively.
///
/// # Safety
///
/// The caller is the trapping task, in a faultable context, inside the
/// Tasks Trace RCU section in which it read `role`.
#[no_mangle]
unsafe extern "C" fn procft_rs_tsc(rdtscp: bool, role: *const shim::Role) -> bool {
    // SAFETY: As for `procft_rs_sys_enter`.
    let (group, dup) = unsafe { Group::of_role(role) };
    let group: kernel::sync::Arc<Group> = group.into();
    tsc::trapped(&group, rdtscp, dup)
}

/// The fork probe, when a protected process or a duplicate creates a
/// child ([`replica::on_fork`]).
///
/// # Safety
///
/// Both tasks must be valid for the call (the fork tracepoint's
/// arguments).
#[no_mangle]
unsafe extern "C" fn procft_rs_fork(
    parent: *mut bindings::task_struct,
    child: *mut bindings::task_struct,
) {
    // SAFETY: Valid for the call, by the function's contract.
    let (parent, child) = unsafe { (shim::task_ref(parent), shim::task_ref(child)) };
    replica::on_fork(parent, child);
}

/// The `signal_deliver` probe: a protected process is about to run a
/// handler for `sig` (`restart`: with `SA_RESTART`) at user address `ip`;
/// under its siglock, interrupts off ([`sync::signal_deliver`]).
///
/// # Safety
///
/// `info` must be NULL or a valid `kernel_siginfo`.
#[no_mangle]
unsafe extern "C" fn procft_rs_signal_deliver(
    sig: c_int,
    info: *const bindings::kernel_siginfo,
    restart: bool,
    ip: c_ulong,
) {
    // SAFETY: NULL or a valid siginfo, by the function's contract.
    let info = unsafe { shim::SigInfo::from_raw(info) };
    sync::signal_deliver(sig, &info, restart, ip);
}

/// A replica's task_work, queued by its probe while in system call `nr`
/// (`dup` as for [`procft_rs_sys_enter`]) ([`sync::task_work`]).
#[no_mangle]
extern "C" fn procft_rs_task_work(nr: c_long, dup: bool) {
    sync::task_work(nr as i64, dup);
}

/// A thread of a multi-threaded primary, preempted ([`shim::preempt`]) at
/// the token's turn `turn`, on its way back to user mode.
#[no_mangle]
extern "C" fn procft_rs_preempted(turn: u64) {
    sync::threads::preempted(turn);
}

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

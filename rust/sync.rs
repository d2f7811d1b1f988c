// SPDX-License-Identifier: GPL-2.0

//! System-call boundaries of protected processes: the `sys_enter` probe's
//! handler.
//!
//! Today it enforces what procft cannot replicate: before a protected
//! process makes a call that would let its replicas' memory or identity
//! diverge (see [`crate::syscalls`]: shared memory, threads, ptrace, ...),
//! protection ends cleanly, with one log line, so that procft never gives
//! a wrong result. The synchronisation of duplicates at these boundaries is
//! built on this entry point.

use kernel::{
    bindings,
    ffi::{c_long, c_ulong},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    control, group, replica,
    shim::{self, Regs},
    syscalls::{self, Class},
};

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const MAP_TYPE: c_ulong = 0x0f;
const MAP_SHARED: c_ulong = 0x01;
const MAP_SHARED_VALIDATE: c_ulong = 0x03;
const PROT_WRITE: c_ulong = 0x2;
const NR_MPROTECT: i64 = 10;
const NR_PKEY_MPROTECT: i64 = 329;
const NR_CLONE3: i64 = 435;

/// Why call `nr` with arguments `args` cannot be replicated, if it cannot.
/// Runs in the calling task's context; may read its memory.
fn unreplicable(nr: i64, args: &[c_ulong; 6]) -> Option<&'static str> {
    let call = syscalls::classify(nr);
    match call.class {
        Class::Unsupported => Some(call.name),
        Class::Fork => {
            let flags = if nr == NR_CLONE3 {
                // struct clone_args starts with the u64 flags; an
                // unreadable one makes the call fail with EFAULT anyway.
                let ptr = UserPtr::from_addr(args[0]);
                UserSlice::new(ptr, 8).reader().read::<u64>().unwrap_or(0)
            } else if call.name == "clone" {
                args[0] as u64
            } else {
                0
            };
            // A vfork-style child borrows the memory until it execs; a
            // CLONE_VM child without CLONE_VFORK is a thread.
            (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0)
                .then_some("creating a thread (clone with CLONE_VM)")
        }
        Class::Mmap => {
            let (prot, flags) = (args[2], args[3]);
            let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
            (shared && prot & PROT_WRITE != 0).then_some("a writable MAP_SHARED mapping")
        }
        Class::Local if nr == NR_MPROTECT || nr == NR_PKEY_MPROTECT => {
            let (start, len, prot) = (args[0], args[1], args[2]);
            (prot & PROT_WRITE != 0 && shim::range_is_shared(start, len))
                .then_some("making shared memory writable (mprotect)")
        }
        Class::Local | Class::Primary | Class::Exec | Class::Exit => None,
    }
}

/// Called by the `sys_enter` probe for every system call of a protected
/// process or duplicate (the C side filters on their tgids).
///
/// # Safety
///
/// `regs` must be the caller's registers and `args` point to the call's
/// six arguments; the caller is the task making the call, in a faultable
/// tracepoint (it may sleep briefly).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_sys_enter(
    regs: *mut bindings::pt_regs,
    nr: c_long,
    args: *const c_ulong,
) {
    // SAFETY: Six arguments, valid for the call, by the function's contract.
    let args = unsafe { &*args.cast::<[c_ulong; 6]>() };
    // SAFETY: The caller's registers, valid during the probe.
    let regs = unsafe { Regs::from_raw(regs) };
    let task = current!();
    let Some(group) = group::lookup(task.tgid()) else {
        return;
    };
    let nr = nr as i64;
    let why = if shim::is_ptraced(task) {
        Some("being traced")
    } else {
        unreplicable(nr, args)
    };
    if let Some(why) = why {
        control::end_protection(&group, why);
        return;
    }
    match syscalls::classify(nr).class {
        // The new image gets new duplicates, at its first calls.
        Class::Exec => group.lock().trim_dups(0),
        Class::Exit => {}
        _ => replica::maybe_spawn(&group, regs),
    }
}

/// Called by the `sys_exit` probe for protected processes and duplicates
/// (including a new duplicate's first return, from `ret_from_fork`).
///
/// # Safety
///
/// `regs` must be the caller's registers, in a faultable syscall
/// tracepoint.
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_sys_exit(regs: *mut bindings::pt_regs, ret: c_long) {
    // SAFETY: The caller's registers, valid during the probe.
    let regs = unsafe { Regs::from_raw(regs) };
    replica::on_sys_exit(current!(), regs, ret);
}

/// Called by the fork probe when a protected process creates a child.
///
/// # Safety
///
/// Both tasks must be valid for the call (the fork tracepoint's
/// arguments).
#[no_mangle]
pub(crate) unsafe extern "C" fn procft_rs_fork(
    parent: *mut bindings::task_struct,
    child: *mut bindings::task_struct,
) {
    // SAFETY: Valid for the call, by the function's contract.
    let (parent, child) = unsafe { (shim::task_ref(parent), shim::task_ref(child)) };
    replica::on_fork(parent, child);
}

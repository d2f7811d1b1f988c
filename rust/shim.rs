// SPDX-License-Identifier: GPL-2.0

//! The C shim (`procft_shim.c`): declarations and safe wrappers.
//!
//! The shim exists only for what `rust/kernel/` has no abstraction for:
//! procfs entries, tracepoint probes and procft's own tracepoints, the
//! machine-check decode chain, looking a task up by pid, the ptrace-attach
//! permission test, and the mm, register, signal and task_work mechanisms
//! the synchronisation and failover code uses (see the top of
//! `procft_shim.c`).

use core::{ptr::NonNull, sync::atomic::AtomicU32};
use kernel::{
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong, c_void},
    mm::MmWithUser,
    prelude::*,
    sync::aref::ARef,
    task::{Pid, Task},
    types::Opaque,
};

// Only pointers to `task_struct` cross the boundary; its layout (which has
// zero-sized members rustc cannot vouch for) does not matter here.
#[expect(improper_ctypes)]
extern "C" {
    fn procft_task_layout(size: *mut usize, tgid_offset: *mut usize);
    fn procft_shim_init(force_tps: bool) -> c_int;
    fn procft_shim_exit();
    fn procft_get_task(nr: Pid) -> *mut bindings::task_struct;
    fn procft_get_thread(task: *mut bindings::task_struct, tid: Pid) -> *mut bindings::task_struct;
    fn procft_get_leader(task: *mut bindings::task_struct) -> *mut bindings::task_struct;
    fn procft_may_attach(task: *mut bindings::task_struct) -> bool;
    fn procft_is_kthread(task: *mut bindings::task_struct) -> bool;
    fn procft_is_exiting(task: *mut bindings::task_struct) -> bool;
    fn procft_is_stopped(task: *mut bindings::task_struct) -> bool;
    fn procft_nr_threads(task: *mut bindings::task_struct) -> c_int;
    fn procft_have_proc_ft_level() -> bool;
    fn procft_have_ptrace_may_access() -> bool;
    fn procft_have_replace_mm() -> bool;
    fn procft_uses_syscall_hook() -> bool;
    fn procft_unprotected_calls_sum() -> u64;
    fn procft_is_ptraced(task: *mut bindings::task_struct) -> bool;
    fn procft_has_shared_writable(task: *mut bindings::task_struct) -> bool;
    fn procft_merges_pages(task: *mut bindings::task_struct) -> bool;
    fn procft_shares_memory(task: *mut bindings::task_struct) -> bool;
    fn procft_has_dontfork(task: *mut bindings::task_struct) -> bool;
    fn procft_range_is_shared(start: usize, len: usize) -> bool;
    fn procft_filter_reserve(tgid: Pid) -> c_int;
    fn procft_filter_release(tgid: Pid);
    fn procft_filter_add(tgid: Pid, role: *const Role) -> c_int;
    fn procft_filter_remove(tgid: Pid, policy: c_int);
    fn procft_filter_add_atomic(tgid: Pid, role: *const Role) -> c_int;
    fn procft_defer(
        head: *mut bindings::callback_head,
        f: unsafe extern "C" fn(*mut bindings::callback_head),
    );
    fn procft_defer_barrier();
    fn procft_regs_size() -> usize;
    fn procft_inject_clone(
        regs: *mut bindings::pt_regs,
        args: *const bindings::clone_args,
        saved: *mut u64,
    ) -> c_int;
    fn procft_regs_restart(regs: *mut bindings::pt_regs, saved: *const u64);
    fn procft_inject_thread_clone(
        args: *const bindings::clone_args,
        rewind: bool,
        legacy: bool,
    ) -> c_int;
    fn procft_thread_state(
        task: *mut bindings::task_struct,
        fsbase: *mut c_ulong,
        clear_tid: *mut c_ulong,
    );
    fn procft_thread_ids(tids: *mut Pid, max: c_int) -> c_int;
    fn procft_process_thread_ids(
        task: *mut bindings::task_struct,
        tids: *mut Pid,
        max: c_int,
    ) -> c_int;
    fn procft_copy_thread(
        task: *mut bindings::task_struct,
        regs: *mut u64,
        state: *mut c_void,
    ) -> c_int;
    fn procft_set_thread_signals(state: *const c_void);
    fn procft_unshare_some(pos: *mut c_ulong, budget: c_ulong, hold: *const c_uint) -> c_long;
    fn procft_copy_wipeonfork(child: *mut bindings::task_struct) -> c_int;
    fn procft_suppress(regs: *mut bindings::pt_regs);
    fn procft_set_return(value: c_long);
    fn procft_restart_call(nr: c_long);
    fn procft_kill(task: *mut bindings::task_struct);
    fn procft_mce_policy() -> c_int;
    fn procft_set_mce_policy(task: *mut bindings::task_struct, policy: c_int);
    fn procft_siginfo_size() -> usize;
    fn procft_signal_pending() -> bool;
    fn procft_user_ip() -> usize;
    fn procft_user_sp() -> usize;
    fn procft_in_ia32_syscall() -> bool;
    fn procft_syscall_nr() -> c_long;
    fn procft_runtime_ns(task: *mut bindings::task_struct) -> u64;
    fn procft_syscall_arg(i: c_uint) -> c_ulong;
    fn procft_get_user_words(to: *mut u64, addr: c_ulong, words: c_uint) -> c_int;
    fn procft_put_user_words(addr: c_ulong, from: *const u64, words: c_uint) -> c_int;
    fn procft_take_clear_child_tid() -> c_ulong;
    fn procft_call_from_vdso() -> bool;
    fn procft_vdso_make_calls() -> c_int;
    fn procft_tsc_trap_self(on: bool) -> bool;
    fn procft_tsc_can_trap() -> bool;
    fn procft_tsc_read(aux: *mut u32) -> u64;
    fn procft_tsc_emulate(rdtscp: bool, tsc: u64, aux: u32);
    fn procft_forget_auxv(kind: c_ulong);
    fn procft_send_self(sig: c_int, info: *const u64) -> c_int;
    fn procft_frame_owner(
        task: *mut bindings::task_struct,
        pfn: usize,
        poisoned: bool,
        addr: *mut usize,
    ) -> c_int;
    fn procft_find_pfn(task: *mut bindings::task_struct, pfn: usize) -> usize;
    fn procft_prefer_other_node(primary: *mut bindings::task_struct) -> c_int;
    fn procft_find_poisoned(task: *mut bindings::task_struct, pfn: usize) -> usize;
    fn procft_repair_page(addr: usize, pfn: usize, from: *mut bindings::task_struct) -> c_int;
    fn procft_queue_task_work() -> c_int;
    fn procft_own_work_alloc() -> *mut c_void;
    fn procft_own_work_free(work: *mut c_void);
    fn procft_queue_own_work(work: *mut c_void) -> c_int;
    fn procft_kick(task: *mut bindings::task_struct) -> c_int;
    fn procft_kick_threads() -> c_int;
    fn procft_preempt(task: *mut bindings::task_struct, turn: u64) -> c_int;
    fn procft_call_restarting() -> bool;
    fn procft_read_lost(addr: usize, buf: *mut c_void, len: usize) -> c_int;
    fn procft_blocked_call(task: *mut bindings::task_struct, arg0: *mut c_ulong) -> c_long;
    fn procft_fd_type(task: *mut bindings::task_struct, fd: c_uint) -> c_uint;
    fn procft_adopt_memory(from: *mut bindings::task_struct) -> c_long;
    fn procft_get_mm(from: *mut bindings::task_struct) -> *mut bindings::mm_struct;
    fn procft_take_mm(mm: *mut bindings::mm_struct) -> c_int;
    fn procft_copy_regs(from: *mut bindings::task_struct, saved: *mut u64);
    fn procft_set_regs(saved: *const u64);
    fn procft_fpu_copy(from: *mut bindings::task_struct, data: *mut *mut c_void) -> c_int;
    fn procft_fpu_set(data: *const c_void, size: c_int) -> c_int;
    fn procft_fpu_free(data: *mut c_void);
    fn procft_flush_sigbus();
    fn procft_sigstate_alloc() -> *mut c_void;
    fn procft_sigstate_free(state: *mut c_void);
    fn procft_copy_signals(from: *mut bindings::task_struct, state: *mut c_void);
    fn procft_set_signals(state: *const c_void);
    fn procft_corrupt_byte(task: *mut bindings::task_struct, addr: usize) -> c_int;
    fn procft_page_lost(task: *mut bindings::task_struct, addr: usize) -> c_int;
    fn procft_read_stop(addr: usize, end: usize, lost: *mut bool) -> usize;
    fn procft_keep_going() -> bool;
    fn procft_kill_self_sigbus();
    fn procft_wait_killable(
        wq: *mut bindings::wait_queue_head,
        cond: unsafe extern "C" fn(*const c_void) -> bool,
        ready: Option<unsafe extern "C" fn(*const c_void) -> bool>,
        arg: *const c_void,
        key: c_long,
        owner: Pid,
        ticks: c_uint,
    ) -> c_int;
    fn procft_wait_killable_timeout(
        wq: *mut bindings::wait_queue_head,
        cond: unsafe extern "C" fn(*const c_void) -> bool,
        arg: *const c_void,
        ms: c_uint,
    ) -> c_int;
    fn procft_wait_interruptible(
        cond: unsafe extern "C" fn(*const c_void) -> bool,
        arg: *const c_void,
    ) -> c_int;
    fn procft_wake(wq: *mut bindings::wait_queue_head, n: c_uint, key: c_long);
    fn procft_trace_memory_error(pid: Pid, replica: Pid, primary: bool, pfn: usize);
    fn procft_trace_replica(what: c_int, pid: Pid, replica: Pid);
    fn procft_trace_promotion(pid: Pid, from: Pid, cause: c_int, pages: usize, us: usize);
    fn procft_drain();
}

/// The C side's hooks into the kernel (`/proc/procft`, the
/// `/proc/<pid>/ft_level` handlers, the system-call hook or tracepoints,
/// the other tracepoint probes).  Registered for as long as this value
/// lives.
pub(crate) struct Hooks(());

impl Hooks {
    /// Registers every C-side hook; on failure nothing stays registered.
    /// First checks that Rust and C agree on `struct task_struct`. System
    /// calls come from the kernel's hook (only those of the processes
    /// procft marks), or from the `sys_enter`/`sys_exit` tracepoints (every
    /// system call in the system) if the kernel lacks it or `force_tps`.
    pub(crate) fn register(force_tps: bool) -> Result<Self> {
        check_task_layout()?;
        // SAFETY: Called once from module init; the shim undoes its own
        // partial work on failure.
        kernel::error::to_result(unsafe { procft_shim_init(force_tps) })?;
        Ok(Self(()))
    }

    /// Whether system calls come from the kernel's system-call hook
    /// (`kernel/patches/0003`) rather than the tracepoints.
    pub(crate) fn syscall_hook() -> bool {
        // SAFETY: Reads a flag set once at registration.
        unsafe { procft_uses_syscall_hook() }
    }

    /// System calls of processes procft does not protect that reached its
    /// system-call probes since the module was loaded: with the hook, only
    /// a thread whose mark had yet to be put right; with the tracepoints,
    /// every system call of every other process.
    pub(crate) fn unprotected_calls() -> u64 {
        // SAFETY: Sums per-CPU counters; callable any time.
        unsafe { procft_unprotected_calls_sum() }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // SAFETY: `register` succeeded (this value exists), and this runs
        // once. On return no hook is running or can start.
        unsafe { procft_shim_exit() };
    }
}

/// Refuses to run if the kernel crate's view of `struct task_struct`
/// differs from the C compiler's (some configurations are mislaid by
/// bindgen; then every `Task` accessor would read the wrong field).
fn check_task_layout() -> Result {
    let fits = |what: &str, c_size: usize, room: usize| {
        if c_size > room {
            pr_err!("{} ({} bytes) does not fit procft's copy\n", what, c_size);
            return Err(ENOEXEC);
        }
        Ok(())
    };
    // SAFETY: Both return constants.
    let (regs, info) = unsafe { (procft_regs_size(), procft_siginfo_size()) };
    fits("struct pt_regs", regs, size_of::<SavedRegs>())?;
    fits("kernel_siginfo_t", info, size_of::<SigInfo>())?;
    let (mut size, mut tgid) = (0usize, 0usize);
    // SAFETY: Both pointers are valid for writes.
    unsafe { procft_task_layout(&mut size, &mut tgid) };
    let rust = (
        size_of::<bindings::task_struct>(),
        core::mem::offset_of!(bindings::task_struct, tgid),
    );
    if (size, tgid) != rust {
        pr_err!(
            "struct task_struct differs between C (size {}, tgid at {}) and Rust bindings \
             (size {}, tgid at {}); refusing to load (see kernel/procft.config)\n",
            size,
            tgid,
            rust.0,
            rust.1
        );
        return Err(ENOEXEC);
    }
    Ok(())
}

/// Borrows a `Task` from a raw pointer the kernel handed us.
///
/// # Safety
///
/// `ptr` must point to a valid task that stays alive for `'a`.
pub(crate) unsafe fn task_ref<'a>(ptr: *mut bindings::task_struct) -> &'a Task {
    // SAFETY: `Task` is a transparent wrapper of `struct task_struct`, and
    // the caller guarantees validity for `'a`.
    unsafe { &*ptr.cast::<Task>() }
}

/// Takes ownership of a task reference returned by the shim.
fn owned_task(ptr: *mut bindings::task_struct) -> Option<ARef<Task>> {
    // SAFETY: The shim's getters return NULL or a task with a reference
    // taken for the caller, which `ARef` now owns and releases with
    // `put_task_struct`.
    core::ptr::NonNull::new(ptr.cast::<Task>()).map(|p| unsafe { ARef::from_raw(p) })
}

/// Looks a task up by pid in the caller's pid namespace.
pub(crate) fn find_task(nr: Pid) -> Option<ARef<Task>> {
    // SAFETY: Any pid value may be passed.
    owned_task(unsafe { procft_get_task(nr) })
}

/// The thread of `task`'s process whose global id is `tid`.
pub(crate) fn thread_of(task: &Task, tid: Pid) -> Option<ARef<Task>> {
    // SAFETY: `task` is valid for the duration of the call; any id may be
    // passed.
    owned_task(unsafe { procft_get_thread(task.as_ptr(), tid) })
}

/// The thread-group leader of `task`: the task that stands for the
/// process.
pub(crate) fn leader(task: &Task) -> ARef<Task> {
    // SAFETY: `task` is valid for the call; a task always has a leader.
    let ptr = unsafe { procft_get_leader(task.as_ptr()) };
    // The leader of a valid task is never NULL; fall back to the task
    // itself rather than fail if that ever changed.
    owned_task(ptr).unwrap_or_else(|| task.into())
}

/// Whether the caller may ptrace-attach to `task` (ptrace's credential,
/// capability and dumpable rules; see `procft_may_attach` in the shim).
pub(crate) fn may_attach(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_may_attach(task.as_ptr()) }
}

/// Whether `task` is a kernel thread.
pub(crate) fn is_kthread(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_is_kthread(task.as_ptr()) }
}

/// Whether `task` has started to exit.
pub(crate) fn is_exiting(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_is_exiting(task.as_ptr()) }
}

/// Whether `task` is stopped (`SIGSTOP`, a tracer's stop) or frozen: it
/// runs no user code until it is let go.
pub(crate) fn is_stopped(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_is_stopped(task.as_ptr()) }
}

/// Number of threads in `task`'s process.
pub(crate) fn nr_threads(task: &Task) -> i32 {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_nr_threads(task.as_ptr()) }
}

/// Whether the running kernel has `/proc/<pid>/ft_level` (the patch in
/// `kernel/patches/`) and this module was built against it.
pub(crate) fn have_proc_ft_level() -> bool {
    // SAFETY: Reads a compile-time constant.
    unsafe { procft_have_proc_ft_level() }
}

/// Whether permission is the kernel's own `ptrace_may_access()` (LSM hooks
/// included) rather than `CAP_SYS_PTRACE` alone.
pub(crate) fn have_ptrace_may_access() -> bool {
    // SAFETY: Reads a compile-time constant.
    unsafe { procft_have_ptrace_may_access() }
}

/// Whether `task` is being traced.
pub(crate) fn is_ptraced(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_is_ptraced(task.as_ptr()) }
}

/// Whether `task` maps shared memory writably (`VM_SHARED` and `VM_WRITE`).
/// May sleep.
pub(crate) fn has_shared_writable(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_has_shared_writable(task.as_ptr()) }
}

/// Whether KSM may merge `task`'s pages with identical ones (it asked for
/// that with `prctl(PR_SET_MEMORY_MERGE)` or `madvise(MADV_MERGEABLE)`).
/// May sleep.
pub(crate) fn merges_pages(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_merges_pages(task.as_ptr()) }
}

/// Whether `task`'s address space was ever shared with another process
/// (`clone(CLONE_VM)` without `CLONE_THREAD` or `CLONE_VFORK`). May sleep.
pub(crate) fn shares_memory(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_shares_memory(task.as_ptr()) }
}

/// Whether `task` maps memory that `fork()` does not copy (`VM_DONTCOPY`:
/// `madvise(MADV_DONTFORK)`). May sleep.
pub(crate) fn has_dontfork(task: &Task) -> bool {
    // SAFETY: `task` is a valid task for the duration of the call.
    unsafe { procft_has_dontfork(task.as_ptr()) }
}

/// Whether `[start, start + len)` of the calling process's address space
/// overlaps a shared mapping. May sleep.
pub(crate) fn range_is_shared(start: usize, len: usize) -> bool {
    // SAFETY: Only reads the caller's VMA tree, under its mmap lock.
    unsafe { procft_range_is_shared(start, len) }
}

/// The set of protected tgids that the syscall probes filter on. The
/// registry keeps it in step with itself: `reserve` before taking the
/// registry lock (it may sleep), then `add` (never allocates after a
/// reservation) or `release`, and `remove`, under the lock.
pub(crate) mod filter {
    use super::*;

    /// Makes room for `tgid`. May sleep.
    pub(crate) fn reserve(tgid: Pid) -> Result {
        // SAFETY: Any tgid may be passed.
        kernel::error::to_result(unsafe { procft_filter_reserve(tgid) })
    }

    /// Drops a reservation that `add` did not use.
    pub(crate) fn release(tgid: Pid) {
        // SAFETY: Any tgid may be passed.
        unsafe { procft_filter_release(tgid) }
    }

    /// Marks `tgid` protected, as the primary of the group whose `roles`
    /// these are; does not allocate after `reserve`. Returns the
    /// memory-error kill policy an earlier protection of `tgid` had not
    /// given back yet (see [`remove`]): the process still has procft's.
    ///
    /// The probes hand the role back ([`Roles::from_role`]) until a Tasks
    /// Trace RCU grace period after the entry is replaced or removed: the
    /// caller keeps `roles` that long ([`defer`]).
    /// `ENOMEM` if the entry could not be stored: without a reservation
    /// (another caller's `release` may drop the one this caller relied on)
    /// it allocates without sleeping, which may fail.
    pub(crate) fn add(tgid: Pid, roles: &Roles) -> Result<Option<i32>> {
        // SAFETY: Any tgid may be passed; the role outlives the entry, by
        // the function's contract.
        let policy = unsafe { procft_filter_add(tgid, roles.primary()) };
        match policy {
            0.. => Ok(Some(policy)),
            -1 => Ok(None),
            e => Err(Error::from_errno(e)),
        }
    }

    /// Marks a new duplicate's `tgid`, of the group whose `roles` these
    /// are, from the fork probe (no sleeping); `roles` kept as for [`add`].
    pub(crate) fn add_atomic(tgid: Pid, roles: &Roles) -> Result {
        // SAFETY: As for `add`.
        kernel::error::to_result(unsafe { procft_filter_add_atomic(tgid, roles.dup()) })
    }

    /// Marks `tgid` unprotected. Does not sleep. With `restore`, the
    /// process takes back that memory-error kill policy at its next system
    /// call (from then on the probes ignore it); if it exits first, or the
    /// module is unloaded first, it never does.
    pub(crate) fn remove(tgid: Pid, restore: Option<i32>) {
        // SAFETY: Any tgid and policy may be passed.
        unsafe { procft_filter_remove(tgid, restore.unwrap_or(-1)) }
    }
}

/// The registers of the task in a syscall tracepoint, as the C side passed
/// them. Only the C side looks inside.
#[derive(Clone, Copy)]
pub(crate) struct Regs(*mut bindings::pt_regs);

impl Regs {
    /// # Safety
    ///
    /// `ptr` must be the `pt_regs` of the current task in a syscall
    /// tracepoint, valid until the probe returns.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::pt_regs) -> Self {
        Self(ptr)
    }
}

/// Registers of a primary whose system call was turned into a `clone3`
/// (a copy of a `struct pt_regs`; its size is checked at load).
#[derive(Clone, Copy)]
pub(crate) struct SavedRegs(pub(crate) [u64; 32]);

impl SavedRegs {
    /// The system call these registers stand at (x86-64 `pt_regs`:
    /// `orig_ax`, then `di`, `si`, `dx`, `r10`, `r8`, `r9`).
    pub(crate) fn call(&self) -> (i64, [usize; 6]) {
        let r = &self.0;
        let args = [r[14], r[13], r[12], r[7], r[9], r[8]].map(|v| v as usize);
        (r[15] as i64, args)
    }
}

/// Turns the system call being entered into `clone3()` with `args`,
/// keeping the registers in `saved` (see `procft_inject_clone`). May fault
/// (writes the primary's stack): not under a spinlock.
pub(crate) fn inject_clone(
    regs: Regs,
    args: &bindings::clone_args,
    saved: &mut SavedRegs,
) -> Result {
    // SAFETY: `regs` is valid during the probe (type invariant); `args` is
    // a whole `struct clone_args`; `saved` has room for a `pt_regs`
    // (checked at load).
    kernel::error::to_result(unsafe { procft_inject_clone(regs.0, args, saved.0.as_mut_ptr()) })
}

/// Makes the calling duplicate, on its way to user space, make
/// `clone3(args)` first, or `clone()` with the same arguments if `legacy`:
/// `rewind` if it is at a call's exit (see `procft_inject_thread_clone`).
/// May fault (writes its stack): not under a spinlock.
pub(crate) fn inject_thread_clone(
    args: &bindings::clone_args,
    rewind: bool,
    legacy: bool,
) -> Result {
    // SAFETY: Acts on the calling task's registers and stack; `args` is a
    // whole `struct clone_args`.
    kernel::error::to_result(unsafe { procft_inject_thread_clone(args, rewind, legacy) })
}

/// The FS base (TLS pointer) and `clear_child_tid` address of `task`, a
/// thread of the caller's process held in the kernel.
pub(crate) fn thread_state(task: &Task) -> (usize, usize) {
    let (mut fsbase, mut clear_tid): (c_ulong, c_ulong) = (0, 0);
    // SAFETY: `task` is valid for the duration of the call; the two are
    // valid places to write.
    unsafe { procft_thread_state(task.as_ptr(), &mut fsbase, &mut clear_tid) };
    (fsbase, clear_tid)
}

/// The user registers of `task`, another thread of the caller's process
/// held in the kernel, with its signal state copied into `sig`; `ESRCH` if
/// it is exiting.
pub(crate) fn copy_thread(task: &Task, sig: &mut SigState) -> Result<SavedRegs> {
    let mut regs = SavedRegs([0; 32]);
    // SAFETY: `task` is valid for the duration of the call; `regs` has
    // room for a `pt_regs` (checked at load); `sig.0` is room from
    // `procft_sigstate_alloc`.
    kernel::error::to_result(unsafe {
        procft_copy_thread(task.as_ptr(), regs.0.as_mut_ptr(), sig.0)
    })?;
    Ok(regs)
}

/// The global ids of the caller's process's other threads (not exiting),
/// into `tids`; how many there are (more than `tids.len()` if they did not
/// fit).
pub(crate) fn thread_ids(tids: &mut [Pid]) -> usize {
    let max = tids.len().min(c_int::MAX as usize) as c_int;
    // SAFETY: `tids` has room for `max` ids.
    let n = unsafe { procft_thread_ids(tids.as_mut_ptr(), max) };
    n.max(0) as usize
}

/// The global ids of every thread (not exiting) of `task`'s process,
/// into `tids`; how many there are (more than `tids.len()` if they did
/// not fit).
pub(crate) fn process_thread_ids(task: &Task, tids: &mut [Pid]) -> usize {
    let max = tids.len().min(c_int::MAX as usize) as c_int;
    // SAFETY: `task` is valid for the call; `tids` has room for `max` ids.
    let n = unsafe { procft_process_thread_ids(task.as_ptr(), tids.as_mut_ptr(), max) };
    n.max(0) as usize
}

/// Restores `saved` into `regs` and makes the task re-issue its call.
pub(crate) fn regs_restart(regs: Regs, saved: &SavedRegs) {
    // SAFETY: As for `inject_clone`.
    unsafe { procft_regs_restart(regs.0, saved.0.as_ptr()) }
}

/// In the primary's return from the `fork()` that made `child`, one of
/// its duplicates: copies the primary's wipe-on-fork memory, which fork()
/// left empty in the child, into it (see `procft_copy_wipeonfork`). May
/// sleep.
pub(crate) fn copy_wipeonfork(child: &Task) -> Result {
    // SAFETY: `child` is a valid task (a reference is held); the caller is
    // the primary, in process context.
    kernel::error::to_result(unsafe { procft_copy_wipeonfork(child.as_ptr()) })
}

/// Gives the calling task its own copy of the anonymous pages it shares
/// copy-on-write, looking at `budget` present pages at most, from `pos`,
/// and stopping at the next page once `hold` is not zero; returns how many
/// pages it wrote and where to go on from, or `None` once it has reached
/// the end of the address space. An error (`EINTR` for a fatal signal)
/// comes with the address of the page that failed, where the walk goes on
/// next time. May sleep.
pub(crate) fn unshare_some(
    pos: usize,
    budget: usize,
    hold: &AtomicU32,
) -> core::result::Result<(usize, Option<usize>), (Error, usize)> {
    let mut next: c_ulong = pos as c_ulong;
    // SAFETY: Works on the caller's own address space; `next` is a valid
    // location for the call; `hold` outlives it and is only read (an
    // `AtomicU32` has the layout of a `u32`, read with `READ_ONCE()`).
    let n = unsafe { procft_unshare_some(&mut next, budget as c_ulong, hold.as_ptr()) };
    if n < 0 {
        // Negative values are errnos, which fit a c_int.
        Err((Error::from_errno(n as c_int), next as usize))
    } else {
        Ok((n as usize, (next != c_ulong::MAX).then_some(next as usize)))
    }
}

/// Skips the system call being entered (at `sys_enter`); its return value
/// is set later with [`set_return`].
pub(crate) fn suppress(regs: Regs) {
    // SAFETY: `regs` is valid during the probe (type invariant).
    unsafe { procft_suppress(regs.0) }
}

/// Sets what the calling task's current system call returns.
pub(crate) fn set_return(value: isize) {
    // SAFETY: Acts on the calling task's saved user registers.
    unsafe { procft_set_return(value) }
}

/// Makes the calling task issue system call `nr` again when it returns to
/// user space.
pub(crate) fn restart_call(nr: i64) {
    // SAFETY: Acts on the calling task's saved user registers.
    unsafe { procft_restart_call(nr as c_long) }
}

/// A copy of a `kernel_siginfo_t` (its size is checked at load).
#[derive(Clone, Copy)]
pub(crate) struct SigInfo(pub(crate) [u64; 16]);

impl SigInfo {
    /// A copy of `*info`, or all zeroes if `info` is NULL.
    ///
    /// # Safety
    ///
    /// `info` must be NULL or point to a valid `kernel_siginfo`.
    pub(crate) unsafe fn from_raw(info: *const bindings::kernel_siginfo) -> Self {
        let mut copy = SigInfo([0; 16]);
        if !info.is_null() {
            // SAFETY: `info` is a valid siginfo by the function's contract,
            // no larger than the copy (checked at load).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    info.cast::<u8>(),
                    copy.0.as_mut_ptr().cast::<u8>(),
                    siginfo_size(),
                )
            };
        }
        copy
    }
}

/// `sizeof(kernel_siginfo_t)`.
pub(crate) fn siginfo_size() -> usize {
    // SAFETY: Returns a constant.
    unsafe { procft_siginfo_size() }
}

/// Whether the caller will handle a signal before running user code.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: Reads the calling task's flags.
    unsafe { procft_signal_pending() }
}

/// The caller's user instruction pointer.
pub(crate) fn user_ip() -> usize {
    // SAFETY: Reads the calling task's saved registers.
    unsafe { procft_user_ip() }
}

/// The caller's user stack pointer.
pub(crate) fn user_sp() -> usize {
    // SAFETY: Reads the calling task's saved registers.
    unsafe { procft_user_sp() }
}

/// Whether the caller's system call came in through a 32-bit entry
/// (`int $0x80`, or `sysenter`/`syscall` from 32-bit code).
pub(crate) fn in_ia32_syscall() -> bool {
    // SAFETY: Reads the calling task's thread flags.
    unsafe { procft_in_ia32_syscall() }
}

/// The caller's system call number (-1 outside one).
pub(crate) fn syscall_nr() -> i64 {
    // SAFETY: Reads the calling task's saved registers.
    unsafe { procft_syscall_nr() as i64 }
}

/// The CPU time the threads of `task`'s process have had so far, in
/// nanoseconds (as of their last scheduler update: at most a tick old
/// while one runs).
pub(crate) fn runtime_ns(task: &Task) -> u64 {
    // SAFETY: `task` is valid for the duration of the call.
    unsafe { procft_runtime_ns(task.as_ptr()) }
}

/// Argument `i` (0 to 5) of the caller's system call (also at its
/// `sys_exit`: the argument registers are kept).
pub(crate) fn syscall_arg(i: u32) -> usize {
    // SAFETY: Reads the calling task's saved registers; `i` is checked.
    unsafe { procft_syscall_arg(i) as usize }
}

/// The six argument registers of the caller's system call
/// ([`syscall_arg`]).
pub(crate) fn syscall_args() -> [usize; 6] {
    core::array::from_fn(|i| syscall_arg(i as u32))
}

/// The caller's `clear_child_tid` (the word its exit clears), which it
/// forgets: its exit then writes nothing (0 if it had none).
pub(crate) fn take_clear_child_tid() -> usize {
    // SAFETY: Acts on the calling task's own field.
    unsafe { procft_take_clear_child_tid() as usize }
}

/// Rewrites the entry of each of the caller's vDSO time functions into
/// the system call it stands for (`procft_vdso_make_calls`): how many it
/// rewrote (none if done before, or if there is no vDSO).
pub(crate) fn vdso_make_calls() -> Result<usize> {
    // SAFETY: Acts on the calling task's own address space, from its
    // system call.
    let n = unsafe { procft_vdso_make_calls() };
    kernel::error::to_result(n).map(|()| n as usize)
}

/// The caller's time-stamp counter reads (`rdtsc`, `rdtscp`), with the
/// kernel's hook for them (`kernel/patches/0005`).
pub(crate) mod tsc {
    use super::*;

    /// Makes the caller's counter reads trap into the hook (`on`), or run
    /// natively again; children forked later inherit it. False if the
    /// kernel cannot trap them.
    pub(crate) fn trap_self(on: bool) -> bool {
        // SAFETY: Acts on the calling task only.
        unsafe { procft_tsc_trap_self(on) }
    }

    /// Whether the kernel can trap counter reads for procft
    /// (`kernel/patches/0005`, with its system-call hook in use).
    pub(crate) fn can_trap() -> bool {
        // SAFETY: No arguments; reads a flag.
        unsafe { procft_tsc_can_trap() }
    }

    /// What the caller's `rdtsc` would read now, and the `TSC_AUX` an
    /// `rdtscp` would give with it.
    pub(crate) fn read() -> (u64, u32) {
        let mut aux = 0u32;
        // SAFETY: `aux` is valid for writing.
        let tsc = unsafe { procft_tsc_read(&mut aux) };
        (tsc, aux)
    }

    /// Finishes the caller's trapped `rdtsc` (or `rdtscp`) as if it had
    /// read `tsc` (and `aux`): its registers set, its instruction pointer
    /// past the instruction. Only at such a trap, or in a task_work the
    /// trap queued.
    pub(crate) fn emulate(rdtscp: bool, tsc: u64, aux: u32) {
        // SAFETY: Writes the calling task's saved user registers.
        unsafe { procft_tsc_emulate(rdtscp, tsc, aux) }
    }
}

/// Reads `to.len()` words from the caller's memory at `addr`, in one
/// user-access section (cheaper than [`kernel::uaccess::UserSlice`] for
/// the few words of a time read's output). `EFAULT` if one cannot be read.
pub(crate) fn get_user_words(to: &mut [u64], addr: usize) -> Result {
    let words = c_uint::try_from(to.len()).map_err(|_| EINVAL)?;
    // SAFETY: `to` is valid for writes of `words` words; the C side checks
    // the user range (`user_access_begin`) and handles faults.
    kernel::error::to_result(unsafe {
        procft_get_user_words(to.as_mut_ptr(), addr as c_ulong, words)
    })
}

/// Most bytes [`read_user_small`] reads at once.
pub(crate) const SMALL_READ: usize = 512;

/// [`read_user_small`]'s buffer: the words holding the bytes read.
pub(crate) type SmallRead = [core::mem::MaybeUninit<u64>; SMALL_READ / 8 + 1];

/// A [`SmallRead`] not yet written (each read fills what it returns).
pub(crate) const SMALL_READ_BUF: SmallRead = [core::mem::MaybeUninit::uninit(); SMALL_READ / 8 + 1];

/// Reads `len` bytes (at most [`SMALL_READ`], all in one page) of the
/// caller's memory at `addr` into `buf`, as the aligned words that hold
/// them, in one user-access section (see [`get_user_words`]); returns the
/// bytes. For the few bytes most calls send: `copy_from_user()` costs a
/// call and a copy loop more than they do. An aligned word never
/// straddles a cache line, so the words touch the same lines, in the same
/// page, as the bytes. `EFAULT` if they cannot be read (`EINVAL` for a
/// range this does not read).
pub(crate) fn read_user_small(buf: &mut SmallRead, addr: usize, len: usize) -> Result<&[u8]> {
    use kernel::page::PAGE_SIZE;
    let head = addr % 8;
    if len == 0 {
        return Ok(&[]);
    }
    if len > SMALL_READ || addr % PAGE_SIZE + len > PAGE_SIZE {
        return Err(EINVAL);
    }
    let words = (head + len).div_ceil(8);
    // SAFETY: `buf` is valid for writes of `words` (at most
    // `SMALL_READ / 8 + 1`) words; the C side checks the user range
    // (`user_access_begin`) and handles faults.
    kernel::error::to_result(unsafe {
        procft_get_user_words(
            buf.as_mut_ptr().cast(),
            (addr - head) as c_ulong,
            words as c_uint,
        )
    })?;
    // SAFETY: The call succeeded: it initialised the first `words` words
    // of `buf`, which hold bytes `head..head + len` (`u8` has no alignment
    // and every bit pattern is one).
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>().add(head), len) })
}

/// Writes `from` into the caller's memory at `addr`, as
/// [`get_user_words`] reads. `EFAULT` if a word cannot be written.
pub(crate) fn put_user_words(addr: usize, from: &[u64]) -> Result {
    let words = c_uint::try_from(from.len()).map_err(|_| EINVAL)?;
    // SAFETY: `from` is valid for reads of `words` words; the C side
    // checks the user range and handles faults.
    kernel::error::to_result(unsafe {
        procft_put_user_words(addr as c_ulong, from.as_ptr(), words)
    })
}

/// Whether the caller's system call was made by the vDSO's code (its
/// fallback when the clocksource cannot be read in user space), not by a
/// stub of [`vdso_make_calls`].
pub(crate) fn call_from_vdso() -> bool {
    // SAFETY: Reads the calling task's saved registers and its own mm.
    unsafe { procft_call_from_vdso() }
}

/// Turns every entry `kind` of the caller's saved auxiliary vector (what
/// `/proc/<pid>/auxv` shows) into `AT_IGNORE`.
pub(crate) fn forget_auxv(kind: u64) {
    // SAFETY: Acts on the calling task's own mm, which it holds.
    unsafe { procft_forget_auxv(kind as c_ulong) }
}

/// Queues signal `sig` with `info` to the caller.
pub(crate) fn send_self(sig: i32, info: &SigInfo) -> Result {
    // SAFETY: `info` holds a whole `kernel_siginfo_t` (checked at load).
    kernel::error::to_result(unsafe { procft_send_self(sig, info.0.as_ptr()) })
}

/// The caller's memory-error kill policy (`PR_MCE_KILL_*`), as
/// `prctl(PR_MCE_KILL_GET)` reports it.
pub(crate) fn mce_policy() -> i32 {
    // SAFETY: Reads flags of the calling task.
    unsafe { procft_mce_policy() }
}

/// Sets the caller's memory-error kill policy, as `prctl(PR_MCE_KILL)`
/// does.
pub(crate) fn set_mce_policy(policy: i32) {
    let task = current!();
    // SAFETY: The calling task may write its own flags.
    unsafe { procft_set_mce_policy(task.as_ptr(), policy) }
}

/// Sets the memory-error kill policy of `child`, a new child of the
/// caller's that has not run yet (from the fork probe).
pub(crate) fn set_child_mce_policy(child: &Task, policy: i32) {
    // SAFETY: A child that has not run yet has no other writer of its
    // flags (the function's contract).
    unsafe { procft_set_mce_policy(child.as_ptr(), policy) }
}

/// Where a task maps a frame, as the frame's own page offset tells
/// ([`frame_owner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// At this user address.
    At(usize),
    /// Nowhere.
    Nowhere,
    /// The frame does not say where it is mapped (a KSM or hugetlb page,
    /// the zero page, a page-cache page memory failure took out of its
    /// file, ...): only a walk of the task's pages can tell
    /// ([`find_pfn`], [`find_poisoned`]).
    Unknown,
}

/// Where `task` maps frame `pfn` (with `poisoned`: where it has the
/// poisoned-page entry memory failure left for it), found from the
/// frame's page offset: one page-table lookup per mapping of the task,
/// whatever its size. May sleep.
pub(crate) fn frame_owner(task: &Task, pfn: usize, poisoned: bool) -> Owner {
    let mut addr = 0;
    // SAFETY: `task` is valid for the duration of the call and `addr` is
    // a valid place for the address.
    match unsafe { procft_frame_owner(task.as_ptr(), pfn, poisoned, &mut addr) } {
        1 => Owner::At(addr),
        0 => Owner::Nowhere,
        _ => Owner::Unknown,
    }
}

/// The user address at which `task` maps page frame `pfn`, if it does,
/// by a walk of its pages (work grows with its resident size; for the
/// frames [`frame_owner`] cannot place). May sleep.
pub(crate) fn find_pfn(task: &Task, pfn: usize) -> Option<usize> {
    // SAFETY: `task` is valid for the duration of the call.
    let addr = unsafe { procft_find_pfn(task.as_ptr(), pfn) };
    (addr != 0).then_some(addr)
}

/// Moves the caller (a new duplicate) to the CPUs of a memory node other
/// than `primary`'s, so that the pages it copies and allocates are in other
/// memory; the node, if there is another one. May sleep.
pub(crate) fn prefer_other_node(primary: &Task) -> Option<i32> {
    // SAFETY: `primary` is valid for the duration of the call; the rest
    // acts on the caller.
    let nid = unsafe { procft_prefer_other_node(primary.as_ptr()) };
    (nid >= 0).then_some(nid)
}

/// Where `task` has the poisoned-page entry memory failure left when it
/// unmapped frame `pfn` from it, by a walk of its pages (for the frames
/// [`frame_owner`] cannot place). May sleep.
pub(crate) fn find_poisoned(task: &Task, pfn: usize) -> Option<usize> {
    // SAFETY: `task` is valid for the duration of the call.
    let addr = unsafe { procft_find_poisoned(task.as_ptr(), pfn) };
    (addr != 0).then_some(addr)
}

/// Replaces the caller's page at `addr`, which was on the failed frame
/// `pfn`, by a fresh frame holding `from`'s copy. May sleep.
pub(crate) fn repair_page(addr: usize, pfn: usize, from: &Task) -> Result {
    // SAFETY: Acts on the caller's own address space; `from` is valid.
    kernel::error::to_result(unsafe { procft_repair_page(addr, pfn, from.as_ptr()) })
}

/// Makes the caller's private memory a copy of `from`'s, on fresh frames
/// (`from` is a duplicate stopped at a system-call boundary with the
/// caller's mappings). Returns the pages copied. On an error other than
/// `ESTALE` (layouts differ, nothing changed) the caller's memory is
/// incomplete. May sleep.
pub(crate) fn adopt_memory(from: &Task) -> Result<usize> {
    // SAFETY: Acts on the caller's own address space; `from` is valid.
    let n = unsafe { procft_adopt_memory(from.as_ptr()) };
    if n < 0 {
        // Negative values are errnos, which fit a c_int.
        Err(Error::from_errno(n as c_int))
    } else {
        Ok(n as usize)
    }
}

/// `from`'s address space, with a reference; `ESRCH` if it has none left
/// (it is exiting).
pub(crate) fn task_mm(from: &Task) -> Result<ARef<MmWithUser>> {
    // SAFETY: `from` is valid for the call.
    let mm = unsafe { procft_get_mm(from.as_ptr()) };
    let mm = NonNull::new(mm.cast::<MmWithUser>()).ok_or(ESRCH)?;
    // SAFETY: `get_task_mm()` gave us a reference (`mm_users`), which the
    // `ARef` now owns; `MmWithUser` is a transparent `mm_struct`.
    Ok(unsafe { ARef::from_raw(mm) })
}

/// The caller (a primary, in its own context) continues on `mm`, a
/// duplicate's address space, which the kernel switches to as `execve()`
/// would, and releases its own: no page is copied. The duplicate must
/// stand at the caller's next system call and have been sent `SIGKILL`
/// first, so that it never runs in user space on that memory again (see
/// `procft_take_mm`). `ESTALE` if `mm` lacks one of the caller's mappings,
/// `EOPNOTSUPP` if the kernel lacks `replace_mm()`; nothing changed then.
pub(crate) fn take_memory(mm: ARef<MmWithUser>) -> Result {
    // SAFETY: Acts on the caller's own address space; `mm` is a valid
    // address space with a reference we own.
    let ret = unsafe { procft_take_mm(mm.as_raw()) };
    if ret == 0 {
        // `replace_mm()` consumed the reference.
        let _ = ARef::into_raw(mm);
    }
    kernel::error::to_result(ret)
}

/// Whether the kernel lets a promotion take over a duplicate's address
/// space (`replace_mm()`, kernel/patches/0004).
pub(crate) fn have_replace_mm() -> bool {
    // SAFETY: Reads a compile-time constant.
    unsafe { procft_have_replace_mm() }
}

/// A copy of `from`'s user registers. `from` must be stopped in procft
/// code and kept from going on or exiting by the group lock the caller
/// holds (its kernel stack, where they are, is then in place).
pub(crate) fn copy_regs(from: &Task) -> SavedRegs {
    let mut saved = SavedRegs([0; 32]);
    // SAFETY: `saved` is large enough (checked at load); `from`'s stack is
    // in place by the function's contract.
    unsafe { procft_copy_regs(from.as_ptr(), saved.0.as_mut_ptr()) };
    saved
}

/// The caller's user registers become `saved` (from [`copy_regs`]).
pub(crate) fn set_regs(saved: &SavedRegs) {
    // SAFETY: Acts on the caller's own saved user registers; `saved` holds
    // a whole `struct pt_regs`.
    unsafe { procft_set_regs(saved.0.as_ptr()) }
}

/// A copy of a duplicate's FPU and extended register state (the x86
/// xstate regset), taken while it is held in the kernel.
///
/// # Invariants
///
/// `data` points to `size` bytes that `procft_fpu_copy` allocated, owned
/// by this value.
pub(crate) struct FpuState {
    data: *mut c_void,
    size: c_int,
}

// SAFETY: The buffer is owned by the value alone and freed with `kfree`,
// which any task may call.
unsafe impl Send for FpuState {}

impl FpuState {
    /// Copies the state of `from`, a duplicate held in the kernel by
    /// procft, once it is in memory (once `from` has been switched out:
    /// `EBUSY` if that takes more than a second); `ENOMEM`, `EOPNOTSUPP`
    /// (no FPU regset) or the regset's own error. May sleep.
    pub(crate) fn copy(from: &Task) -> Result<Self> {
        let mut data = core::ptr::null_mut();
        // SAFETY: `from` is valid (its flags, `on_cpu` and fpstate are
        // read); `data` is where the buffer goes.
        let size = unsafe { procft_fpu_copy(from.as_ptr(), &mut data) };
        kernel::error::to_result(size)?;
        // INVARIANT: `procft_fpu_copy` allocated `size` bytes at `data`.
        Ok(Self { data, size })
    }

    /// The caller's FPU and extended register state becomes this one, on
    /// its way back to user space.
    pub(crate) fn set(&self) -> Result {
        // SAFETY: Acts on the caller's own state; `data` holds `size`
        // bytes of the regset, by the type invariants.
        kernel::error::to_result(unsafe { procft_fpu_set(self.data, self.size) })
    }
}

impl Drop for FpuState {
    fn drop(&mut self) {
        // SAFETY: Owned by this value, by the type invariants.
        unsafe { procft_fpu_free(self.data) };
    }
}

/// Flips the bits of the byte at `addr` in `task`'s memory (test-only).
pub(crate) fn corrupt_byte(task: &Task, addr: usize) -> Result {
    // SAFETY: `task` is valid for the duration of the call.
    kernel::error::to_result(unsafe { procft_corrupt_byte(task.as_ptr(), addr) })
}

/// Whether `task`'s page at `addr` is lost to memory failure (an entry of
/// a poisoned frame, not replaced yet): `Ok(true)`; `Ok(false)` if it is
/// there (an absent page is faulted in for reading to find out); `EFAULT`
/// if nothing readable is mapped there. May sleep.
pub(crate) fn page_state(task: &Task, addr: usize) -> Result<bool> {
    // SAFETY: `task` is valid for the duration of the call.
    match unsafe { procft_page_lost(task.as_ptr(), addr) } {
        1 => Ok(true),
        0 => Ok(false),
        _ => Err(EFAULT),
    }
}

/// Whether `task`'s page at `addr` is lost to memory failure. May sleep.
pub(crate) fn page_lost(task: &Task, addr: usize) -> bool {
    matches!(page_state(task, addr), Ok(true))
}

/// Where a read of the caller's memory that went on from `addr` (the first
/// byte the kernel did not use) towards `end` stopped: the first page from
/// there the kernel could not read, and whether that page is lost to memory
/// failure; `None` if it could read every page up to `end`. Costs what is
/// resident in the range, not its length. May sleep.
pub(crate) fn read_stop(addr: usize, end: usize) -> Option<(usize, bool)> {
    let mut lost = false;
    // SAFETY: Reads the caller's own page tables; `lost` is a valid bool.
    let stop = unsafe { procft_read_stop(addr, end, &mut lost) };
    (stop < end).then_some((stop, lost))
}

/// For long loops in the caller's context: lets others run, and says
/// whether the caller may go on (no fatal signal is pending). May sleep.
pub(crate) fn keep_going() -> bool {
    // SAFETY: Acts on the calling task only.
    unsafe { procft_keep_going() }
}

/// A replica's signal state (handlers, blocked mask, alternate stack),
/// copied with [`SigState::copy`] and given to the caller with
/// [`SigState::set`].
pub(crate) struct SigState(*mut c_void);

// SAFETY: The room is owned by the value alone and freed with `kfree`,
// which any task may call.
unsafe impl Send for SigState {}

impl SigState {
    /// Room for a copy; `ENOMEM` if there is none.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No preconditions.
        let p = unsafe { procft_sigstate_alloc() };
        if p.is_null() {
            Err(ENOMEM)
        } else {
            Ok(Self(p))
        }
    }

    /// The caller's own signal state (blocked mask, alternate stack)
    /// becomes this copy's ([`copy_thread`]); the handlers, which its
    /// process's other threads share, are left alone.
    pub(crate) fn set_thread(&self) {
        // SAFETY: `self.0` holds a copy made by `procft_copy_thread`.
        unsafe { procft_set_thread_signals(self.0) }
    }

    /// Copies `from`'s signal state. The caller holds the group lock under
    /// which `from` is listed as a duplicate (so it has not passed the exit
    /// probe). Does not sleep.
    pub(crate) fn copy(&mut self, from: &Task) {
        // SAFETY: `self.0` is room from `procft_sigstate_alloc`; `from`'s
        // sighand is there by the function's contract.
        unsafe { procft_copy_signals(from.as_ptr(), self.0) }
    }

    /// The caller's signal state becomes the copy.
    pub(crate) fn set(&self) {
        // SAFETY: `self.0` holds a copy made by `copy` (or zeroed room is
        // never passed: callers set only after copying).
        unsafe { procft_set_signals(self.0) }
    }
}

impl Drop for SigState {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `procft_sigstate_alloc` and is freed once.
        unsafe { procft_sigstate_free(self.0) }
    }
}

/// Discards the caller's pending SIGBUS, keeping its disposition.
pub(crate) fn flush_sigbus() {
    // SAFETY: Acts on the calling task's own signal state.
    unsafe { procft_flush_sigbus() }
}

/// Sends the caller SIGBUS as the kernel's memory-error kill does
/// (unblocked; a handler, if the program has one, runs).
pub(crate) fn kill_self_sigbus() {
    // SAFETY: Acts on the calling task.
    unsafe { procft_kill_self_sigbus() }
}

/// Sends SIGKILL to `task`'s process (its whole thread group). Does not
/// sleep.
pub(crate) fn kill(task: &Task) {
    // SAFETY: `task` is valid for the duration of the call.
    unsafe { procft_kill(task.as_ptr()) }
}

/// Makes the calling task run `procft_rs_task_work` before it returns to
/// user space, or when it exits.
pub(crate) fn queue_task_work() -> Result {
    // SAFETY: Acts on the calling task.
    kernel::error::to_result(unsafe { procft_queue_task_work() })
}

/// A duplicate's own task_work, allocated once: [`OwnWork::queue`] is
/// [`queue_task_work`] without an allocation per call. Dropping it while it
/// is queued (the exit probe forgets a duplicate before the task runs its
/// works) leaves it to be freed by the work itself, once it has run.
pub(crate) struct OwnWork(*mut c_void);

// SAFETY: The work is only queued on the task that calls `queue`, and
// `procft_own_work_free` may be called from any context.
unsafe impl Send for OwnWork {}

impl OwnWork {
    /// A new work, charged to the caller's memory cgroup. May sleep.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No preconditions.
        let p = unsafe { procft_own_work_alloc() };
        if p.is_null() {
            Err(ENOMEM)
        } else {
            Ok(Self(p))
        }
    }

    /// A handle to queue the work with, valid while `self` lives.
    pub(crate) fn handle(&self) -> OwnWorkRef {
        OwnWorkRef(self.0)
    }
}

impl Drop for OwnWork {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `procft_own_work_alloc`; the owner's
        // claim is dropped once.
        unsafe { procft_own_work_free(self.0) }
    }
}

/// A copy of an [`OwnWork`]'s pointer, taken under the group's lock, to
/// queue the work once the lock is dropped.
#[derive(Clone, Copy)]
pub(crate) struct OwnWorkRef(*mut c_void);

impl OwnWorkRef {
    /// [`queue_task_work`], with this work unless it is queued already.
    ///
    /// # Safety
    ///
    /// The [`OwnWork`] it came from must not have been dropped, and the
    /// caller must be the only task that queues it. (A duplicate's work is
    /// dropped only by that duplicate's exit probe, or with its group once
    /// it is gone: never while the duplicate is in a probe or task_work.)
    pub(crate) unsafe fn queue(self) -> Result {
        // SAFETY: Not dropped, and queued by this task only, by the
        // function's contract.
        kernel::error::to_result(unsafe { procft_queue_own_work(self.0) })
    }
}

/// Brings `task`, blocked in a system call that the kernel restarts
/// unseen, to a system-call boundary: it makes the call again. Safe in
/// atomic context.
pub(crate) fn kick(task: &Task) -> Result {
    // SAFETY: `task` is valid for the duration of the call.
    kernel::error::to_result(unsafe { procft_kick(task.as_ptr()) })
}

/// Stops `task`, a thread of a multi-threaded primary running on without
/// a system call, on its way back to user mode, where procft's
/// [`crate::sync::threads::preempted`] runs with `turn`. May sleep.
pub(crate) fn preempt(task: &Task, turn: u64) -> Result {
    // SAFETY: `task` is valid for the duration of the call.
    kernel::error::to_result(unsafe { procft_preempt(task.as_ptr(), turn) })
}

/// Whether the caller returns from a system call that the kernel is about
/// to make again (or end with `EINTR` for a handler): its registers are
/// not those it will run with.
pub(crate) fn call_restarting() -> bool {
    // SAFETY: Reads the calling task's saved registers.
    unsafe { procft_call_restarting() }
}

/// Reads `buf.len()` bytes at the caller's user address `addr`, a page at
/// a time, each from user memory or, for a page the caller lost to memory
/// failure, from its frame (what it wrote there before, read with a
/// machine-check-safe copy): for a call's output that the kernel wrote
/// just before its page was lost. `EFAULT` if a page is neither readable
/// nor one it lost, `EIO` if the bytes are among the failed ones.
pub(crate) fn read_user_or_lost(addr: usize, buf: &mut [core::mem::MaybeUninit<u8>]) -> Result {
    use kernel::{
        page::PAGE_SIZE,
        uaccess::{UserPtr, UserSlice},
    };
    let mut done = 0;
    while done < buf.len() {
        let at = addr.wrapping_add(done);
        let n = (buf.len() - done).min(PAGE_SIZE - at % PAGE_SIZE);
        let piece = &mut buf[done..done + n];
        let mut reader = UserSlice::new(UserPtr::from_addr(at), n).reader();
        if reader.read_raw(piece).is_err() {
            // SAFETY: `piece` is valid for writes of `n` bytes; the call
            // writes at most that many.
            kernel::error::to_result(unsafe {
                procft_read_lost(at, piece.as_mut_ptr().cast(), n)
            })?;
        }
        done += n;
    }
    Ok(())
}

/// [`kick`]s every other thread of the caller's process; how many.
pub(crate) fn kick_threads() -> usize {
    // SAFETY: Walks the caller's own thread group.
    unsafe { procft_kick_threads() }.max(0) as usize
}

/// The system call `task` (not the caller) sleeps in interruptibly, and
/// its first argument; a snapshot.
pub(crate) fn blocked_call(task: &Task) -> Option<(i64, usize)> {
    let mut arg0: c_ulong = 0;
    // SAFETY: `task` is valid for the duration of the call; `arg0` is a
    // valid place to write.
    let nr = unsafe { procft_blocked_call(task.as_ptr(), &mut arg0) };
    (nr >= 0).then_some((nr as i64, arg0 as usize))
}

/// The file type bits (`S_IFMT`) of `task`'s descriptor `fd` (0: not open).
pub(crate) fn fd_type(task: &Task, fd: usize) -> u32 {
    let Ok(fd) = c_uint::try_from(fd) else {
        return 0;
    };
    // SAFETY: `task` is valid for the duration of the call.
    unsafe { procft_fd_type(task.as_ptr(), fd) }
}

/// One of the two words of [`Roles`]; `struct procft_role` on the C side.
#[repr(C)]
pub(crate) struct Role {
    _word: c_ulong,
}

/// A group's two roles, primary and duplicate: what the filter entry of a
/// process's tgid points to and, with the kernel's system-call hook, the
/// hook's word for its threads, so that the system-call path finds the
/// caller's group without a lookup. The pair is 16-byte aligned and the
/// primary's role comes first, so the C side tells a duplicate's entry by
/// its address alone (`procft_role_is_dup()`) and never reads it; the
/// words themselves hold nothing.
#[repr(C, align(16))]
pub(crate) struct Roles {
    primary: Role,
    dup: Role,
}

const _: () = assert!(core::mem::size_of::<Roles>() == 2 * core::mem::size_of::<Role>());

impl Roles {
    /// A pair, to be placed in the object it stands for.
    pub(crate) const fn new() -> Self {
        Self {
            primary: Role { _word: 0 },
            dup: Role { _word: 0 },
        }
    }

    fn primary(&self) -> *const Role {
        &self.primary
    }

    fn dup(&self) -> *const Role {
        &self.dup
    }

    /// The pair `role` belongs to, and whether it is the duplicate's.
    /// Pure address arithmetic: dereferencing the result is the caller's
    /// business.
    pub(crate) fn from_role(role: *const Role) -> (*const Roles, bool) {
        let addr = role as usize;
        let dup = addr & core::mem::size_of::<Role>() != 0;
        (
            (addr & !(core::mem::align_of::<Roles>() - 1)) as *const Roles,
            dup,
        )
    }
}

/// Room in an object for one call of [`DeferHead::defer`].
#[repr(transparent)]
pub(crate) struct DeferHead(Opaque<bindings::callback_head>);

// SAFETY: The head is only written by `defer`, once, by its owner's last
// user, and then by RCU; nothing in it is tied to a thread.
unsafe impl Send for DeferHead {}
// SAFETY: As for `Send`: shared references never touch it.
unsafe impl Sync for DeferHead {}

impl DeferHead {
    /// An unused head.
    pub(crate) const fn new() -> Self {
        Self(Opaque::uninit())
    }

    /// Runs `f` with this head after a Tasks Trace RCU grace period: once
    /// no system-call hook or probe that might still hold what `f` frees
    /// (a role, see [`Roles`]) is running. Atomic-safe; `f` runs with
    /// bottom halves off, and gets `self` back through [`DeferHead::from_raw`].
    ///
    /// # Safety
    ///
    /// `self` must stay valid, and not be deferred again, until `f` runs.
    pub(crate) unsafe fn defer(&self, f: unsafe extern "C" fn(*mut bindings::callback_head)) {
        // SAFETY: Valid until the callback, by the function's contract.
        unsafe { procft_defer(self.0.get(), f) }
    }

    /// The head a callback of [`DeferHead::defer`] was given.
    pub(crate) fn from_raw(head: *mut bindings::callback_head) -> *const Self {
        // `DeferHead` is a transparent wrapper of the C head.
        head.cast::<Self>()
    }
}

/// Waits until every callback [`defer`] queued has run (at unload).
pub(crate) fn defer_barrier() {
    // SAFETY: No requirement; may sleep (process context at unload).
    unsafe { procft_defer_barrier() }
}

/// How many queues the keyed sleepers of a [`WaitQueue`] are spread over.
const KEYED_QUEUES: usize = 8;

/// The wait queues for the waits of one group (its primary's for its
/// duplicates, theirs for a record), so that a wake-up of one group does
/// not wake the sleepers of others. The kernel crate's `CondVar` has no
/// killable wait (a replica's wait must end on a fatal signal only: an
/// interruptible one would return at once, again and again, while any
/// signal is pending), no `TASK_NOLOAD` and no poll before the sleep;
/// the shim's waits have all three.
///
/// The sleepers without a key sleep on the first queue. Those with one
/// (the threads of a multi-threaded duplicate, each waiting for the
/// records of the primary's thread it mirrors) sleep on one of the
/// [`KEYED_QUEUES`] others, chosen by the key. Many of them sleep for long
/// (a server's helper threads), and a wake-up walks its queue: so a
/// record's publication walks only the unkeyed queue and that of its
/// thread's key, and a wake-up of the unkeyed sleepers (a duplicate took
/// a record, which the primary may wait for) none of the keyed; one that
/// finds a queue empty does not take its lock.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    queues: Opaque<[bindings::wait_queue_head; 1 + KEYED_QUEUES]>,
}

// SAFETY: A `wait_queue_head` may be used from any thread; it has its own
// lock, and nothing in it is tied to the task that made it.
unsafe impl Send for WaitQueue {}
// SAFETY: As for `Send`: every operation on it takes its lock.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    /// New, empty wait queues.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            queues <- Opaque::ffi_init(|slot: *mut [bindings::wait_queue_head; 1 + KEYED_QUEUES]| {
                // One lock class for all: no two are ever held at once.
                let class = kernel::static_lock_class!().as_ptr();
                for i in 0..=KEYED_QUEUES {
                    // SAFETY: `slot` is valid while the closure runs and `i`
                    // is within the array; the name and the lock class key
                    // are static.
                    unsafe {
                        bindings::__init_waitqueue_head(
                            slot.cast::<bindings::wait_queue_head>().add(i),
                            c"procft_group_wq".as_char_ptr(),
                            class,
                        )
                    }
                }
            }),
        })
    }

    /// The queue of the sleepers with `key` (0: without one), and those
    /// after it.
    fn queue(&self, key: c_long) -> *mut bindings::wait_queue_head {
        // A key is positive; the remainder is below KEYED_QUEUES.
        let i = if key == 0 {
            0
        } else {
            1 + key.unsigned_abs() % KEYED_QUEUES
        };
        // SAFETY: `i` is within the array.
        unsafe { self.queues.get().cast::<bindings::wait_queue_head>().add(i) }
    }

    /// Sleeps until `cond(arg)` holds or a fatal signal arrives;
    /// [`WaitQueue::wake`] makes sleepers re-check. `ready`, if given, is a
    /// lock-free check polled for a few microseconds before the first
    /// sleep, for a change that may let `cond` hold, while the task whose
    /// global id comes with it (which would make the change) is runnable:
    /// once it holds, the poll ends and `cond` decides. With a `key`,
    /// only the wake-ups for all and for that key ([`Wake`]) make it
    /// re-check. With `tick`, it sleeps for one scheduler tick at most
    /// (`ETIMEDOUT`). How it waited.
    pub(crate) fn wait_killable(
        &self,
        cond: unsafe extern "C" fn(*const c_void) -> bool,
        ready: Option<(unsafe extern "C" fn(*const c_void) -> bool, Pid)>,
        arg: *const c_void,
        key: Option<Pid>,
        tick: bool,
    ) -> Result<Waited> {
        let key = key.map_or(0, |k| k.max(1) as c_long);
        let (ready, owner) = ready.map_or((None, 0), |(f, owner)| (Some(f), owner));
        // SAFETY: The queue is initialised and outlives the call; `cond` and
        // `ready` may be called with `arg` any number of times while this
        // runs (the caller's contract for both).
        let ret = unsafe {
            procft_wait_killable(
                self.queue(key),
                cond,
                ready,
                arg,
                key,
                owner,
                c_uint::from(tick),
            )
        };
        kernel::error::to_result(ret).map(|()| match ret {
            0 => Waited::Slept,
            2 => Waited::Polled,
            3 => Waited::Unpolled,
            _ => Waited::AtOnce,
        })
    }

    /// [`WaitQueue::wait_killable`] for at most `ms` milliseconds
    /// (`ETIMEDOUT`), without the poll.
    pub(crate) fn wait_killable_timeout(
        &self,
        cond: unsafe extern "C" fn(*const c_void) -> bool,
        arg: *const c_void,
        ms: u32,
    ) -> Result {
        // SAFETY: As for `wait_killable`.
        kernel::error::to_result(unsafe {
            procft_wait_killable_timeout(self.queue(0), cond, arg, ms)
        })
    }

    /// Makes the sleepers `which` selects re-check their condition; no
    /// wake-up (not even a queue's lock) unless one sleeps.
    pub(crate) fn wake(&self, which: Wake) {
        let (n, key) = match which {
            Wake::All => (1 + KEYED_QUEUES, 0),
            Wake::Key(_) | Wake::Unkeyed => (1, 0),
        };
        // SAFETY: The `n` queues from the first are initialised.
        unsafe { procft_wake(self.queue(0), n as c_uint, key) };
        if let Wake::Key(k) = which {
            let key = k.max(1) as c_long;
            // SAFETY: The queue is initialised; only its sleepers with
            // `key` wake.
            unsafe { procft_wake(self.queue(key), 1, key) };
        }
    }
}

/// How a [`WaitQueue::wait_killable`] ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// It slept.
    Slept,
    /// It slept, and the task whose change it waited for was asleep (or
    /// gone) when the poll began or fell asleep during it: the poll did
    /// not run, or could not have paid.
    Unpolled,
    /// The condition held at its first check, and the poll (if any) found
    /// the change it looked for at its first look, if at all.
    AtOnce,
    /// The condition held at its first check, after the poll saw the
    /// change come: the poll saved a sleep.
    Polled,
}

/// Which sleepers of a [`WaitQueue`] a wake-up is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Every one.
    All,
    /// The ones that wait without a key, and those that wait with this one.
    Key(Pid),
    /// The ones that wait without a key.
    Unkeyed,
}

impl Wake {
    /// For a record made by the primary's thread `tid` (0 in a
    /// single-threaded group): its mirrors, or every one.
    pub(crate) fn for_record(tid: Pid) -> Self {
        if tid > 0 {
            Self::Key(tid)
        } else {
            Self::All
        }
    }
}

/// Sleeps on procft's one queue for the waits of no group until
/// `cond(arg)` holds or any signal arrives (`ERESTARTSYS`); [`wake_all`]
/// makes sleepers re-check.
pub(crate) fn wait_interruptible(
    cond: unsafe extern "C" fn(*const c_void) -> bool,
    arg: *const c_void,
) -> Result {
    // SAFETY: `cond` may be called with `arg` any number of times while this
    // runs (the caller's contract).
    kernel::error::to_result(unsafe { procft_wait_interruptible(cond, arg) })
}

/// procft's tracepoints (`include/procft_trace.h`); atomic-safe.
pub(crate) mod trace {
    use super::*;

    /// `procft:procft_memory_error`.
    pub(crate) fn memory_error(pid: Pid, replica: Pid, primary: bool, pfn: usize) {
        // SAFETY: Plain values; the tracepoint copies them.
        unsafe { procft_trace_memory_error(pid, replica, primary, pfn) }
    }

    /// Which replica event: lost, respawn or divergence.
    #[derive(Clone, Copy)]
    pub(crate) enum Replica {
        Lost = 0,
        Respawn = 1,
        Divergence = 2,
    }

    /// `procft:procft_replica_lost`, `procft_respawn`, `procft_divergence`.
    pub(crate) fn replica(what: Replica, pid: Pid, replica: Pid) {
        // SAFETY: Plain values; the tracepoint copies them.
        unsafe { procft_trace_replica(what as c_int, pid, replica) }
    }

    /// `procft:procft_promotion`; `cause` is `PROCFT_CAUSE_*`.
    pub(crate) fn promotion(pid: Pid, from: Pid, cause: i32, pages: usize, us: usize) {
        // SAFETY: Plain values; the tracepoint copies them.
        unsafe { procft_trace_promotion(pid, from, cause, pages, us) }
    }
}

/// Makes every [`wait_interruptible`] sleeper (of procft's one queue for
/// the waits of no group) re-check its condition.
pub(crate) fn wake_all() {
    // SAFETY: NULL is procft's one queue.
    unsafe { procft_wake(core::ptr::null_mut(), 1, 0) }
}

/// Waits until no task runs, or is queued to run, procft code through a
/// task_work (module exit).
pub(crate) fn drain() {
    // SAFETY: No preconditions; may sleep.
    unsafe { procft_drain() }
}

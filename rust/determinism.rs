// SPDX-License-Identifier: GPL-2.0

//! Sources of divergence the kernel does not see, removed where procft can.
//!
//! Replicas run the same code on the same inputs, so they only diverge
//! where they read something the system-call record does not carry. The
//! largest such source is the vDSO: `clock_gettime()`, `gettimeofday()`,
//! `time()` and `getcpu()` are answered in user space from the TSC and the
//! kernel's shared time page, and each replica reads them at a different
//! moment. A program started under protection (`exec` with a level set)
//! is therefore not told where the vDSO is: at its first return from
//! `execve()` the `AT_SYSINFO_EHDR` entry of its auxiliary vector becomes
//! `AT_IGNORE`, exactly as if the kernel were booted with `vdso=0` for
//! this process alone. Its C library then makes those calls as system
//! calls, which the primary makes and records and the duplicates replay.
//!
//! A process protected while already running keeps the vDSO its library
//! found at start. Before its first duplicate is made, the entry of each
//! of the vDSO's time functions in its address space becomes the system
//! call it stands for ([`route_vdso`]), so its library's time reads are
//! recorded calls as well; the duplicates inherit the page.
//!
//! Without that (the `hide_vdso` parameter off), each replica reads its
//! own clock in the vDSO. When the kernel changes to a clocksource the
//! vDSO cannot read in user space (the TSC declared unstable, a
//! clocksource chosen by the administrator), the vDSO makes those very
//! reads as system calls, from its own code. Such a call is what the vDSO
//! read was, each replica's own ([`class`]: `Local`, neither recorded nor
//! compared), so a change of clocksource under a running program changes
//! nothing for procft. A replica's output that depends on the time it read
//! is caught as divergence, as before. The program's own clock system
//! calls are replayed like every other call. `rdtsc` and `rdtscp` executed
//! by the program itself are trapped and replayed where the kernel allows
//! ([`crate::sync::tsc`]); `rdrand` is not routed (see `Documentation/procft.rst`).

use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use core::sync::atomic::Ordering;

use crate::{
    group::Group,
    shim,
    syscalls::{self, Class},
};

/// The calls the x86-64 vDSO answers in user space, and makes as system
/// calls when the clocksource cannot be read there: `gettimeofday`,
/// `time`, `clock_gettime`, `clock_getres`, `getcpu`.
const fn reads_clock(nr: i64) -> bool {
    matches!(nr, 96 | 201 | 228 | 229 | 309)
}

/// How a replica treats call `nr`, which it is entering: as the table says,
/// except for the vDSO's own fallback calls, which run in each replica
/// like the vDSO's reads do. Every replica decides the same for the same
/// call: the vDSO is at the same place in all of them.
pub(crate) fn class(nr: i64) -> Class {
    if reads_clock(nr) && shim::call_from_vdso() {
        Class::Local
    } else {
        syscalls::classify(nr).class
    }
}

const NR_EXECVE: i64 = 59;
const AT_NULL: u64 = 0;
const AT_IGNORE: u64 = 1;
const AT_SYSINFO_EHDR: u64 = 33;
/// More entries than any kernel writes (`AT_VECTOR_SIZE` is far smaller).
const MAX_AUXV: usize = 64;
const WORD: usize = core::mem::size_of::<u64>();

/// In the primary of `group`, about to create a duplicate: unless the
/// module parameter `hide_vdso` is off, its vDSO's time functions become
/// the system calls they stand for ([`shim::vdso_make_calls`]), so that a
/// program protected while running reads the time through recorded calls
/// too. Tried once per group (a rewritten page stays so, for a later
/// protection too); a duplicate inherits the rewritten page.
pub(crate) fn route_vdso(group: &Group) {
    if !crate::module_parameters::hide_vdso.value()
        || group.vdso_routed.swap(true, Ordering::Relaxed)
    {
        return;
    }
    match shim::vdso_make_calls() {
        // Nothing to do, or dying anyway.
        Ok(0) => {}
        Err(e) if e == EINTR => {}
        Ok(n) => pr_info!(
            "pid {}: {} vDSO time functions now make system calls\n",
            group.pid(),
            n
        ),
        // A fault writing its own page is a poisoned or unreadable one:
        // the program reads those functions' time as before, each replica
        // its own, and divergence detection covers what it sends.
        Err(e) => pr_warn!(
            "pid {}: vDSO time functions left as they are ({:?})\n",
            group.pid(),
            e
        ),
    }
}

/// Whether protected programs' own counter reads (`rdtsc`, `rdtscp`) trap
/// and are replayed ([`crate::sync::tsc`]): the kernel can trap them for
/// procft (`kernel/patches/0005`), and the module parameter `trap_tsc` is
/// on.
pub(crate) fn tsc_traps() -> bool {
    crate::module_parameters::trap_tsc.value() && shim::tsc::can_trap()
}

/// In a primary about to create a duplicate: its counter reads trap from
/// now on, and the duplicate inherits that, if they can ([`tsc_traps`]).
pub(crate) fn trap_tsc() {
    if crate::module_parameters::trap_tsc.value() {
        shim::tsc::trap_self(true);
    }
}

/// At a protected primary's return from a system call with result `ret`:
/// after a successful `execve()`/`execveat()` (both leave `execve` in
/// `orig_ax`), hides the vDSO from the new image. Runs in the caller's
/// faultable `sys_exit` tracepoint, before the new image's first
/// instruction.
pub(crate) fn after_call(ret: isize) {
    if ret != 0 || shim::syscall_nr() != NR_EXECVE || !crate::module_parameters::hide_vdso.value() {
        return;
    }
    match hide_vdso(shim::user_sp()) {
        Ok(true) => shim::forget_auxv(AT_SYSINFO_EHDR),
        Ok(false) => {}
        // The stack the kernel has just written is the caller's own: a
        // fault here is a poisoned page, which the first access will
        // report the usual way. The program then finds the vDSO, and
        // divergence detection covers what it reads from it.
        Err(e) => pr_warn!("pid {}: vDSO left visible ({:?})\n", current!().tgid(), e),
    }
}

fn read_word(addr: usize) -> Result<u64> {
    UserSlice::new(UserPtr::from_addr(addr), WORD)
        .reader()
        .read::<u64>()
}

fn write_word(addr: usize, value: u64) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), WORD)
        .writer()
        .write(&value)
}

/// Walks the initial stack at `sp` (`argc`, `argv[]`, `NULL`, `envp[]`,
/// `NULL`, then the auxiliary vector, as `create_elf_tables()` lays it out)
/// and turns `AT_SYSINFO_EHDR` into `AT_IGNORE`. Whether it was there.
fn hide_vdso(sp: usize) -> Result<bool> {
    let argc = usize::try_from(read_word(sp)?).map_err(|_| EINVAL)?;
    let skip = argc
        .checked_add(2)
        .and_then(|w| w.checked_mul(WORD))
        .ok_or(EINVAL)?;
    let mut at = sp.checked_add(skip).ok_or(EINVAL)?;
    // The environment ends with a NULL; the kernel bounds its length, and
    // a read past the stack fails.
    while read_word(at)? != 0 {
        at = at.checked_add(WORD).ok_or(EINVAL)?;
    }
    at += WORD;
    for _ in 0..MAX_AUXV {
        match read_word(at)? {
            AT_NULL => return Ok(false),
            AT_SYSINFO_EHDR => {
                write_word(at, AT_IGNORE)?;
                return Ok(true);
            }
            _ => at = at.checked_add(2 * WORD).ok_or(EINVAL)?,
        }
    }
    Ok(false)
}

// SPDX-License-Identifier: GPL-2.0

//! procft: process-level fault tolerance against memory errors.
//!
//! A protected process has a fault-tolerance level N: the number of
//! duplicate replicas procft keeps beside it.  The module is laid out one
//! file per concept, in layers; a module uses only modules of its own layer
//! or of the layers below it.  From the bottom up:
//!
//! 1. The C shim and the vocabulary, which import nothing of the crate:
//!    - [`shim`]: declarations of the small C shim (`procft_shim.c`) and
//!      their safe wrappers, with the types that stand for C objects.
//!    - [`types`]: plain types every layer names.
//!    - [`syscalls`]: the classification of every x86-64 system call.
//!    - [`uapi`]: the ioctl ABI, mirrored from `include/uapi/linux/procft.h`.
//!    - [`profile`]: where a call's time goes (profiling builds only).
//! 2. The ring and the event log:
//!    - [`ring`]: the bounded buffer of the primary's records.
//!    - [`events`]: the log of what happened to protected processes, read
//!      from `/dev/procft`, and procft's tracepoints.
//! 3. [`group`]: the per-process record (primary, duplicates, level,
//!    counters), the registry of protected processes and its state changes.
//! 4. The policies:
//!    - [`mce`]: memory errors reported by the machine-check decode chain
//!      or `memory_failure()`.
//!    - [`failover`]: a duplicate taking over from a failed primary.
//!    - [`replica`]: creating duplicates, separating their memory,
//!      replacing lost ones.
//!    - [`vote`]: majority voting on outgoing calls with two or more
//!      duplicates.
//!    - [`determinism`]: sources of divergence the kernel does not see
//!      (the vDSO), removed where procft can.
//! 5. The protocol and the rules, and the interfaces built on them:
//!    - [`sync`]: the system-call synchronisation of a group.
//!    - [`control`]: the single entry point that every interface uses to
//!      read or change a level, with its validation and permission rules.
//!    - [`ioctl`]: the `/dev/procft` misc device.
//!    - [`procfs`]: the format of `/proc/procft`.
//! 6. [`hooks`]: the entry points the C shim calls, each a thin call into
//!    one of the layers below.
//!
//! No edge goes up (`make lint` checks the `use crate::` graph for
//! cycles).
//!
//! See `Documentation/procft.rst` ("Code layout") for the `use crate::`
//! graph, and for the design and its current status.

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

mod control;
mod determinism;
mod events;
mod failover;
mod group;
mod hooks;
mod ioctl;
mod mce;
mod procfs;
mod profile;
mod replica;
mod ring;
mod shim;
mod sync;
mod syscalls;
mod types;
mod uapi;
mod vote;

module! {
    type: Procft,
    name: "procft",
    authors: ["procft developers"],
    description: "Process-level fault tolerance: replicated processes that survive memory errors",
    license: "GPL",
    params: {
        fault_injection: bool {
            default: false,
            description: "Allow PROCFT_IOC_FAIL (test-only replica failures; needs CAP_SYS_ADMIN)",
        },
        early_restore: bool {
            default: true,
            description: "Restore a primary's page from a duplicate as soon as memory_failure() retires its frame, whatever reported the error (0: only when the primary uses it)",
        },
        lag_timeout_ms: u32 {
            default: 5000,
            description: "How long the primary waits for a duplicate that keeps it from going on (stopped, frozen, traced or stuck) before declaring it lost and replacing it; 100 at least",
        },
        syscall_tracepoints: bool {
            default: false,
            description: "Take system calls from the sys_enter/sys_exit tracepoints (every system call in the system pays) even if the kernel has the system-call hook",
        },
        copy_promotion: bool {
            default: false,
            description: "Promote a duplicate by copying its pages into the primary even if the kernel lets the primary take over its address space (replace_mm(), kernel/patches/0004)",
        },
        lockfree_entry: bool {
            default: true,
            description: "The primary makes a call with nothing pending without taking its group's lock at system-call entry (0: it takes the lock at every call)",
        },
        hide_vdso: bool {
            default: true,
            description: "Route the vDSO's time reads through procft as recorded calls: hidden from programs exec'd under protection, its time functions made system calls in those protected while running",
        },
        threads: bool {
            default: false,
            description: "Replicate threads a protected process creates (one thread of each replica runs at a time; see Documentation/procft.rst) instead of ending its protection at the first (0)",
        },
        test_join_delay_ms: u32 {
            default: 0,
            description: "Test-only, with fault_injection=1: how long (milliseconds, 1000 at most) setting the level of a multi-threaded process waits between counting its threads and registering its protection, to widen a race the selftests reproduce",
        },
        thread_wait_ms: u32 {
            default: 2000,
            description: "How long a thread of a multi-threaded protected process waits for another that runs without a system call before that one is preempted (the duplicates are then re-created from the primary), and a takeover for the other threads to stop",
        },
        trap_tsc: bool {
            default: true,
            description: "Trap a protected program's own rdtsc/rdtscp (needs kernel/patches/0005): the primary's reads are recorded and the duplicates replay them (0: each replica reads its own counter)",
        },
    },
}

/// The loaded module.  Fields are dropped in declaration order on unload:
/// first every entry point from the kernel (procfs, tracepoints,
/// notifiers), then the misc device, then the memory errors still noted,
/// then the protected-process records themselves, and last the worker that
/// makes duplicates held back (made first: the hooks may queue it).
#[pin_data(PinnedDrop)]
struct Procft {
    _hooks: shim::Hooks,
    #[pin]
    _dev: MiscDeviceRegistration<ioctl::ControlFile>,
    _mce: mce::Reports,
    _groups: group::Registry,
    _holds: replica::Holds,
}

impl kernel::InPlaceModule for Procft {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        events::init();
        try_pin_init!(Self {
            _holds: replica::Holds::init()?,
            _groups: group::Registry::init(),
            _mce: mce::Reports::init()?,
            _hooks: shim::Hooks::register(module_parameters::syscall_tracepoints.value())?,
            _dev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"procft" }),
        })
        .pin_chain(|_| {
            pr_info!(
                "loaded: max level {}, /proc/<pid>/ft_level {}, system calls from {}, promotion {}\n",
                group::MAX_LEVEL,
                if shim::have_proc_ft_level() {
                    "available"
                } else {
                    "unavailable (kernel lacks the ft_level patch)"
                },
                if shim::Hooks::syscall_hook() {
                    "the kernel's hook (protected processes only)"
                } else {
                    "the sys_enter/sys_exit tracepoints (every process)"
                },
                if failover::takes_over() {
                    "takes over the duplicate's address space"
                } else {
                    "copies the duplicate's pages"
                }
            );
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Procft {
    fn drop(self: Pin<&mut Self>) {
        // Before the fields go (the probes first): no primary may be left
        // inside a clone3() whose sys_exit procft must see.
        group::quiesce();
        profile::report();
    }
}

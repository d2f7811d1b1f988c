// SPDX-License-Identifier: GPL-2.0

//! procft: process-level fault tolerance against memory errors.
//!
//! A protected process has a fault-tolerance level N: the number of
//! duplicate replicas procft keeps beside it.  The module is laid out one
//! file per concept:
//!
//! - [`group`]: the per-process record (primary, duplicates, level,
//!   counters) and the registry of protected processes.
//! - [`replica`]: creating duplicates, separating their memory, replacing
//!   lost ones.
//! - [`control`]: the single entry point that every interface uses to read
//!   or change a level, with its validation and permission rules.
//! - [`events`]: the log of what happened to protected processes, read
//!   from `/dev/procft`.
//! - [`procfs`]: `/proc/<pid>/ft_level` and `/proc/procft`, reached through
//!   the C shim.
//! - [`ioctl`]: the `/dev/procft` misc device.
//! - [`syscalls`]: the classification of every x86-64 system call.
//! - [`sync`]: the system-call synchronisation of a group.
//! - [`ring`]: the bounded buffer of the primary's records.
//! - [`determinism`]: sources of divergence the kernel does not see
//!   (the vDSO), removed where procft can.
//! - [`vote`]: majority voting on outgoing calls with two or more
//!   duplicates.
//! - [`failover`]: a duplicate taking over from a failed primary.
//! - [`mce`]: memory errors reported by the machine-check decode chain.
//! - [`uapi`]: the ioctl ABI, mirrored from `include/uapi/linux/procft.h`.
//! - [`shim`]: declarations of the small C shim (`procft_shim.c`).
//!
//! See `Documentation/procft.rst` for the design and its current status.

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
        hide_vdso: bool {
            default: true,
            description: "Hide the vDSO from programs exec'd under protection, so that their time reads are recorded calls",
        },
    },
}

/// The loaded module.  Fields are dropped in declaration order on unload:
/// first every entry point from the kernel (procfs, tracepoints,
/// notifiers), then the misc device, then the memory errors still noted,
/// and last the protected-process records themselves.
#[pin_data(PinnedDrop)]
struct Procft {
    _hooks: shim::Hooks,
    #[pin]
    _dev: MiscDeviceRegistration<ioctl::ControlFile>,
    _mce: mce::Reports,
    _groups: group::Registry,
}

impl kernel::InPlaceModule for Procft {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        events::init();
        try_pin_init!(Self {
            _groups: group::Registry::init(),
            _mce: mce::Reports::init()?,
            _hooks: shim::Hooks::register()?,
            _dev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"procft" }),
        })
        .pin_chain(|_| {
            pr_info!(
                "loaded: max level {}, /proc/<pid>/ft_level {}\n",
                group::MAX_LEVEL,
                if shim::have_proc_ft_level() {
                    "available"
                } else {
                    "unavailable (kernel lacks the ft_level patch)"
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
    }
}

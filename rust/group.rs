// SPDX-License-Identifier: GPL-2.0

//! Protected processes: one [`Group`] per process whose fault-tolerance
//! level is above zero, kept in a registry keyed by the process's (global)
//! tgid.
//!
//! A group is created when a level above zero is first set and released
//! when the level goes back to zero or the process exits (the
//! `sched_process_exit` probe), so records never outlive their process.

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{aref::ARef, Arc, SpinLock},
    task::{Pid, Task},
};

use crate::{shim, uapi};

/// Highest accepted level; see `PROCFT_MAX_LEVEL` in the UAPI header.
pub(crate) const MAX_LEVEL: u32 = uapi::PROCFT_MAX_LEVEL;

/// Event counters of a group, as shown in `/proc/procft`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Primaries replaced by a duplicate.
    pub(crate) failovers: u64,
    /// Duplicates created to restore the level.
    pub(crate) respawns: u64,
    /// Memory errors that hit one of the group's replicas.
    pub(crate) mce_events: u64,
    /// Replicas that disagreed with the others.
    pub(crate) divergences: u64,
}

/// Mutable state of a group.
struct State {
    level: u32,
    counters: Counters,
}

/// A consistent copy of a group's state, taken under its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Pid of the process as the caller sees it.
    pub(crate) pid: Pid,
    /// Fault-tolerance level: the number of duplicates wanted.
    pub(crate) level: u32,
    /// Pids of the replicas, primary first; `nr_replicas` are valid.
    pub(crate) replicas: [Pid; uapi::PROCFT_MAX_REPLICAS],
    /// How many entries of `replicas` are valid.
    pub(crate) nr_replicas: usize,
    /// Event counters.
    pub(crate) counters: Counters,
}

impl Snapshot {
    /// The state of a process procft does not protect.
    pub(crate) fn unprotected(pid: Pid) -> Self {
        let mut replicas = [0; uapi::PROCFT_MAX_REPLICAS];
        replicas[0] = pid;
        Self {
            pid,
            level: 0,
            replicas,
            nr_replicas: 1,
            counters: Counters::default(),
        }
    }
}

/// One protected process.
#[pin_data]
pub(crate) struct Group {
    /// Thread-group leader of the primary: the process the world sees.
    primary: ARef<Task>,
    #[pin]
    state: SpinLock<State>,
}

impl Group {
    fn new(primary: ARef<Task>, level: u32) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                primary,
                state <- new_spinlock!(State { level, counters: Counters::default() }, "procft_group"),
            }),
            GFP_KERNEL,
        )
    }

    /// Global tgid of the process (the registry's key).
    pub(crate) fn tgid(&self) -> Pid {
        self.primary.tgid()
    }

    /// Pid of the process as the caller sees it.
    pub(crate) fn pid(&self) -> Pid {
        self.primary.tgid_nr_ns(None)
    }

    /// The group's current fault-tolerance level.
    pub(crate) fn level(&self) -> u32 {
        self.state.lock().level
    }

    /// A consistent copy of the group's state.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let pid = self.pid();
        let state = self.state.lock();
        let mut snap = Snapshot::unprotected(pid);
        snap.level = state.level;
        snap.counters = state.counters;
        snap
    }
}

/// The table of protected processes.
struct Table {
    /// Keyed by the primary's global tgid; `None` until module init.
    tree: Option<RBTree<Pid, Arc<Group>>>,
    created: u64,
    released: u64,
}

kernel::sync::global_lock! {
    // SAFETY: `Registry::init` initialises the lock in module init, before
    // any other use.
    unsafe(uninit) static GROUPS: SpinLock<Table> = Table {
        tree: None,
        created: 0,
        released: 0,
    };
}

/// Module-wide figures, for `PROCFT_IOC_GET_INFO`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) nr_groups: u32,
    pub(crate) created: u64,
    pub(crate) released: u64,
}

/// Ownership of the registry: created in module init, and on drop (module
/// unload, after every hook is gone) releases all remaining records.
pub(crate) struct Registry(());

impl Registry {
    /// Initialises the registry.  Must be called exactly once, from module
    /// init, before any hook that uses it is registered.
    pub(crate) fn init() -> Self {
        // SAFETY: Called once, from module init, before any other use.
        unsafe { GROUPS.init() };
        GROUPS.lock().tree = Some(RBTree::new());
        Self(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Unlink everything under the lock; the records are freed after it
        // is released.
        let tree = GROUPS.lock().tree.take();
        if let Some(tree) = tree {
            let n = tree.iter().count();
            if n > 0 {
                pr_info!("unloading: ending protection of {} process(es)\n", n);
            }
            drop(tree);
        }
    }
}

/// The group of the process whose global tgid is `tgid`, if protected.
pub(crate) fn lookup(tgid: Pid) -> Option<Arc<Group>> {
    GROUPS.lock().tree.as_ref()?.get(&tgid).cloned()
}

/// Records level `level` (> 0) for the process led by `leader`.  Returns
/// the previous level (0 if it was unprotected).
pub(crate) fn set_level(leader: &Task, level: u32) -> Result<u32> {
    let tgid = leader.tgid();
    // Allocate before taking the lock; unused if the group exists.
    let group = Group::new(leader.into(), level)?;
    let node = RBTreeNode::new(tgid, group, GFP_KERNEL)?;
    shim::filter::reserve(tgid)?;

    let old = {
        let mut table = GROUPS.lock();
        let Some(tree) = table.tree.as_mut() else {
            drop(table);
            shim::filter::release(tgid);
            return Err(ENODEV);
        };
        if let Some(existing) = tree.get(&tgid) {
            let mut state = existing.state.lock();
            let old = state.level;
            state.level = level;
            old
        } else {
            // The key is absent (checked above), so nothing is replaced.
            let _ = tree.insert(node);
            shim::filter::add(tgid);
            table.created += 1;
            0
        }
    };
    // A no-op if `add` used the reservation.
    shim::filter::release(tgid);
    // The exit probe removes a group only if it already exists when the
    // process exits; PF_EXITING is set before that probe runs.  Seeing it
    // clear here, after inserting under the lock, means the probe will
    // find our record; seeing it set means we must remove it ourselves.
    if shim::is_exiting(leader) {
        remove(tgid);
        return Err(ESRCH);
    }
    Ok(old)
}

/// Ends protection of the process whose global tgid is `tgid`.  Returns
/// the level it had (0 if it was not protected).
pub(crate) fn remove(tgid: Pid) -> u32 {
    let removed = {
        let mut table = GROUPS.lock();
        let removed = table.tree.as_mut().and_then(|t| t.remove(&tgid));
        if removed.is_some() {
            shim::filter::remove(tgid);
            table.released += 1;
        }
        removed
    };
    // Dropped outside the registry lock.
    removed.map_or(0, |g| g.level())
}

/// Calls `f` for each protected process, in tgid order, under the registry
/// lock (so `f` must not sleep).
pub(crate) fn for_each(mut f: impl FnMut(&Group)) {
    let table = GROUPS.lock();
    if let Some(tree) = table.tree.as_ref() {
        for (_, group) in tree.iter() {
            f(group);
        }
    }
}

/// Module-wide figures.
pub(crate) fn stats() -> Stats {
    let table = GROUPS.lock();
    Stats {
        nr_groups: u32::try_from(table.created - table.released).unwrap_or(u32::MAX),
        created: table.created,
        released: table.released,
    }
}

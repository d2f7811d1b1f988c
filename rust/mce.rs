// SPDX-License-Identifier: GPL-2.0

//! Memory errors reported by the machine-check decode chain.
//!
//! The chain calls procft twice for each logged memory error with a usable
//! address, in a kworker, one record at a time:
//!
//! 1. Before the kernel's own uncorrected-error handler
//!    ([`memory_error`]): the replicas mapping the frame are found
//!    while their mappings still exist and noted. Only protected replicas
//!    are asked, never every process, and each answers from the frame's
//!    page offset, as the kernel's reverse map does: one page-table
//!    lookup per mapping, whatever the process's size ([`locate`]).
//! 2. After it ([`memory_error_done`]): if that handler retired the
//!    frame (`memory_failure()` succeeded: the frame is poisoned, never
//!    reused, and unmapped from everyone), procft acts on the noted hits;
//!    if it did not (the error's severity needs no action, or
//!    `memory_failure()` failed), neither does procft, exactly as for an
//!    unprotected process.
//!
//! Acting means: a duplicate on the frame is killed (SIGKILL, whatever
//! signal handlers the program has) and replaced from a healthy replica
//! like any lost duplicate; its frame is already retired, so its
//! replacement cannot be given it. For a primary the error is
//! action-optional (nobody consumed the data yet): at its next system call
//! that the duplicates wait at, procft waits for a duplicate to reach the
//! same point and gives the primary a fresh frame holding that duplicate's
//! copy ([`crate::sync`]): the primary goes on with its pid, descriptors and
//! output untouched (`failovers`). If it touches the page before that, the
//! kernel sends it SIGBUS (action required) and it fails over by promotion
//! ([`crate::failover`]).
//!
//! Errors that reach `memory_failure()` without passing the decode chain
//! (hwpoison injection, firmware-first reports through GHES, ...) end, like
//! all others, in its `memory_failure_event` tracepoint, once the frame is
//! retired and unmapped. A worker then looks for the frame's poisoned-page
//! entry in the primaries' page tables, at the one address per mapping
//! the frame's page offset gives ([`memory_failure`]): a primary that had
//! it mapped gets the page back from a duplicate, as for an
//! action-optional machine check, before it can use the page. A
//! duplicate on such a frame dies of the kernel's early kill (duplicates
//! ask for it, see [`crate::replica`]) and is replaced. A primary that
//! consumes poison (`MADV_HWPOISON`, an action-required machine check:
//! `kill_me_maybe()` calls `memory_failure()` in the consuming task) fails
//! over by promotion.
//!
//! Early kill: with `vm.memory_failure_early_kill` set, or a program that
//! asked for it (`prctl(PR_MCE_KILL_EARLY)`), `memory_failure()` sends
//! SIGBUS (`BUS_MCEERR_AO`) to every process mapping a retired frame, which
//! ends one without a handler. A primary's frame is one procft restores,
//! so a protected primary is held to late kill ([`policy`]); duplicates
//! are early kill, so that they are replaced before they use a lost page.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::{
    bindings, impl_has_work, new_work,
    prelude::*,
    sync::{aref::ARef, Arc},
    task::{Pid, Task},
    workqueue::{self, Work, WorkItem},
};

use crate::{
    events::{self, What},
    group::{self, Group},
    shim,
};

/// `PR_MCE_KILL_*` policies (`include/uapi/linux/prctl.h`).
pub(crate) const PR_MCE_KILL_LATE: i32 = 0;
pub(crate) const PR_MCE_KILL_EARLY: i32 = 1;

/// The memory-error kill policy of protected processes.
///
/// `memory_failure()` early-kills a process whose policy is early, or
/// default with `vm.memory_failure_early_kill` set; never one whose policy
/// is late (`find_early_kill_thread()`). At its first system call under
/// protection, a primary's policy becomes late and the program's own is
/// kept: a `prctl(PR_MCE_KILL)` of the program changes the kept one (the
/// primary stays late, a duplicate early), `PR_MCE_KILL_GET` reads it in
/// every replica, a child the primary forks inherits it, and the process
/// takes it back at its first system call after its protection ends
/// ([`shim::filter::remove`]).
pub(crate) mod policy {
    use super::*;
    use crate::group::State;

    const NR_PRCTL: i64 = 157;
    const PR_MCE_KILL: usize = 33;
    const PR_MCE_KILL_GET: usize = 34;

    /// At each system call of the primary, in its context, under the
    /// group lock: holds it to late kill from the first one on.
    pub(crate) fn primary(st: &mut State) {
        if st.mce_wish.is_none() {
            st.mce_wish = Some(shim::mce_policy());
            shim::set_mce_policy(PR_MCE_KILL_LATE);
        }
    }

    /// At a replica's return from a system call with result `ret` (`dup`:
    /// the caller is a duplicate of `group`).
    pub(crate) fn after_call(group: &Group, dup: bool, ret: isize) {
        if shim::syscall_nr() != NR_PRCTL {
            return;
        }
        match shim::syscall_arg(0) {
            PR_MCE_KILL if ret == 0 => {
                if dup {
                    shim::set_mce_policy(PR_MCE_KILL_EARLY);
                } else {
                    group.lock().mce_wish = Some(shim::mce_policy());
                    shim::set_mce_policy(PR_MCE_KILL_LATE);
                }
            }
            PR_MCE_KILL_GET => {
                if let Some(wish) = group.lock().mce_wish {
                    shim::set_return(wish as isize);
                }
            }
            _ => {}
        }
    }

    /// The primary's own child `child` (not a duplicate), before it runs:
    /// it gets the program's policy, not procft's.
    pub(crate) fn on_fork(group: &Group, child: &Task) {
        if let Some(wish) = group.lock().mce_wish {
            shim::set_child_mce_policy(child, wish);
        }
    }
}

/// A replica found on a failed frame, waiting for the kernel's verdict.
struct Hit {
    pfn: usize,
    group: Arc<Group>,
    task: ARef<Task>,
    /// Its pid, taken while it surely lived (the kernel's early kill may
    /// end a duplicate before the second look).
    pid: Pid,
    primary: bool,
    addr: usize,
}

kernel::sync::global_lock! {
    // SAFETY: `Reports::init` initialises the lock in module init, before
    // the decode-chain notifiers are registered.
    unsafe(uninit) static PENDING: Mutex<KVec<Hit>> = KVec::new();
}

/// Ownership of the memory-error state that lives as long as the module:
/// created in module init before the notifiers and probes that report
/// errors are registered, and dropped after they are gone and before the
/// registry (the hits still noted hold group references).
pub(crate) struct Reports(());

impl Reports {
    /// Initialises the memory-error state. Must be called exactly once,
    /// from module init.
    pub(crate) fn init() -> Result<Self> {
        // SAFETY: Called once, from module init, before any other use.
        unsafe { PENDING.init() };
        // SAFETY: As above.
        unsafe { RECENT.init() };
        // SAFETY: As above.
        unsafe { RETIRED.init() };
        let worker = Arc::pin_init(
            pin_init!(Worker { work <- new_work!("procft_mf") }),
            GFP_KERNEL,
        )?;
        RETIRED.lock().worker = Some(worker);
        Ok(Self(()))
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        // The probe that queues frames is gone: wait for the worker's last
        // run (it empties the queue).
        let worker = RETIRED.lock().worker.take();
        if let Some(worker) = worker {
            // SAFETY: `worker.work` is an initialised work item, kept
            // alive by `worker` for the call.
            unsafe { bindings::flush_work(Work::raw_get(&worker.work)) };
        }
        // Nothing reports errors any more: drop the hits whose second
        // call never came, releasing their references.
        let stale = core::mem::take(&mut *PENDING.lock());
        drop(stale);
    }
}

/// The frames the decode chain reported lately (a small ring), which the
/// [`memory_failure`] path leaves to it.
///
/// # Invariants
///
/// `next < pfns.len()` is the slot the next report overwrites; a slot never
/// written holds `usize::MAX`, which is no frame.
struct Recent {
    pfns: [usize; 16],
    next: usize,
}

kernel::sync::global_lock! {
    // SAFETY: `Reports::init` initialises the lock in module init, before
    // the decode-chain notifiers and the probes are registered.
    unsafe(uninit) static RECENT: Mutex<Recent> = Recent { pfns: [usize::MAX; 16], next: 0 };
}

/// How many times [`locate`] walked a replica's pages since the module was
/// loaded.
static WALKS: AtomicU64 = AtomicU64::new(0);

/// Where `task` maps frame `pfn`, or (`poisoned`) has the poisoned-page
/// entry memory failure left for it. The frame's page offset says it for
/// anonymous and page-cache pages, at a cost independent of the process's
/// size ([`shim::frame_owner`]); for a frame that does not say (a KSM or
/// hugetlb page, a page-cache page already taken out of its file, ...)
/// the task's pages are walked, which is counted and logged.
fn locate(task: &Task, pfn: usize, poisoned: bool) -> Option<usize> {
    match shim::frame_owner(task, pfn, poisoned) {
        shim::Owner::At(addr) => Some(addr),
        shim::Owner::Nowhere => None,
        shim::Owner::Unknown => {
            let n = WALKS.fetch_add(1, Ordering::Relaxed) + 1;
            pr_info!(
                "frame {:#x} does not say where it is mapped; walking the pages of pid {} \
                 (walk {} since load)\n",
                pfn,
                task.tgid_nr_ns(None),
                n
            );
            if poisoned {
                shim::find_poisoned(task, pfn)
            } else {
                shim::find_pfn(task, pfn)
            }
        }
    }
}

/// Before the kernel's handler: notes every replica that maps frame `pfn`.
/// Process context; may sleep.
pub(crate) fn memory_error(pfn: usize) {
    {
        let mut recent = RECENT.lock();
        let i = recent.next;
        recent.pfns[i] = pfn;
        recent.next = (i + 1) % recent.pfns.len();
    }
    let mut found = KVec::new();
    for group in group::all().iter() {
        for (i, task) in group.replicas().iter().enumerate() {
            let Some(task) = task else {
                continue;
            };
            let Some(addr) = locate(task, pfn, false) else {
                continue;
            };
            let hit = Hit {
                pfn,
                group: group.clone(),
                task: task.clone(),
                pid: task.tgid_nr_ns(None),
                primary: i == 0,
                addr,
            };
            if found.push(hit, GFP_KERNEL).is_err() {
                pr_warn!("out of memory noting a memory error at frame {:#x}\n", pfn);
            }
        }
    }
    // A duplicate on the frame is out of the game from now on: the
    // kernel's early kill may make it run the program's SIGBUS handler
    // before it is killed.
    for hit in found.iter().filter(|h| !h.primary) {
        mark_hit(hit, true);
    }
    // Whatever is left from a record whose second call never came (the
    // chain stops early only if a notifier says so) is stale: replaced,
    // and dropped after the lock.
    let stale = core::mem::replace(&mut *PENDING.lock(), found);
    drop(stale);
}

/// Marks (or unmarks) the duplicate of `hit` as hit by a memory error.
fn mark_hit(hit: &Hit, on: bool) {
    let mut st = hit.group.lock();
    if let Some(d) = st.dup_mut(hit.task.tgid()) {
        if on {
            d.hit = d.hit.or(Some(d.ready));
            d.ready = false;
        } else if let Some(ready) = d.hit.take() {
            d.ready = ready;
        }
    }
}

/// After the kernel's handler: acts on the replicas noted for frame `pfn`
/// if the kernel retired it (`handled`). Process context; may sleep.
pub(crate) fn memory_error_done(pfn: usize, handled: bool) {
    let hits = {
        let mut pending = PENDING.lock();
        core::mem::take(&mut *pending)
    };
    for hit in hits.into_iter().filter(|h| h.pfn == pfn) {
        let group = &hit.group;
        let replica = hit.pid;
        if !handled {
            if !hit.primary {
                mark_hit(&hit, false);
            }
            pr_info!(
                "pid {}: memory error at frame {:#x} of replica {} not acted on by the kernel; \
                 procft leaves it too\n",
                group.pid(),
                pfn,
                replica
            );
            continue;
        }
        events::emit(
            group.pid(),
            What::MemoryError {
                replica,
                primary: hit.primary,
                frame: pfn as u64,
            },
        );
        // A promotion under way may end between `page_lost` (the old
        // address space) and `primary_hit`.
        let promotions = group.lock().promotions_done();
        if hit.primary && !shim::page_lost(&hit.task, hit.addr) {
            // The primary consumed the page in the meantime and took a
            // duplicate's whole state (promotion), or the page was a
            // clean one of a file, which the kernel dropped and reads
            // again: nothing left to mend.
            group.lock().counters.mce_events += 1;
            pr_info!(
                "pid {}: memory error at frame {:#x} in the primary (address {:#x}), \
                 already replaced\n",
                group.pid(),
                pfn,
                hit.addr
            );
        } else if hit.primary {
            primary_hit(group, pfn, hit.addr, promotions);
        } else {
            group.lock().counters.mce_events += 1;
            pr_info!(
                "pid {}: memory error at frame {:#x} in duplicate {}; replacing it (its page at \
                 {:#x})\n",
                group.pid(),
                pfn,
                replica,
                hit.addr
            );
            shim::kill(&hit.task);
        }
    }
}

/// Frame `pfn` of `group`'s primary, mapped at `addr`, was retired while
/// the primary had not used it (action-optional): its page is restored
/// from a duplicate at the primary's next system call, unless a promotion
/// (pending, under way, or started since `promotions`, the promotions
/// finished when the error was looked at) replaces it anyway.
fn primary_hit(group: &Group, pfn: usize, addr: usize, promotions: u64) {
    let (replaced, repairable, threaded) = {
        let mut st = group.lock();
        st.counters.mce_events += 1;
        let replaced = st.promote.is_some() || st.promoting || st.promotions != promotions;
        // A multi-threaded primary is not mended page by page: a takeover
        // replaces its whole memory ([`crate::failover`]).
        let ok = !replaced
            && st.repair.is_none()
            && st.threads.is_none()
            && st.dups.iter().flatten().any(|d| d.ready);
        if ok {
            st.repair = Some((addr, pfn));
        }
        (replaced, ok, st.threads.is_some())
    };
    if replaced {
        pr_info!(
            "pid {}: memory error at frame {:#x} in the primary, which a duplicate is \
             taking over\n",
            group.pid(),
            pfn
        );
    } else if repairable {
        pr_info!(
            "pid {}: memory error at frame {:#x} in the primary (address {:#x}); \
             restoring it from a duplicate at its next system call\n",
            group.pid(),
            pfn,
            addr
        );
        // A primary asleep in a call that can be made again unseen has
        // its page restored now, not when it wakes.
        group.interrupt_blocked();
    } else if threaded {
        // Its page is not restored alone: the thread that touches it gets
        // the kernel's SIGBUS, and a duplicate's state replaces the
        // primary's then ([`crate::failover`]).
        pr_info!(
            "pid {}: memory error at frame {:#x} in the multi-threaded primary (address {:#x}); \
             a duplicate takes over if it touches the page\n",
            group.pid(),
            pfn,
            addr
        );
    } else {
        pr_warn!(
            "pid {}: memory error at frame {:#x} in the primary and no duplicate in \
             step to restore it from\n",
            group.pid(),
            pfn
        );
    }
}

/// Frames `memory_failure()` retired, waiting for the worker.
///
/// # Invariants
///
/// `pfns[..count]` are the queued frames (`count <= pfns.len()`); `worker`
/// is there from module init until the probes are gone.
struct Retired {
    pfns: [usize; 32],
    count: usize,
    /// Frames dropped because the queue was full, not reported yet.
    dropped: usize,
    worker: Option<Arc<Worker>>,
}

kernel::sync::global_lock! {
    // SAFETY: `Reports::init` initialises the lock in module init, before
    // the probes are registered.
    unsafe(uninit) static RETIRED: SpinLockIrq<Retired> = Retired {
        pfns: [0; 32],
        count: 0,
        dropped: 0,
        worker: None,
    };
}

/// The work item that runs [`memory_failure`] for the queued frames.
#[pin_data]
struct Worker {
    #[pin]
    work: Work<Worker>,
}

impl_has_work! {
    impl HasWork<Self> for Worker { self.work }
}

impl WorkItem for Worker {
    type Pointer = Arc<Worker>;

    fn run(_this: Arc<Worker>) {
        loop {
            // The lock is dropped before the frame is looked at (which
            // sleeps).
            let (next, dropped) = {
                let mut retired = RETIRED.lock();
                let next = retired.count.checked_sub(1).map(|i| {
                    retired.count = i;
                    retired.pfns[i]
                });
                (next, core::mem::take(&mut retired.dropped))
            };
            if dropped > 0 {
                pr_warn!("{} memory failure(s) not looked at (queue full)\n", dropped);
            }
            let Some(pfn) = next else {
                return;
            };
            memory_failure(pfn);
        }
    }
}

/// From the `memory_failure_event` probe, for a frame `pfn` that
/// `memory_failure()` retired while something is protected: queues it for
/// [`memory_failure`] in a worker. Does not sleep or allocate.
pub(crate) fn retired(pfn: usize) {
    let worker = {
        let mut retired = RETIRED.lock();
        let i = retired.count;
        if i < retired.pfns.len() {
            retired.pfns[i] = pfn;
            retired.count = i + 1;
        } else {
            retired.dropped += 1;
        }
        retired.worker.clone()
    };
    if let Some(worker) = worker {
        // `schedule_work()`'s queue; `system_wq`, which
        // `workqueue::system()` returns, is deprecated.
        // SAFETY: `system_percpu_wq` is a C global, set up at boot and
        // never freed.
        let queue = unsafe { workqueue::Queue::from_raw(bindings::system_percpu_wq) };
        // Already queued (`Err`): that run takes this frame too.
        let _ = queue.enqueue(worker);
    }
}

/// After any memory failure the kernel handled and retired frame `pfn` for
/// (hwpoison injection, firmware-first reports, ...), in a worker: a
/// primary the frame was unmapped from (its page table holds the poisoned
/// entry) gets its page back as for an action-optional machine check,
/// before it uses the page and before a duplicate could be copied from it.
/// Frames the decode chain reported are its business; a duplicate on the
/// frame died of the kernel's early kill and is being replaced.
pub(crate) fn memory_failure(pfn: usize) {
    if !crate::module_parameters::early_restore.value() || RECENT.lock().pfns.contains(&pfn) {
        return;
    }
    for group in group::all().iter() {
        // Read before the page tables: a promotion that replaces the page
        // after they were read (or was under way then) is then seen by
        // `primary_hit`.
        let promotions = group.lock().promotions_done();
        let Some(addr) = locate(group.primary(), pfn, true) else {
            continue;
        };
        {
            let st = group.lock();
            if st.promote.is_some() || st.promoting || st.promotions != promotions {
                // The primary consumed the page (action required): the
                // promotion that replaces it has counted the error.
                continue;
            }
        }
        events::emit(
            group.pid(),
            What::MemoryError {
                replica: group.pid(),
                primary: true,
                frame: pfn as u64,
            },
        );
        primary_hit(group, pfn, addr, promotions);
    }
}

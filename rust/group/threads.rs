// SPDX-License-Identifier: GPL-2.0

//! The threads of a group's replicas, once its primary created threads
//! under protection: who holds the primary's run token, the calls its
//! other threads keep aside meanwhile, and which thread of each duplicate
//! mirrors which of the primary's. The protocol that uses them is
//! [`crate::sync::threads`]'s.

use kernel::{prelude::*, task::Pid};

use super::{Dup, Group, State};
use crate::{ring::Record, shim, types::DupWork};

/// Threads a group may have (each replica's, including its first): each
/// keeps a slot of the ring free for the record it appends when it takes
/// the token ([`room`]), so no more than half of the ring.
pub(crate) const MAX_THREADS: usize = 32;

const _: () = assert!(2 * MAX_THREADS <= crate::ring::CAPACITY);

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
pub(crate) const CLONE_THREAD: u64 = 0x10000;
pub(crate) const CLONE_SYSVSEM: u64 = 0x40000;
pub(crate) const CLONE_SETTLS: u64 = 0x80000;
pub(crate) const CLONE_CHILD_CLEARTID: u64 = 0x200000;
/// What a C library's thread creation asks for (and procft's, for a new
/// duplicate's threads).
pub(crate) const THREAD: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;

/// A thread creation's flags and where it writes the new thread's id.
#[derive(Clone, Copy)]
pub(crate) struct ThreadClone {
    pub(crate) flags: u64,
    pub(crate) parent_tid: usize,
    pub(crate) child_tid: usize,
}

/// A thread of a multi-threaded primary.
#[derive(Clone, Copy)]
pub(crate) struct PThread {
    /// Its global thread id.
    pub(crate) tid: Pid,
    /// Its recorded call in flight, while it does not hold the token.
    pub(crate) call: Option<(i64, [usize; 6])>,
}

/// The threads of a primary that created threads under protection (in its
/// group's state).
pub(crate) struct Threads {
    /// The thread that holds the run token.
    pub(crate) token: Option<Pid>,
    /// The threads waiting for it, in the order they asked: it goes to
    /// the first ([`Threads::pass`]), so none waits for ever while others
    /// take turns.
    queue: [Pid; MAX_THREADS],
    queued: usize,
    /// How many times it changed hands: a thread waiting long for it
    /// while it does is not kept waiting by a thread that runs on.
    pub(crate) handovers: u64,
    /// Its holder waits in procft (for its duplicates, for room in the
    /// ring): it does not run on.
    pub(crate) holder_waits: bool,
    /// Its threads other than the one holding the token that are in a
    /// recorded call, or new.
    pub(crate) threads: [Option<PThread>; MAX_THREADS],
    /// How many threads it has that have not made their exit, its first
    /// included: an `exit` while there are others is one thread's.
    pub(crate) alive: usize,
    /// A takeover is under way: every thread but the holder is to stop at
    /// its system-call boundary ([`crate::sync::threads::stop_others`]).
    pub(crate) stop: bool,
    /// How many takeovers stopped them so far.
    pub(crate) stops: u64,
    /// How many of them have stopped there since.
    pub(crate) parked: usize,
    /// One of them could not keep what its call wrote: the takeover
    /// cannot go on.
    pub(crate) unparkable: bool,
    /// The threads of a process that was multi-threaded when its
    /// protection began, until each comes under the token: at a call's
    /// return, or where procft's task_work stops it
    /// ([`crate::sync::threads::join`]). No duplicate is made before.
    joining: [Pid; MAX_THREADS],
    pub(crate) nr_joining: usize,
}

impl Threads {
    /// Passes the token on, to the first thread waiting for it if any.
    pub(crate) fn pass(&mut self) {
        self.handovers += 1;
        self.holder_waits = false;
        if self.queued == 0 {
            self.token = None;
            return;
        }
        self.token = Some(self.queue[0]);
        self.queue.copy_within(1..self.queued, 0);
        self.queued -= 1;
    }

    /// Thread `tid` gives the token up (if it holds it) at its recorded
    /// call `call`, whose record it appends when it takes the token back.
    fn give_up(&mut self, tid: Pid, call: (i64, [usize; 6])) {
        self.wait_at(tid, call);
        if self.token == Some(tid) {
            self.pass();
        }
    }

    /// Thread `me` asks for the token: true if it holds it now; if not,
    /// it is in the queue.
    pub(crate) fn ask(&mut self, me: Pid) -> bool {
        if self.token == Some(me) {
            return true;
        }
        if self.token.is_none() && self.queued == 0 {
            self.token = Some(me);
            self.handovers += 1;
            return true;
        }
        if !self.queue[..self.queued].contains(&me) && self.queued < MAX_THREADS {
            self.queue[self.queued] = me;
            self.queued += 1;
        }
        false
    }

    /// Thread `me` no longer waits for the token, or gives it up for good
    /// (it dies).
    pub(crate) fn leave(&mut self, me: Pid) {
        if let Some(i) = self.queue[..self.queued].iter().position(|&t| t == me) {
            self.queue.copy_within(i + 1..self.queued, i);
            self.queued -= 1;
        }
        if self.token == Some(me) {
            self.pass();
        }
    }

    /// Thread `tid` runs under the token from now on: true if it was one
    /// still to join.
    pub(crate) fn joined(&mut self, tid: Pid) -> bool {
        let Some(i) = self.joining[..self.nr_joining]
            .iter()
            .position(|&t| t == tid)
        else {
            return false;
        };
        self.joining.copy_within(i + 1..self.nr_joining, i);
        self.nr_joining -= 1;
        true
    }

    /// One more thread counts among the threads; false if there is no
    /// room for it.
    fn count_new(&mut self) -> bool {
        if self.alive >= MAX_THREADS {
            return false;
        }
        self.alive += 1;
        true
    }

    /// Thread `tid` is one more to join; it counts among the threads.
    /// False if there is no room for it.
    fn add_joining(&mut self, tid: Pid) -> bool {
        if self.nr_joining >= MAX_THREADS || !self.count_new() {
            return false;
        }
        self.joining[self.nr_joining] = tid;
        self.nr_joining += 1;
        true
    }

    /// Thread `tid`, still to join, exits (no record counts its exit): it
    /// no longer counts among the threads.
    pub(crate) fn exited_unjoined(&mut self, tid: Pid) {
        if self.joined(tid) {
            self.alive = self.alive.saturating_sub(1);
        }
    }

    /// Thread `tid` no longer holds the token and waits for the record of
    /// `call` (a system call, or [`crate::syscalls::NR_PREEMPTED`]): a
    /// duplicate made meanwhile has its mirror wait for the same.
    pub(crate) fn wait_at(&mut self, tid: Pid, call: (i64, [usize; 6])) {
        if let Some(slot) = self.slot(tid) {
            *slot = Some(PThread {
                tid,
                call: Some(call),
            });
        }
    }

    /// Whether thread `tid`'s call is noted ([`Threads::wait_at`]).
    pub(crate) fn waits(&self, tid: Pid) -> bool {
        self.threads
            .iter()
            .flatten()
            .any(|p| p.tid == tid && p.call.is_some())
    }

    /// The threads still to join.
    pub(crate) fn still_joining(&self) -> &[Pid] {
        &self.joining[..self.nr_joining]
    }

    pub(crate) fn slot(&mut self, tid: Pid) -> Option<&mut Option<PThread>> {
        let i = self
            .threads
            .iter()
            .position(|t| t.is_some_and(|t| t.tid == tid))
            .or_else(|| self.threads.iter().position(Option::is_none))?;
        Some(&mut self.threads[i])
    }
}

/// The global id of the calling thread.
pub(crate) fn me() -> Pid {
    current!().pid()
}

/// At the primary's `sys_enter` of a thread creation, under its group's
/// lock (`st`), with `spare` allocated beforehand: makes the group
/// multi-threaded if it is not yet. False if it has as many threads as
/// it may. (The new thread counts once it exists: [`forked`].)
pub(crate) fn creating(group: &Group, st: &mut State, spare: &mut Option<KBox<Threads>>) -> bool {
    if st.threads.is_none() {
        let Some(mut t) = spare.take() else {
            return false;
        };
        t.token = Some(me());
        st.threads = Some(t);
        group.set_threaded(true);
    }
    st.threads.as_ref().is_some_and(|t| t.alive < MAX_THREADS)
}

/// The holder of the run token of `group` waits in procft, or makes a
/// duplicate (`on`), or no longer does: a thread waiting for the token
/// meanwhile waits on, and does not count that time as the holder's
/// running on without a call.
pub(crate) fn holder_waits(group: &Group, on: bool) {
    if let Some(t) = group.lock().threads.as_mut() {
        t.holder_waits = on;
    }
}

/// From the fork probe (no sleeping), under the group's lock (`st`): the
/// primary's thread `parent` made thread `child` (global ids). The new
/// thread counts from here, before it runs, and keeps a slot of the ring
/// ([`room`]). A creation procft saw at its `sys_enter` is the run token
/// holder's, which keeps the token through it: the new thread comes under
/// the token at its first return. One made by a thread not holding the
/// token is made by a thread still to join (its `clone` begun before the
/// protection, or since, as it has not joined yet): its new thread joins
/// too, at that same first return (its probe marks it before it runs),
/// and no duplicate is made before. One the count taken
/// at the registration found ([`recount`]) counts already. False if the
/// group has as many threads as it may.
pub(crate) fn forked(st: &mut State, parent: Pid, child: Pid) -> bool {
    let Some(t) = st.threads.as_mut() else {
        return true;
    };
    if t.still_joining().contains(&child) {
        return true;
    }
    if t.token != Some(parent) {
        t.add_joining(child)
    } else {
        t.count_new()
    }
}

/// A new, empty [`Threads`], for [`creating`].
pub(crate) fn new_threads() -> Option<KBox<Threads>> {
    // Made in place: built on the stack, it would take its caller's frame
    // past a kilobyte.
    KBox::init(
        init!(Threads {
            token: None,
            queue: [0; MAX_THREADS],
            queued: 0,
            handovers: 0,
            holder_waits: false,
            threads <- pin_init::init_array_from_fn(|_| None),
            alive: 1,
            stop: false,
            stops: 0,
            parked: 0,
            unparkable: false,
            joining: [0; MAX_THREADS],
            nr_joining: 0,
        }),
        GFP_KERNEL_ACCOUNT,
    )
    .ok()
}

/// The [`Threads`] of the process led by `leader`, multi-threaded when
/// its protection begins, before its group is registered: every thread is
/// still to join, and none holds the token. `None` if it has too many
/// threads (or no memory).
pub(crate) fn joining(leader: &kernel::task::Task) -> Option<KBox<Threads>> {
    let mut t = new_threads()?;
    let n = shim::process_thread_ids(leader, &mut t.joining);
    if n == 0 || n >= MAX_THREADS {
        return None;
    }
    t.nr_joining = n;
    t.alive = n;
    Some(t)
}

/// At the registration of the group of `leader`'s process, multi-threaded
/// when its protection began ([`joining`]), under the registry's lock and
/// the group's (`t`, its threads), right after its threads were marked:
/// the threads listed since the count join too. Such a thread was made
/// by a `clone` in flight at the count, and its fork probe, which ran
/// before the registration, found no group to tell; it may be running
/// user code already, so it is stopped to join like the others
/// ([`crate::sync::threads::call_to_join`]). A thread listed after this
/// count has its fork probe find the group ([`forked`]). No thread has
/// joined yet: the group's lock is held from before the marking. How
/// many threads it found; `None` if the process has more threads than a
/// group may.
pub(crate) fn recount(leader: &kernel::task::Task, t: &mut Threads) -> Option<usize> {
    let mut tids = [0; MAX_THREADS];
    let n = shim::process_thread_ids(leader, &mut tids);
    if n >= MAX_THREADS {
        return None;
    }
    let mut found = 0;
    for &tid in &tids[..n] {
        if !t.still_joining().contains(&tid) {
            if !t.add_joining(tid) {
                return None;
            }
            found += 1;
        }
    }
    Some(found)
}

/// How many slots of the ring must be free for the primary's calling
/// thread to append a record (`st`, its group's state, locked): one for
/// it, and, in a multi-threaded group, one for each other thread, which
/// may append one when it takes the token without looking.
pub(crate) fn room(st: &State) -> usize {
    st.threads.as_ref().map_or(1, |t| t.alive)
}

/// At the primary's `sys_enter` of recorded call `nr` with `args` (armed
/// in `st.call` if a duplicate needs its record), under its group's lock
/// (`st`): it gives the run token up, keeping its call aside. True if there may be a thread to wake.
pub(crate) fn give_up(st: &mut State, nr: i64, args: &[usize; 6]) -> bool {
    let Some(t) = st.threads.as_mut() else {
        return false;
    };
    // Its call, armed or not (with no duplicate, nothing is armed): a
    // duplicate made meanwhile waits for its record, made when the
    // thread takes the token back.
    let call = st.call.take().unwrap_or((nr, *args));
    t.give_up(me(), call);
    true
}

/// Under the group's lock (`st`), for thread `tid` of its primary that
/// kept the run token through its recorded call `call` (armed without
/// the lock: see [`crate::group::Fast`]): gives the token up for it, as
/// [`give_up`] would have at the call's `sys_enter`. The thread finds it
/// given up at the call's `sys_exit`, and takes its turn then.
pub(crate) fn give_up_for(st: &mut State, tid: Pid, call: Option<(i64, [usize; 6])>) {
    if let (Some(t), Some(call)) = (st.threads.as_mut(), call) {
        t.give_up(tid, call);
    }
}

/// Whether the thread holding the run token (if any) may keep it through
/// its recorded calls, armed without the lock ([`crate::group::Fast`]):
/// no other thread waits for it, or is to join, or to stop.
pub(crate) fn solo(t: &Threads) -> bool {
    t.token.is_some() && t.queued == 0 && t.nr_joining == 0 && !t.stop && !t.holder_waits
}

/// The primary's new thread, for a duplicate's thread creation in flight.
#[derive(Clone, Copy)]
pub(crate) struct PendingChild {
    /// Its global id.
    pub(crate) ptid: Pid,
    /// Its id as the program sees it (the creation's result).
    pub(crate) pvnr: Pid,
    /// The creation.
    pub(crate) clone: ThreadClone,
    /// A signal the primary handled on its way back from it.
    pub(crate) signal: Option<(i32, shim::SigInfo)>,
}

/// A thread of a duplicate.
#[derive(Clone, Copy)]
pub(crate) struct DThread {
    /// Its global thread id.
    pub(crate) tid: Pid,
    /// The global id of the primary's thread it mirrors.
    pub(crate) ptid: Pid,
    /// That thread's id as the program sees it.
    pub(crate) pvnr: Pid,
    /// Where it writes that id at its first return (`CLONE_CHILD_SETTID`).
    pub(crate) settid: usize,
    /// What its task_work is to do next.
    pub(crate) work: DupWork,
    /// It took the record of its exit and makes it now.
    pub(crate) exiting: bool,
}

/// The threads of a duplicate whose primary created threads (in its
/// [`Dup`]).
pub(crate) struct DupThreads {
    /// Its thread running user code: it took the last record and has not
    /// reached a call that gives the token up.
    pub(crate) running: Option<Pid>,
    /// Its thread that took the last record (running or not).
    pub(crate) last: Pid,
    /// The call that thread waits at for its next record, once it does
    /// ([`stands`]): the duplicate then stands still, as a whole.
    pub(crate) standing: Option<i64>,
    /// The global id of its first thread's counterpart, the primary's
    /// thread that made the first thread creation.
    pub(crate) first: Pid,
    /// Its first thread took the record of its exit and makes it now.
    pub(crate) first_exiting: bool,
    /// In a duplicate made of a multi-threaded process, the
    /// `clear_child_tid` address of the primary's thread its first thread
    /// mirrors, which fork() did not give it (0: none).
    pub(crate) first_clear_tid: usize,
    /// How many of its threads have not taken the record of their exit,
    /// its first included (as [`Threads::alive`] in the primary).
    pub(crate) alive: usize,
    /// Its threads other than the first.
    pub(crate) threads: [Option<DThread>; MAX_THREADS],
    /// The primary's new thread for the creation in flight: global id,
    /// id as the program sees it, and the creation.
    pub(crate) child: Option<PendingChild>,
}

/// A thread of a multi-threaded primary, as a new duplicate re-creates it
/// ([`crate::replica::threads`]): taken while the primary's thread waits
/// in the kernel, in a recorded call or for the run token.
pub(crate) struct ThreadImage {
    /// Its global id.
    pub(crate) ptid: Pid,
    /// The call whose record it waits for (a new thread's: the creating
    /// call, which its first return records).
    pub(crate) call: (i64, [usize; 6]),
    /// Its user registers, FPU and signal state.
    pub(crate) regs: shim::SavedRegs,
    pub(crate) fpu: shim::FpuState,
    pub(crate) sig: shim::SigState,
    /// Its FS base (TLS) and `clear_child_tid` address.
    pub(crate) tls: usize,
    pub(crate) clear_tid: usize,
}

/// The other threads of a multi-threaded primary, for the duplicate about
/// to be made of it (in [`State::images`], then in its [`Dup`]).
pub(crate) struct Images {
    /// One per thread; each is taken by the thread made for it.
    pub(crate) list: KVec<Option<ThreadImage>>,
    /// How many threads the duplicate made so far.
    pub(crate) made: usize,
    /// How many it will have made once the creation under way returns
    /// (the fork probe counts a thread made in `made`): a creation that
    /// returned a thread id but made none was faked (a seccomp filter's
    /// `SECCOMP_RET_TRAP` leaves the call's number as its result).
    pub(crate) asked: usize,
    /// It is still making them: its `clone3()` (or `clone()`) calls are
    /// procft's.
    pub(crate) building: bool,
    /// It makes them with `clone()`: a seccomp filter refused `clone3()`
    /// with `ENOSYS`, as container runtimes' default profiles do.
    pub(crate) legacy: bool,
    /// Its threads' state, its first thread the caller's mirror.
    pub(crate) threads: Option<KBox<DupThreads>>,
}

/// A new [`DupThreads`], allocated before the lock is taken.
pub(crate) fn new_dup_threads() -> Option<KBox<DupThreads>> {
    // Made in place, as [`new_threads`].
    KBox::init(
        init!(DupThreads {
            running: None,
            last: 0,
            standing: None,
            first: 0,
            first_exiting: false,
            first_clear_tid: 0,
            alive: 1,
            threads <- pin_init::init_array_from_fn(|_| None),
            child: None,
        }),
        GFP_KERNEL_ACCOUNT,
    )
    .ok()
}

impl DupThreads {
    pub(crate) fn find(&mut self, tid: Pid) -> Option<&mut DThread> {
        self.threads.iter_mut().flatten().find(|t| t.tid == tid)
    }
}

/// Whether duplicate thread `tid` (of `d`) may take `record` now: it is the
/// record of the primary's thread it mirrors, and no other thread of the
/// duplicate runs user code.
pub(crate) fn may_take(d: &Dup, record: &Record, tid: Pid) -> bool {
    let Some(t) = d.threads.as_ref() else {
        // Single-threaded so far: all its records are its first thread's.
        return tid == d.tgid;
    };
    if t.running.is_some_and(|r| r != tid) {
        return false;
    }
    counterpart(t, d.tgid, tid) == Some(record.tid)
}

/// The global id of the primary's thread that thread `tid` of the
/// duplicate whose tgid is `tgid` (its threads `t`) mirrors.
fn counterpart(t: &DupThreads, tgid: Pid, tid: Pid) -> Option<Pid> {
    if tid == tgid {
        return Some(t.first);
    }
    t.threads
        .iter()
        .flatten()
        .find(|x| x.tid == tid)
        .map(|x| x.ptid)
}

/// The global id of the primary's thread whose records duplicate thread
/// `tid` (of `d`) takes, the key of its waits; `None` while the duplicate
/// has one thread, or if it is not known.
pub(crate) fn mirrored(d: &Dup, tid: Pid) -> Option<Pid> {
    counterpart(d.threads.as_ref()?, d.tgid, tid).filter(|&p| p > 0)
}

/// After duplicate thread `tid` (of `d`) took a record: it runs user code.
pub(crate) fn took(d: &mut Dup, tid: Pid) {
    if let Some(t) = d.threads.as_mut() {
        t.running = Some(tid);
        t.last = tid;
        t.standing = None;
    }
}

/// Duplicate thread `tid` (of `d`) waits for its next record at call
/// `nr`: if it took the last record, no thread of the duplicate runs user
/// code until the next record comes.
pub(crate) fn stands(d: &mut Dup, tid: Pid, nr: i64) {
    if let Some(t) = d.threads.as_mut() {
        if t.last == tid {
            t.standing = Some(nr);
        }
    }
}

/// If multi-threaded duplicate `d` stands still before the record with
/// sequence number `head` (it consumed every earlier one, and the thread
/// that took the last waits for its next): that thread's global id, and
/// the call it stands at. `None` for a duplicate whose primary made no
/// thread yet.
pub(crate) fn standing(d: &Dup, head: u64) -> Option<(Pid, i64)> {
    let t = d.threads.as_ref()?;
    let nr = t.standing.filter(|_| d.next_seq == head)?;
    Some((t.last, nr))
}

/// The global id of the thread of duplicate `d` that mirrors the
/// primary's thread `ptid`.
pub(crate) fn mirror(d: &Dup, ptid: Pid) -> Option<Pid> {
    let t = d.threads.as_ref()?;
    if t.first == ptid {
        return (!t.first_exiting).then_some(d.tgid);
    }
    t.threads
        .iter()
        .flatten()
        .find(|x| x.ptid == ptid && !x.exiting)
        .map(|x| x.tid)
}

/// At a duplicate thread's call that gives the token up in the primary:
/// it no longer runs user code. True if another thread may go on.
pub(crate) fn dup_gives_up(d: &mut Dup, tid: Pid) -> bool {
    match d.threads.as_mut() {
        Some(t) if t.running == Some(tid) => {
            t.running = None;
            true
        }
        _ => false,
    }
}

/// Sets the work of duplicate thread `tid` of `d` to `work`: its
/// preallocated task_work to queue, if it has one ([`work_of`]); `Err` for
/// a thread `d` does not know, which must not run on.
pub(crate) fn set_work(
    d: &mut Dup,
    tid: Pid,
    work: DupWork,
) -> Result<Option<shim::OwnWorkRef>, ()> {
    match work_of(d, tid) {
        (Some(slot), own) => {
            *slot = work;
            Ok(own)
        }
        (None, _) => Err(()),
    }
}

/// The work slot of duplicate thread `tid` of `d`, and its preallocated
/// task_work if it has one (only the first thread does).
pub(crate) fn work_of(d: &mut Dup, tid: Pid) -> (Option<&mut DupWork>, Option<shim::OwnWorkRef>) {
    if tid == d.tgid {
        let own = d.own_work.as_ref().map(|w| w.handle());
        return (Some(&mut d.work), own);
    }
    let work = d
        .threads
        .as_mut()
        .and_then(|t| t.find(tid))
        .map(|t| &mut t.work);
    (work, None)
}

/// Whether duplicate thread `tid` of `d` took the record of its exit: it
/// is marked so, or (its place taken by a newer thread) no longer known.
pub(crate) fn exiting(d: &Dup, tid: Pid) -> bool {
    match d.threads.as_ref() {
        Some(t) if tid == d.tgid => t.first_exiting,
        Some(t) => t
            .threads
            .iter()
            .flatten()
            .find(|x| x.tid == tid)
            .is_none_or(|x| x.exiting),
        None => false,
    }
}

/// Whether an `exit` of the calling thread of the primary of `st` (one of
/// several) is one thread's, not its process's.
pub(crate) fn one_of_several(st: &State) -> bool {
    st.threads.as_ref().is_some_and(|t| t.alive > 1)
}

/// Whether an `exit` of a thread of duplicate `d` is one thread's: as in
/// its primary, counted by the records it took, not by the kernel's count,
/// which lags.
pub(crate) fn dup_one_of_several(d: &Dup) -> bool {
    d.threads.as_ref().is_some_and(|t| t.alive > 1)
}

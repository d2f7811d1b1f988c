// SPDX-License-Identifier: GPL-2.0

//! Voting: with two or more duplicates, a call that sends bytes out of the
//! process (write, send, ...) is made only once a majority of the replicas
//! agree on it.
//!
//! The primary stops at such a call (in a task_work, the call suppressed)
//! until every duplicate in step has reached the same point of the
//! program, or [`VOTE_TIMEOUT_MS`] passed. Each replica's vote is its call
//! number, its arguments and a hash of the bytes it would send. Then:
//!
//! - the primary is in the majority: it makes the call; a duplicate that
//!   voted otherwise is found diverged when it takes the record, and is
//!   replaced;
//! - a majority of duplicates agree with each other against the primary:
//!   the primary is outvoted, its output never leaves, and one of the
//!   majority takes over by promotion ([`crate::failover`]);
//! - no majority (every replica different): the primary goes on, and the
//!   event is logged.
//!
//! With one duplicate there is no majority to be had: a disagreement is
//! detected when the duplicate takes the record and the duplicate is
//! replaced, even if the primary was the faulty one (silent corruption of
//! the primary is detected, not masked, at level 1).

use kernel::{ffi::c_void, prelude::*, sync::Arc, task::Task};

use crate::{
    events::{self, What},
    failover,
    group::{self, Group},
    shim, syscalls,
    types::{Cause, Vote},
};

/// How long the primary waits for the duplicates' votes.
pub(crate) const VOTE_TIMEOUT_MS: u32 = 2000;

/// The outcome of a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The primary is in the majority.
    Primary,
    /// The duplicate at this index of the votes is in a majority the
    /// primary is not in.
    Outvoted(usize),
    /// No value has a majority.
    NoMajority,
}

/// Tallies the primary's vote against the duplicates' (one replica, one
/// vote; a majority is more than half of all the voters).
pub(crate) fn decide(primary: &Vote, dups: &[Vote]) -> Verdict {
    let total = 1 + dups.len();
    let agree = 1 + dups.iter().filter(|v| *v == primary).count();
    if agree * 2 > total {
        return Verdict::Primary;
    }
    for (i, v) in dups.iter().enumerate() {
        if dups.iter().filter(|w| *w == v).count() * 2 > total {
            return Verdict::Outvoted(i);
        }
    }
    Verdict::NoMajority
}

/// Whether the primary's call `nr` is put to the vote: it sends bytes
/// out, and at least two duplicates are in step to vote.
pub(crate) fn wanted(group: &Group, nr: i64) -> bool {
    syscalls::input(nr).is_some() && wanted_in(&group.lock(), nr)
}

/// [`wanted`], under the group's lock (`st`).
pub(crate) fn wanted_in(st: &group::State, nr: i64) -> bool {
    // Not built for a multi-threaded group ([`crate::sync::threads`]).
    syscalls::input(nr).is_some()
        && st.voted != Some(st.ring.head())
        && st.nr_ready() >= 2
        && st.threads.is_none()
}

/// Whether every duplicate in step has voted on the primary's next call
/// (`arg` is the [`Group`]).
///
/// # Safety
///
/// `arg` must point to a live [`Group`].
unsafe extern "C" fn all_voted(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let group = unsafe { &*arg.cast::<Group>() };
    let st = group.lock();
    let head = st.ring.head();
    st.closed
        || st
            .dups
            .iter()
            .flatten()
            .filter(|d| d.ready && !d.leaving)
            .all(|d| d.vote.is_some() && d.stands_at(head))
}

/// In the primary's task_work, its call `mine` suppressed: collect the
/// duplicates' votes and act on the verdict.
pub(crate) fn tally(group: &Arc<Group>, task: &Task, mine: Vote) {
    let arg = core::ptr::from_ref(&**group).cast();
    // Duplicates left asleep for a while ([`group::LAZY_RECORDS`]) come now.
    group.wake();
    let waited = group
        .wq
        .wait_killable_timeout(all_voted, arg, VOTE_TIMEOUT_MS);
    match waited {
        Err(e) if e == ERESTARTSYS => return,
        _ => {}
    }
    let mut votes = [Vote::default(); crate::group::MAX_DUPS];
    let mut voters = [0; crate::group::MAX_DUPS];
    let (n, head) = {
        let st = group.lock();
        let head = st.ring.head();
        let mut n = 0;
        for d in st.dups.iter().flatten().filter(|d| d.ready && !d.leaving) {
            if let (Some(v), true) = (d.vote, d.stands_at(head)) {
                votes[n] = v;
                voters[n] = d.tgid;
                n += 1;
            }
        }
        (n, head)
    };
    let name = syscalls::name(mine.nr);
    match decide(&mine, &votes[..n]) {
        Verdict::Primary => {
            let mut st = group.lock();
            st.voted = Some(head);
            st.passed = Some(mine);
            drop(st);
            shim::restart_call(mine.nr);
        }
        Verdict::NoMajority => {
            pr_warn!(
                "pid {}: no majority among {} replicas at call #{} ({}); the primary goes on\n",
                group.pid(),
                n + 1,
                head,
                name
            );
            let mut st = group.lock();
            st.voted = Some(head);
            st.passed = Some(mine);
            drop(st);
            shim::restart_call(mine.nr);
        }
        Verdict::Outvoted(i) => {
            {
                let mut st = group.lock();
                st.counters.divergences += 1;
                st.successor = Some(voters[i]);
                st.promote = Some(Cause::Outvoted);
            }
            let against = votes[..n].iter().filter(|v| **v == votes[i]).count();
            events::emit(
                group.pid(),
                What::Outvoted {
                    seq: head,
                    against: against as u32,
                    voters: (n + 1) as u32,
                },
            );
            pr_info!(
                "pid {}: primary outvoted at call #{} ({}): {} of {} replicas disagree with it; \
                 a duplicate takes over\n",
                group.pid(),
                head,
                name,
                against,
                n + 1
            );
            failover::promote(group, task);
        }
    }
}

#[kunit_tests(procft_vote)]
mod tests {
    use super::*;

    fn v(hash: u64) -> Vote {
        Vote {
            nr: 1,
            args: [1, 0x1000, 16, 0, 0, 0],
            hash,
        }
    }

    #[test]
    fn primary_with_the_majority_goes_on() {
        assert_eq!(decide(&v(1), &[v(1), v(2)]), Verdict::Primary);
        assert_eq!(decide(&v(1), &[v(1), v(1)]), Verdict::Primary);
        assert_eq!(decide(&v(1), &[v(2), v(1), v(1)]), Verdict::Primary);
    }

    #[test]
    fn a_corrupted_primary_is_outvoted() {
        assert_eq!(decide(&v(9), &[v(1), v(1)]), Verdict::Outvoted(0));
        assert_eq!(
            decide(&v(9), &[v(3), v(1), v(1), v(1)]),
            Verdict::Outvoted(1)
        );
    }

    #[test]
    fn a_tie_or_chaos_has_no_majority() {
        // Two against two (level 3), or everyone different.
        assert_eq!(decide(&v(1), &[v(1), v(2), v(2)]), Verdict::NoMajority);
        assert_eq!(decide(&v(1), &[v(2), v(3)]), Verdict::NoMajority);
        // A lone primary (nobody voted in time) is a majority of one.
        assert_eq!(decide(&v(1), &[]), Verdict::Primary);
    }

    #[test]
    fn arguments_count_as_much_as_bytes() {
        let mut other = v(1);
        other.args[2] = 17;
        assert_eq!(decide(&other, &[v(1), v(1)]), Verdict::Outvoted(0));
    }
}

// SPDX-License-Identifier: GPL-2.0

//! procfs: `/proc/<pid>/ft_level` and `/proc/procft`.
//!
//! The entries themselves are created by the C shim (procfs has no Rust
//! abstraction), which calls the handlers in [`crate::hooks`]; this is the
//! format of `/proc/procft`.

use kernel::{fmt, pid_namespace::PidNamespace, prelude::*, seq_file::SeqFile, seq_print};

use crate::{group, group::Snapshot};

/// One line of `/proc/procft`: space-separated `key=value` fields.
/// `replicas` lists the primary and every live duplicate; `duplicates`
/// counts those on their own frames against the level; `sync` says how
/// duplicates follow the primary (`lockstep`: at system-call boundaries);
/// `lag` counts the primary's records the slowest duplicate has yet to
/// take.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid={} level={} replicas=", self.pid, self.level)?;
        for (i, pid) in self.replicas[..self.nr_replicas].iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pid}")?;
        }
        let c = &self.counters;
        write!(
            f,
            " duplicates={}/{} sync=lockstep failovers={} respawns={} mce_events={} divergences={} \
             lag={}",
            self.ready,
            self.level,
            c.failovers,
            c.respawns,
            c.mce_events,
            c.divergences,
            self.lag
        )?;
        let (bytes, peak) = self.buffered;
        write!(
            f,
            " buffered={bytes} buffered_peak={peak} preemptions={}",
            c.preemptions
        )
    }
}

/// Shows `/proc/procft` in `m`: one line per protected process that has a
/// pid in `ns`, the pid namespace of the proc mount it is read through (as
/// for `/proc/<pid>` directories), with the pids it has there.
pub(crate) fn status_show(m: &SeqFile, ns: &PidNamespace) {
    group::for_each(|g| {
        let snap = g.snapshot_in(Some(ns));
        if snap.pid != 0 {
            seq_print!(m, "{}\n", snap);
        }
    });
}

#[kunit_tests(procft_procfs)]
mod tests {
    use super::*;
    use kernel::str::CString;

    #[test]
    fn status_line_has_every_field() -> Result {
        let mut s = Snapshot::unprotected(100);
        s.level = 2;
        s.replicas[1] = 101;
        s.replicas[2] = 102;
        s.nr_replicas = 3;
        s.ready = 2;
        s.counters.failovers = 1;
        s.counters.respawns = 2;
        s.counters.mce_events = 3;
        s.counters.divergences = 4;
        s.lag = 5;
        s.buffered = (4096, 65536);
        s.counters.preemptions = 6;
        let line = CString::try_from_fmt(fmt!("{}", s))?;
        assert_eq!(
            line.to_bytes(),
            b"pid=100 level=2 replicas=100,101,102 duplicates=2/2 sync=lockstep failovers=1 \
              respawns=2 mce_events=3 divergences=4 lag=5 buffered=4096 buffered_peak=65536 \
              preemptions=6"
        );
        Ok(())
    }
}

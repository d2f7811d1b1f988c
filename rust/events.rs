// SPDX-License-Identifier: GPL-2.0

//! The event log (and procft's tracepoints, `events/procft/` in tracefs,
//! fired from the same place): what happened to protected processes (memory errors,
//! lost and new duplicates, promotions, divergences, level changes), in a
//! fixed ring of the last [`CAPACITY`] events that `read()` on
//! `/dev/procft` returns as text, one `key=value` line per event
//! (`ftctl events` follows it).
//!
//! Events are recorded from probes that may not sleep or allocate, so the
//! ring is a fixed array under a spinlock; readers sleep on the shim's wait
//! queue. The file position is the sequence number of the next event to
//! read; a reader that fell more than [`CAPACITY`] events behind is told how
//! many it lost.

use core::fmt::Write;

use kernel::{
    bindings,
    prelude::*,
    task::Pid,
    time::{ClockSource, Monotonic},
};

use crate::{shim, types::Cause};

/// Events kept for readers.
pub(crate) const CAPACITY: usize = 256;

/// What happened.
#[derive(Clone, Copy, Debug)]
pub(crate) enum What {
    /// A machine check reported a frame of this replica.
    MemoryError {
        replica: Pid,
        primary: bool,
        frame: u64,
    },
    /// The primary consumed poisoned memory (action required).
    Poisoned { addr: u64 },
    /// A duplicate died without procft asking.
    Lost { replica: Pid },
    /// A duplicate was created to restore the level.
    Respawn { replica: Pid },
    /// A page of the primary was restored from a duplicate.
    Restore { from: Pid, addr: u64, frame: u64 },
    /// A duplicate's state was taken by the primary's task.
    Promotion {
        from: Pid,
        cause: Cause,
        seq: u64,
        pages: u64,
        us: u64,
    },
    /// A duplicate disagreed with the primary's record.
    Divergence { replica: Pid },
    /// The duplicates outvoted the primary.
    Outvoted { seq: u64, against: u32, voters: u32 },
    /// The level changed (0: protection ended).
    Level { old: u32, new: u32 },
    /// The process did something procft cannot replicate.
    Ended { why: &'static str },
}

#[derive(Clone, Copy)]
struct Event {
    seq: u64,
    ns: i64,
    pid: Pid,
    what: What,
}

struct Log {
    ring: [Option<Event>; CAPACITY],
    /// Sequence number of the next event.
    next: u64,
}

// Taken under a primary's siglock too (a poisoned primary's SIGBUS), so it
// keeps interrupts off while held; see `Documentation/procft.rst`,
// "Locking".
kernel::sync::global_lock! {
    // SAFETY: `init` initialises the lock in module init, before any hook
    // that records events is registered.
    unsafe(uninit) static LOG: SpinLockIrq<Log> = Log {
        ring: [None; CAPACITY],
        next: 0,
    };
}

/// Initialises the log. Called once from module init, first.
pub(crate) fn init() {
    // SAFETY: Called once, from module init, before any other use.
    unsafe { LOG.init() };
}

/// Records that `what` happened to the process whose pid (as the world
/// sees it) is `pid`. Does not sleep or allocate.
pub(crate) fn emit(pid: Pid, what: What) {
    use shim::trace::{self, Replica};
    match what {
        What::MemoryError {
            replica,
            primary,
            frame,
        } => trace::memory_error(pid, replica, primary, frame as usize),
        What::Lost { replica } => trace::replica(Replica::Lost, pid, replica),
        What::Respawn { replica } => trace::replica(Replica::Respawn, pid, replica),
        What::Divergence { replica } => trace::replica(Replica::Divergence, pid, replica),
        What::Promotion {
            from,
            cause,
            pages,
            us,
            ..
        } => trace::promotion(pid, from, cause.trace_code(), pages as usize, us as usize),
        _ => {}
    }
    let ns = Monotonic::ktime_get();
    {
        let mut log = LOG.lock();
        let seq = log.next;
        log.next += 1;
        log.ring[(seq % CAPACITY as u64) as usize] = Some(Event { seq, ns, pid, what });
    }
    shim::wake_all();
}

/// Sequence number the next event will have.
pub(crate) fn next_seq() -> u64 {
    LOG.lock().next
}

/// A text buffer for one line.
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn format(e: &Event, out: &mut Line) -> core::fmt::Result {
    let (s, us) = (e.ns / 1_000_000_000, (e.ns % 1_000_000_000) / 1000);
    write!(
        out,
        "seq={} time={}.{:06} pid={} event=",
        e.seq, s, us, e.pid
    )?;
    match e.what {
        What::MemoryError {
            replica,
            primary,
            frame,
        } => write!(
            out,
            "memory_error replica={} role={} frame={:#x}",
            replica,
            if primary { "primary" } else { "duplicate" },
            frame
        ),
        What::Poisoned { addr } => write!(out, "poison_consumed addr={:#x}", addr),
        What::Lost { replica } => write!(out, "duplicate_lost replica={}", replica),
        What::Respawn { replica } => write!(out, "respawn replica={}", replica),
        What::Restore { from, addr, frame } => write!(
            out,
            "page_restored from={} addr={:#x} frame={:#x}",
            from, addr, frame
        ),
        What::Promotion {
            from,
            cause,
            seq,
            pages,
            us,
        } => write!(
            out,
            "promotion from={} cause={} call={} pages={} us={}",
            from,
            cause.name(),
            seq,
            pages,
            us
        ),
        What::Divergence { replica } => write!(out, "divergence replica={}", replica),
        What::Outvoted {
            seq,
            against,
            voters,
        } => write!(
            out,
            "outvoted call={} against={} voters={}",
            seq, against, voters
        ),
        What::Level { old, new } => write!(out, "level old={} new={}", old, new),
        What::Ended { why } => {
            // `why` is prose; keep the line one token per field.
            write!(out, "protection_ended why=\"{}\"", why)
        }
    }?;
    out.write_str("\n")
}

/// Formats events from sequence number `*pos` on into `out` (whole lines
/// only, at most `room` bytes) and advances `*pos`. Returns the bytes
/// written; 0 if there is nothing new.
pub(crate) fn read(pos: &mut u64, out: &mut KVec<u8>, room: usize) -> Result<usize> {
    let mut line = Line {
        buf: [0; 192],
        len: 0,
    };
    let mut written = 0;
    loop {
        line.len = 0;
        let next = {
            let log = LOG.lock();
            let oldest = log.next.saturating_sub(CAPACITY as u64);
            if *pos >= log.next {
                None
            } else if *pos < oldest {
                Some(Err(oldest))
            } else {
                log.ring[(*pos % CAPACITY as u64) as usize].map(Ok)
            }
        };
        let skip_to = match next {
            None => break,
            Some(Ok(e)) => {
                let _ = format(&e, &mut line);
                None
            }
            Some(Err(oldest)) => {
                let _ = writeln!(line, "lost={}", oldest - *pos);
                Some(oldest)
            }
        };
        if written + line.len > room {
            break;
        }
        out.extend_from_slice(&line.buf[..line.len], GFP_KERNEL)?;
        written += line.len;
        *pos = skip_to.unwrap_or(*pos + 1);
    }
    Ok(written)
}

const _: () = assert!(core::mem::size_of::<bindings::ktime_t>() == 8);

// SPDX-License-Identifier: GPL-2.0

//! The synchronisation buffer of a group: a bounded ring of the primary's
//! system-call records, which every duplicate consumes in order.
//!
//! The primary appends a record at the `sys_exit` of each call that only it
//! runs; a record is dropped once every duplicate has consumed it. When
//! [`CAPACITY`] records, or [`MAX_BYTES`] bytes of their outputs, are
//! waiting for the slowest duplicate, the primary waits before its next
//! such call (back-pressure) until the ring is half empty
//! ([`Ring::is_low`]): one sleep and one wakeup per half a ring, not one
//! per record, when the duplicates are slower than the primary. The ring
//! never grows.
//!
//! Records are not allocated per call: the ring keeps a pool of them, made
//! at group creation ([`Ring::new`]), and a record whose last reader is
//! done goes back to the pool when it is dropped from the ring, keeping
//! one of the pieces of memory its outputs were kept in for the next
//! call's output ([`POOL_CHUNKS`] between the records of the pool; the
//! others are freed). A record still held elsewhere when it leaves the
//! ring (a duplicate copying its bytes) is freed by its last holder
//! instead, and a new one is made when the pool runs dry: so a call needs
//! an allocation only when its output is larger than what its record
//! kept, or in that rare case.
//!
//! Outputs are kept in page-sized pieces of kmalloc memory charged to the
//! primary's memory cgroup (`__GFP_ACCOUNT`): no large physically
//! contiguous allocation, and a record may still be freed under a spinlock
//! (which `vfree()` forbids).

use core::pin::Pin;
use kernel::{
    prelude::*,
    sync::{Arc, UniqueArc},
    uaccess::{UserPtr, UserSlice},
};

/// Records a duplicate may lag behind the primary.
pub(crate) const CAPACITY: usize = 128;

/// Records made ready at group creation; the pool keeps up to
/// [`CAPACITY`] (records made when it ran dry go back to it).
const POOL_INIT: usize = CAPACITY;

/// Pieces of output memory the records in the pool may keep, together
/// (64 KiB).
const POOL_CHUNKS: usize = 16;

/// Bytes of output the held records may carry before the primary waits for
/// the slowest duplicate. One call adds at most its own output (see
/// `MAX_OUTPUT` in `sync.rs`) past this budget.
pub(crate) const MAX_BYTES: usize = 8 << 20;

/// The size of the pieces an output is kept in.
const CHUNK: usize = 4096;

/// Pieces a record keeps for its next use when it goes back to the pool.
const KEEP_CHUNKS: usize = 1;

/// Output descriptors a record keeps room for when it goes back to the
/// pool (most calls write one or two buffers).
const KEEP_OUTPUTS: usize = 8;

/// Where a call wrote into the primary's memory, and how many bytes.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub(crate) addr: usize,
    pub(crate) len: usize,
}

/// Bytes of output a record keeps in itself ([`Inline`]): a `timeval`
/// and a `timezone` (`gettimeofday`). Kept small: it is copied at each
/// record and at each duplicate's take, and the calls it is for, the time
/// reads, write 8 to 24 bytes.
pub(crate) const INLINE_BYTES: usize = 32;

/// [`INLINE_BYTES`] in 64-bit words: outputs kept in a record are whole
/// words, copied a word at a time ([`shim::get_user_words`]).
const INLINE_WORDS: usize = INLINE_BYTES / 8;

/// Outputs a record keeps in itself, at most.
pub(crate) const INLINE_OUTPUTS: usize = 2;

/// The outputs of a call that writes a few small structures of fixed size
/// and whole 64-bit words (a `timespec`), kept in its record itself: read
/// from the
/// primary's memory before the group's lock is taken, so that the call is
/// recorded in one critical section, as one that wrote nothing is, and
/// taken by a duplicate in one as well (see `sync::sys_exit`, `sync::take`).
/// Such calls are most of a server's: the time reads.
#[derive(Clone, Copy)]
pub(crate) struct Inline {
    outs: [Output; INLINE_OUTPUTS],
    /// How many of `outs` are used.
    n: usize,
    /// Their words, one after the other.
    words: [u64; INLINE_WORDS],
}

impl Inline {
    /// No output.
    const fn none() -> Self {
        Self {
            outs: [Output { addr: 0, len: 0 }; INLINE_OUTPUTS],
            n: 0,
            words: [0; INLINE_WORDS],
        }
    }

    /// Reads `outs` (address, length; a null address or an empty length
    /// is no output) from the caller's memory; `None` if they do not fit
    /// (more than [`INLINE_OUTPUTS`], [`INLINE_BYTES`] together, or a
    /// length that is not whole words) or one cannot be read now (the call
    /// is then recorded the usual way, which also reads a lost page from
    /// its frame).
    pub(crate) fn read(outs: impl Iterator<Item = (usize, usize)>) -> Option<Self> {
        let mut inline = Self::none();
        let mut used = 0;
        for (addr, len) in outs.filter(|&(addr, len)| addr != 0 && len != 0) {
            if inline.n == INLINE_OUTPUTS || len % 8 != 0 || len / 8 > INLINE_WORDS - used {
                return None;
            }
            let words = len / 8;
            crate::shim::get_user_words(&mut inline.words[used..used + words], addr).ok()?;
            inline.outs[inline.n] = Output { addr, len };
            inline.n += 1;
            used += words;
        }
        Some(inline)
    }

    /// Writes the outputs into the caller's memory at the same addresses
    /// (all of them, even past one that cannot be written, as
    /// [`Record::write_outputs`] does); on failure, the first one that
    /// could not be written.
    pub(crate) fn write(&self) -> Result<(), Output> {
        let mut at = 0;
        let mut failed = None;
        for &out in &self.outs[..self.n] {
            let words = out.len / 8;
            if crate::shim::put_user_words(out.addr, &self.words[at..at + words]).is_err() {
                failed.get_or_insert(out);
            }
            at += words;
        }
        failed.map_or(Ok(()), Err)
    }
}

/// One system call as the primary made it.
pub(crate) struct Record {
    /// Call number.
    pub(crate) nr: i64,
    /// Arguments, checked against each duplicate's own.
    pub(crate) args: [usize; 6],
    /// What the call returned.
    pub(crate) ret: isize,
    /// Hash of the bytes it sent out (see [`crate::syscalls::input`]);
    /// `None` when the primary's buffer was partly lost to memory failure
    /// (it is then replaced, and the duplicates' bytes are not checked).
    pub(crate) input_hash: Option<u64>,
    /// The primary's user instruction pointer after the call.
    pub(crate) ip: usize,
    /// A signal the primary handled on its way back from this call, to be
    /// delivered to each duplicate at the same point.
    pub(crate) signal: Option<(i32, crate::shim::SigInfo)>,
    /// The primary's thread that made it (global id), in a multi-threaded
    /// group ([`crate::sync::threads`]); 0 otherwise.
    pub(crate) tid: kernel::task::Pid,
    /// For a thread creation there: the new thread's global id.
    pub(crate) child: kernel::task::Pid,
    /// What it wrote into the primary's memory, when that was little
    /// enough to be kept here (then `outputs` is empty).
    inline: Inline,
    /// What it wrote into the primary's memory, in order.
    outputs: KVec<Output>,
    /// The bytes of all outputs one after the other, in pieces of
    /// [`CHUNK`] bytes (only the last one used may be shorter).
    chunks: KVec<KVec<u8>>,
    /// How many bytes `chunks` holds.
    bytes: usize,
}

impl Record {
    /// An empty record.
    fn empty() -> Self {
        Self {
            nr: -1,
            args: [0; 6],
            ret: 0,
            input_hash: None,
            ip: 0,
            signal: None,
            tid: 0,
            child: 0,
            inline: Inline::none(),
            outputs: KVec::new(),
            chunks: KVec::new(),
            bytes: 0,
        }
    }

    /// A new empty record, charged to the caller's memory cgroup.
    pub(crate) fn new() -> Result<UniqueArc<Self>> {
        Ok(UniqueArc::new(Self::empty(), GFP_KERNEL_ACCOUNT)?)
    }

    /// Makes it the record of call `nr` with `args`, with no output yet;
    /// keeps the memory it has.
    pub(crate) fn start(&mut self, nr: i64, args: [usize; 6]) {
        self.nr = nr;
        self.args = args;
        self.ret = 0;
        self.input_hash = None;
        self.ip = 0;
        self.signal = None;
        self.tid = 0;
        self.child = 0;
        self.inline.n = 0;
        self.outputs.clear();
        for c in self.chunks.iter_mut() {
            c.clear();
        }
        self.bytes = 0;
    }

    /// Notes that the call wrote `len` bytes at `addr` (read later by
    /// [`Record::read_outputs`]).
    pub(crate) fn add_output(&mut self, addr: usize, len: usize) -> Result {
        self.outputs
            .push(Output { addr, len }, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Makes `inline` its outputs (read already, see [`Inline::read`]); it
    /// must have no other.
    pub(crate) fn set_inline(&mut self, inline: &Inline) {
        self.inline = *inline;
    }

    /// Its outputs, if they are kept in the record itself (or it has none).
    pub(crate) fn inline(&self) -> Option<&Inline> {
        self.outputs.is_empty().then_some(&self.inline)
    }

    /// Reads the bytes of every output noted from the caller's memory.
    pub(crate) fn read_outputs(&mut self) -> Result {
        let mut ci = 0;
        for i in 0..self.outputs.len() {
            let Output { addr, len } = self.outputs[i];
            let mut reader = UserSlice::new(UserPtr::from_addr(addr), len).reader();
            while !reader.is_empty() {
                if ci == self.chunks.len() {
                    let chunk = KVec::with_capacity(CHUNK, GFP_KERNEL_ACCOUNT)?;
                    self.chunks.push(chunk, GFP_KERNEL_ACCOUNT)?;
                }
                let chunk = &mut self.chunks[ci];
                let n = reader.len().min(CHUNK - chunk.len());
                let at = addr + (len - reader.len());
                let spare = &mut chunk.spare_capacity_mut()[..n];
                if reader.read_raw(spare).is_err() {
                    // Written by the call, then lost to memory failure
                    // before this copy: read from the frame.
                    crate::shim::read_user_or_lost(at, spare)?;
                    reader.skip(n)?;
                }
                // SAFETY: The `n` bytes after the chunk's length were
                // just written, within its capacity (`CHUNK`).
                unsafe { chunk.inc_len(n) };
                self.bytes += n;
                if chunk.len() == CHUNK {
                    ci += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes every output into the caller's memory at the same address
    /// (all of them, even past one that cannot be written); on failure,
    /// the first output that could not be written.
    pub(crate) fn write_outputs(&self) -> Result<(), Output> {
        if let Some(inline) = self.inline() {
            return inline.write();
        }
        let mut chunks = self.chunks.iter();
        let mut cur: &[u8] = &[];
        let mut failed = None;
        for &out in self.outputs.iter() {
            let mut writer = UserSlice::new(UserPtr::from_addr(out.addr), out.len).writer();
            let mut left = out.len;
            let mut ok = true;
            while left > 0 {
                if cur.is_empty() {
                    match chunks.next() {
                        Some(c) if !c.is_empty() => cur = c,
                        // Fewer bytes than outputs: never read in full.
                        _ => return Err(failed.unwrap_or(out)),
                    }
                }
                let n = left.min(cur.len());
                if ok && writer.write_slice(&cur[..n]).is_err() {
                    ok = false;
                    failed.get_or_insert(out);
                }
                cur = &cur[n..];
                left -= n;
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Whether the call wrote anything into the primary's memory.
    pub(crate) fn has_outputs(&self) -> bool {
        !self.outputs.is_empty() || self.inline.n > 0
    }

    /// Bytes of output it carries.
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Before it goes back to the pool: frees what it keeps beyond `keep`
    /// pieces (at most [`KEEP_CHUNKS`]) and [`KEEP_OUTPUTS`] descriptors;
    /// how many pieces it keeps. Does not allocate (may run under a
    /// spinlock).
    fn recycle(&mut self, keep: usize) -> usize {
        self.chunks.truncate(keep.min(KEEP_CHUNKS));
        self.inline.n = 0;
        if self.outputs.capacity() > KEEP_OUTPUTS {
            self.outputs = KVec::new();
        }
        self.signal = None;
        self.chunks.len()
    }
}

/// The bounded ring: [`CAPACITY`] slots, allocated once; the record with
/// sequence number `seq` lives in slot `seq % CAPACITY` while it is held.
///
/// # Invariants
///
/// Under the group's lock (the ring is part of its state):
/// - the slots `base..base + len` (modulo [`CAPACITY`]) hold records,
///   the others `None`; `len <= CAPACITY`;
/// - `bytes` is the sum of their outputs' bytes, `peak` the most it was;
/// - `pool` holds records no one else references, and never grows past
///   the capacity it was made with (putting one back does not allocate);
///   `pool_chunks` counts the pieces of output memory they keep.
pub(crate) struct Ring {
    /// Sequence number of the oldest record held.
    base: u64,
    /// How many records are held.
    len: usize,
    /// Bytes of output they carry.
    bytes: usize,
    /// The most bytes of output held at once.
    peak: usize,
    slots: KVec<Option<Arc<Record>>>,
    /// Records to reuse.
    pool: KVec<UniqueArc<Record>>,
    /// Pieces of output memory the records in `pool` keep (at most
    /// [`POOL_CHUNKS`]).
    pool_chunks: usize,
}

impl Ring {
    /// An empty ring with room for [`CAPACITY`] records, and
    /// [`POOL_INIT`] records ready in its pool, charged to the caller's
    /// memory cgroup.
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVec::with_capacity(CAPACITY, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..CAPACITY {
            slots.push(None, GFP_KERNEL_ACCOUNT)?;
        }
        let mut pool = KVec::with_capacity(CAPACITY, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..POOL_INIT {
            pool.push(Record::new()?, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(Self {
            base: 0,
            len: 0,
            bytes: 0,
            peak: 0,
            slots,
            pool,
            pool_chunks: 0,
        })
    }

    fn slot(seq: u64) -> usize {
        // The remainder is below CAPACITY, which fits a usize.
        (seq % CAPACITY as u64) as usize
    }

    /// A record from the pool, if one is left (see [`Record::start`]).
    pub(crate) fn take_record(&mut self) -> Option<UniqueArc<Record>> {
        let record = self.pool.pop()?;
        self.pool_chunks -= record.chunks.len();
        Some(record)
    }

    /// Gives a record that was not published back to the pool (or frees
    /// it, if the pool is full).
    pub(crate) fn put_record(&mut self, mut record: UniqueArc<Record>) {
        let kept = record.recycle(POOL_CHUNKS - self.pool_chunks);
        // A full pool drops it here: `pool` never reallocates.
        if self.pool.push_within_capacity(record).is_ok() {
            self.pool_chunks += kept;
        }
    }

    /// Sequence number the next record will get.
    pub(crate) fn head(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Whether the primary must wait for the slowest duplicate: every slot
    /// is taken, or the byte budget is spent.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= CAPACITY || self.bytes >= MAX_BYTES
    }

    /// Whether `n` more records fit, within the byte budget.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.len + n <= CAPACITY && self.bytes < MAX_BYTES
    }

    /// Whether a primary waiting for room may go on: at most half the
    /// slots and half the byte budget are taken.
    pub(crate) fn is_low(&self) -> bool {
        self.len <= CAPACITY / 2 && self.bytes <= MAX_BYTES / 2
    }

    /// Bytes of output held now, and the most held at once.
    pub(crate) fn bytes(&self) -> (usize, usize) {
        (self.bytes, self.peak)
    }

    /// Appends a record; fails (giving it back) only if every slot is
    /// taken. (The byte budget is enforced before a call, by
    /// [`Ring::is_full`]: the call's output is already made when it is
    /// recorded.)
    pub(crate) fn push(&mut self, record: Arc<Record>) -> Result<(), Arc<Record>> {
        if self.len >= CAPACITY {
            return Err(record);
        }
        let i = Self::slot(self.head());
        self.bytes += record.bytes();
        self.peak = self.peak.max(self.bytes);
        // INVARIANT: slot `head` was empty; it is now the last held.
        self.slots[i] = Some(record);
        self.len += 1;
        Ok(())
    }

    /// The record with sequence number `seq`, if it is (still) in the ring.
    pub(crate) fn get(&self, seq: u64) -> Option<Arc<Record>> {
        self.peek(seq).cloned()
    }

    /// [`Ring::get`], borrowed.
    pub(crate) fn peek(&self, seq: u64) -> Option<&Arc<Record>> {
        if seq < self.base || seq >= self.head() {
            return None;
        }
        self.slots[Self::slot(seq)].as_ref()
    }

    /// Drops the records before sequence number `upto` (every duplicate is
    /// past them); those nobody else holds go back to the pool. Does not
    /// allocate.
    pub(crate) fn trim(&mut self, upto: u64) {
        while self.base < upto && self.len > 0 {
            if let Some(record) = self.slots[Self::slot(self.base)].take() {
                self.bytes -= record.bytes();
                if let Some(unique) = Arc::into_unique_or_drop(record) {
                    // `Record` is `Unpin`.
                    self.put_record(Pin::into_inner(unique));
                }
            }
            // INVARIANT: the oldest slot was emptied above.
            self.base += 1;
            self.len -= 1;
        }
    }

    /// Drops every record (no duplicate needs them).
    pub(crate) fn clear(&mut self) {
        self.trim(self.head());
    }
}

#[kunit_tests(procft_ring)]
mod tests {
    use super::*;

    fn record(nr: i64) -> Result<Arc<Record>> {
        let mut r = Record::new()?;
        r.start(nr, [0; 6]);
        r.ret = nr as isize;
        r.input_hash = Some(0);
        Ok(r.into())
    }

    #[test]
    fn records_keep_their_sequence_numbers() -> Result {
        let mut ring = Ring::new()?;
        assert_eq!(ring.head(), 0);
        for nr in 0..3 {
            assert!(ring.push(record(nr)?).is_ok());
        }
        assert_eq!(ring.head(), 3);
        assert_eq!(ring.get(1).map(|r| r.nr), Some(1));
        ring.trim(2);
        assert!(ring.get(1).is_none());
        assert_eq!(ring.get(2).map(|r| r.nr), Some(2));
        assert_eq!(ring.head(), 3);
        ring.clear();
        assert!(ring.get(2).is_none());
        assert_eq!(ring.head(), 3);
        Ok(())
    }

    #[test]
    fn the_ring_is_bounded() -> Result {
        let mut ring = Ring::new()?;
        for nr in 0..CAPACITY as i64 {
            assert!(!ring.is_full());
            assert!(ring.push(record(nr)?).is_ok());
        }
        assert!(ring.is_full());
        assert!(ring.push(record(-1)?).is_err());
        ring.trim(1);
        assert!(!ring.is_full());
        assert!(!ring.is_low());
        ring.trim((CAPACITY / 2) as u64);
        assert!(ring.is_low());
        assert!(ring.push(record(99)?).is_ok());
        assert_eq!(ring.get(CAPACITY as u64).map(|r| r.nr), Some(99));
        // Around the ring many times: sequence numbers keep their records.
        for nr in 100..(100 + 5 * CAPACITY as i64) {
            ring.trim(ring.head() - CAPACITY as u64 + 1);
            assert!(ring.push(record(nr)?).is_ok());
            assert_eq!(ring.get(ring.head() - 1).map(|r| r.nr), Some(nr));
        }
        assert!(ring.get(0).is_none());
        Ok(())
    }

    #[test]
    fn records_go_back_to_the_pool() -> Result {
        let mut ring = Ring::new()?;
        assert_eq!(ring.pool.len(), POOL_INIT);
        let mut r = ring.take_record().ok_or(ENOMEM)?;
        r.start(1, [0; 6]);
        assert!(ring.push(r.into()).is_ok());
        assert_eq!(ring.pool.len(), POOL_INIT - 1);
        // Held elsewhere when it leaves the ring: freed by its holder.
        let held = ring.get(0);
        ring.trim(1);
        assert_eq!(ring.pool.len(), POOL_INIT - 1);
        drop(held);
        let r = ring.take_record().ok_or(ENOMEM)?;
        assert!(ring.push(r.into()).is_ok());
        ring.trim(2);
        assert_eq!(ring.pool.len(), POOL_INIT - 1);
        // Records go back keeping at most POOL_CHUNKS pieces of output
        // memory between them.
        while let Some(mut r) = ring.take_record() {
            r.start(2, [0; 6]);
            r.chunks
                .push(KVec::with_capacity(CHUNK, GFP_KERNEL)?, GFP_KERNEL)?;
            r.chunks
                .push(KVec::with_capacity(CHUNK, GFP_KERNEL)?, GFP_KERNEL)?;
            assert!(ring.push(r.into()).is_ok());
        }
        ring.clear();
        assert_eq!(ring.pool.len(), POOL_INIT - 1);
        assert_eq!(ring.pool_chunks, POOL_CHUNKS);
        // A new record goes back while the pool has room, not beyond.
        assert!(ring.push(record(3)?).is_ok());
        assert!(ring.push(record(4)?).is_ok());
        ring.clear();
        assert_eq!(ring.pool.len(), POOL_INIT);
        let kept: usize = ring.pool.iter().map(|r| r.chunks.len()).sum();
        assert_eq!(kept, POOL_CHUNKS);
        Ok(())
    }

    #[test]
    fn the_bytes_are_bounded() -> Result {
        const MIB: usize = 1 << 20;
        let mut ring = Ring::new()?;
        let sized = |nr: i64, len: usize| -> Result<Arc<Record>> {
            let mut r = Record::new()?;
            r.start(nr, [0; 6]);
            r.add_output(0, len)?;
            // The bytes themselves are not read: only their count matters.
            r.bytes = len;
            Ok(r.into())
        };
        for nr in 0..(MAX_BYTES / MIB) as i64 {
            assert!(!ring.is_full());
            assert!(ring.push(sized(nr, MIB)?).is_ok());
        }
        // The budget is spent: the primary waits, with slots to spare.
        assert!(ring.is_full());
        assert_eq!(ring.bytes(), (MAX_BYTES, MAX_BYTES));
        ring.trim(2);
        assert!(!ring.is_full());
        assert_eq!(ring.bytes(), (MAX_BYTES - 2 * MIB, MAX_BYTES));
        // A record past the budget is still taken (its call is made).
        assert!(ring.push(sized(100, 3 * MIB)?).is_ok());
        assert!(ring.is_full());
        assert_eq!(ring.bytes(), (MAX_BYTES + MIB, MAX_BYTES + MIB));
        ring.clear();
        assert_eq!(ring.bytes(), (0, MAX_BYTES + MIB));
        Ok(())
    }
}

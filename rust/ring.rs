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
//! Outputs are kept in page-sized pieces of kmalloc memory charged to the
//! primary's memory cgroup (`__GFP_ACCOUNT`): no large physically
//! contiguous allocation, and a record may still be freed under a spinlock
//! (which `vfree()` forbids).

use kernel::{
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// Records a duplicate may lag behind the primary.
pub(crate) const CAPACITY: usize = 64;

/// Bytes of output the held records may carry before the primary waits for
/// the slowest duplicate. One call adds at most its own output (see
/// `MAX_OUTPUT` in `sync.rs`) past this budget.
pub(crate) const MAX_BYTES: usize = 8 << 20;

/// The size of the pieces an output is kept in.
const CHUNK: usize = 4096;

/// What a call wrote into the primary's memory at one address.
pub(crate) struct Output {
    addr: usize,
    len: usize,
    /// The bytes, in pieces of [`CHUNK`] bytes (the last one shorter).
    chunks: KVec<KVec<u8>>,
}

impl Output {
    /// Reads `len` bytes of the caller's memory at `addr`, charged to the
    /// caller's memory cgroup.
    pub(crate) fn read(addr: usize, len: usize) -> Result<Self> {
        let mut chunks = KVec::with_capacity(len.div_ceil(CHUNK), GFP_KERNEL_ACCOUNT)?;
        let mut reader = UserSlice::new(UserPtr::from_addr(addr), len).reader();
        while !reader.is_empty() {
            let n = reader.len().min(CHUNK);
            let mut chunk = KVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
            chunk.resize(n, 0, GFP_KERNEL_ACCOUNT)?;
            reader.read_slice(&mut chunk)?;
            chunks.push(chunk, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(Self { addr, len, chunks })
    }

    /// Where the bytes go.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// How many bytes there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes the bytes into the caller's memory at the same address.
    pub(crate) fn write(&self) -> Result {
        let mut writer = UserSlice::new(UserPtr::from_addr(self.addr), self.len).writer();
        for chunk in self.chunks.iter() {
            writer.write_slice(chunk)?;
        }
        Ok(())
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
    /// What it wrote into the primary's memory.
    pub(crate) outputs: KVec<Output>,
}

impl Record {
    /// Bytes of output it carries.
    fn bytes(&self) -> usize {
        self.outputs.iter().map(|o| o.len).sum()
    }
}

/// The bounded ring: [`CAPACITY`] slots, allocated once; the record with
/// sequence number `seq` lives in slot `seq % CAPACITY` while it is held.
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
}

impl Ring {
    /// An empty ring with room for [`CAPACITY`] records.
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVec::with_capacity(CAPACITY, GFP_KERNEL)?;
        for _ in 0..CAPACITY {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            base: 0,
            len: 0,
            bytes: 0,
            peak: 0,
            slots,
        })
    }

    fn slot(seq: u64) -> usize {
        // The remainder is below CAPACITY, which fits a usize.
        (seq % CAPACITY as u64) as usize
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
        self.slots[i] = Some(record);
        self.len += 1;
        Ok(())
    }

    /// The record with sequence number `seq`, if it is (still) in the ring.
    pub(crate) fn get(&self, seq: u64) -> Option<Arc<Record>> {
        if seq < self.base || seq >= self.head() {
            return None;
        }
        self.slots[Self::slot(seq)].clone()
    }

    /// Drops the records before sequence number `upto` (every duplicate is
    /// past them).
    pub(crate) fn trim(&mut self, upto: u64) {
        while self.base < upto && self.len > 0 {
            if let Some(record) = self.slots[Self::slot(self.base)].take() {
                self.bytes -= record.bytes();
            }
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
        Ok(Arc::new(
            Record {
                nr,
                args: [0; 6],
                ret: nr as isize,
                input_hash: Some(0),
                ip: 0,
                signal: None,
                outputs: KVec::new(),
            },
            GFP_KERNEL,
        )?)
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
    fn the_bytes_are_bounded() -> Result {
        const MIB: usize = 1 << 20;
        let mut ring = Ring::new()?;
        let sized = |nr: i64, len: usize| -> Result<Arc<Record>> {
            let mut outputs = KVec::new();
            outputs.push(
                Output {
                    addr: 0,
                    len,
                    chunks: KVec::new(),
                },
                GFP_KERNEL,
            )?;
            Ok(Arc::new(
                Record {
                    nr,
                    args: [0; 6],
                    ret: 0,
                    input_hash: None,
                    ip: 0,
                    signal: None,
                    outputs,
                },
                GFP_KERNEL,
            )?)
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

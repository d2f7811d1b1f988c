// SPDX-License-Identifier: GPL-2.0

//! The synchronisation buffer of a group: a bounded ring of the primary's
//! system-call records, which every duplicate consumes in order.
//!
//! The primary appends a record at the `sys_exit` of each call that only it
//! runs; a record is dropped once every duplicate has consumed it. When
//! [`CAPACITY`] records are waiting for the slowest duplicate, the primary
//! waits before its next such call (back-pressure); the ring never grows.

use kernel::{prelude::*, sync::Arc};

/// Records a duplicate may lag behind the primary.
pub(crate) const CAPACITY: usize = 64;

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
    /// What it wrote into the primary's memory: address and bytes. (Plain
    /// kmalloc memory, so a record may be freed under a spinlock.)
    pub(crate) outputs: KVec<(usize, KVec<u8>)>,
}

/// The bounded ring: [`CAPACITY`] slots, allocated once; the record with
/// sequence number `seq` lives in slot `seq % CAPACITY` while it is held.
pub(crate) struct Ring {
    /// Sequence number of the oldest record held.
    base: u64,
    /// How many records are held.
    len: usize,
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

    /// Whether the primary must wait for the slowest duplicate.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= CAPACITY
    }

    /// Appends a record; fails (giving it back) only if the ring is full.
    pub(crate) fn push(&mut self, record: Arc<Record>) -> Result<(), Arc<Record>> {
        if self.is_full() {
            return Err(record);
        }
        let i = Self::slot(self.head());
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
            self.slots[Self::slot(self.base)] = None;
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
}

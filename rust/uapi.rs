// SPDX-License-Identifier: GPL-2.0

//! The `/dev/procft` ABI, mirrored from `include/uapi/linux/procft.h`.
//! Sizes are checked at compile time against the header's published
//! `*_SIZE_VER0` values.

use kernel::{
    ioctl::{_IOW, _IOWR},
    transmute::{AsBytes, FromBytes},
};

pub(crate) const PROCFT_MAX_LEVEL: u32 = 4;
pub(crate) const PROCFT_MAX_REPLICAS: usize = 8;
const PROCFT_IOC_MAGIC: u32 = 0xF7;

/// `struct procft_level`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Level {
    pub(crate) pid: i32,
    pub(crate) level: u32,
}

/// `struct procft_fail`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Fail {
    pub(crate) pid: i32,
    pub(crate) replica: u32,
    pub(crate) how: u32,
    pub(crate) reserved: u32,
    pub(crate) addr: u64,
}

pub(crate) const PROCFT_FAIL_LOSE: u32 = 0;
pub(crate) const PROCFT_FAIL_CORRUPT: u32 = 1;

/// `struct procft_status`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Status {
    pub(crate) size: u32,
    pub(crate) pid: i32,
    pub(crate) level: u32,
    pub(crate) nr_replicas: u32,
    pub(crate) replicas: [i32; PROCFT_MAX_REPLICAS],
    pub(crate) failovers: u64,
    pub(crate) respawns: u64,
    pub(crate) mce_events: u64,
    pub(crate) divergences: u64,
}

/// `struct procft_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Info {
    pub(crate) size: u32,
    pub(crate) version: u32,
    pub(crate) max_level: u32,
    pub(crate) nr_groups: u32,
    pub(crate) groups_created: u64,
    pub(crate) groups_released: u64,
    pub(crate) features: u32,
    pub(crate) reserved: u32,
    pub(crate) unprotected_calls: u64,
    pub(crate) groups_freed: u64,
}

pub(crate) const PROCFT_STATUS_SIZE_VER0: usize = 80;
pub(crate) const PROCFT_INFO_SIZE_VER0: usize = 40;
pub(crate) const PROCFT_INFO_SIZE_VER2: usize = 56;
pub(crate) const PROCFT_INFO_VERSION: u32 = 2;
pub(crate) const PROCFT_FEAT_PROC_PID_FT_LEVEL: u32 = 1 << 0;
pub(crate) const PROCFT_FEAT_PTRACE_MAY_ACCESS: u32 = 1 << 1;
pub(crate) const PROCFT_FEAT_SYSCALL_HOOK: u32 = 1 << 2;
pub(crate) const PROCFT_FEAT_MM_TAKEOVER: u32 = 1 << 3;
pub(crate) const PROCFT_FEAT_TSC_TRAP: u32 = 1 << 4;

const _: () = assert!(core::mem::size_of::<Level>() == 8);
const _: () = assert!(core::mem::size_of::<Fail>() == 24);
const _: () = assert!(core::mem::size_of::<Status>() == PROCFT_STATUS_SIZE_VER0);
const _: () = assert!(core::mem::size_of::<Info>() == PROCFT_INFO_SIZE_VER2);

pub(crate) const PROCFT_IOC_SET_LEVEL: u32 = _IOW::<Level>(PROCFT_IOC_MAGIC, 0x01);
pub(crate) const PROCFT_IOC_GET_LEVEL: u32 = _IOWR::<Level>(PROCFT_IOC_MAGIC, 0x02);
pub(crate) const PROCFT_IOC_GET_STATUS: u32 = _IOWR::<u32>(PROCFT_IOC_MAGIC, 0x03);
pub(crate) const PROCFT_IOC_GET_INFO: u32 = _IOWR::<u32>(PROCFT_IOC_MAGIC, 0x04);
pub(crate) const PROCFT_IOC_FAIL: u32 = _IOW::<Fail>(PROCFT_IOC_MAGIC, 0x05);

// SAFETY: Plain integers with no padding (8 bytes, checked above); every bit
// pattern is valid.
unsafe impl FromBytes for Level {}
// SAFETY: As above.
unsafe impl AsBytes for Level {}
// SAFETY: Plain integers with no padding (24 bytes, checked above); every
// bit pattern is valid.
unsafe impl FromBytes for Fail {}
// SAFETY: Integers only, laid out without padding (80 bytes, checked above).
unsafe impl AsBytes for Status {}
// SAFETY: Integers only, laid out without padding (48 bytes, checked above).
unsafe impl AsBytes for Info {}

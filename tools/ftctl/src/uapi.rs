// SPDX-License-Identifier: GPL-2.0
//! Mirror of include/uapi/linux/procft.h and the ioctl calls on /dev/procft.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

pub const MAX_REPLICAS: usize = 8;
const MAGIC: u64 = 0xF7;

// asm-generic/ioctl.h encoding.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (MAGIC << 8) | nr
}
const WRITE: u64 = 1;
const READ: u64 = 2;

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct Level {
    pub pid: i32,
    pub level: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
pub struct Status {
    pub size: u32,
    pub pid: i32,
    pub level: u32,
    pub nr_replicas: u32,
    pub replicas: [i32; MAX_REPLICAS],
    pub failovers: u64,
    pub respawns: u64,
    pub mce_events: u64,
    pub divergences: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
pub struct Info {
    pub size: u32,
    pub version: u32,
    pub max_level: u32,
    pub nr_groups: u32,
    pub groups_created: u64,
    pub groups_released: u64,
    pub features: u32,
    pub reserved: u32,
    pub unprotected_calls: u64,
    pub groups_freed: u64,
}

/// `PROCFT_INFO_SIZE_VER2`: a module that fills this much reports
/// `groups_freed`.
pub const INFO_SIZE_VER2: u32 = 56;

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct Fail {
    pub pid: i32,
    pub replica: u32,
    pub how: u32,
    pub reserved: u32,
    pub addr: u64,
}

pub const FAIL_LOSE: u32 = 0;
pub const FAIL_CORRUPT: u32 = 1;

pub const FEAT_PROC_PID_FT_LEVEL: u32 = 1;
pub const FEAT_PTRACE_MAY_ACCESS: u32 = 2;
pub const FEAT_SYSCALL_HOOK: u32 = 4;
pub const FEAT_MM_TAKEOVER: u32 = 8;
pub const FEAT_TSC_TRAP: u32 = 16;

const SET_LEVEL: u64 = ioc(WRITE, 0x01, std::mem::size_of::<Level>());
const GET_LEVEL: u64 = ioc(READ | WRITE, 0x02, std::mem::size_of::<Level>());
const GET_STATUS: u64 = ioc(READ | WRITE, 0x03, 4);
const GET_INFO: u64 = ioc(READ | WRITE, 0x04, 4);
const FAIL: u64 = ioc(WRITE, 0x05, std::mem::size_of::<Fail>());

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

pub const DEVICE: &str = "/dev/procft";

pub struct Device(File);

impl Device {
    pub fn open() -> io::Result<Self> {
        File::options()
            .read(true)
            .write(true)
            .open(DEVICE)
            .map(Device)
    }

    fn call<T>(&self, request: u64, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is a valid, exclusively borrowed #[repr(C)] value of
        // the layout the request number encodes.
        let r = unsafe { ioctl(self.0.as_raw_fd(), request, arg as *mut T) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn set_level(&self, pid: i32, level: u32) -> io::Result<()> {
        self.call(SET_LEVEL, &mut Level { pid, level })
    }

    pub fn get_level(&self, pid: i32) -> io::Result<u32> {
        let mut l = Level { pid, level: 0 };
        self.call(GET_LEVEL, &mut l)?;
        Ok(l.level)
    }

    pub fn status(&self, pid: i32) -> io::Result<Status> {
        let mut s = Status {
            size: std::mem::size_of::<Status>() as u32,
            pid,
            ..Default::default()
        };
        self.call(GET_STATUS, &mut s)?;
        Ok(s)
    }

    /// Test-only: make replica `replica` (0: primary) of `pid` fail.
    pub fn fail(&self, pid: i32, replica: u32, how: u32, addr: u64) -> io::Result<()> {
        self.call(
            FAIL,
            &mut Fail {
                pid,
                replica,
                how,
                reserved: 0,
                addr,
            },
        )
    }

    pub fn info(&self) -> io::Result<Info> {
        let mut i = Info {
            size: std::mem::size_of::<Info>() as u32,
            ..Default::default()
        };
        self.call(GET_INFO, &mut i)?;
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_header() {
        assert_eq!(std::mem::size_of::<Level>(), 8);
        assert_eq!(std::mem::size_of::<Fail>(), 24);
        assert_eq!(std::mem::size_of::<Status>(), 80);
        assert_eq!(std::mem::size_of::<Info>(), INFO_SIZE_VER2 as usize);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_encoding() {
        // _IOW(0xF7, 1, struct procft_level), as computed by the C macros.
        assert_eq!(SET_LEVEL, 0x4008_F701);
        assert_eq!(GET_LEVEL, 0xC008_F702);
        assert_eq!(GET_STATUS, 0xC004_F703);
        assert_eq!(GET_INFO, 0xC004_F704);
        assert_eq!(FAIL, 0x4018_F705);
    }
}

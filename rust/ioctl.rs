// SPDX-License-Identifier: GPL-2.0

//! `/dev/procft`: the misc device through which tools set and read levels
//! and group status (ABI in `include/uapi/linux/procft.h`).

use kernel::{
    bindings,
    ffi::c_void,
    fs::File,
    fs::Kiocb,
    iov::IovIterDest,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice},
};

use crate::{control, events, group, shim, uapi};

/// Whether an event after sequence number `*arg` (a `u64`) exists.
///
/// # Safety
///
/// `arg` must point to a live `u64`.
unsafe extern "C" fn event_after(arg: *const c_void) -> bool {
    // SAFETY: By the function's contract.
    let pos = unsafe { *arg.cast::<u64>() };
    events::next_seq() > pos
}

/// An open `/dev/procft`.  It has no per-file state: every request names
/// its process, and permission is checked against the caller per request.
pub(crate) struct ControlFile;

#[vtable]
impl MiscDevice for ControlFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(ControlFile, GFP_KERNEL)?)
    }

    /// The event log, as text lines (see [`events`]); the file position is
    /// the sequence number of the next event. Blocks for new events unless
    /// the file is non-blocking (`EAGAIN`).
    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        // SAFETY: `kiocb` is the live request; its file is open for its
        // duration.
        let flags = unsafe { (*(*kiocb.as_raw()).ki_filp).f_flags };
        let nonblock = flags & bindings::O_NONBLOCK != 0;
        let mut pos = u64::try_from(*kiocb.ki_pos_mut()).unwrap_or(0);
        loop {
            let mut buf = KVec::new();
            let n = events::read(&mut pos, &mut buf, iov.len())?;
            if n > 0 {
                if iov.copy_to_iter(&buf) != n {
                    return Err(EFAULT);
                }
                *kiocb.ki_pos_mut() = i64::try_from(pos).unwrap_or(i64::MAX);
                return Ok(n);
            }
            if events::next_seq() > pos {
                // An event exists but does not fit.
                return Err(EINVAL);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            shim::wait_interruptible(event_after, core::ptr::from_ref(&pos).cast())?;
        }
    }

    fn ioctl(_me: &ControlFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let ptr = UserPtr::from_addr(arg);
        match cmd {
            uapi::PROCFT_IOC_SET_LEVEL => {
                let req: uapi::Level = UserSlice::new(ptr, size_of::<uapi::Level>())
                    .reader()
                    .read()?;
                let task = control::find_process(req.pid)?;
                control::set_level(&task, req.level)?;
            }
            uapi::PROCFT_IOC_GET_LEVEL => {
                let (mut r, mut w) = UserSlice::new(ptr, size_of::<uapi::Level>()).reader_writer();
                let mut req: uapi::Level = r.read()?;
                let task = control::find_process(req.pid)?;
                req.level = control::level(&task);
                w.write(&req)?;
            }
            uapi::PROCFT_IOC_GET_STATUS => {
                let size = read_size(ptr, uapi::PROCFT_STATUS_SIZE_VER0)?;
                // `pid` follows `size`; both lie within the caller's struct.
                let pid: i32 = UserSlice::new(ptr.wrapping_byte_add(4), 4)
                    .reader()
                    .read()?;
                let task = control::find_process(pid)?;
                let snap = control::status(&task);
                let mut out = uapi::Status {
                    pid: snap.pid,
                    level: snap.level,
                    nr_replicas: snap.nr_replicas as u32,
                    replicas: snap.replicas,
                    failovers: snap.counters.failovers,
                    respawns: snap.counters.respawns,
                    mce_events: snap.counters.mce_events,
                    divergences: snap.counters.divergences,
                    ..Default::default()
                };
                write_sized(ptr, size, &mut out, |s, n| s.size = n)?;
            }
            uapi::PROCFT_IOC_GET_INFO => {
                let size = read_size(ptr, uapi::PROCFT_INFO_SIZE_VER0)?;
                let stats = group::stats();
                let mut out = uapi::Info {
                    version: uapi::PROCFT_INFO_VERSION,
                    max_level: group::MAX_LEVEL,
                    nr_groups: stats.nr_groups,
                    groups_created: stats.created,
                    groups_released: stats.released,
                    features: feature(
                        shim::have_proc_ft_level(),
                        uapi::PROCFT_FEAT_PROC_PID_FT_LEVEL,
                    ) | feature(
                        shim::have_ptrace_may_access(),
                        uapi::PROCFT_FEAT_PTRACE_MAY_ACCESS,
                    ) | feature(
                        shim::Hooks::syscall_hook(),
                        uapi::PROCFT_FEAT_SYSCALL_HOOK,
                    ) | feature(
                        crate::failover::takes_over(),
                        uapi::PROCFT_FEAT_MM_TAKEOVER,
                    ) | feature(
                        crate::determinism::tsc_traps(),
                        uapi::PROCFT_FEAT_TSC_TRAP,
                    ),
                    unprotected_calls: shim::Hooks::unprotected_calls(),
                    groups_freed: group::freed(),
                    ..Default::default()
                };
                write_sized(ptr, size, &mut out, |s, n| s.size = n)?;
            }
            uapi::PROCFT_IOC_FAIL => {
                let req: uapi::Fail = UserSlice::new(ptr, size_of::<uapi::Fail>())
                    .reader()
                    .read()?;
                if req.reserved != 0 {
                    return Err(EINVAL);
                }
                control::inject_failure(req.pid, req.replica, req.how, req.addr as usize)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}

/// `bit` if `present`.
fn feature(present: bool, bit: u32) -> u32 {
    if present {
        bit
    } else {
        0
    }
}

/// Reads the leading `size` member of a size-versioned structure; sizes
/// below the first published layout are invalid.
fn read_size(ptr: UserPtr, min: usize) -> Result<usize> {
    let size: u32 = UserSlice::new(ptr, 4).reader().read()?;
    let size = size as usize;
    if size < min {
        return Err(EINVAL);
    }
    Ok(size)
}

/// Writes the first `min(size, size_of::<T>())` bytes of `value` back to
/// the caller, with its `size` member (set by `set_size`) saying how many.
fn write_sized<T: AsBytes>(
    ptr: UserPtr,
    size: usize,
    value: &mut T,
    set_size: impl FnOnce(&mut T, u32),
) -> Result {
    let n = size.min(size_of::<T>());
    // `n` is at most `size_of::<T>()`, a small constant.
    set_size(value, n as u32);
    UserSlice::new(ptr, n)
        .writer()
        .write_slice(&value.as_bytes()[..n])
}

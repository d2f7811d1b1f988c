/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * procft: process-level fault tolerance.  User-space interface of the
 * /dev/procft misc device.
 *
 * The ioctl numbers below are fixed.  Structures that may grow carry their
 * own size as first member: the caller sets it to the size it knows, the
 * kernel fills at most that many bytes and writes back how many it filled,
 * so old binaries keep working against new kernels and vice versa.
 */
#ifndef _UAPI_LINUX_PROCFT_H
#define _UAPI_LINUX_PROCFT_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Highest fault-tolerance level (number of duplicates) accepted. */
#define PROCFT_MAX_LEVEL	4
/* Room for the primary plus duplicates in struct procft_status. */
#define PROCFT_MAX_REPLICAS	8

/* ioctl type; not used by any other in-tree interface. */
#define PROCFT_IOC_MAGIC	0xF7

/*
 * Set or get the fault-tolerance level of process @pid (0: the caller).
 * Setting follows ptrace-attach rules: the caller must be allowed to
 * ptrace-attach to the process.  Errors: EINVAL (bad pid or level, kernel
 * thread), ESRCH (no such process), EPERM (not allowed), EOPNOTSUPP
 * (multi-threaded process).
 */
struct procft_level {
	__s32 pid;
	__u32 level;
};

#define PROCFT_IOC_SET_LEVEL	_IOW(PROCFT_IOC_MAGIC, 0x01, struct procft_level)
#define PROCFT_IOC_GET_LEVEL	_IOWR(PROCFT_IOC_MAGIC, 0x02, struct procft_level)

/* Status of one process's replica group. */
struct procft_status {
	__u32 size;		/* in: sizeof as known to the caller; out: bytes filled */
	__s32 pid;		/* in: process (0: the caller) */
	__u32 level;		/* out: fault-tolerance level (duplicates wanted) */
	__u32 nr_replicas;	/* out: entries of replicas[] in use */
	__s32 replicas[PROCFT_MAX_REPLICAS];	/* out: primary first, then duplicates */
	__u64 failovers;	/* out: primaries replaced by a duplicate */
	__u64 respawns;		/* out: duplicates created to restore the level */
	__u64 mce_events;	/* out: memory errors that hit a replica */
	__u64 divergences;	/* out: replicas found to disagree */
};

#define PROCFT_STATUS_SIZE_VER0	80	/* first published layout */
/* The argument points to a struct procft_status; the number stays fixed as it grows. */
#define PROCFT_IOC_GET_STATUS	_IOWR(PROCFT_IOC_MAGIC, 0x03, __u32)

/* Module-wide information. */
struct procft_info {
	__u32 size;		/* in: sizeof as known to the caller; out: bytes filled */
	__u32 version;		/* out: PROCFT_INFO_VERSION of the module */
	__u32 max_level;	/* out: PROCFT_MAX_LEVEL of the module */
	__u32 nr_groups;	/* out: processes currently protected */
	__u64 groups_created;	/* out: protected-process records ever created */
	__u64 groups_released;	/* out: ... and released */
	__u32 features;		/* out: PROCFT_FEAT_* */
	__u32 __reserved;
	/*
	 * out: system calls of unprotected processes that reached procft's
	 * probes since it was loaded: every one in the system with the
	 * tracepoints, next to none with PROCFT_FEAT_SYSCALL_HOOK.
	 */
	__u64 unprotected_calls;
	/*
	 * out: records whose memory is freed: after their release, once no
	 * replica's system call can be using them any more (a grace period
	 * later) and their duplicates are gone.
	 */
	__u64 groups_freed;
};

#define PROCFT_INFO_VERSION	2
#define PROCFT_INFO_SIZE_VER0	40
#define PROCFT_INFO_SIZE_VER1	48	/* unprotected_calls */
#define PROCFT_INFO_SIZE_VER2	56	/* groups_freed */
#define PROCFT_FEAT_PROC_PID_FT_LEVEL	(1U << 0)	/* /proc/<pid>/ft_level exists */
/*
 * Changes to another process's level follow ptrace_may_access(), LSMs
 * included; without it they need CAP_SYS_PTRACE.
 */
#define PROCFT_FEAT_PTRACE_MAY_ACCESS	(1U << 1)
/*
 * System calls come from the kernel's system-call hook, only for the
 * processes procft protects; without it (a kernel without the hook, or
 * the module parameter syscall_tracepoints=1) from the sys_enter/sys_exit
 * tracepoints, for every process in the system.
 */
#define PROCFT_FEAT_SYSCALL_HOOK	(1U << 2)
/*
 * A promotion continues the primary on the duplicate's address space
 * (the kernel's replace_mm()); without it (a kernel without replace_mm(),
 * or the module parameter copy_promotion=1) it copies the duplicate's
 * pages, in time that grows with the process's memory.
 */
#define PROCFT_FEAT_MM_TAKEOVER		(1U << 3)
/*
 * A protected program's own rdtsc/rdtscp trap, and the duplicates replay
 * the primary's values (kernel/patches/0005, the system-call hook and the
 * module parameter trap_tsc=1); without it each replica reads its own
 * counter, and output that depends on it diverges.
 */
#define PROCFT_FEAT_TSC_TRAP		(1U << 4)
#define PROCFT_IOC_GET_INFO	_IOWR(PROCFT_IOC_MAGIC, 0x04, __u32)

/*
 * Test-only fault injection, to drive failover and voting without
 * hardware.  Needs the module loaded with fault_injection=1 and
 * CAP_SYS_ADMIN, else EPERM.  @replica 0 is the primary of process @pid,
 * k > 0 its k-th duplicate in procft_status.replicas order (EINVAL if there
 * is none); ESRCH if @pid is not protected.
 *
 * PROCFT_FAIL_LOSE: the replica is lost.  A duplicate is killed (SIGKILL)
 * and replaced; for the primary, a duplicate takes over at its next system
 * call, its memory being treated as lost (EAGAIN if no duplicate is ready).
 * PROCFT_FAIL_CORRUPT: the bits of the byte at @addr in the replica's
 * memory are flipped, a silent data corruption (EFAULT if it has no such
 * byte); procft must notice the divergence by itself.
 */
struct procft_fail {
	__s32 pid;		/* process (0: the caller) */
	__u32 replica;		/* 0: primary; k: k-th duplicate */
	__u32 how;		/* PROCFT_FAIL_* */
	__u32 __reserved;	/* must be 0 */
	__u64 addr;		/* PROCFT_FAIL_CORRUPT: user address of the byte */
};

#define PROCFT_FAIL_LOSE	0
#define PROCFT_FAIL_CORRUPT	1

#define PROCFT_IOC_FAIL		_IOW(PROCFT_IOC_MAGIC, 0x05, struct procft_fail)

#endif /* _UAPI_LINUX_PROCFT_H */

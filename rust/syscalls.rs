// SPDX-License-Identifier: GPL-2.0

//! How a replica group treats each x86-64 system call: the one table that
//! classifies every call number.
//!
//! `scripts/check-syscalls.py` (run by `make check`) compares the table
//! with the kernel's `arch/x86/entry/syscalls/syscall_64.tbl`, so a call the
//! kernel has and the table lacks fails the build. Numbers the kernel does
//! not implement (gaps, and anything above the table) return `-ENOSYS`
//! without side effects in every replica, so they are [`Class::Local`].

/// What a group does with a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Changes only the caller's own address space, signal or thread-local
    /// state (brk, mprotect, rt_sigaction, arch_prctl, ...): every replica
    /// runs it.
    Local,
    /// Reaches the outside world (files, sockets, pipes, time, randomness,
    /// process control): only the primary runs it; duplicates receive its
    /// result.
    Primary,
    /// `mmap`: every replica maps, at the primary's address. A writable
    /// `MAP_SHARED` mapping cannot be replicated.
    Mmap,
    /// `fork`, `vfork`, `clone`, `clone3`: the primary creates the child
    /// (which starts unprotected). `CLONE_VM` (threads) cannot be
    /// replicated.
    Fork,
    /// `execve`, `execveat`: the level survives; replicas follow the new
    /// image.
    Exec,
    /// `exit`, `exit_group`.
    Exit,
    /// Cannot be replicated correctly (shared memory, ptrace, asynchronous
    /// I/O, ...): protection ends, with a log line, before the call runs.
    Unsupported,
}

use kernel::prelude::*;
use Class::*;

/// One system call: its name (for log lines) and class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Syscall {
    pub(crate) name: &'static str,
    pub(crate) class: Class,
}

const fn sys(name: &'static str, class: Class) -> Option<Syscall> {
    Some(Syscall { name, class })
}

/// Highest x86-64 system call number in the table.
pub(crate) const MAX_NR: i64 = 472;

/// The table entry of call `nr`, or `None` if the kernel has no such call.
pub(crate) const fn entry(nr: i64) -> Option<Syscall> {
    match nr {
        0 => sys("read", Primary),
        1 => sys("write", Primary),
        2 => sys("open", Primary),
        3 => sys("close", Primary),
        4 => sys("stat", Primary),
        5 => sys("fstat", Primary),
        6 => sys("lstat", Primary),
        7 => sys("poll", Primary),
        8 => sys("lseek", Primary),
        9 => sys("mmap", Mmap),
        10 => sys("mprotect", Local),
        11 => sys("munmap", Local),
        12 => sys("brk", Local),
        13 => sys("rt_sigaction", Local),
        14 => sys("rt_sigprocmask", Local),
        15 => sys("rt_sigreturn", Local),
        16 => sys("ioctl", Primary),
        17 => sys("pread64", Primary),
        18 => sys("pwrite64", Primary),
        19 => sys("readv", Primary),
        20 => sys("writev", Primary),
        21 => sys("access", Primary),
        22 => sys("pipe", Primary),
        23 => sys("select", Primary),
        24 => sys("sched_yield", Local),
        25 => sys("mremap", Local),
        26 => sys("msync", Local),
        27 => sys("mincore", Local),
        28 => sys("madvise", Local),
        29 => sys("shmget", Unsupported),
        30 => sys("shmat", Unsupported),
        31 => sys("shmctl", Unsupported),
        32 => sys("dup", Primary),
        33 => sys("dup2", Primary),
        34 => sys("pause", Primary),
        35 => sys("nanosleep", Primary),
        36 => sys("getitimer", Primary),
        37 => sys("alarm", Primary),
        38 => sys("setitimer", Primary),
        39 => sys("getpid", Primary),
        40 => sys("sendfile", Primary),
        41 => sys("socket", Primary),
        42 => sys("connect", Primary),
        43 => sys("accept", Primary),
        44 => sys("sendto", Primary),
        45 => sys("recvfrom", Primary),
        46 => sys("sendmsg", Primary),
        47 => sys("recvmsg", Primary),
        48 => sys("shutdown", Primary),
        49 => sys("bind", Primary),
        50 => sys("listen", Primary),
        51 => sys("getsockname", Primary),
        52 => sys("getpeername", Primary),
        53 => sys("socketpair", Primary),
        54 => sys("setsockopt", Primary),
        55 => sys("getsockopt", Primary),
        56 => sys("clone", Fork),
        57 => sys("fork", Fork),
        58 => sys("vfork", Fork),
        59 => sys("execve", Exec),
        60 => sys("exit", Exit),
        61 => sys("wait4", Primary),
        62 => sys("kill", Primary),
        63 => sys("uname", Primary),
        64 => sys("semget", Primary),
        65 => sys("semop", Primary),
        66 => sys("semctl", Primary),
        67 => sys("shmdt", Unsupported),
        68 => sys("msgget", Primary),
        69 => sys("msgsnd", Primary),
        70 => sys("msgrcv", Primary),
        71 => sys("msgctl", Primary),
        72 => sys("fcntl", Primary),
        73 => sys("flock", Primary),
        74 => sys("fsync", Primary),
        75 => sys("fdatasync", Primary),
        76 => sys("truncate", Primary),
        77 => sys("ftruncate", Primary),
        78 => sys("getdents", Primary),
        79 => sys("getcwd", Primary),
        80 => sys("chdir", Primary),
        81 => sys("fchdir", Primary),
        82 => sys("rename", Primary),
        83 => sys("mkdir", Primary),
        84 => sys("rmdir", Primary),
        85 => sys("creat", Primary),
        86 => sys("link", Primary),
        87 => sys("unlink", Primary),
        88 => sys("symlink", Primary),
        89 => sys("readlink", Primary),
        90 => sys("chmod", Primary),
        91 => sys("fchmod", Primary),
        92 => sys("chown", Primary),
        93 => sys("fchown", Primary),
        94 => sys("lchown", Primary),
        95 => sys("umask", Primary),
        96 => sys("gettimeofday", Primary),
        97 => sys("getrlimit", Primary),
        98 => sys("getrusage", Primary),
        99 => sys("sysinfo", Primary),
        100 => sys("times", Primary),
        101 => sys("ptrace", Unsupported),
        102 => sys("getuid", Primary),
        103 => sys("syslog", Primary),
        104 => sys("getgid", Primary),
        105 => sys("setuid", Local),
        106 => sys("setgid", Local),
        107 => sys("geteuid", Primary),
        108 => sys("getegid", Primary),
        109 => sys("setpgid", Primary),
        110 => sys("getppid", Primary),
        111 => sys("getpgrp", Primary),
        112 => sys("setsid", Primary),
        113 => sys("setreuid", Local),
        114 => sys("setregid", Local),
        115 => sys("getgroups", Primary),
        116 => sys("setgroups", Local),
        117 => sys("setresuid", Local),
        118 => sys("getresuid", Primary),
        119 => sys("setresgid", Local),
        120 => sys("getresgid", Primary),
        121 => sys("getpgid", Primary),
        122 => sys("setfsuid", Local),
        123 => sys("setfsgid", Local),
        124 => sys("getsid", Primary),
        125 => sys("capget", Primary),
        126 => sys("capset", Local),
        127 => sys("rt_sigpending", Local),
        128 => sys("rt_sigtimedwait", Primary),
        129 => sys("rt_sigqueueinfo", Primary),
        130 => sys("rt_sigsuspend", Primary),
        131 => sys("sigaltstack", Local),
        132 => sys("utime", Primary),
        133 => sys("mknod", Primary),
        134 => sys("uselib", Primary),
        135 => sys("personality", Local),
        136 => sys("ustat", Primary),
        137 => sys("statfs", Primary),
        138 => sys("fstatfs", Primary),
        139 => sys("sysfs", Primary),
        140 => sys("getpriority", Primary),
        141 => sys("setpriority", Primary),
        142 => sys("sched_setparam", Primary),
        143 => sys("sched_getparam", Primary),
        144 => sys("sched_setscheduler", Primary),
        145 => sys("sched_getscheduler", Primary),
        146 => sys("sched_get_priority_max", Primary),
        147 => sys("sched_get_priority_min", Primary),
        148 => sys("sched_rr_get_interval", Primary),
        149 => sys("mlock", Local),
        150 => sys("munlock", Local),
        151 => sys("mlockall", Local),
        152 => sys("munlockall", Local),
        153 => sys("vhangup", Primary),
        154 => sys("modify_ldt", Local),
        155 => sys("pivot_root", Primary),
        156 => sys("_sysctl", Primary),
        157 => sys("prctl", Local),
        158 => sys("arch_prctl", Local),
        159 => sys("adjtimex", Primary),
        160 => sys("setrlimit", Primary),
        161 => sys("chroot", Primary),
        162 => sys("sync", Primary),
        163 => sys("acct", Primary),
        164 => sys("settimeofday", Primary),
        165 => sys("mount", Primary),
        166 => sys("umount2", Primary),
        167 => sys("swapon", Primary),
        168 => sys("swapoff", Primary),
        169 => sys("reboot", Primary),
        170 => sys("sethostname", Primary),
        171 => sys("setdomainname", Primary),
        172 => sys("iopl", Unsupported),
        173 => sys("ioperm", Unsupported),
        174 => sys("create_module", Primary),
        175 => sys("init_module", Primary),
        176 => sys("delete_module", Primary),
        177 => sys("get_kernel_syms", Primary),
        178 => sys("query_module", Primary),
        179 => sys("quotactl", Primary),
        180 => sys("nfsservctl", Primary),
        181 => sys("getpmsg", Primary),
        182 => sys("putpmsg", Primary),
        183 => sys("afs_syscall", Primary),
        184 => sys("tuxcall", Primary),
        185 => sys("security", Primary),
        186 => sys("gettid", Primary),
        187 => sys("readahead", Primary),
        188 => sys("setxattr", Primary),
        189 => sys("lsetxattr", Primary),
        190 => sys("fsetxattr", Primary),
        191 => sys("getxattr", Primary),
        192 => sys("lgetxattr", Primary),
        193 => sys("fgetxattr", Primary),
        194 => sys("listxattr", Primary),
        195 => sys("llistxattr", Primary),
        196 => sys("flistxattr", Primary),
        197 => sys("removexattr", Primary),
        198 => sys("lremovexattr", Primary),
        199 => sys("fremovexattr", Primary),
        200 => sys("tkill", Primary),
        201 => sys("time", Primary),
        202 => sys("futex", Local),
        203 => sys("sched_setaffinity", Primary),
        204 => sys("sched_getaffinity", Primary),
        205 => sys("set_thread_area", Local),
        206 => sys("io_setup", Unsupported),
        207 => sys("io_destroy", Unsupported),
        208 => sys("io_getevents", Unsupported),
        209 => sys("io_submit", Unsupported),
        210 => sys("io_cancel", Unsupported),
        211 => sys("get_thread_area", Local),
        212 => sys("lookup_dcookie", Primary),
        213 => sys("epoll_create", Primary),
        214 => sys("epoll_ctl_old", Primary),
        215 => sys("epoll_wait_old", Primary),
        216 => sys("remap_file_pages", Unsupported),
        217 => sys("getdents64", Primary),
        // The primary's calls (`Primary`): a duplicate never has a
        // clear_child_tid or a robust list, so that its exit writes nothing
        // to its memory, which a promotion may have given to the primary
        // (`procft_take_memory`); it receives the primary's tid.
        218 => sys("set_tid_address", Primary),
        219 => sys("restart_syscall", Primary),
        220 => sys("semtimedop", Primary),
        221 => sys("fadvise64", Primary),
        222 => sys("timer_create", Primary),
        223 => sys("timer_settime", Primary),
        224 => sys("timer_gettime", Primary),
        225 => sys("timer_getoverrun", Primary),
        226 => sys("timer_delete", Primary),
        227 => sys("clock_settime", Primary),
        228 => sys("clock_gettime", Primary),
        229 => sys("clock_getres", Primary),
        230 => sys("clock_nanosleep", Primary),
        231 => sys("exit_group", Exit),
        232 => sys("epoll_wait", Primary),
        233 => sys("epoll_ctl", Primary),
        234 => sys("tgkill", Primary),
        235 => sys("utimes", Primary),
        236 => sys("vserver", Primary),
        237 => sys("mbind", Local),
        238 => sys("set_mempolicy", Local),
        239 => sys("get_mempolicy", Local),
        240 => sys("mq_open", Primary),
        241 => sys("mq_unlink", Primary),
        242 => sys("mq_timedsend", Primary),
        243 => sys("mq_timedreceive", Primary),
        244 => sys("mq_notify", Primary),
        245 => sys("mq_getsetattr", Primary),
        246 => sys("kexec_load", Primary),
        247 => sys("waitid", Primary),
        248 => sys("add_key", Primary),
        249 => sys("request_key", Primary),
        250 => sys("keyctl", Primary),
        251 => sys("ioprio_set", Primary),
        252 => sys("ioprio_get", Primary),
        253 => sys("inotify_init", Primary),
        254 => sys("inotify_add_watch", Primary),
        255 => sys("inotify_rm_watch", Primary),
        256 => sys("migrate_pages", Local),
        257 => sys("openat", Primary),
        258 => sys("mkdirat", Primary),
        259 => sys("mknodat", Primary),
        260 => sys("fchownat", Primary),
        261 => sys("futimesat", Primary),
        262 => sys("newfstatat", Primary),
        263 => sys("unlinkat", Primary),
        264 => sys("renameat", Primary),
        265 => sys("linkat", Primary),
        266 => sys("symlinkat", Primary),
        267 => sys("readlinkat", Primary),
        268 => sys("fchmodat", Primary),
        269 => sys("faccessat", Primary),
        270 => sys("pselect6", Primary),
        271 => sys("ppoll", Primary),
        272 => sys("unshare", Unsupported),
        273 => sys("set_robust_list", Primary),
        274 => sys("get_robust_list", Primary),
        275 => sys("splice", Primary),
        276 => sys("tee", Primary),
        277 => sys("sync_file_range", Primary),
        278 => sys("vmsplice", Primary),
        279 => sys("move_pages", Local),
        280 => sys("utimensat", Primary),
        281 => sys("epoll_pwait", Primary),
        282 => sys("signalfd", Primary),
        283 => sys("timerfd_create", Primary),
        284 => sys("eventfd", Primary),
        285 => sys("fallocate", Primary),
        286 => sys("timerfd_settime", Primary),
        287 => sys("timerfd_gettime", Primary),
        288 => sys("accept4", Primary),
        289 => sys("signalfd4", Primary),
        290 => sys("eventfd2", Primary),
        291 => sys("epoll_create1", Primary),
        292 => sys("dup3", Primary),
        293 => sys("pipe2", Primary),
        294 => sys("inotify_init1", Primary),
        295 => sys("preadv", Primary),
        296 => sys("pwritev", Primary),
        297 => sys("rt_tgsigqueueinfo", Primary),
        298 => sys("perf_event_open", Primary),
        299 => sys("recvmmsg", Primary),
        300 => sys("fanotify_init", Primary),
        301 => sys("fanotify_mark", Primary),
        302 => sys("prlimit64", Primary),
        303 => sys("name_to_handle_at", Primary),
        304 => sys("open_by_handle_at", Primary),
        305 => sys("clock_adjtime", Primary),
        306 => sys("syncfs", Primary),
        307 => sys("sendmmsg", Primary),
        308 => sys("setns", Unsupported),
        309 => sys("getcpu", Primary),
        310 => sys("process_vm_readv", Unsupported),
        311 => sys("process_vm_writev", Primary),
        312 => sys("kcmp", Primary),
        313 => sys("finit_module", Primary),
        314 => sys("sched_setattr", Primary),
        315 => sys("sched_getattr", Primary),
        316 => sys("renameat2", Primary),
        317 => sys("seccomp", Local),
        318 => sys("getrandom", Primary),
        319 => sys("memfd_create", Primary),
        320 => sys("kexec_file_load", Primary),
        321 => sys("bpf", Primary),
        322 => sys("execveat", Exec),
        323 => sys("userfaultfd", Unsupported),
        324 => sys("membarrier", Local),
        325 => sys("mlock2", Local),
        326 => sys("copy_file_range", Primary),
        327 => sys("preadv2", Primary),
        328 => sys("pwritev2", Primary),
        329 => sys("pkey_mprotect", Local),
        330 => sys("pkey_alloc", Local),
        331 => sys("pkey_free", Local),
        332 => sys("statx", Primary),
        333 => sys("io_pgetevents", Unsupported),
        334 => sys("rseq", Local),
        335 => sys("uretprobe", Local),
        336 => sys("uprobe", Local),
        424 => sys("pidfd_send_signal", Primary),
        425 => sys("io_uring_setup", Unsupported),
        426 => sys("io_uring_enter", Unsupported),
        427 => sys("io_uring_register", Unsupported),
        428 => sys("open_tree", Primary),
        429 => sys("move_mount", Primary),
        430 => sys("fsopen", Primary),
        431 => sys("fsconfig", Primary),
        432 => sys("fsmount", Primary),
        433 => sys("fspick", Primary),
        434 => sys("pidfd_open", Primary),
        435 => sys("clone3", Fork),
        436 => sys("close_range", Primary),
        437 => sys("openat2", Primary),
        438 => sys("pidfd_getfd", Primary),
        439 => sys("faccessat2", Primary),
        440 => sys("process_madvise", Primary),
        441 => sys("epoll_pwait2", Primary),
        442 => sys("mount_setattr", Primary),
        443 => sys("quotactl_fd", Primary),
        444 => sys("landlock_create_ruleset", Primary),
        445 => sys("landlock_add_rule", Primary),
        446 => sys("landlock_restrict_self", Local),
        447 => sys("memfd_secret", Unsupported),
        448 => sys("process_mrelease", Primary),
        449 => sys("futex_waitv", Local),
        450 => sys("set_mempolicy_home_node", Local),
        451 => sys("cachestat", Primary),
        452 => sys("fchmodat2", Primary),
        453 => sys("map_shadow_stack", Local),
        454 => sys("futex_wake", Local),
        455 => sys("futex_wait", Local),
        456 => sys("futex_requeue", Local),
        457 => sys("statmount", Primary),
        458 => sys("listmount", Primary),
        459 => sys("lsm_get_self_attr", Primary),
        460 => sys("lsm_set_self_attr", Local),
        461 => sys("lsm_list_modules", Primary),
        462 => sys("mseal", Local),
        463 => sys("setxattrat", Primary),
        464 => sys("getxattrat", Primary),
        465 => sys("listxattrat", Primary),
        466 => sys("removexattrat", Primary),
        467 => sys("open_tree_attr", Primary),
        468 => sys("file_getattr", Primary),
        469 => sys("file_setattr", Primary),
        470 => sys("listns", Primary),
        471 => sys("rseq_slice_yield", Local),
        472 => sys("fchroot", Primary),
        _ => None,
    }
}

/// Which system-call table a call was made through. Only the x86-64
/// table is classified; the others cannot be replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    /// `syscall` from 64-bit code, with an x86-64 number.
    X64,
    /// A 32-bit entry (`int $0x80`, or `sysenter`/`syscall` from 32-bit
    /// code): ia32 numbers and arguments (`int $0x80` 10 is `unlink`,
    /// not `mprotect`).
    Ia32,
    /// `syscall` with `__X32_SYSCALL_BIT` set: the x32 table (`-ENOSYS`
    /// on kernels built without it).
    X32,
}

/// `__X32_SYSCALL_BIT`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

impl Abi {
    /// The table of call `nr` (as the `sys_enter` tracepoint gives it, the
    /// sign-extended low 32 bits of `orig_ax`), made through a 32-bit
    /// entry or not (`ia32`).
    pub(crate) const fn of(nr: i64, ia32: bool) -> Self {
        // The kernel takes x32 numbers from 0x40000000 up; numbers with
        // the sign bit set are no call in any table.
        if ia32 {
            Abi::Ia32
        } else if (nr as u32) & !(X32_SYSCALL_BIT - 1) == X32_SYSCALL_BIT {
            Abi::X32
        } else {
            Abi::X64
        }
    }

    /// Why calls through this table cannot be replicated, if they cannot.
    pub(crate) const fn unreplicable(self) -> Option<&'static str> {
        match self {
            Abi::X64 => None,
            Abi::Ia32 => Some("a 32-bit system call (int $0x80)"),
            Abi::X32 => Some("an x32 system call"),
        }
    }
}

/// Name and class of call `nr`; calls the kernel does not implement are
/// `Local` (they fail with `-ENOSYS` identically everywhere).
pub(crate) fn classify(nr: i64) -> Syscall {
    entry(nr).unwrap_or(Syscall {
        name: "nosys",
        class: Local,
    })
}

/// The pseudo call number of a time-stamp counter read (`rdtsc`,
/// `rdtscp`) in the ring ([`crate::sync::tsc`]): no system call has it.
pub(crate) const NR_RDTSC: i64 = -2;

/// The pseudo call number of the point where a thread of a multi-threaded
/// primary was preempted, in the ring ([`crate::sync::threads::preempted`]):
/// no system call has it. Its record sets no result.
pub(crate) const NR_PREEMPTED: i64 = -3;

/// `-ERESTARTSYS` and friends: the call is interrupted and will be made
/// again (or turned into `-EINTR`); it has no result yet.
pub(crate) fn is_restart(ret: isize) -> bool {
    (-516..=-512).contains(&ret)
}

/// What call `nr` with `args` writes into memory although it failed with
/// `ret` (address, length), as the primary's `sys_exit` sees it (before
/// signal delivery turns a restart code into `-EINTR`):
///
/// - `nanosleep` and a relative `clock_nanosleep` cut short (a restart
///   code) write the time they had left, `rem`;
/// - `select`, `pselect6` and `ppoll` write the time left into their
///   timeout whatever their result (the kernel's `poll_select_finish()`),
///   except when they could not read it (`-EFAULT`, which an unreadable
///   descriptor set gives too: that one is not covered) and when they
///   could not write it or must not (`-EINTR`: a read-only timeout, or
///   `STICKY_TIMEOUTS`).
///
/// Other failed calls write nothing a duplicate needs. (`restart_syscall`
/// continuing a sleep, and cut short again, writes the `rem` its restart
/// block holds, which its arguments do not give: the caller keeps it from
/// the sleep's record, `sync::next_sleep_rem`.)
pub(crate) fn written_when_interrupted(
    nr: i64,
    args: &[usize; 6],
    ret: isize,
) -> Option<(usize, usize)> {
    const EINTR: isize = 4;
    const EFAULT: isize = 14;
    const TIMER_ABSTIME: usize = 1;
    if ret >= 0 {
        return None;
    }
    let arg = match nr {
        // nanosleep(req, rem)
        35 if is_restart(ret) => 1,
        // clock_nanosleep(clock, flags, req, rem), relative only.
        230 if is_restart(ret) && args[1] & TIMER_ABSTIME == 0 => 3,
        // select(n, in, out, ex, timeval), pselect6(..., timespec, sig),
        // ppoll(fds, n, timespec, sigmask, size).
        23 | 270 | 271 if ret != -EFAULT && ret != -EINTR => {
            if nr == 271 {
                2
            } else {
                4
            }
        }
        _ => return None,
    };
    // A timeval and a timespec are both 16 bytes.
    (args[arg] != 0).then_some((args[arg], 16))
}

/// The name log lines give the event `nr` of the ring: the call's,
/// `rdtsc` for a time-stamp counter read, or `preempted`.
pub(crate) fn name(nr: i64) -> &'static str {
    match nr {
        NR_RDTSC => "rdtsc",
        NR_PREEMPTED => "preempted",
        _ => classify(nr).name,
    }
}

/// How long one output buffer of a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Len {
    /// The call's return value (bytes).
    Ret,
    /// The return value times a record size.
    RetTimes(usize),
    /// A fixed size (x86-64 layout of the structure).
    Fixed(usize),
    /// The value of another argument times a record size.
    ArgTimes(usize, usize),
    /// The value of another argument (bytes).
    Arg(usize),
    /// A `socklen_t` the call wrote at another argument.
    DerefU32(usize),
    /// An `fd_set` for `nfds` in argument 0.
    FdSet,
}

/// Where a call writes into the caller's memory: the argument holding the
/// address, and the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Out(pub(crate) usize, pub(crate) Len);

/// What a `Primary` call writes into the caller's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outputs {
    /// These buffers (possibly none), when the call succeeds.
    Bufs(&'static [Out]),
    /// An iovec array (argument 1, count in argument 2) filled with the
    /// return value's bytes.
    Iov,
    /// `ioctl`: by the request's encoded direction and size.
    Ioctl,
    /// `fcntl`: the lock queries.
    Fcntl,
    /// Writes memory in a way procft cannot replay yet: protection ends.
    Unknown,
}

use Len::*;

/// What call `nr` (of class `Primary` or `Fork`) writes into memory.
pub(crate) const fn outputs(nr: i64) -> Outputs {
    const STAT: &[Out] = &[Out(1, Fixed(144))];
    const READ: &[Out] = &[Out(1, Ret)];
    Outputs::Bufs(match nr {
        0 | 17 => READ,
        4..=6 => STAT,
        7 => &[Out(0, ArgTimes(1, 8))],
        16 => return Outputs::Ioctl,
        19 | 295 | 327 => return Outputs::Iov,
        22 | 293 => &[Out(0, Fixed(8))],
        23 | 270 => &[
            Out(1, FdSet),
            Out(2, FdSet),
            Out(3, FdSet),
            Out(4, Fixed(16)),
        ],
        35 => &[Out(1, Fixed(16))],
        36 => &[Out(1, Fixed(32))],
        38 => &[Out(2, Fixed(32))],
        40 => &[Out(2, Fixed(8))],
        43 | 288 | 51 | 52 => &[Out(1, DerefU32(2)), Out(2, Fixed(4))],
        45 => &[Out(1, Ret), Out(4, DerefU32(5)), Out(5, Fixed(4))],
        53 => &[Out(3, Fixed(8))],
        55 => &[Out(3, DerefU32(4)), Out(4, Fixed(4))],
        61 => &[Out(1, Fixed(4)), Out(3, Fixed(144))],
        63 => &[Out(0, Fixed(390))],
        72 => return Outputs::Fcntl,
        78 | 217 => READ,
        79 => &[Out(0, Ret)],
        89 => READ,
        96 => &[Out(0, Fixed(16)), Out(1, Fixed(8))],
        97 => &[Out(1, Fixed(16))],
        98 => &[Out(1, Fixed(144))],
        99 => &[Out(0, Fixed(112))],
        100 => &[Out(0, Fixed(32))],
        103 => READ,
        115 => &[Out(1, RetTimes(4))],
        118 | 120 => &[Out(0, Fixed(4)), Out(1, Fixed(4)), Out(2, Fixed(4))],
        125 => &[Out(1, Fixed(24))],
        128 => &[Out(1, Fixed(128))],
        137 | 138 => &[Out(1, Fixed(120))],
        143 => &[Out(1, Fixed(4))],
        148 => &[Out(1, Fixed(16))],
        159 => &[Out(0, Fixed(208))],
        191..=193 => &[Out(2, Ret)],
        194..=196 => READ,
        201 => &[Out(0, Fixed(8))],
        204 => &[Out(2, Ret)],
        222 => &[Out(2, Fixed(4))],
        223 => &[Out(3, Fixed(32))],
        224 => &[Out(1, Fixed(32))],
        228 | 229 => &[Out(1, Fixed(16))],
        230 => &[Out(3, Fixed(16))],
        232 | 281 | 441 => &[Out(1, RetTimes(12))],
        243 => &[Out(1, Ret), Out(3, Fixed(4))],
        245 => &[Out(2, Fixed(64))],
        247 => &[Out(2, Fixed(128)), Out(4, Fixed(144))],
        262 => &[Out(2, Fixed(144))],
        267 => &[Out(2, Ret)],
        271 => &[Out(0, ArgTimes(1, 8)), Out(2, Fixed(16))],
        275 | 326 => &[Out(1, Fixed(8)), Out(3, Fixed(8))],
        286 => &[Out(3, Fixed(32))],
        287 => &[Out(1, Fixed(32))],
        302 => &[Out(3, Fixed(16))],
        305 => &[Out(1, Fixed(208))],
        309 => &[Out(0, Fixed(4)), Out(1, Fixed(4))],
        315 => &[Out(1, Arg(2))],
        318 => &[Out(0, Ret)],
        332 => &[Out(4, Fixed(256))],
        // recvmsg, recvmmsg, sendmmsg, msgctl, semctl, keyctl, sysfs,
        // quotactl, name_to_handle_at, statmount, listmount,
        // lsm_get_self_attr, lsm_list_modules, file_getattr, listns,
        // getxattrat, listxattrat, cachestat, bpf, quotactl_fd,
        // process_vm_readv, io_getevents.
        47 | 299 | 307 | 70 | 71 | 66 | 250 | 139 | 179 | 303 | 457 | 458 | 459 | 461 | 468
        | 470 | 464 | 465 | 451 | 321 | 443 => return Outputs::Unknown,
        _ => &[],
    })
}

/// The outputs of call `nr` (argument holding the address, length), if
/// each is a structure of fixed size (as `clock_gettime`'s `timespec`,
/// `fstat`'s `stat`): where and how much it writes is then known before it
/// returns, from its arguments alone.
pub(crate) fn fixed_outputs(nr: i64) -> Option<impl Iterator<Item = (usize, usize)>> {
    let Outputs::Bufs(list) = outputs(nr) else {
        return None;
    };
    let fixed = |o: &Out| match o.1 {
        Fixed(n) => Some((o.0, n)),
        _ => None,
    };
    (!list.is_empty() && list.iter().all(|o| fixed(o).is_some()))
        .then(|| list.iter().filter_map(fixed))
}

/// Whether call `nr` (of class `Local` or `Mmap`: every replica makes it)
/// changes the layout of the address space: `mmap`, `munmap`, `mremap`,
/// `brk`, `mprotect`, `pkey_mprotect`, `madvise`, `mlock`, `munlock`,
/// `mlock2` (the last four can split mappings). The primary records them
/// and a duplicate makes each only once the primary has, so a duplicate
/// never has mappings the primary has not made yet: whenever it stands at
/// the primary's next call, its layout is the primary's, and a failed
/// primary can take its state (see `crate::failover`).
pub(crate) const fn reshapes(nr: i64) -> bool {
    matches!(nr, 9 | 10 | 11 | 12 | 25 | 28 | 149 | 150 | 325 | 329)
}

/// How a call that blocks behaves when its task is woken for a task_work
/// with nothing to deliver (`TWA_SIGNAL`): whether the kernel makes it
/// again without the program seeing anything (`-ERESTARTSYS`,
/// `-ERESTARTNOHAND`, a restart block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// Made again, unseen.
    Unseen,
    /// Unseen on a pipe, FIFO or terminal; a socket with a receive timeout
    /// returns `-EINTR` instead.
    UnseenUnlessSocket,
    /// It may return `-EINTR` or a short count: never interrupted.
    Seen,
}

/// How call `nr`, blocked, takes an interruption without a signal.
pub(crate) const fn interrupt(nr: i64) -> Interrupt {
    match nr {
        // read, readv.
        0 | 19 => Interrupt::UnseenUnlessSocket,
        // poll, select, pause, nanosleep, wait4, flock, rt_sigsuspend,
        // restart_syscall, clock_nanosleep, waitid, pselect6, ppoll.
        7 | 23 | 34 | 35 | 61 | 73 | 130 | 219 | 230 | 247 | 270 | 271 => Interrupt::Unseen,
        _ => Interrupt::Seen,
    }
}

/// Where the bytes a call sends out are, which duplicates must agree on
/// and the kernel reads on the primary's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// One buffer: the arguments holding its address and its length.
    Buf(usize, usize),
    /// An iovec array: the arguments holding its address and its count.
    Iov(usize, usize),
    /// A `struct user_msghdr` (the argument holding its address): its
    /// destination address, iovec array and control data.
    Msg(usize),
}

/// What call `nr` sends out, if it sends bytes.
pub(crate) const fn input(nr: i64) -> Option<Input> {
    match nr {
        // write, pwrite64, sendto.
        1 | 18 | 44 => Some(Input::Buf(1, 2)),
        // writev, pwritev, pwritev2.
        20 | 296 | 328 => Some(Input::Iov(1, 2)),
        // sendmsg.
        46 => Some(Input::Msg(1)),
        _ => None,
    }
}

#[kunit_tests(procft_syscalls)]
mod tests {
    use super::*;

    #[test]
    fn address_space_and_signal_state_run_everywhere() {
        for nr in [12, 10, 11, 25, 28, 13, 14, 15, 131, 158, 334] {
            assert_eq!(classify(nr).class, Local);
        }
    }

    #[test]
    fn duplicates_have_no_exit_writes() {
        // set_tid_address, set_robust_list, get_robust_list: a duplicate's
        // exit must write nothing to its memory (a promotion may take it).
        for nr in [218, 273, 274] {
            assert_eq!(classify(nr).class, Primary);
        }
    }

    #[test]
    fn the_outside_world_is_the_primarys() {
        // read, write, open, close, getpid, getppid, gettid, clock_gettime,
        // getrandom, socket, kill, wait4.
        for nr in [0, 1, 2, 3, 39, 110, 186, 228, 318, 41, 62, 61] {
            assert_eq!(classify(nr).class, Primary);
        }
    }

    #[test]
    fn special_calls() {
        assert_eq!(classify(9).class, Mmap);
        for nr in [56, 57, 58, 435] {
            assert_eq!(classify(nr).class, Fork);
        }
        assert_eq!(classify(59).class, Exec);
        assert_eq!(classify(322).class, Exec);
        assert_eq!(classify(60).class, Exit);
        assert_eq!(classify(231).class, Exit);
        // shmat, ptrace, io_uring_setup, userfaultfd.
        for nr in [30, 101, 425, 323] {
            assert_eq!(classify(nr).class, Unsupported);
        }
    }

    #[test]
    fn only_calls_restarted_unseen_are_interrupted() {
        for nr in [7, 23, 34, 35, 61, 130, 219, 230, 247, 270, 271] {
            assert_eq!(interrupt(nr), Interrupt::Unseen);
        }
        assert_eq!(interrupt(0), Interrupt::UnseenUnlessSocket);
        // write (short count), epoll_wait/epoll_pwait/epoll_pwait2 (EINTR),
        // recvfrom, accept, futex, connect.
        for nr in [1, 232, 281, 441, 45, 43, 202, 42] {
            assert_eq!(interrupt(nr), Interrupt::Seen);
        }
    }

    #[test]
    fn interrupted_sleeps_write_the_time_left() {
        let args = [0x10, 0x20, 0x30, 0x40, 0x50, 0];
        // -ERESTARTSYS, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK.
        for ret in [-512, -514, -516] {
            assert_eq!(written_when_interrupted(35, &args, ret), Some((0x20, 16)));
            assert_eq!(written_when_interrupted(230, &args, ret), Some((0x40, 16)));
            assert_eq!(written_when_interrupted(23, &args, ret), Some((0x50, 16)));
            assert_eq!(written_when_interrupted(270, &args, ret), Some((0x50, 16)));
            assert_eq!(written_when_interrupted(271, &args, ret), Some((0x30, 16)));
        }
        // The waits write their timeout after other failures too (-EBADF),
        // not after -EFAULT or -EINTR; the sleeps only when cut short.
        assert_eq!(written_when_interrupted(23, &args, -9), Some((0x50, 16)));
        for nr in [23, 270, 271] {
            assert_eq!(written_when_interrupted(nr, &args, -14), None);
            assert_eq!(written_when_interrupted(nr, &args, -4), None);
        }
        assert_eq!(written_when_interrupted(35, &args, -4), None);
        assert_eq!(written_when_interrupted(35, &args, -14), None);
        // An absolute clock_nanosleep has no rem; no rem pointer, no
        // write; success, other calls: nothing.
        let abs = [0, 1, 0x30, 0x40, 0, 0];
        assert_eq!(written_when_interrupted(230, &abs, -516), None);
        assert_eq!(
            written_when_interrupted(35, &[0x10, 0, 0, 0, 0, 0], -516),
            None
        );
        assert_eq!(written_when_interrupted(35, &args, 0), None);
        assert_eq!(written_when_interrupted(0, &args, -516), None);
    }

    #[test]
    fn entries_are_told_apart() {
        for nr in [0, 1, 10, MAX_NR, -1, i64::from(i32::MIN), 0x3fff_ffff] {
            assert_eq!(Abi::of(nr, false), Abi::X64);
            assert_eq!(Abi::of(nr, true), Abi::Ia32);
        }
        for nr in [0x4000_0000, 0x4000_0001, 0x4000_0000 + 512, 0x7fff_ffff] {
            assert_eq!(Abi::of(nr, false), Abi::X32);
            assert_eq!(Abi::of(nr, true), Abi::Ia32);
        }
        assert!(Abi::X64.unreplicable().is_none());
        assert!(Abi::Ia32.unreplicable().is_some() && Abi::X32.unreplicable().is_some());
    }

    #[test]
    fn numbers_without_a_call_are_local() {
        for nr in [-1, 337, 400, 423, MAX_NR + 1, i64::MAX] {
            assert!(entry(nr).is_none());
            assert_eq!(classify(nr).class, Local);
        }
        assert_eq!(entry(MAX_NR).map(|s| s.name), Some("fchroot"));
        assert_eq!(entry(0).map(|s| s.name), Some("read"));
    }
}

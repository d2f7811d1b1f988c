// SPDX-License-Identifier: GPL-2.0
//! ftctl: control procft, process-level fault tolerance.
//!
//! ```text
//! ftctl run -l N [--] CMD [ARGS...]   run CMD protected at level N
//! ftctl set PID N                     set the level of a running process
//! ftctl get PID                       print a process's level
//! ftctl status [PID] [--json]         show protected processes (or one)
//! ftctl info [--json]                 show module-wide information
//! ```
//!
//! Exit status: 0 on success, 1 when the kernel refused or failed the
//! request, 2 on a usage error, 3 when procft is not loaded; `run` exits
//! 126/127 like a shell when CMD cannot be executed.

mod status;
mod uapi;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

use uapi::Device;

const USAGE: &str = "\
usage: ftctl run -l N [--] CMD [ARGS...]
       ftctl set PID N
       ftctl get PID
       ftctl status [PID] [--json]
       ftctl info [--json]
       ftctl events [-f]
       ftctl fail PID REPLICA [--corrupt ADDR]   (test only: fault_injection=1)

PID 0 means ftctl itself; N is a fault-tolerance level, the number of
duplicate replicas procft keeps beside the process (0 ends protection).
`events` prints the events procft kept (memory errors, lost and new
duplicates, promotions, divergences, level changes), one key=value line
each; with -f it keeps following them.
REPLICA 0 is the primary (a duplicate takes over from it), k > 0 the k-th
duplicate as `ftctl status` lists them (it is replaced). With --corrupt the
byte at ADDR (hex with 0x, or decimal) in that replica's memory is flipped
instead: a silent corruption that procft has to detect by itself.";

const EXIT_FAIL: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_NOT_LOADED: i32 = 3;

fn usage_error(msg: &str) -> ! {
    eprintln!("ftctl: {msg}\n{USAGE}");
    exit(EXIT_USAGE)
}

/// Explains an errno the way the procft interfaces use it.
fn explain(err: &io::Error, pid: &str) -> String {
    let hint = match err.raw_os_error() {
        Some(libc_errno::EINVAL) => " (invalid pid or level, or a kernel thread)",
        Some(libc_errno::ESRCH) => " (no such process)",
        Some(libc_errno::EPERM) => " (you may only change processes you could ptrace-attach to)",
        Some(libc_errno::EBUSY) => {
            " (a duplicate of a protected process: change its primary's level)"
        }
        Some(libc_errno::EOPNOTSUPP) => {
            " (multi-threaded, traced or writably shared-memory processes cannot be protected)"
        }
        _ => "",
    };
    format!("process {pid}: {err}{hint}")
}

mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ESRCH: i32 = 3;
    pub const EBUSY: i32 = 16;
    pub const EINVAL: i32 = 22;
    pub const EOPNOTSUPP: i32 = 95;
}

fn open_device() -> Device {
    opened(Device::open())
}

/// The opened device, or exits saying why it could not be opened.
fn opened<T>(r: io::Result<T>) -> T {
    match r {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "ftctl: {}: not found (is the procft module loaded?)",
                uapi::DEVICE
            );
            exit(EXIT_NOT_LOADED)
        }
        Err(e) => {
            eprintln!("ftctl: {}: {e}", uapi::DEVICE);
            exit(EXIT_FAIL)
        }
    }
}

/// Parses a pid argument: a decimal number that fits a pid_t.  Range
/// checks (negative pids and so on) are the kernel's to make, so that every
/// interface refuses the same things.
fn parse_pid(s: &str) -> i32 {
    s.parse::<i32>()
        .unwrap_or_else(|_| usage_error(&format!("'{s}' is not a pid")))
}

/// Parses a level argument.  Numbers the kernel will refuse (above the
/// maximum) are passed on so that the kernel's answer is what the user
/// sees; things that are not numbers at all are usage errors.
fn parse_level(s: &str) -> u32 {
    s.parse::<u32>()
        .unwrap_or_else(|_| usage_error(&format!("'{s}' is not a level (a number from 0)")))
}

fn fail(err: io::Error, pid: &str) -> ! {
    eprintln!("ftctl: {}", explain(&err, pid));
    exit(EXIT_FAIL)
}

fn cmd_run(args: &[String]) -> ! {
    let mut level = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-l" | "--level" => {
                let v = args
                    .get(i + 1)
                    .unwrap_or_else(|| usage_error("-l needs a level"));
                level = Some(parse_level(v));
                i += 2;
            }
            s if s.starts_with("--level=") => {
                level = Some(parse_level(&s["--level=".len()..]));
                i += 1;
            }
            "--" => {
                i += 1;
                break;
            }
            s if s.starts_with('-') => usage_error(&format!("unknown option '{s}'")),
            _ => break,
        }
    }
    let level = level.unwrap_or_else(|| usage_error("run needs -l N"));
    let cmd = &args[i..];
    if cmd.is_empty() {
        usage_error("run needs a command");
    }
    // Protect ourselves, then become the command: the level survives exec.
    let dev = open_device();
    if let Err(e) = dev.set_level(0, level) {
        fail(e, "ftctl");
    }
    drop(dev);
    let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    eprintln!("ftctl: {}: {err}", cmd[0]);
    exit(if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Copies the event log to stdout; with `follow`, waits for more.
fn cmd_events(follow: bool) -> ! {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;

    const O_NONBLOCK: i32 = 0o4000;
    let mut f = opened(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(if follow { 0 } else { O_NONBLOCK })
            .open(uapi::DEVICE),
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = io::stdout().lock();
    loop {
        match f.read(&mut buf) {
            Ok(0) => exit(0),
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    exit(0)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => exit(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ftctl: {}: {e}", uapi::DEVICE);
                exit(EXIT_FAIL)
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        usage_error("missing command")
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "run" => cmd_run(rest),
        "set" => {
            let [pid, level] = rest else {
                usage_error("set takes PID and N")
            };
            let (p, l) = (parse_pid(pid), parse_level(level));
            if let Err(e) = open_device().set_level(p, l) {
                fail(e, pid);
            }
        }
        "get" => {
            let [pid] = rest else {
                usage_error("get takes PID")
            };
            match open_device().get_level(parse_pid(pid)) {
                Ok(l) => println!("{l}"),
                Err(e) => fail(e, pid),
            }
        }
        "status" => {
            let json = rest.iter().any(|a| a == "--json");
            let pids: Vec<&String> = rest.iter().filter(|a| *a != "--json").collect();
            match pids.as_slice() {
                [] => status::all(json),
                [pid] => match open_device().status(parse_pid(pid)) {
                    Ok(s) => status::print_one(&s, json),
                    Err(e) => fail(e, pid),
                },
                _ => usage_error("status takes at most one PID"),
            }
        }
        "fail" => {
            let (pid, replica, how, addr) = match rest {
                [pid, replica] => (pid, replica, uapi::FAIL_LOSE, 0),
                [pid, replica, flag, addr] if flag == "--corrupt" => {
                    let a = match addr.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(hex, 16),
                        None => addr.parse::<u64>(),
                    }
                    .unwrap_or_else(|_| usage_error(&format!("bad address '{addr}'")));
                    (pid, replica, uapi::FAIL_CORRUPT, a)
                }
                _ => usage_error("fail takes PID REPLICA [--corrupt ADDR]"),
            };
            let r = replica
                .parse::<u32>()
                .unwrap_or_else(|_| usage_error(&format!("bad replica '{replica}'")));
            match open_device().fail(parse_pid(pid), r, how, addr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc_errno::EPERM) => {
                    eprintln!(
                        "ftctl: process {pid}: {e} (needs the module loaded with \
                         fault_injection=1, and CAP_SYS_ADMIN)"
                    );
                    exit(EXIT_FAIL)
                }
                Err(e) => fail(e, pid),
            }
        }
        "info" => {
            let json = match rest {
                [] => false,
                [j] if j == "--json" => true,
                _ => usage_error("info takes only --json"),
            };
            match open_device().info() {
                Ok(i) => status::print_info(&i, json),
                Err(e) => fail(e, "-"),
            }
        }
        "events" => {
            let follow = match rest {
                [] => false,
                [f] if f == "-f" || f == "--follow" => true,
                _ => usage_error("events takes only -f"),
            };
            cmd_events(follow);
        }
        "-h" | "--help" | "help" => println!("{USAGE}"),
        other => usage_error(&format!("unknown command '{other}'")),
    }
}

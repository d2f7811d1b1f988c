// SPDX-License-Identifier: GPL-2.0
//! ftctl: control procft, process-level fault tolerance.
//!
//! The command line is defined in [`cli`] (clap); `ftctl --help` and
//! `ftctl help COMMAND` describe it, as does the ftctl(8) man page
//! generated from the same definition.
//!
//! Exit status: 0 on success, 1 when the kernel refused or failed the
//! request, 2 on a usage error, 3 when procft is not loaded; `run` exits
//! 126/127 like a shell when CMD cannot be executed.

mod cli;
mod events;
mod protect;
mod status;
mod uapi;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::exit;

use clap::Parser;

use cli::{Cli, Command};
use uapi::Device;

const EXIT_FAIL: i32 = 1;
const EXIT_NOT_LOADED: i32 = 3;

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

pub(crate) mod libc_errno {
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

fn fail(err: io::Error, pid: &str) -> ! {
    eprintln!("ftctl: {}", explain(&err, pid));
    exit(EXIT_FAIL)
}

/// `ftctl run`: protects ftctl itself, then becomes the command (the
/// level survives exec).
fn cmd_run(level: u32, cmd: &[std::ffi::OsString]) -> ! {
    let dev = open_device();
    if let Err(e) = dev.set_level(0, level) {
        fail(e, "ftctl");
    }
    drop(dev);
    let err = std::process::Command::new(&cmd[0]).args(&cmd[1..]).exec();
    eprintln!("ftctl: {}: {err}", cmd[0].to_string_lossy());
    exit(if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

fn main() {
    match Cli::parse().command {
        Command::Run { level, command } => cmd_run(level, &command),
        Command::Set { pid, level } => {
            if let Err(e) = open_device().set_level(pid, level) {
                fail(e, &pid.to_string());
            }
        }
        Command::Get { pid } => match open_device().get_level(pid) {
            Ok(l) => println!("{l}"),
            Err(e) => fail(e, &pid.to_string()),
        },
        Command::Protect {
            level,
            target,
            wait,
            timeout,
        } => protect::run(&open_device(), level, &target, wait.then_some(timeout)),
        Command::Status {
            pid: None,
            prometheus: true,
            ..
        } => status::prometheus(&info()),
        Command::Status {
            pid: None, json, ..
        } => status::all(json),
        Command::Status {
            pid: Some(pid),
            json,
            ..
        } => match open_device().status(pid) {
            Ok(s) => status::print_one(&s, json),
            Err(e) => fail(e, &pid.to_string()),
        },
        Command::Info { json } => match Device::open() {
            // What can be known without the module: whether it could load.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                status::print_unloaded(&status::Kernel::probe(), json);
                exit(EXIT_NOT_LOADED)
            }
            r => match opened(r).info() {
                Ok(i) => status::print_info(&i, json),
                Err(e) => fail(e, "-"),
            },
        },
        Command::Events { follow, json } => events::run(follow, json),
        Command::Fail {
            pid,
            replica,
            corrupt,
        } => {
            let (how, addr) = match corrupt {
                Some(a) => (uapi::FAIL_CORRUPT, a),
                None => (uapi::FAIL_LOSE, 0),
            };
            match open_device().fail(pid, replica, how, addr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc_errno::EPERM) => {
                    eprintln!(
                        "ftctl: process {pid}: {e} (needs the module loaded with \
                         fault_injection=1, and CAP_SYS_ADMIN)"
                    );
                    exit(EXIT_FAIL)
                }
                Err(e) => fail(e, &pid.to_string()),
            }
        }
    }
}

fn info() -> uapi::Info {
    match open_device().info() {
        Ok(i) => i,
        Err(e) => fail(e, "-"),
    }
}

// SPDX-License-Identifier: GPL-2.0
//! `ftctl protect`: set the level of a process named by its pid, a pid
//! file or a systemd unit, waiting (bounded) for it to appear.

use std::process::exit;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cli::Target;
use crate::uapi::Device;
use crate::{explain, libc_errno, EXIT_FAIL};

/// How often --wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// Why the target has no process (yet).
enum Missing {
    /// Not there yet: worth waiting for.
    NotYet(String),
    /// Will not appear by waiting: give up at once.
    Never(String),
}

/// The pid in a pid file: its first line, a positive decimal number.
fn pid_in_file(text: &str) -> Option<i32> {
    text.lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
}

/// The main pid of a systemd unit, from `systemctl show` (0: none yet).
fn unit_main_pid(unit: &str) -> Result<i32, Missing> {
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property=MainPID", "--value", "--", unit])
        .output()
        .map_err(|e| Missing::Never(format!("systemctl: {e}")))?;
    if !out.status.success() {
        return Err(Missing::Never(format!(
            "systemctl show {unit}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        Ok(_) => Err(Missing::NotYet(format!("unit {unit} has no main pid"))),
        Err(_) => Err(Missing::Never(format!(
            "systemctl show {unit}: unexpected MainPID '{}'",
            text.trim()
        ))),
    }
}

/// The pid the target names now.
fn resolve(target: &Target) -> Result<i32, Missing> {
    if let Some(pid) = target.pid {
        return Ok(pid);
    }
    if let Some(path) = &target.pidfile {
        let shown = path.display();
        return match std::fs::read_to_string(path) {
            Ok(text) => {
                pid_in_file(&text).ok_or_else(|| Missing::NotYet(format!("{shown}: holds no pid")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Missing::NotYet(format!("{shown}: {e}")))
            }
            Err(e) => Err(Missing::Never(format!("{shown}: {e}"))),
        };
    }
    match &target.unit {
        Some(unit) => unit_main_pid(unit),
        None => unreachable!("clap requires one target"),
    }
}

/// Sets `level` on the target's process; with `wait` (seconds), first waits
/// for it to appear. A pid that names no process (ESRCH) counts as not yet
/// there: a pid file may name a process that has exited, a service's main
/// pid may be about to change.
pub fn run(dev: &Device, level: u32, target: &Target, wait: Option<u32>) {
    let deadline = wait.map(|s| Instant::now() + Duration::from_secs(s.into()));
    loop {
        let why = match resolve(target) {
            Ok(pid) => match dev.set_level(pid, level) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc_errno::ESRCH) => {
                    explain(&e, &pid.to_string())
                }
                Err(e) => give_up(explain(&e, &pid.to_string())),
            },
            Err(Missing::NotYet(why)) => why,
            Err(Missing::Never(why)) => give_up(why),
        };
        match deadline {
            Some(d) if Instant::now() < d => sleep(POLL),
            Some(_) => give_up(format!(
                "{why}, after waiting {} s",
                wait.unwrap_or_default()
            )),
            None => give_up(why),
        }
    }
}

fn give_up(why: String) -> ! {
    eprintln!("ftctl: {why}");
    exit(EXIT_FAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files() {
        assert_eq!(pid_in_file("123\n"), Some(123));
        assert_eq!(pid_in_file(" 45 \nignored\n"), Some(45));
        assert_eq!(pid_in_file(""), None);
        assert_eq!(pid_in_file("0\n"), None);
        assert_eq!(pid_in_file("-1\n"), None);
        assert_eq!(pid_in_file("abc\n"), None);
    }
}

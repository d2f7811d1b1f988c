// SPDX-License-Identifier: GPL-2.0
//! The command line, as one clap definition: ftctl parses it, and
//! `ftctl-gen` writes the ftctl(8) man page and the shell completions
//! from it, so that neither can drift from what ftctl accepts.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Control procft, process-level fault tolerance";

const LONG_ABOUT: &str = "\
Control procft, process-level fault tolerance: a protected process runs \
with N duplicate replicas on separate physical frames, kept in sync at \
system-call boundaries, so that a memory error kills only the replica \
mapping the bad frame. N is the process's fault-tolerance level (0: \
unprotected). ftctl talks to the procft module through /dev/procft and \
/proc/procft.";

const AFTER_HELP: &str = "\
Exit status: 0 on success, 1 when the kernel refused or failed the request, \
2 on a usage error, 3 when procft is not loaded; `run` exits 126/127 like a \
shell when CMD cannot be executed.";

/// The parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "ftctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One of ftctl's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command protected at level N
    ///
    /// ftctl sets its own level to N, then executes CMD in its place: the
    /// level survives exec, so CMD runs protected from its first
    /// instruction (and keeps ftctl's pid). This is the form for a systemd
    /// ExecStart= line.
    Run {
        /// Fault-tolerance level: the number of duplicates to keep
        #[arg(short, long, value_name = "N", value_parser = parse_level)]
        level: u32,
        /// The command and its arguments
        #[arg(
            value_name = "CMD",
            required = true,
            num_args = 1..,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<OsString>,
    },
    /// Set the level of a running process
    ///
    /// Level 0 ends protection. Allowed on processes one may
    /// ptrace-attach to.
    Set {
        /// The process (0: ftctl itself)
        #[arg(value_parser = parse_pid)]
        pid: i32,
        /// Fault-tolerance level: the number of duplicates to keep
        #[arg(value_name = "N", value_parser = parse_level)]
        level: u32,
    },
    /// Print a process's level
    Get {
        /// The process (0: ftctl itself)
        #[arg(value_parser = parse_pid)]
        pid: i32,
    },
    /// Set the level of a process once it exists (a service's main pid)
    ///
    /// The process is named by its pid, by a pid file (as a service's
    /// PIDFile=) or by a systemd unit (its MainPID, read with `systemctl
    /// show`). With --wait, ftctl waits up to --timeout seconds for it to
    /// appear (the pid to exist, the pid file to name a live process, the
    /// unit to have a main pid) before setting the level.
    Protect {
        /// Fault-tolerance level: the number of duplicates to keep
        #[arg(short, long, value_name = "N", value_parser = parse_level)]
        level: u32,
        #[command(flatten)]
        target: Target,
        /// Wait for the process to appear
        #[arg(short, long)]
        wait: bool,
        /// How long --wait waits, in seconds
        #[arg(
            short,
            long,
            value_name = "SECS",
            default_value_t = 30,
            requires = "wait",
            value_parser = clap::value_parser!(u32).range(1..=86400)
        )]
        timeout: u32,
    },
    /// Show protected processes (all, or one)
    ///
    /// Without PID: one line per protected process of /proc/procft. With
    /// --prometheus: the same as metrics in the Prometheus text exposition
    /// format, with module totals (for node_exporter's textfile collector
    /// or any scraper).
    Status {
        /// One process (its status from PROCFT_IOC_GET_STATUS)
        #[arg(value_parser = parse_pid)]
        pid: Option<i32>,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Print Prometheus metrics (every process, module totals)
        #[arg(long, conflicts_with_all = ["json", "pid"])]
        prometheus: bool,
    },
    /// Show module-wide information and what the kernel supports
    ///
    /// With procft loaded: its interface version, maximum level, protected
    /// processes and which optional kernel patches it found. Without it
    /// (exit status 3): whether the running kernel could load it: its Rust
    /// support, /proc/<pid>/ft_level, the ptrace_may_access() export, the
    /// system-call hook, and the procft.ko installed for it (modules.dep).
    Info {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the events procft kept
    ///
    /// Memory errors, lost and new duplicates, promotions, divergences,
    /// level changes and ends of protection, one key=value line each (or
    /// one JSON object per line with --json), oldest first, from the
    /// module's ring of recent events.
    Events {
        /// Keep following new events
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per line (JSON lines)
        #[arg(long)]
        json: bool,
    },
    /// Make a replica fail (test only: module parameter fault_injection=1)
    ///
    /// REPLICA 0 is the primary (a duplicate takes over from it), k > 0 the
    /// k-th duplicate as `ftctl status` lists them (it is replaced). With
    /// --corrupt the byte at ADDR in that replica's memory is flipped
    /// instead: a silent corruption that procft has to detect by itself.
    Fail {
        /// The protected process
        #[arg(value_parser = parse_pid)]
        pid: i32,
        /// 0: the primary, k: the k-th duplicate
        #[arg(value_parser = parse_replica)]
        replica: u32,
        /// Flip the byte at ADDR (hex with 0x, or decimal)
        #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
        corrupt: Option<u64>,
    },
}

/// The process `ftctl protect` waits for: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The process
    #[arg(value_parser = parse_pid)]
    pub pid: Option<i32>,
    /// A file that holds the pid (as a service's PIDFile=)
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// A systemd unit: its main pid (systemctl show -p MainPID)
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
}

/// A pid: a decimal number that fits a pid_t. Range checks (negative pids
/// and so on) are the kernel's to make, so that every interface refuses
/// the same things.
pub fn parse_pid(s: &str) -> Result<i32, String> {
    s.parse::<i32>()
        .map_err(|_| "not a pid (a decimal number)".to_string())
}

/// A level. Numbers the kernel will refuse (above its maximum) are passed
/// on, so that the kernel's answer is what the user sees.
pub fn parse_level(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| "not a level (a number from 0)".to_string())
}

fn parse_replica(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| "not a replica (0: the primary, k: the k-th duplicate)".to_string())
}

/// An address: hex with 0x, or decimal.
pub fn parse_addr(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    }
    .map_err(|_| "not an address (hex with 0x, or decimal)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ftctl").chain(args.iter().copied()))
    }

    #[test]
    fn run_takes_the_command_with_or_without_dashes() {
        for args in [
            &["run", "-l", "2", "--", "sh", "-c", "x"][..],
            &["run", "-l", "2", "sh", "-c", "x"][..],
            &["run", "--level=2", "sh", "-c", "x"][..],
        ] {
            match parse(args).unwrap().command {
                Command::Run { level, command } => {
                    assert_eq!(level, 2);
                    assert_eq!(command, ["sh", "-c", "x"]);
                }
                c => panic!("{c:?}"),
            }
        }
        assert!(parse(&["run", "-l", "2"]).is_err());
        assert!(parse(&["run", "sh"]).is_err());
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = parse(&["set", "1", "banana"]).unwrap_err().to_string();
        assert!(e.contains("'banana'") && e.contains("<N>"), "{e}");
        let e = parse(&["set", "x1", "1"]).unwrap_err().to_string();
        assert!(e.contains("'x1'") && e.contains("<PID>"), "{e}");
        assert_eq!(
            parse(&["frobnicate"]).unwrap_err().kind(),
            clap::error::ErrorKind::InvalidSubcommand
        );
        assert!(parse(&["set", "1", "-1"]).is_err());
        assert!(parse(&["status", "1", "--prometheus"]).is_err());
    }

    #[test]
    fn protect_needs_exactly_one_target() {
        assert!(parse(&["protect", "-l", "1"]).is_err());
        assert!(parse(&["protect", "-l", "1", "5", "--unit", "x"]).is_err());
        assert!(parse(&["protect", "-l", "1", "--timeout", "5", "7"]).is_err());
        let c = parse(&["protect", "-l", "1", "--wait", "--unit", "a.service"]).unwrap();
        match c.command {
            Command::Protect {
                level: 1,
                target,
                wait: true,
                timeout: 30,
            } => assert_eq!(target.unit.as_deref(), Some("a.service")),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn fail_addresses() {
        assert_eq!(parse_addr("0x10"), Ok(16));
        assert_eq!(parse_addr("10"), Ok(10));
        assert!(parse_addr("0xg").is_err());
    }
}

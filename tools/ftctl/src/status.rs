// SPDX-License-Identifier: GPL-2.0
//! Printing group status, as text or JSON.

use std::process::exit;

use crate::events::json_string;
use crate::uapi::{
    Info, Status, FEAT_MM_TAKEOVER, FEAT_PROC_PID_FT_LEVEL, FEAT_PTRACE_MAY_ACCESS,
    FEAT_SYSCALL_HOOK, FEAT_TSC_TRAP, INFO_SIZE_VER2,
};

/// One protected process as listed in /proc/procft: `key=value` fields.
pub type Record = Vec<(String, String)>;

/// Parses /proc/procft: one line per protected process, space-separated
/// `key=value` fields.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn json_value(key: &str, value: &str) -> String {
    if key == "replicas" {
        format!("[{value}]")
    } else if key == "duplicates" || value.parse::<i64>().is_err() {
        json_string(value)
    } else {
        value.to_string()
    }
}

pub fn record_to_json(r: &Record) -> String {
    let fields: Vec<String> = r
        .iter()
        .map(|(k, v)| format!("\"{k}\":{}", json_value(k, v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn read_proc_procft() -> String {
    match std::fs::read_to_string("/proc/procft") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ftctl: /proc/procft: {e} (is the procft module loaded?)");
            exit(3)
        }
    }
}

/// `ftctl status`: every protected process.
pub fn all(json: bool) {
    let records = parse(&read_proc_procft());
    if json {
        let items: Vec<String> = records.iter().map(record_to_json).collect();
        println!("[{}]", items.join(","));
        return;
    }
    if records.is_empty() {
        println!("no protected processes");
        return;
    }
    println!(
        "{:>8} {:>5} {:>9} {:>9} {:>8} {:>10} {:>11}  REPLICAS",
        "PID", "LEVEL", "DUPS", "FAILOVERS", "RESPAWNS", "MCE_EVENTS", "DIVERGENCES"
    );
    for r in &records {
        let get = |k: &str| {
            r.iter()
                .find(|(key, _)| key == k)
                .map_or("-", |(_, v)| v.as_str())
        };
        println!(
            "{:>8} {:>5} {:>9} {:>9} {:>8} {:>10} {:>11}  {}",
            get("pid"),
            get("level"),
            get("duplicates"),
            get("failovers"),
            get("respawns"),
            get("mce_events"),
            get("divergences"),
            get("replicas")
        );
    }
}

fn replicas(s: &Status) -> Vec<String> {
    let n = (s.nr_replicas as usize).min(s.replicas.len());
    s.replicas[..n].iter().map(|p| p.to_string()).collect()
}

/// `ftctl status PID`.
pub fn print_one(s: &Status, json: bool) {
    let reps = replicas(s);
    if json {
        println!(
            "{{\"pid\":{},\"level\":{},\"replicas\":[{}],\"failovers\":{},\"respawns\":{},\
             \"mce_events\":{},\"divergences\":{}}}",
            s.pid,
            s.level,
            reps.join(","),
            s.failovers,
            s.respawns,
            s.mce_events,
            s.divergences
        );
    } else {
        println!("pid:         {}", s.pid);
        println!("level:       {}", s.level);
        println!("replicas:    {} (primary first)", reps.join(","));
        println!("failovers:   {}", s.failovers);
        println!("respawns:    {}", s.respawns);
        println!("mce_events:  {}", s.mce_events);
        println!("divergences: {}", s.divergences);
    }
}

/// `ftctl info`.
pub fn print_info(i: &Info, json: bool) {
    let proc_entry = i.features & FEAT_PROC_PID_FT_LEVEL != 0;
    let ptrace_check = i.features & FEAT_PTRACE_MAY_ACCESS != 0;
    let hook = i.features & FEAT_SYSCALL_HOOK != 0;
    let takeover = i.features & FEAT_MM_TAKEOVER != 0;
    let tsc = i.features & FEAT_TSC_TRAP != 0;
    let freed = (i.size >= INFO_SIZE_VER2).then_some(i.groups_freed);
    if json {
        println!(
            "{{\"version\":{},\"max_level\":{},\"protected\":{},\"groups_created\":{},\
             \"groups_released\":{},\"groups_freed\":{},\"proc_pid_ft_level\":{},\
             \"ptrace_may_access\":{},\"syscall_hook\":{},\"mm_takeover\":{},\
             \"tsc_trap\":{},\"unprotected_calls\":{}}}",
            i.version,
            i.max_level,
            i.nr_groups,
            i.groups_created,
            i.groups_released,
            freed.map_or("null".to_string(), |n| n.to_string()),
            proc_entry,
            ptrace_check,
            hook,
            takeover,
            tsc,
            i.unprotected_calls
        );
    } else {
        println!("interface version:   {}", i.version);
        println!("maximum level:       {}", i.max_level);
        println!("protected processes: {}", i.nr_groups);
        println!("records created:     {}", i.groups_created);
        println!("records released:    {}", i.groups_released);
        match freed {
            Some(n) => println!("records freed:       {n}"),
            None => println!("records freed:       unknown (module before interface version 2)"),
        }
        println!(
            "/proc/<pid>/ft_level: {}",
            if proc_entry {
                "yes"
            } else {
                "no (kernel lacks the patch)"
            }
        );
        println!(
            "permission check:    {}",
            if ptrace_check {
                "ptrace_may_access (LSMs included)"
            } else {
                "CAP_SYS_PTRACE for other processes (kernel lacks the patch)"
            }
        );
        println!(
            "system calls from:   {}",
            if hook {
                "the kernel's hook (protected processes only)"
            } else {
                "sys_enter/sys_exit tracepoints (every process pays)"
            }
        );
        println!(
            "promotion:           {}",
            if takeover {
                "takes over the duplicate's address space"
            } else {
                "copies the duplicate's pages (kernel lacks replace_mm, or copy_promotion=1)"
            }
        );
        println!(
            "rdtsc/rdtscp:        {}",
            if tsc {
                "trapped; the duplicates replay the primary's counter"
            } else {
                "each replica reads its own (kernel lacks the patch, or trap_tsc=0)"
            }
        );
        println!("unprotected calls:   {}", i.unprotected_calls);
    }
}

/// What `ftctl info` reports of the running kernel when procft is not
/// loaded: enough to tell whether it could be.
pub struct Kernel {
    pub release: String,
    /// The installed procft.ko for this kernel, as modules.dep lists it.
    pub module: Option<String>,
    /// Rust support (CONFIG_RUST): the kernel has its Rust helpers.
    pub rust: bool,
    /// /proc/<pid>/ft_level exists (kernel/patches/0001).
    pub proc_pid_ft_level: bool,
    /// ptrace_may_access() is exported to modules (kernel/patches/0002),
    /// as the kernel's Module.symvers says (None: no build tree to ask).
    pub ptrace_may_access: Option<bool>,
    /// The kernel's per-task system-call hook (kernel/patches/0003):
    /// syscall_hook_register() exists only with it, and it exports it.
    pub syscall_hook: bool,
    /// replace_mm(), for promotion without copying (kernel/patches/0004).
    pub replace_mm: bool,
    /// The hook takes trapped rdtsc/rdtscp (kernel/patches/0005).
    pub tsc_trap: bool,
}

impl Kernel {
    pub fn probe() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_string())
            .unwrap_or_default();
        let deps = std::fs::read_to_string(format!("/lib/modules/{release}/modules.dep"))
            .unwrap_or_default();
        let module = deps
            .lines()
            .filter_map(|l| l.split(':').next())
            .find(|m| {
                let name = m.rsplit('/').next().unwrap_or(m);
                name == "procft.ko" || name.starts_with("procft.ko.")
            })
            .map(|m| format!("/lib/modules/{release}/{m}"));
        let syms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        // /proc/kallsyms lists the export tables only with KALLSYMS_ALL:
        // the build tree's Module.symvers, where DKMS builds, tells.
        let ptrace_may_access =
            std::fs::read_to_string(format!("/lib/modules/{release}/build/Module.symvers"))
                .ok()
                .map(|t| {
                    t.lines()
                        .any(|l| l.split('\t').nth(1) == Some("ptrace_may_access"))
                });
        Kernel {
            module,
            rust: syms.lines().any(|l| {
                l.split(' ')
                    .nth(2)
                    .is_some_and(|s| s.starts_with("rust_helper_"))
            }),
            proc_pid_ft_level: std::path::Path::new("/proc/self/ft_level").exists(),
            ptrace_may_access,
            syscall_hook: syms
                .lines()
                .any(|l| l.split(' ').nth(2) == Some("syscall_hook_register")),
            replace_mm: syms
                .lines()
                .any(|l| l.split(' ').nth(2) == Some("replace_mm")),
            tsc_trap: syms
                .lines()
                .any(|l| l.split(' ').nth(2) == Some("syscall_hook_trap_tsc")),
            release,
        }
    }
}

/// `ftctl info` without the module.
pub fn print_unloaded(k: &Kernel, json: bool) {
    if json {
        let module = k.module.as_deref().map_or("null".to_string(), json_string);
        println!(
            "{{\"loaded\":false,\"kernel\":{},\"installed_module\":{},\"rust\":{},\
             \"proc_pid_ft_level\":{},\"ptrace_may_access\":{},\"syscall_hook\":{},\
             \"replace_mm\":{},\"tsc_trap\":{}}}",
            json_string(&k.release),
            module,
            k.rust,
            k.proc_pid_ft_level,
            k.ptrace_may_access
                .map_or("null".to_string(), |b| b.to_string()),
            k.syscall_hook,
            k.replace_mm,
            k.tsc_trap
        );
        return;
    }
    println!("procft module:       not loaded");
    println!("kernel:              {}", k.release);
    println!(
        "installed module:    {}",
        k.module
            .as_deref()
            .unwrap_or("none for this kernel (see dkms.conf)")
    );
    println!(
        "Rust support:        {}",
        if k.rust {
            "yes"
        } else {
            "not seen (CONFIG_RUST=y is needed; /proc/kallsyms may be hidden)"
        }
    );
    println!(
        "/proc/<pid>/ft_level: {}",
        if k.proc_pid_ft_level {
            "yes"
        } else {
            "no (kernel lacks the patch)"
        }
    );
    println!(
        "ptrace_may_access:   {}",
        match k.ptrace_may_access {
            Some(true) => "exported (permission follows ptrace-attach rules)",
            Some(false) => {
                "not exported (kernel lacks the patch: other processes need CAP_SYS_PTRACE)"
            }
            None => "unknown (no build tree with Module.symvers)",
        }
    );
    println!(
        "system-call hook:    {}",
        if k.syscall_hook {
            "yes (only protected processes pay for procft)"
        } else {
            "no (kernel lacks the patch: procft takes every process's calls from tracepoints)"
        }
    );
    println!(
        "replace_mm:          {}",
        if k.replace_mm {
            "yes (a promotion takes over the duplicate's address space)"
        } else {
            "no (kernel lacks the patch: a promotion copies the duplicate's pages)"
        }
    );
    println!(
        "rdtsc trapping:      {}",
        if k.tsc_trap {
            "yes (the duplicates can replay the primary's counter reads)"
        } else {
            "no (kernel lacks the patch: each replica reads its own counter)"
        }
    );
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{} {}", self.name, labels, value);
        }
    }
}

/// The metrics of /proc/procft's `records` and the module's `info`, in the
/// Prometheus text exposition format (version 0.0.4).
pub fn metrics(records: &[Record], info: &Info, comm: impl Fn(&str) -> Option<String>) -> String {
    // Per process: (metric, type, help, /proc/procft field).
    const PER_PROCESS: [(&str, &str, &str, &str); 6] = [
        (
            "procft_level",
            "gauge",
            "Fault-tolerance level of a protected process (duplicates wanted).",
            "level",
        ),
        (
            "procft_duplicates_ready",
            "gauge",
            "Duplicates of a protected process running in step with it.",
            "duplicates",
        ),
        (
            "procft_failovers_total",
            "counter",
            "Primaries of a protected process replaced by a duplicate.",
            "failovers",
        ),
        (
            "procft_respawns_total",
            "counter",
            "Duplicates created for a protected process to restore its level.",
            "respawns",
        ),
        (
            "procft_memory_errors_total",
            "counter",
            "Memory errors (machine checks, memory_failure()) that hit a replica of a protected process.",
            "mce_events",
        ),
        (
            "procft_divergences_total",
            "counter",
            "Replicas of a protected process found to disagree with the others.",
            "divergences",
        ),
    ];
    let field = |r: &'_ Record, k: &str| -> Option<String> {
        r.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    // Each process's labels, once (its comm is read from /proc).
    let labels: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            field(r, "pid").map(|pid| match comm(&pid) {
                Some(c) => format!("{{pid=\"{}\",comm=\"{}\"}}", label(&pid), label(&c)),
                None => format!("{{pid=\"{}\"}}", label(&pid)),
            })
        })
        .collect();
    let mut families = Vec::new();
    for (name, kind, help, key) in PER_PROCESS {
        let mut f = Family::new(name, kind, help);
        for (r, l) in records.iter().zip(&labels) {
            let (Some(l), Some(v)) = (l, field(r, key)) else {
                continue;
            };
            // `duplicates` reads ready/wanted.
            let v = v.split('/').next().unwrap_or(&v).to_string();
            f.samples.push((l.clone(), v));
        }
        families.push(f);
    }
    let module: [(&'static str, &'static str, &'static str, u64); 4] = [
        (
            "procft_protected_processes",
            "gauge",
            "Processes procft protects now.",
            info.nr_groups.into(),
        ),
        (
            "procft_protections_started_total",
            "counter",
            "Protected-process records created since the module was loaded.",
            info.groups_created,
        ),
        (
            "procft_protections_ended_total",
            "counter",
            "Protected-process records released since the module was loaded.",
            info.groups_released,
        ),
        (
            "procft_max_level",
            "gauge",
            "Highest fault-tolerance level the module accepts.",
            info.max_level.into(),
        ),
    ];
    for (name, kind, help, v) in module {
        let mut f = Family::new(name, kind, help);
        f.samples.push((String::new(), v.to_string()));
        families.push(f);
    }
    let mut f = Family::new(
        "procft_info",
        "gauge",
        "The procft module: interface version and kernel features (the value is always 1).",
    );
    f.samples.push((
        format!(
            "{{version=\"{}\",proc_pid_ft_level=\"{}\",ptrace_may_access=\"{}\"}}",
            info.version,
            u8::from(info.features & FEAT_PROC_PID_FT_LEVEL != 0),
            u8::from(info.features & FEAT_PTRACE_MAY_ACCESS != 0)
        ),
        "1".to_string(),
    ));
    families.push(f);
    let mut out = String::new();
    for f in &families {
        f.write(&mut out);
    }
    out
}

/// `ftctl status --prometheus`.
pub fn prometheus(info: &Info) {
    let records = parse(&read_proc_procft());
    let comm = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim_end_matches('\n').to_string())
    };
    print!("{}", metrics(&records, info, comm));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_procft_lines() {
        let recs = parse(
            "pid=10 level=2 replicas=10,11,12 duplicates=2/2 failovers=0 respawns=1 \
             mce_events=0 divergences=0\n\n",
        );
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0][0], ("pid".to_string(), "10".to_string()));
        assert_eq!(
            record_to_json(&recs[0]),
            "{\"pid\":10,\"level\":2,\"replicas\":[10,11,12],\"duplicates\":\"2/2\",\
             \"failovers\":0,\"respawns\":1,\"mce_events\":0,\"divergences\":0}"
        );
    }

    #[test]
    fn prometheus_exposition() {
        let recs = parse(
            "pid=10 level=2 replicas=10,11,12 duplicates=1/2 failovers=3 respawns=4 \
             mce_events=5 divergences=6 lag=0\n",
        );
        let info = Info {
            version: 1,
            max_level: 4,
            nr_groups: 1,
            groups_created: 7,
            groups_released: 6,
            features: FEAT_PROC_PID_FT_LEVEL,
            ..Default::default()
        };
        let text = metrics(&recs, &info, |_| Some("a\"b".to_string()));
        for want in [
            "# TYPE procft_level gauge\nprocft_level{pid=\"10\",comm=\"a\\\"b\"} 2\n",
            "procft_duplicates_ready{pid=\"10\",comm=\"a\\\"b\"} 1\n",
            "# TYPE procft_failovers_total counter\n",
            "procft_divergences_total{pid=\"10\",comm=\"a\\\"b\"} 6\n",
            "procft_protections_started_total 7\n",
            "procft_info{version=\"1\",proc_pid_ft_level=\"1\",ptrace_may_access=\"0\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // Every family has HELP and TYPE; counters end in _total.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut w = line.split(' ').skip(2);
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
            assert!(text.contains(&format!("# HELP {name} ")));
        }
    }
}

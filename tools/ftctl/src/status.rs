// SPDX-License-Identifier: GPL-2.0
//! Printing group status, as text or JSON.

use std::process::exit;

use crate::uapi::{
    Info, Status, FEAT_PROC_PID_FT_LEVEL, FEAT_PTRACE_MAY_ACCESS, FEAT_SYSCALL_HOOK,
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
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
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

/// `ftctl status`: every protected process.
pub fn all(json: bool) {
    let text = match std::fs::read_to_string("/proc/procft") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ftctl: /proc/procft: {e} (is the procft module loaded?)");
            exit(3)
        }
    };
    let records = parse(&text);
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
    if json {
        println!(
            "{{\"version\":{},\"max_level\":{},\"protected\":{},\"groups_created\":{},\
             \"groups_released\":{},\"proc_pid_ft_level\":{},\"ptrace_may_access\":{},\
             \"syscall_hook\":{},\"unprotected_calls\":{}}}",
            i.version,
            i.max_level,
            i.nr_groups,
            i.groups_created,
            i.groups_released,
            proc_entry,
            ptrace_check,
            hook,
            i.unprotected_calls
        );
    } else {
        println!("interface version:   {}", i.version);
        println!("maximum level:       {}", i.max_level);
        println!("protected processes: {}", i.nr_groups);
        println!("records created:     {}", i.groups_created);
        println!("records released:    {}", i.groups_released);
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
        println!("unprotected calls:   {}", i.unprotected_calls);
    }
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
}

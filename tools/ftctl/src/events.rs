// SPDX-License-Identifier: GPL-2.0
//! `ftctl events`: the module's event log, read from /dev/procft, as the
//! module writes it (one `key=value` line per event) or as JSON lines.

use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::exit;

use crate::{opened, uapi, EXIT_FAIL};

/// Splits one event line into its fields. Values are single tokens, or
/// double-quoted prose (`why="..."`) that may hold spaces.
pub fn fields(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = line.trim_end();
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => match after.find(' ') {
                Some(sp) => (&after[..sp], &after[sp..]),
                None => (after, ""),
            },
        };
        out.push((key, value));
        rest = next;
    }
    out
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `v` can be written as a JSON number as it is: decimal digits,
/// with at most one fraction (the `time` field, seconds.microseconds).
fn is_number(v: &str) -> bool {
    let (int, frac) = v.split_once('.').unwrap_or((v, "0"));
    let int = int.strip_prefix('-').unwrap_or(int);
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
}

/// One event line as a JSON object: decimal values as numbers, the rest
/// (hexadecimal frames and addresses, names, prose) as strings.
pub fn to_json(line: &str) -> String {
    let parts: Vec<String> = fields(line)
        .iter()
        .map(|(k, v)| {
            let value = if is_number(v) {
                v.to_string()
            } else {
                json_string(v)
            };
            format!("{}:{}", json_string(k), value)
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Copies the event log to stdout; with `follow`, waits for more.
pub fn run(follow: bool, json: bool) -> ! {
    const O_NONBLOCK: i32 = 0o4000;
    let mut f = opened(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(if follow { 0 } else { O_NONBLOCK })
            .open(uapi::DEVICE),
    );
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes of a line not yet complete (the module returns whole lines,
    // but a reader must not depend on it).
    let mut partial = Vec::new();
    let mut out = io::stdout().lock();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => exit(0),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => exit(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ftctl: {}: {e}", uapi::DEVICE);
                exit(EXIT_FAIL)
            }
        };
        let written = if json {
            partial.extend_from_slice(&buf[..n]);
            let end = partial
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let mut text = String::new();
            for line in String::from_utf8_lossy(&partial[..end]).lines() {
                if !line.trim().is_empty() {
                    text.push_str(&to_json(line));
                    text.push('\n');
                }
            }
            partial.drain(..end);
            out.write_all(text.as_bytes())
        } else {
            out.write_all(&buf[..n])
        };
        if written.and_then(|_| out.flush()).is_err() {
            exit(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_become_json_objects() {
        assert_eq!(
            to_json("seq=3 time=12.000450 pid=77 event=memory_error replica=78 role=duplicate frame=0x1a2b3"),
            "{\"seq\":3,\"time\":12.000450,\"pid\":77,\"event\":\"memory_error\",\
             \"replica\":78,\"role\":\"duplicate\",\"frame\":\"0x1a2b3\"}"
        );
        assert_eq!(
            to_json("seq=9 time=1.000000 pid=5 event=protection_ended why=\"a \\ b\"\n"),
            "{\"seq\":9,\"time\":1.000000,\"pid\":5,\"event\":\"protection_ended\",\
             \"why\":\"a \\\\ b\"}"
        );
        assert_eq!(to_json("lost=12"), "{\"lost\":12}");
        assert_eq!(
            to_json("seq=1 time=0.5 pid=2 event=x v=007 w=-"),
            "{\"seq\":1,\"time\":0.5,\"pid\":2,\"event\":\"x\",\"v\":\"007\",\"w\":\"-\"}"
        );
    }

    #[test]
    fn quoted_values_keep_their_spaces() {
        let f = fields("pid=1 event=protection_ended why=\"the process exec'd a set-id program\"");
        assert_eq!(f[2], ("why", "the process exec'd a set-id program"));
        assert_eq!(f.len(), 3);
    }
}

// SPDX-License-Identifier: GPL-2.0
//! ftctl-gen: writes ftctl's man pages (ftctl(8), and ftctl-COMMAND(8) for
//! each command) and its shell completions from the command-line
//! definition in cli.rs, so that they cannot drift from what ftctl
//! accepts. A build tool: scripts/build-ftctl.sh runs it on the host.
//!
//! Usage: ftctl-gen MANDIR COMPLETIONDIR

#[path = "cli.rs"]
#[allow(dead_code)]
mod cli;

use std::path::Path;
use std::process::exit;

use clap::CommandFactory;
use clap_complete::Shell;

/// One page: clap_mangen's sections, with the exit status and references
/// to the other pages at the end.
fn man_page(cmd: clap::Command, dir: &Path, see_also: &[String]) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual")
        .source(concat!("procft ", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().next().is_some() {
        man.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    page.extend_from_slice(
        b".SH \"EXIT STATUS\"\n0 on success, 1 when the kernel refused or failed the request, \
          2 on a usage error, 3 when procft is not loaded;\n.B ftctl run\nexits 126 or 127 \
          like a shell when its command cannot be executed.\n.SH \"SEE ALSO\"\n",
    );
    let refs: Vec<String> = see_also.iter().map(|r| format!(".BR {r} (8),")).collect();
    page.extend_from_slice(refs.join("\n").as_bytes());
    page.extend_from_slice(b"\n.BR procft (4)\n");
    std::fs::write(dir.join(man.get_filename()), page)
}

fn man_pages(dir: &Path) -> std::io::Result<()> {
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    for sub in &subs {
        man_page(sub.clone(), dir, &["ftctl".to_string()])?;
    }
    let names: Vec<String> = subs
        .iter()
        .map(|s| format!("ftctl-{}", s.get_name()))
        .collect();
    man_page(cmd, dir, &names)
}

fn completions(dir: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli::Cli::command(), "ftctl", dir)?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [man, comp] = args.as_slice() else {
        eprintln!("usage: ftctl-gen MANDIR COMPLETIONDIR");
        exit(2)
    };
    for (dir, f) in [
        (man, man_pages as fn(&Path) -> std::io::Result<()>),
        (comp, completions),
    ] {
        let dir = Path::new(dir);
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| f(dir)) {
            eprintln!("ftctl-gen: {}: {e}", dir.display());
            exit(1)
        }
    }
}

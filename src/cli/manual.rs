//! Documents generated from the one clap definition in `cli.rs`: shell completion
//! scripts (clap_complete) and the manual page (clap_mangen). Nothing here describes a
//! flag by hand, so they cannot drift from `--help`.

use super::Cli;
use clap::CommandFactory;
use std::io;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "p2pshare", &mut out);
    out
}

/// One roff page for the whole program: the top-level description and global options,
/// then a section per command with its synopsis and options (so `man p2pshare` answers
/// without a page per command), then configuration.
pub fn man_page() -> String {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut page = Page::default();
    page.add(|w| top.render_title(w));
    page.add(|w| top.render_name_section(w));
    page.add(|w| top.render_synopsis_section(w));
    page.add(|w| top.render_description_section(w));
    page.add(|w| top.render_options_section(w));
    for sub in cmd.get_subcommands() {
        command_sections(sub, &mut page);
    }
    page.add(|w| top.render_extra_section(w));
    page.add(|w| top.render_version_section(w));
    page.text.replace(".SH EXTRA\n", ".SH CONFIGURATION\n")
}

/// Roff text assembled from clap_mangen's sections. Each section it renders opens with
/// the same two-line preamble (the string `Aq`, an apostrophe); the page keeps one copy,
/// right after the `.TH` title, so the page starts with its title.
#[derive(Default)]
struct Page {
    text: String,
    preamble: Option<String>,
}

impl Page {
    fn add(&mut self, render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) {
        let mut out = Vec::new();
        render(&mut out).expect("writing to memory does not fail");
        let out = String::from_utf8_lossy(&out);
        let mut lines = out.lines().peekable();
        let mut preamble = String::new();
        while let Some(line) = lines.next_if(|l| l.starts_with(".ie ") || l.starts_with(".el ")) {
            preamble.push_str(line);
            preamble.push('\n');
        }
        let body: String = lines.map(|l| format!("{l}\n")).collect();
        self.text.push_str(&body);
        if self.preamble.is_none() {
            self.text.push_str(&preamble);
            self.preamble = Some(preamble);
        }
    }
}

/// A `.SH` section per leaf command (`P2PSHARE PEER`, `P2PSHARE BENCH OVERLAY`), made
/// of clap_mangen's own sections demoted to `.SS`.
fn command_sections(cmd: &clap::Command, page: &mut Page) {
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            command_sections(sub, page);
        }
        return;
    }
    let title = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_uppercase();
    page.text.push_str(&format!(".SH \"{title}\"\n"));
    let man = clap_mangen::Man::new(cmd.clone());
    let start = page.text.len();
    page.add(|w| man.render_synopsis_section(w));
    page.add(|w| man.render_description_section(w));
    page.add(|w| man.render_options_section(w));
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        page.add(|w| man.render_extra_section(w));
    }
    let demoted = page.text[start..]
        .replace(".SH EXTRA\n", ".SS NOTES\n")
        .replace(".SH ", ".SS ");
    page.text.truncate(start);
    page.text.push_str(&demoted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_has_a_section_for_every_command_and_flag() {
        let page = man_page();
        assert!(page.starts_with(".TH p2pshare 1"), "{}", &page[..80]);
        assert_eq!(
            page.matches(".ds Aq").count(),
            2,
            "one preamble (.ie and .el)"
        );
        for section in ["P2PSHARE PEER", "P2PSHARE GET", "P2PSHARE BENCH OVERLAY"] {
            assert!(page.contains(section), "no section {section}");
        }
        for flag in ["max\\-sources", "liveness", "verbose", "config"] {
            assert!(page.contains(flag), "no flag {flag}");
        }
        assert!(page.contains(".SH CONFIGURATION"));
        assert!(page.contains(".SS NOTES"), "get's note on Ctrl-C");
    }

    #[test]
    fn completions_know_the_commands_and_their_flags() {
        let bash = String::from_utf8(completions(clap_complete::Shell::Bash)).unwrap();
        for word in [
            "peer",
            "bench",
            "--max-sources",
            "--liveness",
            "swim",
            "--config",
        ] {
            assert!(bash.contains(word), "bash completion lacks {word}");
        }
    }
}

//! The manual pages, generated from the same clap definitions as `--help`
//! and the shell completions, so the three never disagree.
//!
//! `kbridge manpages DIR` writes `kbridge.1` and one page per subcommand,
//! named as git names its own (`kbridge-topics.1`, `kbridge-topics-create.1`);
//! `scripts/package.sh` runs it for the Debian package. The top page also
//! gets the sections a man page reader looks for and clap knows nothing of:
//! the environment, the files, the exit status.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;

/// Sections appended to kbridge(1), in roff.
const TOP_PAGE_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBKBRIDGE_BROKERS\fR
Bootstrap brokers when \fB\-b\fR is not given.
.TP
\fBKBRIDGE_CONFIG\fR
The relay's configuration file when \fB\-\-config\fR is not given.
.TP
\fBKBRIDGE_\fIKEY\fR, \fBKBRIDGE_\fISECTION\fB__\fIKEY\fR
Any key of the relay's configuration (\fBKBRIDGE_GROUP\fR, \fBKBRIDGE_WEBHOOK__URL\fR);
flags win over the environment, which wins over the file.
.TP
\fBKBRIDGE_LOG\fR
Log filter of the relay, in tracing's syntax (\fBinfo\fR, \fBkbridge=debug\fR).
.SH FILES
.TP
\fI/etc/kbridge/kbridge.toml\fR
The relay's configuration, as installed by the package (mode 0640, root:kbridge).
.TP
\fI/etc/kbridge/env\fR
Optional environment for the systemd unit (secrets such as \fBOPS_API_TOKEN\fR).
.TP
\fI/usr/lib/systemd/system/kbridge.service\fR
The systemd unit: \fBsystemctl enable \-\-now kbridge\fR, \fBjournalctl \-u kbridge\fR.
.TP
\fI/usr/share/doc/kbridge/\fR
The README (configuration, routes, reliability, security), the changelog and example pipelines.
.SH EXIT STATUS
.TP
\fB0\fR
Success; for \fBrun\fR, a clean stop after SIGTERM or SIGINT.
.TP
\fB1\fR
A failure: the cluster could not be reached, credentials were refused, a record could not be
written. The message says what to do next.
.TP
\fB2\fR
A usage or configuration mistake (systemd does not restart the relay on it).
.SH SEE ALSO
\fBkcat\fR(1), \fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5)
"#;

/// Writes every page into `dir` and returns their paths, kbridge(1) first.
pub(super) fn write_pages(cli: Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    // `help` is clap's, and a page of its own would only say "see kbridge(1)".
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut pages = Vec::new();
    write_tree(cli, dir, true, &mut pages)?;
    Ok(pages)
}

fn write_tree(cmd: Command, dir: &Path, top: bool, pages: &mut Vec<PathBuf>) -> Result<()> {
    // A man page's VERSION section is the version alone: the long version
    // describes the machine that built the pages, not the one reading them.
    let cmd = cmd.long_version(None);
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("kbridge manual")
        .source(format!("kbridge {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&path)?);
        man.render(&mut out)?;
        if top {
            out.write_all(TOP_PAGE_EXTRA.as_bytes())?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    pages.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub.clone(), dir, false, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn one_page_per_command_named_like_git_s() {
        let dir = std::env::temp_dir().join(format!("kbridge-man-{}", std::process::id()));
        let pages = write_pages(crate::cli::Cli::command(), &dir).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names[0], "kbridge.1");
        for name in [
            "kbridge-run.1",
            "kbridge-topics.1",
            "kbridge-topics-create.1",
            "kbridge-groups-reset-offsets.1",
            "kbridge-manpages.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

        let top = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(top.contains(".SH EXIT STATUS"));
        assert!(
            top.contains("kbridge\\-run(1)"),
            "subcommands are cross-referenced"
        );
        let run = std::fs::read_to_string(dir.join("kbridge-run.1")).unwrap();
        assert!(run.contains("\\-\\-config"), "options are documented");
        assert!(
            !run.contains("builtin.features"),
            "no build facts in the VERSION section"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

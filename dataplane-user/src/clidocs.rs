//! Shell completions and man pages, generated from the CLI's own clap
//! definitions so that they cannot drift from it. `cargo xtask package`
//! runs `dataplane generate-docs DIR` on the binary it packages.

use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Writes `DIR/completions/{dataplane.bash,_dataplane,dataplane.fish}` and
/// `DIR/man/dataplane.1` with one page per subcommand
/// (`dataplane-show-ports.1`, …; hidden commands get none).
pub fn write(cmd: clap::Command, dir: &Path) -> Result<()> {
    // `help` as a subcommand would get pages of its own at every level.
    let mut cmd = without_help_subcommands(cmd);
    let completions = dir.join("completions");
    let man = dir.join("man");
    for d in [&completions, &man] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    clap_mangen::generate_to(cmd, &man).context("writing man pages")?;
    Ok(())
}

fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommands)
}

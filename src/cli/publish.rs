//! `rmmsim publish`: a build into a downloads folder, as a release pipeline
//! puts it there (U8).

use std::process::ExitCode;

use anyhow::Context;

use super::{DigestArg, PublishArgs};
use crate::server::publish::{self, Content, DigestMode, Publication};

/// Writes the build, its `.sha256` and its `.channel`, and says what it wrote.
pub fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.downloads)
        .with_context(|| format!("creating downloads folder {}", args.downloads.display()))?;
    let publication = Publication {
        version: args.version,
        platform: args.platform,
        content: match args.file {
            Some(path) => Content::File(path),
            None => Content::Synthetic(args.size.as_u64()),
        },
        channel: args.channel,
        digest: match args.digest {
            DigestArg::Correct => DigestMode::Correct,
            DigestArg::Corrupt => DigestMode::Corrupt,
            DigestArg::Missing => DigestMode::Missing,
        },
        overwrite: args.force,
    };
    let out = publish::publish(&args.downloads, &publication)?;
    println!(
        "published {} ({}, {}) into {}",
        out.file,
        bytesize::ByteSize(out.size).display().iec(),
        args.channel,
        args.downloads.display()
    );
    match &out.sha256 {
        Some(d) => println!("  sha256 {d}"),
        None => println!("  no .sha256 written: the scanner will skip this build"),
    }
    Ok(ExitCode::SUCCESS)
}

//! The `gateway` command line: argument definitions and dispatch. Each command lives in its
//! own module; they all print results to stdout and diagnostics to stderr.

pub mod archive;
pub mod args;
pub mod check;
pub mod common;
pub mod data;
pub mod deliveries;
pub mod demo;
pub mod demo_oversight;
pub mod demo_peers;
pub mod joint;
pub mod mappings;
pub mod normalize;
pub mod officers;
pub mod run;
pub mod sources;
pub mod suggest;
pub mod template;
pub mod token;

pub use args::*;

use std::process::ExitCode;

/// Run an async command.
pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate { config } => data::migrate(&config).await,
        Command::Ingest {
            config,
            source,
            format,
            reading,
            files,
            quiet,
        } => data::ingest(&config, &source, format, reading, files, quiet).await,
        Command::Export {
            what,
            config,
            source,
            format,
            personal_data,
        } => data::export(&config, what, source, format, personal_data).await,
        Command::Replay {
            config,
            id,
            source,
            rule,
        } => data::replay_entries(&config, id, source, rule).await,
        Command::Ignore { config, id, reason } => data::ignore(&config, id, &reason).await,
        Command::Run { config, once } => run::run(&config, once).await,
        Command::Demo { dir, listen, exit } => demo::run(dir, &listen, exit).await,
        Command::Probe { url, timeout_seconds } => probe(&url, timeout_seconds).await,
        Command::Deliveries { action } => deliveries::run(action).await,
        Command::Mappings { action } => mappings::run(action).await,
        Command::Officers { action } => officers::run(action).await,
        Command::Sources { action } => sources::run(action).await,
        Command::Joint {
            action: JointAction::Rebuild { config },
        } => joint::rebuild(&config).await,
        Command::Joint {
            action: JointAction::Drain { config },
        } => joint::drain(&config).await,
        Command::Archive { action } => archive::run(action).await,
        Command::PersonalData { action } => match action {
            args::PersonalDataAction::Keygen { cipher, out } => archive::personal_keygen(&cipher, &out),
            args::PersonalDataAction::Rekey { config, batch } => archive::personal_rekey(&config, batch).await,
        },
        Command::Check { .. }
        | Command::Normalize { .. }
        | Command::Config { .. }
        | Command::Token { .. }
        | Command::Template { .. } => {
            anyhow::bail!("not an async command")
        }
    }
}

/// `gateway probe URL`: exit 0 when the URL answers 2xx within the timeout.
async fn probe(url: &str, timeout_seconds: u64) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_seconds.max(1)))
        .build()?;
    match client.get(url).send().await {
        Ok(answer) if answer.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(answer) => {
            eprintln!("{url}: {}", answer.status());
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

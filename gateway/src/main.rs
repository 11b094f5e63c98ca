//! The `gateway` binary: parses the command line, sets up logging, runs the command.

use clap::Parser;
use gateway::cli::{self, Cli, Command, ConfigAction, MappingsAction, TemplateAction, TokenAction};
use std::process::ExitCode;

/// mimalloc: the pipeline allocates many small JSON values per record; glibc malloc spent a
/// quarter of the ingest CPU time in consolidation (perf, 20k-record ingest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    gateway::allocator::keep_freed_memory_for_reuse();
    let args = Cli::parse();
    init_logging(&args.log, args.log_json);
    let result = match args.command {
        Command::Check {
            kind,
            values,
            json,
            current,
        } => return cli::check::run(kind, values, json, current),
        Command::Normalize {
            mapping,
            input,
            format,
            reading,
            xml_records,
            province,
            catalogue,
            officers,
            officer_severity,
        } => cli::normalize::rule_options(province, catalogue.as_deref(), officers.as_deref(), &officer_severity)
            .and_then(|rules| {
                cli::normalize::run(
                    &mapping,
                    input.as_deref(),
                    format.as_deref(),
                    &reading,
                    xml_records.as_deref(),
                    rules,
                )
            }),
        Command::Mappings {
            action: MappingsAction::Test { paths, config },
        } => cli::mappings::test(&paths, config.as_deref()),
        Command::Mappings {
            action: MappingsAction::Suggest(args),
        } => cli::suggest::run(&args),
        Command::Config {
            action: ConfigAction::Check { file, connect },
        } => cli::data::config_check(&file, connect),
        Command::Template {
            action:
                TemplateAction::Xlsx {
                    case_type,
                    mapping,
                    output,
                    mapping_out,
                },
        } => cli::template::run(&case_type, mapping.as_deref(), &output, mapping_out.as_deref()),
        Command::Token {
            action:
                TokenAction::New {
                    name,
                    role,
                    sources,
                    config,
                },
        } => cli::token::new(&name, &role, &sources, config.as_deref()),
        other => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(cli::dispatch(other)),
            Err(e) => Err(anyhow::anyhow!("cannot start the runtime: {e}")),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("错误 / error: {e:#}");
            ExitCode::from(2)
        }
    }
}

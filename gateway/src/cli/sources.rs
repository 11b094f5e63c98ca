//! `gateway sources from-wsdl`: read a WSDL 1.1 (URL or file, with its imports) and print a
//! proposed `[[sources]]` block of kind `soap` with its request envelope template (see
//! [`adapters::sources::wsdl`]).

use adapters::sources::wsdl::{self, WsdlLimits};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// `gateway sources` actions.
#[derive(Debug, Subcommand)]
pub enum SourcesAction {
    /// Propose a SOAP pull source from a WSDL 1.1: lists the operations and prints a `[[sources]]`
    /// block (endpoint, SOAP version, action, request template with the input element's
    /// children as placeholders, `records_path` of the repeating element of the answer).
    /// See docs/from-wsdl.md. Example:
    ///
    ///   gateway sources from-wsdl http://10.36.1.20:8080/hbzf/services/CaseService?wsdl --operation queryCases -o soap
    FromWsdl {
        /// The WSDL: an http(s) URL or a file.
        location: String,
        /// The operation (default: the first whose name reads like a query, else the only one).
        #[arg(long)]
        operation: Option<String>,
        /// Write the request template into this folder as `OPERATION.xml` (the block then
        /// names it) instead of inline in the block.
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// The source's `id` (default: the operation's name in lower case with `-`).
        #[arg(long)]
        id: Option<String>,
    },
}

/// The source id for an operation name: `queryCases` → `query-cases`.
fn id_for(operation: &str) -> String {
    let mut id = String::new();
    for (i, c) in operation.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            id.push('-');
        }
        if c.is_alphanumeric() {
            id.extend(c.to_lowercase());
        } else {
            id.push('-');
        }
    }
    id
}

/// Run the command: exit 0 with a proposal, 2 when the WSDL cannot be read.
pub async fn run(action: SourcesAction) -> anyhow::Result<ExitCode> {
    let SourcesAction::FromWsdl {
        location,
        operation,
        out,
        id,
    } = action;
    let service = wsdl::load(&location, &WsdlLimits::default()).await?;
    let op = service.pick(operation.as_deref())?;
    println!("# WSDL {location}");
    println!("# 操作 / operations:");
    for o in &service.operations {
        let params: Vec<String> = o
            .input
            .as_ref()
            .map(|i| i.children.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        println!(
            "#   {} (port {}, SOAP {}, {}){}  ({})",
            o.name,
            o.port,
            o.soap_version,
            o.style,
            if std::ptr::eq(o, op) {
                "  ← 提议 / proposed"
            } else {
                ""
            },
            params.join(", ")
        );
    }
    println!();
    let id = id.unwrap_or_else(|| id_for(&op.name));
    let proposal = match &out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("-o {}", dir.display()))?;
            let file = dir.join(format!("{}.xml", op.name));
            let shown = file.display().to_string();
            let p = op.propose(&id, Some(&shown));
            std::fs::write(&file, &p.template).with_context(|| shown.clone())?;
            eprintln!("已写入 / written: {shown}");
            p
        }
        None => op.propose(&id, None),
    };
    print!("{}", proposal.toml);
    if proposal.records_path.is_none() {
        eprintln!("注意：响应中没有找到重复的记录元素，请填写 records_path / note: no repeating record element found in the answer: fill in records_path");
    }
    Ok(ExitCode::SUCCESS)
}

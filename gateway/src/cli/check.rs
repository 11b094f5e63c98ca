//! `gateway check`: validate identifiers from arguments or standard input, one result line each.

use super::args::CheckKind;
use normalizer::standards::case_code::CaseCode;
use normalizer::standards::credit_code::CreditCode;
use normalizer::standards::id_number::ResidentId;
use normalizer::standards::region::RegionTable;
use normalizer::standards::StandardError;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

fn check_one(kind: CheckKind, value: &str, current: bool) -> Result<String, StandardError> {
    match kind {
        CheckKind::Uscc => CreditCode::parse(value).map(|c| c.as_str().to_string()),
        CheckKind::IdNumber => ResidentId::parse(value).map(|c| c.as_str().to_string()),
        CheckKind::Region => RegionTable::embedded().validate(value, current).map(str::to_string),
        CheckKind::CaseCode => CaseCode::parse(value).map(|c| c.format()),
    }
}

/// One `--json` line for a valid value (fields in alphabetical order, as before).
#[derive(serde::Serialize)]
struct ValidLine<'a> {
    normalised: &'a str,
    valid: bool,
    value: &'a str,
}

/// One `--json` line for an invalid value.
#[derive(serde::Serialize)]
struct InvalidLine<'a> {
    message_en: &'a str,
    message_zh: &'a str,
    position: Option<usize>,
    rule: &'a str,
    valid: bool,
    value: &'a str,
}

fn write_result(
    out: &mut impl Write,
    value: &str,
    result: &Result<String, StandardError>,
    json: bool,
) -> std::io::Result<()> {
    match (result, json) {
        (Ok(normalised), false) => writeln!(out, "{value}\tvalid\t{normalised}"),
        (Err(e), false) => writeln!(out, "{value}\tinvalid\t{}\t{} / {}", e.rule, e.message_zh, e.message_en),
        (Ok(normalised), true) => {
            serde_json::to_writer(
                &mut *out,
                &ValidLine {
                    normalised,
                    valid: true,
                    value,
                },
            )?;
            writeln!(out)
        }
        (Err(e), true) => {
            let line = InvalidLine {
                message_en: &e.message_en,
                message_zh: &e.message_zh,
                position: e.position,
                rule: e.rule,
                valid: false,
                value,
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)
        }
    }
}

/// Run the command; exit 0 when all values are valid, 1 when any is invalid, 2 on I/O errors.
pub fn run(kind: CheckKind, values: Vec<String>, json: bool, current: bool) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut any_invalid = false;
    let mut handle = |value: &str, out: &mut BufWriter<std::io::StdoutLock<'_>>| -> std::io::Result<()> {
        let result = check_one(kind, value, current);
        any_invalid |= result.is_err();
        write_result(out, value, &result, json)
    };
    let io_result = if values.is_empty() {
        let stdin = std::io::stdin();
        let mut input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
        let mut line = String::new();
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    let value = line.trim_end_matches(['\n', '\r']);
                    if let Err(e) = handle(value, &mut out) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        }
    } else {
        values.iter().try_for_each(|v| handle(v, &mut out))
    };
    let io_result = io_result.and_then(|_| out.flush());
    match io_result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(if any_invalid { 1 } else { 0 }),
        Err(e) => {
            eprintln!("错误 / error: {e}");
            ExitCode::from(2)
        }
        Ok(()) if any_invalid => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
    }
}

//! Every example in the README and the guides under `docs/` is checked as it is written:
//! - every `toml` block parses as TOML (`toml lines`: each line on its own);
//! - blocks marked `toml config` pass the gateway's configuration check (paths relative to the
//!   repository root, every `*_env` variable they name set to a stand-in value);
//! - blocks marked `toml mapping` load as mapping files (`toml mapping base=DIR`: code tables and
//!   fragments read from DIR);
//! - every `gateway …` command line in `sh` blocks parses with the command line's own definition.

use clap::Parser;
use gateway::cli::Cli;
use gateway::config::Config;
use normalizer::mapping::Mapping;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One fenced block of a Markdown file.
struct Block {
    place: String,
    info: Vec<String>,
    text: String,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(repo()).unwrap_or(&file).display().to_string();
        let mut open: Option<(usize, Vec<String>, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if let Some(info) = trimmed.strip_prefix("```") {
                match open.take() {
                    None => {
                        let info = info.split_whitespace().map(str::to_string).collect();
                        open = Some((i + 1, info, String::new()));
                    }
                    Some((start, info, body)) => out.push(Block {
                        place: format!("{name}:{start}"),
                        info,
                        text: body,
                    }),
                }
            } else if let Some((_, _, body)) = open.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        assert!(open.is_none(), "{name}: a fenced block is not closed");
    }
    out
}

fn is(block: &Block, lang: &str, mark: Option<&str>) -> bool {
    block.info.first().map(String::as_str) == Some(lang)
        && mark.is_none_or(|m| block.info.iter().skip(1).any(|w| w == m))
}

#[test]
fn every_toml_example_in_the_docs_is_valid_toml() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks().iter().filter(|b| is(b, "toml", None)) {
        checked += 1;
        // `toml lines`: alternatives, one per line (`when = ...` written several ways).
        let parts: Vec<&str> = if block.info.iter().any(|w| w == "lines") {
            block.text.lines().filter(|l| !l.trim().is_empty()).collect()
        } else {
            vec![block.text.as_str()]
        };
        for part in parts {
            if let Err(e) = part.parse::<toml::Table>() {
                failures.push(format!("{}: {e}", block.place));
            }
        }
    }
    assert!(checked > 25, "toml blocks found: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The names of the environment variables a configuration reads (`url_env = "X"` and the like).
fn env_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("_env") {
            let after = &rest[at + 4..];
            let after = after.trim_start();
            if let Some(value) = after.strip_prefix('=') {
                let value = value.trim_start();
                if let Some(quoted) = value.strip_prefix('"') {
                    if let Some(end) = quoted.find('"') {
                        names.push(quoted[..end].to_string());
                    }
                }
            }
            rest = &rest[at + 4..];
        }
    }
    names
}

#[test]
fn configuration_examples_pass_the_configuration_check() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks().iter().filter(|b| is(b, "toml", Some("config"))) {
        checked += 1;
        for name in env_names(&block.text) {
            let value = if name.contains("AMQP") {
                "amqp://gateway:secret@127.0.0.1:5672/%2f"
            } else if name.contains("PG") || name.contains("POSTGRES") {
                "postgres://gateway@127.0.0.1/gateway"
            } else if name.contains("URL") {
                "https://hooks.example.gov.cn/gateway"
            } else {
                "a-stand-in-secret-value-0123456789"
            };
            std::env::set_var(name, value);
        }
        let result = Config::parse(&block.text, &block.place, &repo()).and_then(|c| c.resolve(&block.place));
        if let Err(e) = result {
            failures.push(format!("{}: {e}", block.place));
        }
    }
    assert!(checked >= 3, "`toml config` blocks found: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mapping_examples_load() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks().iter().filter(|b| is(b, "toml", Some("mapping"))) {
        checked += 1;
        let base = block
            .info
            .iter()
            .find_map(|w| w.strip_prefix("base="))
            .map_or_else(repo, |dir| repo().join(dir));
        if let Err(e) = Mapping::from_toml_str(&block.text, &block.place, &base) {
            failures.push(format!("{}: {e}", block.place));
        }
    }
    assert!(checked >= 2, "`toml mapping` blocks found: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Words of a shell command line: blanks split, quotes group, a backslash escapes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `gateway …` command lines of a shell block: continuation lines joined, prompts, comments
/// and what follows a pipe or `&&` left out; `cargo run … -- ARGS` counts as `gateway ARGS`.
fn command_lines(text: &str) -> Vec<Vec<String>> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let line = line.trim().trim_start_matches("$ ");
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        for part in line.split("&&") {
            let part = part.split(" | ").next().unwrap_or_default().trim();
            let part = part.split(" > ").next().unwrap_or_default().trim();
            let words = shell_words(part);
            let args: Vec<String> = match words.first().map(String::as_str) {
                Some("gateway") => words,
                Some(w) if w.ends_with("/gateway") => words,
                Some("cargo") if words.iter().any(|w| w == "run") => match words.iter().position(|w| w == "--") {
                    Some(i) => std::iter::once("gateway".to_string())
                        .chain(words[i + 1..].iter().cloned())
                        .collect(),
                    None => continue,
                },
                _ => continue,
            };
            if args.len() > 1 {
                out.push(args);
            }
        }
    }
    out
}

#[test]
fn every_gateway_command_line_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks()
        .iter()
        .filter(|b| ["sh", "bash", "console", "shell"].iter().any(|l| is(b, l, None)))
    {
        for args in command_lines(&block.text) {
            checked += 1;
            if let Err(e) = Cli::try_parse_from(&args) {
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) {
                    continue;
                }
                failures.push(format!("{}: `{}`:\n{e}", block.place, args.join(" ")));
            }
        }
    }
    assert!(checked > 20, "gateway command lines found: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn command_lines_are_read_as_a_shell_reads_them() {
    assert_eq!(
        command_lines("gateway ingest --config gw.toml \\\n    --source a 'x y.json' # note\n"),
        [vec![
            "gateway", "ingest", "--config", "gw.toml", "--source", "a", "x y.json"
        ]]
    );
    assert_eq!(
        command_lines("cargo run --release -p gateway -- demo --exit | tee out\nls\n"),
        [vec!["gateway", "demo", "--exit"]]
    );
    assert_eq!(
        env_names("url_env = \"PG\"  # x_env = \"NO\"\ntoken_env=\"T\""),
        ["PG", "T"]
    );
}

//! `gateway mappings test`: run the embedded tests of mapping files.

use normalizer::mapping::{run_tests, Mapping};
use normalizer::Normalizer;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Every `mapping.toml` (or `*.mapping.toml`) under `dir`, sorted.
pub fn find_mappings(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "mapping.toml" || n.ends_with(".mapping.toml"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Run the command: exit 0 when every test of every mapping passes, 1 otherwise.
pub fn test(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let roots = if paths.is_empty() {
        vec![PathBuf::from("mappings")]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for root in &roots {
        if root.is_dir() {
            files.extend(find_mappings(root)?);
        } else {
            files.push(root.clone());
        }
    }
    if files.is_empty() {
        anyhow::bail!("没有找到映射文件 / no mapping files found under {roots:?}");
    }
    let normalizer = Normalizer::default();
    let mut failed = 0;
    let mut cases = 0;
    for file in &files {
        match Mapping::load(file) {
            Ok(mapping) => {
                let report = run_tests(&mapping, &normalizer);
                cases += report.cases.len();
                if report.passed() {
                    println!(
                        "ok   {} ({} v{}): {} test(s)",
                        file.display(),
                        mapping.id(),
                        mapping.version(),
                        report.cases.len()
                    );
                } else {
                    failed += 1;
                    println!("FAIL {}\n{report}", file.display());
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", file.display());
            }
        }
    }
    println!(
        "{} mapping(s), {cases} test case(s), {failed} failing mapping(s)",
        files.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

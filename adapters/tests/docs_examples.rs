//! The source examples of the guides pass the settings check as they are written: the pull
//! sources of `docs/connecting.md` and the signing schemes of `docs/signing.md`.

use std::path::Path;

/// The fenced blocks of `lang` in the guide's section on pull sources.
fn blocks(lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/connecting.md")).unwrap();
    let start = readme
        .find("## Pulling from legacy systems")
        .expect("the section exists");
    let end = start + readme[start..].find("\n## ").map_or(readme.len() - start, |i| i + 1);
    let section = &readme[start..end];
    // A fence is "```LANG" followed by the end of the line or by marks ("```toml config").
    let fence = format!("```{lang}");
    section
        .split(fence.as_str())
        .skip(1)
        .filter_map(|b| b.split_once('\n'))
        .filter(|(marks, _)| marks.is_empty() || marks.starts_with(' '))
        .map(|(_, b)| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_pull_source_examples_pass_the_settings_check() {
    let dir = std::env::temp_dir().join(format!("gw-readme-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("mappings/jiangxi-ecology-soap")).unwrap();
    let xml = blocks("xml");
    assert_eq!(xml.len(), 1);
    std::fs::write(dir.join("mappings/jiangxi-ecology-soap/query-cases.xml"), &xml[0]).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/jiangxi-ecology-soap/query-cases.xml"),
    )
    .unwrap();
    assert_eq!(shipped, xml[0], "the shipped template is the one the guide shows");
    // The examples read these secrets from the environment.
    std::env::set_var("NC_AMR_APP_SECRET", "s");
    std::env::set_var("JX_ECOLOGY_WS_PASSWORD", "p");
    let mut kinds = Vec::new();
    for block in blocks("toml") {
        let config: toml::Table = block.parse().unwrap();
        let source = config["sources"].as_array().unwrap()[0].as_table().unwrap();
        let kind = source["kind"].as_str().unwrap();
        let table = source[kind].as_table().unwrap();
        let problems = adapters::sources::check_settings(kind, table, &dir);
        assert!(problems.is_empty(), "{kind}: {problems:?}");
        adapters::sources::build("example", kind, table, &dir).unwrap();
        kinds.push(kind.to_string());
    }
    assert_eq!(kinds, ["rest", "soap"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// The fenced ```toml blocks of a file under `docs/`.
fn toml_blocks(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(doc)).unwrap();
    text.split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_signing_examples_pass_the_settings_check() {
    let dir = std::env::temp_dir().join(format!("gw-docs-signing-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/ganzhou.secret"), "s").unwrap();
    // The examples read these secrets from the environment.
    for var in ["NC_AMR_APP_SECRET", "JX_GM_SECRET", "PX_SECRET"] {
        std::env::set_var(var, "s");
    }
    let blocks = toml_blocks("signing.md");
    assert_eq!(blocks.len(), 4);
    for block in blocks {
        let config: toml::Table = block.parse().unwrap_or_else(|e| panic!("{e}\n{block}"));
        let source = config["sources"].as_array().unwrap()[0].as_table().unwrap();
        let kind = source["kind"].as_str().unwrap();
        let table = source[kind].as_table().unwrap();
        assert_eq!(table["auth"]["kind"].as_str(), Some("hmac"));
        let problems = adapters::sources::check_settings(kind, table, &dir);
        assert!(problems.is_empty(), "{problems:?}\n{block}");
        adapters::sources::build("example", kind, table, &dir).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}

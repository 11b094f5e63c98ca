//! The source examples of `docs/signing.md` pass the settings check and build as written.

use std::path::Path;

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

//! `gateway token new`: a fresh random API token and the config block holding its SHA-256.

use crate::config::TOKEN_ROLES;
use std::process::ExitCode;

/// Print a new token and its `[[server.tokens]]` block. With `config`, each source must be one
/// of the file's sources; one that is not a push source is named on standard error.
pub fn new(name: &str, role: &str, sources: &[String], config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    if !TOKEN_ROLES.contains(&role) {
        anyhow::bail!("未知角色 / unknown role {role:?}: {}", TOKEN_ROLES.join(", "));
    }
    if role == "department" && sources.is_empty() {
        anyhow::bail!("department 令牌需要 --source / a department token needs --source SOURCE_ID");
    }
    if let Some(file) = config {
        let resolved = crate::config::Config::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
        for id in sources {
            match resolved.config.source(id) {
                None => anyhow::bail!("未知来源 / unknown source {id:?} in {}", file.display()),
                Some((_, s)) if s.kind != "push" => eprintln!(
                    "注意：来源 {id:?} 不是推送型来源（kind = {:?}）：该令牌可查看其隔离记录，但不能向它推送 / note: source {id:?} is not a push source (kind = {:?}): the token can read its quarantine entries but cannot push to it",
                    s.kind, s.kind
                ),
                Some(_) => {}
            }
        }
    }
    let (token, sha256) =
        crate::server::auth::new_token().map_err(|e| anyhow::anyhow!("无法生成随机数 / no random numbers: {e}"))?;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    println!("# 令牌（只显示这一次，交给持有人）/ the token (shown once: hand it to its holder):");
    println!("# {token}");
    println!("[[server.tokens]]");
    println!("name = {}", quote(name));
    println!("role = {}", quote(role));
    if !sources.is_empty() {
        let list: Vec<String> = sources.iter().map(|s| quote(s)).collect();
        println!("sources = [{}]", list.join(", "));
    }
    println!("sha256 = \"{sha256}\"");
    Ok(ExitCode::SUCCESS)
}

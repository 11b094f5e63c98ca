//! `gateway archive verify | checkpoint | receipt | keygen`: the evidence-grade raw archive
//! (see `crate::archive` and `docs/archive.md`).

use super::args::ArchiveAction;
use super::common::load_config;
use crate::archive::checkpoint::{send_to_witnesses, sign_now, CheckpointJson};
use crate::archive::receipt::{receipt, ReceiptError};
use crate::archive::verify::{check_witness_copies, verify, Scope};
use crate::crypto::keys::{SignAlg, SigningKey};
use crate::store;
use chrono::{DateTime, NaiveDate, Utc};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Run one `gateway archive` action.
pub async fn run(action: ArchiveAction) -> anyhow::Result<ExitCode> {
    match action {
        ArchiveAction::Verify {
            config,
            source,
            from,
            witness,
            json,
        } => verify_command(&config, source, from.as_deref(), &witness, json).await,
        ArchiveAction::Checkpoint { config } => checkpoint_command(&config).await,
        ArchiveAction::Receipt { config, raw_id } => receipt_command(&config, raw_id).await,
        ArchiveAction::Keygen { algorithm, out } => keygen(&algorithm, &out),
    }
}

/// `--from`: a day (UTC midnight) or an RFC 3339 time.
pub fn parse_from(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            anyhow::anyhow!("--from: 应为日期 YYYY-MM-DD 或 RFC 3339 时间 / must be a day YYYY-MM-DD or an RFC 3339 time, got {text:?}")
        })
}

/// Read a witness file: one checkpoint JSON per line.
fn witness_copies(path: &Path) -> anyhow::Result<Vec<crate::store::archive::StoredCheckpoint>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("--witness {}: 无法读取 / cannot read: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                anyhow::anyhow!(
                    "--witness {} line {}: 不是检查点 JSON / not a checkpoint JSON: {e}",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

async fn verify_command(
    config: &Path,
    source: Option<String>,
    from: Option<&str>,
    witnesses: &[std::path::PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let from = from.map(parse_from).transpose()?;
    let mut copies = Vec::new();
    for w in witnesses {
        copies.extend(witness_copies(w)?);
    }
    let resolved = load_config(config)?;
    let trusted = resolved
        .config
        .archive
        .trusted(&resolved.config.base_dir)
        .map_err(|e| anyhow::anyhow!(e))?;
    let store = store::open(&resolved.config).await?.store;
    let mut report = verify(
        store.archive(),
        &Scope {
            source: source.clone(),
            from,
        },
        &trusted,
    )
    .await?;
    if !copies.is_empty() {
        let problems = check_witness_copies(store.archive(), &copies, &trusted, source.as_deref()).await?;
        report.witness_copies_checked = copies.len() as i64;
        report.ok &= problems.is_empty();
        report.checkpoint_problems.extend(problems);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    tracing::info!(
        ok = report.ok,
        sources = report.sources.len(),
        checkpoints = report.checkpoints_checked,
        "archive verified"
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn checkpoint_command(config: &Path) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let cfg = &resolved.config;
    let key = cfg
        .archive
        .checkpoints
        .signing_key(&cfg.base_dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "没有签名密钥：请设置 archive.checkpoints.signing_key_file 或 signing_key_env / no signing key: set archive.checkpoints.signing_key_file or signing_key_env"
            )
        })?;
    let store = store::open(cfg).await?.store;
    let instance = format!(
        "cli@{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    );
    let checkpoint = sign_now(store.archive(), &key, &instance, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no checkpoint signed"))?;
    let outcomes = send_to_witnesses(store.archive(), &cfg.archive, &cfg.base_dir, None).await;
    println!("{}", serde_json::to_string_pretty(&CheckpointJson::of(&checkpoint))?);
    let mut failed = false;
    for o in &outcomes {
        match &o.error {
            None => eprintln!("见证 / witness {}: {} sent", o.name, o.sent),
            Some(e) => {
                failed = true;
                eprintln!(
                    "见证发送失败 / witness {} failed: {e} (retried by the next checkpoint)",
                    o.name
                );
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn receipt_command(config: &Path, raw_id: i64) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    match receipt(store.archive(), raw_id).await {
        Ok(r) => {
            if r.checkpoint.is_none() {
                eprintln!(
                    "尚无检查点覆盖该记录；下一个检查点后再取回执 / no checkpoint covers this record yet: ask again after the next checkpoint (gateway archive checkpoint)"
                );
            }
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ReceiptError::NotFound(_) | ReceiptError::Unchained(_) | ReceiptError::Broken { .. })) => {
            eprintln!("错误 / error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// A new file of mode 0600 at `out` (refused if it exists).
fn create_secret_file(out: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(out)
        .map_err(|e| anyhow::anyhow!("{}: 无法新建密钥文件 / cannot create the key file: {e}", out.display()))
}

/// `gateway personal-data keygen`: a new random data key in hex, mode 0600.
pub fn personal_keygen(cipher: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let cipher = crate::crypto::personal::Cipher::of_name(cipher).ok_or_else(|| {
        anyhow::anyhow!("--cipher: 应为 sm4-gcm 或 aes-256-gcm / must be sm4-gcm or aes-256-gcm, got {cipher:?}")
    })?;
    let key = crate::crypto::personal::DataKey::generate_hex(cipher)
        .map_err(|e| anyhow::anyhow!("系统随机数不可用 / no system randomness: {e}"))?;
    let mut file = create_secret_file(out)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    eprintln!(
        "{} 密钥已写入 / key written to {} (mode 0600); 在 [[personal_data.keys]] 中以 file 引用 / name it as `file` of a [[personal_data.keys]] block",
        cipher.name(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `gateway personal-data rekey`: every stored value under another key re-sealed under the
/// current one (audit-logged).
pub async fn personal_rekey(config: &Path, batch: i64) -> anyhow::Result<ExitCode> {
    let resolved = super::common::load_config(config)?;
    let keys = resolved
        .config
        .personal_data
        .keyring(&resolved.config.base_dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .ok_or_else(|| {
            anyhow::anyhow!("配置中没有 [personal_data] 密钥 / the configuration has no [personal_data] keys")
        })?;
    let store = crate::store::open(&resolved.config).await?.store;
    let done = store.sealed().reseal(&keys, batch.clamp(1, 10_000)).await?;
    store
        .audit(&crate::store::AuditEntry {
            actor: super::common::actor(),
            action: "personal_data.rekey".into(),
            subject: format!("key:{}", keys.current().id()),
            detail: serde_json::to_value(&done)?,
        })
        .await?;
    println!("{}", serde_json::to_string(&done)?);
    eprintln!(
        "已在当前密钥 {} 下重新加密 {} 行；{} 行无法解密；{} 行期间被改动（请再运行一次）/ re-sealed {} rows under the current key {}; {} rows did not open{}; {} rows changed meanwhile (run again)",
        keys.current().id(),
        done.total(),
        done.failed,
        done.raced,
        done.total(),
        keys.current().id(),
        done.failed,
        done.first_failure.as_deref().map(|f| format!(" (first: {f})")).unwrap_or_default(),
        done.raced
    );
    Ok(if done.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn keygen(algorithm: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let alg = SignAlg::of_name(algorithm).ok_or_else(|| {
        anyhow::anyhow!("--algorithm: 应为 sm2 或 ed25519 / must be sm2 or ed25519, got {algorithm:?}")
    })?;
    let key = SigningKey::generate(alg)?;
    let public = key.public_key().to_pem();
    let mut file = create_secret_file(out)?;
    file.write_all(key.to_pkcs8_pem()?.as_bytes())?;
    let mut public_path = out.as_os_str().to_owned();
    public_path.push(".pub");
    std::fs::write(&public_path, &public)?;
    eprintln!(
        "私钥已写入 / private key written to {} (mode 0600); 公钥 / public key: {} (key id {})",
        out.display(),
        Path::new(&public_path).display(),
        key.public_key().key_id()
    );
    print!("{public}");
    Ok(ExitCode::SUCCESS)
}

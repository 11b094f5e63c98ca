//! Alert rules (告警规则) and their evaluation. Each rule gives the alerts that should fire now
//! (rule, subject, text, value); each is raised in the store (a new one queues its messages, a
//! long-firing one a reminder every `repeat_minutes`), and each firing alert of the rule that is
//! no longer given, and whose subject the evaluating instance answers for, is resolved.
//!
//! | rule | subject | fires when |
//! |---|---|---|
//! | `source_failing` | source id | its runs (or connection) have failed for `source_failing_minutes` |
//! | `source_stalled` | source id | a pulled source had no successful pull for `source_stalled_minutes`, or stopped at `max_pages` |
//! | `quarantine_rate` | source id | ≥ `quarantine_rate_percent` of its records in the window were quarantined |
//! | `dead_deliveries` | sink id | ≥ `dead_deliveries` deliveries are dead |
//! | `reconciliation_gap` | source id | a reconciled day shows a gap |
//! | `off_platform` | department | it has cases off the platform |
//! | `certificate_expiring` | file | a certificate in it expires within `expiry_days` (or cannot be read) |

use super::context::{china_time, Oversight, OversightError};
use super::reconcile;
use crate::config::oversight::ALERT_RULES;
use crate::runtime::Runtime;
use crate::store::oversight::NewAlert;
use crate::telemetry::HealthState;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Which rules an evaluation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What runs on this instance: sources, certificates (every instance).
    Local,
    /// What the store says (one instance at a time).
    Store,
    /// Both (tests, `gateway demo`).
    All,
}

/// Which firing alerts of a rule the evaluation answers for (may resolve).
enum Owned {
    /// Every subject.
    All,
    /// These subjects.
    Subjects(BTreeSet<String>),
}

/// One rule's outcome.
struct Outcome {
    rule: &'static str,
    firing: Vec<NewAlert>,
    owned: Owned,
}

fn alert(rule: &str, subject: &str, severity: &str, zh: String, en: String, value: String) -> NewAlert {
    NewAlert {
        rule: rule.to_string(),
        subject: subject.to_string(),
        severity: severity.to_string(),
        summary_zh: zh,
        summary_en: en,
        value,
    }
}

/// Evaluate the rules of `scope` and apply them to the store.
pub async fn evaluate(o: &Oversight, scope: Scope) -> Result<(), OversightError> {
    let a = &o.runtime.resolved.config.alerts;
    if !a.enabled {
        return Ok(());
    }
    let mut outcomes = Vec::new();
    if matches!(scope, Scope::Local | Scope::All) {
        outcomes.extend(source_rules(o));
        outcomes.push(certificates(o));
    }
    if matches!(scope, Scope::Store | Scope::All) {
        outcomes.push(quarantine_rate(o).await?);
        outcomes.push(dead_deliveries(o).await?);
        outcomes.push(reconciliation_gap(o).await?);
        outcomes.push(off_platform(o).await?);
    }
    let repeat = (a.repeat_minutes > 0).then(|| Duration::from_secs(a.repeat_minutes * 60));
    let store = o.runtime.store.oversight();
    let firing = store.alerts_firing().await?;
    for outcome in outcomes {
        let webhooks = o.webhooks_for(outcome.rule);
        let mut now_firing = BTreeSet::new();
        for alert in &outcome.firing {
            now_firing.insert(alert.subject.clone());
            let raised = store.alert_raise(alert, &webhooks, repeat).await?;
            if let crate::store::oversight::Raised::New(id) = raised {
                tracing::warn!(rule = outcome.rule, subject = %alert.subject, alert = id, value = %alert.value,
                    "alert firing: {}", alert.summary_en);
            }
        }
        for f in firing.iter().filter(|f| f.rule == outcome.rule) {
            let owned = match &outcome.owned {
                Owned::All => true,
                Owned::Subjects(s) => s.contains(&f.subject),
            };
            if owned && !now_firing.contains(&f.subject) {
                if let Some(id) = store.alert_resolve(&f.rule, &f.subject, &webhooks).await? {
                    tracing::info!(rule = %f.rule, subject = %f.subject, alert = id, "alert resolved");
                }
            }
        }
    }
    refresh_alert_metric(o).await?;
    Ok(())
}

/// Set `gateway_alerts_firing` from the store.
pub async fn refresh_alert_metric(o: &Oversight) -> Result<(), OversightError> {
    let firing: Vec<String> = o
        .runtime
        .store
        .oversight()
        .alerts_firing()
        .await?
        .into_iter()
        .map(|a| a.rule)
        .collect();
    o.runtime.metrics.oversight.set_alerts_firing(ALERT_RULES, &firing);
    Ok(())
}

fn fractional_minutes(m: f64) -> ChronoDuration {
    ChronoDuration::milliseconds((m * 60_000.0).min(1e15) as i64)
}

fn minutes(m: u64) -> ChronoDuration {
    ChronoDuration::seconds(i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX))
}

/// `source_failing` and `source_stalled`, for the sources that run on this instance.
fn source_rules(o: &Oversight) -> Vec<Outcome> {
    let a = &o.runtime.resolved.config.alerts;
    let now = Utc::now();
    let mut failing = Vec::new();
    let mut stalled = Vec::new();
    let mut owned = BTreeSet::new();
    // A source every instance runs (AMQP, push) is judged by each for itself: on a shared store
    // its alerts name the instance, so one healthy instance never resolves another's failure.
    let shared = o.runtime.store.backend() == "postgres";
    for s in o.runtime.sources.snapshot() {
        // A scheduled job running on another instance is that instance's to judge.
        if s.runs_here == Some(false) {
            continue;
        }
        let subject = if shared && s.runs_here.is_none() {
            format!("{}@{}", s.id, o.runtime.instance.id)
        } else {
            s.id.clone()
        };
        owned.insert(subject.clone());
        if a.source_failing_minutes > 0.0 && matches!(s.state, HealthState::Failing | HealthState::Paused) {
            if let Some(since) = s
                .failing_since
                .filter(|t| *t <= now - fractional_minutes(a.source_failing_minutes))
            {
                let error = s.last_error.as_ref().map(|(_, e)| e.as_str()).unwrap_or("-");
                failing.push(alert(
                    "source_failing",
                    &subject,
                    "critical",
                    format!(
                        "来源 {} 自 {} 起连续失败 {} 次：{error}",
                        s.id,
                        china_time(since),
                        s.failures_in_row
                    ),
                    format!(
                        "source {} has failed {} times in a row since {}: {error}",
                        s.id,
                        s.failures_in_row,
                        since.to_rfc3339()
                    ),
                    format!("{} min", (now - since).num_minutes()),
                ));
            }
        }
        let pulled = matches!(s.kind.as_str(), "rest" | "soap");
        if a.source_stalled_minutes > 0.0 && pulled {
            let last = s.last_success.unwrap_or(o.started).max(o.started);
            let quiet = last <= now - fractional_minutes(a.source_stalled_minutes);
            if s.stalled || quiet {
                let (zh, en) = if s.stalled {
                    (
                        format!("来源 {} 停滞：上次拉取达到 max_pages，游标无法前移", s.id),
                        format!(
                            "source {} is stalled: its last pull reached max_pages and could not move its cursor",
                            s.id
                        ),
                    )
                } else {
                    (
                        format!("来源 {} 自 {} 起没有成功的拉取", s.id, china_time(last)),
                        format!("source {} has had no successful pull since {}", s.id, last.to_rfc3339()),
                    )
                };
                stalled.push(alert(
                    "source_stalled",
                    &subject,
                    "warning",
                    zh,
                    en,
                    format!("{} min", (now - last).num_minutes()),
                ));
            }
        }
    }
    vec![
        Outcome {
            rule: "source_failing",
            firing: failing,
            owned: Owned::Subjects(owned.clone()),
        },
        Outcome {
            rule: "source_stalled",
            firing: stalled,
            owned: Owned::Subjects(owned),
        },
    ]
}

async fn quarantine_rate(o: &Oversight) -> Result<Outcome, OversightError> {
    let a = &o.runtime.resolved.config.alerts;
    let mut firing = Vec::new();
    if a.quarantine_rate_percent > 0.0 {
        let since = Utc::now() - minutes(a.quarantine_window_minutes);
        for (source, received, quarantined) in o.runtime.store.oversight().recent_intake(since).await? {
            if received < a.quarantine_min_records.max(1) {
                continue;
            }
            let rate = quarantined as f64 * 100.0 / received as f64;
            if rate >= a.quarantine_rate_percent {
                firing.push(alert(
                    "quarantine_rate",
                    &source,
                    "warning",
                    format!(
                        "来源 {source} 最近 {} 分钟收到 {received} 条记录，{quarantined} 条被隔离（{rate:.1}%，阈值 {}%）",
                        a.quarantine_window_minutes, a.quarantine_rate_percent
                    ),
                    format!(
                        "source {source}: {quarantined} of {received} records quarantined in the last {} minutes ({rate:.1} %, threshold {} %)",
                        a.quarantine_window_minutes, a.quarantine_rate_percent
                    ),
                    format!("{rate:.1}%"),
                ));
            }
        }
    }
    Ok(Outcome {
        rule: "quarantine_rate",
        firing,
        owned: Owned::All,
    })
}

async fn dead_deliveries(o: &Oversight) -> Result<Outcome, OversightError> {
    let threshold = o.runtime.resolved.config.alerts.dead_deliveries;
    let mut firing = Vec::new();
    if threshold > 0 {
        for (sink, dead) in o.runtime.store.oversight().dead_deliveries().await? {
            if dead >= threshold {
                firing.push(alert(
                    "dead_deliveries",
                    &sink,
                    "critical",
                    format!("去向 {sink} 有 {dead} 条投递失败（dead），需要人工重投"),
                    format!("sink {sink} has {dead} dead deliveries: an operator must re-drive them"),
                    dead.to_string(),
                ));
            }
        }
    }
    Ok(Outcome {
        rule: "dead_deliveries",
        firing,
        owned: Owned::All,
    })
}

async fn reconciliation_gap(o: &Oversight) -> Result<Outcome, OversightError> {
    let config = &o.runtime.resolved.config;
    let mut firing = Vec::new();
    let days = reconcile::recent_days(Utc::now(), config.reconciliation.days_back);
    if let (Some(to), Some(from)) = (days.first(), days.last()) {
        let reports = reconcile::report(&o.runtime, None, from, to).await?;
        refresh_reconciliation_metric(&o.runtime, &reports, to);
        if config.alerts.reconciliation_gap {
            let mut sources: Vec<&str> = reports
                .iter()
                .filter(|r| r.status == "gap")
                .map(|r| r.source_id.as_str())
                .collect();
            sources.sort_unstable();
            sources.dedup();
            for source in sources {
                let mine: Vec<&reconcile::DayReport> = reports
                    .iter()
                    .filter(|r| r.source_id == source && r.status == "gap")
                    .collect();
                let records: i64 = mine.iter().map(|r| r.gap_records()).sum();
                let describe = |r: &reconcile::DayReport, zh: bool| {
                    let keys = if r.missing_keys.is_empty() {
                        String::new()
                    } else {
                        let shown: Vec<&str> = r.missing_keys.iter().take(10).map(String::as_str).collect();
                        format!(
                            " [{}{}]",
                            shown.join(", "),
                            if r.missing_keys.len() > 10 { ", …" } else { "" }
                        )
                    };
                    let claimed = r.claimed.map_or("-".into(), |c| c.to_string());
                    if zh {
                        format!(
                            "{}：来源自报 {claimed}，收到 {}，缺失 {}{keys}，待投递 {}，投递失败 {}",
                            r.day, r.received, r.missing, r.pending, r.dead
                        )
                    } else {
                        format!(
                            "{}: claimed {claimed} / received {} / missing {}{keys} / pending {} / dead {}",
                            r.day, r.received, r.missing, r.pending, r.dead
                        )
                    }
                };
                let detail_zh: Vec<String> = mine.iter().map(|r| describe(r, true)).collect();
                let detail: Vec<String> = mine.iter().map(|r| describe(r, false)).collect();
                firing.push(alert(
                    "reconciliation_gap",
                    source,
                    "critical",
                    format!(
                        "来源 {source} 对账有差异（{records} 条记录未到或未送达）：{}",
                        detail_zh.join("；")
                    ),
                    format!(
                        "source {source} does not reconcile ({records} records missing or not delivered): {}",
                        detail.join("; ")
                    ),
                    records.to_string(),
                ));
            }
        }
    }
    Ok(Outcome {
        rule: "reconciliation_gap",
        firing,
        owned: Owned::All,
    })
}

/// Set the reconciliation metrics from a report of the recent days (`today`: the newest).
pub fn refresh_reconciliation_metric(runtime: &Runtime, reports: &[reconcile::DayReport], today: &str) {
    let config = &runtime.resolved.config;
    let sources: Vec<String> = config.sources.iter().map(|s| s.id.clone()).collect();
    let gaps: Vec<crate::telemetry::oversight_metrics::SourceGap> = sources
        .iter()
        .map(|s| {
            let mine = reports.iter().filter(|r| &r.source_id == s);
            let today_report = reports.iter().find(|r| &r.source_id == s && r.day == today);
            crate::telemetry::oversight_metrics::SourceGap {
                source: s.clone(),
                gap: mine.map(reconcile::DayReport::gap_records).sum(),
                claimed: today_report.and_then(|r| r.claimed),
                received: today_report.map_or(0, |r| r.received),
            }
        })
        .collect();
    runtime.metrics.oversight.set_reconciliation(&sources, &gaps);
}

async fn off_platform(o: &Oversight) -> Result<Outcome, OversightError> {
    let config = &o.runtime.resolved.config;
    let report = super::off_platform::report(&o.runtime, None, None).await?;
    set_off_platform_metric(&o.runtime, &report);
    let mut firing = Vec::new();
    if config.alerts.off_platform {
        for d in &report.departments {
            firing.push(alert(
                "off_platform",
                &d.department,
                "warning",
                format!(
                    "部门 {} 有案件未上平台：{} 条超过 {} 小时未送达，{} 条隔离超过 {} 小时未赋码；最早 {}",
                    d.department,
                    d.undelivered,
                    report.delivery_overdue_hours,
                    d.quarantined,
                    report.quarantine_overdue_hours,
                    china_time(d.oldest)
                ),
                format!(
                    "department {} has cases off the platform: {} not delivered after {} h, {} quarantined without a code after {} h; oldest {}",
                    d.department,
                    d.undelivered,
                    report.delivery_overdue_hours,
                    d.quarantined,
                    report.quarantine_overdue_hours,
                    d.oldest.to_rfc3339()
                ),
                (d.undelivered + d.quarantined).to_string(),
            ));
        }
    }
    Ok(Outcome {
        rule: "off_platform",
        firing,
        owned: Owned::All,
    })
}

/// Set `gateway_off_platform_cases` from a report.
pub fn set_off_platform_metric(runtime: &Runtime, report: &super::off_platform::OffPlatform) {
    runtime.metrics.oversight.set_off_platform(
        report
            .departments
            .iter()
            .flat_map(|d| {
                [
                    (d.department.clone(), "undelivered", d.undelivered),
                    (d.department.clone(), "quarantined", d.quarantined),
                ]
            })
            .collect(),
    );
}

/// Refresh every oversight metric from the store (at most every 30 s; `/metrics` calls this).
pub async fn refresh_metrics(runtime: &Runtime) -> Result<(), OversightError> {
    if !runtime.metrics.oversight.refresh_due(Duration::from_secs(30)) {
        return Ok(());
    }
    let days = reconcile::recent_days(Utc::now(), runtime.resolved.config.reconciliation.days_back);
    if let (Some(to), Some(from)) = (days.first(), days.last()) {
        let reports = reconcile::report(runtime, None, from, to).await?;
        refresh_reconciliation_metric(runtime, &reports, to);
    }
    let report = super::off_platform::report(runtime, None, None).await?;
    set_off_platform_metric(runtime, &report);
    let firing: Vec<String> = runtime
        .store
        .oversight()
        .alerts_firing()
        .await?
        .into_iter()
        .map(|a| a.rule)
        .collect();
    runtime.metrics.oversight.set_alerts_firing(ALERT_RULES, &firing);
    Ok(())
}

/// The certificate files watched: the API's TLS certificate, the store's and the sinks' CA
/// files, and `[alerts] certificates`.
pub fn watched_certificates(o: &Oversight) -> Vec<PathBuf> {
    let config = &o.runtime.resolved.config;
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(config.server.tls_cert_file.iter().cloned());
    files.extend(config.store.ssl_root_cert.iter().cloned());
    for sink in &config.sinks {
        if let Some(p) = sink.settings.get("ssl_root_cert").and_then(toml::Value::as_str) {
            files.push(PathBuf::from(p));
        }
    }
    files.extend(config.alerts.certificates.iter().cloned());
    let mut seen = BTreeSet::new();
    files
        .into_iter()
        .map(|p| config.path(&p))
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

/// When the first certificate in a PEM file expires.
pub fn earliest_expiry(pem: &[u8]) -> Result<DateTime<Utc>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use x509_cert::der::Decode;
    let mut earliest: Option<DateTime<Utc>> = None;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("PEM: {e}"))?;
        let parsed = x509_cert::Certificate::from_der(cert.as_ref()).map_err(|e| format!("X.509: {e}"))?;
        let secs = parsed.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
        let t = DateTime::<Utc>::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
            .ok_or_else(|| "X.509: notAfter out of range".to_string())?;
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
    }
    earliest.ok_or_else(|| "文件中没有证书 / no certificate in the file".to_string())
}

fn certificates(o: &Oversight) -> Outcome {
    let days = o.runtime.resolved.config.alerts.expiry_days;
    let mut firing = Vec::new();
    if days > 0 {
        let now = Utc::now();
        for file in watched_certificates(o) {
            let subject = file.display().to_string();
            match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| earliest_expiry(&b))
            {
                Ok(expiry) if expiry <= now + ChronoDuration::days(days) => {
                    let left = (expiry - now).num_days();
                    let severity = if left < 3 { "critical" } else { "warning" };
                    let (zh, en) = if expiry <= now {
                        (
                            format!("证书 {subject} 已于 {} 过期", china_time(expiry)),
                            format!("the certificate in {subject} expired at {}", expiry.to_rfc3339()),
                        )
                    } else {
                        (
                            format!("证书 {subject} 将于 {} 过期（剩余 {left} 天）", china_time(expiry)),
                            format!(
                                "the certificate in {subject} expires at {} ({left} days left)",
                                expiry.to_rfc3339()
                            ),
                        )
                    };
                    firing.push(alert(
                        "certificate_expiring",
                        &subject,
                        severity,
                        zh,
                        en,
                        format!("{left} d"),
                    ));
                }
                Ok(_) => {}
                Err(e) => firing.push(alert(
                    "certificate_expiring",
                    &subject,
                    "critical",
                    format!("无法读取证书 {subject}：{e}"),
                    format!("cannot read the certificate {subject}: {e}"),
                    "unreadable".into(),
                )),
            }
        }
    }
    Outcome {
        rule: "certificate_expiring",
        firing,
        owned: Owned::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_expiry_of_a_chain_is_read_and_garbage_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gw.example".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        let cert = params.self_signed(&key).unwrap();
        let expiry = earliest_expiry(cert.pem().as_bytes()).unwrap();
        assert_eq!(expiry.format("%Y-%m-%d").to_string(), "2031-05-06");
        assert!(earliest_expiry(b"not a certificate").is_err());
    }
}

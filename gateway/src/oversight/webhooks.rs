//! Sending alert messages to webhooks: generic JSON, the DingTalk group robot (钉钉群机器人,
//! markdown, optionally signed: `timestamp` and `sign` = base64(HMAC-SHA256(secret,
//! "{timestamp}\n{secret}")) in the query, as DingTalk documents) and the WeCom group robot
//! (企业微信群机器人, markdown). A robot answers HTTP 200 with `errcode`; anything but
//! `errcode = 0` is a failure. A failed message is tried again after 5 s, doubling up to 10
//! minutes, until the webhook's `max_attempts`; then it is dead (visible in `GET /api/alerts`).

use super::context::{china_time, Oversight, OversightError};
use crate::config::oversight::AlertWebhook;
use crate::store::oversight::{AlertRow, NotificationRow, SendOutcome};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Value};

/// The DingTalk signature of `timestamp_ms` under `secret` (base64, before URL encoding).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    adapters::http::auth::hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes(), true)
}

/// The rule's name in Chinese, for messages.
pub fn rule_name_zh(rule: &str) -> &'static str {
    match rule {
        "source_failing" => "来源失败",
        "source_stalled" => "来源停滞",
        "quarantine_rate" => "隔离率过高",
        "dead_deliveries" => "投递失败",
        "reconciliation_gap" => "对账差异",
        "off_platform" => "案件未上平台",
        "certificate_expiring" => "证书即将过期",
        _ => "告警",
    }
}

fn title(alert: &AlertRow, event: &str) -> String {
    let tag = match event {
        "resolved" => "【已恢复】",
        "repeat" => "【告警·提醒】",
        _ => "【告警】",
    };
    format!("{tag}{} {}", rule_name_zh(&alert.rule), alert.subject)
}

/// The markdown text of a message (Chinese first, English below).
pub fn markdown(alert: &AlertRow, event: &str, instance: &str) -> String {
    let severity = if alert.severity == "critical" {
        "严重"
    } else {
        "警告"
    };
    let mut text = format!(
        "### {}\n\n- 规则：{}（{}）\n- 对象：{}\n- 级别：{severity}\n- 情况：{}\n- 数值：{}\n- 开始：{}\n",
        title(alert, event),
        rule_name_zh(&alert.rule),
        alert.rule,
        alert.subject,
        alert.summary_zh,
        alert.value,
        china_time(alert.started_at),
    );
    if let Some(r) = alert.resolved_at.filter(|_| event == "resolved") {
        text.push_str(&format!("- 恢复：{}\n", china_time(r)));
    }
    text.push_str(&format!(
        "\n> {}\n\n赣执网关 ganzhi-gateway · {instance} · 告警 #{}",
        alert.summary_en, alert.id
    ));
    text
}

/// The body a webhook of `kind` is sent.
pub fn body(kind: &str, alert: &AlertRow, event: &str, instance: &str) -> Value {
    match kind {
        "dingtalk" => json!({
            "msgtype": "markdown",
            "markdown": { "title": title(alert, event), "text": markdown(alert, event, instance) },
        }),
        "wecom" => json!({
            "msgtype": "markdown",
            "markdown": { "content": markdown(alert, event, instance) },
        }),
        _ => json!({
            "event": event,
            "status": if event == "resolved" { "resolved" } else { "firing" },
            "alert_id": alert.id,
            "rule": alert.rule,
            "subject": alert.subject,
            "severity": alert.severity,
            "summary_zh": alert.summary_zh,
            "summary_en": alert.summary_en,
            "value": alert.value,
            "started_at": alert.started_at,
            "resolved_at": alert.resolved_at,
            "instance": instance,
        }),
    }
}

/// The URL a message goes to (a signed DingTalk robot's with `timestamp` and `sign`).
pub fn target(w: &AlertWebhook, now: DateTime<Utc>) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(w.url.expose()).map_err(|_| "webhook URL 无效 / invalid webhook URL".to_string())?;
    if let (true, Some(secret)) = (w.kind == "dingtalk", &w.secret) {
        let ts = now.timestamp_millis();
        url.query_pairs_mut()
            .append_pair("timestamp", &ts.to_string())
            .append_pair("sign", &dingtalk_sign(secret.expose(), ts));
    }
    Ok(url)
}

/// Wait before attempt `attempts + 1`: 5 s doubling, at most 10 minutes.
fn backoff(attempts: i32) -> ChronoDuration {
    let secs = 5i64.saturating_mul(1i64 << attempts.clamp(0, 7));
    ChronoDuration::seconds(secs.min(600))
}

async fn send_one(o: &Oversight, w: &AlertWebhook, alert: &AlertRow, event: &str) -> Result<(), String> {
    let url = target(w, Utc::now())?;
    let payload = body(&w.kind, alert, event, &o.runtime.instance.id);
    let answer = o
        .http
        .post(url)
        .timeout(w.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(payload.to_string())
        .send()
        .await
        // The URL carries the robot's token: never in the error.
        .map_err(|e| format!("请求失败 / request failed: {}", e.without_url()))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
    }
    if matches!(w.kind.as_str(), "dingtalk" | "wecom") {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = v.get("errcode").and_then(Value::as_i64);
        if code != Some(0) {
            let msg = v.get("errmsg").and_then(Value::as_str).unwrap_or("");
            return Err(format!("机器人拒绝 / the robot refused: errcode {code:?} {msg}"));
        }
    }
    Ok(())
}

/// Send every due message once; answers how many were sent.
pub async fn send_due(o: &Oversight) -> Result<usize, OversightError> {
    let store = o.runtime.store.oversight();
    let due: Vec<NotificationRow> = store.notifications_due(Utc::now(), 100).await?;
    let mut sent = 0;
    for n in due {
        let Some(w) = o.webhooks.iter().find(|w| w.id == n.webhook_id) else {
            store
                .notification_settle(
                    n.id,
                    &SendOutcome::Dead("webhook 已不在配置中 / the webhook is no longer configured".into()),
                )
                .await?;
            continue;
        };
        let Some(alert) = store.alert(n.alert_id).await? else {
            continue;
        };
        let outcome = match send_one(o, w, &alert, &n.event).await {
            Ok(()) => {
                sent += 1;
                o.runtime.metrics.oversight.notification(&w.id, "sent");
                tracing::info!(webhook = %w.id, alert = alert.id, event = %n.event, "alert message sent");
                SendOutcome::Sent
            }
            Err(e) if n.attempts + 1 >= w.max_attempts => {
                o.runtime.metrics.oversight.notification(&w.id, "dead");
                tracing::error!(webhook = %w.id, alert = alert.id, error = %e, "alert message given up");
                SendOutcome::Dead(e)
            }
            Err(e) => {
                o.runtime.metrics.oversight.notification(&w.id, "failed");
                tracing::warn!(webhook = %w.id, alert = alert.id, error = %e, "alert message failed; will try again");
                SendOutcome::Retry(Utc::now() + backoff(n.attempts), e)
            }
        };
        store.notification_settle(n.id, &outcome).await?;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dingtalk_signature_follows_the_documented_recipe() {
        // HMAC-SHA256("SEC123", "1700000000000\nSEC123"), base64: computed independently with
        // `printf '1700000000000\nSEC123' | openssl dgst -sha256 -hmac SEC123 -binary | base64`.
        assert_eq!(
            dingtalk_sign("SEC123", 1_700_000_000_000),
            "lkcPI1uoxBY1gUnCnnPH1Kkru0Hqjo7rFpA3haIVhEQ="
        );
        assert_eq!(backoff(0).num_seconds(), 5);
        assert_eq!(backoff(20).num_seconds(), 600);
    }
}

//! AMQP sink (RabbitMQ, via lapin): one persistent message per delivery on a durable
//! exchange, routing key `<case type>.<region>` (e.g. `penalty.360102`), `message_id` = the
//! idempotency key. The batch is published with every publisher confirm in flight at once; a
//! delivery counts as delivered only when the broker has confirmed it.
//!
//! A broken connection defers the deliveries whose confirms did not arrive (they are published
//! again later, so a receiver may see a message twice: drop repeats by `message_id`). A nack, or
//! a message returned as unroutable (`mandatory`, no queue bound), is a failed attempt. The
//! connection is opened on the first batch and again after it breaks.

use super::delivery::{Delivery, Outcome, Sink, SinkError};
use super::encode::{envelope, Format};
use crate::common::amqp_url::broker_uri;
use crate::common::secret::SecretSource;
use crate::common::settings::SettingsProblem;
use crate::common::text::excerpt;
use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;

/// Settings of `kind = "amqp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URL inline, e.g. `amqp://user:pass@host:5672/%2f` (prefer `url_env` / `url_file`).
    pub url: Option<String>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Exchange to publish to (default `ganzhi.cases`).
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Exchange type when declared: `topic` (default), `direct`, `fanout` or `headers`.
    #[serde(default = "default_exchange_type")]
    pub exchange_type: String,
    /// Declare the exchange (durable) when connecting (default true).
    #[serde(default = "default_true")]
    pub declare_exchange: bool,
    /// Also declare this durable queue and bind it to the exchange with routing key `#`
    /// (simple set-ups and tests; platforms usually bind their own queues).
    pub bind_queue: Option<String>,
    /// Body format: `json` (default, the envelope) or `xml`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Publish as mandatory: a message no queue takes comes back and counts as a failed
    /// attempt instead of being dropped by the broker (default true).
    #[serde(default = "default_true")]
    pub mandatory: bool,
    /// Longest wait for the broker's confirms of a batch, seconds (default 30).
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout_seconds: u64,
    /// Longest wait for the connection to open, seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
}

fn default_exchange() -> String {
    "ganzhi.cases".into()
}
fn default_exchange_type() -> String {
    "topic".into()
}
fn default_true() -> bool {
    true
}
fn default_format() -> Format {
    Format::Json
}
fn default_confirm_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    10
}

impl AmqpSettings {
    fn url_source(&self) -> SecretSource<'_> {
        SecretSource::url(&self.url, &self.url_env, &self.url_file)
    }

    /// The broker URI. A parse error never shows the URL (it may hold a password).
    fn uri(&self, base: &Path) -> Result<AMQPUri, String> {
        broker_uri(self.url_source(), base)
    }

    fn exchange_kind(&self) -> Option<ExchangeKind> {
        Some(match self.exchange_type.as_str() {
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }

    /// Problems found without connecting.
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        if let Err(message) = self.uri(base) {
            problems.push(SettingsProblem {
                key: "url".into(),
                message,
            });
        }
        if self.exchange.is_empty() || self.exchange.len() > 255 {
            problems.push(SettingsProblem {
                key: "exchange".into(),
                message: "交换机名称应为1-255字节 / exchange name must be 1..255 bytes".into(),
            });
        }
        if self.exchange_kind().is_none() {
            problems.push(SettingsProblem {
                key: "exchange_type".into(),
                message: format!(
                    "未知交换机类型 / unknown exchange type {:?}: topic, direct, fanout or headers",
                    self.exchange_type
                ),
            });
        }
        if self.confirm_timeout_seconds == 0 || self.connect_timeout_seconds == 0 {
            problems.push(SettingsProblem {
                key: "confirm_timeout_seconds".into(),
                message: "超时应至少1秒 / timeouts must be at least 1 second".into(),
            });
        }
        problems
    }
}

/// The AMQP sink.
pub struct AmqpSink {
    settings: AmqpSettings,
    /// Holds the password: never formatted.
    uri: AMQPUri,
    connection_name: String,
    /// The open connection and its confirm-mode channel; None until the first batch and after
    /// a failure.
    state: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("exchange", &self.settings.exchange)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// A sink that connects on its first batch.
    pub fn new(sink_id: &str, settings: &AmqpSettings, base: &Path) -> Result<AmqpSink, SinkError> {
        let uri = settings.uri(base).map_err(SinkError::Settings)?;
        if settings.exchange_kind().is_none() {
            return Err(SinkError::Settings(format!(
                "unknown exchange type {:?}",
                settings.exchange_type
            )));
        }
        Ok(AmqpSink {
            settings: settings.clone(),
            uri,
            connection_name: format!("ganzhi-gateway sink {sink_id}"),
            state: Mutex::new(None),
        })
    }

    /// The channel to publish on, connecting (and declaring the topology) when needed.
    async fn channel(&self) -> Result<Channel, String> {
        let mut state = self.state.lock().await;
        if let Some((conn, channel)) = state.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        if let Some((conn, _)) = state.take() {
            let _ = conn.close(200, "reconnecting".into()).await;
        }
        let timeout = Duration::from_secs(self.settings.connect_timeout_seconds);
        let opened = tokio::time::timeout(timeout, self.open()).await;
        let (conn, channel) = match opened {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(format!("cannot connect to the AMQP broker: {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect to the AMQP broker within {}s",
                    timeout.as_secs()
                ))
            }
        };
        tracing::info!(exchange = %self.settings.exchange, "connected to the AMQP broker");
        *state = Some((conn, channel.clone()));
        Ok(channel)
    }

    async fn open(&self) -> Result<(Connection, Channel), lapin::Error> {
        let props =
            ConnectionProperties::default().with_connection_name(LongString::from(self.connection_name.clone()));
        let conn = Connection::connect_uri(self.uri.clone(), props).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let exchange = ShortString::from(self.settings.exchange.as_str());
        if self.settings.declare_exchange {
            let kind = self.settings.exchange_kind().unwrap_or(ExchangeKind::Topic);
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(exchange.clone(), kind, options, FieldTable::default())
                .await?;
        }
        if let Some(queue) = &self.settings.bind_queue {
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(queue.as_str().into(), options, FieldTable::default())
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange,
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok((conn, channel))
    }

    /// Forget the connection if it is broken (the next batch opens a new one).
    async fn drop_if_broken(&self) {
        let mut state = self.state.lock().await;
        let broken = state
            .as_ref()
            .is_some_and(|(conn, channel)| !conn.status().connected() || !channel.status().connected());
        if broken {
            if let Some((conn, _)) = state.take() {
                let _ = conn.close(200, "broken".into()).await;
            }
        }
    }

    fn properties(&self, d: &Delivery) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            "unified_code".into(),
            AMQPValue::LongString(d.unified_code.as_str().into()),
        );
        headers.insert("version".into(), AMQPValue::LongInt(d.version));
        headers.insert("withdrawn".into(), AMQPValue::Boolean(d.withdrawn));
        let timestamp = u64::try_from(d.committed_at.timestamp()).unwrap_or_default();
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(self.settings.format.content_type().into())
            .with_message_id(d.idempotency_key.as_str().into())
            .with_type(d.case_type.as_str().into())
            .with_app_id("ganzhi-gateway".into())
            .with_timestamp(timestamp)
            .with_headers(headers)
    }
}

fn confirmation_outcome(confirmation: Confirmation) -> Outcome {
    match confirmation {
        Confirmation::Ack(None) => Outcome::Delivered,
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Outcome::failed(format!(
            "broker returned the message: {} {} (no queue bound for routing key {:?}?)",
            returned.reply_code, returned.reply_text, returned.delivery.routing_key
        )),
        Confirmation::Nack(None) => Outcome::failed("broker nack: it could not store the message"),
        Confirmation::NotRequested => Outcome::failed("publisher confirms are not enabled on the channel"),
    }
}

#[async_trait]
impl Sink for AmqpSink {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    async fn deliver(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let channel = match self.channel().await {
            Ok(c) => c,
            Err(reason) => return vec![Outcome::deferred(reason); batch.len()],
        };
        let exchange = ShortString::from(self.settings.exchange.as_str());
        let options = BasicPublishOptions {
            mandatory: self.settings.mandatory,
            ..BasicPublishOptions::default()
        };
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut confirms = Vec::with_capacity(batch.len());
        for (i, d) in batch.iter().enumerate() {
            let body = envelope(d, self.settings.format);
            let published = channel
                .basic_publish(
                    exchange.clone(),
                    d.routing_key().into(),
                    options,
                    &body,
                    self.properties(d),
                )
                .await;
            match published {
                Ok(confirm) => confirms.push((i, confirm)),
                Err(e) => {
                    // The channel or connection broke: what was not published waits.
                    let reason = format!("publish failed: {}", excerpt(&e.to_string(), 500));
                    for slot in outcomes.iter_mut().skip(i) {
                        *slot = Some(Outcome::deferred(reason.clone()));
                    }
                    break;
                }
            }
        }
        let timeout = Duration::from_secs(self.settings.confirm_timeout_seconds);
        let indices: Vec<usize> = confirms.iter().map(|(i, _)| *i).collect();
        let waited = tokio::time::timeout(
            timeout,
            futures_util::future::join_all(confirms.into_iter().map(|(_, c)| c)),
        )
        .await;
        match waited {
            Ok(results) => {
                for (i, result) in indices.into_iter().zip(results) {
                    outcomes[i] = Some(match result {
                        Ok(confirmation) => confirmation_outcome(confirmation),
                        Err(e) => Outcome::deferred(format!("confirm lost: {}", excerpt(&e.to_string(), 500))),
                    });
                }
            }
            Err(_) => {
                for i in indices {
                    outcomes[i] = Some(Outcome::deferred(format!("no confirm within {}s", timeout.as_secs())));
                }
                // A broker that stops confirming gets a new connection.
                if let Some((conn, _)) = self.state.lock().await.take() {
                    let _ = conn.close(200, "confirm timeout".into()).await;
                }
            }
        }
        if outcomes.iter().any(|o| matches!(o, Some(Outcome::Deferred { .. }))) {
            self.drop_if_broken().await;
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::deferred("not published")))
            .collect()
    }

    async fn close(&self) {
        if let Some((conn, _)) = self.state.lock().await.take() {
            let _ = conn.close(200, "gateway stopping".into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_check_url_scheme_and_exchange_type() {
        let s: AmqpSettings = toml::from_str("url = \"http://x\"\nexchange_type = \"fan\"").unwrap();
        let keys: Vec<String> = s.check(Path::new("/")).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["url", "exchange_type"]);
        let ok: AmqpSettings = toml::from_str("url = \"amqp://127.0.0.1\"\nformat = \"xml\"").unwrap();
        assert!(ok.check(Path::new("/")).is_empty());
        assert_eq!(ok.format, Format::Xml);
    }

    #[test]
    fn message_properties_are_persistent_and_carry_the_key() {
        let s: AmqpSettings = toml::from_str("url = \"amqp://127.0.0.1\"").unwrap();
        let sink = AmqpSink::new("mq", &s, Path::new("/")).unwrap();
        let d = super::super::encode::sample_delivery();
        let p = sink.properties(&d);
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(
            p.message_id().as_ref().map(|m| m.as_str()),
            Some("CF20243601020000001Y:1")
        );
        assert_eq!(d.routing_key(), "penalty.360102");
    }

    #[test]
    fn confirmations_map_to_outcomes() {
        assert_eq!(confirmation_outcome(Confirmation::Ack(None)), Outcome::Delivered);
        assert!(matches!(
            confirmation_outcome(Confirmation::Nack(None)),
            Outcome::Failed { .. }
        ));
    }
}

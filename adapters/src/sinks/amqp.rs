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
use crate::common::amqp_queue::{
    check_queue_type, parse_inequivalent, setting_for, soft_error, type_mismatch, QueueType,
};
use crate::common::amqp_url::{connect_first, BrokerNode, Rotation, UrlKeys};
use crate::common::secret::Redacted;
use crate::common::settings::SettingsProblem;
use crate::common::text::excerpt;
use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
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
    /// Broker URL inline, e.g. `amqp://user:pass@host:5672/%2f` (prefer `url_env` / `url_file`);
    /// never shown (`Debug` prints `<redacted>`).
    pub url: Option<Redacted>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// The URLs of a cluster's nodes, inline (instead of `url`): tried in order, a reconnection
    /// starting with the node after the one that failed.
    pub urls: Option<Vec<Redacted>>,
    /// Environment variable holding the nodes' URLs, separated by commas.
    pub urls_env: Option<String>,
    /// File holding the nodes' URLs, separated by commas or line breaks.
    pub urls_file: Option<PathBuf>,
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
    /// Type of `bind_queue`: `classic` (default) or `quorum` (`x-queue-type = quorum`,
    /// replicated on a majority of the cluster's nodes; the broker confirms a message once a
    /// majority holds it).
    #[serde(default = "default_queue_type")]
    pub queue_type: String,
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
fn default_queue_type() -> String {
    "classic".into()
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
    /// The broker's nodes (one for `url`). An error names its key and never shows a URL (it
    /// may hold a password).
    pub fn nodes(&self, base: &Path) -> Result<Vec<BrokerNode>, SettingsProblem> {
        UrlKeys {
            url: self.url.as_ref().map(|u| u.0.as_str()),
            url_env: self.url_env.as_deref(),
            url_file: self.url_file.as_deref(),
            urls: self.urls.as_deref(),
            urls_env: self.urls_env.as_deref(),
            urls_file: self.urls_file.as_deref(),
        }
        .nodes(base)
    }

    /// The type of `bind_queue` (classic when `queue_type` is unknown, which
    /// [`AmqpSettings::check`] reports).
    pub fn queue_type(&self) -> QueueType {
        QueueType::parse(&self.queue_type).unwrap_or_default()
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
        if let Err(p) = self.nodes(base) {
            problems.push(p);
        }
        problems.extend(check_queue_type(&self.queue_type));
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
    /// The broker's nodes (their URIs hold the password: never formatted).
    nodes: Vec<BrokerNode>,
    connection_name: String,
    state: Mutex<State>,
}

/// The sink's connection, and which node to try first when it needs a new one.
#[derive(Default)]
struct State {
    /// The open connection; None until the first batch and after a failure.
    link: Option<Link>,
    rotation: Rotation,
    /// Connections opened so far: tells a link from the one that replaced it.
    opened: u64,
}

/// An open connection and its confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
    /// Which node it goes to (index into the nodes).
    node: usize,
    /// Its number among the connections the sink opened.
    number: u64,
}

impl Link {
    fn broken(&self) -> bool {
        !self.connection.status().connected() || !self.channel.status().connected()
    }
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("exchange", &self.settings.exchange)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// A sink that connects on its first batch.
    pub fn new(sink_id: &str, settings: &AmqpSettings, base: &Path) -> Result<AmqpSink, SinkError> {
        let nodes = settings.nodes(base).map_err(|p| SinkError::Settings(p.to_string()))?;
        if settings.exchange_kind().is_none() {
            return Err(SinkError::Settings(format!(
                "unknown exchange type {:?}",
                settings.exchange_type
            )));
        }
        Ok(AmqpSink {
            settings: settings.clone(),
            nodes,
            connection_name: format!("ganzhi-gateway sink {sink_id}"),
            state: Mutex::new(State::default()),
        })
    }

    fn label(&self, node: usize) -> &str {
        self.nodes.get(node).map_or("", |n| n.label())
    }

    /// The channel to publish on and the node it goes to, connecting (and declaring the
    /// topology) when needed: to the first node that answers, starting after the one that
    /// failed last.
    async fn channel(&self) -> Result<(Channel, usize, u64), String> {
        let mut state = self.state.lock().await;
        if let Some(link) = state.link.as_ref() {
            if !link.broken() {
                return Ok((link.channel.clone(), link.node, link.number));
            }
        }
        if let Some(link) = state.link.take() {
            tracing::warn!(node = %self.label(link.node), "connection to the AMQP node lost; reconnecting, starting with the next node");
            state.rotation.failed(link.node, self.nodes.len());
            let _ = link.connection.close(200, "reconnecting".into()).await;
        }
        let timeout = Duration::from_secs(self.settings.connect_timeout_seconds);
        let props =
            ConnectionProperties::default().with_connection_name(LongString::from(self.connection_name.clone()));
        let (connection, node) = connect_first(&self.nodes, &mut state.rotation, &props, timeout)
            .await
            .map_err(|e| format!("cannot connect to the AMQP broker: {e}"))?;
        let label = self.label(node).to_string();
        let channel = match tokio::time::timeout(timeout, self.prepare(&connection, node)).await {
            Ok(Ok(channel)) => channel,
            outcome => {
                let why = match outcome {
                    Ok(Err(why)) => why,
                    _ => format!("not ready within {}s", timeout.as_secs()),
                };
                if !connection.status().connected() {
                    state.rotation.failed(node, self.nodes.len());
                }
                let _ = connection.close(200, "not ready".into()).await;
                let why = self.nodes.get(node).map_or(why.clone(), |n| n.scrub(&why));
                return Err(format!(
                    "AMQP 节点 {label} 上无法准备发布 / cannot prepare publishing on AMQP node {label}: {why}"
                ));
            }
        };
        tracing::info!(exchange = %self.settings.exchange, node = %label, "connected to the AMQP broker");
        state.opened += 1;
        let number = state.opened;
        state.link = Some(Link {
            connection,
            channel: channel.clone(),
            node,
            number,
        });
        Ok((channel, node, number))
    }

    /// On a new connection: a channel in confirm mode, the exchange and `bind_queue` declared.
    async fn prepare(&self, conn: &Connection, node: usize) -> Result<Channel, String> {
        let failed = |e: lapin::Error| e.to_string();
        let channel = conn.create_channel().await.map_err(failed)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(failed)?;
        let exchange = ShortString::from(self.settings.exchange.as_str());
        if self.settings.declare_exchange {
            let kind = self.settings.exchange_kind().unwrap_or(ExchangeKind::Topic);
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(exchange.clone(), kind, options, FieldTable::default())
                .await
                .map_err(failed)?;
        }
        if let Some(queue) = &self.settings.bind_queue {
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let mut arguments = FieldTable::default();
            self.settings.queue_type().declare_into(&mut arguments);
            channel
                .queue_declare(queue.as_str().into(), options, arguments)
                .await
                .map_err(|e| self.explain_queue(queue, node, &e))?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange,
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(failed)?;
        }
        Ok(channel)
    }

    /// Why `bind_queue` could not be declared; a queue of the other type says what to change.
    fn explain_queue(&self, queue: &str, node: usize, e: &lapin::Error) -> String {
        let diff = match soft_error(e) {
            Some((AMQPSoftError::PRECONDITIONFAILED, text)) => parse_inequivalent(&text),
            _ => None,
        };
        match diff {
            Some(diff) if diff.arg == "x-queue-type" => {
                let vhost = self.nodes.get(node).map_or("", |n| n.vhost());
                let (zh, en) = type_mismatch(queue, vhost, &diff);
                let keep = setting_for(diff.current.as_deref());
                let wanted = self.settings.queue_type().as_str();
                format!(
                    "{zh}；请设 queue_type = \"{keep}\" 按现有类型使用 bind_queue，或先移走其消息、删除该队列后由网关以 {wanted} 类型声明，或去掉 bind_queue 自行绑定队列 / {en}; either set queue_type = \"{keep}\" to use bind_queue as it is, or move its messages elsewhere, delete it and let the gateway declare it as {wanted}, or drop bind_queue and bind the queue yourself"
                )
            }
            _ => e.to_string(),
        }
    }

    /// Forget the connection if it is broken (the next batch opens a new one, starting with
    /// the next node).
    async fn drop_if_broken(&self) {
        let mut state = self.state.lock().await;
        if state.link.as_ref().is_some_and(Link::broken) {
            if let Some(link) = state.link.take() {
                tracing::warn!(node = %self.label(link.node), "connection to the AMQP node lost; the next batch reconnects, starting with the next node");
                state.rotation.failed(link.node, self.nodes.len());
                let _ = link.connection.close(200, "broken".into()).await;
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
        let (channel, node, number) = match self.channel().await {
            Ok(c) => c,
            Err(reason) => return vec![Outcome::deferred(reason); batch.len()],
        };
        let label = self.label(node);
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
                    let reason = format!("publish failed on AMQP node {label}: {}", excerpt(&e.to_string(), 500));
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
                        Err(e) => Outcome::deferred(format!(
                            "confirm lost on AMQP node {label}: {}",
                            excerpt(&e.to_string(), 500)
                        )),
                    });
                }
            }
            Err(_) => {
                for i in indices {
                    outcomes[i] = Some(Outcome::deferred(format!(
                        "no confirm within {}s from AMQP node {label}",
                        timeout.as_secs()
                    )));
                }
                // A node that stops confirming is left for the next one (unless another batch
                // has replaced the connection meanwhile).
                let mut state = self.state.lock().await;
                if state.link.as_ref().is_some_and(|link| link.number == number) {
                    if let Some(link) = state.link.take() {
                        tracing::warn!(node = %label, "the AMQP node stopped confirming; the next batch reconnects, starting with the next node");
                        state.rotation.failed(link.node, self.nodes.len());
                        let _ = link.connection.close(200, "confirm timeout".into()).await;
                    }
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
        if let Some(link) = self.state.lock().await.link.take() {
            let _ = link.connection.close(200, "gateway stopping".into()).await;
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
    fn a_sink_takes_a_list_of_nodes_and_a_quorum_bind_queue() {
        let s: AmqpSettings = toml::from_str(
            "urls = [\"amqp://gw:pw@mq1:5672/cases\", \"amqp://gw:pw@mq2:5672/cases\"]\nbind_queue = \"platform\"\nqueue_type = \"quorum\"",
        )
        .unwrap();
        assert!(s.check(Path::new("/")).is_empty());
        assert_eq!(s.queue_type(), QueueType::Quorum);
        let sink = AmqpSink::new("mq", &s, Path::new("/")).unwrap();
        let shown = format!("{sink:?}");
        assert!(
            shown.contains("[amqp://mq1:5672, amqp://mq2:5672]") && !shown.contains("pw"),
            "{shown}"
        );
        let bad: AmqpSettings =
            toml::from_str("url = \"amqp://a\"\nurls = [\"amqp://b\"]\nqueue_type = \"lazy\"").unwrap();
        let keys: Vec<String> = bad.check(Path::new("/")).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["urls", "queue_type"]);
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

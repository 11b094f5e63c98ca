//! AMQP source (RabbitMQ, via lapin): consume a queue with a prefetch limit, hand messages to
//! the gateway in batches, and acknowledge them only after the gateway has committed the batch
//! (at-least-once: a message whose batch was not committed is redelivered by the broker when
//! the channel closes, and re-sent records are absorbed by content hash).
//!
//! A poison message (over-size, undecodable characters, unparseable JSON or XML, no records)
//! becomes an [`UnparsedRecord`] that the gateway quarantines with the message's raw bytes;
//! after the commit it is rejected without requeue, so the broker dead-letters it (the queue is
//! declared with `x-dead-letter-exchange`) instead of redelivering it forever. A message whose
//! commit keeps failing is made poison by the gateway after `max_redeliveries` failures
//! ([`MessageBatch::split_suspects`], [`MessageBatch::into_poison`]).
//!
//! Before consuming, [`inspect_topology`] compares the queue (and the dead-letter exchange and
//! queue) the broker already holds with what the gateway declares, and turns RabbitMQ's
//! PRECONDITION_FAILED into a [`SourceError::Topology`] that says what differs and what to
//! change; [`check_broker`] does the same without declaring anything, for `gateway config
//! check --connect`.
//!
//! Memory: the broker may deliver as many messages as the consumer's prefetch (its *window*)
//! before any is acknowledged, and lapin keeps every one of them. The window is chosen from the
//! sizes of the messages seen so that the window's messages stay within `max_inflight_bytes`
//! (see [`window`]); a batch also stops taking messages when its bytes reach that bound.

use super::contract::{PulledRecord, SourceError, SourceItem, UnparsedRecord};
use crate::common::amqp_queue::{
    check_queue_type, parse_inequivalent, setting_for, soft_error, type_mismatch, QueueType,
};
use crate::common::amqp_url::{connect_first, BrokerNode, Rotation, UrlKeys};
use crate::common::charset;
use crate::common::secret::Redacted;
use crate::common::settings::SettingsProblem;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use normalizer::xml_tree::{find_records, parse_xml_with_encoding, XmlLimits};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use window::Window;

pub mod window;

/// Settings of a source with `kind = "amqp"` (the `[sources.amqp]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSourceSettings {
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
    /// The queue to consume.
    pub queue: String,
    /// Type of the queue (and of `<queue>.dead`) the gateway declares: `classic` (default) or
    /// `quorum` (`x-queue-type = quorum`: replicated on a majority of the cluster's nodes).
    #[serde(default = "default_queue_type")]
    pub queue_type: String,
    /// Quorum queues: deliveries of a message after which the broker dead-letters it
    /// (`x-delivery-limit`; default 20, as RabbitMQ 4 does; 0: not declared). A backstop for a
    /// message that keeps the gateway from settling it at all (one that stops the process); it
    /// must exceed `max_redeliveries`, so that a message whose commit fails is quarantined by the
    /// gateway before the broker drops it into the dead-letter queue.
    pub delivery_limit: Option<u32>,
    /// Declare the queue (durable, with the dead-letter exchange) when connecting (default
    /// true). Set false to consume a queue that the broker's administrators declare.
    #[serde(default = "default_true")]
    pub declare_queue: bool,
    /// Exchange that rejected poison messages go to (default `ganzhi.dead-letter`); declared
    /// (fanout, durable) with a queue `<queue>.dead` bound to it when `declare_queue` is true.
    #[serde(default = "default_dlx")]
    pub dead_letter_exchange: String,
    /// Messages delivered but not yet acknowledged, at most (default 2000): the ceiling of the
    /// consumer's window, which `max_inflight_bytes` keeps smaller while messages are large.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Bytes of the messages delivered but not yet acknowledged, aimed at (default 64 MiB).
    /// RabbitMQ counts its prefetch in messages only, so the consumer's window (its prefetch)
    /// is sized from the messages seen: it starts at this many bytes of 16 MiB messages (four
    /// by default), doubles after each window's worth of deliveries that it held back while the
    /// doubled window of their largest message still fits, up to `prefetch`, and shrinks at once
    /// when a message is too large for it (see [`window`]). A batch stops taking messages when
    /// its bytes reach this bound.
    /// Messages the broker sends before the gateway has seen how large they are still arrive:
    /// the worst case is the window times the largest message the broker accepts (its
    /// `max_message_size`), see docs/connecting.md.
    #[serde(default = "default_max_inflight_bytes")]
    pub max_inflight_bytes: usize,
    /// Body format when the message's `content_type` does not say: `json` (default; an object
    /// or an array of objects) or `xml`.
    #[serde(default = "default_format")]
    pub format: String,
    /// XML: dotted element path of the records in a message (default: the document element is
    /// one record).
    pub xml_records: Option<String>,
    /// Character set when neither the message nor the XML prolog says (default UTF-8), e.g. `GBK`.
    pub charset: Option<String>,
    /// Largest message accepted, bytes (default 1 MiB); a larger one is poison.
    #[serde(default = "default_max_bytes")]
    pub max_message_bytes: usize,
    /// Messages per commit, at most (default 1000).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest wait for a batch to fill after its first message, milliseconds (default 50).
    #[serde(default = "default_batch_wait")]
    pub batch_wait_ms: u64,
    /// Longest wait for the connection to open, seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// First pause before reconnecting after a failure, milliseconds (default 500); doubled
    /// after every failed attempt up to `reconnect_max_seconds` (default 30).
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    /// Longest pause between reconnection attempts, seconds.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_seconds: u64,
    /// Times a message may fail to commit before it is taken as poison (default 5): its raw
    /// bytes are then quarantined and it is dead-lettered, instead of being redelivered forever.
    /// A message that failed once is committed on its own from then on, so it never holds up
    /// the messages around it.
    #[serde(default = "default_max_redeliveries")]
    pub max_redeliveries: u32,
}

fn default_true() -> bool {
    true
}
fn default_queue_type() -> String {
    "classic".into()
}
/// `x-delivery-limit` of a quorum queue when `delivery_limit` is not set (RabbitMQ 4's default).
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;
fn default_dlx() -> String {
    "ganzhi.dead-letter".into()
}
fn default_prefetch() -> u16 {
    2000
}
fn default_max_inflight_bytes() -> usize {
    64 << 20
}
fn default_format() -> String {
    "json".into()
}
fn default_max_bytes() -> usize {
    1 << 20
}
fn default_batch() -> usize {
    1000
}
fn default_batch_wait() -> u64 {
    50
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_reconnect_initial() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30
}
fn default_max_redeliveries() -> u32 {
    5
}

impl AmqpSourceSettings {
    /// Parse the `[sources.amqp]` table.
    pub fn from_table(table: &toml::Table) -> Result<AmqpSourceSettings, SettingsProblem> {
        let text = toml::to_string(table).unwrap_or_default();
        toml::from_str(&text).map_err(|e| {
            let message = e.message().trim().to_string();
            let key = message
                .strip_prefix("unknown field `")
                .or_else(|| message.strip_prefix("missing field `"))
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_default()
                .to_string();
            SettingsProblem {
                key,
                message: format!("配置项错误 / invalid setting: {message}"),
            }
        })
    }

    fn url_keys(&self) -> UrlKeys<'_> {
        UrlKeys {
            url: self.url.as_ref().map(|u| u.0.as_str()),
            url_env: self.url_env.as_deref(),
            url_file: self.url_file.as_deref(),
            urls: self.urls.as_deref(),
            urls_env: self.urls_env.as_deref(),
            urls_file: self.urls_file.as_deref(),
        }
    }

    /// The broker's nodes (one for `url`). An error names its key and never shows a URL (it
    /// may hold a password).
    pub fn nodes(&self, base: &Path) -> Result<Vec<BrokerNode>, SettingsProblem> {
        self.url_keys().nodes(base)
    }

    /// The type of the queues the gateway declares (classic when `queue_type` is unknown, which
    /// [`AmqpSourceSettings::check`] reports).
    pub fn queue_type(&self) -> QueueType {
        QueueType::parse(&self.queue_type).unwrap_or_default()
    }

    /// The `x-delivery-limit` the queue is declared with: quorum queues only, `None` for 0.
    pub fn declared_delivery_limit(&self) -> Option<u32> {
        match self.queue_type() {
            QueueType::Quorum => Some(self.delivery_limit.unwrap_or(DEFAULT_DELIVERY_LIMIT)).filter(|n| *n > 0),
            QueueType::Classic => None,
        }
    }

    fn encoding(&self) -> Option<&'static encoding_rs::Encoding> {
        self.charset.as_deref().and_then(charset::encoding_for_label)
    }

    /// Everything that can be checked without connecting.
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(SettingsProblem {
                key: key.into(),
                message,
            })
        };
        if let Err(p) = self.nodes(base) {
            problem(&p.key, p.message);
        }
        if let Some(p) = check_queue_type(&self.queue_type) {
            problem(&p.key, p.message);
        }
        match (self.queue_type(), self.delivery_limit) {
            (QueueType::Classic, Some(limit)) => problem(
                "delivery_limit",
                format!("delivery_limit = {limit} 仅适用于仲裁队列（queue_type = \"quorum\"）/ delivery_limit = {limit} applies to quorum queues only (queue_type = \"quorum\")"),
            ),
            (QueueType::Quorum, _) => {
                if let Some(limit) = self.declared_delivery_limit().filter(|n| *n <= self.max_redeliveries) {
                    let max = self.max_redeliveries;
                    problem(
                        "delivery_limit",
                        format!("delivery_limit = {limit} 应大于 max_redeliveries = {max}：否则提交失败的消息会在网关隔离它之前被代理转入死信队列 / delivery_limit = {limit} must exceed max_redeliveries = {max}: else the broker dead-letters a message whose commit fails before the gateway quarantines it"),
                    );
                }
            }
            (QueueType::Classic, None) => {}
        }
        if self.queue.is_empty() || self.queue.len() > 255 {
            problem(
                "queue",
                "队列名称应为1-255字节 / queue name must be 1..255 bytes".into(),
            );
        }
        if self.max_redeliveries == 0 {
            problem("max_redeliveries", "应至少为 1 / must be at least 1".into());
        }
        if self.dead_letter_exchange.is_empty() || self.dead_letter_exchange.len() > 255 {
            problem(
                "dead_letter_exchange",
                "交换机名称应为1-255字节 / exchange name must be 1..255 bytes".into(),
            );
        }
        if self.prefetch == 0 {
            problem("prefetch", "应至少为 1 / must be at least 1".into());
        }
        if !matches!(self.format.as_str(), "json" | "xml") {
            problem(
                "format",
                format!("未知格式 / unknown format {:?}: json or xml", self.format),
            );
        }
        if self.charset.is_some() && self.encoding().is_none() {
            problem(
                "charset",
                format!(
                    "未知字符集 / unknown character set {:?}",
                    self.charset.as_deref().unwrap_or_default()
                ),
            );
        }
        if self.max_message_bytes == 0 {
            problem("max_message_bytes", "应至少为 1 / must be at least 1".into());
        }
        if self.max_inflight_bytes == 0 {
            problem(
                "max_inflight_bytes",
                "未确认消息的字节上限 max_inflight_bytes = 0，应至少为 1 / max_inflight_bytes = 0: must be at least 1"
                    .into(),
            );
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            problem("batch_size", "应在 1..100000 / must be 1..100000".into());
        }
        if self.connect_timeout_seconds == 0 {
            problem("connect_timeout_seconds", "应至少为 1 / must be at least 1".into());
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_max_seconds == 0 {
            problem(
                "reconnect_initial_ms",
                "重连间隔应大于 0 / reconnection pauses must be above 0".into(),
            );
        }
        problems
    }

    /// Pause before reconnection attempt `attempt` (0-based): doubled each time, capped.
    pub fn reconnect_pause(&self, attempt: u32) -> Duration {
        let initial = Duration::from_millis(self.reconnect_initial_ms);
        let max = Duration::from_secs(self.reconnect_max_seconds);
        initial.saturating_mul(1u32 << attempt.min(16)).min(max)
    }
}

/// Check a `[sources.amqp]` table without connecting.
pub fn check_settings(table: &toml::Table, base: &Path) -> Vec<SettingsProblem> {
    match AmqpSourceSettings::from_table(table) {
        Ok(s) => s.check(base),
        Err(p) => vec![p],
    }
}

/// A connected consumer of one queue.
pub struct AmqpConsumer {
    settings: AmqpSourceSettings,
    /// The node connected to, `scheme://host:port`.
    node: String,
    /// Its place in the source's list of nodes.
    node_index: usize,
    connection: Connection,
    channel: Channel,
    /// The running consumer's tag: `ganzhi-<source>` for the connection's first consumer,
    /// `ganzhi-<source>.<n>` for the n-th restarted with a new window. A restarted consumer
    /// never reuses the tag of the one cancelled before it: on a quorum queue, RabbitMQ (at least
    /// up to 3.12) may crash the channel or leave messages stuck when a consumer subscribes again
    /// under the tag of a cancelled one whose deliveries are still in flight (rabbitmq-server
    /// issues 5927 and 9158), and every unacknowledged message would then be redelivered.
    tag: ShortString,
    /// `ganzhi-<source>`.
    tag_base: String,
    stream: Stream,
    window: Window,
    /// What was delivered on this channel and is not settled yet (shared with the batches).
    held: watch::Sender<Held>,
    limits: XmlLimits,
    /// The batch being filled, kept here so that [`AmqpConsumer::next_batch`] is cancel-safe.
    pending: Option<(MessageBatch, tokio::time::Instant)>,
}

/// Where deliveries come from. A new window is applied by cancelling the consumer, taking
/// what it still delivers, and consuming again with the new prefetch once the messages still
/// held and the new window fit ([`Window::may_restart`]).
enum Stream {
    /// Consuming with the window's current prefetch.
    Consuming(Consumer),
    /// Cancelled for a new window: yields what was delivered before the cancel, then ends.
    Draining(Consumer),
    /// Waiting until enough of what was delivered is settled to consume with the new window.
    Paused,
    /// Starting the consumer with the new window; in a task of its own, so that dropping
    /// [`AmqpConsumer::next_batch`] midway loses no consumer (and no messages with it).
    Resuming(tokio::task::JoinHandle<Result<Consumer, lapin::Error>>),
    /// The broker cancelled the consumer.
    Ended,
}

/// Messages delivered on the channel and not yet acknowledged or rejected, as the broker
/// counts them (a batch dropped without being settled stays counted, as on the broker, until
/// the channel closes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    /// Messages.
    messages: usize,
    /// Bytes of their bodies.
    bytes: usize,
    /// Which consumer of the connection is running (counted from 0).
    generation: u64,
    /// Of the messages, those delivered to the running consumer: its prefetch applies to them.
    current: usize,
}

/// What [`AmqpConsumer::next_delivery`] found.
enum Next {
    /// A message.
    Delivery(Box<lapin::message::Delivery>),
    /// The broker cancelled the consumer.
    Ended,
    /// A new window waits for the batch in hand to be settled.
    Blocked,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("queue", &self.settings.queue)
            .finish_non_exhaustive()
    }
}

/// What to do with one message once its batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Reject,
}

/// Messages taken from the queue, with the records they hold, waiting for their commit.
#[derive(Debug)]
pub struct MessageBatch {
    /// The records of every message, in order (a poison message is one unparsed record).
    pub items: Vec<SourceItem>,
    /// Messages in the batch.
    pub messages: usize,
    /// Of which poison (rejected to the dead-letter exchange after the commit).
    pub poison: usize,
    /// Bytes of the messages' bodies.
    pub bytes: usize,
    tags: Vec<(u64, Settle)>,
    /// Per message: its key (see [`MessageBatch::message_keys`]), its body, its items' range.
    bodies: Vec<MessageBody>,
    channel: Channel,
    /// The connection's count of unsettled messages, lowered when this batch is settled.
    held: watch::Sender<Held>,
}

/// One message of a batch as received.
#[derive(Debug)]
struct MessageBody {
    key: String,
    position: String,
    /// The body as received; left empty for a poison message, whose one unparsed item holds it.
    bytes: Vec<u8>,
    /// Bytes of the body.
    size: usize,
    /// The consumer it was delivered to ([`Held::generation`]).
    generation: u64,
    items: std::ops::Range<usize>,
}

/// A message's identity across redeliveries: its `message_id`, else a hash of its body.
fn message_key(message_id: Option<&str>, body: &[u8]) -> String {
    match message_id {
        Some(id) if !id.is_empty() => format!("id:{id}"),
        _ => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut hasher);
            format!("body:{:016x}:{}", hasher.finish(), body.len())
        }
    }
}

impl MessageBatch {
    /// The identity of each message (its `message_id`, else a hash of its body), in order: what
    /// the gateway counts failed commits by.
    pub fn message_keys(&self) -> Vec<String> {
        self.bodies.iter().map(|b| b.key.clone()).collect()
    }

    /// Split the batch, keeping the order, so that every message `suspect` names is a batch of
    /// its own (runs of other messages stay together). Commit and settle the parts in order.
    pub fn split_suspects(self, suspect: impl Fn(&str) -> bool) -> Vec<MessageBatch> {
        if !self.bodies.iter().any(|b| suspect(&b.key)) {
            return vec![self];
        }
        let MessageBatch {
            items,
            tags,
            bodies,
            channel,
            held,
            ..
        } = self;
        let mut items: Vec<Option<SourceItem>> = items.into_iter().map(Some).collect();
        let mut parts: Vec<MessageBatch> = Vec::new();
        let mut open: Option<MessageBatch> = None;
        for ((tag, settle), body) in tags.into_iter().zip(bodies) {
            let alone = suspect(&body.key);
            if alone {
                if let Some(part) = open.take() {
                    parts.push(part);
                }
            }
            let part = open.get_or_insert_with(|| MessageBatch::empty(channel.clone(), held.clone()));
            let start = part.items.len();
            part.items.extend(
                body.items
                    .clone()
                    .filter_map(|i| items.get_mut(i).and_then(Option::take)),
            );
            part.messages += 1;
            part.bytes += body.size;
            if settle == Settle::Reject {
                part.poison += 1;
            }
            part.tags.push((tag, settle));
            part.bodies.push(MessageBody {
                items: start..part.items.len(),
                ..body
            });
            if alone {
                if let Some(part) = open.take() {
                    parts.push(part);
                }
            }
        }
        parts.extend(open);
        parts
    }

    /// A batch of no messages yet.
    fn empty(channel: Channel, held: watch::Sender<Held>) -> MessageBatch {
        MessageBatch {
            items: Vec::new(),
            messages: 0,
            poison: 0,
            bytes: 0,
            tags: Vec::new(),
            bodies: Vec::new(),
            channel,
            held,
        }
    }

    /// Take this batch's messages as poison: each becomes one unparsed record holding its raw
    /// bytes and `reason` (quarantined by the commit), and is rejected to the dead-letter
    /// exchange when settled.
    pub fn into_poison(mut self, reason: &str) -> MessageBatch {
        let mut old: Vec<Option<SourceItem>> = std::mem::take(&mut self.items).into_iter().map(Some).collect();
        self.items = self
            .bodies
            .iter_mut()
            .map(|b| {
                // A poison message's bytes are in its one unparsed item.
                let payload = match old.get_mut(b.items.start).and_then(Option::take) {
                    Some(Err(unparsed)) if b.bytes.is_empty() => unparsed.payload,
                    _ => std::mem::take(&mut b.bytes),
                };
                Err(UnparsedRecord {
                    payload,
                    position: b.position.clone(),
                    message: reason.to_string(),
                })
            })
            .collect();
        for (i, b) in self.bodies.iter_mut().enumerate() {
            b.items = i..i + 1;
        }
        for (_, settle) in &mut self.tags {
            *settle = Settle::Reject;
        }
        self.poison = self.messages;
        self
    }

    /// Reject every message of the batch to the dead-letter exchange without committing it (for
    /// a message that cannot even be quarantined).
    pub async fn dead_letter(self) -> Result<(), SourceError> {
        for (tag, _) in &self.tags {
            self.channel
                .basic_reject(*tag, BasicRejectOptions { requeue: false })
                .await
                .map_err(|e| SourceError::Unavailable(format!("AMQP rejection failed: {e}")))?;
        }
        self.release();
        Ok(())
    }

    /// Count this batch's messages as settled.
    fn release(&self) {
        let (messages, bytes) = (self.messages, self.bytes);
        self.held.send_modify(|h| {
            let current = self.bodies.iter().filter(|b| b.generation == h.generation).count();
            h.messages = h.messages.saturating_sub(messages);
            h.bytes = h.bytes.saturating_sub(bytes);
            h.current = h.current.saturating_sub(current);
        });
    }

    /// Acknowledge the batch's messages (reject the poison ones without requeue). Call only
    /// after the batch is committed.
    pub async fn settle(self) -> Result<(), SourceError> {
        let unavailable = |e: lapin::Error| SourceError::Unavailable(format!("AMQP acknowledgement failed: {e}"));
        if self.tags.iter().all(|(_, s)| *s == Settle::Ack) {
            if let Some((last, _)) = self.tags.last() {
                self.channel
                    .basic_ack(*last, BasicAckOptions { multiple: true })
                    .await
                    .map_err(unavailable)?;
            }
            self.release();
            return Ok(());
        }
        for (tag, settle) in &self.tags {
            match settle {
                Settle::Ack => self.channel.basic_ack(*tag, BasicAckOptions::default()).await,
                Settle::Reject => {
                    self.channel
                        .basic_reject(*tag, BasicRejectOptions { requeue: false })
                        .await
                }
            }
            .map_err(unavailable)?;
        }
        self.release();
        Ok(())
    }
}

impl AmqpConsumer {
    /// Connect, check the topology against the broker's (declaring what is missing when
    /// `declare_queue` is set, see [`inspect_topology`]) and start consuming.
    ///
    /// The broker's nodes are tried in `rotation`'s order (the one after the node that failed
    /// last first); each that fails is logged by its label, and the error names every node tried.
    pub async fn connect(
        source_id: &str,
        settings: &AmqpSourceSettings,
        base: &Path,
        rotation: &mut Rotation,
    ) -> Result<AmqpConsumer, SourceError> {
        let nodes = settings.nodes(base).map_err(|p| SourceError::Settings(p.to_string()))?;
        let (connection, index) = open_connection(source_id, settings, &nodes, rotation).await?;
        let node = nodes.get(index).map(|n| n.label().to_string()).unwrap_or_default();
        let vhost = nodes.get(index).map(|n| n.vhost().to_string()).unwrap_or_default();
        let timeout = Duration::from_secs(settings.connect_timeout_seconds);
        let window = Window::new(
            settings.prefetch,
            settings.max_inflight_bytes,
            settings.max_message_bytes,
        );
        let tag_base = format!("ganzhi-{source_id}");
        let tag = ShortString::from(tag_base.as_str());
        let ready = async {
            inspect_topology(&connection, settings, &vhost, true).await?;
            let channel = connection.create_channel().await.map_err(unavailable)?;
            let consumer = start_consuming(channel.clone(), settings.queue.clone(), tag.clone(), window.current())
                .await
                .map_err(unavailable)?;
            Ok::<_, SourceError>((channel, consumer))
        };
        let ready = tokio::time::timeout(timeout, ready)
            .await
            .unwrap_or_else(|_| Err(not_reached(timeout)));
        let (channel, consumer) = match ready {
            Ok(parts) => parts,
            Err(e) => {
                if !connection.status().connected() {
                    rotation.failed(index, nodes.len());
                }
                let _ = connection.close(200, "not consuming".into()).await;
                return Err(match e {
                    SourceError::Unavailable(m) => SourceError::Unavailable(format!("AMQP 节点 / node {node}: {m}")),
                    e => e,
                });
            }
        };
        Ok(AmqpConsumer {
            settings: settings.clone(),
            node,
            node_index: index,
            connection,
            channel,
            tag,
            tag_base,
            stream: Stream::Consuming(consumer),
            window,
            held: watch::Sender::new(Held::default()),
            limits: XmlLimits {
                max_bytes: settings.max_message_bytes,
                ..XmlLimits::default()
            },
            pending: None,
        })
    }

    /// The next batch: waits for a first message, then takes more until the batch is full (of
    /// `batch_size` messages or `max_inflight_bytes` bytes), the window is exhausted (nothing
    /// more can be delivered before something is acknowledged) or `batch_wait_ms` has passed.
    /// `None` when the broker cancelled the consumer. Cancel-safe: messages taken before the
    /// future is dropped stay in the batch the next call returns.
    pub async fn next_batch(&mut self) -> Result<Option<MessageBatch>, SourceError> {
        if self.pending.is_none() {
            let first = match self.next_delivery(false).await? {
                Next::Delivery(d) => d,
                Next::Ended | Next::Blocked => return Ok(None),
            };
            let mut batch = MessageBatch::empty(self.channel.clone(), self.held.clone());
            self.take(&mut batch, *first);
            let deadline = tokio::time::Instant::now() + Duration::from_millis(self.settings.batch_wait_ms);
            self.pending = Some((batch, deadline));
        }
        loop {
            let Some((batch, deadline)) = self.pending.take() else {
                return Ok(None);
            };
            if self.batch_is_full(&batch) {
                return Ok(Some(batch));
            }
            self.pending = Some((batch, deadline));
            let next = tokio::time::timeout_at(deadline, self.next_delivery(true)).await;
            let Some((mut batch, deadline)) = self.pending.take() else {
                return Ok(None);
            };
            match next {
                Err(_) | Ok(Ok(Next::Ended | Next::Blocked)) => return Ok(Some(batch)),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Next::Delivery(d))) => {
                    self.take(&mut batch, *d);
                    self.pending = Some((batch, deadline));
                }
            }
        }
    }

    /// The window the consumer runs with now (messages).
    pub fn window(&self) -> u16 {
        self.window.current()
    }

    /// Whether a batch takes no more messages: `batch_size` reached, `max_inflight_bytes`
    /// reached, or the window exhausted with no new one coming.
    fn batch_is_full(&self, batch: &MessageBatch) -> bool {
        batch.messages >= self.settings.batch_size
            || batch.bytes >= self.settings.max_inflight_bytes
            || (self.window_exhausted() && !self.window.change_due())
    }

    /// Every message the running consumer's window allows is delivered and unsettled.
    fn window_exhausted(&self) -> bool {
        matches!(self.stream, Stream::Consuming(_)) && self.held.borrow().current >= usize::from(self.window.current())
    }

    /// The consumer's stream ended: the cancel for a new window went through, or the broker
    /// cancelled the consumer.
    fn consumer_ended(&mut self) {
        self.stream = match self.stream {
            Stream::Draining(_) => Stream::Paused,
            _ => Stream::Ended,
        };
    }

    /// When the window is to change, cancel the consumer (in a task of its own: the cancel is
    /// sent even if the caller's future is dropped); its stream then ends after its last
    /// delivery.
    fn change_window_if_due(&mut self) {
        if !self.window.change_due() || !matches!(self.stream, Stream::Consuming(_)) {
            return;
        }
        let Stream::Consuming(consumer) = std::mem::replace(&mut self.stream, Stream::Paused) else {
            return;
        };
        tracing::debug!(queue = %self.settings.queue, from = self.window.current(), to = self.window.target(),
            "changing the consumer's window: cancelling it, then consuming again");
        let channel = self.channel.clone();
        let tag = self.tag.clone();
        tokio::spawn(async move {
            if let Err(e) = channel.basic_cancel(tag, BasicCancelOptions::default()).await {
                tracing::debug!(error = %e, "AMQP consumer cancel failed; the channel is going away");
            }
        });
        self.stream = Stream::Draining(consumer);
    }

    /// Start the consumer with the target window (in a task of its own, see [`Stream::Resuming`]).
    fn resume(&mut self) {
        let window = self.window.restart();
        self.held.send_modify(|h| {
            h.generation += 1;
            h.current = 0;
        });
        let generation = self.held.borrow().generation;
        self.tag = ShortString::from(format!("{}.{generation}", self.tag_base));
        tracing::debug!(queue = %self.settings.queue, window, tag = %self.tag, "consuming with a new window");
        self.stream = Stream::Resuming(tokio::spawn(start_consuming(
            self.channel.clone(),
            self.settings.queue.clone(),
            self.tag.clone(),
            window,
        )));
    }

    /// The next delivery, following the consumer through window changes. `in_hand`: a batch is
    /// being filled, so a new window that waits for messages to be settled answers
    /// [`Next::Blocked`] at once instead of waiting.
    async fn next_delivery(&mut self, in_hand: bool) -> Result<Next, SourceError> {
        let unavailable = |e: lapin::Error| SourceError::Unavailable(format!("AMQP: {e}"));
        loop {
            match &mut self.stream {
                Stream::Consuming(consumer) | Stream::Draining(consumer) => {
                    let next = consumer.next().await;
                    match next {
                        Some(Ok(d)) => return Ok(Next::Delivery(Box::new(d))),
                        Some(Err(e)) => return Err(unavailable(e)),
                        None => self.consumer_ended(),
                    }
                }
                Stream::Paused => {
                    let held = *self.held.borrow();
                    if self.window.may_restart(held.messages, held.bytes) {
                        self.resume();
                    } else if in_hand {
                        return Ok(Next::Blocked);
                    } else {
                        let window = &self.window;
                        let mut held = self.held.subscribe();
                        // Fails only when every sender is dropped, and `self` holds one.
                        let _ = held.wait_for(|h| window.may_restart(h.messages, h.bytes)).await;
                    }
                }
                Stream::Resuming(task) => {
                    let started = task.await;
                    match started {
                        Ok(Ok(consumer)) => self.stream = Stream::Consuming(consumer),
                        Ok(Err(e)) => {
                            self.stream = Stream::Ended;
                            return Err(unavailable(e));
                        }
                        Err(e) => {
                            self.stream = Stream::Ended;
                            return Err(SourceError::Unavailable(format!("AMQP consumer task failed: {e}")));
                        }
                    }
                }
                Stream::Ended => return Ok(Next::Ended),
            }
        }
    }

    fn take(&mut self, batch: &mut MessageBatch, delivery: lapin::message::Delivery) {
        let tag = delivery.delivery_tag;
        let size = delivery.data.len();
        self.held.send_modify(|h| {
            h.messages += 1;
            h.bytes += size;
            h.current += 1;
        });
        let generation = self.held.borrow().generation;
        let before = self.window.target();
        self.window.on_message(size, self.window_exhausted());
        if self.window.target() < before {
            tracing::info!(queue = %self.settings.queue, bytes = size, window = self.window.target(),
                max_inflight_bytes = self.settings.max_inflight_bytes,
                "large message: the consumer's window shrinks to what max_inflight_bytes allows");
        }
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string());
        let key = message_key(message_id.as_deref(), &delivery.data);
        let first_item = batch.items.len();
        let id = message_id
            .as_ref()
            .map(|m| format!(" message_id {m}"))
            .unwrap_or_default();
        let position = format!("queue {} delivery {tag}{id}", self.settings.queue);
        let content_type = delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_ascii_lowercase());
        // The raw bytes are kept for [`MessageBatch::into_poison`]; a poison message's are in
        // its unparsed item already (an over-size one is not even copied).
        let mut bytes = if size > self.settings.max_message_bytes {
            Vec::new()
        } else {
            delivery.data.clone()
        };
        match decode_message(
            &self.settings,
            &self.limits,
            content_type.as_deref(),
            delivery.data,
            &position,
        ) {
            Ok(records) => {
                batch.items.extend(records.into_iter().map(Ok));
                batch.tags.push((tag, Settle::Ack));
            }
            Err(poison) => {
                tracing::warn!(queue = %self.settings.queue, delivery = tag, reason = %poison.message,
                    "poison message: quarantined, then rejected to the dead-letter exchange");
                bytes = Vec::new();
                batch.items.push(Err(poison));
                batch.poison += 1;
                batch.tags.push((tag, Settle::Reject));
            }
        }
        batch.bodies.push(MessageBody {
            key,
            position,
            bytes,
            size,
            generation,
            items: first_item..batch.items.len(),
        });
        batch.messages += 1;
        batch.bytes += size;
        self.change_window_if_due();
    }

    /// The node the consumer is connected to, `scheme://host:port` (never with credentials).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the connection to the node is lost (the node went away or the network broke),
    /// rather than the consumer having stopped for another reason (the store failed).
    pub fn connection_lost(&self) -> bool {
        !self.connection.status().connected()
    }

    /// Tell `rotation` how the connection ended: when it was lost, a reconnection starts with
    /// the next node.
    pub fn note_end(&self, rotation: &mut Rotation, node_count: usize) {
        if self.connection_lost() {
            rotation.failed(self.node_index, node_count);
        }
    }

    /// Close the connection; unacknowledged messages go back to the queue.
    pub async fn close(self) {
        let _ = self.channel.close(200, "closing".into()).await;
        let _ = self.connection.close(200, "closing".into()).await;
    }
}

/// Start a consumer of `queue` on `channel` with a prefetch of `window` messages (a per-consumer
/// prefetch, fixed for the consumer's life).
async fn start_consuming(
    channel: Channel,
    queue: String,
    tag: ShortString,
    window: u16,
) -> Result<Consumer, lapin::Error> {
    channel.basic_qos(window, BasicQosOptions::default()).await?;
    channel
        .basic_consume(
            queue.as_str().into(),
            tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// An AMQP failure that retrying may cure (the broker away, a channel closed).
fn unavailable(e: lapin::Error) -> SourceError {
    SourceError::Unavailable(format!("AMQP: {e}"))
}

fn not_reached(timeout: Duration) -> SourceError {
    SourceError::Unavailable(format!("AMQP broker not reached within {}s", timeout.as_secs()))
}

/// Open a connection to the first of the source's broker nodes that answers, in `rotation`'s
/// order (each within `connect_timeout_seconds`): the connection and the node's index.
async fn open_connection(
    source_id: &str,
    settings: &AmqpSourceSettings,
    nodes: &[BrokerNode],
    rotation: &mut Rotation,
) -> Result<(Connection, usize), SourceError> {
    let timeout = Duration::from_secs(settings.connect_timeout_seconds);
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("ganzhi-gateway source {source_id}")));
    connect_first(nodes, rotation, &props, timeout)
        .await
        .map_err(|e| SourceError::Unavailable(e.to_string()))
}

/// Connect to each of the source's broker nodes and compare, on the first that answers, its
/// queue (and, with `declare_queue`, the dead-letter exchange and queue) with what the gateway
/// declares, changing nothing: one line per node and per object, each `Ok`, or the error the
/// consumer would report at start (a node that cannot be reached is one). For `gateway config
/// check --connect`.
pub async fn check_broker(
    source_id: &str,
    settings: &AmqpSourceSettings,
    base: &Path,
) -> Vec<Result<String, SourceError>> {
    let nodes = match settings.nodes(base) {
        Ok(nodes) => nodes,
        Err(p) => return vec![Err(SourceError::Settings(p.to_string()))],
    };
    let timeout = Duration::from_secs(settings.connect_timeout_seconds);
    let mut lines = Vec::new();
    let mut checked = false;
    for node in &nodes {
        let one = std::slice::from_ref(node);
        let connection = match open_connection(source_id, settings, one, &mut Rotation::default()).await {
            Ok((connection, _)) => connection,
            Err(e) => {
                lines.push(Err(e));
                continue;
            }
        };
        let label = node.label();
        lines.push(Ok(format!("AMQP 节点 {label}：可连接 / AMQP node {label}: reachable")));
        if !checked {
            checked = true;
            let inspected = tokio::time::timeout(timeout, inspect_topology(&connection, settings, node.vhost(), false))
                .await
                .unwrap_or_else(|_| Err(not_reached(timeout)));
            match inspected {
                Ok(found) => lines.extend(found.into_iter().map(Ok)),
                Err(e) => lines.push(Err(e)),
            }
        }
        let _ = connection.close(200, "checked".into()).await;
    }
    lines
}

/// What the gateway declares for an AMQP source with `declare_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The source's queue: durable, `x-dead-letter-exchange` = `dead_letter_exchange`.
    Queue,
    /// `dead_letter_exchange`: fanout, durable.
    DeadLetterExchange,
    /// `<queue>.dead`: durable, no arguments, bound to the dead-letter exchange.
    DeadQueue,
}

impl Part {
    /// (Chinese, English) kind of object, and its name.
    fn object(self, settings: &AmqpSourceSettings) -> (&'static str, &'static str, String) {
        match self {
            Part::Queue => ("队列", "queue", settings.queue.clone()),
            Part::DeadLetterExchange => ("交换机", "exchange", settings.dead_letter_exchange.clone()),
            Part::DeadQueue => ("队列", "queue", dead_queue_name(settings)),
        }
    }

    /// How the gateway declares it, in words.
    fn declared(self, settings: &AmqpSourceSettings) -> String {
        let kind = settings.queue_type().declared_words();
        match self {
            Part::Queue => {
                let limit = settings
                    .declared_delivery_limit()
                    .map(|n| format!(", x-delivery-limit = {n}"))
                    .unwrap_or_default();
                format!(
                    "durable = true{kind}, x-dead-letter-exchange = '{}'{limit}",
                    settings.dead_letter_exchange
                )
            }
            Part::DeadLetterExchange => "type = 'fanout', durable = true".into(),
            Part::DeadQueue => format!("durable = true{kind}"),
        }
    }

    /// The declaration's arguments.
    fn arguments(self, settings: &AmqpSourceSettings) -> FieldTable {
        let mut arguments = FieldTable::default();
        match self {
            Part::Queue => {
                settings.queue_type().declare_into(&mut arguments);
                arguments.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(settings.dead_letter_exchange.as_str().into()),
                );
                if let Some(limit) = settings.declared_delivery_limit() {
                    arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(limit)));
                }
            }
            Part::DeadQueue => settings.queue_type().declare_into(&mut arguments),
            Part::DeadLetterExchange => {}
        }
        arguments
    }
}

fn dead_queue_name(settings: &AmqpSourceSettings) -> String {
    format!("{}.dead", settings.queue)
}

/// Compare the source's topology with the broker's and, with `create`, declare what is
/// missing. Each existing object is first declared passively (which tells only that it exists),
/// then actively with the gateway's properties: RabbitMQ answers PRECONDITION_FAILED naming the
/// first property that differs, which becomes a [`SourceError::Topology`] saying what to change.
/// Without `create` nothing is created. With `declare_queue = false` the queue must exist and
/// is not compared. Every operation runs on a channel of its own (a refusal closes its channel).
pub async fn inspect_topology(
    connection: &Connection,
    settings: &AmqpSourceSettings,
    vhost: &str,
    create: bool,
) -> Result<Vec<String>, SourceError> {
    let queue = &settings.queue;
    if !settings.declare_queue {
        return match passive_queue(connection, queue).await? {
            Some(q) => Ok(vec![format!(
                "队列 {queue} 已存在（{}）；declare_queue = false，不比较其参数 / queue {queue} exists ({}); declare_queue = false: its arguments are not compared",
                counts_zh(&q),
                counts_en(&q)
            )]),
            None => Err(SourceError::Topology(format!(
                "队列 {queue} 不存在于 vhost {vhost}：declare_queue = false 时须由代理管理员事先声明；请声明该队列，或设 declare_queue = true 由网关声明 / queue {queue} does not exist in vhost {vhost}: with declare_queue = false the broker's administrators declare it; declare it, or set declare_queue = true to let the gateway declare it"
            ))),
        };
    }
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    for part in [Part::Queue, Part::DeadLetterExchange, Part::DeadQueue] {
        let (zh, en, name) = part.object(settings);
        let exists = match part {
            Part::DeadLetterExchange => passive_exchange(connection, &name).await?.then_some(None),
            _ => passive_queue(connection, &name).await?.map(Some),
        };
        match exists {
            Some(q) => {
                declare(connection, part, settings, vhost).await?;
                let (counts_zh, counts_en) = q.as_ref().map_or_else(Default::default, |q| {
                    (format!("，{}", counts_zh(q)), format!(", {}", counts_en(q)))
                });
                lines.push(format!(
                    "{zh} {name}：已存在，与网关的声明一致{counts_zh} / {en} {name}: exists as the gateway declares it{counts_en}"
                ));
            }
            None => {
                missing.push(part);
                lines.push(format!(
                    "{zh} {name}：不存在，网关启动时声明（{}）/ {en} {name}: absent, declared by the gateway at start ({})",
                    part.declared(settings),
                    part.declared(settings)
                ));
            }
        }
    }
    if create {
        // The dead-letter exchange and queue before the queue that names them.
        for part in [Part::DeadLetterExchange, Part::DeadQueue, Part::Queue] {
            if missing.contains(&part) {
                declare(connection, part, settings, vhost).await?;
            }
        }
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel
            .queue_bind(
                dead_queue_name(settings).as_str().into(),
                settings.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let _ = channel.close(200, "declared".into()).await;
    }
    Ok(lines)
}

fn counts_zh(q: &lapin::Queue) -> String {
    format!("{} 条消息，{} 个消费者", q.message_count(), q.consumer_count())
}

fn counts_en(q: &lapin::Queue) -> String {
    format!("{} messages, {} consumers", q.message_count(), q.consumer_count())
}

/// The queue `name` as the broker has it, or `None` when it does not exist.
async fn passive_queue(connection: &Connection, name: &str) -> Result<Option<lapin::Queue>, SourceError> {
    let channel = connection.create_channel().await.map_err(unavailable)?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel.queue_declare(name.into(), options, FieldTable::default()).await {
        Ok(q) => {
            let _ = channel.close(200, "checked".into()).await;
            Ok(Some(q))
        }
        Err(e) if matches!(soft_error(&e), Some((AMQPSoftError::NOTFOUND, _))) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// Whether the exchange `name` exists.
async fn passive_exchange(connection: &Connection, name: &str) -> Result<bool, SourceError> {
    let channel = connection.create_channel().await.map_err(unavailable)?;
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    match channel
        .exchange_declare(name.into(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
    {
        Ok(()) => {
            let _ = channel.close(200, "checked".into()).await;
            Ok(true)
        }
        Err(e) if matches!(soft_error(&e), Some((AMQPSoftError::NOTFOUND, _))) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

/// Declare `part` with the gateway's properties (a no-op for an equal one); PRECONDITION_FAILED
/// becomes a [`SourceError::Topology`] saying what differs and what to change.
async fn declare(
    connection: &Connection,
    part: Part,
    settings: &AmqpSourceSettings,
    vhost: &str,
) -> Result<(), SourceError> {
    let channel = connection.create_channel().await.map_err(unavailable)?;
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let result = match part {
        Part::Queue | Part::DeadQueue => {
            let (_, _, name) = part.object(settings);
            channel
                .queue_declare(name.as_str().into(), durable_queue, part.arguments(settings))
                .await
                .map(drop)
        }
        Part::DeadLetterExchange => {
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    settings.dead_letter_exchange.as_str().into(),
                    ExchangeKind::Fanout,
                    durable,
                    FieldTable::default(),
                )
                .await
        }
    };
    match result {
        Ok(()) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(e) => match soft_error(&e) {
            Some((AMQPSoftError::PRECONDITIONFAILED, text)) => {
                Err(SourceError::Topology(explain(part, settings, vhost, &text)))
            }
            _ => Err(unavailable(e)),
        },
    }
}

/// What to say when the broker refuses to declare `part` as the gateway does (`text`: the
/// broker's reply): the object, the property it holds, the one the gateway would set, and what
/// to change.
fn explain(part: Part, settings: &AmqpSourceSettings, vhost: &str, text: &str) -> String {
    let (what_zh, what_en, name) = part.object(settings);
    let Some(diff) = parse_inequivalent(text) else {
        let declared = part.declared(settings);
        let (advice_zh, advice_en) = advice(part, settings, &name, &declared, None);
        return format!(
            "{what_zh} {name} 已存在于 vhost {vhost}，其属性与网关的声明（{declared}）不同，代理拒绝：{text}；{advice_zh} / {what_en} {name} exists in vhost {vhost} with other properties than the gateway declares ({declared}), and the broker refuses: {text}; {advice_en}"
        );
    };
    let arg = &diff.arg;
    if arg == "x-queue-type" && part != Part::DeadLetterExchange {
        let (account_zh, account_en) = type_mismatch(&name, vhost, &diff);
        let (advice_zh, advice_en) = type_advice(part, settings, &name, diff.current.as_deref());
        return format!("{account_zh}；{advice_zh} / {account_en}; {advice_en}");
    }
    let (held_zh, held_en) = match &diff.current {
        None => (format!("且没有 {arg}"), format!("{arg} absent")),
        Some(v) => (format!("其 {arg} = '{v}'"), format!("{arg} = '{v}'")),
    };
    let (wanted_zh, wanted_en) = match &diff.received {
        None => (format!("不带 {arg}"), format!("no {arg}")),
        Some(v) => (format!("{arg} = '{v}'"), format!("{arg} = '{v}'")),
    };
    let own = match (part, arg.as_str()) {
        (Part::Queue, "x-dead-letter-exchange") => diff
            .current
            .as_ref()
            .map(|dlx| (format!("dead_letter_exchange = \"{dlx}\""), "dead-letter exchange")),
        (Part::Queue, "x-delivery-limit") => Some((
            format!("delivery_limit = {}", diff.current.as_deref().unwrap_or("0")),
            "delivery limit",
        )),
        _ => None,
    };
    let (advice_zh, advice_en) = advice(part, settings, &name, &wanted_en, own);
    format!(
        "{what_zh} {name} 已存在于 vhost {vhost}，{held_zh}；网关会以 {wanted_zh} 声明它，代理拒绝（PRECONDITION_FAILED）：{advice_zh} / {what_en} {name} exists in vhost {vhost} with {held_en}; the gateway would declare it with {wanted_en}, which the broker refuses (PRECONDITION_FAILED): {advice_en}"
    )
}

/// What to change so that `part` (named `name`) and the gateway agree. `own`: the setting that
/// would take over the queue's own value of the argument that differs, and what that value is.
fn advice(
    part: Part,
    settings: &AmqpSourceSettings,
    name: &str,
    wanted: &str,
    own: Option<(String, &str)>,
) -> (String, String) {
    match part {
        Part::Queue => {
            let (mut zh, mut en) = (
                format!("请设 declare_queue = false 并自行为该队列配置死信交换机与死信队列，或删除该队列（或以 {wanted} 重建）后由网关声明"),
                format!("either set declare_queue = false and bind a dead-letter exchange and queue to it yourself, or delete the queue (or recreate it with {wanted}) and let the gateway declare it"),
            );
            if let Some((setting, what)) = own {
                let what_zh = if what == "delivery limit" { "投递次数上限" } else { "死信交换机" };
                zh.push_str(&format!("；或设 {setting} 沿用该队列已有的{what_zh}"));
                en.push_str(&format!("; or set {setting} to use the queue's own {what}"));
            }
            (zh, en)
        }
        Part::DeadLetterExchange => (
            format!("请把 dead_letter_exchange 设为未被使用的交换机名，或删除交换机 {name}（或以 {wanted} 重建），或设 declare_queue = false"),
            format!("either set dead_letter_exchange to an exchange name not in use, or delete the exchange {name} (or recreate it with {wanted}), or set declare_queue = false"),
        ),
        Part::DeadQueue => (
            format!("请删除队列 {name}（或以 {wanted} 重建）后由网关声明，或设 declare_queue = false 并自行处理死信（队列 {} 的死信）", settings.queue),
            format!("either delete the queue {name} (or recreate it with {wanted}) and let the gateway declare it, or set declare_queue = false and look after the dead letters of {} yourself", settings.queue),
        ),
    }
}

/// What to change when `part` (named `name`) exists as another type of queue (`held`: its
/// `x-queue-type`, absent for classic) than `queue_type` declares.
fn type_advice(part: Part, settings: &AmqpSourceSettings, name: &str, held: Option<&str>) -> (String, String) {
    let keep = setting_for(held);
    let wanted = settings.queue_type().as_str();
    match part {
        Part::DeadQueue => (
            format!("请设 queue_type = \"{keep}\" 沿用现有队列，或先移走队列 {name} 中的死信、删除该队列后由网关以 {wanted} 类型声明，或设 declare_queue = false 并自行处理死信"),
            format!("either set queue_type = \"{keep}\" to keep the queues as they are, or move the dead letters out of {name}, delete it and let the gateway declare it as {wanted}, or set declare_queue = false and look after the dead letters of {} yourself", settings.queue),
        ),
        _ => (
            format!("请设 queue_type = \"{keep}\" 按现有类型使用该队列，或先将其消息移走（例如用 shovel）、删除该队列后由网关以 {wanted} 类型声明，或设 declare_queue = false"),
            format!("either set queue_type = \"{keep}\" to use the queue as it is, or move its messages elsewhere (e.g. with a shovel), delete it and let the gateway declare it as {wanted}, or set declare_queue = false"),
        ),
    }
}

fn poison(payload: Vec<u8>, position: &str, message: String) -> UnparsedRecord {
    UnparsedRecord {
        payload,
        position: position.to_string(),
        message,
    }
}

/// The records of one message body, or why it is poison.
pub fn decode_message(
    settings: &AmqpSourceSettings,
    limits: &XmlLimits,
    content_type: Option<&str>,
    body: Vec<u8>,
    position: &str,
) -> Result<Vec<PulledRecord>, UnparsedRecord> {
    if body.len() > settings.max_message_bytes {
        let message = format!(
            "消息 {} 字节，超过上限 max_message_bytes = {} / message of {} bytes exceeds max_message_bytes = {}",
            body.len(),
            settings.max_message_bytes,
            body.len(),
            settings.max_message_bytes
        );
        return Err(poison(body, position, message));
    }
    let declared = content_type.and_then(charset::content_type_charset);
    let is_xml = match content_type {
        Some(c) if c.contains("xml") => true,
        Some(c) if c.contains("json") => false,
        _ => settings.format == "xml",
    };
    if is_xml {
        let tree = match parse_xml_with_encoding(&body, limits, declared.or(settings.encoding())) {
            Ok(t) => t,
            Err(e) => {
                return Err(poison(
                    body,
                    position,
                    format!("XML 无法解析 / XML cannot be parsed: {e}"),
                ))
            }
        };
        let found: Vec<&Value> = match &settings.xml_records {
            Some(path) => find_records(&tree, path),
            None => vec![&tree],
        };
        if found.is_empty() {
            let path = settings.xml_records.as_deref().unwrap_or_default();
            return Err(poison(
                body,
                position,
                format!("消息中没有位于 {path} 的记录 / no records at element path {path:?} in the message"),
            ));
        }
        return Ok(found
            .into_iter()
            .enumerate()
            .map(|(i, v)| PulledRecord {
                payload: serde_json::to_vec(v).unwrap_or_default(),
                value: v.clone(),
                position: format!("{position} #{}", i + 1),
                watermark_in_future: None,
            })
            .collect());
    }
    let text = match declared.or(settings.encoding()) {
        Some(enc) if enc != encoding_rs::UTF_8 => {
            match enc.decode_without_bom_handling_and_without_replacement(&body) {
                Some(t) => t.into_owned(),
                None => {
                    return Err(poison(
                        body,
                        position,
                        format!(
                            "消息不是有效的 {} 编码 / message is not valid {}",
                            enc.name(),
                            enc.name()
                        ),
                    ))
                }
            }
        }
        _ => match std::str::from_utf8(&body) {
            Ok(t) => t.trim_start_matches('\u{feff}').to_string(),
            Err(e) => {
                return Err(poison(
                    body,
                    position,
                    format!("消息不是有效的 UTF-8 编码 / message is not valid UTF-8: {e}"),
                ))
            }
        },
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(values)) if !values.is_empty() && values.iter().all(Value::is_object) => Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, v)| PulledRecord {
                payload: serde_json::to_vec(&v).unwrap_or_default(),
                value: v,
                position: format!("{position} #{}", i + 1),
                watermark_in_future: None,
            })
            .collect()),
        Ok(v @ Value::Object(_)) => Ok(vec![PulledRecord {
            value: v,
            payload: text.into_bytes(),
            position: position.to_string(),
            watermark_in_future: None,
        }]),
        Ok(_) => Err(poison(
            body,
            position,
            "消息应为 JSON 对象或对象数组 / message must be a JSON object or a non-empty array of objects".into(),
        )),
        Err(e) => Err(poison(
            body,
            position,
            format!("JSON 无法解析 / JSON cannot be parsed: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> AmqpSourceSettings {
        let table: toml::Table = toml::from_str(&format!(
            "url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nqueue = \"q\"\n{extra}"
        ))
        .unwrap();
        AmqpSourceSettings::from_table(&table).unwrap()
    }

    fn decode(
        s: &AmqpSourceSettings,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<PulledRecord>, UnparsedRecord> {
        let limits = XmlLimits {
            max_bytes: s.max_message_bytes,
            ..XmlLimits::default()
        };
        decode_message(s, &limits, content_type, body.to_vec(), "queue q delivery 1")
    }

    #[test]
    fn json_object_message_is_one_record_and_array_is_several() {
        let s = settings("");
        assert_eq!(decode(&s, None, br#"{"ajbh":"1"}"#).unwrap().len(), 1);
        let many = decode(&s, Some("application/json"), br#"[{"ajbh":"1"},{"ajbh":"2"}]"#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].value["ajbh"], "2");
        assert!(many[1].position.ends_with("#2"));
    }

    #[test]
    fn poison_messages_keep_their_raw_bytes_and_say_why() {
        let s = settings("max_message_bytes = 64");
        let bad_json = decode(&s, None, b"{not json").unwrap_err();
        assert_eq!(bad_json.payload, b"{not json");
        assert!(bad_json.message.contains("JSON"), "{}", bad_json.message);
        let big = vec![b' '; 65];
        assert!(decode(&s, None, &big)
            .unwrap_err()
            .message
            .contains("max_message_bytes"));
        let not_utf8 = decode(&s, None, &[0x7b, 0xff, 0xfe, 0x7d]).unwrap_err();
        assert!(not_utf8.message.contains("UTF-8"));
        assert!(decode(&s, None, b"42").unwrap_err().message.contains("JSON"));
    }

    #[test]
    fn gbk_json_and_xml_records_are_decoded() {
        let s = settings("format = \"xml\"\nxml_records = \"cases.case\"");
        let (gbk, _, _) = encoding_rs::GBK.encode("<?xml version=\"1.0\" encoding=\"GBK\"?><cases><case><dsr>张三</dsr></case><case><dsr>李四</dsr></case></cases>");
        let records = decode(&s, None, &gbk).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].value["dsr"], "李四");
        let json = settings("charset = \"GBK\"");
        let (body, _, _) = encoding_rs::GBK.encode(r#"{"dsr":"王五"}"#);
        assert_eq!(decode(&json, None, &body).unwrap()[0].value["dsr"], "王五");
        let utf8_default = settings("");
        let declared = decode(&utf8_default, Some("application/json; charset=gbk"), &body).unwrap();
        assert_eq!(
            declared[0].value["dsr"], "王五",
            "the message's charset wins over the default"
        );
        let dtd = decode(
            &s,
            Some("application/xml"),
            b"<!DOCTYPE x [<!ENTITY e \"boom\">]><cases><case>&e;</case></cases>",
        );
        assert!(dtd.is_err());
    }

    #[test]
    fn reconnect_pause_doubles_up_to_the_maximum() {
        let s = settings("reconnect_initial_ms = 100\nreconnect_max_seconds = 1");
        assert_eq!(s.reconnect_pause(0), Duration::from_millis(100));
        assert_eq!(s.reconnect_pause(2), Duration::from_millis(400));
        assert_eq!(s.reconnect_pause(10), Duration::from_secs(1));
    }

    #[test]
    fn a_refused_declaration_says_what_the_queue_holds_what_the_gateway_wants_and_what_to_change() {
        let s = settings("");
        let absent = explain(Part::Queue, &s, "v", "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost 'v': received the value 'ganzhi.dead-letter' of type 'longstr' but current is none");
        for part in [
            "queue q exists in vhost v with x-dead-letter-exchange absent",
            "the gateway would declare it with x-dead-letter-exchange = 'ganzhi.dead-letter'",
            "set declare_queue = false",
            "delete the queue",
            "队列 q 已存在",
        ] {
            assert!(absent.contains(part), "{part:?} missing in {absent}");
        }
        let other = explain(Part::Queue, &s, "v", "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost 'v': received the value 'ganzhi.dead-letter' of type 'longstr' but current is the value 'dept.dlx' of type 'longstr'");
        assert!(other.contains("set dead_letter_exchange = \"dept.dlx\""), "{other}");
        let exchange = explain(Part::DeadLetterExchange, &s, "v", "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'ganzhi.dead-letter' in vhost 'v': received 'fanout' but current is 'direct'");
        assert!(
            exchange.contains("exchange ganzhi.dead-letter exists in vhost v with type = 'direct'")
                && exchange.contains("dead_letter_exchange to an exchange name not in use"),
            "{exchange}"
        );
        let unknown = explain(Part::DeadQueue, &s, "v", "PRECONDITION_FAILED - odd");
        assert!(
            unknown.contains("queue q.dead") && unknown.contains("PRECONDITION_FAILED - odd"),
            "{unknown}"
        );
    }

    #[test]
    fn quorum_queues_declare_their_type_the_dead_letter_exchange_and_a_delivery_limit() {
        let classic = settings("");
        assert_eq!(classic.queue_type(), QueueType::Classic);
        assert_eq!(
            Part::Queue.declared(&classic),
            "durable = true, x-dead-letter-exchange = 'ganzhi.dead-letter'",
            "a classic queue is declared as before"
        );
        assert!(Part::DeadQueue.arguments(&classic).inner().is_empty());
        let quorum = settings("queue_type = \"quorum\"");
        assert_eq!(
            Part::Queue.declared(&quorum),
            "durable = true, x-queue-type = 'quorum', x-dead-letter-exchange = 'ganzhi.dead-letter', x-delivery-limit = 20"
        );
        assert_eq!(
            Part::DeadQueue.declared(&quorum),
            "durable = true, x-queue-type = 'quorum'"
        );
        let arguments = Part::Queue.arguments(&quorum);
        assert_eq!(
            arguments.inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(20))
        );
        assert!(Part::DeadQueue.arguments(&quorum).contains_key("x-queue-type"));
        let unlimited = settings("queue_type = \"quorum\"\ndelivery_limit = 0");
        assert_eq!(unlimited.declared_delivery_limit(), None);
        assert!(!Part::Queue.arguments(&unlimited).contains_key("x-delivery-limit"));
        assert!(quorum.check(Path::new(".")).is_empty());
    }

    #[test]
    fn the_settings_never_show_a_urls_password() {
        assert!(!format!("{:?}", settings("")).contains("guest:guest"));
        let table: toml::Table =
            toml::from_str("urls = [\"amqp://gw:pw-secret@mq1/v\", \"amqp://gw:pw-secret@mq2/v\"]\nqueue = \"q\"")
                .unwrap();
        let cluster = AmqpSourceSettings::from_table(&table).unwrap();
        assert!(cluster.check(Path::new(".")).is_empty());
        let shown = format!("{cluster:?} {:?}", cluster.nodes(Path::new(".")).unwrap());
        assert!(!shown.contains("pw-secret"), "{shown}");
        assert!(shown.contains("[amqp://mq1:5672, amqp://mq2:5672]"), "{shown}");
    }

    #[test]
    fn queue_type_and_delivery_limit_problems_name_field_rule_and_value() {
        let problems = |extra: &str| settings(extra).check(Path::new("."));
        let unknown = problems("queue_type = \"stream\"");
        assert_eq!(unknown[0].key, "queue_type");
        assert!(unknown[0].message.contains("\"stream\""), "{}", unknown[0].message);
        let classic = problems("delivery_limit = 10");
        assert_eq!(classic[0].key, "delivery_limit");
        assert!(
            classic[0]
                .message
                .contains("delivery_limit = 10 applies to quorum queues only"),
            "{}",
            classic[0].message
        );
        let low = problems("queue_type = \"quorum\"\ndelivery_limit = 5");
        assert_eq!(low[0].key, "delivery_limit");
        assert!(
            low[0]
                .message
                .contains("delivery_limit = 5 must exceed max_redeliveries = 5"),
            "{}",
            low[0].message
        );
        assert!(low[0].message.contains("应大于"), "{}", low[0].message);
        assert!(problems("queue_type = \"quorum\"\ndelivery_limit = 6").is_empty());
    }

    #[test]
    fn a_queue_of_the_other_type_is_named_with_both_types_and_what_to_change() {
        let quorum = settings("queue_type = \"quorum\"");
        let classic_held = explain(Part::Queue, &quorum, "v", "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': received the value 'quorum' of type 'longstr' but current is none");
        for part in [
            "queue q exists in vhost v as a classic queue; the gateway would declare it as a quorum queue (queue_type = \"quorum\")",
            "a queue's type cannot be changed",
            "set queue_type = \"classic\" to use the queue as it is",
            "delete it and let the gateway declare it as quorum",
            "队列 q 已作为经典队列（classic）存在于 vhost v",
            "队列类型不能更改",
        ] {
            assert!(classic_held.contains(part), "{part:?} missing in {classic_held}");
        }
        let quorum_held = explain(Part::DeadQueue, &settings(""), "v", "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q.dead' in vhost 'v': received none but current is the value 'quorum' of type 'longstr'");
        assert!(
            quorum_held.contains(
                "queue q.dead exists in vhost v as a quorum queue; the gateway would declare it as a classic queue"
            ) && quorum_held.contains("set queue_type = \"quorum\" to keep the queues as they are"),
            "{quorum_held}"
        );
        let limit = explain(Part::Queue, &quorum, "v", "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost 'v': received '20' but current is '7'");
        assert!(
            limit.contains("x-delivery-limit = '7'") && limit.contains("set delivery_limit = 7"),
            "{limit}"
        );
        let no_limit = explain(Part::Queue, &quorum, "v", "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost 'v': received '20' but current is none");
        assert!(
            no_limit.contains("set delivery_limit = 0 to use the queue's own delivery limit"),
            "{no_limit}"
        );
    }

    #[test]
    fn max_inflight_bytes_defaults_to_64_mib_and_zero_is_named() {
        assert_eq!(settings("").max_inflight_bytes, 64 << 20);
        let problems = settings("max_inflight_bytes = 0").check(Path::new("."));
        let problem = problems
            .iter()
            .find(|p| p.key == "max_inflight_bytes")
            .expect("max_inflight_bytes = 0 is refused");
        assert!(
            problem.message.contains("max_inflight_bytes = 0"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn unknown_key_and_missing_queue_are_named() {
        let table: toml::Table = toml::from_str("url = \"amqp://x\"\nqueue = \"q\"\nprefech = 3").unwrap();
        assert_eq!(AmqpSourceSettings::from_table(&table).unwrap_err().key, "prefech");
        let table: toml::Table = toml::from_str("url = \"amqp://x\"").unwrap();
        assert_eq!(AmqpSourceSettings::from_table(&table).unwrap_err().key, "queue");
    }
}

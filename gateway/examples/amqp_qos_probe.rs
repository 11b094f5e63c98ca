//! The broker experiment behind the AMQP source's window (README.md, "How much an AMQP source
//! holds"): does a `basic.qos` issued while a consumer runs change that consumer's prefetch?
//!
//! Usage: `amqp_qos_probe [amqp-url]` (default `amqp://guest:guest@127.0.0.1:5672/%2f`). Uses
//! three queues `qos-probe.*` of its own, deleted at the end. Prints what the broker did; on
//! RabbitMQ 3.10 it prints:
//!
//! ```text
//! per-consumer prefetch 2: 2 delivered
//! basic.qos(10, global=false) while consuming, nothing acknowledged: 0 more
//! everything acknowledged: 2 more (2 = the consumer keeps its prefetch, 10 = it changed)
//! consumer cancelled with 2 unacknowledged, consuming again with prefetch 5: 5 delivered
//! the cancelled consumer's deliveries acknowledged after the cancel: channel open = true
//! channel-wide basic.qos(3, global=true) while consuming, then everything acknowledged: 3 delivered
//! channel-wide basic.qos(8, global=true), nothing acknowledged: 5 more
//! quorum queue, consume on a channel with global=true: refused: ... NOT_IMPLEMENTED ...
//! ```

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use std::time::Duration;

/// Deliveries that arrive within 400 ms; their tags into `tags`.
async fn delivered(consumer: &mut Consumer, tags: &mut Vec<u64>) -> anyhow::Result<usize> {
    let mut n = 0;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(400), consumer.next()).await {
        tags.push(d?.delivery_tag);
        n += 1;
    }
    Ok(n)
}

/// Declare `queue` (quorum or classic) with `n` messages in it.
async fn fill(ch: &Channel, queue: &str, n: usize, quorum: bool) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    if quorum {
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), durable, args).await?;
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            i.to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

async fn ack_all(ch: &Channel, tags: &mut Vec<u64>) -> anyhow::Result<()> {
    if let Some(last) = tags.last() {
        ch.basic_ack(*last, BasicAckOptions { multiple: true }).await?;
    }
    tags.clear();
    Ok(())
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> lapin::Result<Consumer> {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let props = ConnectionProperties::default;
    let conn = Connection::connect(&url, props()).await?;
    let admin = conn.create_channel().await?;
    let per_consumer = BasicQosOptions { global: false };
    let channel_wide = BasicQosOptions { global: true };

    // Per-consumer prefetch (global = false), changed while the consumer runs.
    fill(&admin, "qos-probe.classic", 100, false).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(2, per_consumer).await?;
    let mut c = consume(&ch, "qos-probe.classic", "probe-1").await?;
    let mut tags = Vec::new();
    println!(
        "per-consumer prefetch 2: {} delivered",
        delivered(&mut c, &mut tags).await?
    );
    ch.basic_qos(10, per_consumer).await?;
    let more = delivered(&mut c, &mut tags).await?;
    println!("basic.qos(10, global=false) while consuming, nothing acknowledged: {more} more");
    ack_all(&ch, &mut tags).await?;
    let more = delivered(&mut c, &mut tags).await?;
    println!("everything acknowledged: {more} more (2 = the consumer keeps its prefetch, 10 = it changed)");

    // Cancel, then consume again with a new prefetch; the old deliveries stay acknowledgeable.
    let old = std::mem::take(&mut tags);
    ch.basic_cancel("probe-1".into(), BasicCancelOptions::default()).await?;
    while c.next().await.is_some() {}
    ch.basic_qos(5, per_consumer).await?;
    let mut c = consume(&ch, "qos-probe.classic", "probe-2").await?;
    let got = delivered(&mut c, &mut tags).await?;
    println!(
        "consumer cancelled with {} unacknowledged, consuming again with prefetch 5: {got} delivered",
        old.len()
    );
    for tag in &old {
        ch.basic_ack(*tag, BasicAckOptions::default()).await?;
    }
    ack_all(&ch, &mut tags).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "the cancelled consumer's deliveries acknowledged after the cancel: channel open = {}",
        ch.status().connected()
    );
    ch.close(200, "done".into()).await?;

    // Channel-wide prefetch (global = true), set and changed while the consumer runs.
    fill(&admin, "qos-probe.global", 100, false).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(20, per_consumer).await?;
    let mut c = consume(&ch, "qos-probe.global", "probe-3").await?;
    delivered(&mut c, &mut tags).await?;
    ch.basic_qos(3, channel_wide).await?;
    ack_all(&ch, &mut tags).await?;
    let got = delivered(&mut c, &mut tags).await?;
    println!("channel-wide basic.qos(3, global=true) while consuming, then everything acknowledged: {got} delivered");
    ch.basic_qos(8, channel_wide).await?;
    let more = delivered(&mut c, &mut tags).await?;
    println!("channel-wide basic.qos(8, global=true), nothing acknowledged: {more} more");
    ch.close(200, "done".into()).await?;

    // Channel-wide prefetch and a quorum queue (the refusal closes the whole connection).
    fill(&admin, "qos-probe.quorum", 10, true).await?;
    let conn2 = Connection::connect(&url, props()).await?;
    let ch = conn2.create_channel().await?;
    ch.basic_qos(3, channel_wide).await?;
    match consume(&ch, "qos-probe.quorum", "probe-4").await {
        Ok(_) => println!("quorum queue, consume on a channel with global=true: accepted"),
        Err(e) => println!("quorum queue, consume on a channel with global=true: refused: {e}"),
    }
    for queue in ["qos-probe.classic", "qos-probe.global", "qos-probe.quorum"] {
        admin.queue_delete(queue.into(), QueueDeleteOptions::default()).await?;
    }
    Ok(())
}

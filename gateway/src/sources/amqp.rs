//! Running an AMQP source: consume, commit each batch of messages, and only then acknowledge
//! them. When the broker goes away (restart, connection loss) or the store fails, the channel
//! is dropped without acknowledging, the broker requeues what was not acknowledged, and the
//! consumer reconnects with backoff: nothing is lost, and records delivered twice are absorbed
//! by content hash.

use crate::pipeline::batch::{prepare_and_commit, read_item};
use crate::pipeline::ingest::Shutdown;
use crate::pipeline::Summary;
use crate::runtime::Runtime;
use adapters::sources::amqp::{AmqpConsumer, AmqpSourceSettings};
use std::path::PathBuf;
use tracing::Instrument;

/// Why a connection's consumption ended.
enum Ended {
    Shutdown,
    Failed(String),
}

/// Consume the source's queue until shutdown, reconnecting after failures.
pub async fn run_consumer(
    runtime: Runtime,
    source_id: String,
    settings: AmqpSourceSettings,
    base: PathBuf,
    shutdown: Shutdown,
) {
    let board = std::sync::Arc::clone(&runtime.sources);
    let mut attempt = 0u32;
    while !shutdown.is_triggered() {
        let connected = tokio::select! {
            _ = shutdown.wait() => break,
            c = AmqpConsumer::connect(&source_id, &settings, &base) => c,
        };
        let ended = match connected {
            Ok(mut consumer) => {
                tracing::info!(source = %source_id, queue = %settings.queue, "consuming");
                attempt = 0;
                board.update(&source_id, |s| s.pulling = true);
                let ended = consume(&runtime, &source_id, &mut consumer, &shutdown).await;
                board.update(&source_id, |s| s.pulling = false);
                consumer.close().await;
                ended
            }
            Err(e) => Ended::Failed(e.to_string()),
        };
        match ended {
            Ended::Shutdown => break,
            Ended::Failed(message) => {
                let pause = settings.reconnect_pause(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(source = %source_id, error = %message, retry_in_ms = pause.as_millis() as u64,
                    "AMQP consumption stopped; unacknowledged messages return to the queue; reconnecting");
                board.set_error(&source_id, message);
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

async fn consume(runtime: &Runtime, source_id: &str, consumer: &mut AmqpConsumer, shutdown: &Shutdown) -> Ended {
    let sinks = runtime.sinks();
    let mut batch_no = 0u64;
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => return Ended::Shutdown,
            b = consumer.next_batch() => b,
        };
        let mut batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => return Ended::Failed("the broker cancelled the consumer".into()),
            Err(e) => return Ended::Failed(e.to_string()),
        };
        let Some(preparer) = runtime.preparers.get(source_id) else {
            return Ended::Failed(format!("unknown source {source_id:?}"));
        };
        batch_no += 1;
        let span = tracing::info_span!("batch", source = %source_id, batch = batch_no, messages = batch.messages,
            poison = batch.poison);
        let items: Vec<_> = std::mem::take(&mut batch.items).into_iter().map(read_item).collect();
        let received = items.len() as u64;
        // The commit is not interrupted by a shutdown: what was taken is committed, then acked.
        let outcomes = match prepare_and_commit(runtime.store.as_ref(), &preparer, items, None, &sinks)
            .instrument(span.clone())
            .await
        {
            Ok(o) => o,
            Err(e) => return Ended::Failed(format!("store failed; the batch was not acknowledged: {e}")),
        };
        if let Err(e) = batch.settle().await {
            // Committed but not acknowledged: the broker redelivers, the hash absorbs it.
            return Ended::Failed(e.to_string());
        }
        let mut summary = Summary {
            received,
            ..Summary::default()
        };
        for o in &outcomes {
            summary.add(&o.result);
        }
        span.in_scope(|| {
            for o in &outcomes {
                tracing::debug!(record_key = %o.record_key, result = ?o.result, "record committed");
            }
            tracing::info!(?summary, "batch committed and acknowledged");
        });
        runtime.sources.add_summary(source_id, &summary);
        if shutdown.is_triggered() {
            return Ended::Shutdown;
        }
    }
}

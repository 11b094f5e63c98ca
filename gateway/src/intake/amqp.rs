//! Running an AMQP source: consume, commit each batch of messages, and only then acknowledge
//! them. When the broker goes away (restart, connection loss) or the store fails, the channel
//! is dropped without acknowledging, the broker requeues what was not acknowledged, and the
//! consumer reconnects with backoff: nothing is lost, and records delivered twice are absorbed
//! by content hash.

use crate::prepare::prepare_parallel;
use crate::prepare::reader::from_source_item;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::telemetry::SourceFailed;
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
                tracing::info!(source = %source_id, retry_in_ms = pause.as_millis() as u64,
                    "unacknowledged messages return to the queue; reconnecting");
                runtime.telemetry().emit(SourceFailed {
                    source: &source_id,
                    stage: "consumer",
                    error: &message,
                });
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

async fn consume(runtime: &Runtime, source_id: &str, consumer: &mut AmqpConsumer, shutdown: &Shutdown) -> Ended {
    let committer = runtime.committer("amqp");
    let mut batch_no = 0u64;
    // The batch being committed (then acknowledged) while the next one is taken and prepared.
    let mut in_flight: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    let ended = loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break Ended::Shutdown,
            b = consumer.next_batch() => b,
        };
        let mut batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => break Ended::Failed("the broker cancelled the consumer".into()),
            Err(e) => break Ended::Failed(e.to_string()),
        };
        let Some(preparer) = runtime.preparers.get(source_id) else {
            break Ended::Failed(format!("unknown source {source_id:?}"));
        };
        batch_no += 1;
        let span = tracing::info_span!("messages", source = %source_id, group = batch_no, messages = batch.messages,
            poison = batch.poison);
        let items: Vec<_> = std::mem::take(&mut batch.items)
            .into_iter()
            .map(from_source_item)
            .collect();
        let prepared = match prepare_parallel(&preparer, items, committer.keeps_compressed())
            .instrument(span.clone())
            .await
        {
            Ok(p) => p,
            Err(e) => break Ended::Failed(format!("prepare failed; the batch was not acknowledged: {e}")),
        };
        // Batches commit in the order they were taken: wait for the previous one first.
        if let Some(previous) = in_flight.take() {
            match previous.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => break Ended::Failed(message),
                Err(e) => break Ended::Failed(format!("commit task failed: {e}")),
            }
        }
        // The commit is not interrupted by a shutdown: what was taken is committed, then acked.
        let committer = committer.clone();
        in_flight = Some(tokio::spawn(
            async move {
                committer
                    .commit(prepared, None)
                    .await
                    .map_err(|e| format!("store failed; the batch was not acknowledged: {e}"))?;
                // Committed but not acknowledged on failure: the broker redelivers, the hash absorbs it.
                batch.settle().await.map_err(|e| e.to_string())?;
                tracing::debug!("batch acknowledged");
                Ok(())
            }
            .instrument(span),
        ));
        if shutdown.is_triggered() {
            break Ended::Shutdown;
        }
    };
    // What was taken and is being committed is finished (and acknowledged) before leaving.
    if let Some(previous) = in_flight.take() {
        match previous.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Ended::Failed(message),
            Err(e) => return Ended::Failed(format!("commit task failed: {e}")),
        }
    }
    ended
}

//! Running an AMQP source: consume, commit each batch of messages, and only then acknowledge
//! them. When the broker goes away (restart, connection loss) or the store fails, the channel
//! is dropped without acknowledging, the broker requeues what was not acknowledged, and the
//! consumer reconnects with backoff: nothing is lost, and records delivered twice are absorbed
//! by content hash.

use crate::commit::isolate::is_store_down;
use crate::prepare::prepare_parallel;
use crate::prepare::reader::from_source_item;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::telemetry::SourceFailed;
use adapters::common::amqp_url::Rotation;
use adapters::sources::amqp::{AmqpConsumer, AmqpSourceSettings};
use std::collections::HashMap;
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
    let mut failures = Failures::new();
    // Which broker node to try first: the one after the node that failed last.
    let mut rotation = Rotation::default();
    let node_count = settings.nodes(&base).map(|n| n.len()).unwrap_or(1);
    while !shutdown.is_triggered() {
        let connected = tokio::select! {
            _ = shutdown.wait() => break,
            c = AmqpConsumer::connect(&source_id, &settings, &base, &mut rotation) => c,
        };
        let ended = match connected {
            Ok(mut consumer) => {
                tracing::info!(source = %source_id, queue = %settings.queue, node = %consumer.node(), "consuming");
                attempt = 0;
                board.update(&source_id, |s| s.pulling = true);
                board.run_succeeded(&source_id, None, None);
                let ended = consume(&runtime, &source_id, &settings, &mut consumer, &shutdown, &mut failures).await;
                board.update(&source_id, |s| s.pulling = false);
                consumer.note_end(&mut rotation, node_count);
                let ended = match ended {
                    Ended::Failed(message) if consumer.connection_lost() => {
                        let node = consumer.node();
                        tracing::warn!(source = %source_id, node = %node, error = %message,
                            "connection to the AMQP node lost; reconnecting, starting with the next node");
                        Ended::Failed(format!(
                            "与 AMQP 节点 {node} 的连接中断 / connection to AMQP node {node} lost: {message}"
                        ))
                    }
                    ended => ended,
                };
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
                    run_failed: true,
                    paused_until: None,
                    only_paused: false,
                });
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// A message's failed commits, by its key (`message_id`, else a hash of its body), kept across
/// reconnections: a message that failed once is committed on its own from then on, and one
/// that failed `max_redeliveries` times is taken as poison (see [`AmqpSourceSettings`]).
type Failures = HashMap<String, u32>;

/// How many messages' failure counts are kept at most. A failed message is normally seen again
/// at once (redelivered to this consumer) and then settled; one taken by another consumer is
/// never seen here again, so the map would otherwise only grow.
const MAX_TRACKED_FAILURES: usize = 10_000;

/// Keep [`Failures`] bounded: past [`MAX_TRACKED_FAILURES`] keys, those that failed only once
/// are forgotten (at worst such a message is batched with others once more before it is
/// suspected again), then, if still too many, all of them.
fn forget_least_suspect(failures: &mut Failures) {
    if failures.len() > MAX_TRACKED_FAILURES {
        failures.retain(|_, n| *n > 1);
    }
    if failures.len() > MAX_TRACKED_FAILURES {
        failures.clear();
    }
}

/// A commit of messages that did not go through.
struct CommitFailure {
    message: String,
    /// The messages' keys, when the failure counts against them (not when the store is down).
    keys: Vec<String>,
}

/// The end of a commit task: the keys of the messages committed and acknowledged.
type CommitTask = tokio::task::JoinHandle<Result<Vec<String>, CommitFailure>>;

/// Wait for the commit in flight and account for it: `Err` with the message that ends the
/// consumption when it failed.
async fn finish(in_flight: &mut Option<CommitTask>, failures: &mut Failures) -> Result<(), String> {
    let Some(task) = in_flight.take() else { return Ok(()) };
    account(task.await, failures)
}

/// Account for a finished commit task (see [`finish`]).
fn account(
    done: Result<Result<Vec<String>, CommitFailure>, tokio::task::JoinError>,
    failures: &mut Failures,
) -> Result<(), String> {
    match done {
        Ok(Ok(keys)) => {
            for k in keys {
                failures.remove(&k);
            }
            Ok(())
        }
        Ok(Err(failure)) => {
            for k in failure.keys {
                *failures.entry(k).or_default() += 1;
            }
            forget_least_suspect(failures);
            Err(failure.message)
        }
        Err(e) => Err(format!("commit task failed: {e}")),
    }
}

async fn consume(
    runtime: &Runtime,
    source_id: &str,
    settings: &AmqpSourceSettings,
    consumer: &mut AmqpConsumer,
    shutdown: &Shutdown,
    failures: &mut Failures,
) -> Ended {
    let committer = runtime.committer("amqp");
    let max = settings.max_redeliveries;
    let mut batch_no = 0u64;
    // The batch being committed (then acknowledged) while the next one is taken and prepared.
    let mut in_flight: Option<CommitTask> = None;
    let ended = 'consuming: loop {
        // A commit that fails is noticed at once, not only when the next message arrives (the
        // batch is cancel-safe: messages taken meanwhile wait in the consumer).
        let next = match in_flight.as_mut() {
            Some(task) => tokio::select! {
                _ = shutdown.wait() => break Ended::Shutdown,
                done = task => {
                    in_flight = None;
                    match account(done, failures) {
                        Ok(()) => continue,
                        Err(message) => break Ended::Failed(message),
                    }
                }
                b = consumer.next_batch() => b,
            },
            None => tokio::select! {
                _ = shutdown.wait() => break Ended::Shutdown,
                b = consumer.next_batch() => b,
            },
        };
        let batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => break Ended::Failed("the broker cancelled the consumer".into()),
            Err(e) => break Ended::Failed(e.to_string()),
        };
        let Some(preparer) = runtime.preparers.get(source_id) else {
            break Ended::Failed(format!("unknown source {source_id:?}"));
        };
        // Messages that failed before are committed alone, so they hold up nobody else.
        for part in batch.split_suspects(|k| failures.get(k).is_some_and(|n| *n > 0)) {
            let keys = part.message_keys();
            let failed = match keys.as_slice() {
                [only] => failures.get(only).copied().unwrap_or(0),
                _ => 0,
            };
            let mut part = if failed > max {
                // Even its raw bytes could not be quarantined: dead-letter it as it is.
                if let Err(message) = finish(&mut in_flight, failures).await {
                    break 'consuming Ended::Failed(message);
                }
                runtime.telemetry().emit(SourceFailed {
                    source: source_id,
                    stage: "consumer",
                    error: &format!(
                        "消息 {} 提交失败 {failed} 次，连隔离也无法写入，已转入死信队列 / message {} failed to commit {failed} times and could not be quarantined: dead-lettered",
                        keys.join(", "),
                        keys.join(", ")
                    ),
                    run_failed: false,
                    paused_until: None,
                    only_paused: false,
                });
                if let Err(e) = part.dead_letter().await {
                    break 'consuming Ended::Failed(e.to_string());
                }
                for k in &keys {
                    failures.remove(k);
                }
                continue;
            } else if failed == max && failed > 0 {
                tracing::warn!(source = %source_id, message = %keys.join(", "), failures = failed,
                    "message failed to commit max_redeliveries times: quarantined from its raw bytes and dead-lettered");
                part.into_poison(&format!(
                    "消息提交失败 {failed} 次（max_redeliveries），按原始字节隔离并转入死信队列 / the message failed to commit {failed} times (max_redeliveries): quarantined from its raw bytes and dead-lettered"
                ))
            } else {
                part
            };
            batch_no += 1;
            let span = tracing::info_span!("messages", source = %source_id, group = batch_no, messages = part.messages,
                poison = part.poison);
            let items: Vec<_> = std::mem::take(&mut part.items)
                .into_iter()
                .map(from_source_item)
                .collect();
            let prepared = match prepare_parallel(&preparer, items, committer.keeps_compressed())
                .instrument(span.clone())
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    break 'consuming Ended::Failed(format!("prepare failed; the batch was not acknowledged: {e}"))
                }
            };
            // Batches commit in the order they were taken: wait for the previous one first.
            if let Err(message) = finish(&mut in_flight, failures).await {
                break 'consuming Ended::Failed(message);
            }
            // The commit is not interrupted by a shutdown: what was taken is committed, then acked.
            let committer = committer.clone();
            in_flight = Some(tokio::spawn(
                async move {
                    if let Err(e) = committer.commit(prepared, None).await {
                        let counts = !is_store_down(&e);
                        return Err(CommitFailure {
                            message: format!("store failed; the batch was not acknowledged: {e}"),
                            keys: if counts { keys } else { Vec::new() },
                        });
                    }
                    // Committed but not acknowledged on failure: the broker redelivers, the hash absorbs it.
                    part.settle().await.map_err(|e| CommitFailure {
                        message: e.to_string(),
                        keys: Vec::new(),
                    })?;
                    tracing::debug!("batch acknowledged");
                    Ok(keys)
                }
                .instrument(span),
            ));
        }
        if shutdown.is_triggered() {
            break Ended::Shutdown;
        }
    };
    // What was taken and is being committed is finished (and acknowledged) before leaving.
    if let Err(message) = finish(&mut in_flight, failures).await {
        return Ended::Failed(message);
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_counts_stay_bounded_and_keep_the_most_suspect() {
        let mut failures: Failures = (0..MAX_TRACKED_FAILURES).map(|i| (format!("once-{i}"), 1)).collect();
        failures.insert("poison".into(), 4);
        forget_least_suspect(&mut failures);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures.get("poison"), Some(&4));
        let mut small: Failures = [("a".to_string(), 1)].into_iter().collect();
        forget_least_suspect(&mut small);
        assert_eq!(small.len(), 1, "below the bound nothing is forgotten");
    }
}

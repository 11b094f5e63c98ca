//! Preparing many records on the preparation threads while keeping their order: a later
//! version of a case must stay after an earlier one all the way to the commit.

use super::reader::ReadItem;
use super::record::Preparer;
use super::workers::spawn_prepare;
use crate::store::IncomingRecord;
use std::collections::VecDeque;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why records could not be prepared (a preparation thread could not start or panicked).
#[derive(Debug, thiserror::Error)]
#[error("准备记录失败 / preparing records failed: {0}")]
pub struct PrepareError(pub String);

/// Prepare `items` on the preparation threads, split over the machine's cores, keeping their
/// order; `compress`: for a store that [keeps records compressed](crate::store::Store::keeps_compressed).
pub async fn prepare_parallel(
    preparer: &Preparer,
    items: Vec<ReadItem>,
    compress: bool,
) -> Result<Vec<IncomingRecord>, PrepareError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per_part = items.len().div_ceil(cores).max(64);
    let mut parts = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<ReadItem> = items.by_ref().take(per_part).collect();
        if part.is_empty() {
            break;
        }
        let p = preparer.clone();
        let handle = spawn_prepare(move || p.prepare_chunk(part, compress)).map_err(|e| PrepareError(e.to_string()))?;
        parts.push(handle);
    }
    let mut prepared = Vec::new();
    for part in parts {
        prepared.extend(part.join().await.map_err(|e| PrepareError(e.to_string()))?);
    }
    Ok(prepared)
}

/// Prepare a stream of chunks on up to one preparation thread per core and forward the
/// prepared chunks in the order the chunks came, into a queue of `capacity` chunks. The task
/// ends when the input ends or the receiver is dropped.
pub fn prepare_in_order(
    preparer: Preparer,
    mut chunks: mpsc::Receiver<Vec<ReadItem>>,
    capacity: usize,
    compress: bool,
) -> (
    mpsc::Receiver<Vec<IncomingRecord>>,
    JoinHandle<Result<(), PrepareError>>,
) {
    let (prepared_tx, prepared_rx) = mpsc::channel::<Vec<IncomingRecord>>(capacity);
    let task = tokio::spawn(async move {
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut inflight = VecDeque::new();
        let mut input_open = true;
        loop {
            while input_open && inflight.len() < parallel {
                let next = if inflight.is_empty() {
                    chunks.recv().await
                } else {
                    match chunks.try_recv() {
                        Ok(chunk) => Some(chunk),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                };
                let Some(chunk) = next else {
                    input_open = false;
                    break;
                };
                let p = preparer.clone();
                let handle =
                    spawn_prepare(move || p.prepare_chunk(chunk, compress)).map_err(|e| PrepareError(e.to_string()))?;
                inflight.push_back(handle);
            }
            let Some(handle) = inflight.pop_front() else { break };
            let prepared = handle.join().await.map_err(|e| PrepareError(e.to_string()))?;
            if prepared_tx.send(prepared).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    (prepared_rx, task)
}

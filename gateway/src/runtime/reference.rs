//! What the rules read from the store besides the records themselves: the numbers of the
//! inspection plans held (`rule.plan_unknown`) and the values departments supplied for fields
//! their sources cannot (待补录). Loaded at start, refreshed every [`REFRESH_EVERY`] (other
//! instances commit plans and completions too), and updated at once by this instance's own
//! commits and completions.

use super::state::Runtime;
use crate::shutdown::Shutdown;
use crate::store::StoreResult;
use std::time::Duration;

/// How often the plan numbers and supplied values are re-read from the store.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Re-read the plan numbers (all of them: withdrawals drop out) and the supplied values stored
/// since the last refresh; answers how many plans are known and how many values were new.
pub async fn refresh(runtime: &Runtime) -> StoreResult<(usize, usize)> {
    let rules = &runtime.resolved.rules;
    let mut plans = 0;
    if let Some(known) = &rules.known_plans {
        let numbers = runtime.store.plan_numbers().await?;
        plans = numbers.len();
        known.replace_all(numbers);
    }
    let mut fresh = 0;
    if let Some(supplied) = &rules.supplied {
        let rows = runtime
            .store
            .supplements()
            .supplied_after(supplied.loaded_up_to())
            .await?;
        fresh = rows.len();
        for row in rows {
            supplied.insert(&row.business_key, &row.pointer, row.value);
            supplied.set_loaded_up_to(row.id);
        }
    }
    Ok((plans, fresh))
}

/// Refresh every [`REFRESH_EVERY`] until shutdown; a failed refresh is logged and retried at
/// the next turn (the rules keep what they had).
pub async fn keep_fresh(runtime: Runtime, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
        }
        if let Err(e) = refresh(&runtime).await {
            tracing::warn!(error = %e, "cannot re-read the plan numbers and supplied values");
        }
    }
}

//! `gateway deliveries list|redrive`: what the outbox holds for each sink, and sending dead
//! deliveries again after the cause is fixed (audit-logged).

use super::args::{DeliveriesAction, DeliveryStatusArg};
use super::common::{actor, load_config};
use crate::store::AuditEntry;
use crate::store::{self, DeliveryFilter, DeliveryStatus, Redrive};
use std::io::Write;
use std::process::ExitCode;

impl From<DeliveryStatusArg> for DeliveryStatus {
    fn from(s: DeliveryStatusArg) -> DeliveryStatus {
        match s {
            DeliveryStatusArg::Pending => DeliveryStatus::Pending,
            DeliveryStatusArg::Delivered => DeliveryStatus::Delivered,
            DeliveryStatusArg::Dead => DeliveryStatus::Dead,
            DeliveryStatusArg::Superseded => DeliveryStatus::Superseded,
            DeliveryStatusArg::Withheld => DeliveryStatus::Withheld,
        }
    }
}

/// Run a `gateway deliveries` action.
pub async fn run(action: DeliveriesAction) -> anyhow::Result<ExitCode> {
    match action {
        DeliveriesAction::List {
            config,
            sink,
            status,
            limit,
        } => {
            let resolved = load_config(&config)?;
            let outbox = store::open(&resolved.config).await?.outbox;
            let filter = DeliveryFilter {
                sink_id: sink,
                status: status.map(DeliveryStatus::from),
                before_id: None,
                limit: Some(limit),
                ..Default::default()
            };
            let rows = outbox.deliveries(&filter).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for row in &rows {
                writeln!(out, "{}", serde_json::to_string(row)?)?;
            }
            out.flush()?;
            for c in outbox.delivery_counts().await? {
                if filter.sink_id.as_ref().is_none_or(|s| *s == c.sink_id) {
                    eprintln!("{}\t{}\t{}", c.sink_id, c.status.as_str(), c.count);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesAction::Redrive {
            id,
            sink,
            all_dead,
            config,
        } => {
            let target = match (id, sink, all_dead) {
                (Some(id), None, false) => Redrive::One(id),
                (None, Some(sink_id), true) => Redrive::AllDead { sink_id },
                _ => anyhow::bail!("指定 --id N，或 --sink ID --all-dead / give --id N, or --sink ID --all-dead"),
            };
            let resolved = load_config(&config)?;
            if let Redrive::AllDead { sink_id } = &target {
                if !resolved.config.sinks.iter().any(|s| s.id == *sink_id) {
                    anyhow::bail!("去向 {sink_id:?} 未在配置中 / sink {sink_id:?} is not in the configuration");
                }
            }
            let store::Stores { store, outbox, .. } = store::open(&resolved.config).await?;
            let n = outbox.redrive(&target).await?;
            let subject = match &target {
                Redrive::One(id) => format!("delivery:{id}"),
                Redrive::AllDead { sink_id } => format!("sink:{sink_id}"),
            };
            store
                .audit(&AuditEntry {
                    actor: actor(),
                    action: "deliveries.redrive".into(),
                    subject,
                    detail: serde_json::json!(n),
                })
                .await?;
            println!("{}", serde_json::json!(n));
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! What a running gateway shares between its parts (pull schedulers, AMQP consumers, the HTTP
//! server, the outbox dispatchers).

use super::preparers::PreparerRegistry;
use crate::commit::Committer;
use crate::config::Resolved;
use crate::prepare::Preparer;
use crate::store::{MappingStore, OutboxStore, SinkRoute, Store, Stores};
use crate::telemetry::{Metrics, SourceBoard, Telemetry};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything the parts of a running gateway share. [`Runtime::open`] builds it from a
/// configuration (store opened, each source on its active stored mapping version).
#[derive(Clone)]
pub struct Runtime {
    /// The loaded configuration.
    pub resolved: Arc<Resolved>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The store's outbox side (deliveries).
    pub outbox: Arc<dyn OutboxStore>,
    /// The store's mapping versions (see [`crate::lifecycle`]).
    pub mappings: Arc<dyn MappingStore>,
    /// Each source's current mapping and validation.
    pub preparers: Arc<PreparerRegistry>,
    /// Each source's live status and controls.
    pub sources: Arc<SourceBoard>,
    /// The metrics registry (served on `GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// The one committer of every way in, reporting to the metrics and the source board.
    pub committer: Committer,
    /// This process among the instances on the store.
    pub instance: Arc<crate::store::InstanceInfo>,
    /// This instance's share of the scheduled jobs.
    pub share: Arc<super::instance::Share>,
    /// Evidence attachments (证据附件): fetcher, download links, delivery gate (set by
    /// [`Runtime::open`]).
    pub attachments: Option<Arc<crate::attachments::Attachments>>,
    /// The shared connections (rate limit, token cache) of systems with several endpoints.
    pub systems: Arc<adapters::sources::SystemClients>,
}

impl Runtime {
    /// The runtime of a loaded configuration on opened `stores`: a fresh metrics registry and
    /// source board (every configured source registered) that the committer reports to.
    pub fn new(resolved: Arc<Resolved>, stores: Stores, preparers: HashMap<String, Preparer>) -> Runtime {
        let metrics = Arc::new(Metrics::new());
        let sources = Arc::new(SourceBoard::default());
        for s in &resolved.config.sources {
            sources.register(&s.id, &s.kind);
        }
        let telemetry = Telemetry {
            metrics: Some(Arc::clone(&metrics)),
            board: Some(Arc::clone(&sources)),
        };
        let committer = Committer::new(Arc::clone(&stores.store), sink_routes(&resolved.config), telemetry)
            .with_known_plans(resolved.rules.known_plans.clone());
        let instance = Arc::new(super::instance::this_instance(
            resolved.config.cluster.instance_id.as_deref(),
        ));
        metrics.set_instance(&instance.id, &instance.host, &instance.version);
        let jobs = resolved
            .config
            .sources
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "rest" | "soap" | "directory"))
            .count()
            + resolved.config.catalogues.len()
            + resolved.config.officer_registries.len()
            // Supervision's leased jobs (gateway/src/oversight/service.rs): alerts, count queries.
            + usize::from(resolved.config.alerts.enabled)
            + usize::from(resolved.config.sources.iter().any(|s| s.reconcile.is_some()));
        Runtime {
            share: Arc::new(super::instance::Share::new(jobs)),
            instance,
            resolved,
            store: stores.store,
            outbox: stores.outbox,
            mappings: stores.mappings,
            preparers: Arc::new(PreparerRegistry::new(preparers)),
            sources,
            metrics,
            committer,
            attachments: None,
            systems: Arc::default(),
        }
    }

    /// The pull source of a REST/SOAP source, an endpoint of a system over that system's one
    /// connection, rate limit and token cache.
    pub fn pull_source(
        &self,
        source: &crate::config::SourceConfig,
    ) -> Result<Arc<dyn adapters::sources::PullSource>, adapters::sources::SourceError> {
        let table = source.pull_table().unwrap_or_default();
        let system = source.system_id().map(|s| (s, self.systems.as_ref()));
        adapters::sources::build_in(&source.id, &source.kind, &table, &self.resolved.config.base_dir, system)
    }

    /// Sink ids: one outbox row per sink per committed version.
    pub fn sinks(&self) -> Vec<String> {
        self.resolved.config.sink_ids()
    }

    /// The sinks and the record types each carries.
    pub fn sink_routes(&self) -> Vec<SinkRoute> {
        sink_routes(&self.resolved.config)
    }

    /// The sinks merged joint inspections are delivered to.
    pub fn joint_sinks(&self) -> Vec<String> {
        crate::store::sinks_carrying(&self.sink_routes(), crate::store::joint::JOINT_RECORD_TYPE)
    }

    /// The committer, naming `way` in its batches' logs.
    pub fn committer(&self, way: &'static str) -> Committer {
        self.committer.for_way(way)
    }

    /// Where the ways in report failures.
    pub fn telemetry(&self) -> &Telemetry {
        self.committer.telemetry()
    }
}

/// The configured sinks and the record types each carries (`case_types`, or `penalty` and
/// `inspection` for a publicity sink). A block whose settings do not parse carries everything:
/// `gateway config check` reports it and the sink is not started.
pub fn sink_routes(config: &crate::config::Config) -> Vec<SinkRoute> {
    config
        .sinks
        .iter()
        .map(|s| SinkRoute {
            id: s.id.clone(),
            case_types: adapters::sinks::SinkSettings::parse(&s.kind, &s.settings)
                .ok()
                .and_then(|parsed| parsed.delivery.carried_types()),
        })
        .collect()
}

//! What the gateway tells about itself, on the ground floor so that every part can report:
//! counts ([`summary`]), the Prometheus registry ([`metrics`]), the live status of every source
//! ([`board`]) and the internal events that write all three in one place ([`events`]).

pub mod board;
pub mod events;
pub mod metrics;
pub mod oversight_metrics;
pub mod summary;

pub use board::{CommandError, HealthState, RunReport, SourceBoard, SourceCommand, SourceStatus};
pub use events::{BatchCommitted, InternalEvent, SourceFailed, Telemetry};
pub use metrics::{AttachmentMetrics, DeliveryDepth, Metrics};
pub use summary::Summary;

//! What the running gateway shares between its parts: the store, the current preparer (mapping)
//! of each source ([`preparers`]), the source board and metrics, and the one committer
//! ([`state`]); built at start-up from the store's active mapping versions ([`startup`]).

pub mod cluster;
pub mod instance;
pub mod joint_indexer;
pub mod preparers;
pub mod reference;
pub mod startup;
pub mod state;

pub use preparers::PreparerRegistry;
pub use startup::StartupError;
pub use state::Runtime;

//! Evidence attachments (证据附件): a record's `attachments` say where each file is (a URL at
//! the source, inline base64, or a file in the drop folder's `attachments/` folder); the
//! committer lists them in the store ([`listed`]), the fetcher ([`fetch`]) streams each into the
//! object store ([`objects`]) once per SHA-256, the dispatcher holds a case version's
//! deliveries until its required attachments are stored and gives sinks their metadata and a
//! signed download link ([`gate`], [`link`]). Limits are checked twice: what the record declares
//! (size, media type) while preparing ([`check`]), what is actually fetched while storing.

pub mod fetch;
pub mod gate;
pub mod link;
pub mod objects;
pub mod spec;

pub use spec::{check, decode_base64, listed, plain_file_name, specs, Origin, Spec};

/// The running attachment machinery: the object store's fetcher, the link signer and the
/// delivery gate.
#[derive(Debug, Clone)]
pub struct Attachments {
    /// Fetches due attachments into the object store.
    pub fetcher: std::sync::Arc<fetch::Fetcher>,
    /// Signs and checks download links.
    pub signer: link::LinkSigner,
    /// Holds deliveries until their attachments are stored.
    pub gate: std::sync::Arc<gate::DeliveryGate>,
}

impl Attachments {
    /// Open the configured object store and build the fetcher (attachments of an endpoint of a
    /// system go over that system's connection in `systems`), the signer and the gate.
    /// Without a configured `link_secret` a random one is made: links then hold on this
    /// instance until it restarts.
    pub fn open(
        config: &crate::config::Config,
        store: std::sync::Arc<dyn crate::store::Store>,
        metrics: Option<crate::telemetry::AttachmentMetrics>,
        systems: &adapters::sources::SystemClients,
    ) -> Result<Attachments, objects::ObjectsError> {
        let a = &config.attachments;
        let objects = objects::Objects::open(a, &config.base_dir)?;
        let key = match a.link_key(&config.base_dir).map_err(objects::ObjectsError::Settings)? {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| objects::ObjectsError::Settings(e.to_string()))?;
                random.to_vec()
            }
        };
        let base_url = a.public_base_url.clone().unwrap_or_default();
        let signer = link::LinkSigner::new(key, a.link_ttl_seconds, &base_url);
        let recheck = std::time::Duration::from_secs_f64(a.poll_seconds.max(1.0));
        let gate = gate::DeliveryGate::new(std::sync::Arc::clone(&store), signer.clone(), recheck);
        let fetcher = fetch::Fetcher::new(config, store, objects, metrics, systems);
        Ok(Attachments {
            fetcher: std::sync::Arc::new(fetcher),
            signer,
            gate: std::sync::Arc::new(gate),
        })
    }
}

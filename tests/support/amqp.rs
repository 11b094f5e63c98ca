//! RabbitMQ helpers of the end-to-end tests: a vhost of one's own, and a TCP proxy that can cut
//! the network between the gateway and the broker.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A RabbitMQ virtual host of its own, removed afterwards; `rabbitmqctl` takes it down and up.
pub struct Vhost {
    /// The vhost name.
    pub name: String,
}

/// Run rabbitmqctl; panics with its output when it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").args(args).output().unwrap_or_else(|e| {
        panic!("rabbitmqctl {args:?} cannot run ({e}); the AMQP tests need RabbitMQ's rabbitmqctl as root")
    });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Vhost {
    /// A new vhost with guest allowed.
    pub fn create() -> Vhost {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("gw_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        rabbitmqctl(&["add_vhost", &name]);
        let v = Vhost { name };
        v.up();
        v
    }

    /// Its URL for guest.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Refuse new connections to the vhost and close the open ones.
    pub fn down(&self) {
        rabbitmqctl(&["clear_permissions", "-p", &self.name, "guest"]);
        rabbitmqctl(&["close_all_connections", "-p", &self.name, "test outage"]);
    }

    /// Allow guest on the vhost again.
    pub fn up(&self) {
        rabbitmqctl(&["set_permissions", "-p", &self.name, "guest", ".*", ".*", ".*"]);
    }

    /// The type of queue `queue` as the broker lists it (`classic`, `quorum`), if it exists.
    pub fn queue_type(&self, queue: &str) -> Option<String> {
        let out = Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "-q",
                "--no-table-headers",
                "-p",
                &self.name,
                "name",
                "type",
            ])
            .output()
            .expect("rabbitmqctl list_queues");
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut columns = l.split_whitespace();
            (columns.next() == Some(queue))
                .then(|| columns.next().map(str::to_string))
                .flatten()
        })
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

/// A TCP proxy in front of the broker: `cut` drops every connection through it at once and
/// refuses new ones until `restore` (a network failure as the gateway sees it).
pub struct Proxy {
    /// The port to connect to.
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Connections forwarded so far.
    forwarded: Arc<AtomicU32>,
}

impl Proxy {
    /// Listen on 127.0.0.1 and forward to `target`.
    pub async fn start(target: &'static str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let forwarded = Arc::new(AtomicU32::new(0));
        let (up2, links2, forwarded2) = (up.clone(), links.clone(), forwarded.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                forwarded2.fetch_add(1, Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Proxy {
            port,
            up,
            links,
            forwarded,
        }
    }

    /// Drop every connection and refuse new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Connections forwarded so far (refused ones while cut are not counted).
    pub fn forwarded(&self) -> u32 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// Accept connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

//! The broker URLs of an AMQP source or sink, and connecting to the first node that answers.
//!
//! One URL (`url`, `url_env`, `url_file`) or the nodes of a RabbitMQ cluster (`urls = [..]`, or
//! `urls_env` / `urls_file` holding them separated by commas or line breaks), checked without
//! ever showing them (they may hold passwords). A node is named by its [`BrokerNode::label`],
//! `scheme://host:port`, in logs and errors.
//!
//! [`connect_first`] tries the nodes in order, starting with the one after the node that failed
//! last ([`Rotation`]): a connection lost to one node is opened again on the next.

use super::secret::{Redacted, SecretSource};
use super::settings::SettingsProblem;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// One broker node: its URI (which holds the password: never formatted) and its label.
#[derive(Clone)]
pub struct BrokerNode {
    uri: AMQPUri,
    label: String,
}

impl std::fmt::Debug for BrokerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl BrokerNode {
    /// A node from one URL; an error never shows the URL.
    fn parse(url: &str) -> Result<BrokerNode, String> {
        let url = url.trim();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err("应以 amqp:// 或 amqps:// 开头 / must start with amqp:// or amqps://".into());
        }
        let uri = AMQPUri::from_str(url).map_err(|_| {
            "无效的 AMQP URL（不显示：可能含密码）/ invalid AMQP URL (not shown: it may hold a password)".to_string()
        })?;
        // The client reads a bracketed IPv6 address as "localhost": refuse it rather than
        // connect somewhere else than written.
        let authority = url.split_once("://").map_or("", |(_, rest)| rest);
        let authority = authority.split(['/', '?']).next().unwrap_or_default();
        let host_part = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        if host_part.starts_with('[') {
            return Err("不支持 IPv6 地址字面量（AMQP 客户端会将其当作 localhost）：请使用主机名 / IPv6 address literals are not supported (the AMQP client would take them for localhost): use a host name".into());
        }
        let label = format!("{}://{}:{}", uri.scheme, uri.authority.host, uri.authority.port);
        Ok(BrokerNode { uri, label })
    }

    /// `scheme://host:port`: how logs and errors name the node (never with credentials).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The virtual host.
    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// The URI, for the client. Never log it.
    pub fn uri(&self) -> &AMQPUri {
        &self.uri
    }

    /// `text` (a client error) with the node's password, if it appears, replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let password = &self.uri.authority.userinfo.password;
        if password.len() < 3 {
            return text.to_string();
        }
        text.replace(password.as_str(), "***")
    }
}

/// The URL keys of an AMQP source or sink: one of `url`, `url_env`, `url_file` (one node) or
/// `urls`, `urls_env`, `urls_file` (several).
#[derive(Debug, Clone, Copy)]
pub struct UrlKeys<'a> {
    /// `url`.
    pub url: Option<&'a str>,
    /// `url_env`.
    pub url_env: Option<&'a str>,
    /// `url_file`.
    pub url_file: Option<&'a Path>,
    /// `urls`.
    pub urls: Option<&'a [Redacted]>,
    /// `urls_env`.
    pub urls_env: Option<&'a str>,
    /// `urls_file`.
    pub urls_file: Option<&'a Path>,
}

const ALL_KEYS: &str = "url、url_env、url_file、urls、urls_env、urls_file";
const ALL_KEYS_EN: &str = "url, url_env, url_file, urls, urls_env, urls_file";

impl UrlKeys<'_> {
    /// The broker nodes, in the order given. A problem names its key (`url` for the one-node
    /// keys, `urls` for the others) and never shows a URL.
    pub fn nodes(&self, base: &Path) -> Result<Vec<BrokerNode>, SettingsProblem> {
        let one = [self.url.is_some(), self.url_env.is_some(), self.url_file.is_some()];
        let many = [self.urls.is_some(), self.urls_env.is_some(), self.urls_file.is_some()];
        let given = one.iter().chain(&many).filter(|b| **b).count();
        if given == 0 {
            return Err(SettingsProblem::new(
                "url",
                format!("需要 {ALL_KEYS} 之一 / one of {ALL_KEYS_EN} is required"),
            ));
        }
        if given > 1 {
            let key = if many.iter().any(|b| *b) { "urls" } else { "url" };
            return Err(SettingsProblem::new(
                key,
                format!("{ALL_KEYS} 只能给出一个 / give only one of {ALL_KEYS_EN}"),
            ));
        }
        if one.iter().any(|b| *b) {
            let single = SecretSource {
                name: "url",
                inline: self.url,
                env: self.url_env,
                file: self.url_file,
            };
            let url = single.require(base).map_err(|m| SettingsProblem::new("url", m))?;
            let node = BrokerNode::parse(url.expose()).map_err(|m| SettingsProblem::new("url", m))?;
            return Ok(vec![node]);
        }
        let texts: Vec<String> = match self.urls {
            Some(list) => list.iter().map(|u| u.0.clone()).collect(),
            None => {
                let source = SecretSource {
                    name: "urls",
                    inline: None,
                    env: self.urls_env,
                    file: self.urls_file,
                };
                let joined = source.require(base).map_err(|m| SettingsProblem::new("urls", m))?;
                split_urls(joined.expose())
            }
        };
        nodes_of(&texts)
    }
}

/// The broker nodes of a settings table read as it is (for checks that do not parse the
/// whole table, e.g. readiness), like [`UrlKeys::nodes`].
pub fn nodes_of_table(table: &toml::Table, base: &Path) -> Result<Vec<BrokerNode>, SettingsProblem> {
    let text = |key: &str| table.get(key).and_then(toml::Value::as_str);
    let urls: Option<Vec<Redacted>> = match table.get("urls") {
        None => None,
        Some(value) => {
            let list = value.as_array().and_then(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().map(|u| Redacted(u.to_string())))
                    .collect::<Option<Vec<Redacted>>>()
            });
            match list {
                Some(list) => Some(list),
                None => {
                    return Err(SettingsProblem::new(
                        "urls",
                        "urls 应为字符串数组 / urls must be an array of strings",
                    ))
                }
            }
        }
    };
    let url_file = text("url_file").map(PathBuf::from);
    let urls_file = text("urls_file").map(PathBuf::from);
    UrlKeys {
        url: text("url"),
        url_env: text("url_env"),
        url_file: url_file.as_deref(),
        urls: urls.as_deref(),
        urls_env: text("urls_env"),
        urls_file: urls_file.as_deref(),
    }
    .nodes(base)
}

/// URLs separated by commas or line breaks (blank entries dropped).
fn split_urls(text: &str) -> Vec<String> {
    text.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// The nodes of a URL list: at least one, each valid, none twice, all of one vhost.
fn nodes_of(texts: &[String]) -> Result<Vec<BrokerNode>, SettingsProblem> {
    let problem = |m: String| SettingsProblem::new("urls", m);
    if texts.is_empty() {
        return Err(problem(
            "urls 为空：至少需要一个节点的 URL / urls is empty: give at least one node's URL".into(),
        ));
    }
    let mut nodes: Vec<BrokerNode> = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let node = BrokerNode::parse(text).map_err(|m| problem(format!("urls[{i}]: {m}")))?;
        if let Some(j) = nodes.iter().position(|n| n.label == node.label) {
            return Err(problem(format!(
                "urls[{i}] 与 urls[{j}] 是同一节点 {} / urls[{i}] repeats urls[{j}]: node {}",
                node.label, node.label
            )));
        }
        if let Some(first) = nodes.first() {
            if first.vhost() != node.vhost() {
                return Err(problem(format!(
                    "各 URL 应指向同一 vhost（同一集群的节点）：urls[0] 为 '{}'，urls[{i}] 为 '{}' / every URL must name the same vhost (nodes of one cluster): urls[0] names '{}', urls[{i}] names '{}'",
                    first.vhost(),
                    node.vhost(),
                    first.vhost(),
                    node.vhost()
                )));
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Which node a connection tries first: the one after the node that failed last, else the one
/// connected to last (the first node at start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    next: usize,
}

impl Rotation {
    /// The order to try `count` nodes in.
    pub fn order(&self, count: usize) -> Vec<usize> {
        let start = if count == 0 { 0 } else { self.next % count };
        (0..count).map(|k| (start + k) % count).collect()
    }

    /// Node `index` took the connection: a reconnection starts there.
    pub fn connected(&mut self, index: usize) {
        self.next = index;
    }

    /// Node `index` (of `count`) failed: a reconnection starts with the next one.
    pub fn failed(&mut self, index: usize, count: usize) {
        self.next = if count == 0 { 0 } else { (index + 1) % count };
    }
}

/// One node that could not be connected to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// The node's label, `scheme://host:port`.
    pub node: String,
    /// Why (the client's error, without the password).
    pub error: String,
}

/// No node of the list took the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.failures))]
pub struct Unreachable {
    /// Every node tried, in the order tried.
    pub failures: Vec<NodeFailure>,
}

fn describe(failures: &[NodeFailure]) -> String {
    match failures {
        [one] => format!(
            "无法连接 AMQP 节点 {}：{} / cannot connect to AMQP node {}: {}",
            one.node, one.error, one.node, one.error
        ),
        _ => {
            let each: Vec<String> = failures.iter().map(|f| format!("{}: {}", f.node, f.error)).collect();
            let each = each.join("; ");
            format!(
                "{} 个 AMQP 节点均无法连接（{each}）/ none of the {} AMQP nodes could be connected to ({each})",
                failures.len(),
                failures.len()
            )
        }
    }
}

/// Connect to the first node that answers, trying them in `rotation`'s order, each within
/// `timeout`; `rotation` learns which failed and which took the connection. Each failed node is
/// logged (by its label) before the next is tried.
pub async fn connect_first(
    nodes: &[BrokerNode],
    rotation: &mut Rotation,
    properties: &ConnectionProperties,
    timeout: Duration,
) -> Result<(Connection, usize), Unreachable> {
    let mut failures = Vec::new();
    for index in rotation.order(nodes.len()) {
        let Some(node) = nodes.get(index) else { continue };
        let opened = tokio::time::timeout(timeout, Connection::connect_uri(node.uri.clone(), properties.clone())).await;
        let error = match opened {
            Ok(Ok(connection)) => {
                rotation.connected(index);
                if !failures.is_empty() {
                    tracing::info!(node = %node.label, "connected to the AMQP node after the ones before it failed");
                }
                return Ok((connection, index));
            }
            Ok(Err(e)) => node.scrub(&e.to_string()),
            Err(_) => format!(
                "{} 秒内未连接 / not connected within {}s",
                timeout.as_secs(),
                timeout.as_secs()
            ),
        };
        rotation.failed(index, nodes.len());
        if nodes.len() > 1 {
            tracing::warn!(node = %node.label, error = %error, "AMQP node not reachable; trying the next one");
        }
        failures.push(NodeFailure {
            node: node.label.clone(),
            error,
        });
    }
    Err(Unreachable { failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(urls: &[&str]) -> Vec<Redacted> {
        urls.iter().map(|u| Redacted(u.to_string())).collect()
    }

    fn keys<'a>(urls: Option<&'a [Redacted]>, url: Option<&'a str>) -> UrlKeys<'a> {
        UrlKeys {
            url,
            url_env: None,
            url_file: None,
            urls,
            urls_env: None,
            urls_file: None,
        }
    }

    #[test]
    fn a_node_is_named_by_scheme_host_and_port_never_its_credentials() {
        let list = redacted(&[
            "amqp://gw:pw-secret@mq1.example:5672/cases",
            "amqps://gw:pw-secret@10.0.0.2/cases",
        ]);
        let nodes = keys(Some(&list), None).nodes(Path::new("/")).unwrap();
        let labels: Vec<&str> = nodes.iter().map(BrokerNode::label).collect();
        assert_eq!(labels, ["amqp://mq1.example:5672", "amqps://10.0.0.2:5671"]);
        assert_eq!(format!("{nodes:?}"), "[amqp://mq1.example:5672, amqps://10.0.0.2:5671]");
        let ipv6 = redacted(&["amqp://gw:pw@[::1]:5672/cases"]);
        let refused = keys(Some(&ipv6), None).nodes(Path::new("/")).unwrap_err();
        assert!(
            refused.message.contains("urls[0]: ") && refused.message.contains("IPv6"),
            "{}",
            refused.message
        );
        assert_eq!(nodes[0].vhost(), "cases");
        assert_eq!(
            nodes[0].scrub("ACCESS_REFUSED for gw/pw-secret"),
            "ACCESS_REFUSED for gw/***"
        );
    }

    #[test]
    fn one_url_or_a_list_but_not_both_and_problems_name_their_entry() {
        let base = Path::new("/");
        let one = keys(None, Some("amqp://127.0.0.1")).nodes(base).unwrap();
        assert_eq!(one.len(), 1);
        let list = redacted(&["amqp://a"]);
        let both = keys(Some(&list), Some("amqp://b")).nodes(base).unwrap_err();
        assert_eq!(both.key, "urls");
        assert!(
            both.message.contains("give only one of url, url_env, url_file, urls"),
            "{}",
            both.message
        );
        let none = keys(None, None).nodes(base).unwrap_err();
        assert_eq!(none.key, "url");
        let bad = redacted(&["amqp://a", "amqp://gw:pw@[broken"]);
        let bad = keys(Some(&bad), None).nodes(base).unwrap_err();
        assert!(bad.message.starts_with("urls[1]: "), "{}", bad.message);
        assert!(!bad.message.contains("pw"), "{}", bad.message);
        let scheme = redacted(&["http://a"]);
        assert!(keys(Some(&scheme), None)
            .nodes(base)
            .unwrap_err()
            .message
            .contains("urls[0]: 应以 amqp://"));
        let twice = redacted(&["amqp://u:1@a:5672/v", "amqp://u:2@a/v"]);
        let twice = keys(Some(&twice), None).nodes(base).unwrap_err();
        assert!(
            twice.message.contains("urls[1] repeats urls[0]: node amqp://a:5672"),
            "{}",
            twice.message
        );
        let vhosts = redacted(&["amqp://a/one", "amqp://b/two"]);
        let vhosts = keys(Some(&vhosts), None).nodes(base).unwrap_err();
        assert!(
            vhosts.message.contains("urls[0] names 'one', urls[1] names 'two'"),
            "{}",
            vhosts.message
        );
        let empty: Vec<Redacted> = Vec::new();
        assert!(keys(Some(&empty), None)
            .nodes(base)
            .unwrap_err()
            .message
            .contains("urls is empty"));
    }

    #[test]
    fn a_url_list_in_a_variable_or_file_is_split_on_commas_and_lines() {
        assert_eq!(
            split_urls(" amqp://a ,amqp://b\n\namqp://c\r\n"),
            ["amqp://a", "amqp://b", "amqp://c"]
        );
        let dir = std::env::temp_dir().join(format!("gw-urls-{}", std::process::id()));
        std::fs::write(&dir, "amqp://a:1\namqp://b:2\n").unwrap();
        let from_file = UrlKeys {
            urls_file: Some(&dir),
            ..keys(None, None)
        };
        let nodes = from_file.nodes(Path::new("/")).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(nodes.len(), 2);
        let unset = UrlKeys {
            urls_env: Some("GW_SURELY_UNSET_AMQP_URLS"),
            ..keys(None, None)
        };
        let problem = unset.nodes(Path::new("/")).unwrap_err();
        assert_eq!(problem.key, "urls");
        assert!(
            problem.message.contains("urls_env: 环境变量 GW_SURELY_UNSET_AMQP_URLS"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn reconnection_starts_after_the_node_that_failed_last() {
        let mut r = Rotation::default();
        assert_eq!(r.order(3), [0, 1, 2]);
        r.failed(0, 3);
        assert_eq!(r.order(3), [1, 2, 0]);
        r.connected(1);
        assert_eq!(r.order(3), [1, 2, 0], "a working node is kept");
        r.failed(2, 3);
        assert_eq!(r.order(3), [0, 1, 2], "after the last node, the first");
        assert_eq!(Rotation::default().order(0), Vec::<usize>::new());
    }

    #[tokio::test]
    async fn unreachable_nodes_are_each_named_in_the_order_tried() {
        // Port 1 on the loopback refuses at once.
        let list = redacted(&["amqp://gw:pw-secret@127.0.0.1:1/%2f", "amqp://127.0.0.2:1/%2f"]);
        let nodes = keys(Some(&list), None).nodes(Path::new("/")).unwrap();
        let mut rotation = Rotation::default();
        rotation.failed(0, 2);
        let err = connect_first(
            &nodes,
            &mut rotation,
            &ConnectionProperties::default(),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        let tried: Vec<&str> = err.failures.iter().map(|f| f.node.as_str()).collect();
        assert_eq!(tried, ["amqp://127.0.0.2:1", "amqp://127.0.0.1:1"]);
        let text = err.to_string();
        assert!(
            text.contains("none of the 2 AMQP nodes could be connected to (amqp://127.0.0.2:1: "),
            "{text}"
        );
        assert!(!text.contains("pw-secret"), "{text}");
        assert_eq!(
            rotation.order(2),
            [1, 0],
            "the next attempt starts after the last failure"
        );
    }
}

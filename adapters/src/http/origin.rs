//! Where a pull source's credentials may go: the origin of its `url` (same scheme, host and
//! port) and the hosts its `allowed_hosts` setting lists, nowhere else. The HTTP client checks
//! every request against this before adding credentials, and refuses redirects elsewhere with
//! a [`reqwest::redirect::Policy`] of its own; the REST source checks each next link.
//!
//! `allowed_hosts` entries are matched exactly: a host name (case does not matter), an IPv4
//! address or a bracketed IPv6 address, optionally with `:port`. Without a port an entry
//! admits every port of that host, with one only that port. There are no wildcards and no
//! subdomain matches (`example.gov.cn` does not admit `api.example.gov.cn`). An https source's
//! credentials never go to a plain-http URL, listed or not.

use crate::common::http_error::{ForeignOrigin, Hop};
use crate::common::settings::SettingsProblem;
use reqwest::Url;
use std::sync::Arc;

/// One entry of `allowed_hosts`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// The host as URLs write it (lower case; IPv6 in brackets).
    host: String,
    /// The only port admitted, if the entry names one.
    port: Option<u16>,
}

impl AllowedHost {
    /// Read an entry: `host`, `host:port`, `192.0.2.1`, `[2001:db8::1]:8443`.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let invalid = |why: &str| {
            format!(
                "{entry:?} 不是主机名（可带 :端口）：{why} / {entry:?} is not a host name with an optional :port: {why}"
            )
        };
        if entry.is_empty() {
            return Err(invalid("空 / empty"));
        }
        if entry.contains(['/', '@', '?', '#', '*', ' ']) {
            return Err(invalid(
                "不能含协议、路径、用户或通配符 / no scheme, path, user or wildcard",
            ));
        }
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((addr, "")) => (format!("[{addr}]"), None),
                Some((addr, tail)) => match tail.strip_prefix(':') {
                    Some(p) => (format!("[{addr}]"), Some(p)),
                    None => {
                        return Err(invalid(
                            "IPv6 地址后只能跟 :端口 / only :port may follow an IPv6 address",
                        ))
                    }
                },
                None => return Err(invalid("缺少 ] / missing ]")),
            },
            None => match entry.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (entry.to_string(), None),
            },
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid("端口应为 1..65535 / the port must be 1..65535"))?,
            ),
            None => None,
        };
        let parsed = url::Host::parse(&host).map_err(|e| invalid(&e.to_string()))?;
        Ok(AllowedHost {
            host: parsed.to_string(),
            port,
        })
    }

    fn admits(&self, url: &Url) -> bool {
        url.host_str() == Some(self.host.as_str()) && self.port.is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

/// The `allowed_hosts` setting, checked: each entry that is not a host (with an optional port)
/// is a problem naming it.
pub fn allowed_hosts(entries: &[String], problems: &mut Vec<SettingsProblem>) -> Vec<AllowedHost> {
    entries
        .iter()
        .filter_map(|e| match AllowedHost::parse(e) {
            Ok(h) => Some(h),
            Err(m) => {
                problems.push(SettingsProblem::new("allowed_hosts", m));
                None
            }
        })
        .collect()
}

/// The origins a source's credentials may go to.
#[derive(Debug, Clone)]
pub struct OriginGuard {
    home: Url,
    allowed: Vec<AllowedHost>,
}

/// `scheme://host:port` of a URL, without path, query or user.
pub fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl OriginGuard {
    /// The origins of a source whose `url` is `home`, plus the `allowed` hosts.
    pub fn new(home: &Url, allowed: Vec<AllowedHost>) -> OriginGuard {
        OriginGuard {
            home: home.clone(),
            allowed,
        }
    }

    /// Whether a request to `target` (reached by `hop`) may carry the source's credentials:
    /// the origin of the source's `url`, or a listed host (not over http when `url` is https).
    pub fn check(&self, target: &Url, hop: Hop) -> Result<(), ForeignOrigin> {
        if target.origin() == self.home.origin() {
            return Ok(());
        }
        let listed = self.allowed.iter().any(|a| a.admits(target));
        let downgrade = listed && self.home.scheme() == "https" && target.scheme() != "https";
        if listed && !downgrade {
            return Ok(());
        }
        Err(ForeignOrigin {
            hop,
            target: origin_text(target),
            host: target.host_str().unwrap_or_default().to_string(),
            home: origin_text(&self.home),
            downgrade,
        })
    }

    /// A redirect policy that follows at most `max` redirects, each to the origin of the request
    /// that started the chain (already checked, or the token endpoint) or to an origin
    /// [`OriginGuard::check`] admits; any other redirect fails the request with a
    /// [`ForeignOrigin`] (see [`crate::common::http_error::foreign_origin_of`]).
    pub fn redirect_policy(self: Arc<Self>, max: usize) -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(move |attempt| {
            let first = attempt.previous().first().map(Url::origin);
            let target = attempt.url();
            let same_as_request = first.is_some_and(|o| o == target.origin());
            if !same_as_request {
                let from = attempt.previous().last().map(origin_text).unwrap_or_default();
                if let Err(refused) = self.check(target, Hop::Redirect { from }) {
                    return attempt.error(refused);
                }
            }
            reqwest::redirect::Policy::limited(max).redirect(attempt)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn guard(home: &str, allowed: &[&str]) -> OriginGuard {
        let mut problems = Vec::new();
        let entries: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let hosts = allowed_hosts(&entries, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        OriginGuard::new(&url(home), hosts)
    }

    #[test]
    fn only_the_urls_own_origin_is_admitted_without_allowed_hosts() {
        let g = guard("http://127.0.0.1:8080/api/cases", &[]);
        assert!(g
            .check(&url("http://127.0.0.1:8080/other?page=2"), Hop::NextLink)
            .is_ok());
        for other in [
            "http://127.0.0.1:8081/api/cases",
            "https://127.0.0.1:8080/api/cases",
            "http://localhost:8080/api/cases",
        ] {
            let refused = g.check(&url(other), Hop::NextLink).unwrap_err();
            assert_eq!(refused.home, "http://127.0.0.1:8080");
            assert!(refused.to_string().contains("allowed_hosts"), "{refused}");
        }
    }

    #[test]
    fn a_listed_host_is_admitted_on_any_port_or_on_its_own_port_exactly() {
        let g = guard(
            "http://zf.example.gov.cn/api",
            &["CDN.Example.gov.cn", "127.0.0.1:9000", "[::1]"],
        );
        assert!(g
            .check(&url("http://cdn.example.gov.cn:8443/p2"), Hop::NextLink)
            .is_ok());
        assert!(g.check(&url("http://127.0.0.1:9000/p2"), Hop::NextLink).is_ok());
        assert!(g.check(&url("http://[::1]:1234/p2"), Hop::NextLink).is_ok());
        let wrong_port = g.check(&url("http://127.0.0.1:9001/p2"), Hop::NextLink).unwrap_err();
        assert_eq!(wrong_port.target, "http://127.0.0.1:9001");
        assert!(
            g.check(&url("http://api.cdn.example.gov.cn/p2"), Hop::NextLink)
                .is_err(),
            "no subdomain match"
        );
        assert!(
            g.check(&url("http://example.gov.cn/p2"), Hop::NextLink).is_err(),
            "no parent-domain match"
        );
    }

    #[test]
    fn an_https_sources_credentials_never_go_over_plain_http_even_to_a_listed_host() {
        let g = guard("https://zf.example.gov.cn/api", &["cdn.example.gov.cn"]);
        assert!(g.check(&url("https://cdn.example.gov.cn/p2"), Hop::NextLink).is_ok());
        let refused = g
            .check(&url("http://cdn.example.gov.cn/p2"), Hop::NextLink)
            .unwrap_err();
        assert!(refused.downgrade);
        assert!(refused.to_string().contains("plain http"), "{refused}");
    }

    #[test]
    fn entries_that_are_not_hosts_are_problems_naming_the_value() {
        for bad in [
            "",
            "https://cdn.example.gov.cn",
            "cdn.example.gov.cn/path",
            "*.example.gov.cn",
            "host:0",
            "host:http",
            "[::1",
            "user@host",
        ] {
            let mut problems = Vec::new();
            allowed_hosts(&[bad.to_string()], &mut problems);
            assert_eq!(problems.len(), 1, "{bad:?} should be refused");
            assert_eq!(problems[0].key, "allowed_hosts");
            assert!(
                problems[0].message.contains(&format!("{bad:?}")),
                "{}",
                problems[0].message
            );
        }
    }
}

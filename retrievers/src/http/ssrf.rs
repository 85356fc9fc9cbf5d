//! The SSRF policy: which addresses URLs from the internet may reach.
//!
//! Enforced in three places for [`crate::Trust::Untrusted`] requests:
//! * before sending, for IP-literal hosts (they never reach a resolver);
//! * in [`GuardedResolver`], which resolves host names and hands `reqwest` only the
//!   addresses the policy allows, so the address connected to is a checked one;
//! * in the redirect policy, on every hop (IP literals there, names through the resolver).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Which hosts untrusted URLs may reach.
///
/// By default a URL whose host resolves to a loopback, private, link-local, CGNAT,
/// multicast, unspecified or cloud-metadata address (IPv4 and IPv6, v4-mapped included)
/// is refused. Hosts named in `allow_hosts` are let through whatever they resolve to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Host names or IP literals (lower-case, no port) that untrusted URLs may reach
    /// even when they resolve to a private address.
    pub allow_hosts: HashSet<String>,
    /// Turn the policy off entirely (only for closed networks and tests).
    pub disabled: bool,
}

impl SsrfPolicy {
    /// Allow one more host.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allow_hosts.insert(normalise_host(&host.into()));
        self
    }

    /// True when `host` (a name or IP literal, IPv6 with or without brackets) may be
    /// reached whatever it resolves to.
    pub fn allows_host(&self, host: &str) -> bool {
        self.disabled || self.allow_hosts.contains(&normalise_host(host))
    }

    /// Check a URL before it is requested: only `http`/`https`, and an IP-literal host
    /// must not be in a refused range unless allowed. Host names are checked when they
    /// are resolved. Returns the reason for a refusal.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if self.disabled {
            return Ok(());
        }
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(format!("scheme `{other}` is not http or https")),
        }
        let host = match url.host() {
            Some(h) => h,
            None => return Err("the URL has no host".to_string()),
        };
        let ip = match host {
            Host::Domain(name) => return self.check_domain_literal(name),
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
        };
        if self.allows_host(&ip.to_string()) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(format!("{ip} is {reason}")),
            None => Ok(()),
        }
    }

    /// A domain that is in fact a number (`http://2130706433/`) is parsed by `url` as
    /// IPv4 already; this catches names that still parse as addresses elsewhere.
    fn check_domain_literal(&self, name: &str) -> Result<(), String> {
        match name.parse::<IpAddr>() {
            Ok(ip) if !self.allows_host(name) => match blocked_reason(ip) {
                Some(reason) => Err(format!("{ip} is {reason}")),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Check the address a connection was actually made to, for `host`.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.allows_host(host) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(format!("{host} resolves to {ip}, {reason}")),
            None => Ok(()),
        }
    }
}

fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Why an address may not be reached by untrusted URLs, or `None` when it is a
/// public unicast address.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RULES: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "the cloud metadata address"),
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([100, 64, 0, 0], 10, "a carrier-grade NAT (shared) address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    RULES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// The IPv4 address embedded in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // v4-mapped ::ffff:a.b.c.d, v4-compatible ::a.b.c.d, NAT64 64:ff9b::/96 and
    // 6to4 2002:AABB:CCDD::/48 all carry an IPv4 address that is what gets reached.
    let embedded = if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        Some(low_v4(ip))
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some(Ipv4Addr::from(
            ((u128::from(ip) >> 80) & 0xffff_ffff) as u32,
        ))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return blocked_v4(v4).map(|_| "an IPv6 form of a refused IPv4 address");
    }
    const RULES: &[([u16; 8], u32, &str)] = &[
        (
            [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
            128,
            "the cloud metadata address",
        ),
        (
            [0xfc00, 0, 0, 0, 0, 0, 0, 0],
            7,
            "a unique-local (private) address",
        ),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "a link-local address"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "a site-local address"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "a multicast address"),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            "a documentation address",
        ),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "a documentation address"),
        (
            [0x2001, 0x2, 0, 0, 0, 0, 0, 0],
            48,
            "a benchmarking address",
        ),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "a Teredo tunnel address"),
        (
            [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
            48,
            "a local-use NAT64 address",
        ),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "a discard-only address"),
    ];
    RULES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

/// Why a request was refused; carried through `reqwest`'s error chain.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

/// Too many redirects; carried through `reqwest`'s error chain.
#[derive(Debug, Clone)]
pub(crate) struct TooManyRedirects(pub(crate) usize);

impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} redirects", self.0)
    }
}

impl std::error::Error for TooManyRedirects {}

/// A DNS resolver that drops the addresses the policy refuses, so that `reqwest`
/// can only connect to allowed ones.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<SsrfPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_addr(&host, a.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        first_refusal.get_or_insert(reason);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = first_refusal.unwrap_or_else(|| format!("{host} did not resolve"));
                return Err(
                    Box::new(Refusal { reason }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The redirect policy for trusted requests (configured endpoints, which may carry keys
/// in headers such as Brave's `X-Subscription-Token` that `reqwest` does not strip):
/// at most `max` hops, and only within the host of the first request.
pub(crate) fn same_host_redirects(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(TooManyRedirects(max));
        }
        let host = |u: &url::Url| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        };
        let from = attempt.previous().first().and_then(host);
        let to = host(attempt.url());
        if from.is_some() && from == to {
            return attempt.follow();
        }
        let reason = format!(
            "the endpoint {} redirected to another host ({}); not followed, so that its key or token is not sent there: set the base URL to the new address if you trust it",
            from.unwrap_or_default(),
            to.unwrap_or_default()
        );
        attempt.error(Refusal { reason })
    })
}

/// The redirect policy for untrusted requests: at most `max` hops, each checked.
pub(crate) fn guarded_redirects(policy: Arc<SsrfPolicy>, max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(TooManyRedirects(max));
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(reason) => attempt.error(Refusal { reason }),
        }
    })
}

//! Where webhook pings may go: only public internet addresses, unless the operator allows more
//! with `PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE` ([`PrivateTargets`]).
//!
//! A notification URL is chosen by a base creator, but the request is made by the server, from
//! inside its network. Without this check a creator could make the server call its loopback
//! services, its private network or a cloud metadata endpoint (server-side request forgery).
//! The URL is checked twice: when the webhook is created (its literal address, or the addresses
//! its host name resolves to then) and again at every ping, by a resolver that hands the HTTP
//! client only allowed addresses. The second check is the one that protects: a host name can
//! resolve to a public address at creation and to a private one later (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::{Cidr, PrivateTargets};

/// How long the creation check waits for a host name to resolve before giving the decision to
/// delivery.
const CREATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Non-public IPv4 networks and what they are (IANA special-purpose registry).
const V4_SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified (\"this network\")"),
    ("10.0.0.0/8", "private network"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private network"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private network"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// Non-public IPv6 networks inside the global unicast range `2000::/3` (everything outside it
/// is refused as reserved, after the embedded-IPv4 forms are unwrapped).
const V6_SPECIAL: &[(&str, &str)] = &[
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
];

type Table = Vec<(Cidr, &'static str)>;

fn table(entries: &[(&str, &'static str)]) -> Table {
    entries
        .iter()
        .filter_map(|(net, what)| Cidr::parse(net).ok().map(|c| (c, *what)))
        .collect()
}

static V4: LazyLock<Table> = LazyLock::new(|| table(V4_SPECIAL));
static V6: LazyLock<Table> = LazyLock::new(|| table(V6_SPECIAL));

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == Ipv4Addr::BROADCAST {
        return Some("broadcast");
    }
    V4.iter()
        .find(|(net, _)| net.contains(IpAddr::V4(ip)))
        .map(|(_, what)| *what)
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses reach the IPv4
    // address they carry; 6to4 (2002:AABB:CCDD::) routes to AA.BB.CC.DD.
    let low32 = Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).unwrap_or(0));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return v4_kind(low32);
    }
    if segments[0] == 0x2002 {
        let embedded = (u32::from(segments[1]) << 16) | u32::from(segments[2]);
        return v4_kind(Ipv4Addr::from(embedded));
    }
    match segments[0] {
        0xfc00..=0xfdff => return Some("unique local (private network)"),
        0xfe80..=0xfebf => return Some("link-local"),
        0xfec0..=0xfeff => return Some("site-local"),
        0xff00..=0xffff => return Some("multicast"),
        _ => {}
    }
    if !(0x2000..=0x3fff).contains(&segments[0]) {
        return Some("reserved");
    }
    V6.iter()
        .filter(|(net, _)| net.contains(IpAddr::V6(ip)))
        // The most specific network names the address best (documentation inside reserved).
        .max_by_key(|(net, _)| net.prefix())
        .map(|(_, what)| *what)
}

/// What kind of non-public address `ip` is (`"loopback"`, `"private network"`, …), or `None`
/// for a public internet address.
#[must_use]
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

/// Whether pings may connect to `ip`: a public address, or one the operator allowed.
#[must_use]
pub fn permitted(ip: IpAddr, allow: &PrivateTargets) -> bool {
    non_public(ip).is_none() || allow.allows_ip(ip)
}

/// Why a notification URL is refused at creation. The messages name the problem without
/// revealing what the server's DNS says about internal names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("notificationUrl is not a valid URL")]
    Invalid,
    /// Not an absolute http(s) URL with a host.
    #[error("notificationUrl must be an http or https URL")]
    Scheme,
    /// A literal address that is not public.
    #[error(
        "notificationUrl points to a {0} address; webhooks may only call public internet addresses"
    )]
    Address(&'static str),
    /// A host name that resolves to an address that is not public.
    #[error(
        "notificationUrl's host resolves to a private, loopback or otherwise non-public address; webhooks may only call public internet addresses"
    )]
    Resolves,
}

/// A URL's host: a literal address, or a name to resolve.
enum Target<'a> {
    Address(IpAddr),
    Name(&'a str),
}

fn host(url: &Url) -> Option<Target<'_>> {
    let host = url.host_str()?;
    // The parser has already normalised every IPv4 spelling to dotted decimal and puts IPv6
    // addresses in brackets, so parsing the text is exact.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Target::Address(ip),
        Err(_) => Target::Name(host),
    })
}

/// Whether `name` is `localhost` or one of its subdomains, which always mean the loopback
/// interface (RFC 6761) whatever a resolver answers for them.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Checks a notification URL for a new webhook and returns it normalised.
///
/// The URL parser normalises every spelling of an IPv4 address (`2130706433`, `0x7f.1`,
/// `0177.0.0.1`, `127.1`), so these are judged as the address they mean. A host name that does
/// not resolve now is accepted: delivery checks it again at every ping.
///
/// # Errors
/// [`TargetError`] naming what is wrong.
pub async fn check_notification_url(raw: &str, allow: &PrivateTargets) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim()).map_err(|_| TargetError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    match host(&url) {
        None => return Err(TargetError::Scheme),
        Some(Target::Address(ip)) => {
            if let Some(kind) = non_public(ip)
                && !allow.allows_ip(ip)
            {
                return Err(TargetError::Address(kind));
            }
        }
        Some(Target::Name(name)) => {
            if is_localhost(name) && !allow.allows_host(name) {
                return Err(TargetError::Resolves);
            }
            if !allow.allows_host(name) {
                let port = url.port_or_known_default().unwrap_or(80);
                let lookup = tokio::net::lookup_host((name, port));
                if let Ok(Ok(addrs)) = tokio::time::timeout(CREATION_LOOKUP_TIMEOUT, lookup).await {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.iter().any(|a| !permitted(a.ip(), allow)) {
                        return Err(TargetError::Resolves);
                    }
                }
            }
        }
    }
    Ok(url)
}

/// The failure a ping records when its host has no address it may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every address of the notification URL's host is refused by the webhook address policy")]
pub struct Refused;

/// Whether `error` (or anything it was caused by) is [`Refused`].
#[must_use]
pub fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<Refused>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether a ping to `url` must not be sent because its host is a literal address the policy
/// refuses. The HTTP client does not resolve literal addresses, so [`GuardedResolver`] never
/// sees them; the stored URL was checked at creation, but the policy may have changed since.
#[must_use]
pub fn literal_refused(url: &str, allow: &PrivateTargets) -> bool {
    let Ok(url) = Url::parse(url) else {
        // Creation never stores an unparseable URL, and sending one would fail anyway.
        return true;
    };
    match host(&url) {
        Some(Target::Address(ip)) => !permitted(ip, allow),
        Some(Target::Name(_)) => false,
        None => true,
    }
}

/// The DNS resolver of the webhook HTTP client: resolves with the system resolver, then hands
/// the client only the addresses pings may reach, so the connection is made to an address that
/// was checked (no second lookup an attacker's DNS could answer differently).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: PrivateTargets,
}

impl GuardedResolver {
    /// A resolver enforcing `allow`.
    #[must_use]
    pub fn new(allow: PrivateTargets) -> Self {
        Self { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let trusted = allow.allows_host(&host);
            let kept: Vec<SocketAddr> = addrs
                .filter(|a| trusted || permitted(a.ip(), &allow))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (address, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private network"),
            ("172.16.0.1", "private network"),
            ("172.31.255.255", "private network"),
            ("192.168.1.1", "private network"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("100.100.100.200", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("64:ff9b::10.0.0.1", "private network"),
            ("2002:c0a8:0101::1", "private network"),
            ("fc00::1", "unique local (private network)"),
            ("fd00:ec2::254", "unique local (private network)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "reserved"),
            ("::127.0.0.1", "reserved"),
            ("100::1", "reserved"),
        ] {
            assert_eq!(non_public(ip(address)), Some(kind), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "192.169.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert_eq!(non_public(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn the_allow_list_opens_only_what_it_names() {
        let allow = PrivateTargets::parse("127.0.0.0/8").expect("list");
        assert!(permitted(ip("127.0.0.1"), &allow));
        assert!(!permitted(ip("10.0.0.1"), &allow));
        assert!(!permitted(ip("::1"), &allow));
        assert!(permitted(ip("8.8.8.8"), &PrivateTargets::default()));
    }

    #[tokio::test]
    async fn creation_refuses_every_spelling_of_a_non_public_address() {
        let none = PrivateTargets::default();
        for url in [
            "http://127.0.0.1/hook",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]:8080/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://[fe80::1]/",
        ] {
            assert!(
                matches!(
                    check_notification_url(url, &none).await,
                    Err(TargetError::Address(_))
                ),
                "{url} accepted"
            );
        }
        for url in ["ftp://example.com/", "file:///etc/passwd", "mailto:a@b.c"] {
            assert_eq!(
                check_notification_url(url, &none).await,
                Err(TargetError::Scheme),
                "{url}"
            );
        }
        assert_eq!(
            check_notification_url("not a url", &none).await,
            Err(TargetError::Invalid)
        );
        for url in [
            "http://localhost:9/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert_eq!(
                check_notification_url(url, &none).await,
                Err(TargetError::Resolves),
                "{url}"
            );
        }
        let public = check_notification_url("https://8.8.8.8/hook", &none)
            .await
            .expect("public address");
        assert_eq!(public.as_str(), "https://8.8.8.8/hook");
    }

    #[tokio::test]
    async fn the_allow_list_lets_named_targets_through() {
        let allow = PrivateTargets::parse("127.0.0.1,localhost").expect("list");
        assert!(
            check_notification_url("http://2130706433/", &allow)
                .await
                .is_ok()
        );
        assert!(
            check_notification_url("http://LocalHost./x", &allow)
                .await
                .is_ok()
        );
        assert!(
            check_notification_url("http://10.0.0.1/", &allow)
                .await
                .is_err()
        );
    }

    #[test]
    fn literal_addresses_are_checked_before_a_ping() {
        let none = PrivateTargets::default();
        assert!(literal_refused("http://127.0.0.1:8000/x", &none));
        assert!(literal_refused("http://[::1]/", &none));
        assert!(!literal_refused("http://8.8.8.8/", &none));
        assert!(!literal_refused("http://example.com/", &none));
        assert!(literal_refused("::", &none));
        let allow = PrivateTargets::parse("127.0.0.1").expect("list");
        assert!(!literal_refused("http://127.0.0.1:8000/x", &allow));
    }

    #[tokio::test]
    async fn the_resolver_refuses_hosts_with_no_allowed_address() {
        let refusing = GuardedResolver::new(PrivateTargets::default());
        let name: Name = "localhost".parse().expect("name");
        let error = refusing
            .resolve(name)
            .await
            .err()
            .expect("localhost refused");
        assert!(is_refused(error.as_ref()));

        let allowing = GuardedResolver::new(PrivateTargets::parse("127.0.0.0/8").expect("list"));
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = allowing.resolve(name).await.expect("allowed").collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()));
    }
}

//! Typed settings, read from flags and the environment, with the local services as defaults.

use std::net::{IpAddr, SocketAddr};

use clap::Args;
use pyairtable_eventstore::{Namespace, StoreConfig};

/// Where the platform's services are and which namespace it owns in them.
///
/// Every setting has an environment variable so the same binary runs unchanged from a shell, a
/// systemd unit or a Kubernetes pod; a flag overrides the variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL connection string (the event store and the SQL read models).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://pyairtable:pyairtable@127.0.0.1:5432/pyairtable",
        global = true
    )]
    pub database_url: String,

    /// NATS server with JetStream.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,

    /// Redis server.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,

    /// Prefix of everything this deployment owns: the Postgres schema, JetStream streams,
    /// consumers and subjects, and Redis keys. Several deployments (or parallel test runs) share
    /// one Postgres, NATS and Redis safely when their namespaces differ.
    #[arg(
        long,
        env = "PYAIRTABLE_NAMESPACE",
        default_value = "pyairtable",
        global = true
    )]
    pub namespace: String,

    /// HS256 key signing access tokens (at least 32 bytes). When unset, a random key is
    /// generated on first start and kept in the database, shared by every node.
    #[arg(
        long,
        env = "PYAIRTABLE_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,

    /// Largest accepted event payload, in bytes.
    #[arg(
        long,
        env = "PYAIRTABLE_MAX_EVENT_BYTES",
        default_value_t = 1024 * 1024,
        global = true
    )]
    pub max_event_bytes: usize,

    /// Whether anyone may register an account (`register` without being signed in).
    #[arg(long, env = "PYAIRTABLE_OPEN_REGISTRATION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub open_registration: bool,

    /// Emails (comma-separated) whose accounts become instance administrators on registration.
    #[arg(
        long,
        env = "PYAIRTABLE_ADMIN_EMAILS",
        value_delimiter = ',',
        global = true
    )]
    pub admin_emails: Vec<String>,

    /// Whether the GraphQL schema answers introspection queries (GraphiQL needs them).
    #[arg(long, env = "PYAIRTABLE_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub graphql_introspection: bool,

    /// GraphQL requests one token (or one anonymous client address) may make per window;
    /// 0 turns the limit off.
    #[arg(
        long,
        env = "PYAIRTABLE_GRAPHQL_RATE_LIMIT",
        default_value_t = 1200,
        global = true
    )]
    pub graphql_rate_limit: u32,

    /// Length of the GraphQL rate-limit window, in seconds.
    #[arg(
        long,
        env = "PYAIRTABLE_GRAPHQL_RATE_LIMIT_WINDOW_SECS",
        default_value_t = 60,
        global = true
    )]
    pub graphql_rate_limit_window_secs: u64,

    /// Largest accepted GraphQL request body, in bytes.
    #[arg(long, env = "PYAIRTABLE_GRAPHQL_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub graphql_max_body_bytes: usize,

    /// How long a query with a `consistencyToken` waits for the read models to catch up
    /// before failing with `STALE_READ`, in milliseconds.
    #[arg(
        long,
        env = "PYAIRTABLE_CONSISTENCY_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub consistency_timeout_ms: u64,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address the HTTP server listens on (port 0 picks a free port; the chosen address is
    /// logged and printed).
    #[arg(long, env = "PYAIRTABLE_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
}

impl Settings {
    /// The validated namespace.
    ///
    /// # Errors
    /// When the namespace is not `^[a-z][a-z0-9_]{0,30}$`.
    pub fn namespace(&self) -> anyhow::Result<Namespace> {
        Namespace::parse(&self.namespace).map_err(|e| anyhow::anyhow!("PYAIRTABLE_NAMESPACE: {e}"))
    }

    /// The authentication settings: the configured JWT secret, or the deployment's generated
    /// one (created on first use, race-free, in `instance_secrets`).
    ///
    /// # Errors
    /// When the configured secret is shorter than 32 bytes or the database fails.
    pub async fn auth_config(
        &self,
        store: &pyairtable_eventstore::EventStore,
    ) -> anyhow::Result<pyairtable_commands::AuthConfig> {
        let secret = match &self.jwt_secret {
            Some(secret) => {
                anyhow::ensure!(
                    secret.len() >= 32,
                    "PYAIRTABLE_JWT_SECRET must be at least 32 bytes long"
                );
                secret.as_bytes().to_vec()
            }
            None => {
                let candidate: [u8; 32] = rand::random();
                // Whoever inserts first wins; everybody reads the winner's key.
                sqlx::query(
                    "INSERT INTO instance_secrets (name, value) VALUES ('jwt', $1)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(candidate.as_slice())
                .execute(store.pool())
                .await?;
                sqlx::query_scalar("SELECT value FROM instance_secrets WHERE name = 'jwt'")
                    .fetch_one(store.pool())
                    .await?
            }
        };
        Ok(pyairtable_commands::AuthConfig::new(secret))
    }

    /// The event store's configuration derived from these settings.
    ///
    /// # Errors
    /// When the namespace is invalid.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let mut config = StoreConfig::new(self.database_url.clone(), self.namespace()?);
        config.max_event_bytes = self.max_event_bytes;
        Ok(config)
    }
}

/// Environment variable: the private, loopback, link-local or otherwise non-public
/// destinations webhook pings may reach anyway (see [`PrivateTargets`]).
pub const WEBHOOK_ALLOW_PRIVATE_ENV: &str = "PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE";

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address` or `address/prefix`.
    ///
    /// # Errors
    /// When the address or the prefix length is not valid for the address family.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?} has a prefix length outside 0..={max}"))?,
        };
        Ok(Self { network, prefix })
    }

    /// The prefix length (32 or 128 for a single address).
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// compared as the IPv4 address it carries.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Non-public destinations webhook pings may reach anyway, from
/// `PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE`: a comma-separated list of
///
/// - IP addresses and networks (`127.0.0.1`, `10.20.0.0/16`, `::1`, `fd00::/8`): these
///   addresses are allowed whatever name leads to them;
/// - host names (`hooks.internal`): every address this name resolves to is allowed (the
///   operator trusts its DNS);
/// - `*`: every address (development only).
///
/// Empty (the default) allows no private, loopback, link-local, metadata or reserved address:
/// a webhook can only call the public internet, so a base creator cannot make the server
/// reach inside its own network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateTargets {
    any: bool,
    hosts: Vec<String>,
    networks: Vec<Cidr>,
}

impl PrivateTargets {
    /// Parses the comma-separated list described on the type.
    ///
    /// # Errors
    /// When an entry is neither `*`, an address, a network, nor a host name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut targets = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                targets.any = true;
            } else if entry.contains('/') || entry.parse::<IpAddr>().is_ok() {
                targets.networks.push(Cidr::parse(entry)?);
            } else if matches!(
                entry.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off" | "all"
            ) {
                // Someone meaning "allow everything" must not get a host named "true".
                return Err(format!(
                    "{entry:?} is not an address, network or host name (use * to allow every address)"
                ));
            } else {
                targets.hosts.push(host_name(entry)?);
            }
        }
        Ok(targets)
    }

    /// The list from `PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE`, empty when unset.
    ///
    /// # Errors
    /// When the variable is set to something [`PrivateTargets::parse`] refuses.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(WEBHOOK_ALLOW_PRIVATE_ENV) {
            Ok(raw) => {
                Self::parse(&raw).map_err(|e| anyhow::anyhow!("{WEBHOOK_ALLOW_PRIVATE_ENV}: {e}"))
            }
            Err(_) => Ok(Self::default()),
        }
    }

    /// Whether every address is allowed (`*`).
    #[must_use]
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether every address of host name `host` is allowed (compared case-insensitively,
    /// ignoring a trailing dot).
    #[must_use]
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.any || self.hosts.contains(&host)
    }

    /// Whether `ip` is allowed although it is not a public address.
    #[must_use]
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.any || self.networks.iter().any(|n| n.contains(ip))
    }
}

/// A host name entry, lower-cased and without a trailing dot.
fn host_name(entry: &str) -> Result<String, String> {
    let name = entry.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(name)
    } else {
        Err(format!("{entry:?} is not an address, network or host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Cidr::parse("10.20.0.0/16").expect("cidr");
        assert!(net.contains(ip("10.20.255.1")));
        assert!(!net.contains(ip("10.21.0.1")));
        assert!(
            net.contains(ip("::ffff:10.20.0.9")),
            "mapped IPv4 compares as IPv4"
        );
        assert!(!net.contains(ip("fd00::1")));
        let single = Cidr::parse("::1").expect("address");
        assert!(single.contains(ip("::1")));
        assert!(!single.contains(ip("::2")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        let v6 = Cidr::parse("fd00::/8").expect("v6");
        assert!(v6.contains(ip("fdff::1")));
        assert!(!v6.contains(ip("fe80::1")));
    }

    #[test]
    fn bad_networks_are_refused() {
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
    }

    #[test]
    fn the_allow_list_parses_addresses_networks_hosts_and_star() {
        let targets =
            PrivateTargets::parse(" 127.0.0.1, 10.0.0.0/8 ,Hooks.Internal., ::1").expect("list");
        assert!(targets.allows_ip(ip("127.0.0.1")));
        assert!(!targets.allows_ip(ip("127.0.0.2")));
        assert!(targets.allows_ip(ip("10.9.8.7")));
        assert!(targets.allows_ip(ip("::1")));
        assert!(!targets.allows_ip(ip("192.168.1.1")));
        assert!(targets.allows_host("hooks.internal"));
        assert!(targets.allows_host("HOOKS.internal."));
        assert!(!targets.allows_host("other.internal"));
        assert!(!targets.allows_any());

        let empty = PrivateTargets::parse("").expect("empty");
        assert_eq!(empty, PrivateTargets::default());
        assert!(!empty.allows_ip(ip("127.0.0.1")));
        assert!(!empty.allows_host("localhost"));

        let any = PrivateTargets::parse("*").expect("star");
        assert!(any.allows_any() && any.allows_ip(ip("10.0.0.1")) && any.allows_host("x"));
    }

    #[test]
    fn the_allow_list_refuses_what_it_cannot_mean() {
        for bad in ["true", "yes", "10.0.0.0/40", "bad host", "a..b", "http://x"] {
            assert!(PrivateTargets::parse(bad).is_err(), "{bad} accepted");
        }
    }
}

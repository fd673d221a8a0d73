//! The one rule for where the gateway connects on its own initiative:
//! webhook receivers, identity providers' JWK Sets, and every outbound
//! client added later. See docs/security.md, "Outbound requests".
//!
//! A destination is refused when its address is in the IANA IPv4 or IPv6
//! special-purpose address registries (RFC 6890 and the registries as
//! they stand), unless private destinations are allowed by configuration.
//! IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
//! the NAT64 well-known prefix) are judged by the IPv4 address they carry.
//!
//! The rule is applied where the address becomes known:
//! - host names, by the HTTP client's DNS resolver ([`Rule::client`]): it
//!   drops refused addresses and fails when none are left, at connect
//!   time, so a name that resolved elsewhere when it was registered (DNS
//!   rebinding) cannot reach the gateway's own network;
//! - IP literals, which the client connects to without resolving them, by
//!   [`Rule::check_url`] before each request and on every redirect hop.
//!
//! The clients use no proxy from the environment: through a proxy the
//! resolver would only ever see the proxy's name.
use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// The IANA IPv4 Special-Purpose Address Registry, with multicast and the
/// reserved 240/4 (which holds the limited broadcast address).
const V4_RANGES: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\" (RFC 791)"),
    (v4(10, 0, 0, 0, 8), "private use (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "shared address space (RFC 6598)"),
    (v4(127, 0, 0, 0, 8), "loopback (RFC 1122)"),
    (v4(169, 254, 0, 0, 16), "link local (RFC 3927)"),
    (v4(172, 16, 0, 0, 12), "private use (RFC 1918)"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments (RFC 6890)"),
    (v4(192, 0, 2, 0, 24), "documentation (RFC 5737)"),
    (v4(192, 31, 196, 0, 24), "AS112-v4 (RFC 7535)"),
    (v4(192, 52, 193, 0, 24), "AMT (RFC 7450)"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast (RFC 7526)"),
    (v4(192, 168, 0, 0, 16), "private use (RFC 1918)"),
    (
        v4(192, 175, 48, 0, 24),
        "direct delegation AS112 (RFC 7534)",
    ),
    (v4(198, 18, 0, 0, 15), "benchmarking (RFC 2544)"),
    (v4(198, 51, 100, 0, 24), "documentation (RFC 5737)"),
    (v4(203, 0, 113, 0, 24), "documentation (RFC 5737)"),
    (v4(224, 0, 0, 0, 4), "multicast (RFC 5771)"),
    (
        v4(240, 0, 0, 0, 4),
        "reserved, and limited broadcast (RFC 1112, RFC 919)",
    ),
];

/// The IANA IPv6 Special-Purpose Address Registry, with multicast and the
/// deprecated site-local range. `::/96`, `::ffff:0:0/96` and
/// `64:ff9b::/96` are not here: they are judged by their IPv4 address.
const V6_RANGES: &[(Ipv6Net, &str)] = &[
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use NAT64 (RFC 8215)",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard-only (RFC 6666)",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation (RFC 3849)",
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        "6to4 (RFC 3056, deprecated by RFC 7526)",
    ),
    (
        v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48),
        "direct delegation AS112 (RFC 7534)",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation (RFC 9637)",
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "segment routing SIDs (RFC 9602)",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local (RFC 4193)",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "link local (RFC 4291)",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site local (RFC 3879)",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast (RFC 4291)"),
];

/// The IPv4 address an IPv6 address carries in its last 32 bits, for the
/// forms that reach it: IPv4-mapped `::ffff:0:0/96` (RFC 4291 2.5.5.2),
/// IPv4-compatible `::/96` (2.5.5.1), IPv4-translated `::ffff:0:0:0/96`
/// (RFC 2765) and the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] | [0, 0, 0, 0, 0, 0] | [0, 0, 0, 0, 0xffff, 0] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(tail),
        _ => None,
    }
}

/// Why an address is special-purpose (its range and name), or `None` for
/// an address the rule lets through.
pub fn special_purpose(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(a) => V4_RANGES
            .iter()
            .find(|(net, _)| net.contains(&a))
            .map(|(net, name)| format!("{net}, {name}")),
        IpAddr::V6(a) => {
            if a.is_unspecified() {
                return Some("::/128, unspecified (RFC 4291)".into());
            }
            if a.is_loopback() {
                return Some("::1/128, loopback (RFC 4291)".into());
            }
            if let Some(inner) = embedded_v4(a) {
                return special_purpose(IpAddr::V4(inner))
                    .map(|why| format!("it carries the IPv4 address {inner}: {why}"));
            }
            V6_RANGES
                .iter()
                .find(|(net, _)| net.contains(&a))
                .map(|(net, name)| format!("{net}, {name}"))
        }
    }
}

/// A refusal by the outbound rule; the text names the problem (and the
/// address or URL part), never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

impl Refused {
    fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// What redirects a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// None: a 3xx is the answer (webhooks: a receiver has no reason to
    /// send a POST elsewhere).
    None,
    /// Up to this many hops, each checked by the rule like the first URL.
    Checked(usize),
}

/// The protocols of outbound destinations, by their URL schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `https`, or `http`.
    Http,
    /// A NATS server: `tls`, or `nats` without TLS.
    Nats,
}

impl Protocol {
    /// The scheme with TLS and the one without.
    fn schemes(self) -> (&'static str, &'static str) {
        match self {
            Protocol::Http => ("https", "http"),
            Protocol::Nats => ("tls", "nats"),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Protocol::Http => 443,
            Protocol::Nats => 4222,
        }
    }
}

/// The destination rule of one use (webhooks, JWKS fetches, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Private and other special-purpose destinations are allowed (and
    /// with them plain `http`).
    pub allow_private: bool,
}

impl Rule {
    /// The rule for webhook deliveries: `outbound.allow_private_destinations`,
    /// or the older `webhooks.allow_private_destinations`, which still works.
    pub fn webhooks(config: &crate::base::config::Config) -> Self {
        Self {
            allow_private: config.outbound.allow_private_destinations
                || config.webhooks.allow_private_destinations,
        }
    }

    /// The rule for every other outbound request (JWK Set fetches).
    pub fn outbound(config: &crate::base::config::Config) -> Self {
        Self {
            allow_private: config.outbound.allow_private_destinations,
        }
    }

    /// Whether the rule lets a connection to `ip` through.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private {
            return Ok(());
        }
        match special_purpose(ip) {
            None => Ok(()),
            Some(why) => Err(Refused::new(format!(
                "the destination address {ip} is not allowed ({why})"
            ))),
        }
    }

    /// What can be judged of a URL without resolving it: `https` (or
    /// `http` when private destinations are allowed), a host, no
    /// credentials, and an IP literal host allowed by the rule. Run
    /// before every request and on every redirect hop.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        self.check_url_as(url, Protocol::Http)
    }

    /// [`Rule::check_url`] for `protocol`'s schemes: the one with TLS
    /// always, the plain one only where private destinations are allowed.
    pub fn check_url_as(&self, url: &Url, protocol: Protocol) -> Result<(), Refused> {
        let (secure, plain) = protocol.schemes();
        match url.scheme() {
            s if s == secure => {}
            s if s == plain && self.allow_private => {}
            _ => return Err(Refused::new(format!("the URL must be {secure}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::new("the URL must not carry credentials"));
        }
        match url.host() {
            None => Err(Refused::new("the URL has no host")),
            Some(url::Host::Ipv4(a)) => self.check_ip(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => self.check_ip(IpAddr::V6(a)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// The check when a destination is registered: [`Rule::check_url`],
    /// and a host name must resolve, to allowed addresses only. (The
    /// resolver checks again at every connection: what a name resolves to
    /// can change.)
    pub async fn check_registration(&self, text: &str) -> Result<Url, Refused> {
        self.check_registration_as(text, Protocol::Http).await
    }

    /// [`Rule::check_registration`] for `protocol`'s schemes.
    pub async fn check_registration_as(
        &self,
        text: &str,
        protocol: Protocol,
    ) -> Result<Url, Refused> {
        let url = Url::parse(text).map_err(|_| Refused::new("not a valid URL"))?;
        self.check_url_as(&url, protocol)?;
        if self.allow_private {
            return Ok(url);
        }
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port().unwrap_or(protocol.default_port());
            self.resolve(name, port).await?;
        }
        Ok(url)
    }

    /// The addresses `name` resolves to now, when the rule allows every
    /// one of them.
    pub async fn resolve(&self, name: &str, port: u16) -> Result<Vec<IpAddr>, Refused> {
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| Refused::new("the host does not resolve"))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(Refused::new("the host does not resolve"));
        }
        for ip in &addrs {
            self.check_ip(*ip)
                .map_err(|e| Refused::new(format!("{name}: {e}")))?;
        }
        Ok(addrs)
    }

    /// An HTTP client that applies this rule at connect time (its
    /// resolver) and to every redirect hop, from `builder` with the
    /// caller's timeouts and limits.
    pub fn client(
        self,
        builder: reqwest::ClientBuilder,
        redirects: Redirects,
    ) -> reqwest::Result<reqwest::Client> {
        let policy = match redirects {
            Redirects::None => reqwest::redirect::Policy::none(),
            Redirects::Checked(max) => reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(Refused::new(format!("more than {max} redirects")));
                }
                match self.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(Refused::new(format!("a redirect: {e}"))),
                }
            }),
        };
        builder
            .no_proxy()
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver { rule: self }))
            .build()
    }
}

/// The system resolver, keeping only the addresses the rule allows.
struct GuardedResolver {
    rule: Rule,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rule = self.rule;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| rule.check_ip(a.ip()).is_ok())
                .collect();
            if kept.is_empty() {
                let why = match found.first() {
                    Some(a) => rule
                        .check_ip(a.ip())
                        .err()
                        .map_or_else(String::new, |e| e.to_string()),
                    None => "it has no address".into(),
                };
                let e: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused::new(format!("{host}: {why}")));
                return Err(e);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// The rule's refusal behind a failed request (from the resolver or the
/// redirect policy), if that is why it failed.
pub fn refusal(e: &reqwest::Error) -> Option<Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const DENY: Rule = Rule {
        allow_private: false,
    };

    fn refused(text: &str) -> bool {
        special_purpose(text.parse().unwrap()).is_some()
    }

    #[test]
    fn the_forms_the_finding_lists_are_refused() {
        for ip in [
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "fec0::1",
            "0.1.2.3",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(ip), "{ip}");
        }
    }

    #[test]
    fn a_sample_of_every_ipv4_registry_entry_is_refused() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.251",
            "247.1.2.3",
        ] {
            assert!(refused(ip), "{ip}");
        }
    }

    #[test]
    fn a_sample_of_every_ipv6_registry_entry_is_refused() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:1::1",
            "2001:2::1",
            "2001:20::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2002::1",
            "2002:c000:0201::1",
            "2620:4f:8000::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff00::1",
            "ff05::2",
        ] {
            assert!(refused(ip), "{ip}");
        }
    }

    #[test]
    fn public_addresses_and_their_embedded_forms_pass() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:2800:220:1::1",
            "2a00:1450:4001:81a::200e",
            "2001:200::1",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
        ] {
            assert!(
                !refused(ip),
                "{ip}: {:?}",
                special_purpose(ip.parse().unwrap())
            );
        }
    }

    #[test]
    fn ip_literals_in_urls_are_judged_in_every_spelling() {
        for url in [
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::7f00:1]/x",
            "https://[2002:7f00:1::1]/x",
            "https://[fec0::1]/x",
            "https://0.1.2.3/x",
            "https://198.18.0.1/x",
            "https://169.254.169.254/latest/meta-data/",
            // The URL parser reads these as 127.0.0.1 (WHATWG host parsing).
            "https://2130706433/x",
            "https://0x7f.1/x",
            "https://127.1/x",
        ] {
            let u = Url::parse(url).unwrap();
            assert!(DENY.check_url(&u).is_err(), "{url}");
        }
        let ok = Url::parse("https://93.184.216.34/hook").unwrap();
        assert!(DENY.check_url(&ok).is_ok());
        assert!(DENY
            .check_url(&Url::parse("https://idp.example.com/jwks").unwrap())
            .is_ok());
    }

    #[test]
    fn plain_http_and_credentials_are_refused_unless_private_is_allowed() {
        let http = Url::parse("http://93.184.216.34/hook").unwrap();
        assert!(DENY.check_url(&http).is_err());
        let allow = Rule {
            allow_private: true,
        };
        assert!(allow.check_url(&http).is_ok());
        assert!(allow
            .check_url(&Url::parse("http://127.0.0.1:9/hook").unwrap())
            .is_ok());
        let creds = Url::parse("https://user:pw@93.184.216.34/").unwrap();
        assert!(DENY.check_url(&creds).is_err());
        assert!(DENY
            .check_url(&Url::parse("ftp://93.184.216.34/").unwrap())
            .is_err());
    }

    /// A loopback listener counting the connections it gets.
    async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        (port, n)
    }

    #[tokio::test]
    async fn a_redirect_to_a_special_purpose_destination_is_not_followed() {
        use axum::http::{header::LOCATION, StatusCode};
        use std::sync::atomic::Ordering;
        let (target, connections) = counting_listener().await;
        let hop = axum::Router::new()
            .route(
                "/literal",
                axum::routing::get(move || async move {
                    let to = format!("https://127.0.0.1:{target}/jwks");
                    (StatusCode::FOUND, [(LOCATION, to)])
                }),
            )
            .route(
                "/name",
                axum::routing::get(move || async move {
                    let to = format!("https://localhost:{target}/jwks");
                    (StatusCode::FOUND, [(LOCATION, to)])
                }),
            )
            .route(
                "/loop",
                axum::routing::get(|| async { (StatusCode::FOUND, [(LOCATION, "/loop")]) }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hop_addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, hop).await.unwrap() });
        // The first hop stands in for an IdP on a public address: its name
        // is pinned to the local server, past the resolver.
        let client = |rule: Rule| {
            rule.client(
                reqwest::Client::builder().resolve("idp.test", hop_addr),
                Redirects::Checked(3),
            )
            .unwrap()
        };
        let first = |path: &str| format!("http://idp.test:{}{path}", hop_addr.port());
        let deny = client(DENY);
        for (path, why) in [
            ("/literal", "a redirect: the destination address 127.0.0.1"),
            ("/name", "localhost: "),
        ] {
            let err = deny.get(first(path)).send().await.unwrap_err();
            let r = refusal(&err).expect("the rule's refusal");
            assert!(r.to_string().starts_with(why), "{path}: {r}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "a hop was followed");
        // Hops are counted.
        let allow = client(Rule {
            allow_private: true,
        });
        let err = allow.get(first("/loop")).send().await.unwrap_err();
        let r = refusal(&err).expect("the rule's refusal");
        assert_eq!(r.to_string(), "more than 3 redirects");
        // Where the rule allows it, the hop is followed.
        let _ = allow.get(first("/literal")).send().await;
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_registration_and_connect() {
        let e = DENY
            .check_registration("https://localhost/x")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{e}");
        // At connect time the resolver drops the addresses: the request
        // fails with the rule's refusal, and nothing listens anyway.
        let client = DENY
            .client(reqwest::Client::builder(), Redirects::None)
            .unwrap();
        let err = client
            .get("https://localhost:9/x")
            .send()
            .await
            .unwrap_err();
        let r = refusal(&err).expect("the rule's refusal");
        assert!(r.to_string().starts_with("localhost: "), "{r}");
    }
}

//! What an import may fetch: no request to loopback, private, link-local
//! or otherwise non-public addresses (server-side request forgery), unless
//! allowed.
//!
//! Every address is checked where it is used: a host name by the HTTP
//! client's resolver (so the address connected to is the one checked,
//! whatever DNS answers next time), an address literal in the URL before
//! the request and in each redirect's target before it is followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Most redirects an import follows.
pub const MAX_REDIRECTS: usize = 5;

/// Whether an address is one the public internet routes to: not
/// loopback, private (RFC 1918, unique-local), link-local, shared
/// (100.64/10), unspecified, broadcast, multicast, documentation or
/// reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), RFC 6598.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, RFC 6890.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, RFC 2544.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved for future use (240/4).
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let first = segments[0];
    // Addresses that carry an IPv4 address reach it: NAT64 (64:ff9b::/96,
    // RFC 6052), SIIT (::ffff:0:0/96, RFC 7915), 6to4 (2002::/16).
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(segments[6], segments[7]));
    }
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return is_public_v4(embedded(segments[6], segments[7]));
    }
    if first == 0x2002 {
        return is_public_v4(embedded(segments[1], segments[2]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the old site-local, fec0::/10.
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Local-use NAT64, 64:ff9b:1::/48 (RFC 8215).
        || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // IPv4-compatible and other addresses in ::/96.
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

/// Why a URL may not be fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http and https URLs are imported, not {0}:")]
    Scheme(String),
    #[error("{0} has no host")]
    NoHost(String),
    #[error(
        "{host} is {address}, not a public address (imports.allow_private or imports.trusted_hosts allow it)"
    )]
    Private { host: String, address: IpAddr },
    #[error("{0} did not resolve to any address")]
    Unresolved(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// The rules: public addresses only, unless private ones are allowed or
/// the host is trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    pub allow_private: bool,
    /// Hosts (names or addresses, as URLs spell them) fetched whatever
    /// their address.
    pub trusted_hosts: Vec<String>,
}

impl Guard {
    fn trusts(&self, host: &str) -> bool {
        let bare = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_owned();
        self.allow_private
            || self
                .trusted_hosts
                .iter()
                .any(|t| bare(t).eq_ignore_ascii_case(&bare(host)))
    }

    /// Checks a URL's scheme, and its host when it is an address.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_owned()));
        }
        let host = url.host().ok_or_else(|| Refusal::NoHost(url.to_string()))?;
        let address = match host {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            // Names are checked when resolved.
            url::Host::Domain(_) => return Ok(()),
        };
        let host = host.to_string();
        if is_public(address) || self.trusts(&host) {
            Ok(())
        } else {
            Err(Refusal::Private { host, address })
        }
    }

    /// [`Guard::check_url`] on a URL as text; one that does not parse is
    /// left to whoever validates URLs.
    pub fn check_text(&self, url: &str) -> Result<(), Refusal> {
        match url::Url::parse(url) {
            Ok(url) => self.check_url(&url),
            Err(_) => Ok(()),
        }
    }

    /// The addresses a name may be connected to: all its public ones (or
    /// all, when it is trusted).
    pub fn filter(
        &self,
        host: &str,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        if addresses.is_empty() {
            return Err(Refusal::Unresolved(host.to_owned()));
        }
        if self.trusts(host) {
            return Ok(addresses);
        }
        let first = addresses[0].ip();
        let public: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|a| is_public(a.ip()))
            .collect();
        if public.is_empty() {
            return Err(Refusal::Private {
                host: host.to_owned(),
                address: first,
            });
        }
        Ok(public)
    }

    /// The HTTP client's redirect policy under these rules.
    pub fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let guard = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal::TooManyRedirects);
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        })
    }
}

/// The HTTP client's resolver under a [`Guard`].
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = guard.filter(&host, found)?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The [`Refusal`] behind a failed request, if that is why it failed.
pub fn refusal_of(err: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = source {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return Some(refusal.clone());
        }
        source = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "::ffff:0:a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "fec0::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn address_literals_are_checked_and_names_left_to_the_resolver() {
        let guard = Guard::default();
        let check = |text: &str| guard.check_url(&url::Url::parse(text).unwrap());
        assert!(matches!(
            check("http://127.0.0.1:8080/a.mp4"),
            Err(Refusal::Private { .. })
        ));
        // Other spellings of loopback are parsed to the address.
        assert!(check("http://0x7f.1/a.mp4").is_err());
        assert!(check("http://[::1]/a.mp4").is_err());
        assert!(check("http://[::ffff:7f00:1]/a.mp4").is_err());
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(Refusal::Scheme(_))
        ));
        assert!(check("gopher://example.com/").is_err());
        check("https://8.8.8.8/a.mp4").unwrap();
        check("https://media.example.com/a.mp4").unwrap();
    }

    #[test]
    fn trusted_hosts_and_allow_private_let_private_addresses_through() {
        let trusted = Guard {
            allow_private: false,
            trusted_hosts: vec!["127.0.0.1".into(), "minio.internal".into(), "[::1]".into()],
        };
        trusted
            .check_url(&url::Url::parse("http://[::1]:9000/a").unwrap())
            .unwrap();
        trusted
            .check_url(&url::Url::parse("http://127.0.0.1:9000/a").unwrap())
            .unwrap();
        assert!(
            trusted
                .check_url(&url::Url::parse("http://127.0.0.2:9000/a").unwrap())
                .is_err()
        );
        let local = vec![SocketAddr::from(([10, 0, 0, 5], 0))];
        assert_eq!(
            trusted.filter("minio.internal", local.clone()).unwrap(),
            local
        );
        assert!(matches!(
            trusted.filter("other.internal", local.clone()),
            Err(Refusal::Private { .. })
        ));
        let mixed = vec![
            SocketAddr::from(([10, 0, 0, 5], 0)),
            SocketAddr::from(([93, 184, 216, 34], 0)),
        ];
        assert_eq!(
            Guard::default().filter("example.com", mixed).unwrap(),
            [SocketAddr::from(([93, 184, 216, 34], 0))]
        );
        let open = Guard {
            allow_private: true,
            trusted_hosts: Vec::new(),
        };
        assert_eq!(open.filter("any", local.clone()).unwrap(), local);
    }
}

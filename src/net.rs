//! Outbound network safety, shared by every layer that reaches out: which hosts are loopback,
//! which addresses are public, an address's throttle bucket, and the one guarded client for
//! servers that outsiders name (a Client ID Metadata Document's URL, an organisation's identity
//! provider): the host's addresses must all be public (no private, loopback, link-local,
//! metadata, CGNAT, multicast or tunnelling ranges), checked inside the client's DNS resolver so
//! the connection goes only to a checked address, no redirects, 5 s timeout. Depends on nothing
//! of the crate. The bounded, cached fetch of metadata documents built on it is `oauth::cimd`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// `localhost`, `127.0.0.0/8` and `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Whether an address may be fetched from the public internet side: global unicast only.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // ::/96, IPv4-compatible (deprecated; reaches IPv4 space)
                || s[..6] == [0; 6]
                // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // 2001:db8::/32 documentation, 2001::/32 Teredo, 2001:2::/48 benchmarking,
                // 2001:10::/28 ORCHID
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x10)
                // 2002::/16 6to4 (reaches IPv4 space)
                || s[0] == 0x2002
                // 64:ff9b::/96 and 64:ff9b:1::/48 NAT64
                || (s[0] == 0x64 && s[1] == 0xff9b)
                // 100::/64 discard-only
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0]))
        }
    }
}

/// An address's throttle bucket: IPv4 as is, IPv6 by its /64 (one customer's allocation).
pub fn address_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Resolves names for the guarded client, refusing any name with a non-public address.
struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::lookup_host((host.as_str(), 0)),
            )
            .await
            .map_err(|_| "resolving the host timed out")??
            .collect();
            if addrs.is_empty() {
                return Err("the host has no address".into());
            }
            if let Some(bad) = addrs
                .iter()
                .find(|a| !(is_public_ip(a.ip()) || (allow_loopback && a.ip().is_loopback())))
            {
                return Err(
                    format!("the host resolves to a non-public address ({})", bad.ip()).into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client for servers that someone other than the operator names (a metadata
/// document's URL, an organisation's identity provider): public addresses only, checked in the
/// resolver (loopback too when `allow_loopback`, for tests), no redirects, 5 s.
pub fn guarded_client(allow_loopback: bool) -> reqwest::Client {
    crate::init_crypto();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("the guarded client configuration is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "1.1.1.1",
        ] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn tunnelling_and_special_ipv6_ranges_are_not_public() {
        for ip in [
            "::a00:1",
            "::",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "fec0::1",
            "2001:db8::1",
            "2001:2::1",
            "2001:10::1",
            "100::1",
            "192.88.99.1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public_ip("2001:4860:4860::8888".parse().unwrap()));
        assert!(is_public_ip("2a00:1450:4001:81b::200e".parse().unwrap()));
    }
}

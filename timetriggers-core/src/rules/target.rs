//! Target safety: which addresses a job may not reach unless private targets are allowed, and
//! the validation of target URLs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is loopback, private, shared (CGNAT), link-local (including the cloud metadata
/// address 169.254.169.254), unique-local, unspecified, multicast, broadcast or otherwise not a
/// public unicast address.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (includes fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || (ip.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 can reach private v4
}

/// Validates a target URL: absolute `http`/`https` with a host. With `allow_private` false, a
/// literal IP host that is forbidden is refused too. The error names the problem.
pub fn validate_target_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("invalid ttr-url {raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid ttr-url {raw:?}: the scheme must be http or https"
        ));
    }
    let Some(host) = url.host() else {
        return Err(format!("invalid ttr-url {raw:?}: no host"));
    };
    if !allow_private {
        let ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = ip {
            if is_forbidden_ip(ip) {
                return Err(format!(
                    "ttr-url {raw:?} points to a private address ({ip}); private targets are not allowed on this server"
                ));
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbids_private_and_special_addresses() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_forbidden_ip(ip.parse().unwrap()),
                "{ip} should be forbidden"
            );
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "93.184.216.34",
        ] {
            assert!(
                !is_forbidden_ip(ip.parse().unwrap()),
                "{ip} should be allowed"
            );
        }
    }

    #[test]
    fn validates_urls() {
        assert!(validate_target_url("https://example.com/x?y=1", false).is_ok());
        assert!(validate_target_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(validate_target_url("http://127.0.0.1:9/x", false).is_err());
        assert!(validate_target_url("http://localhost/x", false).is_err());
        assert!(validate_target_url("http://[::1]/x", false).is_err());
        assert!(validate_target_url("ftp://example.com/", true).is_err());
        assert!(validate_target_url("/relative", true).is_err());
        assert!(validate_target_url("not a url", true).is_err());
        assert!(validate_target_url("", true).is_err());
    }
}

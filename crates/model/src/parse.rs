//! Lenient ("sloppy") IP and CIDR parsing, as Kubernetes' netutils reads addresses.
//!
//! Kubernetes parses addresses with the pre-Go-1.17 rules: IPv4 octets may carry leading zeros and are read as
//! decimal (`010.001.000.001` is 10.1.0.1), and IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as IPv4.
//! Results are normalised `std::net` / `ipnet` values. Pure functions, no allocation on the fast path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Reads the leading decimal digits of `s`: (value, digits consumed). `None` when there is no digit or the value
/// grows absurdly large (Go's `dtoi` stops at 0xFFFFFF).
fn leading_decimal(s: &str) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    let mut used = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + u32::from(b - b'0');
        used += 1;
        if n >= 0x00FF_FFFF {
            return None;
        }
    }
    (used > 0).then_some((n, used))
}

/// Dotted-quad IPv4 whose octets may have leading zeros (read as decimal).
fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut rest = s;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('.')?;
        }
        let (n, used) = leading_decimal(rest)?;
        *octet = u8::try_from(n).ok()?;
        rest = &rest[used..];
    }
    rest.is_empty().then_some(Ipv4Addr::from(octets))
}

/// IPv6, allowing a sloppy IPv4 tail (`::ffff:010.1.2.3`).
fn parse_ipv6_sloppy(s: &str) -> Option<Ipv6Addr> {
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Some(ip);
    }
    let colon = s.rfind(':')?;
    let (head, tail) = s.split_at(colon + 1);
    if !tail.contains('.') {
        return None;
    }
    let v4 = parse_ipv4_sloppy(tail)?;
    format!("{head}{v4}").parse::<Ipv6Addr>().ok()
}

/// Parses an IP address the way Kubernetes' `ParseIPSloppy` does, normalising IPv4-mapped IPv6 to IPv4.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if s.contains(':') {
        parse_ipv6_sloppy(s).map(|ip| IpAddr::V6(ip).to_canonical())
    } else {
        parse_ipv4_sloppy(s).map(IpAddr::V4)
    }
}

/// Parses a CIDR the way Kubernetes' `ParseCIDRSloppy` does; host bits are masked off. IPv4-mapped IPv6
/// prefixes of length 96 or more become IPv4 prefixes.
pub fn parse_cidr_sloppy(s: &str) -> Option<IpNet> {
    let (addr, len) = s.split_once('/')?;
    let (prefix, used) = leading_decimal(len)?;
    if used != len.len() {
        return None;
    }
    let prefix = u8::try_from(prefix).ok()?;
    let net = if addr.contains(':') {
        let ip = parse_ipv6_sloppy(addr)?;
        match ip.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => IpNet::V4(Ipv4Net::new(v4, prefix - 96).ok()?),
            _ => IpNet::V6(Ipv6Net::new(ip, prefix).ok()?),
        }
    } else {
        IpNet::V4(Ipv4Net::new(parse_ipv4_sloppy(addr)?, prefix).ok()?)
    };
    Some(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_parse_like_netutils() {
        let cases: &[(&str, Option<&str>)] = &[
            ("10.1.0.1", Some("10.1.0.1")),
            ("010.001.000.001", Some("10.1.0.1")),
            ("0010.0.0.0255", Some("10.0.0.255")),
            ("1.2.3.256", None),
            ("1.2.3", None),
            ("1.2.3.4.", None),
            ("1..3.4", None),
            ("", None),
            ("garbage", None),
            (" 1.2.3.4", None),
            ("fd00::1", Some("fd00::1")),
            ("FD00:0:0::0001", Some("fd00::1")),
            ("::ffff:1.2.3.4", Some("1.2.3.4")),
            ("::ffff:001.002.003.004", Some("1.2.3.4")),
            ("fd00::1%eth0", None),
            ("fd00:::1", None),
        ];
        for (input, want) in cases {
            let got = parse_ip_sloppy(input);
            let want: Option<IpAddr> = want.map(|w| w.parse().unwrap());
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn cidrs_parse_like_netutils() {
        let cases: &[(&str, Option<&str>)] = &[
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("010.000.000.000/08", Some("10.0.0.0/8")),
            ("10.1.2.3/16", Some("10.1.0.0/16")),
            ("10.0.0.0/33", None),
            ("10.0.0.0/", None),
            ("10.0.0.0/8x", None),
            ("10.0.0.0", None),
            ("fd00::1/64", Some("fd00::/64")),
            ("fd00::/129", None),
            ("::ffff:10.0.0.0/104", Some("10.0.0.0/8")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("::/0", Some("::/0")),
        ];
        for (input, want) in cases {
            let got = parse_cidr_sloppy(input);
            let want: Option<IpNet> = want.map(|w| w.parse().unwrap());
            assert_eq!(got, want, "input {input:?}");
        }
    }
}

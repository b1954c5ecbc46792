//! Tests for the address classifier. Most are tables of edge addresses: when
//! one fails, the message names the address, what was expected and what came.

use super::*;
use std::collections::HashSet;

use E::{A, B, N};
use RangeClass::*;

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("test address {s:?}: {e}"))
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse()
        .unwrap_or_else(|e| panic!("test address {s:?}: {e}"))
}

fn net(s: &str) -> IpNet {
    s.parse()
        .unwrap_or_else(|e| panic!("test prefix {s:?}: {e}"))
}

fn policy(allow: &[&str], deny: &[&str], own: &[&str]) -> AddressPolicy {
    AddressPolicy::new(
        allow.iter().map(|s| net(s)).collect(),
        deny.iter().map(|s| net(s)).collect(),
        own.iter().map(|s| ip(s)).collect(),
    )
}

fn blocked(class: RangeClass, range: &str, embedded: Option<&str>) -> Verdict {
    Verdict::Blocked {
        class,
        range: net(range),
        embedded: embedded.map(v4),
    }
}

// ---------------------------------------------------------------------------
// The tables themselves
// ---------------------------------------------------------------------------

/// Every constant prefix parses and has no host bits set. This is the proof
/// that the panic in `parse_const` is unreachable.
#[test]
fn tables_parse_and_are_canonical() {
    for &(prefix, _, note) in table::IPV4 {
        let parsed: Ipv4Net = prefix.parse().expect(prefix);
        assert_eq!(
            parsed,
            parsed.trunc(),
            "{prefix} ({note}) has host bits set"
        );
        assert!(!note.is_empty(), "{prefix}: empty note");
    }
    for &(prefix, _, note) in table::IPV6 {
        let parsed: Ipv6Net = prefix.parse().expect(prefix);
        assert_eq!(
            parsed,
            parsed.trunc(),
            "{prefix} ({note}) has host bits set"
        );
        assert!(!note.is_empty(), "{prefix}: empty note");
    }
    assert_eq!(IPV4_TABLE.len(), table::IPV4.len());
    assert_eq!(IPV6_TABLE.len(), table::IPV6.len());
}

#[test]
fn nat64_constant_matches_table() {
    let in_table = IPV6_TABLE
        .iter()
        .find(|e| e.1 == Rule::Nat64WellKnown)
        .map(|e| e.0);
    assert_eq!(in_table, Some(NAT64_WELL_KNOWN));
}

/// Every entry cites its source: an RFC, or a named cloud provider.
#[test]
fn every_entry_cites_a_source() {
    let notes = table::IPV4
        .iter()
        .map(|e| (e.0, e.2))
        .chain(table::IPV6.iter().map(|e| (e.0, e.2)));
    for (prefix, note) in notes {
        let vendor = ["AWS", "Alibaba", "Microsoft", "Oracle"];
        assert!(
            note.starts_with("RFC ") || vendor.iter().any(|v| note.starts_with(v)),
            "{prefix}: note {note:?} cites no source"
        );
    }
}

/// No prefix twice (the longest match would be ambiguous), and no entry
/// nested inside another with the same class or rule (it would change
/// nothing: a copy-paste slip, or a range that was meant to differ).
#[test]
fn no_duplicate_or_redundant_entries() {
    fn check<N: Copy + PartialEq + std::fmt::Display, R: PartialEq + std::fmt::Debug>(
        entries: &[(N, R)],
        contains: impl Fn(N, N) -> bool,
    ) {
        for (i, (outer, outer_rule)) in entries.iter().enumerate() {
            for (j, (inner, inner_rule)) in entries.iter().enumerate() {
                if i == j {
                    continue;
                }
                assert!(outer != inner, "{outer} appears twice");
                if contains(*outer, *inner) {
                    assert!(
                        outer_rule != inner_rule,
                        "{inner} ({inner_rule:?}) is redundant inside {outer} ({outer_rule:?})"
                    );
                }
            }
        }
    }
    check(&IPV4_TABLE, |a: Ipv4Net, b: Ipv4Net| a.contains(&b));
    check(&IPV6_TABLE, |a: Ipv6Net, b: Ipv6Net| a.contains(&b));
}

// ---------------------------------------------------------------------------
// Edges of every range
// ---------------------------------------------------------------------------

/// What `special_purpose` must say about an edge address.
#[derive(Debug, Clone, Copy)]
enum E {
    /// Not special-purpose: Allowed.
    A,
    /// Blocked with this class.
    B(RangeClass),
    /// No such address (below 0.0.0.0 or ::, above the all-ones address).
    N,
}

/// `(range, first, last, just below first, just above last)`, one row per
/// table entry (the test fails if an entry has no row or a row no entry).
/// Where the first or last address has another class than the range, a
/// more specific entry sits there or an embedded IPv4 address decides.
#[rustfmt::skip]
const IPV4_EDGES: &[(&str, E, E, E, E)] = &[
    ("0.0.0.0/8",          B(Unspecified),             B(ThisNetwork),             N,                             A),
    ("0.0.0.0/32",         B(Unspecified),             B(Unspecified),             N,                             B(ThisNetwork)),
    ("10.0.0.0/8",         B(Private),                 B(Private),                 A,                             A),
    ("100.64.0.0/10",      B(SharedAddressSpace),      B(SharedAddressSpace),      A,                             A),
    ("100.100.100.200/32", B(CloudMetadata),           B(CloudMetadata),           B(SharedAddressSpace),         B(SharedAddressSpace)),
    ("127.0.0.0/8",        B(Loopback),                B(Loopback),                A,                             A),
    ("168.63.129.16/32",   B(CloudMetadata),           B(CloudMetadata),           A,                             A),
    ("169.254.0.0/16",     B(LinkLocal),               B(LinkLocal),               A,                             A),
    ("169.254.169.254/32", B(CloudMetadata),           B(CloudMetadata),           B(LinkLocal),                  B(LinkLocal)),
    ("169.254.170.2/32",   B(CloudMetadata),           B(CloudMetadata),           B(LinkLocal),                  B(LinkLocal)),
    ("169.254.170.23/32",  B(CloudMetadata),           B(CloudMetadata),           B(LinkLocal),                  B(LinkLocal)),
    ("172.16.0.0/12",      B(Private),                 B(Private),                 A,                             A),
    ("192.0.0.0/24",       B(ServiceContinuity),       B(IetfProtocolAssignments), A,                             A),
    ("192.0.0.0/29",       B(ServiceContinuity),       B(ServiceContinuity),       A,                             B(Dummy)),
    ("192.0.0.8/32",       B(Dummy),                   B(Dummy),                   B(ServiceContinuity),          B(ProtocolAnycast)),
    ("192.0.0.9/32",       B(ProtocolAnycast),         B(ProtocolAnycast),         B(Dummy),                      B(ProtocolAnycast)),
    ("192.0.0.10/32",      B(ProtocolAnycast),         B(ProtocolAnycast),         B(ProtocolAnycast),            B(IetfProtocolAssignments)),
    ("192.0.0.170/32",     B(Nat64Discovery),          B(Nat64Discovery),          B(IetfProtocolAssignments),    B(Nat64Discovery)),
    ("192.0.0.171/32",     B(Nat64Discovery),          B(Nat64Discovery),          B(Nat64Discovery),             B(IetfProtocolAssignments)),
    ("192.0.0.192/32",     B(CloudMetadata),           B(CloudMetadata),           B(IetfProtocolAssignments),    B(IetfProtocolAssignments)),
    ("192.0.2.0/24",       B(Documentation),           B(Documentation),           A,                             A),
    ("192.31.196.0/24",    B(As112),                   B(As112),                   A,                             A),
    ("192.52.193.0/24",    B(Amt),                     B(Amt),                     A,                             A),
    ("192.88.99.0/24",     B(DeprecatedTransition),    B(DeprecatedTransition),    A,                             A),
    ("192.88.99.2/32",     B(ProtocolAnycast),         B(ProtocolAnycast),         B(DeprecatedTransition),       B(DeprecatedTransition)),
    ("192.168.0.0/16",     B(Private),                 B(Private),                 A,                             A),
    ("192.175.48.0/24",    B(As112),                   B(As112),                   A,                             A),
    ("198.18.0.0/15",      B(Benchmarking),            B(Benchmarking),            A,                             A),
    ("198.51.100.0/24",    B(Documentation),           B(Documentation),           A,                             A),
    ("203.0.113.0/24",     B(Documentation),           B(Documentation),           A,                             A),
    ("224.0.0.0/4",        B(Multicast),               B(Multicast),               A,                             B(Reserved)),
    ("240.0.0.0/4",        B(Reserved),                B(Broadcast),               B(Multicast),                  N),
    ("255.255.255.255/32", B(Broadcast),               B(Broadcast),               B(Reserved),                   N),
];

/// As [`IPV4_EDGES`]. Notes on the less obvious cells:
/// - `::2` (above `::1`) is IPv4-compatible `::0.0.0.2`: "this network".
/// - The first and last addresses of the mapped, NAT64 and compatible /96s
///   embed 0.0.0.0 and 255.255.255.255.
/// - Teredo `2001::` has client `!0` = 255.255.255.255; its last address has
///   client `!0xffffffff` = 0.0.0.0. 6to4 `2002::` embeds 0.0.0.0 and its
///   last address 255.255.255.255.
#[rustfmt::skip]
const IPV6_EDGES: &[(&str, E, E, E, E)] = &[
    ("::/3",               B(Unspecified),             B(NotGlobalUnicast),        N,                             A),
    ("::/128",             B(Unspecified),             B(Unspecified),             N,                             B(Loopback)),
    ("::1/128",            B(Loopback),                B(Loopback),                B(Unspecified),                B(ThisNetwork)),
    ("::/96",              B(Unspecified),             B(Broadcast),               N,                             B(NotGlobalUnicast)),
    ("::ffff:0:0/96",      B(Unspecified),             B(Broadcast),               B(NotGlobalUnicast),           B(NotGlobalUnicast)),
    ("64:ff9b::/96",       B(Unspecified),             B(Broadcast),               B(NotGlobalUnicast),           B(NotGlobalUnicast)),
    ("64:ff9b:1::/48",     B(Nat64LocalUse),           B(Nat64LocalUse),           B(NotGlobalUnicast),           B(NotGlobalUnicast)),
    ("100::/64",           B(DiscardOnly),             B(DiscardOnly),             B(NotGlobalUnicast),           B(Dummy)),
    ("100:0:0:1::/64",     B(Dummy),                   B(Dummy),                   B(DiscardOnly),                B(NotGlobalUnicast)),
    ("2001::/23",          B(Broadcast),               B(IetfProtocolAssignments), A,                             A),
    ("2001::/32",          B(Broadcast),               B(Unspecified),             A,                             B(IetfProtocolAssignments)),
    ("2001:1::1/128",      B(ProtocolAnycast),         B(ProtocolAnycast),         B(IetfProtocolAssignments),    B(ProtocolAnycast)),
    ("2001:1::2/128",      B(ProtocolAnycast),         B(ProtocolAnycast),         B(ProtocolAnycast),            B(ProtocolAnycast)),
    ("2001:1::3/128",      B(ProtocolAnycast),         B(ProtocolAnycast),         B(ProtocolAnycast),            B(IetfProtocolAssignments)),
    ("2001:2::/48",        B(Benchmarking),            B(Benchmarking),            B(IetfProtocolAssignments),    B(IetfProtocolAssignments)),
    ("2001:3::/32",        B(Amt),                     B(Amt),                     B(IetfProtocolAssignments),    B(IetfProtocolAssignments)),
    ("2001:4:112::/48",    B(As112),                   B(As112),                   B(IetfProtocolAssignments),    B(IetfProtocolAssignments)),
    ("2001:10::/28",       B(CryptographicIdentifier), B(CryptographicIdentifier), B(IetfProtocolAssignments),    B(CryptographicIdentifier)),
    ("2001:20::/28",       B(CryptographicIdentifier), B(CryptographicIdentifier), B(CryptographicIdentifier),    B(CryptographicIdentifier)),
    ("2001:30::/28",       B(CryptographicIdentifier), B(CryptographicIdentifier), B(CryptographicIdentifier),    B(IetfProtocolAssignments)),
    ("2001:db8::/32",      B(Documentation),           B(Documentation),           A,                             A),
    ("2002::/16",          B(Unspecified),             B(Broadcast),               A,                             A),
    ("2620:4f:8000::/48",  B(As112),                   B(As112),                   A,                             A),
    ("3fff::/20",          B(Documentation),           B(Documentation),           A,                             A),
    ("4000::/2",           B(NotGlobalUnicast),        B(NotGlobalUnicast),        A,                             B(NotGlobalUnicast)),
    ("5f00::/16",          B(SegmentRouting),          B(SegmentRouting),          B(NotGlobalUnicast),           B(NotGlobalUnicast)),
    ("8000::/1",           B(NotGlobalUnicast),        B(Multicast),               B(NotGlobalUnicast),           N),
    ("fc00::/7",           B(UniqueLocal),             B(UniqueLocal),             B(NotGlobalUnicast),           B(NotGlobalUnicast)),
    ("fd00:ec2::23/128",   B(CloudMetadata),           B(CloudMetadata),           B(UniqueLocal),                B(UniqueLocal)),
    ("fd00:ec2::254/128",  B(CloudMetadata),           B(CloudMetadata),           B(UniqueLocal),                B(UniqueLocal)),
    ("fe80::/10",          B(LinkLocal),               B(LinkLocal),               B(NotGlobalUnicast),           B(DeprecatedTransition)),
    ("fec0::/10",          B(DeprecatedTransition),    B(DeprecatedTransition),    B(LinkLocal),                  B(Multicast)),
    ("ff00::/8",           B(Multicast),               B(Multicast),               B(DeprecatedTransition),       N),
];

/// `(first, last, first - 1, last + 1)` of a prefix; `None` past either end.
fn edges(range: IpNet) -> [Option<IpAddr>; 4] {
    match range {
        IpNet::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                .map(|a| a.map(|a| IpAddr::V4(Ipv4Addr::from(a))))
        }
        IpNet::V6(n) => {
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                .map(|a| a.map(|a| IpAddr::V6(Ipv6Addr::from(a))))
        }
    }
}

/// The class an entry blocks with, when it is a plain block (not decoded).
fn own_class(range: IpNet) -> Option<RangeClass> {
    match range {
        IpNet::V4(n) => IPV4_TABLE.iter().find(|e| e.0 == n).map(|e| e.1),
        IpNet::V6(n) => IPV6_TABLE
            .iter()
            .find(|e| e.0 == n)
            .and_then(|e| match e.1 {
                Rule::Block(class) => Some(class),
                _ => None,
            }),
    }
}

fn check_edges(rows: &[(&str, E, E, E, E)], table_prefixes: Vec<IpNet>) {
    // One row per table entry, and no row without an entry.
    let row_prefixes: Vec<IpNet> = rows.iter().map(|r| net(r.0)).collect();
    let unique: HashSet<IpNet> = row_prefixes.iter().copied().collect();
    assert_eq!(
        unique.len(),
        row_prefixes.len(),
        "a range has two edge rows"
    );
    for p in &table_prefixes {
        assert!(unique.contains(p), "table entry {p} has no edge row");
    }
    for p in &row_prefixes {
        assert!(
            table_prefixes.contains(p),
            "edge row {p} has no table entry"
        );
    }

    let default_policy = AddressPolicy::default();
    for &(range, first, last, below, above) in rows {
        let range = net(range);
        let expected = [first, last, below, above];
        let names = ["first", "last", "below", "above"];
        for ((addr, want), name) in edges(range).into_iter().zip(expected).zip(names) {
            let context = format!("{range}: {name} address {addr:?}");
            let Some(addr) = addr else {
                assert!(
                    matches!(want, N),
                    "{context}: expected {want:?}, no such address"
                );
                continue;
            };
            let got = special_purpose(addr);
            let verdict = default_policy.classify(addr);
            match want {
                N => panic!("{context}: row says no such address"),
                A => {
                    assert_eq!(got, None, "{context}: expected not special-purpose");
                    assert_eq!(verdict, Verdict::Allowed, "{context}");
                }
                B(class) => {
                    let Some((got_class, got_range, _)) = got else {
                        panic!("{context}: expected {class:?}, got not special-purpose");
                    };
                    assert_eq!(got_class, class, "{context}: range {got_range}");
                    assert!(!verdict.is_allowed(), "{context}: policy allowed it");
                    let outside = name == "below" || name == "above";
                    if outside {
                        // Not in that range: what matched is another range.
                        assert_ne!(got_range, range, "{context}");
                    } else if Some(class) == own_class(range) {
                        // Its own class: it must be this very entry that matched.
                        assert_eq!(got_range, range, "{context}");
                    }
                }
            }
        }
    }
}

#[test]
fn ipv4_range_edges() {
    check_edges(
        IPV4_EDGES,
        IPV4_TABLE.iter().map(|e| IpNet::V4(e.0)).collect(),
    );
}

#[test]
fn ipv6_range_edges() {
    check_edges(
        IPV6_EDGES,
        IPV6_TABLE.iter().map(|e| IpNet::V6(e.0)).collect(),
    );
}

// ---------------------------------------------------------------------------
// Longest prefix: metadata wins over its enclosing range
// ---------------------------------------------------------------------------

#[test]
fn metadata_wins_over_enclosing_range() {
    #[rustfmt::skip]
    let cases = [
        // address            metadata /32 or /128      the range it sits in
        ("169.254.169.254",   "169.254.169.254/32",     Some("169.254.0.0/16")),
        ("169.254.170.2",     "169.254.170.2/32",       Some("169.254.0.0/16")),
        ("169.254.170.23",    "169.254.170.23/32",      Some("169.254.0.0/16")),
        ("100.100.100.200",   "100.100.100.200/32",     Some("100.64.0.0/10")),
        ("192.0.0.192",       "192.0.0.192/32",         Some("192.0.0.0/24")),
        ("fd00:ec2::254",     "fd00:ec2::254/128",      Some("fc00::/7")),
        ("fd00:ec2::23",      "fd00:ec2::23/128",       Some("fc00::/7")),
        ("168.63.129.16",     "168.63.129.16/32",       None),
    ];
    for (addr, range, enclosing) in cases {
        let verdict = AddressPolicy::default().classify(ip(addr));
        assert_eq!(verdict, blocked(CloudMetadata, range, None), "{addr}");
        if let Some(enclosing) = enclosing {
            assert!(
                net(enclosing).contains(&ip(addr)),
                "{addr} not in {enclosing}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// IPv4 embedded in IPv6
// ---------------------------------------------------------------------------

/// `Some((class, range, embedded))` when blocked, `None` when allowed.
type Expected = Option<(RangeClass, &'static str, Option<&'static str>)>;

#[test]
fn embedded_ipv4_decoding() {
    #[rustfmt::skip]
    let cases: &[(&str, Expected)] = &[
        // IPv4-mapped: exactly the IPv4 verdict.
        ("::ffff:127.0.0.1",       Some((Loopback,      "127.0.0.0/8",        Some("127.0.0.1")))),
        ("::ffff:10.1.2.3",        Some((Private,       "10.0.0.0/8",         Some("10.1.2.3")))),
        ("::ffff:169.254.169.254", Some((CloudMetadata, "169.254.169.254/32", Some("169.254.169.254")))),
        ("::ffff:100.100.100.200", Some((CloudMetadata, "100.100.100.200/32", Some("100.100.100.200")))),
        ("::ffff:8.8.8.8",         None),
        // NAT64 well-known prefix: the embedded verdict, public allowed.
        ("64:ff9b::127.0.0.1",     Some((Loopback,      "127.0.0.0/8",        Some("127.0.0.1")))),
        ("64:ff9b::192.168.1.1",   Some((Private,       "192.168.0.0/16",     Some("192.168.1.1")))),
        ("64:ff9b::a9fe:a9fe",     Some((CloudMetadata, "169.254.169.254/32", Some("169.254.169.254")))),
        ("64:ff9b::8.8.8.8",       None),
        // NAT64 local use: always blocked. RFC 6052 §2.4's /48 example
        // (192.0.2.33) with the local-use prefix, then loopback and public.
        ("64:ff9b:1:c000:2:2100::", Some((Nat64LocalUse, "64:ff9b:1::/48",    Some("192.0.2.33")))),
        ("64:ff9b:1:7f00:0:100::",  Some((Nat64LocalUse, "64:ff9b:1::/48",    Some("127.0.0.1")))),
        ("64:ff9b:1:808:8:800::",   Some((Nat64LocalUse, "64:ff9b:1::/48",    Some("8.8.8.8")))),
        // Not the /48 layout: non-zero "u" octet, or a non-zero suffix (as a
        // /96 inside the local-use prefix would have): nothing decoded.
        ("64:ff9b:1:808:ff08:800::", Some((Nat64LocalUse, "64:ff9b:1::/48",   None))),
        ("64:ff9b:1::808:808",     Some((Nat64LocalUse, "64:ff9b:1::/48",     None))),
        // IPv4-compatible (deprecated): always blocked, special embedded reported.
        ("::127.0.0.1",            Some((Loopback,      "127.0.0.0/8",        Some("127.0.0.1")))),
        ("::10.0.0.1",             Some((Private,       "10.0.0.0/8",         Some("10.0.0.1")))),
        ("::169.254.169.254",      Some((CloudMetadata, "169.254.169.254/32", Some("169.254.169.254")))),
        ("::8.8.8.8",              Some((DeprecatedTransition, "::/96",       Some("8.8.8.8")))),
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        ("2002:7f00:1::1",         Some((Loopback,      "127.0.0.0/8",        Some("127.0.0.1")))),
        ("2002:a00:1::",           Some((Private,       "10.0.0.0/8",         Some("10.0.0.1")))),
        ("2002:a9fe:a9fe::1",      Some((CloudMetadata, "169.254.169.254/32", Some("169.254.169.254")))),
        ("2002:808:808::1",        Some((DeprecatedTransition, "2002::/16",   Some("8.8.8.8")))),
        // Teredo 2001:0:SERVER:flags:port:!CLIENT. Client checked first.
        // Client 127.0.0.1 (!0x7f000001 = 0x80fffffe), server public.
        ("2001:0:808:808::80ff:fffe", Some((Loopback,   "127.0.0.0/8",        Some("127.0.0.1")))),
        // Client 169.254.169.254 (!0xa9fea9fe = 0x56015601), server public.
        ("2001:0:808:808::5601:5601", Some((CloudMetadata, "169.254.169.254/32", Some("169.254.169.254")))),
        // Client public 1.2.3.4 (!0x01020304 = 0xfefdfcfb), server 10.0.0.1.
        ("2001:0:a00:1::fefd:fcfb", Some((Private,      "10.0.0.0/8",         Some("10.0.0.1")))),
        // Both public: deprecated, client reported.
        ("2001:0:808:808::fefe:fefe", Some((DeprecatedTransition, "2001::/32", Some("1.1.1.1")))),
        // RFC 4380 §4 style example with real-looking flags and port: server
        // 65.54.227.120, client 192.0.2.45 (documentation) on port 40000.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some((Documentation, "192.0.2.0/24", Some("192.0.2.45")))),
    ];
    for &(addr, expected) in cases {
        let got = special_purpose(ip(addr));
        let expected =
            expected.map(|(class, range, embedded)| (class, net(range), embedded.map(v4)));
        assert_eq!(got, expected, "{addr}");
        // And the policy with no operator lists says the same.
        let verdict = AddressPolicy::default().classify(ip(addr));
        match expected {
            None => assert_eq!(verdict, Verdict::Allowed, "{addr}"),
            Some((class, range, embedded)) => assert_eq!(
                verdict,
                Verdict::Blocked {
                    class,
                    range,
                    embedded
                },
                "{addr}"
            ),
        }
    }
}

/// The decoders against hand-assembled bit patterns, independent of the
/// textual forms above.
#[test]
fn field_extraction() {
    let sixtofour = 0x2002_0a0b_0c0d_0000_0000_0000_0000_0000_u128.to_be_bytes();
    assert_eq!(v4_at(&sixtofour, 2), v4("10.11.12.13"));
    let teredo = Ipv6Addr::from(0x2001_0000_0102_0304_0000_0000_f5f4_f3f2_u128);
    assert_eq!(v4_at(&teredo.octets(), 4), v4("1.2.3.4"));
    assert_eq!(low32(teredo), v4("245.244.243.242"));
    assert_eq!(
        special_purpose(IpAddr::V6(teredo)),
        Some((Private, net("10.0.0.0/8"), Some(v4("10.11.12.13")))),
        "Teredo client is the inverted low 32 bits"
    );
    // /48 layout: 0xaabb in bits 48..63, u octet 0, 0xccdd in bits 72..87.
    let local = 0x0064_ff9b_0001_aabb_00cc_dd00_0000_0000_u128;
    let decode = |bits: u128| nat64_local_embedded(&bits.to_be_bytes());
    assert_eq!(decode(local), Some(v4("170.187.204.221")));
    assert_eq!(decode(local | 1), None, "non-zero suffix");
    assert_eq!(
        decode(local | (1 << 39)),
        None,
        "non-zero suffix, its first bit (address bit 88)"
    );
    assert_eq!(decode(local | (1 << 56)), None, "non-zero u octet");
}

// ---------------------------------------------------------------------------
// The operator's lists
// ---------------------------------------------------------------------------

#[test]
fn operator_allow_wins_over_table_and_deny() {
    let p = policy(
        &["10.1.2.0/24", "203.0.113.7/32"],
        &["203.0.113.0/24", "10.0.0.0/8"],
        &[],
    );
    #[rustfmt::skip]
    let cases = [
        ("10.1.2.3",          Verdict::AllowedByOperator(net("10.1.2.0/24"))),
        ("10.1.3.1",          blocked(OperatorDenied, "10.0.0.0/8", None)),
        ("203.0.113.7",       Verdict::AllowedByOperator(net("203.0.113.7/32"))),
        ("203.0.113.8",       blocked(OperatorDenied, "203.0.113.0/24", None)),
        // The IPv4-mapped form behaves as the IPv4 address.
        ("::ffff:10.1.2.3",   Verdict::AllowedByOperator(net("10.1.2.0/24"))),
        ("::ffff:203.0.113.7", Verdict::AllowedByOperator(net("203.0.113.7/32"))),
        // The allow exception is not extended to NAT64 or 6to4 forms.
        ("64:ff9b::10.1.2.3", blocked(OperatorDenied, "10.0.0.0/8", Some("10.1.2.3"))),
        ("2002:a01:203::",    blocked(Private, "10.0.0.0/8", Some("10.1.2.3"))),
    ];
    for (addr, want) in cases {
        assert_eq!(p.classify(ip(addr)), want, "{addr}");
    }
}

#[test]
fn operator_allow_matches_mapped_form_exactly() {
    // The brief's example: a /32 allow and a AAAA answer ::ffff:10.1.2.3.
    let p = policy(&["10.1.2.3/32"], &[], &[]);
    let want = Verdict::AllowedByOperator(net("10.1.2.3/32"));
    assert_eq!(p.classify(ip("10.1.2.3")), want);
    assert_eq!(p.classify(ip("::ffff:10.1.2.3")), want);
    assert_eq!(
        p.classify(ip("::ffff:10.1.2.4")),
        blocked(Private, "10.0.0.0/8", Some("10.1.2.4"))
    );
    // Host bits in configuration are cleared for the report.
    let p = policy(&["10.1.2.3/24"], &[], &[]);
    assert_eq!(
        p.classify(ip("10.1.2.99")),
        Verdict::AllowedByOperator(net("10.1.2.0/24"))
    );
}

#[test]
fn ipv6_allow_range_does_not_open_mapped_ipv4() {
    // `::/0` is the operator's choice for IPv6 (it does open ::1), but a
    // mapped address is an IPv4 destination and stays under the IPv4 rules.
    let p = policy(&["::/0"], &[], &[]);
    assert_eq!(
        p.classify(ip("::1")),
        Verdict::AllowedByOperator(net("::/0"))
    );
    assert_eq!(
        p.classify(ip("::ffff:127.0.0.1")),
        blocked(Loopback, "127.0.0.0/8", Some("127.0.0.1"))
    );
    assert_eq!(
        p.classify(ip("127.0.0.1")),
        blocked(Loopback, "127.0.0.0/8", None)
    );
}

#[test]
fn operator_deny_blocks_public_addresses_in_every_form() {
    let p = policy(&[], &["8.8.8.0/24", "2606:4700::/32"], &[]);
    #[rustfmt::skip]
    let cases = [
        ("8.8.8.8",              blocked(OperatorDenied, "8.8.8.0/24", None)),
        ("::ffff:8.8.8.8",       blocked(OperatorDenied, "8.8.8.0/24", Some("8.8.8.8"))),
        ("64:ff9b::8.8.8.8",     blocked(OperatorDenied, "8.8.8.0/24", Some("8.8.8.8"))),
        ("2606:4700:4700::1111", blocked(OperatorDenied, "2606:4700::/32", None)),
        ("8.8.4.4",              Verdict::Allowed),
        ("64:ff9b::8.8.4.4",     Verdict::Allowed),
        ("2606:4701::1",         Verdict::Allowed),
    ];
    for (addr, want) in cases {
        assert_eq!(p.classify(ip(addr)), want, "{addr}");
    }
    // A deny entry written in IPv6 matches the raw IPv6 form.
    let p = policy(&[], &["64:ff9b::/96"], &[]);
    assert_eq!(
        p.classify(ip("64:ff9b::8.8.8.8")),
        blocked(OperatorDenied, "64:ff9b::/96", Some("8.8.8.8"))
    );
}

#[test]
fn own_addresses_are_blocked() {
    let p = policy(
        &[],
        &[],
        &["8.8.4.4", "2a00:1450::5", "::ffff:9.9.9.9", "10.0.0.5"],
    );
    #[rustfmt::skip]
    let cases = [
        ("8.8.4.4",           blocked(ProxyOwnAddress, "8.8.4.4/32", None)),
        ("::ffff:8.8.4.4",    blocked(ProxyOwnAddress, "8.8.4.4/32", Some("8.8.4.4"))),
        ("64:ff9b::8.8.4.4",  blocked(ProxyOwnAddress, "8.8.4.4/32", Some("8.8.4.4"))),
        ("2a00:1450::5",      blocked(ProxyOwnAddress, "2a00:1450::5/128", None)),
        // Configured as mapped IPv6, matched as IPv4 (and vice versa).
        ("9.9.9.9",           blocked(ProxyOwnAddress, "9.9.9.9/32", None)),
        ("::ffff:9.9.9.9",    blocked(ProxyOwnAddress, "9.9.9.9/32", Some("9.9.9.9"))),
        // Own comes before the table.
        ("10.0.0.5",          blocked(ProxyOwnAddress, "10.0.0.5/32", None)),
        ("10.0.0.6",          blocked(Private, "10.0.0.0/8", None)),
        ("8.8.4.5",           Verdict::Allowed),
        ("2a00:1450::6",      Verdict::Allowed),
    ];
    for (addr, want) in cases {
        assert_eq!(p.classify(ip(addr)), want, "{addr}");
    }
}

#[test]
fn fixed_order_between_operator_lists() {
    // deny before own.
    let p = policy(&[], &["8.8.4.0/24"], &["8.8.4.4"]);
    assert_eq!(
        p.classify(ip("8.8.4.4")),
        blocked(OperatorDenied, "8.8.4.0/24", None)
    );
    // allow before own: the operator exception wins over everything.
    let p = policy(&["8.8.4.0/24"], &[], &["8.8.4.4"]);
    assert_eq!(
        p.classify(ip("8.8.4.4")),
        Verdict::AllowedByOperator(net("8.8.4.0/24"))
    );
    // deny before the table: the operator's class is reported.
    let p = policy(&[], &["127.0.0.0/16"], &[]);
    assert_eq!(
        p.classify(ip("127.0.0.1")),
        blocked(OperatorDenied, "127.0.0.0/16", None)
    );
    assert_eq!(
        p.classify(ip("127.1.0.1")),
        blocked(Loopback, "127.0.0.0/8", None)
    );
}

#[test]
fn unspecified_is_never_allowed() {
    let p = policy(&["0.0.0.0/0", "::/0", "0.0.0.0/32", "::/128"], &[], &[]);
    #[rustfmt::skip]
    let cases = [
        ("0.0.0.0",         blocked(Unspecified, "0.0.0.0/32", None)),
        ("::",              blocked(Unspecified, "::/128", None)),
        ("::ffff:0.0.0.0",  blocked(Unspecified, "0.0.0.0/32", Some("0.0.0.0"))),
    ];
    for (addr, want) in cases {
        assert_eq!(p.classify(ip(addr)), want, "{addr} with allow-everything");
        assert_eq!(AddressPolicy::default().classify(ip(addr)), want, "{addr}");
        assert!(!want.is_allowed());
    }
    // The broad allow does let the rest of 0.0.0.0/8 through: that is what
    // the operator wrote, and only 0.0.0.0 itself means "this host".
    assert_eq!(
        p.classify(ip("0.0.0.1")),
        Verdict::AllowedByOperator(net("0.0.0.0/0"))
    );
}

// ---------------------------------------------------------------------------
// Public addresses
// ---------------------------------------------------------------------------

#[test]
fn ordinary_public_addresses_are_allowed() {
    let p = AddressPolicy::default();
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "93.184.215.14",
        "2606:4700:4700::1111",
        "2a00:1450::1",
        "2001:4860:4860::8888",
        "::ffff:1.1.1.1",
        "64:ff9b::1.1.1.1",
    ] {
        assert_eq!(special_purpose(ip(addr)), None, "{addr}");
        assert_eq!(p.classify(ip(addr)), Verdict::Allowed, "{addr}");
        assert!(p.classify(ip(addr)).is_allowed(), "{addr}");
    }
}

#[test]
fn is_allowed_matches_variants() {
    assert!(Verdict::Allowed.is_allowed());
    assert!(Verdict::AllowedByOperator(net("10.0.0.0/8")).is_allowed());
    assert!(!blocked(Private, "10.0.0.0/8", None).is_allowed());
}

// ---------------------------------------------------------------------------
// RangeClass labels
// ---------------------------------------------------------------------------

/// Exhaustive on purpose (no `_` arm): a new variant does not compile until
/// it gets an index here, and then `ALL` must grow to match.
fn declaration_index(class: RangeClass) -> usize {
    match class {
        Unspecified => 0,
        ThisNetwork => 1,
        Loopback => 2,
        Private => 3,
        SharedAddressSpace => 4,
        LinkLocal => 5,
        CloudMetadata => 6,
        IetfProtocolAssignments => 7,
        ServiceContinuity => 8,
        Dummy => 9,
        ProtocolAnycast => 10,
        Nat64Discovery => 11,
        Documentation => 12,
        Benchmarking => 13,
        Multicast => 14,
        Broadcast => 15,
        Reserved => 16,
        As112 => 17,
        Amt => 18,
        DeprecatedTransition => 19,
        Nat64LocalUse => 20,
        DiscardOnly => 21,
        UniqueLocal => 22,
        SegmentRouting => 23,
        CryptographicIdentifier => 24,
        NotGlobalUnicast => 25,
        OperatorDenied => 26,
        ProxyOwnAddress => 27,
    }
}

#[test]
fn all_lists_every_class_once() {
    for (i, class) in RangeClass::ALL.iter().enumerate() {
        assert_eq!(
            declaration_index(*class),
            i,
            "{class:?} out of place in ALL"
        );
    }
    let unique: HashSet<RangeClass> = RangeClass::ALL.into_iter().collect();
    assert_eq!(unique.len(), RangeClass::ALL.len());
}

#[test]
fn labels_are_unique_snake_case() {
    let mut seen = HashSet::new();
    for class in RangeClass::ALL {
        let label = class.as_str();
        assert!(seen.insert(label), "{label} used twice");
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        assert!(ok_chars, "{label} is not snake_case");
        assert!(
            label.starts_with(|c: char| c.is_ascii_lowercase()),
            "{label}"
        );
        assert!(!label.ends_with('_') && !label.contains("__"), "{label}");
    }
    // Every value pinned: renaming a label breaks dashboards.
    let labels = [
        (RangeClass::Unspecified, "unspecified"),
        (RangeClass::ThisNetwork, "this_network"),
        (RangeClass::Loopback, "loopback"),
        (RangeClass::Private, "private"),
        (RangeClass::SharedAddressSpace, "shared_address_space"),
        (RangeClass::LinkLocal, "link_local"),
        (RangeClass::CloudMetadata, "cloud_metadata"),
        (
            RangeClass::IetfProtocolAssignments,
            "ietf_protocol_assignments",
        ),
        (RangeClass::ServiceContinuity, "service_continuity"),
        (RangeClass::Dummy, "dummy"),
        (RangeClass::ProtocolAnycast, "protocol_anycast"),
        (RangeClass::Nat64Discovery, "nat64_discovery"),
        (RangeClass::Documentation, "documentation"),
        (RangeClass::Benchmarking, "benchmarking"),
        (RangeClass::Multicast, "multicast"),
        (RangeClass::Broadcast, "broadcast"),
        (RangeClass::Reserved, "reserved"),
        (RangeClass::As112, "as112"),
        (RangeClass::Amt, "amt"),
        (RangeClass::DeprecatedTransition, "deprecated_transition"),
        (RangeClass::Nat64LocalUse, "nat64_local_use"),
        (RangeClass::DiscardOnly, "discard_only"),
        (RangeClass::UniqueLocal, "unique_local"),
        (RangeClass::SegmentRouting, "segment_routing"),
        (
            RangeClass::CryptographicIdentifier,
            "cryptographic_identifier",
        ),
        (RangeClass::NotGlobalUnicast, "not_global_unicast"),
        (RangeClass::OperatorDenied, "operator_denied"),
        (RangeClass::ProxyOwnAddress, "proxy_own_address"),
    ];
    assert_eq!(labels.len(), RangeClass::ALL.len());
    for (class, label) in labels {
        assert_eq!(class.as_str(), label);
    }
}

#[test]
fn every_table_class_is_reachable_and_operator_classes_are_not_in_tables() {
    let mut in_tables: HashSet<RangeClass> = table::IPV4.iter().map(|e| e.1).collect();
    in_tables.extend(table::IPV6.iter().filter_map(|e| match e.1 {
        Rule::Block(class) => Some(class),
        _ => None,
    }));
    in_tables.insert(Nat64LocalUse); // the Nat64Local rule
    in_tables.insert(DeprecatedTransition); // the compatible/6to4/Teredo rules
    for class in RangeClass::ALL {
        let operator = matches!(class, OperatorDenied | ProxyOwnAddress);
        assert_eq!(in_tables.contains(&class), !operator, "{class:?}");
    }
}

#[test]
fn policy_is_send_sync_and_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<AddressPolicy>();
    assert_send_sync::<Verdict>();
    assert_send_sync::<RangeClass>();
}

//! Destination-address classifier: the SSRF defence of the egress fetcher.
//!
//! cimd-proxy fetches URLs that strangers hand it. Whatever a hostname
//! resolves to, the fetcher must ask [`AddressPolicy::classify`] about the
//! exact address it is about to `connect()` to (after resolution, after every
//! redirect, never a re-resolved name) and connect only when
//! [`Verdict::is_allowed`]. This module only decides; it does no I/O, and it
//! takes an already parsed [`IpAddr`], so textual tricks such as `0x7f.1` or
//! `2130706433` are the parser's business, not ours.
//!
//! # Fixed order of decision
//!
//! [`AddressPolicy::classify`] asks, in this order, and the first answer wins:
//!
//! 0. **Unspecified** (`0.0.0.0`, `::`, `::ffff:0.0.0.0`): always blocked,
//!    even inside an operator allow range. On Linux, `connect()` to the
//!    unspecified address reaches the local host (it is taken as "this host"),
//!    so it is loopback in disguise and never an outside destination, whatever
//!    a broad allow range such as `0.0.0.0/0` happens to contain.
//! 1. **Operator allow** ranges → [`Verdict::AllowedByOperator`]. The operator
//!    exception wins over everything below, the table included.
//! 2. **Operator deny** ranges → [`RangeClass::OperatorDenied`].
//! 3. **The proxy's own addresses** → [`RangeClass::ProxyOwnAddress`] (a fetch
//!    of ourselves would loop or reach our internal listeners).
//! 4. **The built-in special-purpose table** ([`special_purpose`]), with
//!    IPv4-in-IPv6 decoding.
//! 5. Otherwise [`Verdict::Allowed`].
//!
//! # Longest prefix wins
//!
//! The table holds nested ranges on purpose: every entry of the IANA IPv4 and
//! IPv6 Special-Purpose Address Registries, plus multicast, reserved and
//! non-global-unicast space, plus single cloud-metadata addresses. An address
//! gets the class of the *most specific* (longest-prefix) entry containing it,
//! whatever the order of the lines: `169.254.169.254` is `cloud_metadata`, not
//! `link_local`; `192.0.0.9` is `protocol_anycast`, not
//! `ietf_protocol_assignments`. A test proves no two entries share a prefix,
//! so the longest match is unique.
//!
//! Every entry is blocked, including those the registry marks "globally
//! reachable" (PCP/TURN anycast, AS112, AMT, ORCHIDv2, ...): none of them is a
//! place where a document a stranger asks us to fetch can legitimately live,
//! and an SSRF filter that errs must err towards refusing.
//!
//! # IPv4 embedded in IPv6
//!
//! Some IPv6 forms carry an IPv4 address that the packet really ends up at.
//! Checking only the IPv6 prefix would let `::ffff:127.0.0.1` or
//! `64:ff9b::a9fe:a9fe` (169.254.169.254) through, so these forms are decoded
//! and the embedded IPv4 address is checked against the IPv4 table:
//!
//! - **IPv4-mapped `::ffff:0:0/96`** (RFC 4291 §2.5.5.2): on a dual-stack
//!   socket this *is* the IPv4 destination, so it gets exactly the verdict of
//!   the embedded address, public ones included (Allowed). The operator lists
//!   treat it the same way (see [`AddressPolicy`]).
//! - **NAT64 well-known prefix `64:ff9b::/96`** (RFC 6052): a translator
//!   forwards to the embedded address, so a special-purpose embedded address
//!   is blocked with its own class; a public one is Allowed (RFC 6052 §3.1
//!   already forbids this prefix for non-global IPv4, so a legitimate use only
//!   ever embeds public addresses).
//! - **NAT64 local-use `64:ff9b:1::/48`** (RFC 8215): always blocked
//!   ([`RangeClass::Nat64LocalUse`]): it reaches whatever a *local* translator
//!   is configured for, which we cannot see. The embedded address is decoded
//!   for the report only, when the address follows the RFC 6052 /48 layout
//!   (see `nat64_local_embedded`).
//! - **IPv4-compatible `::/96`** (RFC 4291 §2.5.5.1, deprecated), **6to4
//!   `2002::/16`** (RFC 3056; relays deprecated by RFC 7526) and **Teredo
//!   `2001::/32`** (RFC 4380): always blocked as
//!   [`RangeClass::DeprecatedTransition`]; no document host we should fetch
//!   from needs them, and a tunnel endpoint on the path can forward anywhere.
//!   If the embedded address (for Teredo the client, then the server) is
//!   itself special-purpose, *its* class, range and address are reported, so a
//!   log reads "loopback via 6to4" instead of an opaque "deprecated".
//!
//! Whenever an IPv4 address could be decoded from the form, the report's
//! `embedded` carries it. When `range` is an IPv4 network and the address was
//! IPv6, the embedded address decided the verdict; when `range` is an IPv6
//! network (or an operator range), something else decided and `embedded` is
//! there to tell the operator where the packet would have gone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

#[cfg(test)]
mod tests;

/// Why an address is refused; a closed set used as a metric label and in logs.
///
/// Adding a variant is a metrics change: add it to [`RangeClass::ALL`] and
/// [`RangeClass::as_str`] (the tests fail until both are done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RangeClass {
    /// `0.0.0.0/32`, `::/128`: reaches the local host on Linux.
    Unspecified,
    /// `0.0.0.0/8` (except `0.0.0.0`): "this network", never a destination.
    ThisNetwork,
    /// `127.0.0.0/8`, `::1/128`.
    Loopback,
    /// RFC 1918 private-use: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`: carrier-grade NAT shared space (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Cloud instance-metadata and credential endpoints (not an IETF class).
    CloudMetadata,
    /// The rest of `192.0.0.0/24` and `2001::/23` (IETF protocol assignments).
    IetfProtocolAssignments,
    /// `192.0.0.0/29`: IPv4 Service Continuity Prefix (DS-Lite, RFC 7335).
    ServiceContinuity,
    /// `192.0.0.8/32`, `100:0:0:1::/64`: dummy addresses (RFC 7600, RFC 9780).
    Dummy,
    /// Anycast addresses of IETF protocols: PCP, TURN, DNS-SD SRP, 6a44 relay.
    ProtocolAnycast,
    /// `192.0.0.170/32`, `192.0.0.171/32`: NAT64/DNS64 discovery (ipv4only.arpa).
    Nat64Discovery,
    /// Documentation ranges (TEST-NET-1/2/3, `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Benchmarking ranges (`198.18.0.0/15`, `2001:2::/48`).
    Benchmarking,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255/32`: limited broadcast.
    Broadcast,
    /// `240.0.0.0/4` (except the broadcast address): reserved, "class E".
    Reserved,
    /// AS112 DNS sink-hole service ranges.
    As112,
    /// Automatic Multicast Tunneling relay anycast.
    Amt,
    /// Deprecated forms: 6to4 relay anycast, 6to4, Teredo, IPv4-compatible
    /// IPv6, and (not a transition form, but deprecated all the same)
    /// site-local `fec0::/10`.
    DeprecatedTransition,
    /// `64:ff9b:1::/48`: NAT64 local-use prefix (RFC 8215).
    Nat64LocalUse,
    /// `100::/64`: discard-only (RFC 6666).
    DiscardOnly,
    /// `fc00::/7`: unique local addresses (RFC 4193).
    UniqueLocal,
    /// `5f00::/16`: SRv6 segment identifiers (RFC 9602).
    SegmentRouting,
    /// ORCHID, ORCHIDv2, DRIP entity tags: identifiers, not locators.
    CryptographicIdentifier,
    /// IPv6 outside `2000::/3`, the only space IANA allocates for global
    /// unicast (RFC 4291 §2.4).
    NotGlobalUnicast,
    /// Inside an operator `deny_cidrs` entry.
    OperatorDenied,
    /// One of the proxy's own addresses.
    ProxyOwnAddress,
}

impl RangeClass {
    /// Every class, in declaration order.
    pub const ALL: [RangeClass; 28] = [
        RangeClass::Unspecified,
        RangeClass::ThisNetwork,
        RangeClass::Loopback,
        RangeClass::Private,
        RangeClass::SharedAddressSpace,
        RangeClass::LinkLocal,
        RangeClass::CloudMetadata,
        RangeClass::IetfProtocolAssignments,
        RangeClass::ServiceContinuity,
        RangeClass::Dummy,
        RangeClass::ProtocolAnycast,
        RangeClass::Nat64Discovery,
        RangeClass::Documentation,
        RangeClass::Benchmarking,
        RangeClass::Multicast,
        RangeClass::Broadcast,
        RangeClass::Reserved,
        RangeClass::As112,
        RangeClass::Amt,
        RangeClass::DeprecatedTransition,
        RangeClass::Nat64LocalUse,
        RangeClass::DiscardOnly,
        RangeClass::UniqueLocal,
        RangeClass::SegmentRouting,
        RangeClass::CryptographicIdentifier,
        RangeClass::NotGlobalUnicast,
        RangeClass::OperatorDenied,
        RangeClass::ProxyOwnAddress,
    ];

    /// snake_case, stable, e.g. "cloud_metadata"; used verbatim as a Prometheus label value.
    ///
    /// Never rename a value: dashboards and alerts match on it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The outcome of classifying one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A public address: connect.
    Allowed,
    /// Inside an operator `allow_cidrs` entry: connect (operator exception wins over everything).
    AllowedByOperator(IpNet),
    /// Refused. `range` is the matched table range (or operator deny range, or /32 /128 of own address),
    /// `embedded` is the IPv4 address decoded from an IPv6 transition form.
    ///
    /// Precisely: `embedded` is set whenever the address was an IPv6 form
    /// carrying a decodable IPv4 address (mapped, NAT64, 6to4, Teredo,
    /// IPv4-compatible). If `range` is an IPv4 network, that embedded address
    /// decided the verdict; if `range` is IPv6, the IPv6 prefix did and
    /// `embedded` only tells where the packet would have gone.
    Blocked {
        /// Why: the class of the deciding range (a metric label).
        class: RangeClass,
        /// The deciding range, for the log line.
        range: IpNet,
        /// The IPv4 address decoded from an IPv6 transition form, if any.
        embedded: Option<Ipv4Addr>,
    },
}

impl Verdict {
    /// True for [`Verdict::Allowed`] and [`Verdict::AllowedByOperator`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::AllowedByOperator(_))
    }
}

/// The operator's view: built once from configuration, then shared (it must be Send + Sync, cheap to call).
///
/// How the lists match:
///
/// - An IPv4-mapped address (`::ffff:a.b.c.d`) is matched as the IPv4 address
///   `a.b.c.d` everywhere, so `allow_cidrs = ["10.1.2.3/32"]` and a AAAA answer
///   `::ffff:10.1.2.3` behave the same, and an IPv6 entry such as `::/0`
///   never allows `::ffff:127.0.0.1`. Write IPv4 ranges in IPv4 notation.
/// - `allow` matches only that (the direct or mapped address). It is
///   deliberately *not* extended to NAT64, 6to4 or Teredo forms: an
///   exception is opened as narrowly as it was written.
/// - `deny` and own addresses are extended the fail-closed way: they also
///   match the raw IPv6 form, and the IPv4 address behind a NAT64
///   well-known-prefix address (`64:ff9b::a.b.c.d`), the one transition form
///   the table lets through for public IPv4. Otherwise a denied public
///   host, or the proxy itself, would be one NAT64 AAAA record away.
///   (The other transition forms are always blocked by the table anyway.)
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Operator exceptions, host bits cleared.
    allow: Vec<IpNet>,
    /// Operator refusals, host bits cleared.
    deny: Vec<IpNet>,
    /// The proxy's own addresses, IPv4-mapped ones stored as IPv4.
    own: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Builds the policy. Host bits of the ranges are cleared (`10.1.2.3/8`
    /// is `10.0.0.0/8`) so that reports show the range that actually matched.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, own_addresses: Vec<IpAddr>) -> Self {
        AddressPolicy {
            allow: allow.iter().map(IpNet::trunc).collect(),
            deny: deny.iter().map(IpNet::trunc).collect(),
            own: own_addresses.iter().map(IpAddr::to_canonical).collect(),
        }
    }

    /// Fixed order: operator allow → operator deny → the proxy's own addresses → the special-purpose table
    /// (with IPv4-in-IPv6 decoding) → Allowed.
    ///
    /// The unspecified address is refused before all of them (see the module
    /// documentation).
    pub fn classify(&self, ip: IpAddr) -> Verdict {
        // `::ffff:a.b.c.d` becomes `a.b.c.d`; everything else is unchanged.
        let canonical = ip.to_canonical();
        let mapped = match (ip, canonical) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => Some(v4),
            _ => None,
        };
        // The IPv4 destination behind a NAT64 well-known-prefix address.
        let nat64 = match ip {
            IpAddr::V6(v6) if NAT64_WELL_KNOWN.contains(&v6) => Some(low32(v6)),
            _ => None,
        };
        let embedded = mapped.or(nat64);

        // 0. Unspecified: "this host" on Linux, whatever the operator allowed.
        if canonical.is_unspecified() {
            return Verdict::Blocked {
                class: RangeClass::Unspecified,
                range: IpNet::from(canonical),
                embedded,
            };
        }

        // 1. Operator allow: the address as written, or the IPv4 address a
        //    mapped address stands for. Nothing else.
        if let Some(net) = self.allow.iter().find(|net| net.contains(&canonical)) {
            return Verdict::AllowedByOperator(*net);
        }

        // Deny and own match every form of the destination we can decode:
        // the address as given, the IPv4 address a mapped address stands
        // for, and the IPv4 address behind a NAT64 well-known prefix.
        let forms = [Some(ip), Some(canonical), nat64.map(IpAddr::V4)];
        let any_form = |hit: &dyn Fn(&IpAddr) -> bool| forms.iter().flatten().any(hit);

        // 2. Operator deny.
        if let Some(net) = self
            .deny
            .iter()
            .find(|net| any_form(&|form| net.contains(form)))
        {
            return Verdict::Blocked {
                class: RangeClass::OperatorDenied,
                range: *net,
                embedded,
            };
        }

        // 3. The proxy's own addresses (stored canonical).
        if let Some(own) = self.own.iter().find(|own| any_form(&|form| form == *own)) {
            return Verdict::Blocked {
                class: RangeClass::ProxyOwnAddress,
                range: IpNet::from(*own),
                embedded,
            };
        }

        // 4. The built-in table; 5. otherwise public.
        match special_purpose(ip) {
            Some((class, range, embedded)) => Verdict::Blocked {
                class,
                range,
                embedded,
            },
            None => Verdict::Allowed,
        }
    }
}

/// The built-in table alone (no operator lists): Some((class, range, embedded)) when the address is special-purpose.
///
/// The longest matching prefix decides; IPv6 transition forms are decoded as
/// described in the module documentation.
pub fn special_purpose(ip: IpAddr) -> Option<(RangeClass, IpNet, Option<Ipv4Addr>)> {
    match ip {
        IpAddr::V4(v4) => lookup_v4(v4).map(|(class, net)| (class, IpNet::V4(net), None)),
        IpAddr::V6(v6) => special_purpose_v6(v6),
    }
}

fn special_purpose_v6(ip: Ipv6Addr) -> Option<(RangeClass, IpNet, Option<Ipv4Addr>)> {
    // No entry: inside 2000::/3 and in no special range, a public address.
    let (rule, net) = lookup_v6(ip)?;
    let octets = ip.octets();
    match rule {
        Rule::Block(class) => Some((class, IpNet::V6(net), None)),
        // Same destination as the embedded address: its verdict, public included.
        Rule::Ipv4Mapped | Rule::Nat64WellKnown => {
            let v4 = low32(ip);
            lookup_v4(v4).map(|(class, v4net)| (class, IpNet::V4(v4net), Some(v4)))
        }
        Rule::Nat64Local => Some((
            RangeClass::Nat64LocalUse,
            IpNet::V6(net),
            nat64_local_embedded(&octets),
        )),
        Rule::Ipv4Compatible => Some(deprecated(net, &[low32(ip)])),
        // RFC 3056 §2: 2002:V4ADDR::/48, the IPv4 address in bits 16..47
        // (octets 2..5).
        Rule::SixToFour => Some(deprecated(net, &[v4_at(&octets, 2)])),
        // RFC 4380 §4: server IPv4 in bits 32..63 (octets 4..7), client
        // ("mapped") IPv4 in bits 96..127 (octets 12..15) with every bit
        // inverted. The client is where the traffic ends up: checked first.
        Rule::Teredo => {
            let inverted = v4_at(&octets, 12).octets().map(|b| !b);
            let client = Ipv4Addr::from(inverted);
            let server = v4_at(&octets, 4);
            Some(deprecated(net, &[client, server]))
        }
    }
}

/// A deprecated transition form: always blocked. If an embedded address is
/// special-purpose, report that (the first one that is, in `candidates`
/// order); otherwise report the IPv6 range and the first candidate.
fn deprecated(net: Ipv6Net, candidates: &[Ipv4Addr]) -> (RangeClass, IpNet, Option<Ipv4Addr>) {
    for &v4 in candidates {
        if let Some((class, v4net)) = lookup_v4(v4) {
            return (class, IpNet::V4(v4net), Some(v4));
        }
    }
    (
        RangeClass::DeprecatedTransition,
        IpNet::V6(net),
        candidates.first().copied(),
    )
}

/// The IPv4 address in an address of the NAT64 local-use prefix, read with
/// the RFC 6052 §2.2 layout for a /48 prefix: IPv4 bits 0..15 in address bits
/// 48..63 (octets 6, 7), the "u" octet (bits 64..71, octet 8) zero, IPv4 bits
/// 16..31 in bits 72..87 (octets 9, 10), and the suffix (bits 88..127, octets
/// 11..15) zero.
///
/// Report only: the verdict never depends on it. A network may use a longer
/// prefix inside `64:ff9b:1::/48` (say a /96), which we cannot know; requiring
/// the zero suffix as well as the zero "u" octet (RFC 6052 says both are zero)
/// keeps such addresses from being reported with a made-up IPv4 address.
fn nat64_local_embedded(octets: &[u8; 16]) -> Option<Ipv4Addr> {
    let u_octet = octets[8];
    let suffix_is_zero = octets[11..].iter().all(|&b| b == 0);
    if u_octet != 0 || !suffix_is_zero {
        return None;
    }
    Some(Ipv4Addr::new(octets[6], octets[7], octets[9], octets[10]))
}

/// The last 32 bits (octets 12..15) of an IPv6 address, as an IPv4 address:
/// the mapped, NAT64 /96 and IPv4-compatible layouts.
fn low32(ip: Ipv6Addr) -> Ipv4Addr {
    v4_at(&ip.octets(), 12)
}

/// The four octets of `octets` starting at `start` (a constant, at most 12),
/// as an IPv4 address.
fn v4_at(octets: &[u8; 16], start: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        octets[start],
        octets[start + 1],
        octets[start + 2],
        octets[start + 3],
    )
}

/// `64:ff9b::/96`, the NAT64 well-known prefix (RFC 6052 §2.1), also a line
/// of the IPv6 table (the test `nat64_constant_matches_table` checks they
/// agree). Built at compile time: `new_assert` fails the build, not a run.
const NAT64_WELL_KNOWN: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// What an IPv6 table entry means. IPv4 entries are always a plain block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Blocked with this class; nothing to decode.
    Block(RangeClass),
    /// `::ffff:0:0/96`: the verdict of the embedded IPv4 address.
    Ipv4Mapped,
    /// `64:ff9b::/96`: the verdict of the embedded IPv4 address.
    Nat64WellKnown,
    /// `64:ff9b:1::/48`: always blocked; embedded address for the report.
    Nat64Local,
    /// `::/96`: always blocked; a special-purpose embedded address is reported.
    Ipv4Compatible,
    /// `2002::/16`: always blocked; a special-purpose embedded address is reported.
    SixToFour,
    /// `2001::/32`: always blocked; a special-purpose client or server is reported.
    Teredo,
}

/// The built-in tables. One line per range: `(prefix, class or rule, "RFC: name")`.
///
/// Sources: the IANA IPv4 Special-Purpose Address Registry and IANA IPv6
/// Special-Purpose Address Registry (RFC 6890, updated by RFC 8190; checked
/// against the registries as updated in October 2025), the IANA IPv4 and IPv6 Address Space
/// and Multicast registries, and cloud providers' documentation for the
/// metadata endpoints. Order does not matter (longest prefix wins), but keep
/// lines sorted by address so a reviewer can diff them against the registry.
mod table {
    use super::RangeClass::{self, *};
    use super::Rule::{self, *};

    /// IPv4.
    #[rustfmt::skip]
    pub(super) const IPV4: &[(&str, RangeClass, &str)] = &[
        // "This network": as a destination it means this host or a neighbour.
        ("0.0.0.0/8",          ThisNetwork,             "RFC 791 §3.2: \"this network\""),
        // Linux connects 0.0.0.0 to the local host.
        ("0.0.0.0/32",         Unspecified,             "RFC 1122 §3.2.1.3: \"this host on this network\""),
        ("10.0.0.0/8",         Private,                 "RFC 1918: private-use"),
        // Carrier-grade NAT space: the ISP's and often a cloud's internal network.
        ("100.64.0.0/10",      SharedAddressSpace,      "RFC 6598: shared address space"),
        // Alibaba Cloud ECS metadata service (inside 100.64.0.0/10).
        ("100.100.100.200/32", CloudMetadata,           "Alibaba Cloud: ECS instance metadata"),
        ("127.0.0.0/8",        Loopback,                "RFC 1122 §3.2.1.3: loopback"),
        // Azure WireServer: a *public* address that reaches host services
        // (VM agent, DHCP, health probes) from inside every Azure VM.
        ("168.63.129.16/32",   CloudMetadata,           "Microsoft Azure: WireServer host endpoint"),
        ("169.254.0.0/16",     LinkLocal,               "RFC 3927: link local"),
        // The classic SSRF target: AWS, GCP, Azure, OpenStack, DigitalOcean,
        // Oracle and others serve instance metadata and credentials here.
        ("169.254.169.254/32", CloudMetadata,           "AWS/GCP/Azure/OpenStack: instance metadata (IMDS)"),
        // AWS ECS task metadata and task-role credentials.
        ("169.254.170.2/32",   CloudMetadata,           "AWS ECS: task metadata and credentials"),
        // AWS EKS Pod Identity agent: pod credentials.
        ("169.254.170.23/32",  CloudMetadata,           "AWS EKS: Pod Identity agent credentials"),
        ("172.16.0.0/12",      Private,                 "RFC 1918: private-use"),
        ("192.0.0.0/24",       IetfProtocolAssignments, "RFC 6890 §2.1: IETF protocol assignments"),
        ("192.0.0.0/29",       ServiceContinuity,       "RFC 7335: IPv4 service continuity prefix (DS-Lite)"),
        ("192.0.0.8/32",       Dummy,                   "RFC 7600: IPv4 dummy address"),
        ("192.0.0.9/32",       ProtocolAnycast,         "RFC 7723: Port Control Protocol anycast"),
        ("192.0.0.10/32",      ProtocolAnycast,         "RFC 8155: TURN anycast"),
        ("192.0.0.170/32",     Nat64Discovery,          "RFC 8880, RFC 7050 §2.2: NAT64/DNS64 discovery"),
        ("192.0.0.171/32",     Nat64Discovery,          "RFC 8880, RFC 7050 §2.2: NAT64/DNS64 discovery"),
        // Oracle Cloud legacy metadata address (inside 192.0.0.0/24).
        ("192.0.0.192/32",     CloudMetadata,           "Oracle Cloud: instance metadata (legacy address)"),
        ("192.0.2.0/24",       Documentation,           "RFC 5737: documentation (TEST-NET-1)"),
        ("192.31.196.0/24",    As112,                   "RFC 7535: AS112-v4"),
        ("192.52.193.0/24",    Amt,                     "RFC 7450: automatic multicast tunneling"),
        ("192.88.99.0/24",     DeprecatedTransition,    "RFC 7526: deprecated 6to4 relay anycast"),
        ("192.88.99.2/32",     ProtocolAnycast,         "RFC 6751: 6a44 relay anycast"),
        ("192.168.0.0/16",     Private,                 "RFC 1918: private-use"),
        ("192.175.48.0/24",    As112,                   "RFC 7534: direct delegation AS112 service"),
        ("198.18.0.0/15",      Benchmarking,            "RFC 2544, RFC 6815: benchmarking"),
        ("198.51.100.0/24",    Documentation,           "RFC 5737: documentation (TEST-NET-2)"),
        ("203.0.113.0/24",     Documentation,           "RFC 5737: documentation (TEST-NET-3)"),
        // Not in the special-purpose registry, but never a unicast destination.
        ("224.0.0.0/4",        Multicast,               "RFC 5771: multicast"),
        ("240.0.0.0/4",        Reserved,                "RFC 1112 §4: reserved for future use"),
        ("255.255.255.255/32", Broadcast,               "RFC 8190, RFC 919 §7: limited broadcast"),
    ];

    /// IPv6. Anything not matched here is inside `2000::/3` and public.
    #[rustfmt::skip]
    pub(super) const IPV6: &[(&str, Rule, &str)] = &[
        // Everything outside 2000::/3 is not global unicast (the three
        // entries below cover ::/0 minus 2000::/3); the more specific
        // entries inside them say what it is instead.
        ("::/3",               Block(NotGlobalUnicast),        "RFC 4291 §2.4: not global unicast (0000::/3)"),
        ("::/128",             Block(Unspecified),             "RFC 4291 §2.5.2: unspecified address"),
        ("::1/128",            Block(Loopback),                "RFC 4291 §2.5.3: loopback address"),
        ("::/96",              Ipv4Compatible,                 "RFC 4291 §2.5.5.1: IPv4-compatible (deprecated)"),
        ("::ffff:0:0/96",      Ipv4Mapped,                     "RFC 4291 §2.5.5.2: IPv4-mapped"),
        ("64:ff9b::/96",       Nat64WellKnown,                 "RFC 6052: IPv4-IPv6 translation, well-known prefix"),
        ("64:ff9b:1::/48",     Nat64Local,                     "RFC 8215: IPv4-IPv6 translation, local use"),
        ("100::/64",           Block(DiscardOnly),             "RFC 6666: discard-only address block"),
        ("100:0:0:1::/64",     Block(Dummy),                   "RFC 9780: dummy IPv6 prefix"),
        ("2001::/23",          Block(IetfProtocolAssignments), "RFC 2928: IETF protocol assignments"),
        ("2001::/32",          Teredo,                         "RFC 4380, RFC 8190: Teredo"),
        ("2001:1::1/128",      Block(ProtocolAnycast),         "RFC 7723: Port Control Protocol anycast"),
        ("2001:1::2/128",      Block(ProtocolAnycast),         "RFC 8155: TURN anycast"),
        ("2001:1::3/128",      Block(ProtocolAnycast),         "RFC 9665: DNS-SD service registration protocol anycast"),
        ("2001:2::/48",        Block(Benchmarking),            "RFC 5180: benchmarking"),
        ("2001:3::/32",        Block(Amt),                     "RFC 7450: automatic multicast tunneling"),
        ("2001:4:112::/48",    Block(As112),                   "RFC 7535: AS112-v6"),
        ("2001:10::/28",       Block(CryptographicIdentifier), "RFC 4843: deprecated (previously ORCHID)"),
        ("2001:20::/28",       Block(CryptographicIdentifier), "RFC 7343: ORCHIDv2"),
        ("2001:30::/28",       Block(CryptographicIdentifier), "RFC 9374: DRIP entity tags (DETs)"),
        ("2001:db8::/32",      Block(Documentation),           "RFC 3849: documentation"),
        ("2002::/16",          SixToFour,                      "RFC 3056: 6to4"),
        ("2620:4f:8000::/48",  Block(As112),                   "RFC 7534: direct delegation AS112 service"),
        ("3fff::/20",          Block(Documentation),           "RFC 9637: documentation"),
        ("4000::/2",           Block(NotGlobalUnicast),        "RFC 4291 §2.4: not global unicast (4000::/2)"),
        ("5f00::/16",          Block(SegmentRouting),          "RFC 9602: segment routing (SRv6) SIDs"),
        ("8000::/1",           Block(NotGlobalUnicast),        "RFC 4291 §2.4: not global unicast (8000::/1)"),
        ("fc00::/7",           Block(UniqueLocal),             "RFC 4193, RFC 8190: unique-local"),
        // AWS EKS Pod Identity agent: pod credentials (inside fc00::/7).
        ("fd00:ec2::23/128",   Block(CloudMetadata),           "AWS EKS: Pod Identity agent credentials (IPv6)"),
        // AWS instance metadata over IPv6 (inside fc00::/7).
        ("fd00:ec2::254/128",  Block(CloudMetadata),           "AWS EC2: instance metadata (IMDS, IPv6)"),
        ("fe80::/10",          Block(LinkLocal),               "RFC 4291 §2.5.6: link-local unicast"),
        ("fec0::/10",          Block(DeprecatedTransition),    "RFC 3879: site-local (deprecated)"),
        ("ff00::/8",           Block(Multicast),               "RFC 4291 §2.7: multicast"),
    ];
}

/// The IPv4 table, parsed once. The strings are constants; the test
/// `tables_parse_and_are_canonical` proves every one parses, so the panic
/// below cannot be reached in a build whose tests pass.
static IPV4_TABLE: LazyLock<Vec<(Ipv4Net, RangeClass)>> = LazyLock::new(|| {
    table::IPV4
        .iter()
        .map(|&(prefix, class, _)| (parse_const(prefix), class))
        .collect()
});

/// The IPv6 table, parsed once (see [`IPV4_TABLE`]).
static IPV6_TABLE: LazyLock<Vec<(Ipv6Net, Rule)>> = LazyLock::new(|| {
    table::IPV6
        .iter()
        .map(|&(prefix, rule, _)| (parse_const(prefix), rule))
        .collect()
});

fn parse_const<T: std::str::FromStr>(prefix: &str) -> T {
    match prefix.parse() {
        Ok(net) => net,
        Err(_) => panic!("built-in table prefix {prefix:?} does not parse"),
    }
}

/// Longest-prefix match in the IPv4 table.
fn lookup_v4(ip: Ipv4Addr) -> Option<(RangeClass, Ipv4Net)> {
    IPV4_TABLE
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|&(net, class)| (class, net))
}

/// Longest-prefix match in the IPv6 table.
fn lookup_v6(ip: Ipv6Addr) -> Option<(Rule, Ipv6Net)> {
    IPV6_TABLE
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|&(net, rule)| (rule, net))
}

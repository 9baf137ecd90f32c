//! The seed corpora, generated: `fuzz/corpus/<target>/<name>` holds exactly these bytes.
//!
//! * `stun_parse`: the RFC 5769 vectors (`crates/stun-proto/tests/vectors`), and real
//!   messages the TURN client, the TURN server and the ICE agents built in seeded sessions.
//! * `framing`: those messages as TCP streams (STUN and padded ChannelData, RFC 4571),
//!   cut into reads of several sizes.
//! * `channel_data`: real ChannelData messages, padded and not.
//! * `sdp`: Chrome and Firefox candidate lines, and the ICE attribute lines of an offer.
//! * The stateful targets: sessions written as operations (allocate, permit, bind, relay,
//!   refresh, expire, delete; checks, nomination, restarts, attacks; ...), encoded with
//!   [`crate::ops::Encoder`] so that they decode to exactly those operations.
//!
//! The replay test (`tests/tests/fuzz_corpus.rs`) checks that every seed is in the corpus
//! directory with these bytes; `FLOE_UPDATE_CORPUS=1 cargo test -p floe-tests --test
//! fuzz_corpus` writes them.

use crate::ops::Encoder;
use crate::{ice_agents as ice, transactions as tx, turn_client as tc, turn_server as ts};

/// One seed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// The target.
    pub target: &'static str,
    /// The file name.
    pub name: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// True if the bytes depend only on this crate (operations it encodes, fixed vectors);
    /// false for messages captured from the protocol crates' sessions, which change when
    /// those crates change what they send (the file then only has to exist).
    pub exact: bool,
}

fn seed(target: &'static str, name: impl Into<String>, data: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.into(),
        data,
        exact: true,
    }
}

fn captured_seed(target: &'static str, name: impl Into<String>, data: Vec<u8>) -> Seed {
    Seed {
        exact: false,
        ..seed(target, name, data)
    }
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let turn = turn_client_seeds();
    let ice = ice_seeds();
    let transactions = transaction_seeds();
    let server = turn_server_seeds();
    out.extend(stun_parse_seeds(&turn, &ice));
    out.extend(framing_seeds(&turn));
    out.extend(channel_data_seeds(&turn));
    out.extend(sdp_seeds());
    out.extend(transactions);
    out.extend(turn);
    out.extend(server);
    out.extend(ice);
    out
}

const VECTORS: [(&str, &[u8]); 4] = [
    (
        "rfc5769-sample-request",
        include_bytes!("../../crates/stun-proto/tests/vectors/sample_request.bin"),
    ),
    (
        "rfc5769-ipv4-response",
        include_bytes!("../../crates/stun-proto/tests/vectors/sample_ipv4_response.bin"),
    ),
    (
        "rfc5769-ipv6-response",
        include_bytes!("../../crates/stun-proto/tests/vectors/sample_ipv6_response.bin"),
    ),
    (
        "rfc5769-long-term-request",
        include_bytes!("../../crates/stun-proto/tests/vectors/sample_request_long_term.bin"),
    ),
];

/// Distinct messages of a kind from captured sessions, keyed by their STUN type (or
/// ChannelData), at most `per_kind` each.
fn distinct(captures: &[Vec<u8>], stun: bool, per_kind: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut kinds: Vec<(u16, usize)> = Vec::new();
    for m in captures {
        let is_stun = m.first().is_some_and(|&b| b < 4);
        if is_stun != stun || m.len() < 4 {
            continue;
        }
        let kind = u16::from_be_bytes([m[0], m[1]]) & if stun { 0xffff } else { 0 };
        let n = match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => n,
            None => {
                kinds.push((kind, 0));
                &mut kinds.last_mut().expect("pushed").1
            }
        };
        if *n < per_kind && !out.contains(m) {
            *n += 1;
            out.push(m.clone());
        }
    }
    out
}

/// The datagrams of the TURN client seeds' sessions and of the ICE seeds' sessions.
fn captured(turn: &[Seed], ice: &[Seed]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let t = turn.iter().flat_map(|s| tc::capture(&s.data)).collect();
    let i = ice.iter().flat_map(|s| ice::capture(&s.data)).collect();
    (t, i)
}

fn stun_parse_seeds(turn: &[Seed], ice: &[Seed]) -> Vec<Seed> {
    let mut out: Vec<Seed> = VECTORS
        .iter()
        .map(|(name, data)| seed("stun_parse", *name, data.to_vec()))
        .collect();
    let (t, i) = captured(turn, ice);
    for (n, m) in distinct(&t, true, 2).into_iter().enumerate() {
        out.push(captured_seed("stun_parse", format!("turn-{n:02}"), m));
    }
    for (n, m) in distinct(&i, true, 3).into_iter().enumerate() {
        out.push(captured_seed("stun_parse", format!("ice-{n:02}"), m));
    }
    out
}

fn framing_seeds(turn: &[Seed]) -> Vec<Seed> {
    let (t, _) = captured(turn, &[]);
    let mut stream = Vec::new();
    for m in distinct(&t, true, 1).iter().take(6) {
        stream.extend_from_slice(m);
    }
    for m in distinct(&t, false, 3) {
        stream.extend_from_slice(&m);
        stream.resize(stream.len().next_multiple_of(4), 0);
    }
    let mut rfc4571 = Vec::new();
    for m in distinct(&t, true, 1).iter().take(4) {
        rfc4571.extend_from_slice(&(m.len() as u16).to_be_bytes());
        rfc4571.extend_from_slice(m);
    }
    let mut out = Vec::new();
    for (mode, name, data) in [
        (0u8, "turn-tcp-stream", &stream),
        (1u8, "rfc4571-stream", &rfc4571),
        (2u8, "turn-tcp-stream-max64", &stream),
    ] {
        for (cut, cuts) in [
            ("whole", vec![]),
            ("bytewise", vec![1u8]),
            ("odd", vec![3, 17, 100]),
        ] {
            let mut e = Encoder::new();
            e.u8(mode).bytes(data);
            e.bytes.extend_from_slice(&cuts);
            out.push(captured_seed(
                "framing",
                format!("{name}-{cut}"),
                e.finish(),
            ));
        }
    }
    out
}

fn channel_data_seeds(turn: &[Seed]) -> Vec<Seed> {
    let (t, _) = captured(turn, &[]);
    let mut out: Vec<Seed> = distinct(&t, false, 4)
        .into_iter()
        .enumerate()
        .map(|(n, m)| captured_seed("channel_data", format!("captured-{n}"), m))
        .collect();
    let padded = turn_proto::channel_data::encode(0x4fff, b"odd", true).expect("fits");
    out.push(seed("channel_data", "padded-0x4fff", padded));
    out.push(seed("channel_data", "empty-0x4000", vec![0x40, 0, 0, 0]));
    out
}

/// Candidate lines as Chrome and Firefox write them, and an offer's ICE lines.
const SDP: [(&str, &str); 6] = [
    (
        "chrome-srflx",
        "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 ufrag EsAw network-id 1 network-cost 10",
    ),
    (
        "chrome-tcp-and-mdns",
        "candidate:1853887674 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0 network-id 1\ncandidate:3005819299 1 udp 2113937151 983d4667-3222-491a-aace-e549cd9c13a8.local 54324 typ host generation 0 ufrag xMAc network-cost 999",
    ),
    (
        "chrome-relay",
        "a=candidate:1 1 udp 41885695 198.51.100.9 3478 typ relay raddr 203.0.113.5 rport 12345 generation 0 ufrag EsAw network-id 1\r\n",
    ),
    (
        "firefox-ipv6-and-srflx",
        "candidate:2 1 UDP 2122252543 2a02:a03f:3eb0:e000:b0aa:d60a:cff2:933c 47387 typ host\ncandidate:1 1 UDP 1686052863 203.0.113.5 54321 typ srflx raddr 192.168.99.58 rport 45274",
    ),
    (
        "firefox-relay-rtcp",
        "candidate:5 2 UDP 92217086 198.51.100.3 55000 typ relay raddr 203.0.113.5 rport 54321\ncandidate:1 1 UDP 1686052607 203.0.113.5 54321 typ srflx raddr 0.0.0.0 rport 0",
    ),
    (
        "offer-ice-lines",
        "a=ice-ufrag:EsAw\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\na=ice-options:trickle ice2\r\na=ice-lite\r\na=ice-pacing:50\r\na=candidate:0 1 UDP 2122187007 192.168.99.58 45274 typ host\r\na=end-of-candidates\r\n",
    ),
];

fn sdp_seeds() -> Vec<Seed> {
    SDP.iter()
        .map(|(name, text)| seed("sdp", *name, text.as_bytes().to_vec()))
        .collect()
}

fn encode<T: crate::ops::Encode>(v: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put(v);
    e.finish()
}

fn transaction_seeds() -> Vec<Seed> {
    use tx::Op::*;
    let rfc = tx::Config {
        rto_ms: 500,
        max_requests: 6,      // Rc = 7
        last_wait_factor: 15, // Rm = 16
        reliable_ms: 39_500,
        max_rto_ms: 0,
        check_source: true,
        max_pending: 3, // 4
    };
    let start = |id, tcp, dest| Start {
        id,
        tcp,
        dest,
        rto_ms: 0,
    };
    let sessions = [
        (
            "rfc8489-schedule-to-timeout",
            rfc.clone(),
            vec![start(1, false, 0), Advance { ms: 40_000 }],
        ),
        (
            "responses-cancel-and-karn",
            rfc.clone(),
            vec![
                start(1, false, 0),
                start(2, false, 1),
                start(3, true, 2),
                Advance { ms: 30 },
                Respond { id: 1, from: 0 },
                Advance { ms: 600 },
                Respond { id: 2, from: 3 },
                Respond { id: 2, from: 1 },
                Cancel { id: 3 },
                start(1, false, 0),
                Late { ms: 5_000 },
                Advance { ms: 50_000 },
            ],
        ),
        (
            "capped-rto-and-full-table",
            tx::Config {
                max_rto_ms: 800,
                max_pending: 1,
                check_source: false,
                ..rfc
            },
            vec![
                start(1, false, 0),
                start(2, false, 0),
                start(3, false, 0),
                start(4, false, 0),
                start(5, false, 0),
                Late { ms: 3_000 },
                Advance { ms: 2_000 },
                Respond { id: 5, from: 2 },
                Advance { ms: 20_000 },
            ],
        ),
    ];
    sessions
        .into_iter()
        .map(|(name, config, ops)| seed("transactions", name, encode(&tx::Input { config, ops })))
        .collect()
}

fn turn_client_seeds() -> Vec<Seed> {
    use crate::turn_server::Peer::{Known, V6};
    use tc::Op::*;
    let setup = tc::Setup {
        v6: false,
        tcp: false,
        family: 0,
        additional: false,
        even_port: 0,
        token: false,
        dont_fragment: false,
        server_df: true,
        right_password: true,
        lifetime: 0,
        nonce_secs: 63,
        seed: 1,
    };
    let life = vec![
        Flush,
        Permit(vec![Known(0), Known(2)]),
        Flush,
        Bind(Known(1)),
        SendTo {
            peer: Known(1),
            len: 100,
        },
        Flush,
        SendTo {
            peer: Known(1),
            len: 50,
        },
        PeerSends {
            peer: Known(0),
            len: 30,
        },
        PeerSends {
            peer: Known(1),
            len: 31,
        },
        Flush,
        AdvanceSecs { secs: 250 },
        Flush,
        AdvanceSecs { secs: 600 },
        Flush,
        Delete,
        Flush,
    ];
    let sessions = [
        ("udp-lifecycle", setup.clone(), life.clone()),
        (
            "tcp-dual-stack",
            tc::Setup {
                tcp: true,
                additional: true,
                ..setup.clone()
            },
            vec![
                Flush,
                Permit(vec![V6(0x2001_0db8_0002_0000_0000_0000_0000_0005, 7000)]),
                Bind(Known(0)),
                Flush,
                SendTo {
                    peer: Known(0),
                    len: 10,
                },
                ConnectionLost,
            ],
        ),
        (
            "even-port-and-df-refused",
            tc::Setup {
                even_port: 2,
                dont_fragment: true,
                server_df: false,
                ..setup.clone()
            },
            vec![Flush, Flush, Permit(vec![Known(0)]), Flush, Delete, Flush],
        ),
        (
            "wrong-password",
            tc::Setup {
                right_password: false,
                ..setup.clone()
            },
            vec![Flush, Flush, Advance { ms: 40_000 }, Flush],
        ),
        (
            "lossy-network-and-forgeries",
            tc::Setup {
                nonce_secs: 5,
                ..setup.clone()
            },
            vec![
                Drop {
                    to_server: true,
                    which: 0,
                },
                Advance { ms: 600 },
                Duplicate {
                    to_server: true,
                    which: 0,
                },
                Flush,
                Corrupt {
                    to_server: false,
                    which: 0,
                    at: 30,
                    xor: 1,
                },
                Flush,
                Forge {
                    spoof: true,
                    data: vec![
                        0x01, 0x13, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                        11, 12,
                    ],
                },
                Replay { which: 1 },
                Permit(vec![Known(3)]),
                AdvanceSecs { secs: 10 },
                Flush,
                Bind(Known(4)),
                Flush,
            ],
        ),
    ];
    sessions
        .into_iter()
        .map(|(name, setup, ops)| seed("turn_client", name, encode(&tc::Input { setup, ops })))
        .collect()
}

fn turn_server_seeds() -> Vec<Seed> {
    use crate::turn_server::Peer::Known;
    use ts::Op::*;
    use ts::{Req, Sign};
    let alloc = |client| Request {
        client,
        req: Req::Allocate {
            family: 0,
            additional: false,
            even_port: 0,
            token: false,
            lifetime: 0,
            dont_fragment: false,
            tcp: false,
        },
        sign: Sign::Valid,
    };
    let permit = |client, peers: Vec<u8>| Request {
        client,
        req: Req::CreatePermission(peers.into_iter().map(Known).collect()),
        sign: Sign::Valid,
    };
    let bind = |client, channel, peer| Request {
        client,
        req: Req::ChannelBind {
            channel,
            peer: Known(peer),
        },
        sign: Sign::Valid,
    };
    let base = ts::Input {
        driver_binds: false,
        dont_fragment: true,
        userhash: false,
        nonce_secs: 63,
        seed: 1,
        ops: Vec::new(),
    };
    let relay = vec![
        alloc(0),
        permit(0, vec![0, 2]),
        bind(0, 0, 1),
        ChannelData {
            client: 0,
            channel: 0,
            len: 20,
        },
        Send {
            client: 0,
            peer: Known(0),
            len: 40,
            dont_fragment: true,
        },
        PeerSends {
            peer: Known(0),
            relay: 0,
            len: 30,
            headroom: false,
        },
        PeerSends {
            peer: Known(1),
            relay: 0,
            len: 30,
            headroom: true,
        },
        Icmp {
            relay: 0,
            peer: Known(0),
            icmp_type: 3,
            code: 4,
        },
        Retransmit { client: 0 },
        AdvanceSecs { secs: 301 },
        PeerSends {
            peer: Known(0),
            relay: 0,
            len: 30,
            headroom: true,
        },
        Request {
            client: 0,
            req: Req::Refresh {
                lifetime: Some(0),
                family: 0,
            },
            sign: Sign::Valid,
        },
    ];
    // Every denied range, in CreatePermission, ChannelBind and Send.
    let mut denied = vec![alloc(0), alloc(3)];
    for p in 4..28u8 {
        denied.push(permit(if p % 2 == 0 { 0 } else { 3 }, vec![p]));
        denied.push(bind(0, u16::from(p), p));
        denied.push(Send {
            client: 0,
            peer: Known(p),
            len: 8,
            dont_fragment: false,
        });
    }
    let mut quotas = Vec::new();
    for c in 0..8u8 {
        quotas.push(alloc(c));
    }
    quotas.push(permit(0, vec![0, 1, 2, 3]));
    quotas.push(permit(0, vec![26, 27]));
    for ch in 0..5 {
        quotas.push(bind(0, ch, ch as u8));
    }
    let mut bad_auth = vec![alloc(0)];
    for (i, sign) in [
        Sign::None,
        Sign::WrongKey,
        Sign::Tampered,
        Sign::ForeignNonce,
        Sign::OtherRealm,
        Sign::BidDown,
        Sign::NoUsername,
    ]
    .into_iter()
    .enumerate()
    {
        bad_auth.push(Request {
            client: (i % 3) as u8,
            req: Req::CreatePermission(vec![Known(0)]),
            sign,
        });
    }
    bad_auth.extend([
        AdvanceSecs { secs: 70 },
        permit(0, vec![0]), // stale nonce: 438, then the harness's next request uses the new one
        permit(0, vec![0]),
        alloc(4), // expired REST credential
        alloc(3), // valid REST credential
        AdvanceSecs { secs: 3_700 },
        alloc(3), // now expired
        Raw {
            from: 9,
            to: 0,
            transport: 0,
            headroom: 0,
            data: vec![
                0, 3, 0, 0, 0x21, 0x12, 0xa4, 0x42, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
            ],
        },
        Mutate {
            which: 3,
            flips: vec![(24, 1)],
            from: 5,
        },
    ]);
    let driver = vec![
        alloc(0),
        RelayBound { which: 0, ok: true },
        Request {
            client: 1,
            req: Req::Allocate {
                family: 0,
                additional: true,
                even_port: 0,
                token: false,
                lifetime: 1200,
                dont_fragment: false,
                tcp: false,
            },
            sign: Sign::Valid,
        },
        RelayBound {
            which: 0,
            ok: false,
        },
        Advance { ms: 6_000 },
        Request {
            client: 2,
            req: Req::Allocate {
                family: 0,
                additional: false,
                even_port: 2,
                token: false,
                lifetime: 0,
                dont_fragment: true,
                tcp: false,
            },
            sign: Sign::Valid,
        },
        RelayBound { which: 0, ok: true },
        Request {
            client: 2,
            req: Req::Allocate {
                family: 0,
                additional: false,
                even_port: 0,
                token: true,
                lifetime: 0,
                dont_fragment: false,
                tcp: false,
            },
            sign: Sign::Valid,
        },
        RelayBound { which: 0, ok: true },
        Request {
            client: 2,
            req: Req::Binding,
            sign: Sign::None,
        },
    ];
    let sessions = [
        ("relay-both-ways", base.clone(), relay),
        ("denied-peers", base.clone(), denied),
        ("quotas", base.clone(), quotas),
        ("bad-authentication-and-expiry", base.clone(), bad_auth),
        (
            "driver-binds-dual-even-port",
            ts::Input {
                driver_binds: true,
                dont_fragment: false,
                userhash: true,
                ..base.clone()
            },
            driver,
        ),
    ];
    sessions
        .into_iter()
        .map(|(name, input, ops)| seed("turn_server", name, encode(&ts::Input { ops, ..input })))
        .collect()
}

fn ice_seeds() -> Vec<Seed> {
    use ice::Attack as A;
    use ice::Op::*;
    let setup = ice::Setup {
        a_controlling: true,
        b_controlling: false,
        b_lite: false,
        streams: 0,
        components: 0,
        dual_stack: false,
        early_credentials: true,
        ta: 45,
        seed: 1,
    };
    let connect = vec![
        Flush,
        Advance(60),
        Flush,
        Advance(60),
        Flush,
        Advance(1_100),
        Flush,
        Advance(100),
        Flush,
        Send { who: 0, len: 100 },
        Send { who: 1, len: 100 },
        Flush,
    ];
    let mut attacked = connect.clone();
    attacked.extend([
        ice::Op::Attack {
            to: 0,
            from: 2,
            attack: A::Check {
                signed: true,
                use_candidate: true,
            },
        },
        ice::Op::Attack {
            to: 1,
            from: 3,
            attack: A::Check {
                signed: false,
                use_candidate: false,
            },
        },
        ice::Op::Attack {
            to: 0,
            from: 0,
            attack: A::Response { signed: true },
        },
        ice::Op::Attack {
            to: 1,
            from: 10,
            attack: A::Replay(0),
        },
        ice::Op::Attack {
            to: 0,
            from: 18,
            attack: A::Replay(1),
        },
        ice::Op::Attack {
            to: 0,
            from: 26,
            attack: A::Raw(vec![0x80, 0x60, 0, 1, 2, 3]),
        },
        Advance(6_000),
        Flush,
        Advance(6_000),
        Flush,
    ]);
    let mut restart = connect.clone();
    restart.extend([
        Restart(0),
        Signal,
        Flush,
        Advance(100),
        Flush,
        Advance(1_100),
        Flush,
        Send { who: 0, len: 10 },
        Advance(31_000),
    ]);
    let lossy = vec![
        Signal,
        Advance(50),
        Drop(0),
        Advance(50),
        Duplicate(0),
        Corrupt {
            which: 0,
            at: 25,
            xor: 4,
        },
        Deliver(1),
        Advance(600),
        Flush,
        Candidate {
            to: 0,
            line: b"candidate:9 1 udp 2130706431 198.51.100.77 4000 typ host".to_vec(),
        },
        Advance(1_500),
        Flush,
        Advance(40_000),
    ];
    let sessions = [
        ("connect-and-send", setup.clone(), connect.clone()),
        ("attacked-while-connected", setup.clone(), attacked),
        ("restart", setup.clone(), restart),
        (
            "role-conflict-two-streams-dual-stack",
            ice::Setup {
                b_controlling: true,
                streams: 1,
                components: 1,
                dual_stack: true,
                ..setup.clone()
            },
            connect.clone(),
        ),
        (
            "lite-peer",
            ice::Setup {
                b_lite: true,
                ..setup.clone()
            },
            connect,
        ),
        (
            "lossy-late-credentials",
            ice::Setup {
                early_credentials: false,
                ..setup
            },
            lossy,
        ),
    ];
    sessions
        .into_iter()
        .map(|(name, setup, ops)| seed("ice_agents", name, encode(&ice::Input { setup, ops })))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_to_what_was_encoded() {
        use arbitrary::{Arbitrary, Unstructured};
        for s in turn_server_seeds() {
            let back = ts::Input::arbitrary_take_rest(Unstructured::new(&s.data)).unwrap();
            assert_eq!(encode(&back), s.data, "{}", s.name);
        }
        for s in turn_client_seeds() {
            let back = tc::Input::arbitrary_take_rest(Unstructured::new(&s.data)).unwrap();
            assert_eq!(encode(&back), s.data, "{}", s.name);
        }
        for s in ice_seeds() {
            let back = ice::Input::arbitrary_take_rest(Unstructured::new(&s.data)).unwrap();
            assert_eq!(encode(&back), s.data, "{}", s.name);
        }
        for s in transaction_seeds() {
            let back = tx::Input::arbitrary_take_rest(Unstructured::new(&s.data)).unwrap();
            assert_eq!(encode(&back), s.data, "{}", s.name);
        }
    }
}

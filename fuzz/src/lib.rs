//! The bodies of floe's fuzz targets, as a plain library.
//!
//! Each target is a module with `pub fn run(data: &[u8])`. The libFuzzer binaries in
//! `fuzz_targets/` call it, and so does the stable replay test
//! (`tests/tests/fuzz_corpus.rs` in `floe-tests`), which runs every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same code: one copy of
//! the logic, exercised by every `cargo test`.
//!
//! A target fails by panicking: an assertion of one of the invariants below, or a panic
//! inside the protocol crates. [`TARGETS`] lists them; `docs/FUZZING.md` explains each
//! invariant and how to run the fuzzers.
//!
//! The stateful targets decode their input as a sequence of operations (datagrams,
//! timeouts, commands) through [`arbitrary::Arbitrary`] impls written by hand in
//! [`ops`], so that [`seeds`] can also *encode* meaningful sessions into seed files.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![allow(clippy::disallowed_methods)] // Instant::now() as the origin of virtual clocks

pub mod channel_data;
pub mod clock;
pub mod framing;
pub mod ice_agents;
pub mod ops;
pub mod sdp;
pub mod seeds;
pub mod stun_parse;
pub mod transactions;
pub mod turn_client;
pub mod turn_server;

/// A fuzz target: its name (the `fuzz_targets/<name>.rs` binary and the
/// `fuzz/corpus/<name>/` directory) and its body.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// The body: panics on a violated invariant.
    pub run: fn(&[u8]),
    /// What the input means to the target (the decoded operations), for bug reports.
    pub describe: fn(&[u8]) -> String,
}

/// Every target, in the order `.ci/run` fuzzes them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "stun_parse",
        run: stun_parse::run,
        describe: describe_bytes,
    },
    Target {
        name: "framing",
        run: framing::run,
        describe: describe_bytes,
    },
    Target {
        name: "channel_data",
        run: channel_data::run,
        describe: describe_bytes,
    },
    Target {
        name: "sdp",
        run: sdp::run,
        describe: describe_bytes,
    },
    Target {
        name: "transactions",
        run: transactions::run,
        describe: describe::<transactions::Input>,
    },
    Target {
        name: "turn_client",
        run: turn_client::run,
        describe: describe::<turn_client::Input>,
    },
    Target {
        name: "turn_server",
        run: turn_server::run,
        describe: describe::<turn_server::Input>,
    },
    Target {
        name: "ice_agents",
        run: ice_agents::run,
        describe: describe::<ice_agents::Input>,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// The decoded operations of a stateful target's input.
fn describe<T: for<'a> arbitrary::Arbitrary<'a> + core::fmt::Debug>(data: &[u8]) -> String {
    match T::arbitrary_take_rest(arbitrary::Unstructured::new(data)) {
        Ok(input) => format!("{input:#?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}

/// The input of a stateless target, as text where it is text.
fn describe_bytes(data: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(data))
}

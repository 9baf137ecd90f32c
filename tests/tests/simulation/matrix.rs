//! The NAT matrix: every pair of NAT types, clean, with 10% and with 30% loss.

use std::time::Duration;

use floe_tests::sim::{
    Cell, MATRIX_SEED, MESSAGES, NatKind, PathType, Profile, cells, derive_seed, predicted,
    run_all, run_cell, run_matrix, run_tcp_all, simulation_md,
};

/// Everything wrong with a cell, empty when it is right.
fn problems(
    profile: &Profile,
    c: &Cell,
    min_delivered: usize,
    max_connect: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let name = format!("{} / {} ({})", c.a, c.b, profile.name);
    let Some(t) = c.connected_after else {
        return vec![format!("{name}: did not connect")];
    };
    if t > max_connect {
        out.push(format!(
            "{name}: connected after {t:?}, more than {max_connect:?}"
        ));
    }
    match c.path {
        None => out.push(format!(
            "{name}: the agents disagree on the path: {:?}",
            c.seen
        )),
        Some(p) if !c.acceptable(profile).contains(&p) => out.push(format!(
            "{name}: selected {p}, expected {} (accepted: {:?})",
            c.predicted,
            c.acceptable(profile)
        )),
        Some(_) => {}
    }
    if !c.signal_errors.is_empty() {
        out.push(format!("{name}: signalling refused: {:?}", c.signal_errors));
    }
    let Some(e) = c.exchange else {
        out.push(format!("{name}: no data exchanged"));
        return out;
    };
    if e.sent_by_a != MESSAGES || e.sent_by_b != MESSAGES {
        out.push(format!("{name}: the agents refused to send: {e:?}"));
    }
    if e.received_by_a < min_delivered || e.received_by_b < min_delivered {
        out.push(format!("{name}: too little data arrived: {e:?}"));
    }
    if e.off_path != 0 {
        out.push(format!(
            "{name}: data from another address than the selected pair's: {e:?}"
        ));
    }
    if c.path == Some(PathType::Relay)
        && e.relayed_packets < (e.received_by_a + e.received_by_b) as u64
    {
        out.push(format!(
            "{name}: a relayed pair, but the TURN server relayed less: {e:?}"
        ));
    }
    out
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_prediction_is_rfc_4787() {
    use NatKind::*;
    for a in NatKind::ALL {
        for b in NatKind::ALL {
            assert_eq!(predicted(a, b), predicted(b, a), "{a} / {b}");
        }
    }
    assert_eq!(predicted(None, None), PathType::Host);
    assert_eq!(predicted(FullCone, PortRestricted), PathType::Srflx);
    assert_eq!(predicted(None, Symmetric), PathType::Prflx);
    assert_eq!(predicted(RestrictedCone, Symmetric), PathType::Prflx);
    assert_eq!(predicted(PortRestricted, Symmetric), PathType::Relay);
    assert_eq!(predicted(Symmetric, Symmetric), PathType::Relay);
    assert_eq!(cells().len(), 15);
}

/// Clean network: every cell connects on exactly the predicted path, in both orientations
/// (the more permissive NAT on the controlling or on the controlled side), and all data
/// arrives over the selected pair; the relay carries the data of relayed cells only.
#[test]
fn clean_network_every_cell_selects_the_predicted_path() {
    let profile = Profile::clean();
    let mut found = Vec::new();
    let mut ordered: Vec<(NatKind, NatKind)> = cells();
    ordered.extend(
        cells()
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (b, a)),
    );
    assert_eq!(ordered.len(), 25);
    for (k, (a, b)) in ordered.into_iter().enumerate() {
        let c = run_cell(a, b, &profile, derive_seed(MATRIX_SEED, 100 + k as u64));
        found.extend(problems(&profile, &c, MESSAGES, Duration::from_secs(2)));
        if c.path != Some(c.predicted) {
            found.push(format!(
                "{a} / {b}: {:?} is not exactly {}",
                c.path, c.predicted
            ));
        }
        if let (Some(e), false) = (c.exchange, c.predicted == PathType::Relay) {
            if e.relayed_packets != 0 {
                found.push(format!(
                    "{a} / {b}: a direct path, yet the relay carried {e:?}"
                ));
            }
        }
        if c.predicted == PathType::Host && c.connected_after > Some(Duration::from_millis(500)) {
            found.push(format!(
                "{a} / {b}: host to host took {:?}",
                c.connected_after
            ));
        }
    }
    assert_no_problems(found);
}

/// 300 ms RTT, 10% loss, jitter, reordering, duplication: every cell still connects, on the
/// predicted path or through the relay, and most data arrives.
#[test]
fn ten_percent_loss_every_cell_connects() {
    let profile = Profile::matrix()[1].clone();
    assert_eq!(profile.loss, 0.10);
    let found = run_matrix(&profile, MATRIX_SEED)
        .iter()
        .flat_map(|c| problems(&profile, c, 14, Duration::from_secs(15)))
        .collect();
    assert_no_problems(found);
}

/// The same with 30% loss.
#[test]
fn thirty_percent_loss_every_cell_connects() {
    let profile = Profile::matrix()[2].clone();
    assert_eq!(profile.loss, 0.30);
    let cells = run_matrix(&profile, MATRIX_SEED);
    let found = cells
        .iter()
        .flat_map(|c| problems(&profile, c, 8, Duration::from_secs(30)))
        .collect();
    assert_no_problems(found);
    // Loss makes connecting slower, never faster, on average.
    let clean = run_matrix(&Profile::clean(), MATRIX_SEED);
    let total =
        |cells: &[Cell]| -> Duration { cells.iter().filter_map(|c| c.connected_after).sum() };
    assert!(
        total(&cells) > total(&clean),
        "{:?} vs {:?}",
        total(&cells),
        total(&clean)
    );
}

/// `docs/SIMULATION.md` is what `cargo run -p floe-tests --example matrix` writes today.
#[test]
fn simulation_md_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SIMULATION.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = simulation_md(&run_all(), &run_tcp_all());
    assert!(
        committed == generated,
        "docs/SIMULATION.md is out of date: run `cargo run -p floe-tests --example matrix`"
    );
}

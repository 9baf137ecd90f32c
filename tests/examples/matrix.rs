//! Runs the NAT traversal matrix in simulation and writes `docs/SIMULATION.md`.
//!
//! ```sh
//! cargo run -p floe-tests --example matrix            # rewrite docs/SIMULATION.md
//! cargo run -p floe-tests --example matrix -- --stdout # print it instead
//! ```

use floe_tests::sim::{run_all, run_tcp_all, simulation_md};

fn main() -> std::io::Result<()> {
    let text = simulation_md(&run_all(), &run_tcp_all());
    if std::env::args().any(|a| a == "--stdout") {
        print!("{text}");
        return Ok(());
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SIMULATION.md");
    std::fs::write(path, &text)?;
    eprintln!("wrote {path}");
    Ok(())
}

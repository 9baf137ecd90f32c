//! Prints what a fuzz input means to its target:
//! `cargo run --example describe -- <target> <file>`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: describe <target> <file>");
        std::process::exit(2);
    };
    let target = floe_fuzz::target(name).unwrap_or_else(|| panic!("no target {name}"));
    let data = std::fs::read(path).expect("readable file");
    println!("{}", (target.describe)(&data));
    if std::env::args().any(|a| a == "--run") {
        (target.run)(&data);
        println!("no invariant violated");
    }
}

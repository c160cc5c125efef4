//! Rebuild when a scenario changes: they are embedded in the binary.

fn main() {
    println!("cargo:rerun-if-changed=scenarios");
}

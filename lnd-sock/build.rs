//! lnd-sock's integration tests link two plugin crates: lnd-sock itself and,
//! through the shared test support (`lnet-tests`, whose simulated fabric
//! stacks lnd-fault's filter in process), lnd-fault. Each exports abi_stable's
//! root-module symbol, which only matters in the `.so` a host opens; in a
//! test binary either copy will do, so the linker is told to keep the first.
fn main() {
    println!("cargo:rustc-link-arg-tests=-Wl,--allow-multiple-definition");
}

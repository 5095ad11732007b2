fn main() {
    println!("neuroloop {}", env!("CARGO_PKG_VERSION"));
}

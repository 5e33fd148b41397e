// The Explorer's built UI (explorer/dist) is embedded with include_dir!, which cargo does not
// track: rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=explorer/dist");
}

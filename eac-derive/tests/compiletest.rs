//! Compile errors (`tests/ui/*.rs` with their `.stderr`) and expansions that must build
//! and run (`tests/ui/pass/*.rs`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}

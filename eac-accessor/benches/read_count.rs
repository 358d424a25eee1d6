//! N reads of one variant of the read path, for counting instructions per read under
//! callgrind: `benches/callgrind.sh` runs each variant with two N's and subtracts, so
//! that setup cancels out.
//!
//! ```text
//! eac-accessor/benches/callgrind.sh             # every variant, side by side
//! target/release/deps/read_count-… eac 100000   # one variant, N reads
//! ```
//!
//! Without a variant (as `cargo bench` and `cargo test --benches` run it), every
//! variant runs 1000 reads, as a smoke test; `variants` prints their names.

use std::hint::black_box;

mod peers;
use eac_accessor::resolve::ResolvedKey;
use peers::{Limits, PeerLimits};

/// Each variant reads `max_body_bytes` of the one section, as a user of it would.
const VARIANTS: &[&str] = &[
    "empty",
    "eac",
    "eac-resolved",
    "eac-resolved-key",
    "eac-cell",
    "eac-cached",
    "eac-cached-load",
    "eac-cached-section",
    "eac-20",
    "eac-load",
    "dynamic-config",
    "arcswap",
    "arcswap-full",
    "rwlock",
];

/// Runs `read` `n` times: one function per variant (the closure inlined into it), so
/// that each loop is the read and nothing else, compiled apart from the others.
#[inline(never)]
fn repeat(n: u64, mut read: impl FnMut() -> u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(black_box(read()));
    }
    sum
}

fn run(variant: &str, n: u64) -> u64 {
    let n = black_box(n);
    match variant {
        "empty" => repeat(n, || black_box(1024)),
        "eac" => {
            let (accessor, _doc) = peers::accessor();
            repeat(n, || accessor.load().section::<Limits>().max_body_bytes)
        }
        "eac-resolved" => {
            let (accessor, _doc) = peers::accessor();
            repeat(n, || {
                accessor
                    .load()
                    .resolved::<peers::MaxBody>()
                    .map_or(0, |m| m.0)
            })
        }
        "eac-resolved-key" => {
            static MAX_BODY: ResolvedKey<peers::MaxBody> = ResolvedKey::new();
            let (accessor, _doc) = peers::accessor();
            repeat(n, || {
                accessor.load().resolved_by(&MAX_BODY).map_or(0, |m| m.0)
            })
        }
        "eac-cell" => {
            let (accessor, _doc) = peers::accessor();
            let limits = accessor.section_cell::<Limits>();
            repeat(n, || limits.load().max_body_bytes)
        }
        "eac-cached" => {
            let (accessor, _doc) = peers::accessor();
            let mut reader = accessor.cached();
            repeat(n, || reader.load().section::<Limits>().max_body_bytes)
        }
        "eac-cached-load" => {
            let (accessor, _doc) = peers::accessor();
            let mut reader = accessor.cached();
            repeat(n, || reader.load().version())
        }
        "eac-cached-section" => {
            let (accessor, _doc) = peers::accessor();
            let mut limits = accessor.cached_section::<Limits>();
            repeat(n, || limits.load().max_body_bytes)
        }
        "eac-20" => {
            let accessor = peers::accessor_20();
            repeat(n, || accessor.load().section::<Limits>().max_body_bytes)
        }
        "eac-load" => {
            let (accessor, _doc) = peers::accessor();
            repeat(n, || black_box(accessor.load()).version())
        }
        "dynamic-config" => {
            let (_builder, _dir) = peers::peer();
            repeat(n, || PeerLimits::current().max_body_bytes)
        }
        "arcswap" => {
            let swap = peers::arcswap();
            repeat(n, || swap.load().limits.max_body_bytes)
        }
        "arcswap-full" => {
            let swap = peers::arcswap();
            repeat(n, || swap.load_full().limits.max_body_bytes)
        }
        "rwlock" => {
            let lock = peers::rwlock();
            repeat(n, || peers::rwlock_read(&lock).limits.max_body_bytes)
        }
        other => panic!("unknown variant `{other}`; one of {VARIANTS:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        [list] if list == "variants" => println!("{}", VARIANTS.join(" ")),
        [variant, n] => {
            let n = n.parse().expect("N, a number of reads");
            println!("{}", run(variant, n));
        }
        _ => {
            for variant in VARIANTS {
                assert!(run(variant, 1000) > 0, "{variant} read nothing");
            }
        }
    }
}

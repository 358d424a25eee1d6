#!/usr/bin/env bash
# What adopting eac costs a build: a clean `cargo build --release` of a minimal axum
# service on eac, against the same service on dynamic-config + dynamic-config-axum.
#
#   eac-accessor/benches/build_cost.sh              # two rounds, eac and the peer taking turns
#   RUNS=3 eac-accessor/benches/build_cost.sh
#   KEEP=1 eac-accessor/benches/build_cost.sh       # keep the generated crates (and their
#                                                   # targets) for `cargo tree`, `--timings`
#
# Both services are one binary: one section with one field read from `app.json`, one
# `GET /` route whose handler reads that field through the section's extractor, the
# snapshot layer on the router, `axum::serve` on a tokio runtime. The eac one uses
# `eac-accessor` and `eac-tower` from this repository as path dependencies, default
# features, with `#[derive(EaCSection)]`, `EaCLayer` and `Section<T>`; the peer uses
# `dynamic-config` and `dynamic-config-axum` from crates.io, default features, pinned to
# the versions the workspace benchmarks against (eac-tower/benches/axum_count.rs). Both
# take axum, tokio and serde from crates.io with the same features.
#
# No lockfile is shipped: each crate resolves its own dependencies once, in `cargo fetch`
# (so download time is not counted), and every build after that is `--offline` against
# that resolution. Each has its own target directory in a temp folder; each round deletes
# it and times a clean build, eac then the peer, then the next round in the other order.
# Printed: wall seconds and the number of crates compiled (cargo's `Compiling` lines) per
# build, then the medians and the median of the rounds' ratios (eac / peer). The machine
# is shared: the ratio of builds run side by side moves less than the seconds.
set -euo pipefail

RUNS=${RUNS:-2}
# The peer's versions, as in the workspace's Cargo.lock.
DC_VERSION=${DC_VERSION:-0.10.0}
DC_AXUM_VERSION=${DC_AXUM_VERSION:-0.3.2}

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/eac-build-cost.XXXXXX")
if [ -n "${KEEP:-}" ]; then
    echo "keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

# Nothing from the caller's environment may change what is built or where.
unset CARGO_TARGET_DIR RUSTC_WRAPPER RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_INCREMENTAL
export CARGO_TERM_COLOR=never

common_deps='axum = "0.8"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "net"] }
serde = { version = "1", features = ["derive"] }'

mkdir -p "$work/eac/src" "$work/peer/src"

cat >"$work/eac/Cargo.toml" <<EOF
[package]
name = "build-cost-eac"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
eac-accessor = { path = "$root/eac-accessor" }
eac-tower = { path = "$root/eac-tower" }
schemars = "1"
$common_deps

[workspace]
EOF
cat >"$work/eac/src/main.rs" <<'EOF'
use axum::{Router, routing::get};
use eac_accessor::prelude::*;
use eac_tower::{EaCLayer, Section};

#[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
struct Limits {
    max_body_bytes: u64,
}

async fn limit(limits: Section<Limits>) -> String {
    limits.max_body_bytes.to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = EaCAccessor::builder()
        .section::<Limits>()
        .source(File::new("app.json"))
        .build()?;
    let app = Router::new()
        .route("/", get(limit))
        .layer(EaCLayer::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
EOF

cat >"$work/peer/Cargo.toml" <<EOF
[package]
name = "build-cost-peer"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
dynamic-config = "=$DC_VERSION"
dynamic-config-axum = "=$DC_AXUM_VERSION"
$common_deps

[workspace]
EOF
cat >"$work/peer/src/main.rs" <<'EOF'
use axum::{Router, routing::get};
use dynamic_config::dynamic_config;
use dynamic_config_axum::{Config, SnapshotLayer, sections};

#[dynamic_config]
#[derive(serde::Deserialize)]
struct Limits {
    max_body_bytes: u64,
}

async fn limit(Config(limits): Config<Limits>) -> String {
    limits.max_body_bytes.to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Limits::builder("limits").file("app.json").init()?;
    let app = Router::new()
        .route("/", get(limit))
        .layer(SnapshotLayer::new(sections![Limits]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
EOF

for side in eac peer; do
    (cd "$work/$side" && cargo fetch --quiet)
done

declare -A secs crates
build() { # side round → prints "secs crates"; fails with cargo's output on a failed build
    local dir=$work/$1 log=$work/$1.log start end
    rm -rf "$dir/target"
    start=$(date +%s.%N)
    if ! (cd "$dir" && cargo build --release --offline) >"$log" 2>&1; then
        cat "$log" >&2
        echo "the $1 service did not build" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    secs[$1,$2]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    crates[$1,$2]=$(grep -c '^ *Compiling ' "$log")
    printf '  round %d  %-4s  %6s s  %3d crates\n' "$2" "$1" "${secs[$1,$2]}" "${crates[$1,$2]}"
}

median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "clean cargo build --release of a minimal axum service, $RUNS round(s), $(nproc) cores"
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then order=(eac peer); else order=(peer eac); fi
    for side in "${order[@]}"; do build "$side" "$r"; done
done

eac_secs=$(for ((r = 1; r <= RUNS; r++)); do echo "${secs[eac,$r]}"; done | median)
peer_secs=$(for ((r = 1; r <= RUNS; r++)); do echo "${secs[peer,$r]}"; done | median)
ratio=$(for ((r = 1; r <= RUNS; r++)); do
    awk -v a="${secs[eac,$r]}" -v b="${secs[peer,$r]}" 'BEGIN { print a / b }'
done | median)
echo "eac  (eac-accessor + eac-tower):               median $eac_secs s, ${crates[eac,1]} crates"
echo "peer (dynamic-config $DC_VERSION + -axum $DC_AXUM_VERSION): median $peer_secs s, ${crates[peer,1]} crates"
echo "ratio eac / peer (median of the rounds' ratios): $ratio"

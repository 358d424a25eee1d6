#!/usr/bin/env bash
# What adopting eac costs a build: a clean `cargo build --release` of a minimal axum
# service on eac, against the same service on dynamic-config + dynamic-config-axum.
#
#   eac-accessor/benches/build_cost.sh              # two rounds, eac and the peer taking turns
#   RUNS=3 eac-accessor/benches/build_cost.sh
#   EAC_BEFORE=c775187 eac-accessor/benches/build_cost.sh   # and eac as of that commit
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
# take axum, tokio and serde from crates.io with the same features. With EAC_BEFORE, a
# third service (`before`) is the eac one on eac's crates as of that commit (`git
# archive` into the temp folder), built in the same rounds: a change's before and after,
# each against the peer under the same load.
#
# No lockfile is shipped: each crate resolves its own dependencies once, in `cargo fetch`
# (so download time is not counted), and every build after that is `--offline` against
# that resolution. Each has its own target directory in a temp folder; each round deletes
# it and times a clean build of each service, the next round in the reverse order.
# Printed: wall and CPU seconds (user + system, cargo and every rustc) and the number of
# crates compiled (cargo's `Compiling` lines) per build, then the medians and the median
# of the rounds' ratios (eac / peer). The machine is shared: the ratio of builds run side
# by side moves less than the seconds, and CPU seconds move less with the load than wall
# seconds, since another job's share of the cores does not count in them.
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

eac_service() { # name, root of the eac repository it builds on
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<EOF
[package]
name = "build-cost-$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
eac-accessor = { path = "$2/eac-accessor" }
eac-tower = { path = "$2/eac-tower" }
schemars = "1"
$common_deps

[workspace]
EOF
    cat >"$work/$1/src/main.rs" <<'EOF'
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
}

peer_service() {
    mkdir -p "$work/peer/src"
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
}

sides=(eac peer)
eac_service eac "$root"
peer_service
if [ -n "${EAC_BEFORE:-}" ]; then
    mkdir -p "$work/before-src"
    git -C "$root" archive "$EAC_BEFORE" | tar -x -C "$work/before-src"
    eac_service before "$work/before-src"
    sides+=(before)
fi

for side in "${sides[@]}"; do
    (cd "$work/$side" && cargo fetch --quiet)
done

declare -A secs cpu crates
build() { # side round → records wall and CPU seconds and crates; fails with cargo's output
    local dir=$work/$1 log=$work/$1.log times wall user sys
    rm -rf "$dir/target"
    if ! times=$( { TIMEFORMAT='%R %U %S'; time (cd "$dir" && cargo build --release --offline >"$log" 2>&1); } 2>&1 ); then
        cat "$log" >&2
        echo "the $1 service did not build" >&2
        exit 1
    fi
    read -r wall user sys <<<"$times"
    secs[$1,$2]=$wall
    cpu[$1,$2]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
    crates[$1,$2]=$(grep -c '^ *Compiling ' "$log")
    printf '  round %d  %-6s  %6.1f s wall  %6.1f s CPU  %3d crates\n' \
        "$2" "$1" "${secs[$1,$2]}" "${cpu[$1,$2]}" "${crates[$1,$2]}"
}

median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
each() { # array side → that side's figures, one a line
    local -n figures=$1
    for ((r = 1; r <= RUNS; r++)); do echo "${figures[$2,$r]}"; done
}
ratios() { # array side → side / peer of each round, one a line
    local -n figures=$1
    for ((r = 1; r <= RUNS; r++)); do
        awk -v a="${figures[$2,$r]}" -v b="${figures[peer,$r]}" 'BEGIN { print a / b }'
    done
}
summary() { # side label
    printf '%-40s median %6.1f s wall, %6.1f s CPU, %3d crates\n' "$2" \
        "$(each secs "$1" | median)" "$(each cpu "$1" | median)" "${crates[$1,1]}"
    [ "$1" = peer ] ||
        echo "  $1 / peer, median of the rounds' ratios: $(ratios secs "$1" | median) wall, $(ratios cpu "$1" | median) CPU"
}

echo "clean cargo build --release of a minimal axum service, $RUNS round(s), $(nproc) cores"
for ((r = 1; r <= RUNS; r++)); do
    order=("${sides[@]}")
    if ((r % 2 == 0)); then
        for ((i = 0; i < ${#sides[@]}; i++)); do order[i]=${sides[${#sides[@]} - 1 - i]}; done
    fi
    for side in "${order[@]}"; do build "$side" "$r"; done
done

summary peer "peer (dynamic-config $DC_VERSION + -axum $DC_AXUM_VERSION):"
summary eac "eac (eac-accessor + eac-tower):"
[ -z "${EAC_BEFORE:-}" ] || summary before "eac as of $EAC_BEFORE:"

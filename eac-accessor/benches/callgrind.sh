#!/usr/bin/env bash
# Instructions per operation of each variant of a counting bench, under callgrind.
#
#   eac-accessor/benches/callgrind.sh [PACKAGE BENCH] [variant…]
#
#   eac-accessor/benches/callgrind.sh                            # reads: eac vs peers
#   eac-accessor/benches/callgrind.sh eac-tower layer_count      # EaCLayer vs AddExtension
#
# Each variant runs twice, with N1 and N2 operations, from one build;
# (instructions(N2) − instructions(N1)) / (N2 − N1) is the cost of one operation, with
# the setup (building the accessor, reading files, valgrind's own start) cancelled out.
# Instruction counts are deterministic: unlike wall-clock time, they do not move with
# the load of the machine. Installs valgrind from Debian when it is missing.
set -euo pipefail

N1=${N1:-100000}
N2=${N2:-200000}
package=eac-accessor
bench=read_count
if [ $# -ge 2 ] && [[ "$1" == eac-* ]]; then
    package=$1 bench=$2
    shift 2
fi

if ! command -v valgrind >/dev/null; then
    echo "valgrind missing: installing it from Debian" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind >&2
fi

cd "$(dirname "$0")/../.."
bin=$(cargo bench -p "$package" --bench "$bench" --no-run --message-format=json 2>/dev/null |
    sed -n "s/.*\"executable\":\"\([^\"]*\/$bench-[^\"]*\)\".*/\1/p" | tail -1)
[ -x "$bin" ] || { echo "could not build $package's bench $bench" >&2; exit 1; }

count() { # variant n → instructions collected
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

variants=("$@")
[ ${#variants[@]} -eq 0 ] && read -r -a variants <<<"$("$bin" variants)"

echo "$package $bench: instructions per operation, ($N2 − $N1 runs) under callgrind"
for v in "${variants[@]}"; do
    a=$(count "$v" "$N1")
    b=$(count "$v" "$N2")
    awk -v v="$v" -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "  %-20s %10.1f\n", v, (b - a) / (n2 - n1) }'
done

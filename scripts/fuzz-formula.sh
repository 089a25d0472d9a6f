#!/usr/bin/env bash
# Fuzzes the formula parser and evaluator (fuzz/fuzz_targets/formula_parse.rs) with cargo-fuzz.
#
#   scripts/fuzz-formula.sh [SECONDS]     default 600
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them.
# Crashes are written to fuzz/artifacts/formula_parse/; the corpus grows in fuzz/corpus/.
set -euo pipefail

seconds="${1:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

corpus="$root/fuzz/corpus/formula_parse"
mkdir -p "$corpus"
# Seed the corpus with a few real formulas so the fuzzer starts from valid syntax.
seeds=(
    'IF({Price} > 10, "expensive", "cheap")'
    'DATETIME_FORMAT(DATEADD({Due}, 1, "months"), "dddd, MMMM Do YYYY")'
    "SWITCH({Name}, 'Widget', 1, 'Gadget', 2, 0) & ARRAYJOIN({Tags}, '|')"
    'REGEX_REPLACE(LOWER({Name}), "[aeiou]+", "$0$0")'
    'ROUND(SUM({Price}, 2.5e1, -3) / 7, 2) = VALUE("$1,000")'
    'AND({Done}, NOT({Empty}), IS_BEFORE({Due}, TODAY()), DATETIME_DIFF(NOW(), {Due}, "w"))'
)
for i in "${!seeds[@]}"; do
    printf '%s' "${seeds[$i]}" > "$corpus/seed-$i"
done

cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 cargo fuzz run formula_parse "$corpus" -- \
    -max_total_time="$seconds" -max_len=512 -timeout=10 -rss_limit_mb=2048

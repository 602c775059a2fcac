#!/usr/bin/env bash
# Accuracy of two train-head variants, per seed, side by side: the run's evaluate accuracy on
# its default split (validation, else test), with the chunk count a memory budget gave.
#   tools/head_accuracy.sh NAME_A 'FLAGS_A' NAME_B 'FLAGS_B' [FLAGS FOR BOTH...]
# Held against chunked (issue 26's "within noise"):
#   tools/head_accuracy.sh held '' chunked '--memory-budget 1.3MiB' --features F.h5
# f32 against f16 features of the same images:
#   tools/head_accuracy.sh f32 '--features F32.h5' f16 '--features F16.h5'
set -euo pipefail
name_a=$1 flags_a=$2 name_b=$3 flags_b=$4
shift 4
imgclf=${IMGCLF:-target/debug/imgclf}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
accuracy() { "$imgclf" evaluate --run "$1" --top 0 | sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' | head -1; }
chunks() { sed -n 's/.* in \([0-9]*\) chunks of.*/\1 chunks/p' "$1" | grep . || echo held; }
printf '%-5s %-18s %-18s\n' seed "$name_a" "$name_b"
for seed in 0 1 2; do
    # shellcheck disable=SC2086 # the variants' flags are word-split on purpose
    "$imgclf" train-head --out "$out/a$seed" --seed "$seed" $flags_a "$@" >/dev/null 2>"$out/a.log"
    # shellcheck disable=SC2086
    "$imgclf" train-head --out "$out/b$seed" --seed "$seed" $flags_b "$@" >/dev/null 2>"$out/b.log"
    printf '%-5s %-18s %-18s\n' "$seed" "$(accuracy "$out/a$seed") ($(chunks "$out/a.log"))" \
        "$(accuracy "$out/b$seed") ($(chunks "$out/b.log"))"
done

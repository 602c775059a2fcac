#!/usr/bin/env bash
# Graph compatibility of ONNX backbones: each MODELS_DIR/*.onnx (with its spec) runs through
# both engines on 16 photos of DATA's train split; prints images/s per engine and the
# largest relative difference between the two engines' feature vectors.
#   tools/compat.sh backbones ../shared/data/cats_dogs
set -euo pipefail
models=${1:?models folder}; data=$(cd "${2:?data root}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
imgclf="$root/target/debug/imgclf"
python="$root/.venv/bin/python"
export VIRTUAL_ENV=${VIRTUAL_ENV:-$root/.venv}   # where imgclf finds ONNX Runtime
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for class in "$data"/train/*/; do
    dest="$work/data/train/$(basename "$class")"
    mkdir -p "$dest"
    photos=("$class"*)
    for f in "${photos[@]:0:8}"; do ln -s "$f" "$dest/"; done
done
printf '%-14s %-8s %-12s %s\n' model engine images/s result
for model in "$models"/*.onnx; do
    name=$(basename "$model" .onnx)
    for engine in ort tract; do
        if out=$("$imgclf" extract --data "$work/data" --model "$model" --out "$work/$engine" --engine "$engine" --batch 8 --force 2>&1); then
            rate=$(grep -o '([0-9.]* images/s' <<<"$out" | tr -d '(' | cut -d' ' -f1)
            printf '%-14s %-8s %-12s %s\n' "$name" "$engine" "$rate" ok
        else
            printf '%-14s %-8s %-12s %s\n' "$name" "$engine" - "FAILED: $(tail -1 <<<"$out")"
        fi
    done
    "$python" - "$work"/ort/gap_*.h5 "$work"/tract/gap_*.h5 <<'PY' || true
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["train"][:] for p in sys.argv[1:3])
rel = (np.abs(a - b).max(1) / np.abs(a).max(1)).max()
print(f"{'':14s} ort vs tract: max relative difference {rel:.1e}")
PY
    rm -f "$work"/ort/gap_*.h5 "$work"/tract/gap_*.h5
done

#!/usr/bin/env bash
# The cost curve at scale, side by side, printed as a table (issue 26): `./just bench-scale`.
#   tools/bench_scale.sh [--images "10000 100000"] [--kill N] [--rows "100000 1000000"] [--work DIR]
#                        [--only "extract heads probe"]
# 1. extract: a corpus of N distinct JPEGs made from ../shared's cats_dogs photos
#    (tools/make_corpus.py) through EfficientNet-Lite0: seconds, images/s, peak RSS per N; then a
#    SIGKILL at 70% of the run over N images (--kill, default the smallest N) and its rerun
#    (tools/kill_rework.sh, 30 s checkpoints).
# 2. heads: three feature files of R rows x 1,280 (real Lite0 rows of cats_dogs repeated with
#    seeded noise; crates/features/examples/scale_features.rs) joined by train-head: seconds per
#    epoch and peak RSS at the default memory budget, evaluate's likewise, and beside them the
#    tutorial's Python recipe (tools/bench_scale_peer.py: h5py [:] + numpy), capped at 20 GiB of
#    address space so that it fails with "out of memory" instead of waking the OOM killer.
# 3. probe: the same files through the L-BFGS probe (train-head --c 1 --max-iter 5) at the
#    default memory budget: seconds per iteration (each about one pass over the files) and peak RSS.
# Everything is written under --work (default /tmp/imgclf-scale), outside the repository.
set -euo pipefail
images="10000 100000" rows="100000 1000000" work=/tmp/imgclf-scale kill= only="extract heads probe"
while [ $# -gt 0 ]; do
    case $1 in
        --images) images=$2; shift 2 ;;
        --rows) rows=$2; shift 2 ;;
        --kill) kill=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
. "$(dirname "$0")/bench_common.sh"

if [[ " $only " == *" extract "* ]]; then
echo "## extract: EfficientNet-Lite0 over N distinct JPEGs ($(nproc) cores)"
printf '%-9s %-10s %-10s %-12s\n' images seconds images/s "peak RSS MB"
for n in $images; do
    corpus=$work/corpus-$n
    [ -f "$corpus/.done" ] || { "$python" tools/make_corpus.py "$shared/data/cats_dogs" "$n" "$corpus" >/dev/null && touch "$corpus/.done"; }
    read -r secs mb < <(timed "$imgclf" extract --data "$corpus" --model "$model" --out "$work/features-$n" --force)
    printf '%-9s %-10s %-10.1f %-12s\n' "$n" "$secs" "$(echo "$n / $secs" | bc -l)" "$mb"
done
kill=${kill:-$(echo "$images" | tr ' ' '\n' | sort -n | head -1)}
echo "SIGKILL at 70% of $kill images, then the same command:"
IMGCLF=$imgclf tools/kill_rework.sh "$work/corpus-$kill" "$model" 30 0.7

fi

rows_files() { # R -> the folder of three files of R rows
    local dir=$work/rows-$1
    [ -f "$dir/.done" ] || { target/debug/examples/scale_features "$source" "$1" "$dir" 3 >/dev/null && touch "$dir/.done"; }
    echo "$dir"
}
cargo build -q -p imgclf-features --example scale_features
source=$work/source/gap_EfficientNet-Lite0.h5
[ -f "$source" ] || "$imgclf" extract --data "$shared/data/cats_dogs" --model "$model" --out "$work/source" >/dev/null 2>&1

if [[ " $only " == *" heads "* ]]; then
echo
echo "## heads: three files of R rows x 1,280 joined (3,840 features; real Lite0 rows of cats_dogs repeated with seeded noise)"
printf '%-9s %-22s %-22s %-40s\n' rows "train-head s/epoch, MB" "evaluate s, MB" "Python (h5py [:] + numpy): load, epoch, MB"
for r in $rows; do
    dir=$(rows_files "$r")
    read -r _ train_mb < <(timed "$imgclf" train-head --features "$dir"/gap_*.h5 --out "$work/run-$r" --epochs 1 --force)
    epoch=$(tail -1 "$work/run-$r/history.csv" | cut -d, -f6)
    read -r eval_s eval_mb < <(timed "$imgclf" evaluate --run "$work/run-$r" --top 0)
    peer=$(prlimit --as=$((20 << 30)) "$python" tools/bench_scale_peer.py "$dir"/gap_*.h5 2>&1 | tail -1)
    printf '%-9s %-22s %-22s %-40s\n' "$r" "$(printf '%.1f s, %s MB' "$epoch" "$train_mb")" "$eval_s s, $eval_mb MB" "$peer"
done
fi

if [[ " $only " == *" probe "* ]]; then
echo
echo "## probe: the same files, train-head --c 1 --max-iter 5 (L-BFGS, default memory budget)"
printf '%-9s %-16s %-12s %-12s\n' rows "s/iteration" iterations "peak RSS MB"
for r in $rows; do
    dir=$(rows_files "$r")
    read -r _ mb < <(timed "$imgclf" train-head --features "$dir"/gap_*.h5 --out "$work/probe-$r" --c 1 --max-iter 5 --force)
    per=$(tail -n +2 "$work/probe-$r/history.csv" | awk -F, '{s += $6; n++} END {printf "%.1f", s / n}')
    printf '%-9s %-16s %-12s %-12s\n' "$r" "$per" "$(tail -n +2 "$work/probe-$r/history.csv" | wc -l)" "$mb"
done
fi

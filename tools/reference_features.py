#!/usr/bin/env python3
"""Independent reference for imgclf's preprocessing: Pillow + numpy + onnxruntime, following
a model spec (the JSON beside the ONNX file) with no imgclf code involved.

  python3 tools/reference_features.py [--resized-only] [--save-resized DIR] MODEL.onnx IMAGE...

Prints one JSON object per image: {"path", "gap": [...D floats], "top1": int or null,
"margin": top-1 minus top-2 softmax probability, or null}.
--resized-only: the images already have the model's input size; skip cropping and resizing.
--save-resized DIR: also save each Pillow-resized image as DIR/<index>.png.
`gap` is the global average pool of the spec's feature map (or its pooled output); `top1` is
the arg-max of a `logits` output when the model has one. Resizing uses Pillow with the spec's
interpolation and fit (centre crop `center_crop_then_resize`, else the whole image).
Needs numpy, pillow, onnxruntime.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
           "lanczos3": Image.LANCZOS, "lanczos": Image.LANCZOS}
NAMED = {  # scale -> (mean, std) on 0..255 pixels
    "caffe": ([103.939, 116.779, 123.68], [1, 1, 1]),
    "tf": ([127.5] * 3, [127.5] * 3),
    "torch": ([0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]),
    "unit": ([0] * 3, [255] * 3),
    "none": ([0] * 3, [1] * 3),
    "mean_std": ([0] * 3, [1] * 3),
}


def resize(img, inp):
    h, w = inp["size"]
    resize = inp.get("resize")
    policy, interp, frac = "resize", "bilinear", 0.875
    if isinstance(resize, dict):
        policy = resize.get("policy", policy)
        interp = resize.get("interpolation", interp)
        frac = resize.get("crop_fraction", frac)
    if policy.startswith("center_crop"):
        iw, ih = img.size
        c = int(frac * min(iw, ih))
        oy, ox = (ih - c + 1) // 2, (iw - c + 1) // 2
        img = img.crop((ox, oy, ox + c, oy + c))
    return img.resize((w, h), FILTERS[interp])


def normalize(img, inp):
    x = np.asarray(img, dtype=np.float32)
    mean, std = NAMED[inp["scale"]]
    unit = 255.0 if inp.get("pixel_range") == [0, 1] else 1.0
    mean = np.float32(np.array(inp.get("mean", mean)) * (unit if "mean" in inp else 1))
    std = np.float32(np.array(inp.get("std", std)) * (unit if "std" in inp else 1))
    if inp["color"].upper() == "BGR":
        x = x[..., ::-1]
    x = (x - mean) / std
    if inp["layout"].upper() == "NCHW":
        x = x.transpose(2, 0, 1)
    return x[None].astype(np.float32)


def main():
    args = sys.argv[1:]
    resized_only = "--resized-only" in args
    if resized_only:
        args.remove("--resized-only")
    save_dir = None
    if "--save-resized" in args:
        k = args.index("--save-resized")
        save_dir = args[k + 1]
        del args[k:k + 2]
    model, images = args[0], args[1:]
    spec = json.load(open(model.rsplit(".", 1)[0] + ".json"))
    inp, outs = spec["input"], spec["outputs"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for i, path in enumerate(images):
        img = Image.open(path).convert("RGB")
        if not resized_only:
            img = resize(img, inp)
        if save_dir:
            img.save(f"{save_dir}/{i}.png")
        res = dict(zip(names, sess.run(None, {inp["name"]: normalize(img, inp)})))
        if outs.get("pooled"):
            gap = res[outs["pooled"]["name"]][0]
        else:
            fmap = res[outs["features"]["name"]][0]
            layout = (outs["features"].get("layout") or inp["layout"]).upper()
            gap = fmap.mean(axis=(1, 2)) if layout == "NCHW" else fmap.mean(axis=(0, 1))
        top1 = margin = None
        if "logits" in res:
            logits = res["logits"][0].astype(np.float64)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            first, second = np.argsort(-p)[:2]
            top1, margin = int(first), float(p[first] - p[second])
        print(json.dumps({"path": path, "gap": [float(v) for v in gap], "top1": top1, "margin": margin}))


if __name__ == "__main__":
    main()

"""Export a torchvision backbone to ONNX with a spec beside it, for `imgclf --model`.

    python tools/export_torchvision.py --arch resnet50 [--weights DEFAULT|none] [--out-dir backbones]

writes backbones/<arch>.onnx and backbones/<arch>.json (the `torchvision-resnet50` preset of
`imgclf models add`). The graph has three outputs: `features`, the last conv map (N, 2048, 7,
7; what class activation maps weigh), `gap`, its global average pool (the feature rows), and
`logits` (N, 1000). Preprocessing stays outside the graph and is written in the spec: RGB,
ImageNet mean/std on 0-1 pixels, a centre crop of 224/256 resized to 224 (torchvision resizes
to 256 first, then crops: the same box, sampled once instead of twice). The batch dimension is
dynamic. `--weights DEFAULT` takes torchvision's ImageNet weights (downloaded into torch's
cache unless already there); `none` gives seeded random weights, enough for graph and speed
checks. Needs torch and torchvision (and onnx for the check at the end).
"""

import argparse
import hashlib
import inspect
import json
import pathlib

import torch
import torchvision

ARCHS = {
    # name: (constructor, weights enum, feature channels)
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights, 2048),
}


class Backbone(torch.nn.Module):
    """A torchvision ResNet with its last conv map, its pool and its logits as outputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        features = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        gap = torch.flatten(n.avgpool(features), 1)
        return features, gap, n.fc(gap)


def spec(arch, channels, weights):
    return {
        "name": f"{arch.capitalize().replace('net', 'Net')}-torchvision",
        "input": {
            "name": "input", "layout": "NCHW", "shape": ["batch", 3, 224, 224], "size": [224, 224],
            "color": "RGB", "scale": "torch",
            "resize": {"policy": "center_crop_then_resize", "crop_fraction": 0.875, "interpolation": "bilinear"},
        },
        "outputs": {
            "features": {"name": "features", "layout": "NCHW", "shape": ["batch", channels, 7, 7]},
            "pooled": {"name": "gap", "shape": ["batch", channels]},
            "logits": {"name": "logits", "shape": ["batch", 1000]},
        },
        "source": f"torchvision {torchvision.__version__} {arch}, weights {weights}, exported by tools/export_torchvision.py",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHS), default="resnet50")
    p.add_argument("--weights", default="DEFAULT", help="DEFAULT (ImageNet) or none (seeded random)")
    p.add_argument("--out-dir", default="backbones", type=pathlib.Path)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    make, weights_enum, channels = ARCHS[args.arch]
    torch.manual_seed(args.seed)
    weights = None if args.weights.lower() == "none" else weights_enum[args.weights]
    model = Backbone(make(weights=weights)).eval()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / f"{args.arch}.onnx"
    dummy = torch.zeros(2, 3, 224, 224)
    # the TorchScript exporter: torch >= 2.9 defaults to dynamo, older ones have no such flag
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(
        model, dummy, str(onnx_path), input_names=["input"], output_names=["features", "gap", "logits"],
        dynamic_axes={name: {0: "batch"} for name in ["input", "features", "gap", "logits"]},
        opset_version=args.opset, **legacy,
    )
    with open(onnx_path.with_suffix(".json"), "w") as f:
        json.dump(spec(args.arch, channels, args.weights), f, indent=2)
        f.write("\n")
    import onnx  # noqa: PLC0415 (only for the check)

    onnx.checker.check_model(str(onnx_path))
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    print(f"{onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB, sha256 {digest[:12]}) and its spec")


if __name__ == "__main__":
    main()

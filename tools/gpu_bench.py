"""The Python side of tools/gpu_check.sh: the peers `imgclf extract --device cuda` is measured
against, on the same GPU, graph and files.

    python tools/gpu_bench.py raw-ort MODEL.onnx --precision fp32|tf32 [--batch 256] [--cpu]
    python tools/gpu_bench.py torch-graph --arch resnet50 [--fp16] [--batch 256]
    python tools/gpu_bench.py dataloader DATA [--arch resnet50] [--workers 16] [--batch 256]
    python tools/gpu_bench.py compare A.h5 B.h5

Each prints one line: `images/s N` (or `max_rel_diff X`), which gpu_check.sh puts in its table.
raw-ort feeds a ready batch through ONNX Runtime's CUDA provider with IO binding (input copied
once, outputs kept on the GPU); torch-graph runs the same torchvision graph in PyTorch;
dataloader is what a PyTorch user gets end to end from JPEG files (Dataset with Pillow decode,
resize 256, centre crop 224, DataLoader with worker processes and pinned memory, fp16
channels-last model).
"""

import argparse
import os
import pathlib
import sys
import time


def timed(run, batch, warmup=3, seconds=10.0):
    """Images per second of `run()` (one batch per call) after `warmup` calls."""
    for _ in range(warmup):
        run()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def raw_ort(args):
    import numpy as np
    import onnxruntime as ort

    if args.cpu:
        # every core on a ready batch: the ceiling `imgclf extract --device cpu` is held to
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count()
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        device = "cpu"
    else:
        cuda = {"device_id": 0, "use_tf32": 1 if args.precision == "tf32" else 0}
        session = ort.InferenceSession(args.model, providers=[("CUDAExecutionProvider", cuda)])
        assert "CUDAExecutionProvider" in session.get_providers(), session.get_providers()
        device = "cuda"
    name = session.get_inputs()[0].name
    shape = [args.batch] + [d if isinstance(d, int) else 3 for d in session.get_inputs()[0].shape[1:]]
    x = ort.OrtValue.ortvalue_from_numpy(np.random.rand(*shape).astype(np.float32), device, 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(name, x)
    for out in session.get_outputs():
        binding.bind_output(out.name, device, 0)

    def run():
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    print(f"images/s {timed(run, args.batch):.0f}")


def torchvision_model(arch):
    import torchvision

    return getattr(torchvision.models, arch)(weights=None).eval()


def torch_graph(args):
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    model = torchvision_model(args.arch).cuda()
    x = torch.rand(args.batch, 3, 224, 224, device="cuda")
    if args.fp16:
        model = model.half().to(memory_format=torch.channels_last)
        x = x.half().to(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()

    print(f"images/s {timed(run, args.batch):.0f}")


class Photos:
    """Every image under DATA's splits, decoded and transformed as torchvision's ImageNet eval."""

    def __init__(self, root):
        import torchvision.transforms as T

        self.files = sorted(p for p in pathlib.Path(root).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        self.transform = T.Compose([
            T.Resize(256), T.CenterCrop(224), T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB"))


def dataloader(args):
    import torch

    torch.backends.cudnn.benchmark = True
    photos = Photos(args.data)
    loader = torch.utils.data.DataLoader(photos, batch_size=args.batch, num_workers=args.workers, pin_memory=True)
    model = torchvision_model(args.arch).cuda().half().to(memory_format=torch.channels_last)
    start = time.perf_counter()
    rows = 0
    with torch.inference_mode():
        for x in loader:
            x = x.cuda(non_blocking=True).half().to(memory_format=torch.channels_last)
            rows += len(model(x))
    torch.cuda.synchronize()
    print(f"images/s {rows / (time.perf_counter() - start):.0f}")


def compare(args):
    import h5py
    import numpy as np

    a, b = h5py.File(args.a, "r"), h5py.File(args.b, "r")
    worst = 0.0
    for split in ["train", "validation", "test"]:
        if split in a:
            x, y = a[split][:], b[split][:]
            assert (a[f"{split}_paths"][:] == b[f"{split}_paths"][:]).all(), f"{split}: rows in another order"
            worst = max(worst, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-12)))
    print(f"max_rel_diff {worst:.2e}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw-ort")
    r.add_argument("model")
    r.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--cpu", action="store_true", help="the CPU provider on every core instead of CUDA")
    t = sub.add_parser("torch-graph")
    t.add_argument("--arch", default="resnet50")
    t.add_argument("--fp16", action="store_true")
    t.add_argument("--tf32", action="store_true")
    t.add_argument("--batch", type=int, default=256)
    d = sub.add_parser("dataloader")
    d.add_argument("data")
    d.add_argument("--arch", default="resnet50")
    d.add_argument("--workers", type=int, default=16)
    d.add_argument("--batch", type=int, default=256)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    {"raw-ort": raw_ort, "torch-graph": torch_graph, "dataloader": dataloader, "compare": compare}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

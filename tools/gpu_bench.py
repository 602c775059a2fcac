"""The Python side of tools/gpu_check.sh: the peers `imgclf extract --device cuda` is measured
against, on the same GPU, graph and files.

    python tools/gpu_bench.py raw-ort MODEL.onnx [--precision fp32|tf32] [--batch 256] [--cpu]
    python tools/gpu_bench.py torch-graph [--precision fp32|tf32|fp16] [--batch 256] [--device cuda]
    python tools/gpu_bench.py dataloader DATA [--precision fp32|tf32|fp16|none] [--batch 256] [--device cuda]
    python tools/gpu_bench.py compare A.h5 B.h5

Each prints one line: `images/s N` (synthetic rows), `images/s STEADY cold COLD` (dataloader),
or `max_rel_diff X`, which gpu_check.sh puts in its table. raw-ort feeds a ready batch through
ONNX Runtime's CUDA provider with IO binding (input copied once, outputs kept on the GPU);
torch-graph runs the same torchvision graph in PyTorch; dataloader is what a PyTorch user gets
end to end from JPEG files (a Dataset with Pillow decode, resize 256, centre crop 224, a
DataLoader with worker processes and pinned memory) at the precision asked (`none`: decode and
transform only, no model). Its steady rate starts after the first batches, as imgclf's does;
its cold rate counts from the process start (import, model to the GPU, workers' start).
`--device cpu` runs the torch rows on the CPU (tools/gpu_check.sh --cpu-dry-run); fp16 then
stays fp32, since the CPU has no fp16 convolutions.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 (the cold rate's clock starts first)
import os  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

WARMUP_BATCHES = 3  # as imgclf's pipeline: by then cuDNN has picked each convolution's algorithm


def timed(run, batch, seconds):
    """Images per second of `run()` (one batch per call) after WARMUP_BATCHES calls."""
    for _ in range(WARMUP_BATCHES):
        run()
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < seconds:
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
        if "CUDAExecutionProvider" not in session.get_providers():
            sys.exit(f"onnxruntime {ort.__version__} at {ort.__file__} did not start its CUDA provider")
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

    print(f"images/s {timed(run, args.batch, args.seconds):.1f}")


def torch_setup(args):
    """torch with cuDNN's autotuner and TF32 as `args.precision` says; the model's dtype."""
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    half = args.precision == "fp16" and args.device == "cuda"
    return torch, torch.float16 if half else torch.float32


def torchvision_model(arch, torch, dtype, device):
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None).eval().to(device)
    return model.to(dtype=dtype, memory_format=torch.channels_last)


def synchronize(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def torch_graph(args):
    torch, dtype = torch_setup(args)
    model = torchvision_model(args.arch, torch, dtype, args.device)
    x = torch.rand(args.batch, 3, 224, 224, device=args.device).to(dtype=dtype, memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            model(x)
        synchronize(torch, args.device)

    print(f"images/s {timed(run, args.batch, args.seconds):.1f}")


class Photos:
    """Every image under DATA's splits, decoded and transformed as torchvision's ImageNet eval."""

    def __init__(self, root):
        import torchvision.transforms as T

        suffixes = {".jpg", ".jpeg", ".png"}
        self.files = sorted(p for p in pathlib.Path(root).rglob("*") if p.suffix.lower() in suffixes)
        if not self.files:
            sys.exit(f"no photos under {root}")
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
    torch, dtype = torch_setup(args)
    photos = Photos(args.data)
    loader = torch.utils.data.DataLoader(
        photos, batch_size=args.batch, num_workers=args.workers, pin_memory=args.device == "cuda")
    model = None if args.precision == "none" else torchvision_model(args.arch, torch, dtype, args.device)
    rows, warm = 0, None
    with torch.inference_mode():
        for b, x in enumerate(loader):
            if model is not None:
                x = x.to(args.device, non_blocking=True).to(dtype=dtype, memory_format=torch.channels_last)
                model(x)
            rows += len(x)
            if b + 1 == WARMUP_BATCHES:
                synchronize(torch, args.device)
                warm = (time.perf_counter(), rows)
    synchronize(torch, args.device)
    end = time.perf_counter()
    if warm is None or rows == warm[1]:
        sys.exit(f"{rows} photos make no more than {WARMUP_BATCHES} batches of {args.batch}: no steady rate")
    print(f"images/s {(rows - warm[1]) / (end - warm[0]):.1f} cold {rows / (end - STARTED):.1f}")


def compare(args):
    import h5py
    import numpy as np

    a, b = h5py.File(args.a, "r"), h5py.File(args.b, "r")
    worst, splits = 0.0, 0
    for split in ["train", "validation", "test"]:
        if split in a:
            x, y = a[split][:], b[split][:]
            assert (a[f"{split}_paths"][:] == b[f"{split}_paths"][:]).all(), f"{split}: rows in another order"
            worst = max(worst, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-12)))
            splits += 1
    if splits == 0:
        sys.exit(f"{args.a} has no split to compare")
    print(f"max_rel_diff {worst:.2e}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw-ort")
    r.add_argument("model")
    r.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    r.add_argument("--cpu", action="store_true", help="the CPU provider on every core instead of CUDA")
    t = sub.add_parser("torch-graph")
    t.add_argument("--precision", choices=["fp32", "tf32", "fp16"], default="fp32")
    d = sub.add_parser("dataloader")
    d.add_argument("data")
    d.add_argument("--precision", choices=["fp32", "tf32", "fp16", "none"], default="fp32")
    d.add_argument("--workers", type=int, default=os.cpu_count())
    for s in (t, d):
        s.add_argument("--arch", default="resnet50")
        s.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    for s in (r, t, d):
        s.add_argument("--batch", type=int, default=256)
    for s in (r, t):
        s.add_argument("--seconds", type=float, default=5.0, help="timed seconds after the warm-up batches")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    {"raw-ort": raw_ort, "torch-graph": torch_graph, "dataloader": dataloader, "compare": compare}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

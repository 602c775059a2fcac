"""The probe beside scikit-learn, measured in one run on the same standardised rows: one
Markdown row per feature set for README's "Which head" table.

    .venv/bin/python tools/probe_table.py LABEL FEATURES.h5 [FEATURES.h5 ...] [--imgclf BIN] [--runs DIR]

For the feature files (joined, as train-head joins them; each must have labelled `train` and
`validation` splits):
- `imgclf train-head --c 1` (the probe at scikit-learn's default C) and
  `LogisticRegression(C=1)` on the train rows standardised by the run's own standardizer:
  both objectives (mean log loss + ||W||^2 / (2 C n)), validation accuracy and log loss;
- `imgclf train-head --c auto` (the sweep, 15 fits) and `LogisticRegressionCV` over the same
  97-value grid with the validation split as its one fold (`PredefinedSplit`,
  `scoring="neg_log_loss"`, `refit=False`: fitted on train at each C): the chosen C,
  validation accuracy and log loss, and the seconds each took (imgclf's whole command, reading
  the files included; scikit-learn's fit alone).
"""

import argparse
import json
import subprocess
import sys
import time

import h5py
import numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import PredefinedSplit

sys.path.insert(0, "tools")
from reference_heads import load  # noqa: E402

GRID = [10 ** (k / 8) for k in range(-48, 49)]


def objective(x, y, W, b, C):
    z = x @ W + b
    if W.shape[1] == 1:
        loss = np.logaddexp(0, z[:, 0]) - y * z[:, 0]
    else:
        loss = np.logaddexp.reduce(z, axis=1) - z[np.arange(len(y)), y]
    return loss.mean() + (W ** 2).sum() / (2 * C * len(y))


def ours(bin_, files, run, c):
    started = time.perf_counter()
    subprocess.run([bin_, "train-head", "--features", *files, "--out", run, "--c", c, "--force"],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - started
    info = json.load(open(f"{run}/run.json"))
    return info, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("label")
    ap.add_argument("features", nargs="+")
    ap.add_argument("--imgclf", default="target/debug/imgclf")
    ap.add_argument("--runs", default="runs/probe-table")
    args = ap.parse_args()
    run = f"{args.runs}/{args.label.replace(' ', '_').replace('+', '')}"
    x_train, y_train = load(args.features, "train")
    x_val, y_val = load(args.features, "validation")

    info, _ = ours(args.imgclf, args.features, run + "-c1", "1")
    w = load_file(run + "-c1/weights.safetensors")
    std = lambda x: ((x - w["standardizer.mean"]) / w["standardizer.scale"]).astype(np.float64)
    xt, xv = std(x_train), std(x_val)
    W, b = w["output.kernel"].astype(np.float64), w["output.bias"].astype(np.float64)
    sk = LogisticRegression(C=1.0, max_iter=1000).fit(xt, y_train)
    p = sk.predict_proba(xv)
    c1 = (objective(xt, y_train, W, b, 1.0), info["metrics"]["val_acc"], info["metrics"]["val_loss"],
          objective(xt, y_train, sk.coef_.T, sk.intercept_, 1.0), accuracy_score(y_val, p.argmax(1)),
          log_loss(y_val, p, labels=sk.classes_))

    info, our_seconds = ours(args.imgclf, args.features, run + "-auto", "auto")
    x = np.concatenate([xt, xv])
    y = np.concatenate([y_train, y_val])
    fold = PredefinedSplit(np.concatenate([-np.ones(len(y_train)), np.zeros(len(y_val))]))
    started = time.perf_counter()
    cv = LogisticRegressionCV(Cs=GRID, cv=fold, scoring="neg_log_loss", refit=False, max_iter=1000).fit(x, y)
    their_seconds = time.perf_counter() - started
    p = cv.predict_proba(xv)
    sweep = (info["sweep"]["chosen"], info["metrics"]["val_acc"], info["metrics"]["val_loss"], our_seconds,
             float(np.ravel(cv.C_)[0]), accuracy_score(y_val, p.argmax(1)), log_loss(y_val, p, labels=cv.classes_),
             their_seconds)
    print(f"| {args.label} | {x_train.shape[1]} | "
          + " | ".join(f"{v:.6f}" if i in (0, 3) else f"{v:.4f}" for i, v in enumerate(c1)) + " | "
          + " | ".join(f"{v:.3g}" if i in (0, 4) else (f"{v:.1f}" if i in (3, 7) else f"{v:.4f}")
                       for i, v in enumerate(sweep)) + " |")


if __name__ == "__main__":
    main()

"""The wheel against the command line and the Python tools on the other side of its arrays:
the same files and weights as the CLI, h5py's reads, embed = extract's rows, scikit-learn on
the arrays, errors as exceptions, and Ctrl-C leaving nothing that looks finished.

Run by `./just test-python` (part of `./just test`) in a venv with the built wheel; the CLI is
target/debug/imgclf of the same tree."""

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import imgclf

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "fixtures"
SHARED = pathlib.Path(os.environ.get("IMGCLF_SHARED", ROOT.parent / "shared"))
BIN = ROOT / "target" / "debug" / "imgclf"
TINY = FIXTURES / "tiny_convnet.onnx"
LITE0 = SHARED / "models" / "efficientnet_lite0.onnx"


def cli(*args):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("py")
    return imgclf.extract(FIXTURES / "tiny_data", [TINY], out, engine="tract")[0]


def test_a_feature_file_reads_as_h5py_reads_it(tiny):
    assert tiny.backbone == "TinyConvNet" and tiny.classes == ["cats", "dogs"]
    assert tiny.splits == ["train", "validation", "test"]
    with h5py.File(tiny.path, "r") as h:
        assert tiny.dim == h["train"].shape[1] and tiny.attrs["model_sha256"] == h.attrs["model_sha256"]
        for split in tiny.splits:
            x, y, paths = tiny.read(split)
            assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == h[split].shape
            np.testing.assert_array_equal(x, h[split][()])
            key = "label" if split == "train" else f"{split}_label"
            if key in h:
                np.testing.assert_array_equal(y, h[key][()])
            else:
                assert y is None
            assert paths == [p.decode() for p in h[f"{split}_paths"][()]]
        blocks = imgclf.Blocks(tiny, "train", rows=3)
        assert len(blocks) == -(-tiny.rows("train") // 3)
        np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), h["train"][()])
        x, y, no_paths = imgclf.Blocks(tiny, "train", rows=3, paths=False)[1]
        assert no_paths is None and x.shape[0] == 3 and len(y) == 3


def test_python_extract_writes_the_clis_file(tiny, tmp_path):
    cli("extract", "--data", FIXTURES / "tiny_data", "--model", TINY, "--out", tmp_path, "--engine", "tract")
    theirs = imgclf.open_features(tmp_path / "gap_TinyConvNet.h5")
    assert theirs.attrs["checksum"] == tiny.attrs["checksum"]
    assert sha256(theirs.path) == sha256(tiny.path), "byte for byte"


def test_embed_gives_extracts_rows_from_paths_and_from_arrays(tiny):
    x, _, paths = tiny.read("validation")
    files = [FIXTURES / "tiny_data" / "validation" / p.split("/", 1)[1] for p in paths]
    np.testing.assert_allclose(imgclf.embed(TINY, files, engine="tract"), x, rtol=1e-5, atol=1e-6)
    from PIL import Image

    photos = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 48))) for f in files[:2]])
    rows = imgclf.embed(TINY, photos, engine="tract")
    assert rows.shape == (2, tiny.dim) and rows.dtype == np.float32 and rows.flags.c_contiguous
    one = imgclf.embed(TINY, photos[1:], engine="tract")
    np.testing.assert_allclose(rows[1:], one, rtol=1e-5, atol=1e-6)
    model = imgclf.Model(TINY, engine="tract")
    assert model.name == "TinyConvNet"
    np.testing.assert_array_equal(model.embed(photos, progress=False), rows)
    # resize=False: a batch at the model's input size goes in as it is; any other size is refused
    with pytest.raises(ValueError, match="resize=False needs the model's input size"):
        imgclf.embed(TINY, photos, engine="tract", resize=False)


def test_scikit_learn_fits_the_arrays_and_a_head_equals_the_clis(tiny, tmp_path):
    from sklearn.linear_model import LogisticRegression

    x, y, _ = tiny.read("train")
    xv, yv, _ = tiny.read("validation")
    model = LogisticRegression(max_iter=1000).fit(x, y)
    assert model.predict_proba(xv).shape == (len(yv), 2)

    flags = ["--head", "mlp", "--hidden", "8", "--optimizer", "adam", "--epochs", "3", "--batch", "4", "--seed", "5"]
    cli("train-head", "--features", tiny.path, "--out", tmp_path / "cli", *flags)
    run = imgclf.train_head([tiny.path], tmp_path / "py", head="mlp", hidden=8, optimizer="adam", epochs=3, batch=4,
                            seed=5)
    assert sha256(tmp_path / "py" / "weights.safetensors") == sha256(tmp_path / "cli" / "weights.safetensors")
    cli("train-head", "--features", tiny.path, "--out", tmp_path / "cli-probe", "--c", "auto")
    probe = imgclf.train_head([tiny.path], tmp_path / "py-probe")
    assert probe.info["config"]["solver"]["c"] == "auto" and probe.kind == "train-head"
    assert sha256(tmp_path / "py-probe" / "weights.safetensors") == sha256(tmp_path / "cli-probe" / "weights.safetensors")

    probs = run.predict(xv)
    assert probs.shape == (len(yv), 2) and np.allclose(probs.sum(1), 1, atol=1e-6)
    split_probs, paths, labels = run.predict_split("validation")
    np.testing.assert_allclose(split_probs, probs, rtol=1e-6)
    assert labels == list(yv)
    scores = run.evaluate()
    assert scores["split"] == "validation" and scores["rows"] == len(yv)
    assert scores["accuracy"] == np.mean(probs.argmax(1) == yv)
    page = run.report()
    assert page.name == "report.html" and "imgclf" in page.read_text()
    with pytest.raises(imgclf.HeadError, match="mini-batch heads"):
        imgclf.train_head([tiny.path], tmp_path / "bad", head="probe", epochs=3)
    assert not (tmp_path / "bad").exists()
    rows = imgclf.list_runs([tmp_path])
    assert sorted(r["dir"].name for r in rows) == ["cli", "cli-probe", "py", "py-probe"]
    assert rows[0]["kind"] == "train-head"


def test_long_calls_report_progress_to_a_callable_and_print_lines_without_tqdm(tiny, tmp_path, capsys, monkeypatch):
    seen = []
    imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path, engine="tract", force=True,
                   progress=lambda done, total: seen.append((done, total)))
    rows = sum(tiny.rows(s) for s in tiny.splits)
    # every image handled, the rows and the one unreadable fixture
    assert seen and seen[-1][0] == seen[-1][1] == rows + 1 and all(d <= t for d, t in seen)
    # without tqdm (importing it fails, installed or not): a line a tenth on stderr
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    imgclf.embed(TINY, [FIXTURES / "tiny_data" / "test" / "1.jpg"], engine="tract", progress=True)
    assert "embed (images): 1/1 (100%)" in capsys.readouterr().err


def test_each_library_error_is_its_exception_with_the_clis_message(tmp_path):
    with pytest.raises(imgclf.FeatureError) as e:
        imgclf.open_features(tmp_path / "nothing.h5")
    assert isinstance(e.value, imgclf.ImgclfError) and "nothing.h5" in str(e.value)
    with pytest.raises(imgclf.DatasetError, match="no-such-root"):
        imgclf.extract(tmp_path / "no-such-root", [TINY])
    with pytest.raises(imgclf.EngineError):
        imgclf.embed(tmp_path / "missing.onnx", [FIXTURES / "tiny_data" / "test" / "1.jpg"])
    with pytest.raises(imgclf.NetError, match="run.json"):
        imgclf.Run(tmp_path)
    with pytest.raises(ValueError):
        imgclf.embed(TINY, np.zeros((1, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="shard"):
        imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path, engine="tract", shard="3/2")
    with pytest.raises(ValueError, match="device"):
        imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path, device="gpu9")
    with pytest.raises(ValueError, match="store: `f64`: expected f32 or f16"):
        imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path, store="f64")
    with pytest.raises(imgclf.DatasetError, match="unknown split `holdout`"):
        imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path, splits=["train", "holdout"])
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_a_shard_from_python_is_the_clis_shard(tmp_path):
    [ours] = imgclf.extract(FIXTURES / "tiny_data", [TINY], tmp_path / "py", engine="tract", shard="1/2", batch=4,
                            progress=False)
    cli("extract", "--data", FIXTURES / "tiny_data", "--model", TINY, "--out", tmp_path / "cli", "--engine", "tract",
        "--shard", "1/2", "--batch", "4")
    assert ours.path.name == "gap_TinyConvNet.shard-1-of-2.h5"
    assert sha256(ours.path) == sha256(tmp_path / "cli" / ours.path.name)


@pytest.mark.skipif(not LITE0.is_file(), reason="needs ../shared (cats_dogs, EfficientNet-Lite0)")
def test_ctrl_c_during_extract_leaves_no_finished_looking_file(tmp_path):
    code = (
        "import sys, imgclf\n"
        "try:\n"
        f"    imgclf.extract({str(SHARED / 'data' / 'cats_dogs')!r}, [{str(LITE0)!r}], {str(tmp_path)!r}, engine='tract', batch=4)\n"
        "except KeyboardInterrupt as e:\n"
        "    print('interrupted:', e); sys.exit(3)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, (out, err)
    assert "interrupted" in out
    assert not (tmp_path / "gap_EfficientNet-Lite0.h5").exists(), "no finished-looking file"


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- python-example -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "fixtures").symlink_to(FIXTURES)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "py-head" / "weights.safetensors").is_file()

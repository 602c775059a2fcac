//! `just bench`'s extraction table, every row measured side by side in this run on this
//! machine: the raw engine on a ready batch (the ceiling), `imgclf extract` end to end, the
//! plain Python pipeline (`tools/bench_python_extract.py`) and Keras itself
//! (`tools/bench_keras_extract.py`, ResNet50). images/s are medians of `--runs` runs; peak
//! RSS is the child process's. Needs `../shared` (photos, EfficientNet-Lite0), `backbones/`
//! (`just keras-backbones`: ResNet50, InceptionV3, Xception), `.venv` and `.venv-keras`.
//!
//!     cargo bench -p imgclf --bench extract -- [--images N] [--runs R] [--threads T] [--only rows,three,memory,cache]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use imgclf_runtime::{Backbone, EngineConfig, EngineKind};
use ndarray::Array4;

#[derive(Clone)]
struct Config {
    images: usize,
    runs: usize,
    threads: usize,
    root: PathBuf,
}

/// Wall seconds and peak RSS (MB) of a child process. The peak is the child's own `VmHWM`,
/// sampled every 20 ms until it exits: `wait4`'s `ru_maxrss` would include this bench
/// process's memory, which a spawned child inherits as its starting high-water mark.
fn measure(cmd: &mut Command) -> (f64, f64) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(log.reopen().unwrap()).spawn().expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let seconds = start.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} failed:\n{}", std::fs::read_to_string(log.path()).unwrap_or_default());
    (seconds, peak_kb as f64 / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `n` images of the cats_dogs train split (both classes alike) as links in `dir/train/<class>`.
fn subset(shared: &Path, dir: &Path, n: usize) -> PathBuf {
    let src = shared.join("data/cats_dogs/train");
    let mut photos: Vec<Vec<PathBuf>> = ["cats", "dogs"]
        .iter()
        .map(|c| {
            let mut v: Vec<_> = std::fs::read_dir(src.join(c)).unwrap().flatten().map(|e| e.path()).collect();
            v.sort();
            v
        })
        .collect();
    let _ = std::fs::remove_dir_all(dir);
    for i in 0..n {
        let class = i % 2;
        let list = &mut photos[class];
        let photo = &list[(i / 2) % list.len()];
        let folder = dir.join("train").join(["cats", "dogs"][class]);
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(photo, folder.join(format!("{i}.jpg"))).unwrap();
    }
    dir.to_path_buf()
}

/// Raw engine throughput on a ready batch of 32: images/s, median of the runs.
fn raw(model: &Path, kind: EngineKind, cfg: &Config) -> f64 {
    let backbone = Backbone::open(model).unwrap();
    let mut engine = backbone.engine(&EngineConfig::cpu(kind, cfg.threads)).unwrap();
    let input = Array4::from_shape_fn(backbone.spec.input_shape(32), |(a, b, c, d)| ((a + b + c + d) % 7) as f32 * 0.1);
    engine.run(input.view()).unwrap(); // warm-up
    let per_run: Vec<f64> = (0..cfg.runs)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed().as_secs_f64() < 3.0 || n == 0 {
                engine.run(input.view()).unwrap();
                n += 32;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    median(per_run)
}

/// `imgclf extract` over `data` with `models`: (images/s, peak RSS MB), medians.
fn ours(data: &Path, models: &[&Path], engine: &str, cfg: &Config, out: &Path) -> (f64, f64) {
    let images = count_images(data);
    let runs: Vec<(f64, f64)> = (0..cfg.runs)
        .map(|_| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgclf"));
            cmd.args(["extract", "--force", "--engine", engine, "--batch", "32"])
                .args(["--threads", &cfg.threads.to_string(), "--data"])
                .arg(data)
                .arg("--out")
                .arg(out);
            models.iter().for_each(|m| {
                cmd.arg("--model").arg(m);
            });
            measure(&mut cmd)
        })
        .collect();
    (images as f64 / median(runs.iter().map(|r| r.0).collect()), median(runs.iter().map(|r| r.1).collect()))
}

/// A Python script over `data`'s train split: (images/s, peak RSS MB), medians of the runs.
fn script(python: &Path, args: &[&std::ffi::OsStr], data: &Path, cfg: &Config) -> (f64, f64) {
    let images = count_images(data);
    let runs: Vec<(f64, f64)> = (0..cfg.runs)
        .map(|_| measure(Command::new(python).args(args).args(["--threads", &cfg.threads.to_string()])))
        .collect();
    (images as f64 / median(runs.iter().map(|r| r.0).collect()), median(runs.iter().map(|r| r.1).collect()))
}

/// The plain Python pipeline (`tools/bench_python_extract.py`).
fn python(model: &Path, data: &Path, cfg: &Config) -> (f64, f64) {
    let tool = cfg.root.join("tools/bench_python_extract.py");
    let (train, out) = (data.join("train"), data.join("python.h5"));
    script(
        &cfg.root.join(".venv/bin/python"),
        &[tool.as_ref(), model.as_ref(), train.as_ref(), out.as_ref()],
        data,
        cfg,
    )
}

/// Keras itself (`tools/bench_keras_extract.py`), when `.venv-keras` exists.
fn keras(data: &Path, cfg: &Config) -> Option<(f64, f64)> {
    let py = cfg.root.join(".venv-keras/bin/python");
    let tool = cfg.root.join("tools/bench_keras_extract.py");
    let (train, out) = (data.join("train"), data.join("keras.h5"));
    py.exists().then(|| script(&py, &[tool.as_ref(), train.as_ref(), out.as_ref()], data, cfg))
}

fn count_images(data: &Path) -> usize {
    ["cats", "dogs"].iter().map(|c| std::fs::read_dir(data.join("train").join(c)).map_or(0, |d| d.count())).sum()
}

fn main() {
    let mut cfg = Config {
        images: 1980,
        runs: 3,
        threads: 2,
        root: Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf(),
    };
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str| flag(name).and_then(|v| v.parse().ok());
    cfg.images = number("--images").unwrap_or(cfg.images);
    cfg.runs = number("--runs").unwrap_or(cfg.runs);
    cfg.threads = number("--threads").unwrap_or(cfg.threads);
    // sections to run: rows (per-backbone table), three (three backbones in one call),
    // memory (1,000 vs 4,000 images), cache (a cache hit)
    let only: Option<String> = flag("--only");
    let run = |section: &str| only.as_deref().is_none_or(|o| o.split(',').any(|s| s == section));
    let shared = cfg.root.join("../shared");
    let lite0 = shared.join("models/efficientnet_lite0.onnx");
    let backbones = cfg.root.join("backbones");
    let [resnet, inception, xception] =
        ["resnet50", "inceptionv3", "xception"].map(|m| backbones.join(format!("{m}.onnx")));
    if !lite0.exists() || !resnet.exists() {
        eprintln!("needs ../shared and backbones/ (./just keras-backbones)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let data = subset(&shared, &scratch.path().join("data"), cfg.images);
    let out = scratch.path().join("features");
    eprintln!("{} images of cats_dogs/train, {} runs each, {} engine threads", cfg.images, cfg.runs, cfg.threads);

    println!("| backbone | pipeline | images/s | vs raw ort | vs Python | vs Keras | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    let rows = if run("rows") { vec![("EfficientNet-Lite0", &lite0), ("ResNet50", &resnet)] } else { Vec::new() };
    for (name, model) in rows {
        let raw_ort = raw(model, EngineKind::Ort, &cfg);
        let raw_tract = raw(model, EngineKind::Tract, &cfg);
        let (py, py_rss) = python(model, &data, &cfg);
        let keras = if name == "ResNet50" { keras(&data, &cfg) } else { None };
        let row = |what: &str, ips: f64, rss: Option<f64>| {
            let k = keras.map_or("".into(), |(k, _)| format!("{:.2}", ips / k));
            let rss = rss.map_or("".into(), |r| format!("{r:.0} MB"));
            println!("| {name} | {what} | {ips:.1} | {:.2} | {:.2} | {k} | {rss} |", ips / raw_ort, ips / py);
        };
        row("raw engine, ort (ready batch of 32)", raw_ort, None);
        row("raw engine, tract (ready batch of 32)", raw_tract, None);
        for engine in ["ort", "tract"] {
            let (ips, rss) = ours(&data, &[model], engine, &cfg, &out);
            row(&format!("imgclf extract, {engine}"), ips, Some(rss));
        }
        row("Python: Pillow + onnxruntime + h5py", py, Some(py_rss));
        if let Some((k, rss)) = keras {
            row("Keras: ResNet50.predict(image_dataset_from_directory)", k, Some(rss));
        }
    }

    if run("three") && inception.exists() && xception.exists() {
        let three = [resnet.as_path(), inception.as_path(), xception.as_path()];
        let (ours_ips, rss) = ours(&data, &three, "ort", &cfg, &out);
        let python_seconds: f64 = three.iter().map(|m| count_images(&data) as f64 / python(m, &data, &cfg).0).sum();
        let python_ips = count_images(&data) as f64 / python_seconds;
        println!(
            "| ResNet50 + InceptionV3 + Xception | imgclf extract, one call, ort | {ours_ips:.1} | | {:.2} (vs the sum of 3 Python runs, {python_ips:.1}) | | {rss:.0} MB |",
            ours_ips / python_ips
        );
    }

    // memory: 1,000 vs 4,000 images, same model and batch
    let mut peaks = Vec::new();
    for n in if run("memory") { vec![1000, 4000] } else { Vec::new() } {
        let data = subset(&shared, &scratch.path().join(format!("data{n}")), n);
        let (_, rss) = ours(&data, &[&lite0], "ort", &Config { runs: 1, ..cfg.clone() }, &out);
        peaks.push(rss);
    }
    if let [small, large] = peaks[..] {
        println!(
            "\npeak RSS, EfficientNet-Lite0 (ort): 1,000 images {small:.0} MB, 4,000 images {large:.0} MB (ratio {:.3})",
            large / small
        );
    }

    // cache hit: the same extract again, without --force
    if !run("cache") {
        return;
    }
    let extract = || {
        measure(
            Command::new(env!("CARGO_BIN_EXE_imgclf"))
                .args(["extract", "--engine", "ort", "--data"])
                .arg(&data)
                .arg("--model")
                .arg(&lite0)
                .arg("--out")
                .arg(&out),
        )
    };
    extract();
    let (hit, _) = extract();
    println!("cache hit (second identical extract, {} images): {hit:.2} s", cfg.images);
}

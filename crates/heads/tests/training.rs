//! Heads on real HDF5 feature files written to a scratch folder: alignment and refusals,
//! learning, determinism, early stopping, class weights and run folders.

use std::path::{Path, PathBuf};

use imgclf_features::{FeatureSet, SplitFeatures};
use imgclf_heads::prelude::*;
use imgclf_heads::{Rng, Validation};
use ndarray::Array2;

/// Two Gaussian blobs per class centre, `dim` wide; column 0 carries a tag of the image path
/// so that tests can see which image a row came from.
fn feature_set(backbone: &str, classes: &[&str], dim: usize, splits: &[(&str, usize)], order_seed: u64) -> FeatureSet {
    let mut rng = Rng::new(order_seed ^ 77);
    let splits = splits
        .iter()
        .map(|&(name, rows)| {
            let mut items: Vec<(String, usize)> = (0..rows)
                .map(|i| (format!("{name}/{}/img{i}.jpg", classes[i % classes.len()]), i % classes.len()))
                .collect();
            Rng::new(order_seed).shuffle(&mut items);
            let features = Array2::from_shape_fn((rows, dim), |(r, c)| {
                let (path, label) = &items[r];
                if c == 0 {
                    tag(path)
                } else {
                    let centre = if c % classes.len() == *label { 1.5 } else { 0.0 };
                    centre + (rng.next_f32() - 0.5) * 2.0
                }
            });
            SplitFeatures {
                name: name.into(),
                features,
                labels: Some(items.iter().map(|(_, l)| *l as i64).collect()),
                paths: items.into_iter().map(|(p, _)| p).collect(),
                photos: None,
            }
        })
        .collect();
    FeatureSet {
        backbone: backbone.into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        splits,
        model_sha256: format!("sha-of-{backbone}"),
        model: format!("/models/{backbone}.onnx"),
        input_size: [8, 8],
        engine: "test".into(),
        fingerprint: "fp".into(),
        spec: "{}".into(),
        shard: None,
    }
}

fn tag(path: &str) -> f32 {
    path.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) as f32 / u32::MAX as f32
}

fn write(dir: &Path, set: &FeatureSet) -> PathBuf {
    let path = dir.join(FeatureSet::file_name(&set.backbone));
    set.write(&path).unwrap();
    path
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        head: HeadConfig { architecture: Architecture::Logistic, dropout: 0.2, l2: 0.0 },
        optimizer: OptimizerConfig { learning_rate: 0.01, ..OptimizerConfig::keras_default("adam").unwrap() },
        epochs,
        batch_size: 16,
        seed: 3,
        standardize: false,
        val_split: None,
        patience: None,
        class_weight: ClassWeight::None,
        solver: Solver::Sgd,
    }
}

const SPLITS: &[(&str, usize)] = &[("train", 120), ("validation", 40)];

#[test]
fn files_are_joined_by_image_path_not_by_row_position() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), &feature_set("A", &["cat", "dog"], 3, SPLITS, 1));
    let b = write(t.path(), &feature_set("B", &["cat", "dog"], 5, SPLITS, 2)); // other row order
    let inputs = HeadInputs::load(&[a.clone(), b]).unwrap();
    assert_eq!(inputs.dim(), 8);
    assert_eq!(inputs.sources.iter().map(|s| s.backbone.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    for split in &inputs.splits {
        let original = FeatureSet::read(&a).unwrap();
        assert_eq!(split.paths, original.split(&split.name).unwrap().paths, "the first file's order is kept");
        for (r, path) in split.paths.iter().enumerate() {
            let x = split.x.as_ref().expect("load holds every split");
            assert_eq!(x[[r, 0]], tag(path), "A's columns belong to {path}");
            assert_eq!(x[[r, 3]], tag(path), "B's columns were moved to {path}'s row");
            assert_eq!(split.labels.as_ref().unwrap()[r], usize::from(path.contains("/dog/")));
        }
    }
}

#[test]
fn load_splits_holds_only_the_named_splits_joined_as_load_does() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), &feature_set("A", &["cat", "dog"], 3, SPLITS, 1));
    let b = write(t.path(), &feature_set("B", &["cat", "dog"], 5, SPLITS, 2));
    let files = [a.clone(), b];
    let all = HeadInputs::load(&files).unwrap();
    let validation = HeadInputs::load_splits(&files, &["validation"]).unwrap();
    assert_eq!(validation.splits, vec![all.split("validation").unwrap().clone()]);
    assert_eq!((validation.classes, validation.sources), (all.classes, all.sources));
    let have = HeadInputs::splits_of(&a).unwrap();
    assert_eq!(have, [("train".to_string(), true), ("validation".to_string(), true)]);
    let e = HeadInputs::splits_of(&t.path().join("nothing.h5")).unwrap_err().to_string();
    assert!(e.contains("nothing.h5") && e.contains("no such feature file"), "{e}");
}

#[test]
fn files_of_other_datasets_classes_splits_or_the_same_model_are_refused_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), &feature_set("A", &["cat", "dog"], 3, SPLITS, 1));
    let cases = [
        (feature_set("B", &["cat", "fox"], 3, SPLITS, 1), "class lists differ"),
        (feature_set("B", &["cat", "dog"], 3, &[("train", 120)], 1), "splits differ"),
        (feature_set("B", &["cat", "dog"], 3, &[("train", 120), ("validation", 38)], 1), "different datasets"),
        (feature_set("A", &["cat", "dog"], 3, SPLITS, 2), "same model"),
    ];
    for (i, (mut set, expected)) in cases.into_iter().enumerate() {
        if expected == "different datasets" && i == 2 {
            // Same row count, one path renamed: still another dataset.
            set = feature_set("B", &["cat", "dog"], 3, SPLITS, 1);
            set.splits[1].paths[0] = "validation/cat/elsewhere.jpg".into();
        }
        let sub = t.path().join(format!("case{i}"));
        std::fs::create_dir(&sub).unwrap();
        let b = write(&sub, &set);
        let err = HeadInputs::load(&[a.clone(), b.clone()]).unwrap_err().to_string();
        assert!(err.contains(expected), "case {i}: {err}");
        assert!(err.contains(&*a.to_string_lossy()) && err.contains(&*b.to_string_lossy()), "names both files: {err}");
    }
}

/// Photo digests: a path's photo per row, derived from the path and an edit number.
fn with_photos(mut set: FeatureSet, edited: Option<&str>) -> FeatureSet {
    for split in &mut set.splits {
        let digest = |p: &String| u64::from(tag(p).to_bits()) + u64::from(Some(p.as_str()) == edited);
        split.photos = Some(split.paths.iter().map(digest).collect());
    }
    set
}

#[test]
fn rows_that_share_a_path_but_not_a_photo_are_refused_and_files_without_photos_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (da, db, dc) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    [&da, &db, &dc].iter().for_each(|d| std::fs::create_dir(d).unwrap());
    // B lists its rows in another order: photos are compared row by row after alignment
    let a = write(&da, &with_photos(feature_set("A", &["cat", "dog"], 3, SPLITS, 1), None));
    let b = write(&db, &with_photos(feature_set("B", &["cat", "dog"], 3, SPLITS, 2), None));
    let joined = HeadInputs::load(&[a.clone(), b.clone()]).unwrap();
    assert!(joined.unverified.is_empty());
    let edited = "validation/dog/img7.jpg";
    let c = write(&dc, &with_photos(feature_set("C", &["cat", "dog"], 3, SPLITS, 2), Some(edited)));
    let err = HeadInputs::load(&[a.clone(), c.clone()]).unwrap_err().to_string();
    assert!(err.contains(edited) && err.contains("different photo"), "{err}");
    assert!(err.contains(&*a.to_string_lossy()) && err.contains(&*c.to_string_lossy()), "names both files: {err}");
    // a file from before photos were recorded joins by path, and is named for a warning
    let old = write(&dc, &feature_set("D", &["cat", "dog"], 3, SPLITS, 3));
    let joined = HeadInputs::load(&[a.clone(), old.clone()]).unwrap();
    assert_eq!(joined.unverified, std::slice::from_ref(&old));
    assert!(HeadInputs::load(&[old]).unwrap().unverified.is_empty(), "one file has nothing to compare");
}

#[test]
fn learns_separable_classes_and_the_same_seed_gives_the_same_weights() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b", "c"], 12, SPLITS, 1));
    let inputs = HeadInputs::load(&[file]).unwrap();
    for architecture in [Architecture::Logistic, Architecture::Mlp { hidden: 16 }] {
        let mut cfg = config(30);
        cfg.head.architecture = architecture;
        let first = train(&inputs, &cfg, &mut |_| {}).unwrap();
        let last = first.history.last().unwrap();
        assert!(last.val_acc.unwrap() > 0.9, "{architecture:?}: {last:?}");
        assert!(last.loss < first.history[0].loss / 2.0, "the loss falls: {:?}", first.history);
        let again = train(&inputs, &cfg, &mut |_| {}).unwrap();
        assert_eq!(first.head, again.head, "same seed, same weights");
        assert_eq!(
            first.history.iter().map(|h| (h.loss, h.val_loss)).collect::<Vec<_>>(),
            again.history.iter().map(|h| (h.loss, h.val_loss)).collect::<Vec<_>>()
        );
        let other = train(&inputs, &TrainConfig { seed: 4, ..cfg.clone() }, &mut |_| {}).unwrap();
        assert_ne!(first.head, other.head, "another seed, other weights");
    }
}

#[test]
fn early_stopping_keeps_the_epoch_with_the_lowest_validation_loss() {
    let t = tempfile::tempdir().unwrap();
    // Few, noisy rows and a large learning rate: validation loss turns up early.
    let file = write(t.path(), &feature_set("A", &["a", "b"], 40, &[("train", 24), ("validation", 60)], 5));
    let inputs = HeadInputs::load(&[file]).unwrap();
    let mut cfg = config(200);
    cfg.head = HeadConfig { architecture: Architecture::Mlp { hidden: 64 }, dropout: 0.0, l2: 0.0 };
    cfg.optimizer.learning_rate = 0.05;
    cfg.patience = Some(3);
    let mut stopped = None;
    let trained = train(&inputs, &cfg, &mut |e| {
        if let TrainEvent::Stopped { epoch, best_epoch } = e {
            stopped = Some((epoch, best_epoch));
        }
    })
    .unwrap();
    let (epoch, best) = stopped.expect("stops before 200 epochs");
    assert_eq!(epoch, best + 3);
    assert_eq!(trained.history.len(), epoch);
    assert_eq!(trained.best_epoch, best);
    let losses: Vec<f64> = trained.history.iter().map(|h| h.val_loss.unwrap()).collect();
    let min = losses.iter().cloned().fold(f64::MAX, f64::min);
    assert_eq!(losses[best - 1], min);
    // The kept weights are those of the best epoch: scoring them again gives its val_loss.
    let val = inputs.split("validation").unwrap();
    let probs = predict_split(&trained.head, &inputs, "validation").unwrap();
    let e = evaluate(&inputs.classes, probs.view(), val.labels.as_ref().unwrap(), &val.paths, 0);
    assert!((e.log_loss - min).abs() < 1e-4, "{} vs {min}", e.log_loss);
}

#[test]
fn val_split_holds_out_a_stratified_share_and_conflicts_with_a_validation_split() {
    let t = tempfile::tempdir().unwrap();
    let only_train = write(t.path(), &feature_set("A", &["a", "b"], 6, &[("train", 100)], 1));
    let inputs = HeadInputs::load(&[only_train]).unwrap();
    let cfg = TrainConfig { val_split: Some(0.2), ..config(2) };
    let trained = train(&inputs, &cfg, &mut |_| {}).unwrap();
    assert_eq!(trained.validation, Validation::Holdout { fraction: 0.2, rows: 20 });
    assert!(trained.history.iter().all(|h| h.val_loss.is_some()));

    let sub = t.path().join("with_validation");
    std::fs::create_dir(&sub).unwrap();
    let both = HeadInputs::load(&[write(&sub, &feature_set("A", &["a", "b"], 6, SPLITS, 1))]).unwrap();
    let err = train(&both, &cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("`val_split`") && err.contains("validation"), "{err}");
    let err = train(&inputs, &TrainConfig { patience: Some(2), ..config(2) }, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("early stopping"), "{err}");
}

#[test]
fn balanced_class_weights_raise_the_recall_of_a_rare_class() {
    let t = tempfile::tempdir().unwrap();
    // 1 row in 10 of class `rare`, weak signal: unweighted, the head mostly says `common`.
    let mut set = feature_set("A", &["common", "rare"], 4, &[("train", 400), ("validation", 400)], 9);
    let mut rng = Rng::new(10);
    for split in &mut set.splits {
        let labels: Vec<i64> = (0..split.paths.len()).map(|i| i64::from(i % 10 == 0)).collect();
        split.features.mapv_inplace(|_| 2.0 * rng.next_f32() - 1.0);
        for (r, &l) in labels.iter().enumerate() {
            split.features.row_mut(r).mapv_inplace(|v| v + 0.5 * l as f32);
        }
        split.labels = Some(labels);
    }
    let inputs = HeadInputs::load(&[write(t.path(), &set)]).unwrap();
    let recall = |weights: ClassWeight| {
        let trained = train(&inputs, &TrainConfig { class_weight: weights, ..config(20) }, &mut |_| {}).unwrap();
        let val = inputs.split("validation").unwrap();
        let probs = predict_split(&trained.head, &inputs, "validation").unwrap();
        evaluate(&inputs.classes, probs.view(), val.labels.as_ref().unwrap(), &val.paths, 0).classes[1].recall
    };
    let (plain, balanced) = (recall(ClassWeight::None), recall(ClassWeight::Balanced));
    assert!(balanced > plain + 0.2, "rare-class recall {plain} unweighted, {balanced} balanced");
}

#[test]
fn a_saved_run_loads_and_predicts_exactly_the_same() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b", "c"], 10, SPLITS, 1));
    let inputs = HeadInputs::load(&[file]).unwrap();
    let cfg = TrainConfig {
        head: HeadConfig { architecture: Architecture::Mlp { hidden: 8 }, dropout: 0.3, l2: 1e-3 },
        standardize: true,
        ..config(3)
    };
    let trained = train(&inputs, &cfg, &mut |_| {}).unwrap();
    let history = trained.history.clone();
    let dir = t.path().join("runs/exp1");
    let run = Run::new(&dir, &inputs, &cfg, trained);
    run.save(&history, false).unwrap();
    for f in ["weights.safetensors", "run.json", "history.csv", "curves.png"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("epoch,loss,acc,val_loss,val_acc,seconds"));
    assert_eq!(csv.lines().count(), 4);
    let curves = image::open(dir.join("curves.png")).unwrap();
    assert!(curves.width() >= 800 && curves.height() >= 400);

    let loaded = Run::load(&dir).unwrap();
    assert_eq!(loaded.info, run.info);
    assert_eq!(loaded.head, run.head);
    loaded.check_inputs(&inputs).unwrap();
    let x = inputs.split("validation").unwrap().x.as_ref().unwrap().view();
    assert_eq!(loaded.head.predict(x), run.head.predict(x));

    let err = run.save(&history, false).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    run.save(&history, true).unwrap();
    assert!(
        !std::fs::read_dir(dir.parent().unwrap()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial"))
    );

    let sub = t.path().join("other");
    std::fs::create_dir(&sub).unwrap();
    let other = HeadInputs::load(&[write(&sub, &feature_set("B", &["a", "b", "c"], 10, SPLITS, 1))]).unwrap();
    let err = loaded.check_inputs(&other).unwrap_err().to_string();
    assert!(err.contains("trained on A (10 wide)") && err.contains("features of B"), "{err}");
}

#[test]
fn thread_count_does_not_change_the_weights() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b", "c"], 40, &[("train", 300), ("validation", 30)], 1));
    let inputs = HeadInputs::load(&[file]).unwrap();
    for architecture in [Architecture::Logistic, Architecture::Mlp { hidden: 96 }] {
        let cfg = TrainConfig {
            head: HeadConfig { architecture, dropout: 0.5, l2: 1e-4 },
            standardize: true,
            batch_size: 128,
            ..config(2)
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| train(&inputs, &cfg, &mut |_| {}).unwrap().head)
        };
        assert_eq!(run(1), run(3), "{architecture:?}");
    }
}

/// A budget whose row share (all but an eighth) holds `rows` rows `dim` wide.
fn budget_for(rows: usize, dim: usize) -> usize {
    (rows * dim * 4 * 8).div_ceil(7) + 8
}

#[test]
fn rows_read_from_the_files_in_chunks_are_the_rows_held_in_memory() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), &feature_set("A", &["cat", "dog"], 3, SPLITS, 1));
    let b = write(t.path(), &feature_set("B", &["cat", "dog"], 5, SPLITS, 2)); // other row order
    let files = [a, b];
    let held = HeadInputs::load(&files).unwrap();
    let chunked = HeadInputs::open(&files, &["train", "validation"], budget_for(10, 8)).unwrap();
    assert_eq!(chunked.chunk_rows(), 10);
    let mut rng = Rng::new(4);
    for split in &held.splits {
        let on_disk = chunked.split(&split.name).unwrap();
        assert!(on_disk.x.is_none(), "160 rows are over a 10-row budget");
        assert_eq!((&on_disk.paths, &on_disk.labels), (&split.paths, &split.labels));
        let x = split.x.as_ref().unwrap();
        let reader = chunked.reader(&split.name).unwrap();
        assert_eq!(reader.range(0..split.len()).unwrap(), x.view());
        assert_eq!(reader.range(7..23).unwrap(), x.slice(ndarray::s![7..23, ..]));
        // any order, repeats included: B's rows are found through its order map
        let rows: Vec<usize> = (0..50).map(|_| rng.below(split.len())).collect();
        assert_eq!(reader.gather(&rows).unwrap(), x.select(ndarray::Axis(0), &rows));
    }
}

#[test]
fn a_train_split_read_as_one_chunk_trains_exactly_as_when_held() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b", "c"], 12, SPLITS, 1));
    let held = HeadInputs::load(std::slice::from_ref(&file)).unwrap();
    // train's 120 rows fit one chunk, train and validation (160) do not fit together
    let chunked = HeadInputs::open(&[file], &["train", "validation"], budget_for(130, 12)).unwrap();
    assert!(chunked.split("train").unwrap().x.is_none() && chunked.chunk_rows() >= 120);
    for architecture in [Architecture::Logistic, Architecture::Mlp { hidden: 16 }] {
        let cfg = TrainConfig {
            head: HeadConfig { architecture, dropout: 0.3, l2: 1e-3 },
            standardize: true,
            class_weight: ClassWeight::Balanced,
            ..config(4)
        };
        let (a, b) = (train(&held, &cfg, &mut |_| {}).unwrap(), train(&chunked, &cfg, &mut |_| {}).unwrap());
        assert_eq!(a.head, b.head, "{architecture:?}: byte-identical weights");
        let numbers = |t: &imgclf_heads::Trained| t.history.iter().map(|h| (h.loss, h.val_loss)).collect::<Vec<_>>();
        assert_eq!(numbers(&a), numbers(&b));
        let probs = predict_split(&b.head, &chunked, "validation").unwrap();
        assert_eq!(probs, b.head.predict(held.split("validation").unwrap().x.as_ref().unwrap().view()));
    }
}

#[test]
fn training_in_many_chunks_is_seeded_learns_and_standardizes_as_held() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b", "c"], 12, SPLITS, 1));
    let held = HeadInputs::load(std::slice::from_ref(&file)).unwrap();
    let chunked = HeadInputs::open(std::slice::from_ref(&file), &["train", "validation"], budget_for(16, 12)).unwrap();
    assert_eq!(chunked.chunk_rows(), 16, "120 train rows in 8 chunks");
    let cfg = TrainConfig { standardize: true, ..config(30) };
    let first = train(&chunked, &cfg, &mut |_| {}).unwrap();
    assert_eq!(first.head, train(&chunked, &cfg, &mut |_| {}).unwrap().head, "same seed and budget, same weights");
    let in_memory = train(&held, &cfg, &mut |_| {}).unwrap();
    assert_ne!(first.head, in_memory.head, "chunks change the order rows are visited in");
    assert_eq!(first.head.standardizer, in_memory.head.standardizer, "one streaming pass, the same statistics");
    let (chunk_acc, held_acc) =
        (first.history.last().unwrap().val_acc.unwrap(), in_memory.history.last().unwrap().val_acc.unwrap());
    assert!(chunk_acc > 0.9 && (chunk_acc - held_acc).abs() <= 0.05, "{chunk_acc} in chunks, {held_acc} held");
    // rows held out of train for validation are read from the chunks' files too
    let only_train = t.path().join("only_train");
    std::fs::create_dir(&only_train).unwrap();
    let only_train = write(&only_train, &feature_set("A", &["a", "b", "c"], 12, &[("train", 120)], 1));
    let chunked = HeadInputs::open(std::slice::from_ref(&only_train), &["train"], budget_for(16, 12)).unwrap();
    let held = HeadInputs::load(&[only_train]).unwrap();
    let holdout = TrainConfig { val_split: Some(0.25), ..config(3) };
    let (a, b) = (train(&chunked, &holdout, &mut |_| {}).unwrap(), train(&held, &holdout, &mut |_| {}).unwrap());
    assert_eq!(a.validation, b.validation);
    assert!(a.history.iter().all(|h| h.val_loss.is_some()));
}

#[test]
fn a_budget_under_one_batch_and_a_file_replaced_while_open_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let file = write(t.path(), &feature_set("A", &["a", "b"], 12, SPLITS, 1));
    let tiny = HeadInputs::open(std::slice::from_ref(&file), &["train", "validation"], budget_for(10, 12)).unwrap();
    let err = train(&tiny, &config(1), &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("`memory_budget`") && err.contains("10 rows") && err.contains("`batch_size`"), "{err}");
    write(t.path(), &feature_set("A", &["a", "b"], 12, SPLITS, 9)); // extracted again, other rows
    let err = train(&tiny, &TrainConfig { batch_size: 8, ..config(1) }, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains(&*file.to_string_lossy()) && err.contains("replaced while in use"), "{err}");
}

/// A probe whose rows to fit or to choose C on hold one class is refused, naming the class;
/// a run.json from before the sweep and refit existed (`c` a number, no `refit`) still reads.
#[test]
fn a_probe_on_rows_of_one_class_is_refused_and_old_probe_settings_still_read() {
    let t = tempfile::tempdir().unwrap();
    let probe = |c: InverseL2| TrainConfig {
        head: HeadConfig { dropout: 0.0, ..config(1).head },
        standardize: true,
        solver: Solver::Lbfgs(Lbfgs { c, ..Lbfgs::default() }),
        ..config(1)
    };
    let mut set = feature_set("A", &["cat", "dog"], 3, SPLITS, 1);
    set.splits[1].labels = Some(vec![1; 40]); // validation: all dogs
    let inputs = HeadInputs::load(&[write(t.path(), &set)]).unwrap();
    let e = ChunkPlan::new(&inputs, &probe(InverseL2::Auto)).unwrap_err().to_string();
    assert!(e.contains("validation rows are all of class `dog`") && e.contains("`c` auto"), "{e}");
    assert!(ChunkPlan::new(&inputs, &probe(InverseL2::Value(1.0))).is_ok(), "a fixed C does not choose on them");

    set.splits[0].labels = Some(vec![0; 120]); // train: all cats
    std::fs::remove_file(t.path().join(FeatureSet::file_name("A"))).unwrap();
    let inputs = HeadInputs::load(&[write(t.path(), &set)]).unwrap();
    let e = ChunkPlan::new(&inputs, &probe(InverseL2::Value(1.0))).unwrap_err().to_string();
    assert!(e.contains("train rows are all of class `cat`"), "{e}");

    let old: Lbfgs = serde_json::from_str(r#"{"c": 0.5, "tol": 0.0001, "max_iter": 100}"#).unwrap();
    assert_eq!(old, Lbfgs { c: InverseL2::Value(0.5), tol: 1e-4, max_iter: 100, refit: false });
    let auto: Lbfgs =
        serde_json::from_str(&serde_json::to_string(&Lbfgs { c: InverseL2::Auto, ..old }).unwrap()).unwrap();
    assert_eq!(auto.c, InverseL2::Auto);
    assert!(serde_json::from_str::<Lbfgs>(r#"{"c": "often", "tol": 0.0001, "max_iter": 100}"#).is_err());
}

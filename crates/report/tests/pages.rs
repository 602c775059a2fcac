//! The report on a real run, through the library: the fixture photos through the tiny ONNX
//! model (tract) into a feature file, a head trained and saved, then its page and its row in
//! the runs table, read from the run folder as any user's would be.

use std::path::{Path, PathBuf};

use imgclf_dataset::Dataset;
use imgclf_features::prelude::*;
use imgclf_heads::{HeadInputs, Run, TrainConfig, train};
use imgclf_report::{ReportOptions, SortBy, find_runs, report};
use imgclf_testkit::fixtures;

/// A head run trained on the fixture photos' features, in `dir/run`; the data root.
fn head_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = fixtures().join("tiny_data");
    let backbone = Backbone::open(&fixtures().join("tiny_convnet.onnx")).unwrap();
    let options =
        ExtractOptions { batch: 4, decode_threads: 1, ..ExtractOptions::new(EngineConfig::cpu(EngineKind::Tract, 1)) };
    let extracted = extract(&Dataset::open(&data).unwrap(), &backbone, dir, &options, &mut |_| {}).unwrap();
    let inputs = HeadInputs::load(&[extracted.output]).unwrap();
    let config = TrainConfig { epochs: 3, batch_size: 4, ..TrainConfig::tutorial() };
    let trained = train(&inputs, &config, &mut |_| {}).unwrap();
    let history = trained.history.clone();
    let run = dir.join("run");
    Run::new(&run, &inputs, &config, trained).save(&history, false).unwrap();
    (run, data)
}

fn options(data: Option<&Path>) -> ReportOptions<'_> {
    ReportOptions {
        split: None,
        data,
        features: &[],
        memory_budget: None,
        top: 3,
        examples: 2,
        engine: EngineConfig::cpu(EngineKind::Tract, 1),
    }
}

#[test]
fn a_head_runs_page_shows_what_it_was_trained_on_and_how_it_scores() {
    let t = tempfile::tempdir().unwrap();
    let (run, data) = head_run(t.path());
    let page = report(&run, &options(Some(&data))).unwrap();
    assert_eq!((page.kind.as_str(), page.split.as_str()), ("train-head", "validation"));
    let fact = |k: &str| page.facts.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(fact("epochs run").as_deref(), Some("3"));
    assert_eq!(fact("validated on").as_deref(), Some("split `validation`"));
    assert_eq!(fact("engine").as_deref(), Some("tract"));
    assert_eq!(page.sources.len(), 1);
    assert_eq!(page.sources[0].backbone, "TinyConvNet");
    assert!(!page.sources[0].fingerprint.starts_with('-'), "the feature file is there: {:?}", page.sources[0]);
    assert!(page.config.iter().any(|(k, v)| k == "epochs" && v == "3"), "{:?}", page.config);
    let validation = Dataset::open(&data).unwrap().split("validation").unwrap().samples.len();
    assert_eq!(page.evaluation.confusion.iter().flatten().sum::<usize>(), validation, "every photo scored");
    assert!(page.binary.is_some() && page.curves.is_some(), "two classes: ROC; history: curves");
    let mut shots = page.top_losses.iter().chain(page.correct.iter().flat_map(|(_, shots)| shots)).peekable();
    assert!(shots.peek().is_some() && shots.all(|s| s.photo.is_ok()), "photos found under the data root");
    let html = page.html();
    assert!(html.contains("<title>imgclf report: run</title>"), "titled by the run folder");
    // self-contained: nothing fetched from elsewhere (SVG's namespace is a name, not a fetch)
    let outside = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!outside.contains("http://") && !outside.contains("https://") && html.contains("data:image/"));

    // without a data root: the page still renders and says why there are no photos
    let bare = report(&run, &options(None)).unwrap();
    assert!(bare.notes.iter().any(|n| n.contains("--data")), "{:?}", bare.notes);

    // the table finds the same run and reads the same numbers
    let (rows, errors) = find_runs(&[t.path().to_path_buf()], SortBy::ValAcc);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].kind.as_str(), rows[0].head.as_str(), rows[0].epochs), ("train-head", "logistic", 3));
    assert_eq!(rows[0].backbones, ["TinyConvNet"]);
}

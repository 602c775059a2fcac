//! One way to open any run folder imgclf writes: a head on feature files (`train-head`), a CNN
//! trained from pixels (`train-cnn`) or a fine-tuned backbone (`fine-tune`). `run.json` is read
//! once; the run then scores a split or predicts photos whatever its kind.

use std::path::{Path, PathBuf};

use imgclf_dataset::Sample;
use imgclf_heads::{
    HeadInputs, Predictions, Predictor, Run, RunInfo, RunSummary, Temperature, format_of, predict_split, run_json_text,
};
use imgclf_runtime::EngineConfig;

use crate::{CNN_RUN_FORMAT, CnnRun, CnnRunInfo, FINETUNE_RUN_FORMAT, FineTuneInfo, FineTuneRun, NetError, Scored};

/// A run folder's `run.json`, whatever its kind, typed: read without loading weights or models
/// (what a table of runs needs).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyRunInfo {
    /// `train-head`.
    Head(Box<RunInfo>),
    /// `train-cnn`.
    Cnn(Box<CnnRunInfo>),
    /// `fine-tune`.
    FineTune(Box<FineTuneInfo>),
}

impl AnyRunInfo {
    /// `dir/run.json`, its kind told by its `format`; a missing, damaged or foreign file is
    /// refused in one line naming it.
    pub fn read(dir: &Path) -> Result<AnyRunInfo, NetError> {
        AnyRunInfo::parse(dir, &run_json_text(dir, "train-head")?)
    }

    /// [`AnyRunInfo::read`] on `run.json`'s text, already read.
    pub fn parse(dir: &Path, text: &str) -> Result<AnyRunInfo, NetError> {
        Ok(match format_of(text).as_deref() {
            Some(CNN_RUN_FORMAT) => AnyRunInfo::Cnn(Box::new(CnnRunInfo::parse(dir, text)?)),
            Some(FINETUNE_RUN_FORMAT) => AnyRunInfo::FineTune(Box::new(FineTuneInfo::parse(dir, text)?)),
            _ => AnyRunInfo::Head(Box::new(RunInfo::parse(dir, text)?)),
        })
    }

    /// The run's facts for pages and tables.
    pub fn summary(&self) -> RunSummary {
        match self {
            AnyRunInfo::Head(info) => info.summary(),
            AnyRunInfo::Cnn(info) => info.summary(),
            AnyRunInfo::FineTune(info) => info.summary(),
        }
    }
}

/// A run folder of any kind, loaded.
pub enum AnyRun {
    /// `train-head`: a head on cached feature files.
    Head(Box<Run>),
    /// `train-cnn`: a network trained from pixels.
    Cnn(Box<CnnRun>),
    /// `fine-tune`: a backbone's last block and a head.
    FineTune(Box<FineTuneRun>),
}

/// Where the images of a split come from: photos under a data root (CNN and fine-tuned runs;
/// default: the root trained on), or feature files (head runs; default: the ones in
/// `run.json`). The other kind of source is refused, naming the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitSource<'a> {
    /// A data root whose photos to score (CNN and fine-tuned runs).
    pub data: Option<&'a Path>,
    /// Feature files to score (head runs).
    pub features: &'a [PathBuf],
    /// Bytes of feature rows a head run holds at once (default: [`imgclf_heads::default_memory_budget`]);
    /// a split over it is scored a block at a time from the files.
    pub memory_budget: Option<usize>,
}

impl AnyRun {
    /// Loads the run in `dir`, whatever its kind (told by `run.json`'s `format`), reading
    /// `run.json` once.
    pub fn open(dir: &Path) -> Result<AnyRun, NetError> {
        let text = run_json_text(dir, "train-head")?;
        Ok(match format_of(&text).as_deref() {
            Some(CNN_RUN_FORMAT) => AnyRun::Cnn(Box::new(CnnRun::from_run_json(dir, &text)?)),
            Some(FINETUNE_RUN_FORMAT) => AnyRun::FineTune(Box::new(FineTuneRun::from_run_json(dir, &text)?)),
            _ => AnyRun::Head(Box::new(Run::from_run_json(dir, &text)?)),
        })
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        match self {
            AnyRun::Head(run) => &run.dir,
            AnyRun::Cnn(run) => &run.dir,
            AnyRun::FineTune(run) => &run.dir,
        }
    }

    /// The run's facts for pages and tables.
    pub fn summary(&self) -> RunSummary {
        match self {
            AnyRun::Head(run) => run.info.summary(),
            AnyRun::Cnn(run) => run.info.summary(),
            AnyRun::FineTune(run) => run.info.summary(),
        }
    }

    /// The run's temperature (`temperature.json`), when `calibrate` fitted one: every score
    /// and prediction of the run is calibrated by it.
    pub fn temperature(&self) -> Option<&Temperature> {
        match self {
            AnyRun::Head(run) => run.temperature.as_ref(),
            AnyRun::Cnn(run) => run.temperature.as_ref(),
            AnyRun::FineTune(run) => run.temperature.as_ref(),
        }
    }

    /// Sets (or with `None` drops) the temperature the run's scores and predictions apply;
    /// the folder is not touched.
    pub fn set_temperature(&mut self, temperature: Option<Temperature>) {
        match self {
            AnyRun::Head(run) => run.temperature = temperature,
            AnyRun::Cnn(run) => run.temperature = temperature,
            AnyRun::FineTune(run) => run.temperature = temperature,
        }
    }

    /// Class names in id order.
    pub fn classes(&self) -> &[String] {
        match self {
            AnyRun::Head(run) => &run.info.classes,
            AnyRun::Cnn(run) => &run.info.classes,
            AnyRun::FineTune(run) => &run.info.classes,
        }
    }

    /// Class probabilities for split `split` (default: validation, else test), from `source`,
    /// calibrated by the run's temperature when it has one; `engine` runs a fine-tuned run's
    /// frozen backbone.
    pub fn score_split(
        &self,
        source: SplitSource<'_>,
        split: Option<&str>,
        engine: &EngineConfig,
    ) -> Result<Scored, NetError> {
        let mut scored = self.score_uncalibrated(source, split, engine)?;
        if let Some(t) = self.temperature() {
            t.apply(&mut scored.probs);
        }
        Ok(scored)
    }

    fn score_uncalibrated(
        &self,
        source: SplitSource<'_>,
        split: Option<&str>,
        engine: &EngineConfig,
    ) -> Result<Scored, NetError> {
        let refuse = |what: &str| NetError::Config(format!("{} is {what}", self.dir().display()));
        match self {
            AnyRun::Head(run) => {
                if source.data.is_some() {
                    return Err(refuse("a head run, which reads feature files, not a data root"));
                }
                score_head(run, source.features, split, source.memory_budget)
            }
            _ if !source.features.is_empty() => {
                Err(refuse("a CNN or fine-tuning run, which reads images, not feature files"))
            }
            AnyRun::Cnn(run) => run.score_split(source.data, split),
            AnyRun::FineTune(run) => run.score_split(source.data, split, engine),
        }
    }

    /// Class probabilities for photos (calibrated, as [`AnyRun::score_split`]), `batch` per
    /// inference call; unreadable ones are skipped and reported.
    pub fn predict_samples(
        &self,
        samples: &[Sample],
        engine: &EngineConfig,
        batch: usize,
    ) -> Result<Predictions, NetError> {
        let mut predictions = match self {
            // the Predictor applies the head run's temperature itself
            AnyRun::Head(run) => return Ok(Predictor::load((**run).clone(), engine, false)?.predict(samples, batch)?),
            AnyRun::Cnn(run) => run.predict_samples(samples)?,
            AnyRun::FineTune(run) => run.predict_samples(samples, engine)?,
        };
        if let Some(t) = self.temperature() {
            t.apply(&mut predictions.probs);
        }
        Ok(predictions)
    }
}

/// A head run's split from feature files (`overrides`, else those named in `run.json`),
/// checked against the run's backbones and widths.
fn score_head(
    run: &Run,
    overrides: &[PathBuf],
    split: Option<&str>,
    budget: Option<usize>,
) -> Result<Scored, NetError> {
    let files: Vec<PathBuf> = if overrides.is_empty() {
        run.info.sources.iter().map(|s| s.file.clone()).collect()
    } else {
        overrides.to_vec()
    };
    let first = files.first().ok_or_else(|| NetError::Config("the run names no feature files".into()))?;
    let have = HeadInputs::splits_of(first)?;
    let labelled = |name: &str| have.iter().any(|(n, labels)| n == name && *labels);
    let name = match split {
        Some(name) => name,
        None if labelled("validation") => "validation",
        None if labelled("test") => "test",
        None => return Err(NetError::Config("no labelled validation or test split in the feature files".into())),
    };
    if !have.iter().any(|(n, _)| n == name) {
        let have: Vec<&str> = have.iter().map(|(n, _)| n.as_str()).collect();
        return Err(NetError::Config(format!(
            "split `{name}`: not in the feature files (they have {})",
            have.join(", ")
        )));
    }
    // only the scored split is opened, and held only when it fits the budget
    let inputs = HeadInputs::open(&files, &[name], budget)?;
    run.check_inputs(&inputs)?;
    let probs = predict_split(&run.head, &inputs, name)?;
    let data = inputs.split(name).expect("every file has the split: open checks them against the first");
    Ok(Scored {
        split: name.to_string(),
        classes: inputs.classes.clone(),
        paths: data.paths.clone(),
        labels: data.labels.clone(),
        photos: data.photos.clone(),
        probs,
        skipped: Vec::new(),
    })
}

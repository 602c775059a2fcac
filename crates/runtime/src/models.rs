//! The model cache: backbones a user has registered once and names afterwards, each as
//! `NAME.onnx` beside its spec `NAME.json` and its `NAME.sha256`, under `$IMGCLF_HOME/models`.

use std::path::{Path, PathBuf};

use crate::{Engine, EngineConfig, EngineKind, ModelSpec, RuntimeError, sha256_file};

/// A folder of registered backbones.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCache {
    /// The cache folder (`$IMGCLF_HOME/models` by default).
    pub dir: PathBuf,
}

/// One registered backbone.
#[derive(Debug, Clone)]
pub struct CachedModel {
    /// The name it is registered under.
    pub name: String,
    /// Its ONNX file in the cache.
    pub model: PathBuf,
    /// Its spec.
    pub spec: ModelSpec,
    /// As recorded when the model was added.
    pub sha256: String,
}

impl CachedModel {
    /// Where the model came from, as its spec says (`source`, else `made_with`).
    pub fn source(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.spec.source_json).ok()?;
        ["source", "made_with"].iter().find_map(|k| json[k].as_str().map(str::to_string))
    }

    /// The feature width the spec declares for its feature output, when it gives a shape.
    pub fn feature_width(&self) -> Option<u64> {
        let json: serde_json::Value = serde_json::from_str(&self.spec.source_json).ok()?;
        let outputs = &json["outputs"];
        if let Some(shape) = outputs["pooled"]["shape"].as_array() {
            return shape.get(1)?.as_u64();
        }
        let shape = outputs["features"]["shape"].as_array()?;
        match outputs["features"]["layout"].as_str() {
            Some("NHWC") => shape.last()?.as_u64(),
            _ => shape.get(1)?.as_u64(),
        }
    }
}

/// What `--model` (and the Python `model=`) names: an existing path, or the plain name of a
/// model in the default cache (`efficientnet-lite0`).
pub fn resolve_model(arg: &Path) -> Result<PathBuf, RuntimeError> {
    let plain_name = arg.components().count() == 1 && arg.extension().is_none();
    if arg.exists() || !plain_name {
        return Ok(arg.to_path_buf());
    }
    Ok(ModelCache::new(ModelCache::default_dir()).get(&arg.to_string_lossy())?.model)
}

impl ModelCache {
    /// `$IMGCLF_HOME/models`, else `$XDG_CACHE_HOME/imgclf/models`, else `~/.cache/imgclf/models`.
    pub fn default_dir() -> PathBuf {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = env("IMGCLF_HOME")
            .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("imgclf")))
            .or_else(|| env("HOME").map(|h| h.join(".cache/imgclf")))
            .unwrap_or_else(|| PathBuf::from(".imgclf"));
        home.join("models")
    }

    /// The cache in folder `dir` (created when a model is added).
    pub fn new(dir: impl Into<PathBuf>) -> ModelCache {
        ModelCache { dir: dir.into() }
    }

    /// Every registered model, by name; an empty list when the folder does not exist yet.
    pub fn list(&self) -> Result<Vec<CachedModel>, RuntimeError> {
        self.known_names().iter().map(|n| self.get(n)).collect()
    }

    /// A registered model by name; the error lists the names there are.
    pub fn get(&self, name: &str) -> Result<CachedModel, RuntimeError> {
        let model = self.dir.join(format!("{name}.onnx"));
        if !model.is_file() {
            let known = self.known_names();
            return Err(RuntimeError::Spec {
                path: model,
                reason: format!(
                    "no model `{name}` in the cache ({}); `ModelCache::add` registers one",
                    if known.is_empty() { "it is empty".into() } else { format!("it has {}", known.join(", ")) }
                ),
            });
        }
        let sha_path = model.with_extension("sha256");
        let sha256 = std::fs::read_to_string(&sha_path).map_err(RuntimeError::io(&sha_path))?.trim().to_string();
        Ok(CachedModel { name: name.into(), spec: ModelSpec::for_model(&model)?, model, sha256 })
    }

    /// Refuses a name already registered unless `replace`: checked by `add`, and early by
    /// callers with slow work to do before adding (a download, a conversion).
    pub fn ensure_free(&self, name: &str, replace: bool) -> Result<(), RuntimeError> {
        let target = self.dir.join(format!("{name}.onnx"));
        if target.exists() && !replace {
            return Err(RuntimeError::Spec {
                path: target,
                reason: format!("a model `{name}` is already registered; it is replaced only with `replace`"),
            });
        }
        Ok(())
    }

    /// The registered names, sorted: the stems of the `.onnx` files.
    fn known_names(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                let mut v: Vec<String> = d
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Registers `model` with the spec at `spec` under `name` (default: the spec's name in
    /// lower case, `EfficientNet-Lite0` → `efficientnet-lite0`). The model is loaded first
    /// (tract) to check its input and outputs against the spec; nothing is written if that
    /// fails. An existing name is replaced only with `replace`.
    pub fn add(
        &self,
        model: &Path,
        spec: &Path,
        name: Option<&str>,
        replace: bool,
    ) -> Result<CachedModel, RuntimeError> {
        let text = std::fs::read_to_string(spec).map_err(RuntimeError::io(spec))?;
        self.add_with_spec(model, &text, spec, name, replace)
    }

    /// [`add`](Self::add) with the spec given as text; `spec` only names it in errors.
    pub fn add_with_spec(
        &self,
        model: &Path,
        text: &str,
        spec: &Path,
        name: Option<&str>,
        replace: bool,
    ) -> Result<CachedModel, RuntimeError> {
        let parsed =
            ModelSpec::parse(text).map_err(|reason| RuntimeError::Spec { path: spec.to_path_buf(), reason })?;
        let name = name.map_or_else(|| default_name(&parsed.name), str::to_string);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(RuntimeError::Spec {
                path: spec.to_path_buf(),
                reason: format!("`{name}` is not a usable model name (letters, digits, - _ . only)"),
            });
        }
        Engine::load(model, &parsed, &parsed.outputs(), &EngineConfig::cpu(EngineKind::Tract, 1))?;
        self.ensure_free(&name, replace)?;
        let target = self.dir.join(format!("{name}.onnx"));
        std::fs::create_dir_all(&self.dir).map_err(RuntimeError::io(&self.dir))?;
        let sha256 = sha256_file(model)?;
        let staged = imgclf_dataset::TempFile::beside(&target);
        std::fs::copy(model, staged.path()).map_err(RuntimeError::io(staged.path()))?;
        let spec_path = ModelSpec::path_for(&target);
        std::fs::write(&spec_path, text).map_err(RuntimeError::io(&spec_path))?;
        let sha_path = target.with_extension("sha256");
        std::fs::write(&sha_path, format!("{sha256}\n")).map_err(RuntimeError::io(&sha_path))?;
        staged.persist().map_err(RuntimeError::io(&target))?;
        self.get(&name)
    }
}

fn default_name(spec_name: &str) -> String {
    spec_name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_outputs(outputs: &str) -> CachedModel {
        let text = format!(
            r#"{{"name": "Net", "input": {{"name": "input", "layout": "NHWC", "size": [8, 8], "color": "RGB", "scale": "tf"}}, "outputs": {outputs}}}"#
        );
        let spec = ModelSpec::parse(&text).unwrap();
        CachedModel { name: "net".into(), model: "net.onnx".into(), spec, sha256: String::new() }
    }

    #[test]
    fn the_feature_width_comes_from_the_declared_shapes() {
        let nhwc = with_outputs(r#"{"features": {"name": "f", "layout": "NHWC", "shape": ["batch", 7, 7, 2048]}}"#);
        assert_eq!(nhwc.feature_width(), Some(2048));
        let nchw = with_outputs(r#"{"features": {"name": "f", "layout": "NCHW", "shape": ["batch", 1280, 7, 7]}}"#);
        assert_eq!(nchw.feature_width(), Some(1280));
        let pooled = with_outputs(r#"{"features": null, "pooled": {"name": "p", "shape": ["batch", 512]}}"#);
        assert_eq!(pooled.feature_width(), Some(512));
        assert_eq!(with_outputs(r#"{"features": {"name": "f", "layout": "NCHW"}}"#).feature_width(), None);
    }

    #[test]
    fn default_names_are_the_spec_name_in_lower_case() {
        assert_eq!(default_name("EfficientNet-Lite0"), "efficientnet-lite0");
        assert_eq!(default_name("ResNet50 v2"), "resnet50-v2");
    }
}

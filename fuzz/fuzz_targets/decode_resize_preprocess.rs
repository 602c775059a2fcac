//! Arbitrary bytes through what every image meets: decode → resize → preprocess, under a
//! spec that is either built from the input's first bytes (every layout, colour order,
//! scaling, fit and filter) or parsed from arbitrary text. Nothing may panic, and a tensor
//! that comes out has the spec's shape and only finite values.
#![no_main]

use std::path::Path;

use imgclf_dataset::decode_rgb;
use imgclf_features::{ModelSpec, preprocess_batch};
use libfuzzer_sys::fuzz_target;

const SCALES: [&str; 6] = ["caffe", "tf", "torch", "unit", "none", "mean_std"];
const FILTERS: [&str; 4] = ["nearest", "bilinear", "bicubic", "lanczos3"];

/// `[h, w, flags, spec_len, spec text..., image bytes...]`.
fn spec_from(control: &[u8; 4], text: &[u8]) -> Option<ModelSpec> {
    if control[2] & 0x80 != 0 {
        // arbitrary spec text: parse errors are fine, panics are not
        return ModelSpec::parse(std::str::from_utf8(text).ok()?).ok();
    }
    let flags = control[2];
    let json = serde_json::json!({
        "name": "Fuzz",
        "input": {
            "name": "input",
            "layout": if flags & 1 == 0 { "NCHW" } else { "NHWC" },
            "size": [1 + control[0] as u32 % 96, 1 + control[1] as u32 % 96],
            "color": if flags & 2 == 0 { "RGB" } else { "BGR" },
            "scale": SCALES[(flags >> 2) as usize % SCALES.len()],
            "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
            "resize": {
                "policy": if flags & 0x20 == 0 { "resize" } else { "center_crop_then_resize" },
                "interpolation": FILTERS[(flags >> 6) as usize % FILTERS.len()],
            },
        },
        "outputs": {"features": {"name": "f"}},
    });
    Some(ModelSpec::parse(&json.to_string()).expect("generated specs are valid"))
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = data.split_first_chunk::<4>() else { return };
    let spec_len = (control[3] as usize).min(rest.len());
    let (text, image) = rest.split_at(spec_len);
    let Some(spec) = spec_from(control, text) else { return };
    let path = Path::new("fuzz.img");
    let Ok(decoded) = decode_rgb(image, path) else { return };
    let Ok(resized) = spec.resize.apply(&decoded, path) else { return };
    let tensor = preprocess_batch(&spec, &[resized]);
    assert_eq!(tensor.shape(), spec.input_shape(1));
    assert!(tensor.iter().all(|v| v.is_finite()));
});

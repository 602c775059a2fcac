//! Plumbing the sibling crates share, not part of the features API: the ONNX writer the zoo's
//! converters and the pixel feed build graphs with.

pub mod onnx;

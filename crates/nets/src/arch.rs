//! The tutorial's networks as plain layers over candle tensors (NCHW inside, Keras' shapes,
//! initialisation and parameter counts outside).

use candle_core::{DType, Device, Tensor, Var};
use imgclf_augment::AugmentParams;
use imgclf_dataset::Rng;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::NetError;

/// A network trained from pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 3 × (Conv 3×3 32/32/64 → ReLU → MaxPool 2×2) → Dense(64, relu) → Dropout(0.5) → output:
    /// the cats-vs-dogs net of the tutorial ("very little data").
    Small,
    /// Conv 5×5 20 same → ReLU → MaxPool → Conv 5×5 50 same → ReLU → MaxPool → Dense(500, relu)
    /// → Dense(classes, softmax): the tutorial's traffic-sign LeNet.
    Lenet,
}

imgclf_dataset::named_enum!(Arch { Arch::Small => "small", Arch::Lenet => "lenet" });

impl Arch {
    /// The tutorial's augmentation for this network: shear 0.2, zoom 0.2 and horizontal flips
    /// for the small CNN; rotation 30, shifts 0.1, shear 0.2 and zoom 0.2 for LeNet (signs
    /// are not mirrored).
    pub fn tutorial_augment(self) -> AugmentParams {
        let spec = match self {
            Arch::Small => "shear=0.2,zoom=0.2,hflip",
            Arch::Lenet => "rotation=30,shift=0.1,shear=0.2,zoom=0.2",
        };
        spec.parse().expect("the tutorial's settings are valid")
    }

    /// An augmentation setting for this network: `default` (its tutorial setting), `none`, or
    /// the [`AugmentParams`] syntax (`rotation=30,shift=0.1,...`).
    pub fn augment(self, setting: &str) -> Result<Option<AugmentParams>, String> {
        match setting {
            "default" => Ok(Some(self.tutorial_augment())),
            "none" => Ok(None),
            spec => match spec.parse::<AugmentParams>()? {
                p if p.rescale.is_some() => Err(crate::train::RESCALE_BUILT_IN.into()),
                p => Ok(Some(p)),
            },
        }
    }

    /// The tutorial's learning-rate decay: LeNet decays by `lr / epochs` per step, as its
    /// script passes `decay=INIT_LR / EPOCHS` to Adam; the small CNN does not decay.
    pub fn tutorial_decay(self, learning_rate: f32, epochs: usize) -> f32 {
        match self {
            Arch::Lenet => learning_rate / epochs.max(1) as f32,
            Arch::Small => 0.0,
        }
    }

    /// The tutorial's layers in Keras' order, then `variant`'s changes, ending with the
    /// output layer's units (its activation is in the loss: sigmoid for one unit, softmax
    /// otherwise).
    pub fn layers(self, classes: usize, variant: Variant) -> Vec<LayerSpec> {
        let mut layers = self.tutorial_layers(classes);
        if variant.batch_norm {
            let convs: Vec<usize> = layers
                .iter()
                .enumerate()
                .filter(|(_, l)| matches!(l, LayerSpec::Conv { .. }))
                .map(|(i, _)| i)
                .collect();
            for i in convs.into_iter().rev() {
                layers.insert(i + 1, LayerSpec::BatchNorm);
            }
        }
        if let Some(rate) = variant.dropout {
            match layers.iter().position(|l| matches!(l, LayerSpec::Dropout { .. })) {
                Some(i) => layers[i] = LayerSpec::Dropout { rate },
                None => layers.insert(layers.len() - 1, LayerSpec::Dropout { rate }),
            }
        }
        layers
    }

    fn tutorial_layers(self, classes: usize) -> Vec<LayerSpec> {
        use LayerSpec::*;
        match self {
            Arch::Small => vec![
                Conv { filters: 32, kernel: 3, same: false },
                Relu,
                MaxPool,
                Conv { filters: 32, kernel: 3, same: false },
                Relu,
                MaxPool,
                Conv { filters: 64, kernel: 3, same: false },
                Relu,
                MaxPool,
                Flatten,
                Dense { units: 64 },
                Relu,
                Dropout { rate: 0.5 },
                Dense { units: output_units(self, classes) },
            ],
            Arch::Lenet => vec![
                Conv { filters: 20, kernel: 5, same: true },
                Relu,
                MaxPool,
                Conv { filters: 50, kernel: 5, same: true },
                Relu,
                MaxPool,
                Flatten,
                Dense { units: 500 },
                Relu,
                Dense { units: output_units(self, classes) },
            ],
        }
    }
}

/// The small CNN answers two classes with one sigmoid unit, as the tutorial; everything else
/// has one softmax unit per class.
pub fn output_units(arch: Arch, classes: usize) -> usize {
    if arch == Arch::Small && classes == 2 { 1 } else { classes }
}

/// Changes to an [`Arch`] beyond the tutorial's: the default is the tutorial's network.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Variant {
    /// Batch normalisation after every convolution (Keras' defaults: momentum 0.99, epsilon 1e-3).
    #[serde(default)]
    pub batch_norm: bool,
    /// The rate of the dropout before the output layer (replacing the small CNN's 0.5; added
    /// to LeNet, which has none).
    #[serde(default)]
    pub dropout: Option<f32>,
}

/// One layer of an [`Arch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// Stride 1; `same` pads to keep the size (odd kernels), else Keras' "valid".
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel side.
        kernel: usize,
        /// Keras' "same" padding.
        same: bool,
    },
    /// Batch normalisation over the channels.
    BatchNorm,
    /// ReLU.
    Relu,
    /// 2×2, stride 2, rounding down.
    MaxPool,
    /// Channels-last flattening, as Keras' `Flatten` on NHWC.
    Flatten,
    /// A fully connected layer.
    Dense {
        /// Output units.
        units: usize,
    },
    /// Dropout in training.
    Dropout {
        /// The share of values dropped.
        rate: f32,
    },
}

/// A convolution with its bias; the kernel is `(out, in, k, k)`.
pub struct Conv {
    /// `(out, in, k, k)`.
    pub kernel: Var,
    /// One value per output channel.
    pub bias: Var,
    /// Zeros added on each side (0: Keras' "valid").
    pub padding: usize,
}

impl Conv {
    /// The convolution of an NCHW batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, NetError> {
        Ok(imgclf_kernels::conv2d(x, self.kernel.as_tensor(), self.bias.as_tensor(), self.padding)?)
    }
}

/// A fully connected layer; the kernel is `(in, out)`, as Keras stores it.
pub struct Dense {
    /// `(inputs, outputs)`.
    pub kernel: Var,
    /// One value per output.
    pub bias: Var,
}

impl Dense {
    /// `x · kernel + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, NetError> {
        Ok(imgclf_kernels::dense(x, self.kernel.as_tensor(), self.bias.as_tensor(), false)?)
    }
}

/// Batch normalisation over the channels of `(n, c, h, w)`: batch statistics in training
/// (folded into moving averages), the moving averages otherwise.
pub struct BatchNorm {
    /// Scale per channel.
    pub gamma: Var,
    /// Offset per channel.
    pub beta: Var,
    /// Running mean per channel, used at inference.
    pub moving_mean: Var,
    /// Running variance per channel, used at inference.
    pub moving_variance: Var,
}

impl BatchNorm {
    const MOMENTUM: f64 = 0.99;
    const EPSILON: f64 = 1e-3;

    fn new(c: usize, dev: &Device) -> Result<BatchNorm, NetError> {
        let f = DType::F32;
        Ok(BatchNorm {
            gamma: Var::ones(c, f, dev)?,
            beta: Var::zeros(c, f, dev)?,
            moving_mean: Var::zeros(c, f, dev)?,
            moving_variance: Var::ones(c, f, dev)?,
        })
    }

    /// Normalised by the batch's statistics in training (updating the running ones), else by the running ones.
    pub fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor, NetError> {
        let c = x.dim(1)?;
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
        let (mean, variance) = if training {
            let flat = x.transpose(0, 1)?.flatten_from(1)?; // (c, n·h·w)
            let mean = flat.mean(1)?;
            let variance = flat.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(1)?;
            let m = Self::MOMENTUM;
            self.moving_mean.set(&((self.moving_mean.as_tensor() * m)? + (mean.detach() * (1.0 - m))?)?)?;
            self.moving_variance.set(&((self.moving_variance.as_tensor() * m)? + (variance.detach() * (1.0 - m))?)?)?;
            (mean, variance)
        } else {
            (self.moving_mean.as_tensor().clone(), self.moving_variance.as_tensor().clone())
        };
        let scale = (self.gamma.as_tensor() / (variance + Self::EPSILON)?.sqrt()?)?;
        let shift = (self.beta.as_tensor() - mean.mul(&scale)?)?;
        Ok(x.broadcast_mul(&per_channel(&scale)?)?.broadcast_add(&per_channel(&shift)?)?)
    }
}

enum Layer {
    Conv(Conv),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool,
    /// ReLU then max-pool, one fused op (`pool_relu`): what a Relu followed by a MaxPool
    /// becomes when the layers are built. The summary keeps both rows.
    ReluPool,
    /// A convolution followed by ReLU and max-pool, one fused op (`conv_relu_pool`): what a
    /// Conv followed by a ReluPool becomes.
    ConvReluPool(Conv),
    /// A fully connected layer followed by ReLU, one op (`dense` with `relu`): what a Dense
    /// followed by a Relu becomes.
    DenseRelu(Dense),
    Flatten,
    Dense(Dense),
    Dropout(f32),
}

/// One row of [`Net::summary`], as Keras' `model.summary()` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Keras' layer name (`Conv2D`, `MaxPooling2D`, ...).
    pub kind: &'static str,
    /// Channels-last, without the batch axis: `[148, 148, 32]`, `[64]`.
    pub output_shape: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
}

/// A network with its weights: [`Arch`] layers for a fixed input size and class count.
pub struct Net {
    /// The architecture.
    pub arch: Arch,
    /// `[height, width]` of the RGB input.
    pub input: [usize; 2],
    /// Classes of the output.
    pub classes: usize,
    layers: Vec<Layer>,
    summary: Vec<LayerSummary>,
    device: Device,
}

impl Net {
    /// Builds the layers with Keras' initialisation (Glorot-uniform kernels, zero biases),
    /// drawn from `rng`. Refuses an input too small for the layers.
    pub fn new(arch: Arch, input: [usize; 2], classes: usize, rng: &mut Rng, device: &Device) -> Result<Net, NetError> {
        Net::with_variant(arch, Variant::default(), input, classes, rng, device)
    }

    /// [`Net::new`] with `variant`'s changes to the tutorial's layers.
    pub fn with_variant(
        arch: Arch,
        variant: Variant,
        input: [usize; 2],
        classes: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Net, NetError> {
        // drawn in one order whatever the device: a run starts from the same weights anywhere
        let dev = device.clone();
        let (mut h, mut w, mut c) = (input[0], input[1], 3usize);
        let mut flat = 0;
        let (mut layers, mut summary) = (Vec::new(), Vec::new());
        let too_small = || {
            NetError::Config(format!(
                "{}x{} px is too small for {arch:?}: a layer's output would be empty",
                input[0], input[1]
            ))
        };
        for spec in arch.layers(classes, variant) {
            let (layer, kind, shape, params) = match spec {
                LayerSpec::Conv { filters, kernel, same } => {
                    if !same {
                        h = h.checked_sub(kernel - 1).filter(|&v| v > 0).ok_or_else(too_small)?;
                        w = w.checked_sub(kernel - 1).filter(|&v| v > 0).ok_or_else(too_small)?;
                    }
                    let k = glorot(
                        rng,
                        (filters, c, kernel, kernel),
                        kernel * kernel * c,
                        kernel * kernel * filters,
                        &dev,
                    )?;
                    let params = filters * c * kernel * kernel + filters;
                    c = filters;
                    let conv = Conv {
                        kernel: k,
                        bias: Var::zeros(filters, DType::F32, &dev)?,
                        padding: if same { kernel / 2 } else { 0 },
                    };
                    (Layer::Conv(conv), "Conv2D", vec![h, w, c], params)
                }
                LayerSpec::BatchNorm => (
                    Layer::BatchNorm(BatchNorm::new(c, &dev)?),
                    "BatchNormalization",
                    same_shape(&summary, [h, w, c]),
                    4 * c,
                ),
                LayerSpec::Relu => (Layer::Relu, "Activation", same_shape(&summary, [h, w, c]), 0),
                LayerSpec::MaxPool => {
                    (h, w) = (h / 2, w / 2);
                    if h == 0 || w == 0 {
                        return Err(too_small());
                    }
                    (Layer::MaxPool, "MaxPooling2D", vec![h, w, c], 0)
                }
                LayerSpec::Flatten => {
                    flat = h * w * c;
                    (Layer::Flatten, "Flatten", vec![flat], 0)
                }
                LayerSpec::Dense { units } => {
                    let k = glorot(rng, (flat, units), flat, units, &dev)?;
                    let params = flat * units + units;
                    let dense = Dense { kernel: k, bias: Var::zeros(units, DType::F32, &dev)? };
                    flat = units;
                    (Layer::Dense(dense), "Dense", vec![units], params)
                }
                LayerSpec::Dropout { rate } => (Layer::Dropout(rate), "Dropout", same_shape(&summary, [h, w, c]), 0),
            };
            match (layers.last(), layer) {
                (Some(Layer::Relu), Layer::MaxPool) => *layers.last_mut().expect("matched") = Layer::ReluPool,
                (_, layer) => layers.push(layer),
            }
            match layers[..] {
                [.., Layer::Conv(_), Layer::ReluPool] => {
                    layers.pop();
                    let Some(Layer::Conv(conv)) = layers.pop() else { unreachable!("matched") };
                    layers.push(Layer::ConvReluPool(conv));
                }
                [.., Layer::Dense(_), Layer::Relu] => {
                    layers.pop();
                    let Some(Layer::Dense(dense)) = layers.pop() else { unreachable!("matched") };
                    layers.push(Layer::DenseRelu(dense));
                }
                _ => {}
            }
            summary.push(LayerSummary { kind, output_shape: shape, params });
        }
        Ok(Net { arch, input, classes, layers, summary, device: dev })
    }

    /// Where its tensors live, and its batches go.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Output shapes and parameter counts per layer, comparable with Keras' summary.
    pub fn summary(&self) -> &[LayerSummary] {
        &self.summary
    }

    /// Trainable parameters, as Keras' `model.summary()` counts them.
    pub fn parameter_count(&self) -> usize {
        self.summary.iter().map(|l| l.params).sum()
    }

    /// The trainable tensors with stable names (`conv1.kernel`, `dense2.bias`,
    /// `batch_norm1.gamma`...), in layer order.
    pub fn params(&self) -> Vec<(String, &Var)> {
        self.tensors().into_iter().filter(|(name, _)| !name.contains(".moving_")).collect()
    }

    /// Every tensor a checkpoint holds: the parameters and batch norm's moving averages.
    pub fn tensors(&self) -> Vec<(String, &Var)> {
        let (mut convs, mut denses, mut norms, mut out) = (0, 0, 0, Vec::new());
        for layer in &self.layers {
            let named: Vec<(String, &Var)> = match layer {
                Layer::Conv(l) | Layer::ConvReluPool(l) => {
                    convs += 1;
                    vec![(format!("conv{convs}.kernel"), &l.kernel), (format!("conv{convs}.bias"), &l.bias)]
                }
                Layer::Dense(l) | Layer::DenseRelu(l) => {
                    denses += 1;
                    vec![(format!("dense{denses}.kernel"), &l.kernel), (format!("dense{denses}.bias"), &l.bias)]
                }
                Layer::BatchNorm(l) => {
                    norms += 1;
                    let name = |field: &str| format!("batch_norm{norms}.{field}");
                    vec![
                        (name("gamma"), &l.gamma),
                        (name("beta"), &l.beta),
                        (name("moving_mean"), &l.moving_mean),
                        (name("moving_variance"), &l.moving_variance),
                    ]
                }
                _ => continue,
            };
            out.extend(named);
        }
        out
    }

    /// Logits `(n, units)` for `(n, 3, height, width)` inputs. With `dropout` (training), each
    /// dropout layer draws its mask from it; without, dropout is the identity.
    pub fn forward(&self, x: &Tensor, mut dropout: Option<&mut Rng>) -> Result<Tensor, NetError> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(l) => l.forward(&x)?,
                Layer::BatchNorm(l) => l.forward(&x, dropout.is_some())?,
                Layer::ReluPool => imgclf_kernels::pool_relu(&x)?,
                Layer::ConvReluPool(l) => {
                    imgclf_kernels::conv_relu_pool(&x, l.kernel.as_tensor(), l.bias.as_tensor(), l.padding)?
                }
                Layer::Relu => x.relu()?,
                Layer::MaxPool => x.max_pool2d(2)?,
                Layer::Flatten => x.flatten_from(1)?,
                Layer::Dense(l) => l.forward(&x)?,
                Layer::DenseRelu(l) => imgclf_kernels::dense(&x, l.kernel.as_tensor(), l.bias.as_tensor(), true)?,
                Layer::Dropout(rate) => match dropout.as_deref_mut() {
                    Some(rng) => self::dropout(&x, *rate, rng)?,
                    None => x,
                },
            };
        }
        Ok(x)
    }

    /// Class probabilities `(n, classes)` from logits: a sigmoid unit becomes two columns.
    pub fn probabilities(&self, logits: &Tensor) -> Result<Array2<f32>, NetError> {
        crate::train::probabilities(logits, self.classes)
    }
}

/// Inverted dropout as Keras applies it in training: each value zeroed with probability
/// `rate`, the others scaled by `1 / (1 - rate)`, the mask drawn from `rng`.
pub(crate) fn dropout(x: &Tensor, rate: f32, rng: &mut Rng) -> Result<Tensor, NetError> {
    let keep = 1.0 / (1.0 - rate);
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.next_f32() < rate { 0.0 } else { keep }).collect();
    Ok(x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)?)
}

/// Shape-keeping layers (activations, dropout) output their input's shape.
fn same_shape(summary: &[LayerSummary], input: [usize; 3]) -> Vec<usize> {
    summary.last().map_or(input.to_vec(), |l| l.output_shape.clone())
}

/// Keras' `glorot_uniform`: uniform in ±sqrt(6 / (fan_in + fan_out)).
fn glorot<S: Into<candle_core::Shape>>(
    rng: &mut Rng,
    shape: S,
    fan_in: usize,
    fan_out: usize,
    dev: &Device,
) -> Result<Var, NetError> {
    let shape = shape.into();
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let values: Vec<f32> = (0..shape.elem_count()).map(|_| rng.uniform(-limit, limit) as f32).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(values, shape, dev)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmentation_settings_name_the_tutorial_none_or_a_spec() {
        assert_eq!(Arch::Lenet.augment("default").unwrap(), Some(Arch::Lenet.tutorial_augment()));
        assert!(Arch::Small.tutorial_augment().horizontal_flip && !Arch::Lenet.tutorial_augment().horizontal_flip);
        assert_eq!(Arch::Small.augment("none").unwrap(), None);
        assert_eq!(Arch::Small.augment("rotation=5").unwrap().unwrap().rotation_range, 5.0);
        assert!(Arch::Small.augment("spin=5").unwrap_err().contains("unknown `spin`"));
        let rescale = Arch::Small.augment("shear=0.2,rescale=1/255").unwrap_err();
        assert!(rescale.contains("already applies, in training and scoring alike"), "{rescale}");
    }

    #[test]
    fn an_input_too_small_for_the_layers_is_refused() {
        let err = Net::new(Arch::Small, [12, 12], 2, &mut Rng::new(1), &Device::Cpu)
            .err()
            .expect("12 px cannot pass 3 convs")
            .to_string();
        assert!(err.contains("12x12 px is too small"), "{err}");
        assert!(Net::new(Arch::Small, [22, 22], 2, &mut Rng::new(1), &Device::Cpu).is_ok());
    }

    #[test]
    fn forward_gives_one_logit_row_per_image_and_probabilities_sum_to_one() {
        let net = Net::new(Arch::Lenet, [16, 16], 5, &mut Rng::new(3), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(
            (0..2 * 3 * 16 * 16).map(|i| (i % 7) as f32 / 7.0).collect(),
            (2, 3, 16, 16),
            &Device::Cpu,
        )
        .unwrap();
        let logits = net.forward(&x, None).unwrap();
        assert_eq!(logits.dims(), &[2, 5]);
        let p = net.probabilities(&logits).unwrap();
        for row in p.outer_iter() {
            assert!((row.sum() - 1.0).abs() < 1e-5, "{row}");
        }
        let small = Net::new(Arch::Small, [30, 30], 2, &mut Rng::new(3), &Device::Cpu).unwrap();
        let x = Tensor::ones((3, 3, 30, 30), DType::F32, &Device::Cpu).unwrap();
        let p = small.probabilities(&small.forward(&x, None).unwrap()).unwrap();
        assert_eq!(p.dim(), (3, 2));
        assert!((p[[0, 0]] + p[[0, 1]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn batch_norm_uses_batch_statistics_in_training_and_moving_averages_after() {
        let bn = BatchNorm::new(2, &Device::Cpu).unwrap();
        let values: Vec<f32> = (0..2 * 2 * 3 * 3).map(|i| (i % 7) as f32 * 3.0 + (i / 9 % 2) as f32 * 50.0).collect();
        let x = Tensor::from_vec(values, (2, 2, 3, 3), &Device::Cpu).unwrap();
        let y = bn.forward(&x, true).unwrap();
        for c in 0..2 {
            let ch = y.narrow(1, c, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mean = ch.iter().sum::<f32>() / ch.len() as f32;
            let var = ch.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / ch.len() as f32;
            assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-2, "channel {c}: mean {mean} var {var}");
        }
        let moved = bn.moving_mean.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(moved.iter().all(|m| *m > 0.0), "one step towards the batch mean: {moved:?}");
        // inference: (x - moving_mean) / sqrt(moving_variance + eps), gamma 1, beta 0
        let y = bn.forward(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let var = bn.moving_variance.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let x0 = x.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((y[0] - (x0 - moved[0]) / (var[0] + 1e-3).sqrt()).abs() < 1e-4);
    }

    #[test]
    fn dropout_draws_masks_only_when_training() {
        let net = Net::new(Arch::Small, [30, 30], 2, &mut Rng::new(3), &Device::Cpu).unwrap();
        let x = Tensor::ones((4, 3, 30, 30), DType::F32, &Device::Cpu).unwrap();
        let eval = |net: &Net| net.forward(&x, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(eval(&net), eval(&net));
        let a = net.forward(&x, Some(&mut Rng::new(5))).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = net.forward(&x, Some(&mut Rng::new(6))).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(a, b, "different masks give different logits");
    }
}

//! Real-CUGAN "se" (bilibili/ailab, 2022): `UpCunet2x`, `UpCunet3x` and `UpCunet4x`, the cascaded
//! U-Nets behind the `models-se` weights of realcugan-ncnn-vulkan.
//!
//! Follows `upcunet_v3.py` of bilibili/ailab (Real-CUGAN) in its whole-image form: reflect padding
//! (18 px at 2x, 14 at 3x, 19 at 4x, then up to an even size, a multiple of 4 at 3x), two U-Nets of
//! unpadded ("valid") 3×3 convolutions, stride-2 2×2 convolutions down, 2×2 transposed
//! convolutions up, squeeze-excitation (SE) blocks and LeakyReLU(0.1); the output is cropped to
//! `s·H × s·W`, and at 4x a nearest-neighbour upsample of the input is added.
//!
//! The SE blocks scale each channel by a gate computed from the channel's mean over the *whole*
//! input, so a tile run on its own gets other gates than the whole image and tiles show seams.
//! [`UpCunet::se_means`] records the means of one pass (e.g. over a downscaled copy of the whole
//! image, as realcugan-ncnn-vulkan's `-c 3` "very rough sync" does) and
//! [`UpCunet::forward_with_means`] runs every tile with them.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::{PixelShuffle, PixelShuffleConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Device, Tensor};

use crate::fused::{self, Activation};

/// The negative slope of every LeakyReLU.
const SLOPE: f32 = 0.1;
const LEAKY: Activation<'static> = Activation::LeakyRelu(SLOPE);

/// Hyper-parameters of [`UpCunet`].
#[derive(Config, Debug, PartialEq)]
pub struct UpCunetConfig {
    /// Scale factor: 2, 3 or 4.
    pub scale: usize,
}

impl UpCunetConfig {
    /// Reflect padding added on every side before the U-Nets, in input pixels.
    pub fn prepadding(&self) -> usize {
        match self.scale {
            2 => 18,
            3 => 14,
            _ => 19,
        }
    }

    /// The padded size is rounded up to a multiple of this.
    fn size_multiple(&self) -> usize {
        if self.scale == 3 { 4 } else { 2 }
    }

    /// Smallest input side the reflect padding accepts (it must be shorter than the side).
    pub fn min_size(&self) -> usize {
        self.prepadding() + self.size_multiple()
    }

    /// Builds a randomly initialised [`UpCunet`] on `device`.
    ///
    /// # Panics
    /// If `scale` is not 2, 3 or 4.
    pub fn init(&self, device: &Device) -> UpCunet {
        assert!((2..=4).contains(&self.scale), "Real-CUGAN exists at 2x, 3x and 4x, not {}x", self.scale);
        // At 4x both U-Nets work on 64 channels and a final convolution + pixel shuffle makes RGB.
        let (unet_out, bottom) = match self.scale {
            2 => (3, ConvTranspose2dConfig::new([64, 3], [4, 4]).with_stride([2, 2]).with_padding([3, 3])),
            3 => (3, ConvTranspose2dConfig::new([64, 3], [5, 5]).with_stride([3, 3]).with_padding([2, 2])),
            _ => (64, ConvTranspose2dConfig::new([64, 64], [4, 4]).with_stride([2, 2]).with_padding([3, 3])),
        };
        let four = self.scale == 4;
        UpCunet {
            unet1: UNet1 {
                conv1: UNetConv::new(3, 32, 64, false, device),
                conv1_down: down(64, 64, device),
                conv2: UNetConv::new(64, 128, 64, true, device),
                conv2_up: up(64, 64, device),
                conv3: valid(64, 64, 3, device),
                conv_bottom: bottom.init(device),
            },
            unet2: UNet2 {
                conv1: UNetConv::new(unet_out, 32, 64, false, device),
                conv1_down: down(64, 64, device),
                conv2: UNetConv::new(64, 64, 128, true, device),
                conv2_down: down(128, 128, device),
                conv3: UNetConv::new(128, 256, 128, true, device),
                conv3_up: up(128, 128, device),
                conv4: UNetConv::new(128, 64, 64, true, device),
                conv4_up: up(64, 64, device),
                conv5: valid(64, 64, 3, device),
                conv_bottom: valid(64, unet_out, 3, device),
            },
            conv_final: four.then(|| valid(64, 12, 3, device)),
            shuffle: PixelShuffleConfig::new(2).init(),
            residual: Interpolate2dConfig::new()
                .with_scale_factor(Some([4.0, 4.0]))
                .with_mode(InterpolateMode::Nearest)
                .init(),
            scale: self.scale,
            prepadding: self.prepadding(),
            size_multiple: self.size_multiple(),
        }
    }
}

/// An unpadded `k×k` convolution with bias.
fn valid(channels_in: usize, channels_out: usize, kernel: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel]).init(device)
}

/// The 2×2, stride-2 convolution that halves the resolution.
fn down(channels_in: usize, channels_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [2, 2]).with_stride([2, 2]).init(device)
}

/// The 2×2, stride-2 transposed convolution that doubles it.
fn up(channels_in: usize, channels_out: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([channels_in, channels_out], [2, 2]).with_stride([2, 2]).init(device)
}

/// Removes `n` pixels from every side.
fn shave(x: Tensor<4>, n: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.slice([0..b, 0..c, n..h - n, n..w - n])
}

/// Squeeze-excitation: each channel is scaled by `σ(W₂·relu(W₁·mean(x) + b₁) + b₂)`.
#[derive(Module, Debug)]
pub struct SeBlock {
    /// `C → C/8`, a 1×1 convolution on the channel means.
    pub conv1: Conv2d,
    /// `C/8 → C`.
    pub conv2: Conv2d,
}

impl SeBlock {
    /// Scales `x` by the gates of its own channel means, or of `state`'s fixed means.
    ///
    /// # Shapes
    /// `[batch, C, H, W] → [batch, C, H, W]`
    fn forward(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let means = match &state.fixed {
            // Another engine's means are f32; the network may run in f16.
            Some(fixed) => fixed[state.recorded.len()].clone().cast(x.dtype()),
            None => fused::channel_means(x.clone()),
        };
        state.recorded.push(means.clone());
        let gate = sigmoid(self.conv2.forward(relu(self.conv1.forward(means))));
        fused::scale_channels(x, gate)
    }
}

/// The channel means the SE blocks use, in the order they run.
#[derive(Debug, Clone)]
pub struct SeMeans(Vec<Tensor<4>>);

impl SeMeans {
    /// The means as plain vectors, one per SE block in the order they run (read back from the
    /// device), e.g. to hand them to another engine.
    ///
    /// # Errors
    /// The read-back's message, when it fails.
    pub async fn to_vectors(&self) -> Result<Vec<Vec<f32>>, String> {
        let mut vectors = Vec::with_capacity(self.0.len());
        for means in &self.0 {
            let data =
                means.clone().cast(DType::F32).into_data_async().await.map_err(|e| format!("{e:?}"))?;
            vectors.push(data.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?);
        }
        Ok(vectors)
    }
}

/// Means to use instead of computing them (`fixed`), and those used so far (`recorded`).
struct SeState {
    fixed: Option<Vec<Tensor<4>>>,
    recorded: Vec<Tensor<4>>,
}

/// Two valid 3×3 convolutions with LeakyReLU(0.1), optionally followed by an SE block.
#[derive(Module, Debug)]
pub struct UNetConv {
    /// `in → mid`
    pub conv1: Conv2d,
    /// `mid → out`
    pub conv2: Conv2d,
    /// Present in every `UNetConv` but the first of each U-Net.
    pub seblock: Option<SeBlock>,
}

impl UNetConv {
    fn new(channels_in: usize, mid: usize, channels_out: usize, se: bool, device: &Device) -> Self {
        Self {
            conv1: valid(channels_in, mid, 3, device),
            conv2: valid(mid, channels_out, 3, device),
            seblock: se.then(|| SeBlock {
                conv1: Conv2dConfig::new([channels_out, channels_out / 8], [1, 1]).init(device),
                conv2: Conv2dConfig::new([channels_out / 8, channels_out], [1, 1]).init(device),
            }),
        }
    }

    /// # Shapes
    /// `[batch, in, H, W] → [batch, out, H − 4, W − 4]`
    fn forward(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let x = fused::conv2d(&self.conv1, x, LEAKY);
        let x = fused::conv2d(&self.conv2, x, LEAKY);
        match &self.seblock {
            Some(se) => se.forward(x, state),
            None => x,
        }
    }
}

/// The first U-Net: one level down, and a transposed convolution to the output scale.
#[derive(Module, Debug)]
pub struct UNet1 {
    /// `3 → 32 → 64`
    pub conv1: UNetConv,
    /// Stride-2 `64 → 64`.
    pub conv1_down: Conv2d,
    /// `64 → 128 → 64`, SE.
    pub conv2: UNetConv,
    /// Transposed stride-2 `64 → 64`.
    pub conv2_up: ConvTranspose2d,
    /// Valid 3×3 `64 → 64`.
    pub conv3: Conv2d,
    /// Transposed `64 → out` to the output scale (k4 s2 p3 at 2x and 4x, k5 s3 p2 at 3x).
    pub conv_bottom: ConvTranspose2d,
}

impl UNet1 {
    /// # Shapes
    /// `[batch, 3, H, W] → [batch, out, 2H − 32, 2W − 32]` at 2x and 4x, `3H − 44` at 3x
    /// (`H − 4` must be even)
    fn forward(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let x1 = self.conv1.forward(x, state);
        let x2 = fused::conv2d(&self.conv1_down, x1.clone(), LEAKY);
        let x2 = self.conv2.forward(x2, state);
        let x2 = fused::conv_transpose2d(&self.conv2_up, x2, LEAKY);
        let x3 = fused::conv2d(&self.conv3, fused::add(shave(x1, 4), x2), LEAKY);
        fused::conv_transpose2d(&self.conv_bottom, x3, Activation::Identity)
    }
}

/// The second U-Net: two levels down, at the output scale.
#[derive(Module, Debug)]
pub struct UNet2 {
    /// `in → 32 → 64`
    pub conv1: UNetConv,
    /// Stride-2 `64 → 64`.
    pub conv1_down: Conv2d,
    /// `64 → 64 → 128`, SE.
    pub conv2: UNetConv,
    /// Stride-2 `128 → 128`.
    pub conv2_down: Conv2d,
    /// `128 → 256 → 128`, SE.
    pub conv3: UNetConv,
    /// Transposed stride-2 `128 → 128`.
    pub conv3_up: ConvTranspose2d,
    /// `128 → 64 → 64`, SE.
    pub conv4: UNetConv,
    /// Transposed stride-2 `64 → 64`.
    pub conv4_up: ConvTranspose2d,
    /// Valid 3×3 `64 → 64`.
    pub conv5: Conv2d,
    /// Valid 3×3 `64 → out`.
    pub conv_bottom: Conv2d,
}

impl UNet2 {
    /// # Shapes
    /// `[batch, in, H, W] → [batch, out, H − 40, W − 40]`
    fn forward(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let x1 = self.conv1.forward(x, state);
        let x2 = fused::conv2d(&self.conv1_down, x1.clone(), LEAKY);
        let x2 = self.conv2.forward(x2, state);
        let x3 = fused::conv2d(&self.conv2_down, x2.clone(), LEAKY);
        let x3 = self.conv3.forward(x3, state);
        let x3 = fused::conv_transpose2d(&self.conv3_up, x3, LEAKY);
        let x4 = self.conv4.forward(fused::add(shave(x2, 4), x3), state);
        let x4 = fused::conv_transpose2d(&self.conv4_up, x4, LEAKY);
        let x5 = fused::conv2d(&self.conv5, fused::add(shave(x1, 16), x4), LEAKY);
        fused::conv2d(&self.conv_bottom, x5, Activation::Identity)
    }
}

/// Real-CUGAN se at one scale.
#[derive(Module, Debug)]
pub struct UpCunet {
    /// First U-Net, from the padded input to the output scale.
    pub unet1: UNet1,
    /// Second U-Net, a residual refinement at the output scale.
    pub unet2: UNet2,
    /// 4x only: `64 → 12` before a 2x pixel shuffle.
    pub conv_final: Option<Conv2d>,
    shuffle: PixelShuffle,
    residual: Interpolate2d,
    scale: usize,
    prepadding: usize,
    size_multiple: usize,
}

impl UpCunet {
    /// Upscales an RGB batch, each SE block gating with the channel means of this input.
    ///
    /// # Shapes
    /// `[batch, 3, H, W]` in `[0, 1]` → `[batch, 3, s·H, s·W]`, with `H, W ≥`
    /// [`UpCunetConfig::min_size`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, &mut SeState { fixed: None, recorded: Vec::new() })
    }

    /// Like [`UpCunet::forward`], with the SE means of another input (see the module docs).
    pub fn forward_with_means(&self, x: Tensor<4>, means: &SeMeans) -> Tensor<4> {
        self.run(x, &mut SeState { fixed: Some(means.0.clone()), recorded: Vec::new() })
    }

    /// The means of [`SeMeans::to_vectors`] back on `device`, each as `[1, C, 1, 1]`, checked
    /// against this network's SE blocks (one vector per block, of its channel count).
    ///
    /// # Errors
    /// Which count or length does not match.
    pub fn means_from_vectors(&self, vectors: &[Vec<f32>], device: &Device) -> Result<SeMeans, String> {
        let channels = self.se_channels();
        if vectors.len() != channels.len() {
            return Err(format!("{} SE mean vectors for {} SE blocks", vectors.len(), channels.len()));
        }
        let mut means = Vec::with_capacity(vectors.len());
        for (i, (v, &c)) in vectors.iter().zip(&channels).enumerate() {
            if v.len() != c {
                return Err(format!("SE block {i} has {c} channels, its mean vector {}", v.len()));
            }
            means.push(Tensor::<1>::from_floats(v.as_slice(), device).reshape([1, c, 1, 1]));
        }
        Ok(SeMeans(means))
    }

    /// The channel count of each SE block, in the order they run.
    fn se_channels(&self) -> Vec<usize> {
        let (u1, u2) = (&self.unet1, &self.unet2);
        [&u1.conv2, &u2.conv2, &u2.conv3, &u2.conv4]
            .into_iter()
            .filter_map(|c| c.seblock.as_ref())
            .map(|se| se.conv1.weight.dims()[1])
            .collect()
    }

    /// The channel means every SE block sees when the network runs on `x`.
    ///
    /// # Shapes
    /// `x`: `[1, 3, H, W]`, as [`UpCunet::forward`].
    pub fn se_means(&self, x: Tensor<4>) -> SeMeans {
        let mut state = SeState { fixed: None, recorded: Vec::new() };
        // The U-Nets hold all four SE blocks; the final layers need not run.
        let _ = self.unets(x, &mut state);
        SeMeans(state.recorded)
    }

    /// Reflect padding by the prepadding (plus up to the size multiple), both U-Nets, and their
    /// sum: the output at the U-Nets' scale, before the 4x head and the crop.
    fn unets(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let (pad, m) = (self.prepadding, self.size_multiple);
        let padded = x.pad(
            [(pad, pad + h.next_multiple_of(m) - h), (pad, pad + w.next_multiple_of(m) - w)],
            PadMode::Reflect,
        );
        let u1 = self.unet1.forward(padded, state);
        let u2 = self.unet2.forward(u1.clone(), state);
        fused::add(u2, shave(u1, 20))
    }

    fn run(&self, x: Tensor<4>, state: &mut SeState) -> Tensor<4> {
        let [batch, channels, h, w] = x.dims();
        let mut y = self.unets(x.clone(), state);
        if let Some(conv_final) = &self.conv_final {
            y = fused::pixel_shuffle(
                &self.shuffle,
                shave(fused::conv2d(conv_final, y, Activation::Identity), 1),
            );
        }
        let s = self.scale;
        let y = y.slice([0..batch, 0..channels, 0..s * h, 0..s * w]);
        if s == 4 { y + self.residual.forward(x) } else { y }
    }
}

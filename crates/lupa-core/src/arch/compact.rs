//! SRVGGNetCompact (Wang et al., Real-ESRGAN, ICCVW 2021), the architecture of
//! `realesr-general-x4v3` and `realesr-animevideov3`.
//!
//! Follows `realesrgan/archs/srvgg_arch.py` of xinntao/Real-ESRGAN with `act_type = "prelu"`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::{PRelu, PReluConfig, PixelShuffle, PixelShuffleConfig};
use burn::tensor::{Device, Tensor};

use super::conv;
use crate::fused::{self, Activation};

/// Hyper-parameters of [`SrVggNetCompact`]. Field names follow the upstream constructor.
#[derive(Config, Debug, PartialEq)]
pub struct SrVggNetCompactConfig {
    /// Input channels (3, RGB).
    #[config(default = 3)]
    pub num_in_ch: usize,
    /// Output channels (3, RGB).
    #[config(default = 3)]
    pub num_out_ch: usize,
    /// Width of the feature maps.
    #[config(default = 64)]
    pub num_feat: usize,
    /// Number of body convolutions (32 for general-x4v3, 16 for animevideov3).
    pub num_conv: usize,
    /// Scale factor.
    pub upscale: usize,
}

/// A plain VGG-style stack of 3×3 convolutions with PReLU, a pixel shuffle, and a global
/// nearest-neighbour residual.
#[derive(Module, Debug)]
pub struct SrVggNetCompact {
    /// `num_conv + 2` convolutions: first (3 → F), body (F → F), last (F → 3·s²).
    pub convs: Vec<Conv2d>,
    /// `num_conv + 1` PReLUs with one slope per channel, after every convolution but the last.
    pub acts: Vec<PRelu>,
    shuffle: PixelShuffle,
    residual: Interpolate2d,
}

impl SrVggNetCompactConfig {
    /// Builds a randomly initialised [`SrVggNetCompact`] on `device`.
    pub fn init(&self, device: &Device) -> SrVggNetCompact {
        let f = self.num_feat;
        let mut convs = vec![conv(self.num_in_ch, f, 3, device)];
        convs.extend((0..self.num_conv).map(|_| conv(f, f, 3, device)));
        convs.push(conv(f, self.num_out_ch * self.upscale * self.upscale, 3, device));
        let acts =
            (0..=self.num_conv).map(|_| PReluConfig::new().with_num_parameters(f).init(device)).collect();
        let scale = self.upscale as f32;
        SrVggNetCompact {
            convs,
            acts,
            shuffle: PixelShuffleConfig::new(self.upscale).init(),
            residual: Interpolate2dConfig::new()
                .with_scale_factor(Some([scale, scale]))
                .with_mode(InterpolateMode::Nearest)
                .init(),
        }
    }
}

impl SrVggNetCompact {
    /// Upscales an RGB batch.
    ///
    /// # Shapes
    /// `[batch, 3, H, W]` in `[0, 1]` → `[batch, 3, s·H, s·W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        for (conv, act) in self.convs.iter().zip(&self.acts) {
            h = fused::conv2d(conv, h, Activation::Prelu(act));
        }
        let last = self.convs.last().expect("SRVGGNetCompact has at least two convolutions");
        fused::pixel_shuffle(&self.shuffle, fused::conv2d(last, h, Activation::Identity))
            + self.residual.forward(x)
    }
}

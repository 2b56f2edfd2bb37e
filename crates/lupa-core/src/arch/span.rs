//! SPAN: Swift Parameter-free Attention Network (Wan et al., CVPRW 2024, NTIRE efficient-SR winner).
//!
//! Follows `basicsr/archs/span_arch.py` of hongyuanyu/SPAN in its inference form, where each
//! `Conv3XC` has been re-parameterised into one 3×3 convolution (`eval_conv`), as in the shipped
//! ncnn exports `spanx2_ch48` and `spanx4_ch48`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{PixelShuffle, PixelShuffleConfig};
use burn::tensor::{Device, Tensor};

use super::conv;
use crate::fused::{self, Activation};

/// Hyper-parameters of [`Span`]. Field names follow the upstream constructor.
#[derive(Config, Debug, PartialEq)]
pub struct SpanConfig {
    /// Input channels (3, RGB).
    #[config(default = 3)]
    pub num_in_ch: usize,
    /// Output channels (3, RGB).
    #[config(default = 3)]
    pub num_out_ch: usize,
    /// Width of the feature maps (48 for the shipped models).
    #[config(default = 48)]
    pub feature_channels: usize,
    /// Scale factor of the pixel-shuffle upsampler.
    pub upscale: usize,
    /// Multiplier applied after mean subtraction (255: the network works on a `[0, 255]` range).
    #[config(default = 255.0)]
    pub img_range: f32,
    /// Per-channel RGB mean subtracted from the `[0, 1]` input (DIV2K mean).
    #[config(default = "[0.4488, 0.4371, 0.4040]")]
    pub rgb_mean: [f32; 3],
}

/// One SPAB block: three 3×3 convolutions and a parameter-free attention map.
#[derive(Module, Debug)]
pub struct SpanBlock {
    /// First convolution (followed by SiLU).
    pub c1_r: Conv2d,
    /// Second convolution (followed by SiLU).
    pub c2_r: Conv2d,
    /// Third convolution; its sigmoid, shifted by −0.5, is the attention map.
    pub c3_r: Conv2d,
}

impl SpanBlock {
    /// Returns `(out, out1)`: the block output `(c3 + x) · (σ(c3) − ½)` and the activated output of
    /// the first convolution, which SPAN concatenates for the last block.
    ///
    /// # Shapes
    /// `[batch, C, H, W] → ([batch, C, H, W], [batch, C, H, W])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let out1 = fused::conv2d(&self.c1_r, x.clone(), Activation::Silu);
        let out2 = fused::conv2d(&self.c2_r, out1.clone(), Activation::Silu);
        let out = fused::conv2d(&self.c3_r, out2, Activation::SpanAttention(&x));
        (out, out1)
    }
}

/// The SPAN network.
#[derive(Module, Debug)]
pub struct Span {
    /// Shallow feature extraction, `num_in_ch → feature_channels`.
    pub conv_1: Conv2d,
    /// The six SPAB blocks (`block_1` … `block_6` upstream).
    pub blocks: Vec<SpanBlock>,
    /// Convolution after the last block.
    pub conv_2: Conv2d,
    /// 1×1 fusion of `[features, conv_2 out, block_1 out, block_6 out1]` (4·C → C).
    pub conv_cat: Conv2d,
    /// Convolution to `num_out_ch · upscale²` channels before the pixel shuffle.
    pub upsampler: Conv2d,
    shuffle: PixelShuffle,
    img_range: f32,
    rgb_mean: [f32; 3],
}

impl SpanConfig {
    /// Builds a randomly initialised [`Span`] on `device`; load weights into it afterwards.
    pub fn init(&self, device: &Device) -> Span {
        let c = self.feature_channels;
        Span {
            conv_1: conv(self.num_in_ch, c, 3, device),
            blocks: (0..6)
                .map(|_| SpanBlock {
                    c1_r: conv(c, c, 3, device),
                    c2_r: conv(c, c, 3, device),
                    c3_r: conv(c, c, 3, device),
                })
                .collect(),
            conv_2: conv(c, c, 3, device),
            conv_cat: conv(4 * c, c, 1, device),
            upsampler: conv(c, self.num_out_ch * self.upscale * self.upscale, 3, device),
            shuffle: PixelShuffleConfig::new(self.upscale).init(),
            img_range: self.img_range,
            rgb_mean: self.rgb_mean,
        }
    }
}

impl Span {
    /// Upscales an RGB batch. The output is not shifted back by the mean: the shipped weights
    /// produce `[0, 1]` directly.
    ///
    /// # Shapes
    /// `[batch, 3, H, W]` in `[0, 1]` → `[batch, 3, s·H, s·W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mean = Tensor::<1>::from_floats(self.rgb_mean, &x.device()).reshape([1, 3, 1, 1]).cast(x.dtype());
        let x = (x - mean) * self.img_range;
        let features = fused::conv2d(&self.conv_1, x, Activation::Identity);

        let mut h = features.clone();
        let mut block_1_out = None;
        let mut last_out1 = None;
        for block in &self.blocks {
            let (out, out1) = block.forward(h);
            block_1_out.get_or_insert_with(|| out.clone());
            last_out1 = Some(out1);
            h = out;
        }
        let (block_1_out, last_out1) = match (block_1_out, last_out1) {
            (Some(b1), Some(o1)) => (b1, o1),
            _ => unreachable!("SPAN always has six blocks"),
        };

        let h = fused::conv2d(&self.conv_2, h, Activation::Identity);
        let concat = fused::cat_channels(vec![features, h, block_1_out, last_out1]);
        let mixed = fused::conv2d(&self.conv_cat, concat, Activation::Identity);
        fused::pixel_shuffle(&self.shuffle, fused::conv2d(&self.upsampler, mixed, Activation::Identity))
    }
}

//! RRDBNet (Wang et al., ESRGAN, ECCVW 2018), the generator of `RealESRGAN_x4plus`.
//!
//! Follows `basicsr/archs/rrdbnet_arch.py` (xinntao/BasicSR) for `scale = 4`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::tensor::{Device, Tensor};

use super::conv;
use crate::fused::{self, Activation};

const SLOPE: f32 = 0.2;

/// Hyper-parameters of [`RrdbNet`]. Field names follow the upstream constructor.
#[derive(Config, Debug, PartialEq)]
pub struct RrdbNetConfig {
    /// Input channels (3, RGB).
    #[config(default = 3)]
    pub num_in_ch: usize,
    /// Output channels (3, RGB).
    #[config(default = 3)]
    pub num_out_ch: usize,
    /// Scale factor; only 4 (two nearest-2× stages) is supported.
    #[config(default = 4)]
    pub scale: usize,
    /// Width of the trunk.
    #[config(default = 64)]
    pub num_feat: usize,
    /// Number of RRDB blocks.
    #[config(default = 23)]
    pub num_block: usize,
    /// Growth channels of each dense block.
    #[config(default = 32)]
    pub num_grow_ch: usize,
}

/// Residual dense block: five densely connected 3×3 convolutions, output `0.2·x5 + x`.
#[derive(Module, Debug)]
pub struct ResidualDenseBlock {
    /// `F → G`
    pub conv1: Conv2d,
    /// `F + G → G`
    pub conv2: Conv2d,
    /// `F + 2G → G`
    pub conv3: Conv2d,
    /// `F + 3G → G`
    pub conv4: Conv2d,
    /// `F + 4G → F`
    pub conv5: Conv2d,
}

impl ResidualDenseBlock {
    fn new(f: usize, g: usize, device: &Device) -> Self {
        Self {
            conv1: conv(f, g, 3, device),
            conv2: conv(f + g, g, 3, device),
            conv3: conv(f + 2 * g, g, 3, device),
            conv4: conv(f + 3 * g, g, 3, device),
            conv5: conv(f + 4 * g, f, 3, device),
        }
    }

    /// # Shapes
    /// `[batch, F, H, W] → [batch, F, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let leaky = Activation::LeakyRelu(SLOPE);
        let x1 = fused::conv2d(&self.conv1, x.clone(), leaky);
        let x2 = fused::conv2d(&self.conv2, fused::cat_channels(vec![x.clone(), x1.clone()]), leaky);
        let x3 =
            fused::conv2d(&self.conv3, fused::cat_channels(vec![x.clone(), x1.clone(), x2.clone()]), leaky);
        let x4 = fused::conv2d(
            &self.conv4,
            fused::cat_channels(vec![x.clone(), x1.clone(), x2.clone(), x3.clone()]),
            leaky,
        );
        let x5 = fused::conv2d(
            &self.conv5,
            fused::cat_channels(vec![x.clone(), x1, x2, x3, x4]),
            Activation::Identity,
        );
        fused::add(x5 * 0.2, x)
    }
}

/// Residual-in-residual dense block: three dense blocks, output `0.2·h + x`.
#[derive(Module, Debug)]
pub struct Rrdb {
    /// First dense block.
    pub rdb1: ResidualDenseBlock,
    /// Second dense block.
    pub rdb2: ResidualDenseBlock,
    /// Third dense block.
    pub rdb3: ResidualDenseBlock,
}

impl Rrdb {
    /// # Shapes
    /// `[batch, F, H, W] → [batch, F, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.rdb3.forward(self.rdb2.forward(self.rdb1.forward(x.clone())));
        fused::add(h * 0.2, x)
    }
}

/// The RRDBNet generator.
#[derive(Module, Debug)]
pub struct RrdbNet {
    /// `3 → F`
    pub conv_first: Conv2d,
    /// The RRDB trunk.
    pub body: Vec<Rrdb>,
    /// Convolution closing the trunk, added to `conv_first`'s output.
    pub conv_body: Conv2d,
    /// After the first nearest 2× upsampling.
    pub conv_up1: Conv2d,
    /// After the second nearest 2× upsampling.
    pub conv_up2: Conv2d,
    /// High-resolution refinement.
    pub conv_hr: Conv2d,
    /// `F → 3`
    pub conv_last: Conv2d,
    up2: Interpolate2d,
}

impl RrdbNetConfig {
    /// Builds a randomly initialised [`RrdbNet`] on `device`.
    ///
    /// # Panics
    /// If `scale` is not 4 (the only variant shipped).
    pub fn init(&self, device: &Device) -> RrdbNet {
        assert_eq!(self.scale, 4, "RRDBNet is implemented for scale 4 only");
        let f = self.num_feat;
        RrdbNet {
            conv_first: conv(self.num_in_ch, f, 3, device),
            body: (0..self.num_block)
                .map(|_| Rrdb {
                    rdb1: ResidualDenseBlock::new(f, self.num_grow_ch, device),
                    rdb2: ResidualDenseBlock::new(f, self.num_grow_ch, device),
                    rdb3: ResidualDenseBlock::new(f, self.num_grow_ch, device),
                })
                .collect(),
            conv_body: conv(f, f, 3, device),
            conv_up1: conv(f, f, 3, device),
            conv_up2: conv(f, f, 3, device),
            conv_hr: conv(f, f, 3, device),
            conv_last: conv(f, self.num_out_ch, 3, device),
            up2: Interpolate2dConfig::new()
                .with_scale_factor(Some([2.0, 2.0]))
                .with_mode(InterpolateMode::Nearest)
                .init(),
        }
    }
}

impl RrdbNet {
    /// Upscales an RGB batch 4×.
    ///
    /// # Shapes
    /// `[batch, 3, H, W]` in `[0, 1]` → `[batch, 3, 4H, 4W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let leaky = Activation::LeakyRelu(SLOPE);
        let feat = fused::conv2d(&self.conv_first, x, Activation::Identity);
        let mut h = feat.clone();
        for block in &self.body {
            h = block.forward(h);
        }
        let feat = feat + fused::conv2d(&self.conv_body, h, Activation::Identity);
        let feat = fused::conv2d(&self.conv_up1, self.up2.forward(feat), leaky);
        let feat = fused::conv2d(&self.conv_up2, self.up2.forward(feat), leaky);
        fused::conv2d(&self.conv_last, fused::conv2d(&self.conv_hr, feat, leaky), Activation::Identity)
    }
}

//! Super-resolution architectures as Burn Config + Module pairs.
//!
//! Every model maps an RGB tensor in `[0, 1]` of shape `[batch, 3, H, W]` to an RGB tensor of shape
//! `[batch, 3, s·H, s·W]` (values roughly in `[0, 1]`, clamped by the caller). The graphs follow the
//! ncnn files we ship, which are exports of the upstream PyTorch code named in each module.

mod compact;
mod cugan;
mod rrdb;
mod span;

pub use compact::{SrVggNetCompact, SrVggNetCompactConfig};
pub use cugan::{SeBlock, SeMeans, UNet1, UNet2, UNetConv, UpCunet, UpCunetConfig};
pub use rrdb::{ResidualDenseBlock, Rrdb, RrdbNet, RrdbNetConfig};
pub use span::{Span, SpanBlock, SpanConfig};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Device;

/// A `k×k` convolution with bias and "same" zero padding (`k` odd), as every shipped model uses.
pub(crate) fn conv(channels_in: usize, channels_out: usize, kernel: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
        .with_padding(PaddingConfig2d::Explicit(kernel / 2, kernel / 2, kernel / 2, kernel / 2))
        .init(device)
}

//! Where Lupa's CPU time goes: each convolution of a model timed alone on `flex` at the model's
//! input size, against the whole upscale, with Lupa's fused convolution and with Burn's (the
//! [`lupa_core::fused::set_enabled`] switch) in the same run. The rest (activations, attention and other element-wise
//! passes, pixel shuffle, tiling, pre/post-processing) is the difference.
//!
//! Only for models whose convolutions all run at the input resolution, stride 1, "same" padding
//! (SPAN and SRVGGNetCompact), so each weight's shape says everything about its convolution.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Result, bail};
use image::DynamicImage;
use lupa_core::burn::nn::PaddingConfig2d;
use lupa_core::burn::nn::conv::Conv2dConfig;
use lupa_core::burn::tensor::{Device, Distribution, Tensor};
use lupa_core::fused::{self, Activation};
use lupa_core::{Architecture, Progress, SrModel, UpscaleOptions};
use serde::Serialize;

/// One convolution shape, how many layers have it, and its time (all of them, one pass) with Lupa's
/// fused op and with Burn's conv followed by the activation.
#[derive(Debug, Clone, Serialize)]
pub struct ConvShape {
    /// `[out, in, kh, kw]`
    pub shape: [usize; 4],
    pub layers: usize,
    /// Lupa's fused convolution ([`lupa_core::fused`]).
    pub secs: f64,
    /// Burn's `Conv2d::forward` (the fused op switched off).
    pub burn_secs: f64,
}

impl ConvShape {
    pub fn macs_per_pixel(&self) -> f64 {
        (self.shape.iter().product::<usize>() * self.layers) as f64
    }

    /// Multiply-adds per second (direct MAC count) of `secs` for its layers on a `size`² input.
    pub fn gmacs(&self, size: u32, secs: f64) -> f64 {
        self.macs_per_pixel() * f64::from(size) * f64::from(size) / secs / 1e9
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub model: String,
    pub size: u32,
    /// The whole upscale with the fused op.
    pub whole_secs: f64,
    /// The whole upscale with Burn's conv.
    pub whole_burn_secs: f64,
    pub convs: Vec<ConvShape>,
}

impl Profile {
    pub fn conv_secs(&self) -> f64 {
        self.convs.iter().map(|c| c.secs).sum()
    }

    pub fn conv_burn_secs(&self) -> f64 {
        self.convs.iter().map(|c| c.burn_secs).sum()
    }
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    f(); // warm-up
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// `f` timed with the fused op, then with Burn's conv (best of `runs`); the switch is left on.
fn both<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    fused::set_enabled(true);
    let lupa = best_of(runs, &mut f);
    fused::set_enabled(false);
    let burn = best_of(runs, &mut f);
    fused::set_enabled(true);
    (lupa, burn)
}

/// Profiles `model` (loaded on `device`, a `flex` device) on `image`, `size`×`size`.
pub fn profile(
    model: &SrModel,
    weights: &[u8],
    image: &DynamicImage,
    size: u32,
    device: &Device,
) -> Result<Profile> {
    if !matches!(model.spec.architecture, Architecture::Span(_) | Architecture::SrVggNetCompact(_)) {
        bail!("{}: only SPAN and SRVGGNetCompact are profiled per convolution", model.spec.id);
    }
    let input = image.resize_exact(size, size, image::imageops::FilterType::Lanczos3);
    let options = UpscaleOptions { tile_size: 0, overlap: None, ensemble: false, engines: 1 };
    let (whole_secs, whole_burn_secs) = both(2, || {
        let mut ignore = |_: Progress| ControlFlow::Continue(());
        pollster::block_on(lupa_core::upscale_image(model, &input, options, &mut ignore)).map(|_| ())
    });

    let tensors = safetensors::SafeTensors::deserialize(weights)?;
    let mut shapes: Vec<ConvShape> = Vec::new();
    for (_, view) in tensors.tensors() {
        let &[o, i, kh, kw] = view.shape() else { continue };
        match shapes.iter_mut().find(|c| c.shape == [o, i, kh, kw]) {
            Some(c) => c.layers += 1,
            None => shapes.push(ConvShape { shape: [o, i, kh, kw], layers: 1, secs: 0.0, burn_secs: 0.0 }),
        }
    }
    let side = size as usize;
    for c in &mut shapes {
        let [o, i, kh, kw] = c.shape;
        let conv = Conv2dConfig::new([i, o], [kh, kw])
            .with_padding(PaddingConfig2d::Explicit(kh / 2, kw / 2, kh / 2, kw / 2))
            .init(device);
        // Each in the layout the layer before hands it: NCHW from Burn's conv, NHWC viewed as NCHW
        // from the fused op. `flex` runs eagerly, so the call is the work (nothing is read back).
        let nchw = Tensor::<4>::random([1, i, side, side], Distribution::Default, device);
        let nhwc =
            Tensor::<4>::random([1, side, side, i], Distribution::Default, device).permute([0, 3, 1, 2]);
        fused::set_enabled(true);
        let lupa = best_of(3, || fused::conv2d(&conv, nhwc.clone(), Activation::Identity));
        fused::set_enabled(false);
        let burn = best_of(3, || fused::conv2d(&conv, nchw.clone(), Activation::Identity));
        fused::set_enabled(true);
        (c.secs, c.burn_secs) = (lupa * c.layers as f64, burn * c.layers as f64);
    }
    shapes.sort_by(|a, b| b.burn_secs.total_cmp(&a.burn_secs));
    Ok(Profile { model: model.spec.id.clone(), size, whole_secs, whole_burn_secs, convs: shapes })
}

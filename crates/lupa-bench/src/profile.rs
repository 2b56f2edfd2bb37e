//! Where Lupa's CPU time goes: each convolution of a model timed alone on `flex` at the model's
//! input size, against the whole upscale. The rest (activations, attention and other element-wise
//! passes, pixel shuffle, tiling, pre/post-processing) is the difference.
//!
//! Only for models whose convolutions all run at the input resolution, stride 1, "same" padding
//! (SPAN and SRVGGNetCompact), so each weight's shape says everything about its convolution.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Result, bail};
use image::DynamicImage;
use lupa_core::burn::tensor::module::conv2d;
use lupa_core::burn::tensor::ops::ConvOptions;
use lupa_core::burn::tensor::{Device, Distribution, Tensor};
use lupa_core::{Architecture, Progress, SrModel, UpscaleOptions};
use serde::Serialize;

/// One convolution shape, how many layers have it, and its time (all of them, one pass).
#[derive(Debug, Clone, Serialize)]
pub struct ConvShape {
    /// `[out, in, kh, kw]`
    pub shape: [usize; 4],
    pub layers: usize,
    pub secs: f64,
}

impl ConvShape {
    pub fn macs_per_pixel(&self) -> f64 {
        (self.shape.iter().product::<usize>() * self.layers) as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub model: String,
    pub size: u32,
    pub whole_secs: f64,
    pub convs: Vec<ConvShape>,
}

impl Profile {
    pub fn conv_secs(&self) -> f64 {
        self.convs.iter().map(|c| c.secs).sum()
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
    let options = UpscaleOptions { tile_size: 0, overlap: None, ensemble: false };
    let whole_secs = best_of(2, || {
        let mut ignore = |_: Progress| ControlFlow::Continue(());
        pollster::block_on(lupa_core::upscale_image(model, &input, options, &mut ignore)).map(|_| ())
    });

    let tensors = safetensors::SafeTensors::deserialize(weights)?;
    let mut shapes: Vec<ConvShape> = Vec::new();
    for (_, view) in tensors.tensors() {
        let &[o, i, kh, kw] = view.shape() else { continue };
        match shapes.iter_mut().find(|c| c.shape == [o, i, kh, kw]) {
            Some(c) => c.layers += 1,
            None => shapes.push(ConvShape { shape: [o, i, kh, kw], layers: 1, secs: 0.0 }),
        }
    }
    let side = size as usize;
    for c in &mut shapes {
        let [o, i, kh, kw] = c.shape;
        let x = Tensor::<4>::random([1, i, side, side], Distribution::Default, device);
        let w = Tensor::<4>::random([o, i, kh, kw], Distribution::Default, device);
        let b = Tensor::<1>::random([o], Distribution::Default, device);
        let opts = ConvOptions::new([1, 1], [kh / 2, kw / 2], [1, 1], 1);
        let one = best_of(3, || {
            pollster::block_on(conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone()).into_data_async())
        });
        c.secs = one * c.layers as f64;
    }
    shapes.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    Ok(Profile { model: model.spec.id.clone(), size, whole_secs, convs: shapes })
}

//! Shared helpers for Lupa's cross-crate tests: paths, the registry, model loading, images.

use std::ops::ControlFlow;
use std::path::PathBuf;

use lupa_core::burn::tensor::{Device, Tensor, TensorData};
use lupa_core::image::{DynamicImage, Rgb32FImage};
use lupa_core::{ModelIndex, Progress, SrModel, UpscaleOptions};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("..")
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// The shipped registry.
pub fn index() -> ModelIndex {
    let json = std::fs::read_to_string(root().join("models/index.json")).expect("models/index.json");
    ModelIndex::from_json(&json).expect("valid index")
}

/// Loads a shipped model (sha256-checked) onto `device`.
pub fn load(id: &str, device: &Device) -> SrModel {
    let index = index();
    let spec = index.get(id).expect("model in the registry");
    let bytes = std::fs::read(root().join("models").join(&spec.weights.file)).expect("weights file");
    SrModel::load(spec, bytes, device).expect("weights load")
}

/// Opens a test image.
pub fn open(rel: &str) -> DynamicImage {
    lupa_core::image::open(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Runs the network once on a whole RGB image and returns the raw output, planar `[3, sH, sW]`.
pub fn forward_raw(model: &SrModel, image: &Rgb32FImage) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut planar = vec![0.0; 3 * w * h];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            planar[c * w * h + i] = px.0[c];
        }
    }
    let x = model.input(Tensor::<4>::from_data(TensorData::new(planar, [1, 3, h, w]), &model.device));
    let y = model.network.forward(x).cast(lupa_core::burn::tensor::DType::F32);
    let data = pollster::block_on(y.into_data_async()).expect("readback");
    data.as_slice::<f32>().expect("f32 output").to_vec()
}

/// Runs the full pipeline with the given tiling, without progress reporting.
pub fn upscale(model: &SrModel, image: &DynamicImage, tile_size: u32, overlap: Option<u32>) -> DynamicImage {
    upscale_with(model, image, UpscaleOptions { tile_size, overlap, ensemble: false, engines: 1 })
}

/// Runs the full pipeline with `options`, without progress reporting.
pub fn upscale_with(model: &SrModel, image: &DynamicImage, options: UpscaleOptions) -> DynamicImage {
    let mut ignore = |_: Progress| ControlFlow::Continue(());
    pollster::block_on(lupa_core::upscale_image(model, image, options, &mut ignore)).expect("upscale")
}

/// The f32 samples of an image (any colour type), interleaved.
pub fn samples(image: &DynamicImage) -> Vec<f32> {
    image.to_rgba32f().into_raw()
}

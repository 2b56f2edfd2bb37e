//! Lupa's core: real pretrained super-resolution models in Burn, a tiling planner and the
//! upscale pipeline, independent of the backend (the [`burn::tensor::Device`] picks wgpu or the CPU
//! at run time) and of any I/O.
//!
//! Flow: a front end decodes a file into an [`image::DynamicImage`], looks a [`ModelSpec`] up in the
//! [`ModelIndex`], loads its weights with [`SrModel::load`] and calls [`upscale_image`].

#![warn(missing_docs)]

pub mod arch;
pub mod codec;
mod error;
pub mod metrics;
mod model;
mod pipeline;
pub mod recipe;
mod registry;
pub mod smart;
pub mod tiling;

pub use burn;
pub use error::{LupaError, Result};
pub use image;
pub use model::{ImageContext, Network, SrModel, sha256_hex};
pub use pipeline::{
    Pass, Progress, RecipeProgress, TileLimits, UpscaleJob, UpscaleOptions, auto_tile_size, largest_buffer,
    plan_for, run_passes, upscale_image,
};
pub use registry::{
    Architecture, INDEX_FORMAT_VERSION, InputRequirements, Licence, ModelIndex, ModelKind, ModelSpec, Source,
    SourceFile, WeightsFile,
};

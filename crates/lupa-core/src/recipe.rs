//! From what the user asks (a mode, a scale or a box to fit, a denoise level) to what runs: a
//! [`Recipe`] of an optional 1x clean-up, model passes, and at most one final resize, so that the
//! pixels are resampled once after enlarging and encoded once.
//!
//! Each mode has a family of models by native scale: Precision `span-x2`, `span-x4`; Creative
//! `realesr-general-x4v3`; Maximum detail `realesrgan-x4plus`; Illustration Real-CUGAN se at 2x,
//! 3x and 4x. Paths by scale (`·` means "then"):
//!
//! | asked | Precision | Creative, Maximum detail | Illustration |
//! |---|---|---|---|
//! | 2x | `span-x2` | x4 model · Lanczos3 down to 2x | Real-CUGAN 2x |
//! | 3x | `span-x4` · Lanczos3 down to 3x | x4 model · Lanczos3 down to 3x | Real-CUGAN 3x |
//! | 4x | `span-x4` | x4 model | Real-CUGAN 4x |
//! | 8x | `span-x4` · `span-x2` | x4 model · `span-x2` | Real-CUGAN 4x · Real-CUGAN 2x (no denoise) |
//! | fit W×H | the smallest of the above at or above the needed scale · Lanczos3 to the exact size | same | same |
//!
//! Denoise (0 none … 3 strong) picks Real-CUGAN's variant in Illustration mode; in the photo modes
//! a level above 0 adds a 1x clean-up first: Real-CUGAN 2x with that denoising, then Lanczos3
//! back to the input size. Variants by level and scale:
//!
//! | level | 2x | 3x, 4x |
//! |---|---|---|
//! | 0 | no-denoise | no-denoise |
//! | 1 | denoise1x | conservative |
//! | 2 | denoise2x | denoise3x |
//! | 3 | denoise3x | denoise3x |
//!
//! Cost, in multiply-adds per input pixel: a pass of a model with `m` MACs per pixel on an image
//! of `P` pixels costs `m·P`; the second pass of 8x runs on the 4x output (16·P pixels), so 8x with
//! SPAN costs `0.43 M·P + 16 · 0.41 M·P ≈ 17·0.43 M·P`. 3x costs the same as 4x plus a resize,
//! except with Real-CUGAN, which has a native 3x (1.6 M/px). The clean-up adds 0.77 M·P.

use crate::error::{LupaError, Result};
use crate::job::JobRequest;
use crate::registry::{Architecture, ModelIndex, ModelKind};
use crate::tiling::Rect;

/// What kind of result the user wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reconstructs without inventing detail (SPAN, trained for PSNR).
    Precision,
    /// Adds plausible GAN texture to photos (realesr-general-x4v3).
    Creative,
    /// Creative with the largest GAN (RealESRGAN_x4plus): most detail, about 15× slower.
    MaximumDetail,
    /// For illustrations, anime and cartoons: clean lines and flat colour (Real-CUGAN se).
    Illustration,
}

impl Mode {
    /// Every mode, in the order the UI lists them.
    pub const ALL: [Mode; 4] = [Mode::Precision, Mode::Creative, Mode::MaximumDetail, Mode::Illustration];

    /// The mode's id on the command line and in job requests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Precision => "precision",
            Self::Creative => "creative",
            Self::MaximumDetail => "maximum-detail",
            Self::Illustration => "illustration",
        }
    }

    /// The mode's name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Precision => "Precision",
            Self::Creative => "Creative",
            Self::MaximumDetail => "Maximum detail",
            Self::Illustration => "Illustration",
        }
    }

    /// Whether the mode offers the geometric self-ensemble ("maximum fidelity", see
    /// [`crate::UpscaleOptions::ensemble`]): only Precision, whose networks need no whole-image
    /// statistics and whose point is fidelity.
    pub fn offers_ensemble(self) -> bool {
        self == Self::Precision
    }

    /// One sentence for people: the CLI's help, the page and the README show it.
    pub fn description(self) -> &'static str {
        match self {
            Self::Precision => {
                "Reconstructs detail that is really there, without inventing any: faithful, never fake (SPAN)."
            }
            Self::Creative => {
                "Adds plausible texture and sharpness with a GAN: crisper photos, but some detail is invented \
                 (Real-ESRGAN general)."
            }
            Self::MaximumDetail => {
                "Creative with the largest GAN (Real-ESRGAN x4plus): the most detail, about 15× slower."
            }
            Self::Illustration => {
                "For drawings, anime and screenshots: clean lines and flat colour (Real-CUGAN), with optional \
                 clean-up."
            }
        }
    }

    /// The models this mode uses, by native scale, at a denoise level.
    pub fn family(self, denoise: u8) -> Vec<String> {
        match self {
            Self::Precision => vec!["span-x2".into(), "span-x4".into()],
            Self::Creative => vec!["realesr-general-x4v3".into()],
            Self::MaximumDetail => vec!["realesrgan-x4plus".into()],
            Self::Illustration => [2, 3, 4].map(|s| realcugan(s, denoise)).into(),
        }
    }
}

/// The Real-CUGAN se variant for a scale and denoise level (table in the module docs).
fn realcugan(scale: u32, denoise: u8) -> String {
    let variant = match (denoise, scale) {
        (0, _) => "no-denoise",
        (1, 2) => "denoise1x",
        (1, _) => "conservative",
        (2, 2) => "denoise2x",
        _ => "denoise3x",
    };
    format!("realcugan-se-x{scale}-{variant}")
}

impl std::str::FromStr for Mode {
    type Err = LupaError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            LupaError::BadInput(format!(
                "unknown mode `{s}` (expected {})",
                Self::ALL.map(Mode::name).join(", ")
            ))
        })
    }
}

/// The size asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An integer scale factor: 2, 3, 4 or 8.
    Scale(u32),
    /// As large as fits in `width × height`, keeping the aspect ratio.
    Fit {
        /// Box width in pixels.
        width: u32,
        /// Box height in pixels.
        height: u32,
    },
}

/// Scales [`Target::Scale`] accepts.
pub const SCALES: [u32; 4] = [2, 3, 4, 8];

/// Highest denoise level.
pub const MAX_DENOISE: u8 = 3;

/// The denoise levels' names for people, from 0 to [`MAX_DENOISE`].
pub const DENOISE_LABELS: [&str; MAX_DENOISE as usize + 1] = ["None", "Light", "Medium", "Strong"];

/// Smart mode (a request without a mode) in one sentence: the CLI's help, the page and the README
/// show it.
pub const SMART_DESCRIPTION: &str = "Recognises photo, illustration or text/screenshot and picks the mode, size \
                                     and clean-up; anything you set yourself overrides it.";

/// What to run: an optional 1x clean-up, model passes in order, then an optional resize to an
/// exact size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The mode it was planned for.
    pub mode: Mode,
    /// The input size.
    pub input: (u32, u32),
    /// A 2x denoising model run first and resized (Lanczos3) back to the input size.
    pub cleanup: Option<String>,
    /// Model ids, each applied to the previous output.
    pub passes: Vec<String>,
    /// The size each model of [`Recipe::models`] makes, in the same order (before any resize).
    pub sizes: Vec<(u32, u32)>,
    /// Final size after the passes; `None` when the passes give the size asked for.
    pub resize_to: Option<(u32, u32)>,
    /// The output size.
    pub output: (u32, u32),
    /// A sentence saying what runs and why, for the user.
    pub explanation: String,
}

impl Recipe {
    /// Every model the recipe runs, in order (the clean-up first).
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.cleanup.iter().chain(&self.passes).map(String::as_str)
    }

    /// The resize right after the `i`-th model of [`Recipe::models`]: the clean-up goes back to the
    /// input size; the passes are not resized until the end ([`Recipe::resize_to`]).
    pub fn resize_after(&self, i: usize) -> Option<(u32, u32)> {
        (i == 0 && self.cleanup.is_some()).then_some(self.input)
    }
}

/// Plans a recipe for an input of `width × height` with the mode `request` names (Smart mode
/// needs the pixels: see [`plan_image`]). What the request leaves open takes the defaults of
/// [`JobRequest::size`] and no denoising.
///
/// A `model` in the request overrides the mode's choice: its passes are repeated or followed by a
/// resize as the table in the module docs does for x4 models.
///
/// # Errors
/// [`LupaError::BadInput`] for a request without a mode, an invalid request (see
/// [`JobRequest::check`]), a box that needs more than 8x or a model that cannot reach the scale;
/// [`LupaError::UnknownModel`] when a model is missing from the index.
pub fn plan(index: &ModelIndex, request: &JobRequest, width: u32, height: u32) -> Result<Recipe> {
    request.check(index)?;
    let Some(mode) = request.mode else {
        return Err(LupaError::BadInput("Smart mode needs the image to plan for".into()));
    };
    let target = request.size(index)?.unwrap_or(Target::Scale(DEFAULT_SCALE));
    plan_resolved(index, mode, request.model.as_deref(), target, request.denoise.unwrap_or(0), width, height)
}

/// Scale of a request that gives neither a size nor a model.
pub const DEFAULT_SCALE: u32 = 4;

/// [`plan`] with everything decided.
fn plan_resolved(
    index: &ModelIndex,
    mode: Mode,
    model: Option<&str>,
    target: Target,
    denoise: u8,
    width: u32,
    height: u32,
) -> Result<Recipe> {
    let family: Vec<String> = match model {
        Some(id) => vec![index.get(id)?.id.clone()],
        None => mode.family(denoise),
    };
    // (native scale, id), smallest scale first.
    let mut family: Vec<(u32, &str)> =
        family.iter().map(|id| index.get(id).map(|m| (m.scale, m.id.as_str()))).collect::<Result<_>>()?;
    family.sort_unstable();
    let is_cugan = |id: &str| matches!(index.get(id).map(|m| &m.architecture), Ok(Architecture::UpCunet(_)));
    // The 2x model for the second pass of 8x: the family's own (without denoising: the first pass
    // has cleaned up), else the fidelity 2x model.
    let second_x2 = match family.iter().find(|(s, _)| *s == 2) {
        Some((_, id)) if is_cugan(id) => Some(realcugan(2, 0)),
        Some((_, id)) => Some((*id).to_owned()),
        None => {
            index.models.iter().find(|m| m.scale == 2 && m.kind == ModelKind::Fidelity).map(|m| m.id.clone())
        }
    };

    // Every path enlarges 8x at most, so no size below overflows once this holds.
    let longest = u64::from(width.max(height));
    if longest * 8 > u64::from(u32::MAX) {
        return Err(LupaError::LimitExceeded {
            what: format!("a {width}×{height} image at up to 8x"),
            needed: longest * 8,
            limit: u64::from(u32::MAX),
            unit: crate::error::Unit::PixelsASide,
            limit_of: "an image can have",
            advice: "crop the image".into(),
        });
    }
    let (factor, exact) = match target {
        Target::Scale(s) => (f64::from(s), (width * s, height * s)),
        // `JobRequest::check`, which every caller runs first, refuses an empty box.
        Target::Fit { width: bw, height: bh } => {
            let f = (f64::from(bw) / f64::from(width)).min(f64::from(bh) / f64::from(height));
            if f > 8.0 {
                return Err(LupaError::BadInput(format!(
                    "fitting {width}×{height} into {bw}×{bh} needs {f:.1}x, more than the 8x Lupa offers"
                )));
            }
            let size = |side: u32| ((f64::from(side) * f).round() as u32).max(1);
            (f, (size(width), size(height)))
        }
    };

    // Smallest model path whose scale reaches the factor.
    let mut passes: Vec<String> = Vec::new();
    if factor > 1.0 {
        match family.iter().find(|(s, _)| f64::from(*s) >= factor) {
            Some((_, id)) => passes.push((*id).to_owned()),
            None => {
                let (largest_scale, largest) = *family.last().expect("a family has a model");
                let second = second_x2.filter(|_| largest_scale == 4).ok_or_else(|| {
                    LupaError::BadInput(format!(
                        "{largest} cannot reach {factor:.1}x (no 2x model for a second pass)"
                    ))
                })?;
                passes.extend([largest.to_owned(), second]);
            }
        }
    }
    let cleanup =
        (denoise > 0 && !passes.first().is_some_and(|id| is_cugan(id))).then(|| realcugan(2, denoise));
    let mut sizes = Vec::new();
    if let Some(id) = &cleanup {
        let s = index.get(id)?.scale;
        sizes.push((width * s, height * s));
    }
    let mut reached = (width, height);
    for id in &passes {
        let s = index.get(id)?.scale;
        reached = (reached.0 * s, reached.1 * s);
        sizes.push(reached);
    }
    let resize_to = (reached != exact).then_some(exact);

    let mut explanation = match &cleanup {
        Some(id) => format!("clean-up with {id} and back to {width}×{height}, then "),
        None => String::new(),
    };
    explanation += &if passes.is_empty() {
        format!("{width}×{height} already fits: resized only")
    } else {
        format!("{} on {width}×{height}", passes.join(", then "))
    };
    if let Some((w, h)) = resize_to {
        explanation += &format!(", then Lanczos3 {} to {w}×{h}", if w < reached.0 { "down" } else { "up" });
    }
    Ok(Recipe { mode, input: (width, height), cleanup, passes, sizes, resize_to, output: exact, explanation })
}

/// Crops `image` to `rect` (input pixels, after EXIF rotation), the first step of every job.
///
/// # Errors
/// [`LupaError::BadInput`] for an empty rectangle or one that does not fit in the image.
pub fn crop(image: &image::DynamicImage, rect: Rect) -> Result<image::DynamicImage> {
    let Rect { x, y, width, height } = rect;
    let fits = u64::from(x) + u64::from(width) <= u64::from(image.width())
        && u64::from(y) + u64::from(height) <= u64::from(image.height());
    if width == 0 || height == 0 || !fits {
        return Err(LupaError::BadInput(format!(
            "crop {x},{y} {width}×{height} does not fit in the {}×{} image",
            image.width(),
            image.height()
        )));
    }
    Ok(image.crop_imm(x, y, width, height))
}

/// Plans the recipe for `image` (decoded from a `source` file). In Smart mode (no mode in the
/// request) [`crate::smart::choose`] picks the mode, and the size and denoise level the request
/// leaves open, and its reasoning starts the explanation; otherwise as [`plan`].
///
/// # Errors
/// As [`plan`].
pub fn plan_image(
    index: &ModelIndex,
    request: &JobRequest,
    image: &image::DynamicImage,
    source: Option<image::ImageFormat>,
) -> Result<(Recipe, Option<crate::smart::SmartChoice>)> {
    if request.mode.is_some() {
        return Ok((plan(index, request, image.width(), image.height())?, None));
    }
    request.check(index)?;
    // Without a size, a model override runs at its own scale (`JobRequest::size`).
    let choice = crate::smart::choose(image, source, request.size(index)?, request.denoise);
    let model = request.model.as_deref();
    let (width, height) = (image.width(), image.height());
    let mut recipe = plan_resolved(index, choice.mode, model, choice.target, choice.denoise, width, height)?;
    recipe.explanation = format!("{} {}", choice.explanation, recipe.explanation);
    Ok((recipe, Some(choice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ModelIndex {
        let json = std::fs::read_to_string(format!(
            "{}/../../models/index.json",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        ))
        .unwrap();
        ModelIndex::from_json(&json).unwrap()
    }

    fn request(mode: Mode, model: Option<&str>, target: Target, denoise: u8) -> JobRequest {
        JobRequest {
            mode: Some(mode),
            model: model.map(str::to_owned),
            target: Some(target),
            denoise: Some(denoise),
            ..JobRequest::default()
        }
    }

    fn passes(r: &Recipe) -> Vec<&str> {
        r.passes.iter().map(String::as_str).collect()
    }

    fn plan(
        idx: &ModelIndex,
        mode: Mode,
        model: Option<&str>,
        w: u32,
        h: u32,
        target: Target,
    ) -> Result<Recipe> {
        super::plan(idx, &request(mode, model, target, 0), w, h)
    }

    #[test]
    fn precision_paths_for_each_scale() {
        let idx = index();
        let p = |s| plan(&idx, Mode::Precision, None, 100, 60, Target::Scale(s)).unwrap();
        assert_eq!((passes(&p(2)), p(2).resize_to), (vec!["span-x2"], None));
        assert_eq!((passes(&p(3)), p(3).resize_to), (vec!["span-x4"], Some((300, 180))));
        assert_eq!((passes(&p(4)), p(4).resize_to), (vec!["span-x4"], None));
        assert_eq!((passes(&p(8)), p(8).resize_to), (vec!["span-x4", "span-x2"], None));
        assert_eq!(p(8).output, (800, 480));
        assert!(plan(&idx, Mode::Precision, None, 100, 60, Target::Scale(5)).is_err());
    }

    #[test]
    fn creative_uses_its_x4_model_and_resamples() {
        let idx = index();
        let p = |s| plan(&idx, Mode::Creative, None, 100, 60, Target::Scale(s)).unwrap();
        assert_eq!((passes(&p(2)), p(2).resize_to), (vec!["realesr-general-x4v3"], Some((200, 120))));
        assert_eq!(passes(&p(8)), vec!["realesr-general-x4v3", "span-x2"]);
        assert!(p(2).explanation.contains("Lanczos3 down to 200×120"), "{}", p(2).explanation);
    }

    #[test]
    fn fit_picks_the_smallest_path_that_reaches_the_box() {
        let idx = index();
        // 800×450 into 3840×2160 needs 4.8x: 8x path, then down to 3840×2160.
        let r =
            plan(&idx, Mode::Precision, None, 800, 450, Target::Fit { width: 3840, height: 2160 }).unwrap();
        assert_eq!((passes(&r), r.resize_to), (vec!["span-x4", "span-x2"], Some((3840, 2160))));
        // Aspect ratio kept: 1000×500 into 1920×1080 is limited by the width (1.92x).
        let r =
            plan(&idx, Mode::Precision, None, 1000, 500, Target::Fit { width: 1920, height: 1080 }).unwrap();
        assert_eq!((passes(&r), r.output), (vec!["span-x2"], (1920, 960)));
        // Already larger than the box: resize only.
        let r =
            plan(&idx, Mode::Creative, None, 4000, 3000, Target::Fit { width: 1920, height: 1080 }).unwrap();
        assert!(r.passes.is_empty());
        assert_eq!(r.output, (1440, 1080));
        let err = plan(&idx, Mode::Precision, None, 100, 100, Target::Fit { width: 1000, height: 1000 });
        assert!(err.unwrap_err().to_string().contains("more than the 8x"));
    }

    #[test]
    fn a_model_overrides_the_mode() {
        let idx = index();
        let r = plan(&idx, Mode::Precision, Some("realesr-animevideov3"), 10, 10, Target::Scale(4)).unwrap();
        assert_eq!(passes(&r), vec!["realesr-animevideov3"]);
        let r = plan(&idx, Mode::Creative, Some("span-x2"), 10, 10, Target::Scale(2)).unwrap();
        assert_eq!(passes(&r), vec!["span-x2"]);
        assert!(plan(&idx, Mode::Precision, Some("nope"), 10, 10, Target::Scale(4)).is_err());
        assert_eq!("maximum-detail".parse::<Mode>().unwrap(), Mode::MaximumDetail);
        assert!("fast".parse::<Mode>().is_err());
    }

    #[test]
    fn illustration_uses_realcugan_at_its_native_scales() {
        let idx = index();
        let p = |s, denoise| {
            super::plan(&idx, &request(Mode::Illustration, None, Target::Scale(s), denoise), 50, 40).unwrap()
        };
        assert_eq!((passes(&p(2, 0)), p(2, 0).resize_to), (vec!["realcugan-se-x2-no-denoise"], None));
        assert_eq!((passes(&p(3, 1)), p(3, 1).resize_to), (vec!["realcugan-se-x3-conservative"], None));
        assert_eq!(passes(&p(4, 3)), vec!["realcugan-se-x4-denoise3x"]);
        assert_eq!(passes(&p(2, 2)), vec!["realcugan-se-x2-denoise2x"]);
        // 8x: the denoising 4x, then the 2x without denoising; no separate clean-up.
        assert_eq!(passes(&p(8, 2)), vec!["realcugan-se-x4-denoise3x", "realcugan-se-x2-no-denoise"]);
        assert_eq!(p(8, 2).cleanup, None);
        // Every id the table names exists.
        for d in 0..=MAX_DENOISE {
            for s in [2, 3, 4] {
                idx.get(&realcugan(s, d)).unwrap();
            }
        }
    }

    #[test]
    fn denoise_in_photo_modes_adds_a_cleanup_pass() {
        let idx = index();
        let r = super::plan(&idx, &request(Mode::Precision, None, Target::Scale(4), 2), 64, 48).unwrap();
        assert_eq!(r.cleanup.as_deref(), Some("realcugan-se-x2-denoise2x"));
        assert_eq!(r.models().collect::<Vec<_>>(), vec!["realcugan-se-x2-denoise2x", "span-x4"]);
        // The clean-up makes a 2x image and goes back to the input size before SPAN.
        assert_eq!(r.sizes, vec![(128, 96), (256, 192)]);
        assert_eq!((r.resize_after(0), r.resize_after(1)), (Some((64, 48)), None));
        assert!(r.explanation.starts_with("clean-up with realcugan-se-x2-denoise2x"), "{}", r.explanation);
        let r = super::plan(&idx, &request(Mode::Creative, None, Target::Scale(4), 0), 64, 48).unwrap();
        assert_eq!(r.cleanup, None);
        let err = super::plan(&idx, &request(Mode::Creative, None, Target::Scale(4), 4), 64, 48);
        assert!(err.unwrap_err().to_string().contains("denoise level 4"));
    }
}

//! From what the user asks (a mode and a scale or a box to fit) to what runs: a [`Recipe`] of model
//! passes followed by at most one resize, so that the pixels are resampled once and encoded once.
//!
//! Paths by scale (a model's native scale `n`; `·` means "then"):
//!
//! | asked | Precision (SPAN) | Creative, Maximum detail, Illustration (x4 models) |
//! |---|---|---|
//! | 2x | `span-x2` | x4 model · Lanczos3 down to 2x |
//! | 3x | `span-x4` · Lanczos3 down to 3x | x4 model · Lanczos3 down to 3x |
//! | 4x | `span-x4` | x4 model |
//! | 8x | `span-x4` · `span-x2` | x4 model · `span-x2` |
//! | fit W×H | the smallest of the above at or above the needed scale · Lanczos3 to the exact size | same |
//!
//! Cost, in multiply-adds per input pixel: a pass of a model with `m` MACs per pixel on an image
//! of `P` pixels costs `m·P`; the second pass of 8x runs on the 4x output (16·P pixels), so 8x with
//! SPAN costs `0.43 M·P + 16 · 0.41 M·P ≈ 17·0.43 M·P`. 3x costs the same as 4x plus a resize.

use crate::error::{LupaError, Result};
use crate::registry::{ModelIndex, ModelKind};

/// What kind of result the user wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reconstructs without inventing detail (SPAN, trained for PSNR).
    Precision,
    /// Adds plausible GAN texture to photos (realesr-general-x4v3).
    Creative,
    /// Creative with the largest GAN (RealESRGAN_x4plus): most detail, about 15× slower.
    MaximumDetail,
    /// For illustrations, anime and cartoons: clean lines and flat colour (realesr-animevideov3).
    Illustration,
}

impl Mode {
    /// Every mode, in the order the UI lists them.
    pub const ALL: [Mode; 4] = [Mode::Precision, Mode::Creative, Mode::MaximumDetail, Mode::Illustration];

    /// The mode's name on the command line and in the UI.
    pub fn name(self) -> &'static str {
        match self {
            Self::Precision => "precision",
            Self::Creative => "creative",
            Self::MaximumDetail => "maximum-detail",
            Self::Illustration => "illustration",
        }
    }

    /// One sentence for the UI.
    pub fn description(self) -> &'static str {
        match self {
            Self::Precision => {
                "Reconstructs detail that is really there, without inventing any: faithful, never fake."
            }
            Self::Creative => {
                "Adds plausible texture and sharpness with a GAN: crisper photos, but some detail is invented."
            }
            Self::MaximumDetail => {
                "Creative with the largest GAN (RealESRGAN x4plus): the most detail, many times slower."
            }
            Self::Illustration => "For drawings, anime and cartoons: clean lines and flat colour.",
        }
    }

    /// The model ids this mode uses: `(x4 model, x2 model if the mode has its own)`.
    fn models(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Precision => ("span-x4", Some("span-x2")),
            Self::Creative => ("realesr-general-x4v3", None),
            Self::MaximumDetail => ("realesrgan-x4plus", None),
            Self::Illustration => ("realesr-animevideov3", None),
        }
    }
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

/// What to run: model passes in order, then an optional resize to an exact size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Model ids, each applied to the previous output.
    pub passes: Vec<String>,
    /// Final size after the passes; `None` when the passes give the size asked for.
    pub resize_to: Option<(u32, u32)>,
    /// The output size.
    pub output: (u32, u32),
    /// A sentence saying what runs and why, for the user.
    pub explanation: String,
}

/// Plans a recipe for an input of `width × height`.
///
/// A `model` overrides the mode's choice: its passes are repeated or followed by a resize as the
/// table in the module docs does for x4 models.
///
/// # Errors
/// [`LupaError::UnsupportedScale`]-like [`LupaError::BadInput`] for a scale not in [`SCALES`], a
/// box that needs more than 8x, an empty box; [`LupaError::UnknownModel`] when a model is missing
/// from the index.
pub fn plan(
    index: &ModelIndex,
    mode: Mode,
    model: Option<&str>,
    width: u32,
    height: u32,
    target: Target,
) -> Result<Recipe> {
    let (main, own_x2) = match model {
        Some(id) => {
            let spec = index.get(id)?;
            (spec.id.as_str(), (spec.scale == 2).then_some(spec.id.as_str()))
        }
        None => {
            let (x4, x2) = mode.models();
            index.get(x4)?;
            (x4, x2)
        }
    };
    let main_scale = index.get(main)?.scale;
    // The fidelity 2x model used as a second pass for 8x, whatever the mode.
    let fidelity_x2 =
        index.models.iter().find(|m| m.scale == 2 && m.kind == ModelKind::Fidelity).map(|m| m.id.as_str());

    let (factor, exact) = match target {
        Target::Scale(s) if SCALES.contains(&s) => (f64::from(s), (width * s, height * s)),
        Target::Scale(s) => {
            return Err(LupaError::BadInput(format!("scale {s} is not offered (choose 2, 3, 4 or 8)")));
        }
        Target::Fit { width: bw, height: bh } => {
            if bw == 0 || bh == 0 {
                return Err(LupaError::BadInput("the box to fit must not be empty".into()));
            }
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
    let mut passes: Vec<&str> = Vec::new();
    if factor <= 1.0 {
        // Nothing to enlarge: resize only.
    } else if factor <= 2.0 && own_x2.is_some() {
        passes.push(own_x2.unwrap_or(main));
    } else if factor <= f64::from(main_scale) {
        passes.push(main);
    } else {
        passes.push(main);
        let second = fidelity_x2.filter(|_| main_scale == 4).ok_or_else(|| {
            LupaError::BadInput(format!("{main} cannot reach {factor:.1}x (no 2x model for a second pass)"))
        })?;
        passes.push(second);
    }
    let mut reached = (width, height);
    for id in &passes {
        let s = index.get(id)?.scale;
        reached = (reached.0 * s, reached.1 * s);
    }
    let resize_to = (reached != exact).then_some(exact);

    let mut explanation = if passes.is_empty() {
        format!("{width}×{height} already fits: resized only")
    } else {
        format!("{} on {width}×{height}", passes.join(", then "))
    };
    if let Some((w, h)) = resize_to {
        explanation += &format!(", then Lanczos3 {} to {w}×{h}", if w < reached.0 { "down" } else { "up" });
    }
    Ok(Recipe {
        passes: passes.into_iter().map(str::to_owned).collect(),
        resize_to,
        output: exact,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ModelIndex {
        let json =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/index.json")).unwrap();
        ModelIndex::from_json(&json).unwrap()
    }

    fn passes(r: &Recipe) -> Vec<&str> {
        r.passes.iter().map(String::as_str).collect()
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
}

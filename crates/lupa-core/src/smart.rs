//! Smart mode: recognise photo, illustration or text/screenshot from simple image statistics,
//! then pick the mode, scale and denoise level.
//!
//! # Features
//! Measured on the image's opaque pixels (alpha ≥ ½), downscaled with a box filter to at most
//! [`ANALYSIS_SIDE`] px on the long side, in 8-bit sRGB:
//! - `flat`: fraction of pixels whose right and lower neighbours differ by at most 2 levels in every
//!   channel (flat fills of drawings and user interfaces);
//! - `top8`: fraction of pixels in the 8 most frequent exact colours (palettes);
//! - `strong_edges`: fraction of horizontal or vertical neighbour pairs that differ by ≥ 96 levels
//!   in some channel (crisp glyph edges);
//! - `saturation`: mean HSV saturation `(max − min) / max`.
//!
//! # Rules (first match)
//! 1. **text**: `saturation < 0.1`, `top8 ≥ 0.6` and `strong_edges ≥ 0.01` (a user interface: few
//!    grey colours and crisp text), or `saturation < 0.05` and `strong_edges / (1 − flat) ≥ 0.05`
//!    (a scanned or rendered page: most of the detail is crisp edges).
//! 2. **illustration**: `flat ≥ 0.6`, `top8 ≥ 0.3` and `saturation ≥ 0.05` (flat colour fills).
//! 3. **photo** otherwise.
//!
//! Thresholds were set on ../shared/eval (the confusion table is in the README); painted anime
//! backgrounds look like photos to these features and are classified as photos.
//!
//! # Choices
//! - photo: Precision when the long side is ≥ 1024 px (detail is there to keep), Creative below
//!   (a small photo needs texture the sensor never recorded);
//! - illustration: Illustration (Real-CUGAN), denoise 1 when the source is a JPEG;
//! - text: Precision (it never invents glyph shapes).
//!
//! The scale, unless given, is the smallest of 2, 3, 4 that makes the long side at least
//! [`TARGET_LONG_SIDE`] px, else 4; for text 2, or 4 below 512 px.

use image::{DynamicImage, GenericImageView, ImageFormat, imageops::FilterType};

use crate::recipe::{Mode, Target};

/// Long side, in pixels, the statistics are measured at.
pub const ANALYSIS_SIDE: u32 = 512;
/// Long side, in pixels, the automatic scale aims for.
pub const TARGET_LONG_SIDE: u32 = 2048;

/// What an image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// Photographs and natural textures.
    Photo,
    /// Drawings, anime, cartoons: flat colour and lines.
    Illustration,
    /// Screenshots of user interfaces and text.
    Text,
}

impl Content {
    /// Every class, in table order.
    pub const ALL: [Content; 3] = [Content::Photo, Content::Illustration, Content::Text];

    /// The class name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Illustration => "illustration",
            Self::Text => "text",
        }
    }
}

/// The statistics the classifier looks at (see the module docs); all in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// Fraction of flat pixels.
    pub flat: f64,
    /// Fraction of pixels in the 8 most frequent colours.
    pub top8: f64,
    /// Fraction of neighbour pairs with a step of at least 96 levels.
    pub strong_edges: f64,
    /// Mean HSV saturation.
    pub saturation: f64,
}

/// Measures [`Features`] of `image`.
pub fn features(image: &DynamicImage) -> Features {
    let (w, h) = image.dimensions();
    let factor = (f64::from(ANALYSIS_SIDE) / f64::from(w.max(h))).min(1.0);
    let size = |side: u32| ((f64::from(side) * factor).round() as u32).max(1);
    let small = if factor < 1.0 {
        image.resize_exact(size(w), size(h), FilterType::Triangle).to_rgba8()
    } else {
        image.to_rgba8()
    };
    let (w, h) = small.dimensions();
    let opaque = |x: u32, y: u32| small.get_pixel(x, y).0[3] >= 128;
    let step = |a: [u8; 4], b: [u8; 4]| (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap_or(0);

    let (mut pixels, mut flat, mut pairs, mut strong) = (0u64, 0u64, 0u64, 0u64);
    let mut saturation = 0.0;
    let mut counts = std::collections::HashMap::<[u8; 3], u64>::new();
    for y in 0..h {
        for x in 0..w {
            if !opaque(x, y) {
                continue;
            }
            let p = small.get_pixel(x, y).0;
            pixels += 1;
            *counts.entry([p[0], p[1], p[2]]).or_default() += 1;
            let (max, min) = (p[..3].iter().max().copied(), p[..3].iter().min().copied());
            if let (Some(max), Some(min)) = (max, min)
                && max > 0
            {
                saturation += f64::from(max - min) / f64::from(max);
            }
            let mut is_flat = true;
            for (nx, ny) in [(x + 1, y), (x, y + 1)] {
                if nx < w && ny < h && opaque(nx, ny) {
                    let d = step(p, small.get_pixel(nx, ny).0);
                    pairs += 1;
                    strong += u64::from(d >= 96);
                    is_flat &= d <= 2;
                }
            }
            flat += u64::from(is_flat);
        }
    }
    let mut frequencies: Vec<u64> = counts.into_values().collect();
    frequencies.sort_unstable_by(|a, b| b.cmp(a));
    let top8: u64 = frequencies.iter().take(8).sum();
    let fraction = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    Features {
        flat: fraction(flat, pixels),
        top8: fraction(top8, pixels),
        strong_edges: fraction(strong, pairs),
        saturation: if pixels == 0 { 0.0 } else { saturation / pixels as f64 },
    }
}

/// Applies the rules in the module docs; returns the class and the reason in words.
pub fn classify(f: &Features) -> (Content, String) {
    let percent = |v: f64| format!("{:.0} %", v * 100.0);
    let edge_share = f.strong_edges / (1.0 - f.flat).max(1e-6);
    if f.saturation < 0.1 && f.top8 >= 0.6 && f.strong_edges >= 0.01 {
        let why = format!(
            "few grey colours ({} of pixels in 8 colours) and crisp edges ({} of neighbours)",
            percent(f.top8),
            percent(f.strong_edges)
        );
        (Content::Text, why)
    } else if f.saturation < 0.05 && edge_share >= 0.05 {
        (Content::Text, format!("greyscale with mostly crisp edges ({} of the detail)", percent(edge_share)))
    } else if f.flat >= 0.6 && f.top8 >= 0.3 && f.saturation >= 0.05 {
        let why = format!("flat colour fills ({} flat, {} in 8 colours)", percent(f.flat), percent(f.top8));
        (Content::Illustration, why)
    } else {
        (
            Content::Photo,
            format!("continuous tones ({} flat, {} in 8 colours)", percent(f.flat), percent(f.top8)),
        )
    }
}

/// What Smart mode decided.
#[derive(Debug, Clone, PartialEq)]
pub struct SmartChoice {
    /// The recognised content.
    pub content: Content,
    /// The statistics behind it.
    pub features: Features,
    /// The mode to run.
    pub mode: Mode,
    /// The size (the one given, or the automatic scale).
    pub target: Target,
    /// The denoise level (the one given, or the automatic one).
    pub denoise: u8,
    /// One sentence for the user: what was recognised, why, and what runs.
    pub explanation: String,
}

/// Picks mode, scale and denoise for `image` (rules in the module docs). `target` and `denoise`,
/// when given, are kept; `source` is the format the file was decoded from.
pub fn choose(
    image: &DynamicImage,
    source: Option<ImageFormat>,
    target: Option<Target>,
    denoise: Option<u8>,
) -> SmartChoice {
    let features = features(image);
    let (content, why) = classify(&features);
    let long = image.width().max(image.height());
    let mode = match content {
        Content::Photo if long >= 1024 => Mode::Precision,
        Content::Photo => Mode::Creative,
        Content::Illustration => Mode::Illustration,
        Content::Text => Mode::Precision,
    };
    let auto_scale = match content {
        Content::Text if long < 512 => 4,
        Content::Text => 2,
        _ => [2, 3, 4].into_iter().find(|s| long * s >= TARGET_LONG_SIDE).unwrap_or(4),
    };
    let target = target.unwrap_or(Target::Scale(auto_scale));
    let jpeg = source == Some(ImageFormat::Jpeg);
    let denoise = denoise.unwrap_or(u8::from(content == Content::Illustration && jpeg));
    let size = match target {
        Target::Scale(s) => format!("{s}x"),
        Target::Fit { width, height } => format!("fit {width}×{height}"),
    };
    let explanation = format!(
        "Looks like {}: {why}. Using {} at {size}{}.",
        match content {
            Content::Photo => "a photo",
            Content::Illustration => "an illustration",
            Content::Text => "text or a screenshot",
        },
        mode.name(),
        if denoise > 0 { format!(" with denoise {denoise}") } else { String::new() }
    );
    SmartChoice { content, features, mode, target, denoise, explanation }
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    #[test]
    fn flat_two_colour_ui_with_text_edges_is_text() {
        // A light grey panel with black one-pixel strokes every few pixels.
        let img = RgbImage::from_fn(200, 100, |x, y| {
            if (x % 7 == 3 && y % 10 < 6) || (y % 10 == 2 && x % 14 < 5) {
                Rgb([0, 0, 0])
            } else {
                Rgb([236, 236, 236])
            }
        });
        let f = features(&DynamicImage::ImageRgb8(img));
        assert_eq!(classify(&f).0, Content::Text, "{f:?}");
    }

    #[test]
    fn smooth_colour_gradient_is_a_photo_and_gets_a_scale_to_2048() {
        let img = RgbImage::from_fn(600, 400, |x, y| {
            Rgb([(x * 255 / 600) as u8, (y * 255 / 400) as u8, ((x + y) % 256) as u8])
        });
        let choice = choose(&DynamicImage::ImageRgb8(img), None, None, None);
        assert_eq!(choice.content, Content::Photo, "{:?}", choice.features);
        assert_eq!((choice.mode, choice.target), (Mode::Creative, Target::Scale(4)));
        assert!(choice.explanation.starts_with("Looks like a photo"), "{}", choice.explanation);
    }

    #[test]
    fn flat_saturated_fills_are_an_illustration_and_jpeg_gets_denoise() {
        let img = RgbImage::from_fn(300, 300, |x, y| match (x / 100 + y / 100) % 3 {
            0 => Rgb([220, 40, 40]),
            1 => Rgb([40, 160, 220]),
            _ => Rgb([250, 220, 120]),
        });
        let choice = choose(&DynamicImage::ImageRgb8(img), Some(ImageFormat::Jpeg), None, None);
        assert_eq!(choice.content, Content::Illustration);
        assert_eq!((choice.mode, choice.denoise, choice.target), (Mode::Illustration, 1, Target::Scale(4)));
        // What the user gives is kept.
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 300, Rgb([220, 40, 40])));
        let choice = choose(&img, Some(ImageFormat::Jpeg), Some(Target::Scale(2)), Some(0));
        assert_eq!((choice.target, choice.denoise), (Target::Scale(2), 0));
    }
}

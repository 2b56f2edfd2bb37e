//! The quality benchmark: PSNR-Y and SSIM-Y under the standard super-resolution protocol.
//!
//! Protocol (as in the SR literature and BasicSR): the HR image is cropped to a multiple of the
//! scale, the LR input is its antialiased bicubic downscale (Catmull-Rom, a = −0.5, like MATLAB's
//! `imresize`) rounded to 8 bits, each method's output is rounded to 8 bits, and PSNR and SSIM
//! (Wang et al. 2004) are taken on BT.601 Y with `scale` pixels shaved from every border.
//! To bound the run time every image is first centre-cropped to at most `crop`×`crop` pixels.
//!
//! Lupa's models run plain or with the geometric self-ensemble ([`Run::ensemble`]: the mean of the
//! model over the 8 flips and rotations of the input, 8× the cost), reported as
//! "`id` + self-ensemble".

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use lupa_core::metrics::{psnr_y, ssim_y};
use lupa_core::{Progress, SrModel, UpscaleOptions};
use serde::Serialize;

/// A folder of HR images, under a label for the report.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub name: String,
    pub files: Vec<PathBuf>,
}

impl ImageSet {
    /// Every PNG/JPEG directly in `dir`, sorted; the set is named after the folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        Ok(Self { name, files: image_files(dir)? })
    }

    /// The first `n` images (in file-name order), to bound a run's time.
    pub fn first(mut self, n: Option<usize>) -> Self {
        if let Some(n) = n {
            self.files.truncate(n);
        }
        self
    }
}

/// Mean scores of one method at one scale on one image set.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub set: String,
    pub method: String,
    pub scale: u32,
    pub psnr: f64,
    pub ssim: f64,
    pub images: usize,
    /// Seconds spent upscaling the set's images, for the methods run in this process.
    pub secs: Option<f64>,
}

/// What a Lupa model's row is called when it runs with the self-ensemble: "`id` + self-ensemble".
pub const ENSEMBLE_SUFFIX: &str = " + self-ensemble";

/// One of Lupa's models as the benchmark runs it.
#[derive(Clone, Copy)]
pub struct Run<'m> {
    pub model: &'m SrModel,
    /// With the geometric self-ensemble (`UpscaleOptions::ensemble`).
    pub ensemble: bool,
}

impl Run<'_> {
    /// The model's id, with [`ENSEMBLE_SUFFIX`] for the self-ensemble.
    pub fn method(&self) -> String {
        let id = &self.model.spec.id;
        if self.ensemble { format!("{id}{ENSEMBLE_SUFFIX}") } else { id.clone() }
    }

    /// Every model plain, then the `ensemble` ones (by id) with the self-ensemble.
    pub fn all<'m>(plain: &'m [SrModel], ensemble: &'m [SrModel]) -> Vec<Run<'m>> {
        let runs = |models: &'m [SrModel], ensemble| models.iter().map(move |model| Run { model, ensemble });
        runs(plain, false).chain(runs(ensemble, true)).collect()
    }
}

/// An HR image of the set after the centre crop, cropped to a multiple of `scale`, and its LR.
pub fn degrade(hr: &DynamicImage, crop: u32, scale: u32) -> (RgbImage, RgbImage) {
    let hr = hr.to_rgb8();
    let (w, h) = (hr.width().min(crop), hr.height().min(crop));
    let (w, h) = (w - w % scale, h - h % scale);
    let hr = imageops::crop_imm(&hr, (hr.width() - w) / 2, (hr.height() - h) / 2, w, h).to_image();
    let lr = imageops::resize(&hr, w / scale, h / scale, FilterType::CatmullRom);
    (hr, lr)
}

/// PSNR-Y and SSIM-Y of `sr` against `hr`, `scale` pixels shaved.
pub fn score(hr: &RgbImage, sr: &RgbImage, scale: u32) -> Result<(f64, f64)> {
    Ok((psnr_y(hr, sr, scale)?, ssim_y(hr, sr, scale)?))
}

/// Bicubic and Lanczos3 at `scales`, and every model run at its own scale, on every image of `sets`.
/// `log` gets one line per image.
pub fn run(
    sets: &[ImageSet],
    crop: u32,
    scales: &[u32],
    runs: &[Run],
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Score>> {
    let mut scores = Vec::new();
    for set in sets {
        // Sums per (method, scale), in first-seen order; divided into means at the end.
        let mut sums: Vec<Score> = Vec::new();
        let mut add = |method: &str, scale: u32, (p, s): (f64, f64), secs: f64| match sums
            .iter_mut()
            .find(|t| t.method == method && t.scale == scale)
        {
            Some(t) => {
                (t.psnr, t.ssim, t.images) = (t.psnr + p, t.ssim + s, t.images + 1);
                t.secs = t.secs.map(|t| t + secs);
            }
            None => sums.push(Score {
                set: set.name.clone(),
                method: method.into(),
                scale,
                psnr: p,
                ssim: s,
                images: 1,
                secs: Some(secs),
            }),
        };
        for path in &set.files {
            let image = image::open(path).with_context(|| format!("reading {}", path.display()))?;
            for &scale in scales {
                let (hr, lr) = degrade(&image, crop, scale);
                for (name, filter) in
                    [("bicubic", FilterType::CatmullRom), ("Lanczos3", FilterType::Lanczos3)]
                {
                    let started = Instant::now();
                    let sr = imageops::resize(&lr, hr.width(), hr.height(), filter);
                    add(name, scale, score(&hr, &sr, scale)?, started.elapsed().as_secs_f64());
                }
                for run in runs.iter().filter(|r| r.model.spec.scale == scale) {
                    let started = Instant::now();
                    let sr = upscale(run.model, &lr, run.ensemble)?;
                    let secs = started.elapsed().as_secs_f64();
                    add(&run.method(), scale, score(&hr, &sr, scale)?, secs);
                }
            }
            log(&format!("quality: {} / {}", set.name, path.display()));
        }
        scores.extend(sums.into_iter().map(|t| Score {
            psnr: t.psnr / t.images as f64,
            ssim: t.ssim / t.images as f64,
            ..t
        }));
    }
    Ok(scores)
}

/// `model` on `lr` (with the self-ensemble if `ensemble`), in 256-px tiles, rounded to 8 bits.
pub fn upscale(model: &SrModel, lr: &RgbImage, ensemble: bool) -> Result<RgbImage> {
    let mut ignore = |_: Progress| ControlFlow::Continue(());
    let options = UpscaleOptions { tile_size: 256, overlap: None, ensemble, engines: 1 };
    let input = DynamicImage::ImageRgb8(lr.clone());
    Ok(pollster::block_on(lupa_core::upscale_image(model, &input, options, &mut ignore))?.to_rgb8())
}

/// Writes each set's LR inputs at `scale` as PNG into `dir` (for peers that run elsewhere), and
/// returns (set, HR, LR path) per image.
pub fn write_lr(
    sets: &[ImageSet],
    crop: u32,
    scale: u32,
    dir: &Path,
) -> Result<Vec<(String, RgbImage, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for set in sets {
        for (i, path) in set.files.iter().enumerate() {
            let image = image::open(path).with_context(|| format!("reading {}", path.display()))?;
            let (hr, lr) = degrade(&image, crop, scale);
            let file = dir.join(format!("{}-{i:02}.png", set.name));
            lr.save(&file)?;
            out.push((set.name.clone(), hr, file));
        }
    }
    Ok(out)
}

/// Mean scores per set of a peer's outputs: `(set, HR, SR)` triples.
pub fn score_outputs(
    method: &str,
    scale: u32,
    outputs: &[(String, RgbImage, RgbImage)],
) -> Result<Vec<Score>> {
    let mut sums: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for (set, hr, sr) in outputs {
        let (p, s) = score(hr, sr, scale)?;
        let e = sums.entry(set).or_default();
        *e = (e.0 + p, e.1 + s, e.2 + 1);
    }
    Ok(sums
        .into_iter()
        .map(|(set, (p, s, n))| Score {
            set: set.to_owned(),
            method: method.to_owned(),
            scale,
            psnr: p / n as f64,
            ssim: s / n as f64,
            images: n,
            secs: None,
        })
        .collect())
}

pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| matches!(e.to_ascii_lowercase().to_str(), Some("png" | "jpg" | "jpeg")))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> DynamicImage {
        let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../../tests/fixtures/images/astronaut_128.png");
        image::open(path).unwrap()
    }

    #[test]
    fn degrade_centre_crops_to_a_multiple_of_the_scale_and_downscales() {
        let image = fixture(); // 128×128
        let (hr, lr) = degrade(&image, 100, 3);
        assert_eq!(hr.dimensions(), (99, 99));
        assert_eq!(lr.dimensions(), (33, 33));
        // Centred: the crop starts at ((128 − 99) / 2, (128 − 99) / 2) = (14, 14).
        assert_eq!(hr.get_pixel(0, 0), &image.to_rgb8().get_pixel(14, 14).clone());
        // No crop needed: the whole image, and bicubic back up scores far above noise.
        let (hr, lr) = degrade(&image, 256, 2);
        assert_eq!((hr.dimensions(), lr.dimensions()), ((128, 128), (64, 64)));
        let up = imageops::resize(&lr, 128, 128, FilterType::CatmullRom);
        let (p, s) = score(&hr, &up, 2).unwrap();
        assert!((20.0..40.0).contains(&p) && (0.5..1.0).contains(&s), "{p} {s}");
    }

    #[test]
    fn the_self_ensemble_gets_its_own_row_close_to_the_plain_one() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let index = crate::read_index(&models).unwrap();
        let device = lupa_core::burn::tensor::Device::flex();
        let plain = crate::load_models(&index, &models, &["span-x2".to_owned()], &device).unwrap();
        let runs = Run::all(&plain, &plain);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images");
        let set = ImageSet { name: "fixture".into(), files: vec![dir.join("astronaut_128.png")] };
        let scores = run(&[set], 48, &[2], &runs, &mut |_| {}).unwrap();
        let methods: Vec<&str> = scores.iter().map(|s| s.method.as_str()).collect();
        assert_eq!(methods, ["bicubic", "Lanczos3", "span-x2", "span-x2 + self-ensemble"]);
        let (plain, ensemble) = (&scores[2], &scores[3]);
        assert!(ensemble.secs.is_some() && plain.secs.is_some());
        // Same model, same input: the mean over the 8 transforms scores within a dB of one run.
        assert!((ensemble.psnr - plain.psnr).abs() < 1.0, "{} vs {}", ensemble.psnr, plain.psnr);
        assert!(ensemble.psnr > scores[0].psnr, "the ensemble beats bicubic");
    }

    #[test]
    fn peer_outputs_are_scored_per_set() {
        let (hr, lr) = degrade(&fixture(), 128, 4);
        let up = imageops::resize(&lr, hr.width(), hr.height(), FilterType::CatmullRom);
        let outputs = vec![
            ("a".to_owned(), hr.clone(), hr.clone()),
            ("b".to_owned(), hr.clone(), up.clone()),
            ("b".to_owned(), hr.clone(), up.clone()),
        ];
        let scores = score_outputs("peer", 4, &outputs).unwrap();
        assert_eq!(scores.len(), 2);
        assert!(scores[0].psnr.is_infinite() && scores[0].images == 1);
        let (p, s) = score(&hr, &up, 4).unwrap();
        assert_eq!((scores[1].psnr, scores[1].ssim, scores[1].images), (p, s, 2));
    }
}

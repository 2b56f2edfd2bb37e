//! `lupa-bench quality`: PSNR-Y and SSIM-Y of bicubic, Lanczos3 and Lupa's models under the
//! standard protocol.
//! `lupa-bench smart`: the Smart-mode classifier's confusion table on a labelled folder.
//! `lupa-bench speed`: time per output megapixel, achieved multiply-adds per second and peak
//! memory per model, backend and input size.
//!
//! Protocol (as in the SR literature and BasicSR): the HR image is cropped to a multiple of the
//! scale, the LR input is its antialiased bicubic downscale (Catmull-Rom, a = −0.5, like MATLAB's
//! `imresize`) rounded to 8 bits, each method's output is rounded to 8 bits, and PSNR is taken on
//! BT.601 Y with `scale` pixels shaved from every border.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use lupa_core::burn::tensor::Device;
use lupa_core::metrics::{psnr_y, ssim_y};
use lupa_core::{ModelIndex, Progress, SrModel, UpscaleOptions};

#[derive(Parser)]
#[command(about = "Quality benchmarks for Lupa's models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PSNR-Y table (markdown) of bicubic and the given models on every image of a folder.
    Quality {
        /// Folder of HR images (PNG or JPEG).
        images: PathBuf,
        /// Comma-separated model ids.
        #[arg(long, value_delimiter = ',', default_value = "span-x2,span-x4")]
        models: Vec<String>,
        /// Folder with index.json and the weights.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
    /// Confusion table (markdown) of the Smart-mode classifier on a folder of labelled folders.
    ///
    /// Sub-folder names are labels: `anime` is an illustration, `text_ui` text, anything else a
    /// photo (the layout of ../shared/eval).
    Smart {
        /// Folder whose sub-folders hold the images.
        root: PathBuf,
    },
    /// Speed table (markdown): each model × backend × size runs in its own process (so its peak
    /// resident memory is its own), once to warm up on a 32×32 crop, then timed.
    Speed {
        /// The photo to upscale (resized to each size with Lanczos3).
        image: PathBuf,
        /// Comma-separated model ids.
        #[arg(long, value_delimiter = ',', default_value = "span-x4")]
        models: Vec<String>,
        /// Comma-separated square input sides in pixels.
        #[arg(long, value_delimiter = ',', default_value = "256")]
        sizes: Vec<u32>,
        /// Comma-separated backends: `cpu` (flex) and/or `wgpu`.
        #[arg(long, value_delimiter = ',', default_value = "cpu")]
        backends: Vec<String>,
        /// Folder with index.json and the weights.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
    /// One measurement of `speed`, printed as one tab-separated line (used by `speed`).
    #[command(hide = true)]
    SpeedOne { image: PathBuf, model: String, size: u32, backend: String, models_dir: PathBuf },
}

/// HR cropped to a multiple of `scale`, and its LR.
fn degrade(hr: &DynamicImage, scale: u32) -> (RgbImage, RgbImage) {
    let hr = hr.to_rgb8();
    let (w, h) = (hr.width() - hr.width() % scale, hr.height() - hr.height() % scale);
    let hr = imageops::crop_imm(&hr, 0, 0, w, h).to_image();
    let lr = imageops::resize(&hr, w / scale, h / scale, FilterType::CatmullRom);
    (hr, lr)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Quality { images, models, models_dir } => quality(&images, &models, &models_dir),
        Command::Smart { root } => smart(&root),
        Command::Speed { image, models, sizes, backends, models_dir } => {
            speed(&image, &models, &sizes, &backends, &models_dir)
        }
        Command::SpeedOne { image, model, size, backend, models_dir } => {
            speed_one(&image, &model, size, &backend, &models_dir)
        }
    }
}

fn speed(
    image: &Path,
    models: &[String],
    sizes: &[u32],
    backends: &[String],
    models_dir: &Path,
) -> Result<()> {
    println!("| model | backend | input | output | time | s per output MP | achieved GMAC/s | peak RSS |");
    println!("|---|---|---|---|---:|---:|---:|---:|");
    for model in models {
        for backend in backends {
            for &size in sizes {
                let out = std::process::Command::new(std::env::current_exe()?)
                    .args(["speed-one", &image.to_string_lossy(), model, &size.to_string(), backend])
                    .arg(models_dir)
                    .output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                let fields: Vec<&str> = text.trim().split('\t').collect();
                if !out.status.success() || fields.len() != 6 {
                    let err = String::from_utf8_lossy(&out.stderr);
                    println!(
                        "| {model} | {backend} | {size}² | failed: {} | | | | |",
                        err.trim().replace('\n', " ")
                    );
                    continue;
                }
                let [adapter, output, secs, per_mp, gmacs, rss] = fields[..] else { unreachable!() };
                println!(
                    "| {model} | {adapter} | {size}² | {output} | {secs} s | {per_mp} | {gmacs} | {rss} MB |"
                );
            }
        }
    }
    Ok(())
}

/// Peak resident set size of this process in MB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn speed_one(image: &Path, id: &str, size: u32, backend: &str, models_dir: &Path) -> Result<()> {
    let index = ModelIndex::from_json(&std::fs::read_to_string(models_dir.join("index.json"))?)?;
    let (device, adapter) = match backend {
        "cpu" => (Device::flex(), "cpu (flex)".to_owned()),
        "wgpu" => {
            let (device, setup) = Device::wgpu_options().init_with_setup().context("no wgpu adapter")?;
            (device, format!("wgpu ({})", setup.adapter.get_info().name))
        }
        other => anyhow::bail!("unknown backend {other} (cpu or wgpu)"),
    };
    let spec = index.get(id)?;
    let model = SrModel::load(spec, std::fs::read(models_dir.join(&spec.weights.file))?, &device)?;
    let photo = image::open(image).with_context(|| format!("{}", image.display()))?;
    let input = DynamicImage::ImageRgb8(imageops::resize(&photo.to_rgb8(), size, size, FilterType::Lanczos3));
    // The same tiling the CLI picks: a 1 GiB activation budget, and the device's buffer limit.
    let limits = lupa_core::TileLimits { memory_budget: 1 << 30, max_buffer: None, max_side: 1024 };
    let options = UpscaleOptions { tile_size: lupa_core::auto_tile_size(&model.spec, limits), overlap: None };
    let mut ignore = |_: Progress| ControlFlow::Continue(());
    let warm = input.crop_imm(0, 0, 32.min(size), 32.min(size));
    pollster::block_on(lupa_core::upscale_image(&model, &warm, options, &mut ignore))?;
    let started = std::time::Instant::now();
    let out = pollster::block_on(lupa_core::upscale_image(&model, &input, options, &mut ignore))?;
    let secs = started.elapsed().as_secs_f64();
    let output_mp = f64::from(out.width()) * f64::from(out.height()) / 1e6;
    let gmacs = spec.macs_per_pixel as f64 * f64::from(size * size) / secs / 1e9;
    println!(
        "{adapter}\t{}×{}\t{secs:.2}\t{:.2}\t{gmacs:.1}\t{:.0}",
        out.width(),
        out.height(),
        secs / output_mp,
        peak_rss_mb().unwrap_or(f64::NAN)
    );
    Ok(())
}

fn smart(root: &Path) -> Result<()> {
    use lupa_core::smart::{Content, classify, features};
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let index = |c: Content| Content::ALL.iter().position(|&k| k == c).expect("listed");
    let mut table = [[0u32; 3]; 3];
    let mut wrong = Vec::new();
    for dir in dirs {
        let label = match dir.file_name().and_then(|n| n.to_str()) {
            Some("anime") => Content::Illustration,
            Some("text_ui") => Content::Text,
            _ => Content::Photo,
        };
        for file in image_files(&dir)? {
            let image = image::open(&file).with_context(|| format!("reading {}", file.display()))?;
            let f = features(&image);
            let (got, why) = classify(&f);
            table[index(label)][index(got)] += 1;
            if got != label {
                wrong.push(format!(
                    "- `{}`: {} taken for {} ({why}; flat {:.3}, top8 {:.3}, strong edges {:.3}, saturation {:.3})",
                    file.display(),
                    label.name(),
                    got.name(),
                    f.flat,
                    f.top8,
                    f.strong_edges,
                    f.saturation
                ));
            }
        }
    }
    println!("| label \\ predicted | {} |", Content::ALL.map(Content::name).join(" | "));
    println!("|---|---:|---:|---:|");
    for (label, row) in Content::ALL.iter().zip(table) {
        println!("| {} | {} |", label.name(), row.map(|n| n.to_string()).join(" | "));
    }
    let correct: u32 = (0..3).map(|i| table[i][i]).sum();
    let total: u32 = table.iter().flatten().sum();
    println!(
        "\n{correct} of {total} correct ({:.0} %).",
        f64::from(correct) * 100.0 / f64::from(total.max(1))
    );
    for line in wrong {
        println!("{line}");
    }
    Ok(())
}

fn quality(images: &Path, models: &[String], models_dir: &Path) -> Result<()> {
    let index = ModelIndex::from_json(&std::fs::read_to_string(models_dir.join("index.json"))?)?;
    let device = Device::flex();
    let loaded: Vec<SrModel> = models
        .iter()
        .map(|id| {
            let spec = index.get(id)?;
            let bytes = std::fs::read(models_dir.join(&spec.weights.file))?;
            Ok(SrModel::load(spec, bytes, &device)?)
        })
        .collect::<Result<_>>()?;

    let mut scales: Vec<u32> = loaded.iter().map(|m| m.spec.scale).collect();
    scales.sort_unstable();
    scales.dedup();
    let mut columns: Vec<String> = Vec::new();
    for &s in &scales {
        columns.push(format!("bicubic x{s}"));
        columns.push(format!("Lanczos3 x{s}"));
        columns.extend(loaded.iter().filter(|m| m.spec.scale == s).map(|m| m.spec.id.clone()));
    }
    println!("PSNR-Y (dB) / SSIM-Y per image and method.\n");
    println!("| image | {} |", columns.join(" | "));
    println!("|---|{}", "---:|".repeat(columns.len()));

    // (PSNR, SSIM) sums per column.
    let mut totals = vec![(0.0, 0.0); columns.len()];
    let files = image_files(images)?;
    for path in &files {
        let image = image::open(path).with_context(|| format!("{}", path.display()))?;
        let mut row = Vec::new();
        for &s in &scales {
            let (hr, lr) = degrade(&image, s);
            let score =
                |sr: &RgbImage| -> Result<(f64, f64)> { Ok((psnr_y(&hr, sr, s)?, ssim_y(&hr, sr, s)?)) };
            for filter in [FilterType::CatmullRom, FilterType::Lanczos3] {
                row.push(score(&imageops::resize(&lr, hr.width(), hr.height(), filter))?);
            }
            for model in loaded.iter().filter(|m| m.spec.scale == s) {
                let mut ignore = |_: Progress| ControlFlow::Continue(());
                let options = UpscaleOptions { tile_size: 256, overlap: None };
                let sr = pollster::block_on(lupa_core::upscale_image(
                    model,
                    &DynamicImage::ImageRgb8(lr.clone()),
                    options,
                    &mut ignore,
                ))?;
                row.push(score(&sr.to_rgb8())?);
            }
        }
        let name = path.file_stem().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let cells: Vec<String> = row.iter().map(|(p, q)| format!("{p:.2} / {q:.4}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
        totals.iter_mut().zip(&row).for_each(|(t, v)| *t = (t.0 + v.0, t.1 + v.1));
    }
    let n = files.len() as f64;
    let means: Vec<String> = totals.iter().map(|(p, q)| format!("**{:.2} / {:.4}**", p / n, q / n)).collect();
    println!("| **mean** | {} |", means.join(" | "));
    Ok(())
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| matches!(e.to_str(), Some("png" | "jpg" | "jpeg"))))
        .collect();
    files.sort();
    Ok(files)
}

//! Lupa's benchmarks.
//!
//! - `lupa-bench report`: everything below plus the peers (UpscalerJS in headless Chromium, the
//!   ncnn runtime) in one run, written to docs/BENCHMARKS.md with a plot (`scripts/bench.sh`).
//! - `lupa-bench quality`: PSNR-Y / SSIM-Y of bicubic, Lanczos3 and Lupa's models per image set
//!   under the standard protocol ([`quality`]).
//! - `lupa-bench smart`: the Smart-mode classifier's confusion table on a labelled folder.
//! - `lupa-bench profile`: each convolution of a model timed alone against the whole upscale.

mod plot;
mod profile;
mod quality;
mod report;
mod speed;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use image::DynamicImage;
use lupa_core::burn::tensor::Device;
use lupa_core::{ModelIndex, Progress, SrModel, UpscaleOptions};

const EVAL: &str = "../shared/eval";

#[derive(Parser)]
#[command(about = "Lupa's quality and speed benchmarks, and the report with the peers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once: the report's many arguments may make its variant large.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Every benchmark and the peers in one run, written to a markdown report and an SVG plot.
    ///
    /// Needs the Trunk build (--dist), `node` with crates/lupa-bench/browser's packages, Chromium,
    /// and a Python with tests/parity/requirements.txt (`scripts/bench.sh` sets all of it up).
    Report(report::Config),
    /// PSNR-Y / SSIM-Y table (markdown) of bicubic, Lanczos3 and the given models per image set.
    Quality {
        /// Folders of HR images (PNG or JPEG).
        #[arg(required = true)]
        sets: Vec<PathBuf>,
        /// Comma-separated model ids.
        #[arg(long, value_delimiter = ',', default_value = "span-x2,span-x4")]
        models: Vec<String>,
        /// Centre crop of every HR image, in pixels.
        #[arg(long, default_value_t = 256)]
        crop: u32,
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
        #[arg(default_value = EVAL)]
        root: PathBuf,
    },
    /// Each convolution of a model timed alone on `flex`, against the whole upscale (markdown).
    Profile {
        /// The photo to upscale (resized to the size).
        image: PathBuf,
        #[arg(long, default_value = "span-x4")]
        model: String,
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Folder with index.json and the weights.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
    /// One native speed measurement, printed as a JSON runner report (used by `report`).
    #[command(hide = true)]
    SpeedOne { input: PathBuf, warm: PathBuf, model: String, backend: String, models_dir: PathBuf },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Report(mut config) => {
            if config.quality_models.is_empty() {
                let index = read_index(&config.setup.models_dir)?;
                config.quality_models = index.models.iter().map(|m| m.id.clone()).collect();
            }
            // Found at run time (under cargo, or from the repository root as scripts/bench.sh runs
            // it): a build cache shared by several clones keeps the path of the first one.
            let root = std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| PathBuf::from("crates/lupa-bench"), PathBuf::from);
            config.setup.bench_exe = std::env::current_exe()?;
            config.setup.node_dir = root.join("browser");
            config.setup.ncnn_script = root.join("peers/ncnn_speed.py");
            config.setup.time_limit = Some(std::time::Duration::from_secs_f64(3.0 * config.budget_secs));
            config.command_line = std::env::var("LUPA_BENCH_COMMAND")
                .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
            report::run(&config)
        }
        Command::Quality { sets, models, crop, models_dir } => {
            quality_table(&sets, &models, crop, &models_dir)
        }
        Command::Smart { root } => smart(&root),
        Command::Profile { image, model, size, models_dir } => {
            let device = Device::flex();
            let (loaded, weights) = load_model(&read_index(&models_dir)?, &models_dir, &model, &device)?;
            let photo = image::open(&image).with_context(|| format!("{}", image.display()))?;
            let p = profile::profile(&loaded, &weights, &photo, size, &device)?;
            println!("{}: whole {:.2} s, convolutions {:.2} s", p.model, p.whole_secs, p.conv_secs());
            for c in &p.convs {
                println!("{:?} ×{}: {:.3} s", c.shape, c.layers, c.secs);
            }
            Ok(())
        }
        Command::SpeedOne { input, warm, model, backend, models_dir } => {
            speed_one(&input, &warm, &model, &backend, &models_dir)
        }
    }
}

/// `models_dir/index.json`.
pub(crate) fn read_index(models_dir: &Path) -> Result<ModelIndex> {
    let path = models_dir.join("index.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ModelIndex::from_json(&text)?)
}

/// Model `id` of `index` loaded (sha256-checked) from `models_dir` onto `device`, with the bytes of
/// its weights file (the profile reads the convolution shapes from them).
pub(crate) fn load_model(
    index: &ModelIndex,
    models_dir: &Path,
    id: &str,
    device: &Device,
) -> Result<(SrModel, Vec<u8>)> {
    let spec = index.get(id)?;
    let weights = std::fs::read(models_dir.join(&spec.weights.file))?;
    Ok((SrModel::load(spec, weights.clone(), device)?, weights))
}

/// Peak resident set size of this process in MB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn speed_one(input: &Path, warm: &Path, id: &str, backend: &str, models_dir: &Path) -> Result<()> {
    let (device, adapter) = match backend {
        "cpu" => (Device::flex(), "flex".to_owned()),
        "wgpu" => {
            let (device, setup) = Device::wgpu_options().init_with_setup().context("no wgpu adapter")?;
            let info = setup.adapter.get_info();
            (device, format!("{} ({:?})", info.name, info.backend))
        }
        other => anyhow::bail!("unknown backend {other} (cpu or wgpu)"),
    };
    let (model, _) = load_model(&read_index(models_dir)?, models_dir, id, &device)?;
    let open = |p: &Path| image::open(p).with_context(|| format!("{}", p.display()));
    let (input, warm) = (open(input)?, open(warm)?);
    // The same tiling the CLI picks: a 1 GiB activation budget, and the device's buffer limit.
    let limits = lupa_core::TileLimits { memory_budget: 1 << 30, max_buffer: None, max_side: 1024 };
    let options = UpscaleOptions { tile_size: lupa_core::auto_tile_size(&model.spec, limits), overlap: None };
    let run = |image: &DynamicImage| -> Result<(f64, DynamicImage)> {
        let mut ignore = |_: Progress| std::ops::ControlFlow::Continue(());
        let started = std::time::Instant::now();
        let out = pollster::block_on(lupa_core::upscale_image(&model, image, options, &mut ignore))?;
        Ok((started.elapsed().as_secs_f64(), out))
    };
    run(&warm)?;
    let (secs, out) = run(&input)?;
    let report = speed::RunnerReport {
        adapter,
        peak_rss_mb: peak_rss_mb().unwrap_or(f64::NAN),
        results: vec![speed::RunnerResult { ms: secs * 1000.0, width: out.width(), height: out.height() }],
        macs_per_pixel: None,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn quality_table(dirs: &[PathBuf], models: &[String], crop: u32, models_dir: &Path) -> Result<()> {
    let index = read_index(models_dir)?;
    let device = Device::flex();
    let loaded = models
        .iter()
        .map(|id| load_model(&index, models_dir, id, &device).map(|(m, _)| m))
        .collect::<Result<Vec<_>>>()?;
    let sets = dirs.iter().map(|d| quality::ImageSet::from_dir(d)).collect::<Result<Vec<_>>>()?;
    let mut scales: Vec<u32> = loaded.iter().map(|m| m.spec.scale).collect();
    scales.sort_unstable();
    scales.dedup();
    let scores = quality::run(&sets, crop, &scales, &loaded, &mut |l| eprintln!("{l}"))?;
    println!("| set | method | scale | PSNR-Y | SSIM-Y | images |\n|---|---|---:|---:|---:|---:|");
    for s in scores {
        println!(
            "| {} | {} | x{} | {:.2} | {:.4} | {} |",
            s.set, s.method, s.scale, s.psnr, s.ssim, s.images
        );
    }
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
        for file in quality::image_files(&dir)? {
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

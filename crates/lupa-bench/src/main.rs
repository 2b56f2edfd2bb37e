//! Lupa's benchmarks.
//!
//! - `lupa-bench report`: everything below plus the peers (UpscalerJS in headless Chromium, the
//!   ncnn runtime) in one run, written to docs/BENCHMARKS.md with a plot (`scripts/bench.sh`).
//! - `lupa-bench quality`: PSNR-Y / SSIM-Y of bicubic, Lanczos3 and Lupa's models per image set
//!   under the standard protocol ([`quality`]).
//! - `lupa-bench smart`: the Smart-mode classifier's confusion table on a labelled folder, and on
//!   held-out images (`lupa-bench fetch-held-out`) not used to choose its thresholds ([`smart`]).
//! - `lupa-bench profile`: each convolution of a model timed alone against the whole upscale.
//! - `lupa-bench memory`: the memory one tile really takes per input pixel on each backend, against
//!   the registry's estimate that sizes tiles ([`memory`]).
//!
//! Where this crate sits among Lupa's: `ARCHITECTURE.md` at the repository's root.

mod memory;
mod plot;
mod profile;
mod quality;
mod report;
mod smart;
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
        /// Comma-separated model ids also run with the geometric self-ensemble (8× the cost), as
        /// "`id` + self-ensemble" rows.
        #[arg(long, value_delimiter = ',')]
        ensemble_models: Vec<String>,
        /// Centre crop of every HR image, in pixels.
        #[arg(long, default_value_t = 256)]
        crop: u32,
        /// Only the first N images (in file-name order) of each set, to bound the run time.
        #[arg(long)]
        max_images: Option<usize>,
        /// Folder with index.json and the weights.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
    /// Confusion table (markdown) of the Smart-mode classifier on a folder of labelled folders,
    /// then on each held-out folder.
    ///
    /// Sub-folder names are labels: `anime` or `illustration` is an illustration, `text_ui` or
    /// `text` text, anything else a photo (the layout of ../shared/eval).
    Smart {
        /// Folder whose sub-folders hold the images the thresholds were chosen on.
        #[arg(default_value = EVAL)]
        root: PathBuf,
        /// Folders laid out the same way with images NOT used to choose the thresholds
        /// (`lupa-bench fetch-held-out` makes one).
        #[arg(long)]
        held_out: Vec<PathBuf>,
    },
    /// Writes the held-out images for `smart --held-out` (other files of the Debian packages the
    /// evaluation set drew from, sha256-pinned) into labelled folders; downloads with apt-get.
    FetchHeldOut {
        /// Where the labelled folders go.
        #[arg(long, default_value = "target/smart-held-out")]
        out: PathBuf,
        /// Where the .deb packages are downloaded and unpacked (once).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The evaluation set's manifest: a listed file cannot be held out.
        #[arg(long, default_value = "../shared/eval/manifest.csv")]
        manifest: PathBuf,
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
    /// The memory one tile takes per input pixel on each backend, measured at two tile sides,
    /// against the registry's estimate (markdown).
    Memory {
        /// The photo the tiles are cut from (resized to each side).
        image: PathBuf,
        /// Comma-separated model ids (default: every model in the index).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Comma-separated backends: cpu, wgpu, wgpu-f16 (and the -burn ones).
        #[arg(long, value_delimiter = ',', default_value = "cpu,wgpu")]
        backends: Vec<String>,
        /// The two tile sides, in input pixels (multiples of 4 suit every model).
        #[arg(long, value_delimiter = ',', default_values_t = [96, 192])]
        sides: Vec<u32>,
        /// Folder with index.json and the weights.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
    /// One pass of `memory`, in a process of its own (printed as JSON).
    #[command(hide = true)]
    MemoryOne { image: PathBuf, model: String, backend: String, side: u32, models_dir: PathBuf },
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
        Command::Quality { sets, models, ensemble_models, crop, max_images, models_dir } => {
            quality_table(&sets, &models, &ensemble_models, crop, max_images, &models_dir)
        }
        Command::Smart { root, held_out } => smart::run(&root, &held_out),
        Command::FetchHeldOut { out, cache, manifest } => {
            let cache = cache.unwrap_or_else(|| {
                let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
                home.join(".cache/lupa-bench-held-out")
            });
            smart::fetch(&out, &cache, &manifest)
        }
        Command::Profile { image, model, size, models_dir } => {
            let device = Device::flex();
            let (loaded, weights) = load_model(&read_index(&models_dir)?, &models_dir, &model, &device)?;
            let photo = image::open(&image).with_context(|| format!("{}", image.display()))?;
            let p = profile::profile(&loaded, &weights, &photo, size, &device)?;
            println!(
                "{}: whole {:.2} s (Burn's conv {:.2} s), convolutions {:.2} s (Burn's {:.2} s)",
                p.model,
                p.whole_secs,
                p.whole_burn_secs,
                p.conv_secs(),
                p.conv_burn_secs()
            );
            for c in &p.convs {
                println!(
                    "{:?} ×{}: {:.3} s, {:.1} GMAC/s (Burn's {:.3} s, {:.1} GMAC/s)",
                    c.shape,
                    c.layers,
                    c.secs,
                    c.gmacs(p.size, c.secs),
                    c.burn_secs,
                    c.gmacs(p.size, c.burn_secs)
                );
            }
            Ok(())
        }
        Command::Memory { image, models, backends, sides, models_dir } => {
            let models = if models.is_empty() {
                read_index(&models_dir)?.models.iter().map(|m| m.id.clone()).collect()
            } else {
                models
            };
            let [a, b] = sides[..] else { anyhow::bail!("--sides takes two sides, e.g. 96,192") };
            anyhow::ensure!(a < b, "--sides: the first side must be the smaller");
            let rows = memory::measure(&image, &models, &backends, [a, b], &models_dir)?;
            print!("{}", memory::table(&rows));
            Ok(())
        }
        Command::MemoryOne { image, model, backend, side, models_dir } => {
            memory::one(&image, &model, &backend, side, &models_dir)
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

/// The device of a runner's `backend` (`cpu`, `cpu-burn`, `wgpu`, `wgpu-burn` or `wgpu-f16`), its
/// adapter's description and the precision to load models in. The `-burn` backends switch Lupa's
/// fused convolution off on this thread (Burn's own conv on the same device).
fn backend_device(backend: &str) -> Result<(Device, String, lupa_core::Precision)> {
    let mut precision = lupa_core::Precision::F32;
    let (device, adapter) = match backend {
        "cpu" => (Device::flex(), "flex".to_owned()),
        "cpu-burn" => {
            lupa_core::fused::set_enabled(false);
            (Device::flex(), "flex, Burn's conv".to_owned())
        }
        "wgpu" | "wgpu-burn" | "wgpu-f16" => {
            let (device, setup) = Device::wgpu_options().init_with_setup().context("no wgpu adapter")?;
            let info = setup.adapter.get_info();
            let adapter = format!("{} ({:?})", info.name, info.backend);
            match backend {
                // Burn's direct conv (cubek) instead of Lupa's kernel, on the same device.
                "wgpu-burn" => {
                    lupa_core::fused::set_enabled(false);
                    (device, format!("{adapter}, Burn's conv"))
                }
                "wgpu-f16" => {
                    precision = lupa_core::Precision::F16;
                    (device, format!("{adapter}, f16"))
                }
                _ => (device, adapter),
            }
        }
        other => anyhow::bail!("unknown backend {other} (cpu, cpu-burn, wgpu, wgpu-burn or wgpu-f16)"),
    };
    Ok((device, adapter, precision))
}

/// Model `id` from `models_dir` on `device` in `precision`.
pub(crate) fn load_in(
    models_dir: &Path,
    id: &str,
    device: &Device,
    precision: lupa_core::Precision,
) -> Result<SrModel> {
    let spec = read_index(models_dir)?.get(id)?.clone();
    let weights = std::fs::read(models_dir.join(&spec.weights.file))?;
    Ok(SrModel::load_with(&spec, weights, device, precision)?)
}

fn speed_one(input: &Path, warm: &Path, id: &str, backend: &str, models_dir: &Path) -> Result<()> {
    let (device, adapter, precision) = backend_device(backend)?;
    let model = load_in(models_dir, id, &device, precision)?;
    let open = |p: &Path| image::open(p).with_context(|| format!("{}", p.display()));
    let (input, warm) = (open(input)?, open(warm)?);
    // The same tiling the CLI picks: a 1 GiB activation budget, and the device's buffer limit.
    let limits =
        lupa_core::TileLimits { memory_budget: 1 << 30, max_buffer: None, max_side: 1024, engines: 1 };
    let options = UpscaleOptions {
        tile_size: lupa_core::auto_tile_size(&model.spec, limits),
        overlap: None,
        ensemble: false,
        engines: 1,
    };
    // On the CPU, tiles side by side as the CLI runs them: one per core (lupa_core::TileThreads).
    let helpers = if backend.starts_with("wgpu") {
        0
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
    };
    let adapter = if helpers > 0 { format!("{adapter}, {} tiles at once", helpers + 1) } else { adapter };
    let run = |image: &DynamicImage| -> Result<(f64, DynamicImage)> {
        let started = std::time::Instant::now();
        let out = std::thread::scope(|scope| {
            let mut threads = lupa_core::TileThreads::start(scope, vec![&model], helpers);
            let job = lupa_core::UpscaleJob::new(&model, image, options)?;
            pollster::block_on(
                job.run_shared(&mut threads, async |_: Progress| std::ops::ControlFlow::Continue(())),
            )
        })?;
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

/// Models `ids` of `index`, loaded from `models_dir` onto `device`.
pub(crate) fn load_models(
    index: &ModelIndex,
    models_dir: &Path,
    ids: &[String],
    device: &Device,
) -> Result<Vec<SrModel>> {
    ids.iter().map(|id| load_model(index, models_dir, id, device).map(|(m, _)| m)).collect()
}

fn quality_table(
    dirs: &[PathBuf],
    models: &[String],
    ensemble_models: &[String],
    crop: u32,
    max_images: Option<usize>,
    models_dir: &Path,
) -> Result<()> {
    let index = read_index(models_dir)?;
    let device = Device::flex();
    let plain = load_models(&index, models_dir, models, &device)?;
    let ensembled = load_models(&index, models_dir, ensemble_models, &device)?;
    let runs = quality::Run::all(&plain, &ensembled);
    let sets = dirs
        .iter()
        .map(|d| quality::ImageSet::from_dir(d).map(|s| s.first(max_images)))
        .collect::<Result<Vec<_>>>()?;
    let mut scales: Vec<u32> = runs.iter().map(|r| r.model.spec.scale).collect();
    scales.sort_unstable();
    scales.dedup();
    let scores = quality::run(&sets, crop, &scales, &runs, &mut |l| eprintln!("{l}"))?;
    println!(
        "| set | method | scale | PSNR-Y | SSIM-Y | images | s per image |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for s in scores {
        let secs = s.secs.map_or_else(|| "–".into(), |t| format!("{:.2}", t / s.images as f64));
        println!(
            "| {} | {} | x{} | {:.2} | {:.4} | {} | {secs} |",
            s.set, s.method, s.scale, s.psnr, s.ssim, s.images
        );
    }
    Ok(())
}

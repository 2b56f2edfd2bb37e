//! `lupa`: upscale images with real super-resolution models, on wgpu or the CPU.

mod device;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lupa_core::image::{self, DynamicImage, ImageFormat};
use lupa_core::{ModelIndex, ModelKind, ModelSpec, SrModel, TileLimits, UpscaleOptions};

use device::BackendChoice;

/// Bytes of activations a tile may use when `--tile` is left to `auto`.
const DEFAULT_TILE_BUDGET: u64 = 1 << 30;
/// Largest automatic tile side, in input pixels.
const MAX_AUTO_TILE: u32 = 512;

#[derive(Parser)]
#[command(
    name = "lupa",
    version,
    about = "Private AI image upscaling: super-resolution on your own GPU or CPU"
)]
struct Cli {
    /// Folder holding index.json and the weights [default: ./models, else the one beside the sources]
    #[arg(long, global = true, env = "LUPA_MODELS")]
    models: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upscale one or more images.
    Upscale(UpscaleArgs),
    /// List the models in the registry.
    Models,
}

#[derive(clap::Args)]
struct UpscaleArgs {
    /// Input images (PNG, JPEG, WebP, BMP).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output file (one input) or directory (several inputs). The extension picks the format.
    #[arg(short, long)]
    output: PathBuf,
    /// Model id (see `lupa models`) [default: the fidelity model for --scale]
    #[arg(long)]
    model: Option<String>,
    /// Scale factor [default: the model's own]
    #[arg(long)]
    scale: Option<u32>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Tile side in input pixels; 0 runs the whole image at once [default: sized to a 1 GiB budget]
    #[arg(long)]
    tile: Option<u32>,
    /// Context around each tile in input pixels [default: the model's]
    #[arg(long)]
    overlap: Option<u32>,
    /// Don't draw progress bars.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let models_dir = models_dir(cli.models)?;
    let index_path = models_dir.join("index.json");
    let json = std::fs::read_to_string(&index_path)
        .with_context(|| format!("cannot read the model registry {}", index_path.display()))?;
    let index = ModelIndex::from_json(&json)?;
    match cli.command {
        Command::Models => {
            list_models(&index);
            Ok(ExitCode::SUCCESS)
        }
        Command::Upscale(args) => upscale(&index, &models_dir, args),
    }
}

fn models_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let candidates = [PathBuf::from("models"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")];
    candidates
        .into_iter()
        .find(|d| d.join("index.json").is_file())
        .context("no models/index.json here or beside the sources; pass --models DIR")
}

fn list_models(index: &ModelIndex) {
    println!(
        "{:<22} {:>5}  {:<10} {:>7}  {:>8}  {:<13} description",
        "id", "scale", "kind", "params", "size", "licence"
    );
    for m in &index.models {
        let kind = match m.kind {
            ModelKind::Fidelity => "fidelity",
            ModelKind::Perceptual => "perceptual",
        };
        println!(
            "{:<22} {:>4}x  {:<10} {:>6.2}M  {:>6.1}MB  {:<13} {}",
            m.id,
            m.scale,
            kind,
            m.params as f64 / 1e6,
            m.weights.bytes as f64 / 1e6,
            m.licence.spdx,
            m.description
        );
    }
}

/// Picks the model: `--model` if given (its scale must match `--scale`), else the fidelity model
/// for `--scale` (default 4).
fn pick_model<'a>(index: &'a ModelIndex, model: Option<&str>, scale: Option<u32>) -> Result<&'a ModelSpec> {
    if let Some(id) = model {
        let spec = index.get(id)?;
        if let Some(scale) = scale {
            spec.check_scale(scale)?;
        }
        return Ok(spec);
    }
    let scale = scale.unwrap_or(4);
    index.models.iter().find(|m| m.kind == ModelKind::Fidelity && m.scale == scale).with_context(|| {
        let mut scales: Vec<u32> = index.models.iter().map(|m| m.scale).collect();
        scales.sort_unstable();
        scales.dedup();
        format!("scale {scale}x is not supported; supported scales: {scales:?}")
    })
}

fn output_format(path: &Path) -> Result<ImageFormat> {
    let format = ImageFormat::from_path(path)
        .with_context(|| format!("cannot tell the output format of {} from its extension", path.display()))?;
    match format {
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Bmp => Ok(format),
        other => bail!("writing {other:?} is not supported; use .png, .jpg, .webp or .bmp"),
    }
}

/// Where each input's result goes.
fn output_paths(inputs: &[PathBuf], output: &Path, scale: u32) -> Result<Vec<PathBuf>> {
    let to_dir = inputs.len() > 1 || output.is_dir();
    if !to_dir {
        output_format(output)?;
        return Ok(vec![output.to_path_buf()]);
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create directory {}", output.display()))?;
    Ok(inputs
        .iter()
        .map(|input| {
            let stem = input.file_stem().map_or("image".into(), |s| s.to_string_lossy());
            output.join(format!("{stem}_x{scale}.png"))
        })
        .collect())
}

fn upscale(index: &ModelIndex, models_dir: &Path, args: UpscaleArgs) -> Result<ExitCode> {
    let spec = pick_model(index, args.model.as_deref(), args.scale)?;
    let outputs = output_paths(&args.inputs, &args.output, spec.scale)?;
    for input in &args.inputs {
        if !input.is_file() {
            bail!("input {} does not exist or is not a file", input.display());
        }
    }

    let chosen = device::choose(args.backend)?;
    eprintln!("model {} ({}x), backend {}", spec.id, spec.scale, chosen.description);
    let weights_path = models_dir.join(&spec.weights.file);
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("cannot read weights {}", weights_path.display()))?;
    let model = SrModel::load(spec, weights, &chosen.device)?;

    let overlap = args.overlap.unwrap_or(spec.input.default_overlap);
    let tile_size = args.tile.unwrap_or_else(|| {
        let limits = TileLimits {
            memory_budget: DEFAULT_TILE_BUDGET,
            max_buffer: chosen.max_buffer,
            max_side: MAX_AUTO_TILE,
        };
        lupa_core::auto_tile_size(spec, limits)
    });
    let options = UpscaleOptions { tile_size, overlap: Some(overlap) };

    let mut failures = 0;
    for (input, output) in args.inputs.iter().zip(&outputs) {
        let started = std::time::Instant::now();
        match upscale_file(&model, input, output, options, args.quiet) {
            Ok((w, h)) => eprintln!(
                "{} -> {} ({w}×{h}, {:.1} s)",
                input.display(),
                output.display(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                failures += 1;
                eprintln!("error: {}: {e:#}", input.display());
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of {} files failed", args.inputs.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Decodes, upscales and encodes one file. The result is written to a temporary file beside
/// `output` and renamed into place only when complete, so a failure leaves nothing behind.
fn upscale_file(
    model: &SrModel,
    input: &Path,
    output: &Path,
    options: UpscaleOptions,
    quiet: bool,
) -> Result<(u32, u32)> {
    let format = output_format(output)?;
    let image = image::ImageReader::open(input)
        .with_context(|| format!("cannot open {}", input.display()))?
        .with_guessed_format()?
        .decode()
        .with_context(|| format!("cannot decode {} (corrupt or unsupported image)", input.display()))?;

    let plan = lupa_core::plan_for(model, image.width(), image.height(), options)?;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(plan.tiles.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tiles {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(input.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()));
    let mut progress = |p: lupa_core::Progress| {
        bar.set_position(p.tiles_done as u64);
        ControlFlow::Continue(())
    };
    let result = pollster::block_on(lupa_core::upscale_image(model, &image, options, &mut progress))?;
    bar.finish_and_clear();

    let result = fit_format(result, format);
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lupa-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    result
        .write_to(&mut std::io::BufWriter::new(tmp.as_file_mut()), format)
        .with_context(|| format!("encoding {format:?}"))?;
    tmp.persist(output).with_context(|| format!("cannot write {}", output.display()))?;
    Ok((result.width(), result.height()))
}

/// Converts to a colour type the encoder accepts (JPEG has no alpha and no 16-bit; WebP is 8-bit).
fn fit_format(image: DynamicImage, format: ImageFormat) -> DynamicImage {
    let color = image.color();
    match format {
        ImageFormat::Jpeg if color.has_alpha() || color.bytes_per_pixel() > color.channel_count() => {
            if color.channel_count() <= 2 { image.to_luma8().into() } else { image.to_rgb8().into() }
        }
        ImageFormat::WebP | ImageFormat::Bmp
            if color.bytes_per_pixel() > color.channel_count() || color.channel_count() <= 2 =>
        {
            if color.has_alpha() { image.to_rgba8().into() } else { image.to_rgb8().into() }
        }
        ImageFormat::Png if color == image::ColorType::Rgb32F || color == image::ColorType::Rgba32F => {
            if color.has_alpha() {
                image.to_rgba16().into()
            } else {
                image.to_rgb16().into()
            }
        }
        _ => image,
    }
}

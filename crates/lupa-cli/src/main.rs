//! `lupa`: upscale images with real super-resolution models, on wgpu or the CPU.
//!
//! The command is I/O around `lupa_core::Job`: flags become a `JobRequest`, files are read and
//! written here, and the core plans and runs each job. How the crates fit together:
//! `ARCHITECTURE.md` at the repository's root.

mod device;
mod upscale;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lupa_core::{ModelIndex, ModelKind, codec, recipe};

use device::{BackendChoice, PrecisionChoice};

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
    /// List the modes (the README's table is this command's `--markdown` output).
    Modes {
        /// As the Markdown table the README holds.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(clap::Args)]
struct UpscaleArgs {
    /// Input images (PNG, JPEG, WebP, BMP, GIF, TIFF): files, directories (their images) or glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// Output file (one input) or directory (several). The extension picks the format: .png, .jpg,
    /// .webp (lossless; lossy with --quality), .avif or .bmp.
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, default_value = "precision", value_parser = parse_mode, help = mode_help(false),
        long_help = mode_help(true))]
    mode: String,
    #[arg(long, help = format!("Maximum fidelity (Precision only). {}", lupa_core::job::ENSEMBLE_DESCRIPTION))]
    max_fidelity: bool,
    /// Model id (see `lupa models`); overrides the mode's choice.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, conflicts_with = "fit", help = scale_help())]
    scale: Option<u32>,
    /// Fit inside WxH (e.g. 3840x2160), keeping the aspect ratio.
    #[arg(long, value_parser = upscale::parse_size, value_name = "WxH")]
    fit: Option<(u32, u32)>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=i64::from(recipe::MAX_DENOISE)),
        help = denoise_help())]
    denoise: Option<u8>,
    /// Crop to X,Y,W,H (input pixels) before upscaling.
    #[arg(long, value_parser = upscale::parse_crop, value_name = "X,Y,W,H")]
    crop: Option<lupa_core::tiling::Rect>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100), help = format!(
        "JPEG, AVIF or lossy WebP quality, 1-100 (a .webp output with a quality is lossy) [default: {} \
         for JPEG, {} for AVIF]",
        codec::DEFAULT_JPEG_QUALITY,
        codec::DEFAULT_AVIF_QUALITY
    ))]
    quality: Option<u8>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// What the models compute in on wgpu: auto is f16 on a hardware GPU with shader-f16, else
    /// f32; f16 where the device lacks it is an error. The CPU backend always computes in f32
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
    /// Memory a job may use, in MiB: a job that needs more is refused before it starts, naming
    /// the largest scale that fits [default: 80 % of the available memory, where the system says]
    #[arg(long, value_name = "MIB")]
    max_memory: Option<u64>,
    /// Tiles run side by side on the CPU backend (one thread each, beside the convolutions' own
    /// threads); 1 runs one at a time [default: one per core, within a quarter of --max-memory]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel_tiles: Option<u32>,
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

/// `--scale`'s help, from the core's scales.
fn scale_help() -> String {
    let scales: Vec<String> = recipe::SCALES.iter().map(u32::to_string).collect();
    format!(
        "Scale factor: {} [default: {}, or the model's own with --model]",
        scales.join(", "),
        recipe::DEFAULT_SCALE
    )
}

/// `--denoise`'s help, from the core's levels.
fn denoise_help() -> String {
    let levels: Vec<String> =
        recipe::DENOISE_LABELS.iter().enumerate().map(|(i, l)| format!("{i} {}", l.to_lowercase())).collect();
    format!(
        "JPEG-artefact and noise removal: {} [default: 0; smart: 1 for JPEG illustrations]",
        levels.join(", ")
    )
}

/// The catalogue's mode ids, comma separated.
fn mode_ids() -> String {
    lupa_core::catalogue().modes.iter().map(|m| m.id).collect::<Vec<_>>().join(", ")
}

/// `--mode`'s help, from the core's catalogue: the ids, or (`long`) each with its description.
fn mode_help(long: bool) -> String {
    if !long {
        return format!("What kind of result: {} (`lupa modes` describes them)", mode_ids());
    }
    let modes = lupa_core::catalogue().modes;
    let lines: Vec<String> = modes.iter().map(|m| format!("- {}: {}", m.id, m.description)).collect();
    format!("What kind of result:\n{}", lines.join("\n"))
}

/// A `--mode` value: one of the catalogue's ids.
fn parse_mode(value: &str) -> Result<String, String> {
    if lupa_core::catalogue().modes.iter().any(|m| m.id == value) {
        Ok(value.to_owned())
    } else {
        Err(format!("unknown mode `{value}` (expected {})", mode_ids()))
    }
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
    // The modes are the core's data; everything else reads the registry.
    if let Command::Modes { markdown } = cli.command {
        list_modes(markdown);
        return Ok(ExitCode::SUCCESS);
    }
    let models_dir = models_dir(cli.models)?;
    let index_path = models_dir.join("index.json");
    let json = std::fs::read_to_string(&index_path)
        .with_context(|| format!("cannot read the model registry {}", index_path.display()))?;
    let index = ModelIndex::from_json(&json)?;
    match cli.command {
        Command::Upscale(args) => upscale::run(&index, &models_dir, args),
        Command::Models | Command::Modes { .. } => {
            list_models(&index);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_modes(markdown: bool) {
    if markdown {
        print!("{}", lupa_core::job::modes_markdown());
    } else {
        for m in lupa_core::catalogue().modes {
            println!("{:<16} {}", m.id, m.description);
        }
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

//! `lupa upscale`: the command's I/O around [`lupa_core::Job`]: expand the inputs, name the
//! outputs, load weights from the models folder, draw progress, and write each result atomically.
//! The job itself (decode, crop, Smart, recipe, passes, encode) is the core's.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lupa_core::burn::tensor::Device;
use lupa_core::codec::OutputFormat;
use lupa_core::recipe::{Mode, Target};
use lupa_core::tiling::Rect;
use lupa_core::{
    CpuFallback, Encoded, Job, JobRequest, Limits, LupaError, ModelIndex, Precision, RecipeProgress, SrModel,
    TileLimits, TileThreads,
};

use crate::UpscaleArgs;
use crate::device::{self, Chosen};

/// Bytes of activations a tile may use when `--tile` is left to `auto`.
const DEFAULT_TILE_BUDGET: u64 = 1 << 30;
/// Largest automatic tile side, in input pixels.
const MAX_AUTO_TILE: u32 = 512;
/// Extensions taken from a directory given as input.
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"];

/// Parses a crop rectangle `X,Y,W,H` (input pixels).
pub fn parse_crop(s: &str) -> Result<Rect, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{s}`: {e}"))?;
    match v[..] {
        [x, y, width, height] if width > 0 && height > 0 => Ok(Rect { x, y, width, height }),
        _ => Err(format!("`{s}`: expected X,Y,W,H with W and H above 0")),
    }
}

/// Parses `WxH`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) =
        s.split_once(['x', 'X', '×']).ok_or_else(|| format!("`{s}`: expected WxH, e.g. 1920x1080"))?;
    let parse = |p: &str| p.trim().parse::<u32>().map_err(|e| format!("`{s}`: {e}"));
    Ok((parse(w)?, parse(h)?))
}

/// Files named by the inputs: files as they are, the images directly inside directories, and the
/// matches of glob patterns (for shells that do not expand them), in order, without duplicates.
fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_file() {
            files.push(path.to_path_buf());
        } else if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && has_image_extension(p))
                .collect();
            if found.is_empty() {
                bail!("no images (.png, .jpg, .webp, .bmp, .gif, .tiff) in directory {}", path.display());
            }
            found.sort();
            files.extend(found);
        } else if input.contains(['*', '?', '[']) {
            let matches: Vec<PathBuf> = glob::glob(input)
                .with_context(|| format!("bad pattern `{input}`"))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matches.is_empty() {
                bail!("no files match `{input}`");
            }
            files.extend(matches);
        } else {
            bail!("input {input} does not exist or is not a file");
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn output_format(path: &Path, quality: Option<u8>) -> Result<OutputFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .with_context(|| format!("cannot tell the output format of {} from its extension", path.display()))?;
    Ok(OutputFormat::from_extension(ext, quality)?)
}

/// Where each input's result goes: `output` itself for one input (unless it is a directory), else
/// `output/NAME_x4.png` (or `NAME_1920x1080.png` for `--fit`, `NAME_smart.png` for Smart), and
/// `NAME_EXT_x4.png` for inputs whose names differ only in the extension, `NAME_x4_2.png` for a
/// second input of the same name from another folder.
fn output_paths(inputs: &[PathBuf], output: &Path, target: Option<Target>) -> Result<Vec<PathBuf>> {
    let to_dir = inputs.len() > 1 || output.is_dir();
    if !to_dir {
        return Ok(vec![output.to_path_buf()]);
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create directory {}", output.display()))?;
    let suffix = match target {
        Some(Target::Scale(s)) => format!("x{s}"),
        Some(Target::Fit { width, height }) => format!("{width}x{height}"),
        None => "smart".to_owned(),
    };
    let stem =
        |input: &PathBuf| input.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let mut count: HashMap<String, usize> = HashMap::new();
    for input in inputs {
        *count.entry(stem(input)).or_default() += 1;
    }
    // Inputs that share a stem (photo.png, photo.jpg) keep their extension in the name, and names
    // still taken (a/photo.png, b/photo.png) get a number, so that no result overwrites another.
    let mut taken = std::collections::HashSet::new();
    Ok(inputs
        .iter()
        .map(|input| {
            let stem = stem(input);
            let base = match input.extension() {
                Some(ext) if count[&stem] > 1 => format!("{stem}_{}_{suffix}", ext.to_string_lossy()),
                _ => format!("{stem}_{suffix}"),
            };
            let name = (1..)
                .map(|n| if n == 1 { format!("{base}.png") } else { format!("{base}_{n}.png") })
                .find(|name| taken.insert(name.clone()))
                .expect("an unused name");
            output.join(name)
        })
        .collect())
}

/// Loads models on first use.
struct Models<'a> {
    index: &'a ModelIndex,
    dir: &'a Path,
    chosen: &'a Chosen,
    loaded: HashMap<String, SrModel>,
}

impl Models<'_> {
    fn load(&mut self, id: &str) -> Result<()> {
        if !self.loaded.contains_key(id) {
            let model = self.read(id, &self.chosen.device, self.chosen.precision)?;
            self.loaded.insert(id.to_owned(), model);
        }
        Ok(())
    }

    /// Model `id` from the models folder, on `device` in `precision`. The registry's check (size, sha256, names,
    /// shapes) is `SrModel::load`'s.
    fn read(&self, id: &str, device: &Device, precision: Precision) -> Result<SrModel> {
        let spec = self.index.get(id)?;
        let path = self.dir.join(&spec.weights.file);
        let weights =
            std::fs::read(&path).with_context(|| format!("cannot read weights {}", path.display()))?;
        Ok(SrModel::load_with(spec, weights, device, precision)?)
    }
}

/// Set by Ctrl+C (SIGINT) or SIGTERM: the file being upscaled stops before its next tile and the
/// batch ends; files already written stay as they are, and nothing half-written is left.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// The exit status after an interruption (128 + SIGINT, as shells report it).
const INTERRUPTED_EXIT: u8 = 130;

/// Runs `lupa upscale`.
pub fn run(index: &ModelIndex, models_dir: &Path, args: UpscaleArgs) -> Result<ExitCode> {
    // A second Ctrl+C stops at once (the shutdown is registered first, so it sees the flag as
    // the first signal left it).
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let flag = Arc::clone(&INTERRUPTED);
        signal_hook::flag::register_conditional_shutdown(signal, i32::from(INTERRUPTED_EXIT), flag)
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&INTERRUPTED)))
            .context("cannot watch for Ctrl+C")?;
    }
    let max_memory = args.max_memory.map(|mib| mib << 20).or_else(available_memory);
    let limits = Limits {
        max_memory,
        tile_size: args.tile,
        overlap: args.overlap,
        tiles: TileLimits {
            // A quarter of the memory at most for one tile's activations.
            memory_budget: max_memory.map_or(DEFAULT_TILE_BUDGET, |m| DEFAULT_TILE_BUDGET.min(m / 4)),
            max_buffer: None,
            max_side: MAX_AUTO_TILE,
            // The helper threads share the kernels' cores: no cut for them.
            engines: 1,
        },
        ..Limits::default()
    };
    let mut request = JobRequest {
        // "smart" leaves the mode, and what else is not given, to Smart mode, per file.
        mode: if args.mode == "smart" { None } else { Some(args.mode.parse::<Mode>()?) },
        model: args.model.clone(),
        target: match (args.fit, args.scale) {
            (Some((width, height)), _) => Some(Target::Fit { width, height }),
            (None, Some(s)) => Some(Target::Scale(s)),
            (None, None) => None,
        },
        denoise: args.denoise,
        crop: args.crop,
        ensemble: args.max_fidelity,
        format: OutputFormat::Png,
        limits,
    };
    request.check(index)?;
    let inputs = expand_inputs(&args.inputs)?;
    // Known before any file is read, for the output names.
    let outputs = output_paths(&inputs, &args.output, request.size(index)?)?;
    for out in &outputs {
        output_format(out, args.quality)?;
    }

    let chosen = device::choose(args.backend, args.precision)?;
    match max_memory {
        Some(m) => eprintln!("backend {}; memory limit {} MiB", chosen.description, m >> 20),
        None => eprintln!("backend {}", chosen.description),
    }
    request.limits.tiles.max_buffer = chosen.max_buffer;
    if chosen.max_buffer.is_none() {
        request.limits.tiles_at_once = args
            .parallel_tiles
            .unwrap_or_else(|| tiles_at_once(max_memory, request.limits.tiles.memory_budget));
    }
    let mut models = Models { index, dir: models_dir, chosen: &chosen, loaded: HashMap::new() };

    let (mut failures, mut written) = (0, 0);
    for (input, output) in inputs.iter().zip(&outputs) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        let request = JobRequest { format: output_format(output, args.quality)?, ..request.clone() };
        match upscale_file(&mut models, request, args.quiet, input, output) {
            Ok(done) => {
                written += 1;
                eprintln!(
                    "{} -> {} ({}×{}, {:.1} s): {}",
                    input.display(),
                    output.display(),
                    done.width,
                    done.height,
                    started.elapsed().as_secs_f64(),
                    done.explanation
                );
            }
            Err(_) if INTERRUPTED.load(Ordering::SeqCst) => {
                eprintln!("{}: interrupted, nothing written", input.display());
            }
            Err(e) => {
                failures += 1;
                eprintln!("error: {}: {e:#}", input.display());
            }
        }
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("interrupted: {written} of {} files written", inputs.len());
        return Ok(ExitCode::from(INTERRUPTED_EXIT));
    }
    if failures > 0 {
        eprintln!("{failures} of {} files failed", inputs.len());
        return Ok(ExitCode::FAILURE);
    }
    if inputs.len() > 1 {
        eprintln!("all {} files done", inputs.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one file's job with a progress bar. The result is written to a temporary file beside
/// `output` and renamed into place only when complete, so a failure leaves nothing.
fn upscale_file(
    models: &mut Models,
    request: JobRequest,
    quiet: bool,
    input: &Path,
    output: &Path,
) -> Result<Encoded> {
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    // Tiles side by side: the job's own and one per helper thread (see `tiles_at_once`).
    let helpers = request.limits.tiles_at_once.saturating_sub(1) as usize;
    let job = Job::prepare(models.index, &bytes, request)?;
    drop(bytes);
    for id in &job.plan.models {
        models.load(id)?;
    }

    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(1000) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let name = input.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let report = async |p: RecipeProgress| {
        let tiles = format!("tile {}/{}", p.tiles.tiles_done, p.tiles.tiles_total);
        let pass = if p.passes > 1 { format!("pass {}/{}, ", p.pass + 1, p.passes) } else { String::new() };
        bar.set_message(format!("{name} ({pass}{tiles})"));
        bar.set_position((p.fraction() * 1000.0) as u64);
        if INTERRUPTED.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let models = &*models;
    let loaded: Vec<&SrModel> = job.plan.models.iter().filter_map(|id| models.loaded.get(id)).collect();
    let model = |id: &str| models.loaded.get(id);
    let done = std::thread::scope(|scope| {
        let threads = TileThreads::start(scope, loaded, helpers);
        if models.chosen.max_buffer.is_some() {
            // On wgpu, a tile the GPU gets wrong (NaN, black) is computed again on the CPU.
            let cpu = Device::flex();
            let load = |id: &str| {
                models.read(id, &cpu, Precision::F32).map_err(|e| LupaError::Backend(format!("{e:#}")))
            };
            pollster::block_on(job.run_shared(model, &mut CpuFallback::new(threads, load), report))
        } else {
            let mut threads = threads;
            pollster::block_on(job.run_shared(model, &mut threads, report))
        }
    })?;
    bar.finish_and_clear();
    write_atomically(output, &done.bytes)?;
    Ok(done)
}

/// How many tiles run at once on the CPU: one per core, as many as a quarter of `max_memory` holds
/// at `tile_budget` each (2 at most where the memory is not known), at least 1. One tile alone
/// leaves cores idle outside its convolutions (see `lupa_core::TileThreads`).
fn tiles_at_once(max_memory: Option<u64>, tile_budget: u64) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let by_memory = max_memory.map_or(2, |m| (m / 4) / tile_budget.max(1));
    cores.min(by_memory).clamp(1, 64) as u32
}

/// What a job may use by default: [`MEMORY_SHARE`] of the memory the system says is available
/// (Linux's `MemAvailable`); `None` where it does not say.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024 / 100 * MEMORY_SHARE)
}

/// Percentage of the available memory a job may use by default.
const MEMORY_SHARE: u64 = 80;

fn write_atomically(output: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lupa-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.persist(output).with_context(|| format!("cannot write {}", output.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crops_and_sizes() {
        assert_eq!(parse_crop("10, 20,30,40").unwrap(), Rect { x: 10, y: 20, width: 30, height: 40 });
        assert!(parse_crop("1,2,3").is_err());
        assert!(parse_crop("1,2,0,4").is_err());
        assert_eq!(parse_size("1920x1080").unwrap(), (1920, 1080));
        assert_eq!(parse_size("3840×2160").unwrap(), (3840, 2160));
        assert!(parse_size("1920").is_err());
    }
}

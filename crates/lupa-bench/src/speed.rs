//! The speed benchmark: time per output megapixel, achieved multiply-adds per second and peak
//! memory, for Lupa's backends and the peers, each measurement in its own process.
//!
//! Runners:
//! - Lupa native (`lupa-bench speed-one`: `flex` CPU or wgpu), peak memory = the process's VmHWM;
//! - Lupa in headless Chromium (the Trunk build's web worker, WebGPU or the wasm CPU backend) and
//!   UpscalerJS in the same Chromium (`browser/bench.mjs`), peak memory = renderer + GPU process;
//! - the ncnn runtime on the CPU (`peers/ncnn_speed.py`) on the ncnn files Lupa's weights come from,
//!   and on its Vulkan path (`--vulkan`), on the device Lupa's native wgpu runs on (lavapipe where
//!   there is no GPU): the kernel-against-kernel comparison for the GPU.
//!
//! Every measurement warms up on a 32×32 crop first (shader compilation, allocator), then times one
//! upscale of a square Lanczos3 resize of the photo. Software GPUs are slow, so a measurement whose
//! estimated time exceeds the budget is skipped and reported as such: the estimate scales the same
//! model's time at a smaller size by the pixel count, or else uses the best MAC rate seen so far on
//! that runner.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image::DynamicImage;
use image::imageops::{self, FilterType};
use serde::{Deserialize, Serialize};

/// Where and how a measurement runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Runner {
    /// `lupa-bench speed-one` with backend `cpu`, `cpu-burn`, `wgpu` or `wgpu-burn`.
    Native(String),
    /// Lupa's web worker in Chromium, backend `webgpu` or `cpu`.
    Browser(String),
    /// UpscalerJS in Chromium on a tfjs backend.
    UpscalerJs(String),
    /// PyPI `ncnn` on the CPU.
    Ncnn,
    /// PyPI `ncnn` on its Vulkan compute path (GPU 0), f32.
    NcnnVulkan,
}

impl Runner {
    pub fn label(&self) -> String {
        match self {
            Self::Native(b) => format!("Lupa native {b}"),
            Self::Browser(b) => format!("Lupa browser {b}"),
            Self::UpscalerJs(b) => format!("UpscalerJS {b}"),
            Self::Ncnn => "ncnn CPU".into(),
            Self::NcnnVulkan => "ncnn Vulkan".into(),
        }
    }
}

/// One timed upscale.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub runner: String,
    /// What the runner reports it ran on (adapter, threads, tfjs backend).
    pub adapter: String,
    pub model: String,
    pub macs_per_pixel: f64,
    pub size: u32,
    pub output: (u32, u32),
    pub secs: f64,
    pub peak_rss_mb: f64,
}

impl Measurement {
    pub fn output_mp(&self) -> f64 {
        f64::from(self.output.0) * f64::from(self.output.1) / 1e6
    }
    pub fn secs_per_mp(&self) -> f64 {
        self.secs / self.output_mp()
    }
    pub fn gmacs(&self) -> f64 {
        self.macs_per_pixel * f64::from(self.size) * f64::from(self.size) / self.secs / 1e9
    }
}

/// What became of one planned measurement.
#[derive(Debug, Clone, Serialize)]
pub enum Outcome {
    Done(Measurement),
    Skipped { runner: String, model: String, size: u32, estimate_secs: f64 },
    Failed { runner: String, model: String, size: u32, error: String },
}

/// The files and programs the runners need.
#[derive(Debug, Default, clap::Args)]
pub struct Setup {
    /// Folder with index.json and the weights.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// The Trunk build of the web app.
    #[arg(long, default_value = "dist")]
    pub dist: PathBuf,
    /// Python with tests/parity/requirements.txt installed (for ncnn).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Scratch folder for inputs and outputs.
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
    /// This program (`speed-one` runs in its own process).
    #[arg(skip)]
    pub bench_exe: PathBuf,
    /// crates/lupa-bench/browser (bench.mjs and its node_modules).
    #[arg(skip)]
    pub node_dir: PathBuf,
    /// crates/lupa-bench/peers/ncnn_speed.py
    #[arg(skip)]
    pub ncnn_script: PathBuf,
    /// A speed measurement running longer than this is stopped (3× the budget).
    #[arg(skip)]
    pub time_limit: Option<Duration>,
}

/// What every runner prints as its last line (JSON): `speed-one`, `browser/bench.mjs` and
/// `peers/ncnn_speed.py`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerReport {
    pub adapter: String,
    pub peak_rss_mb: f64,
    pub results: Vec<RunnerResult>,
    /// UpscalerJS's models: counted from their model.json by bench.mjs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs_per_pixel: Option<f64>,
}

impl RunnerReport {
    /// The first upscale of the report as a [`Measurement`] of `model` at `size` on `runner`
    /// (`macs_per_pixel` from the index, else the runner's own count).
    pub fn into_measurement(
        self,
        runner: &Runner,
        model: &str,
        macs_per_pixel: Option<f64>,
        size: u32,
    ) -> Result<Measurement> {
        let result = self.results.first().context("the runner returned no result")?;
        Ok(Measurement {
            runner: runner.label(),
            adapter: self.adapter,
            model: model.to_owned(),
            macs_per_pixel: macs_per_pixel.or(self.macs_per_pixel).unwrap_or(f64::NAN),
            size,
            output: (result.width, result.height),
            secs: result.ms / 1000.0,
            peak_rss_mb: self.peak_rss_mb,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunnerResult {
    pub ms: f64,
    pub width: u32,
    pub height: u32,
}

/// Runs `command` and parses the runner report on its last JSON line. Past `limit`, the command
/// and everything it started (its process group: Chromium too) are killed.
pub fn run_runner(mut command: Command, limit: Option<Duration>) -> Result<RunnerReport> {
    use std::os::unix::process::CommandExt;
    let program = format!("{:?}", command.get_program());
    let mut child = command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().context("no stdout")?));
    let stderr = read(Box::new(child.stderr.take().context("no stderr")?));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            // A negative pid names the process group.
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            bail!("stopped after {:.0} s (3× the budget)", started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    if !status.success() {
        // Runners print what went wrong first, then where.
        let head: Vec<&str> = err.trim().lines().take(4).collect();
        bail!("{}", head.join(" / "));
    }
    let line =
        out.lines().rev().find(|l| l.starts_with('{')).context("no JSON line in the runner's output")?;
    serde_json::from_str(line).with_context(|| format!("runner printed {line}"))
}

/// `browser/bench.mjs` with `job` (its `dist` filled in).
pub fn browser(setup: &Setup, job: &serde_json::Value, limit: Option<Duration>) -> Result<RunnerReport> {
    let mut job = job.clone();
    job["dist"] = serde_json::json!(setup.dist);
    let mut c = Command::new("node");
    c.arg(setup.node_dir.join("bench.mjs")).arg(job.to_string());
    run_runner(c, limit)
}

/// The square input of side `size` and the 32×32 warm-up image, as PNG files in `setup.work`.
pub fn inputs(setup: &Setup, photo: &DynamicImage, size: u32) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&setup.work)?;
    let input = setup.work.join(format!("input-{size}.png"));
    if !input.exists() {
        imageops::resize(&photo.to_rgb8(), size, size, FilterType::Lanczos3).save(&input)?;
    }
    let warm = setup.work.join("warm-32.png");
    if !warm.exists() {
        imageops::resize(&photo.to_rgb8(), 32, 32, FilterType::Lanczos3).save(&warm)?;
    }
    Ok((input, warm))
}

/// Runs one measurement in its own process.
pub fn measure(
    setup: &Setup,
    runner: &Runner,
    model: &str,
    macs_per_pixel: Option<f64>,
    size: u32,
    input: &Path,
    warm: &Path,
) -> Result<Measurement> {
    let report = match runner {
        Runner::Native(backend) => {
            let mut c = Command::new(&setup.bench_exe);
            c.arg("speed-one").arg(input).arg(warm).args([model, backend]).arg(&setup.models_dir);
            run_runner(c, setup.time_limit)?
        }
        Runner::Browser(backend) | Runner::UpscalerJs(backend) => browser(
            setup,
            &serde_json::json!({
                "runner": if matches!(runner, Runner::Browser(_)) { "lupa" } else { "upscalerjs" },
                "backend": backend,
                "model": model,
                "warm": warm,
                "inputs": [{ "input": input }],
            }),
            setup.time_limit,
        )?,
        Runner::Ncnn | Runner::NcnnVulkan => {
            let mut c = Command::new(&setup.python);
            c.arg(&setup.ncnn_script)
                .args(["--model", model])
                .arg("--input")
                .arg(input)
                .arg("--warm")
                .arg(warm);
            if *runner == Runner::NcnnVulkan {
                c.arg("--vulkan");
            }
            run_runner(c, setup.time_limit)?
        }
    };
    report.into_measurement(runner, model, macs_per_pixel, size)
}

/// The estimated time of `model` (with `macs_per_pixel`) at `size` on `runner`, from what ran.
pub fn estimate(
    done: &[Outcome],
    runner: &Runner,
    model: &str,
    macs_per_pixel: f64,
    size: u32,
) -> Option<f64> {
    let label = runner.label();
    let mine = || {
        done.iter().filter_map(|o| match o {
            Outcome::Done(m) if m.runner == label => Some(m),
            _ => None,
        })
    };
    let pixels = f64::from(size) * f64::from(size);
    if let Some(m) = mine().filter(|m| m.model == model && m.size < size).max_by_key(|m| m.size) {
        return Some(m.secs * pixels / (f64::from(m.size) * f64::from(m.size)));
    }
    let best_rate = mine().map(|m| m.gmacs() * 1e9).filter(|r| r.is_finite()).fold(0.0, f64::max);
    (best_rate > 0.0 && macs_per_pixel.is_finite()).then(|| macs_per_pixel * pixels / best_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(runner: &Runner, model: &str, size: u32, secs: f64, macs: f64) -> Outcome {
        Outcome::Done(Measurement {
            runner: runner.label(),
            adapter: String::new(),
            model: model.into(),
            macs_per_pixel: macs,
            size,
            output: (size * 4, size * 4),
            secs,
            peak_rss_mb: 0.0,
        })
    }

    #[test]
    fn estimates_scale_the_same_model_by_pixels_then_use_the_best_rate() {
        let cpu = Runner::Native("cpu".into());
        let gpu = Runner::Native("wgpu".into());
        // Nothing measured on a runner yet: no estimate, so the first measurement always runs.
        assert_eq!(estimate(&[], &cpu, "span-x4", 4e5, 256), None);
        let outcomes = vec![done(&cpu, "span-x4", 256, 4.0, 4e5), done(&cpu, "small", 256, 1.0, 1e5 * 2.0)];
        // Same model at a smaller size: ×16 pixels → ×16 time.
        assert_eq!(estimate(&outcomes, &cpu, "span-x4", 4e5, 1024), Some(64.0));
        // Another model: its MACs at the best rate seen on this runner (small: 13.1 GMAC/s).
        let best = 2e5 * 65536.0 / 1.0;
        let e = estimate(&outcomes, &cpu, "big", 1e6, 256).unwrap();
        assert!((e - 1e6 * 65536.0 / best).abs() < 1e-9, "{e}");
        // Other runners' times say nothing about this one.
        assert_eq!(estimate(&outcomes, &gpu, "span-x4", 4e5, 1024), None);
        // Unknown MACs (a peer's model before its first run): no estimate.
        assert_eq!(estimate(&outcomes, &cpu, "peer", f64::NAN, 256), None);
    }
}

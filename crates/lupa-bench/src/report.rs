//! `lupa-bench report`: every benchmark in one run, written to docs/BENCHMARKS.md with its plot.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use lupa_core::ModelIndex;
use lupa_core::burn::tensor::Device;

use crate::plot::{self, Point};
use crate::profile::{self, Profile};
use crate::quality::{self, ImageSet, Score};
use crate::speed::{self, Measurement, Outcome, Runner, Setup};

/// What to run: `lupa-bench report`'s arguments.
#[derive(clap::Args)]
pub struct Config {
    /// Image sets (folders of HR images) for the quality table.
    #[arg(long, value_delimiter = ',', default_values = [
        "../shared/eval/skimage_photo", "../shared/eval/photo_misc", "../shared/eval/skimage_texture",
        "../shared/eval/anime", "../shared/eval/text_ui"])]
    pub sets: Vec<PathBuf>,
    /// The sets (folder names) that make up "the photo set" of the targets and the plot.
    #[arg(long, value_delimiter = ',', default_value = "skimage_photo,photo_misc")]
    pub photo_sets: Vec<String>,
    /// Centre crop of every HR image, in pixels (bounds the run time).
    #[arg(long, default_value_t = 256)]
    pub crop: u32,
    /// Models for the quality table (default: every model in the index).
    #[arg(long, value_delimiter = ',')]
    pub quality_models: Vec<String>,
    /// Models also run with the geometric self-ensemble in the quality table (8× the cost), as
    /// "`id` + self-ensemble" rows.
    #[arg(long, value_delimiter = ',', default_value = "span-x4")]
    pub ensemble_models: Vec<String>,
    /// The photo the speed runs upscale (resized to each size).
    #[arg(long, default_value = "../shared/eval/skimage_photo/astronaut.png")]
    pub speed_image: PathBuf,
    /// Models for the speed table.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "span-x2,span-x4,realesr-general-x4v3,realesr-animevideov3,realesrgan-x4plus,realcugan-se-x2-no-denoise,realcugan-se-x3-no-denoise,realcugan-se-x4-no-denoise"
    )]
    pub speed_models: Vec<String>,
    /// Square input sides for the speed table.
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    pub sizes: Vec<u32>,
    /// Lupa's backends: native-cpu, native-cpu-burn (the CPU backend with Lupa's fused convolution
    /// switched off), native-wgpu, native-wgpu-burn (wgpu with Burn's direct conv instead of Lupa's
    /// kernel), browser-webgpu, browser-webgpu-burn (the same with Burn's conv), browser-cpu (one
    /// engine), browser-cpu-pool (the CPU worker pool, one engine per core). With native-wgpu,
    /// ncnn's Vulkan path runs too.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "native-cpu,native-cpu-burn,native-wgpu,native-wgpu-burn,browser-webgpu,browser-webgpu-burn,browser-cpu,browser-cpu-pool"
    )]
    pub backends: Vec<String>,
    /// UpscalerJS models (x4).
    #[arg(long, value_delimiter = ',', default_value = "esrgan-slim,esrgan-medium,esrgan-thick")]
    pub upscaler_models: Vec<String>,
    /// tfjs backends to try for UpscalerJS; the fastest that works runs the rest.
    #[arg(long, value_delimiter = ',', default_value = "webgl,webgpu,wasm,cpu")]
    pub upscaler_backends: Vec<String>,
    /// Skip a speed measurement estimated to take longer than this, in seconds.
    #[arg(long = "budget", default_value_t = 240.0)]
    pub budget_secs: f64,
    /// Models to profile per convolution (SPAN or SRVGGNetCompact).
    #[arg(long, value_delimiter = ',', default_value = "span-x4,realesr-general-x4v3")]
    pub profile_models: Vec<String>,
    /// The report.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub out: PathBuf,
    /// The plot (SVG).
    #[arg(long, default_value = "docs/benchmarks.svg")]
    pub plot: PathBuf,
    /// Exit with an error (after writing the report) if any measurement failed.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub setup: Setup,
    /// How the report says it was made (`LUPA_BENCH_COMMAND`, else the command line).
    #[arg(skip)]
    pub command_line: String,
}

/// The tfjs backends tried for UpscalerJS, and the one chosen.
struct Survey {
    rows: Vec<SurveyRow>,
    chosen: Option<String>,
}

struct SurveyRow {
    backend: String,
    result: Result<(Measurement, f64), String>,
}

fn log(line: &str) {
    eprintln!("[lupa-bench] {line}");
}

pub fn run(config: &Config) -> Result<()> {
    let setup = &config.setup;
    std::fs::create_dir_all(&setup.work)?;
    let index = crate::read_index(&setup.models_dir)?;
    let macs = |id: &str| index.get(id).map(|s| s.macs_per_pixel as f64).ok();
    let photo =
        image::open(&config.speed_image).with_context(|| format!("{}", config.speed_image.display()))?;

    // 1. UpscalerJS: which tfjs backend works here, and which is fastest (slim, 64×64).
    let survey = survey(config, &photo)?;
    let upscaler_backend = survey.chosen.clone();

    // 2. Speed.
    let mut runners = lupa_runners(config)?;
    // ncnn on the CPU, and on Vulkan where Lupa's native wgpu runs: the same device.
    let on_wgpu = runners.contains(&Runner::Native("wgpu".into()));
    runners.push(Runner::Ncnn);
    if on_wgpu {
        runners.push(Runner::NcnnVulkan);
    }
    // Cheapest per output pixel first (SPAN x4 before SPAN x2), so the slow software GPUs spend
    // their budget on the models that compare with the peers' 4x ones.
    let per_output_pixel =
        |id: &str| index.get(id).map_or(0.0, |s| s.macs_per_pixel as f64 / f64::from(s.scale * s.scale));
    let mut speed_models = config.speed_models.clone();
    speed_models.sort_by(|a, b| per_output_pixel(a).total_cmp(&per_output_pixel(b)));
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut plan: Vec<(Runner, String, Option<f64>)> = Vec::new();
    for runner in &runners {
        plan.extend(speed_models.iter().map(|m| (runner.clone(), m.clone(), macs(m))));
    }
    if let Some(backend) = &upscaler_backend {
        let runner = Runner::UpscalerJs(backend.clone());
        plan.extend(config.upscaler_models.iter().map(|m| (runner.clone(), m.clone(), None)));
    }
    for (runner, model, model_macs) in &plan {
        for &size in &config.sizes {
            let (input, warm) = speed::inputs(setup, &photo, size)?;
            // UpscalerJS's MAC counts come back with its first measurement.
            let model_macs = model_macs.or_else(|| {
                outcomes.iter().find_map(|o| match o {
                    Outcome::Done(m) if &m.model == model => Some(m.macs_per_pixel),
                    _ => None,
                })
            });
            let estimate = speed::estimate(&outcomes, runner, model, model_macs.unwrap_or(f64::NAN), size);
            if let Some(estimate_secs) = estimate.filter(|&e| e > config.budget_secs) {
                log(&format!(
                    "speed: {} {model} {size}²: skipped, estimated {estimate_secs:.0} s",
                    runner.label()
                ));
                outcomes.push(Outcome::Skipped {
                    runner: runner.label(),
                    model: model.clone(),
                    size,
                    estimate_secs,
                });
                continue;
            }
            log(&format!("speed: {} {model} {size}²", runner.label()));
            outcomes.push(match speed::measure(setup, runner, model, model_macs, size, &input, &warm) {
                Ok(m) => {
                    log(&format!("  {:.2} s, {:.2} s/MP, {:.1} GMAC/s", m.secs, m.secs_per_mp(), m.gmacs()));
                    Outcome::Done(m)
                }
                Err(e) => {
                    log(&format!("  failed: {e:#}"));
                    Outcome::Failed {
                        runner: runner.label(),
                        model: model.clone(),
                        size,
                        error: format!("{e:#}"),
                    }
                }
            });
        }
    }

    // 3. Quality: bicubic, Lanczos3 and Lupa's models in this process (flex); UpscalerJS in Chromium.
    let sets = config.sets.iter().map(|d| ImageSet::from_dir(d)).collect::<Result<Vec<_>>>()?;
    let device = Device::flex();
    let models = crate::load_models(&index, &setup.models_dir, &config.quality_models, &device)?;
    let ensembled = crate::load_models(&index, &setup.models_dir, &config.ensemble_models, &device)?;
    let runs = quality::Run::all(&models, &ensembled);
    let scales: Vec<u32> =
        models.iter().map(|m| m.spec.scale).chain([2, 3, 4]).collect::<BTreeSet<_>>().into_iter().collect();
    let mut scores = quality::run(&sets, config.crop, &scales, &runs, &mut |l| log(l))?;
    if let Some(backend) = &upscaler_backend {
        scores.extend(upscaler_quality(config, &sets, backend)?);
    }

    // 4. Profile.
    let mut profiles = Vec::new();
    for id in &config.profile_models {
        let (model, weights) = crate::load_model(&index, &setup.models_dir, id, &device)?;
        let size = *config.sizes.first().context("no sizes")?;
        log(&format!("profile: {id} {size}²"));
        profiles.push(profile::profile(&model, &weights, &photo, size, &device)?);
    }

    // The raw results too, for anything the tables leave out.
    let raw = serde_json::json!({ "speed": outcomes, "quality": scores, "profiles": profiles });
    std::fs::write(setup.work.join("results.json"), serde_json::to_string_pretty(&raw)?)?;
    let text = markdown(config, &index, &survey, &outcomes, &scores, &profiles)?;
    if let Some(dir) = config.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&config.out, text)?;
    draw(config, &outcomes, &scores)?;
    log(&format!("wrote {} and {}", config.out.display(), config.plot.display()));
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed { runner, model, size, error } => {
                Some(format!("{runner} {model} {size}²: {error}"))
            }
            _ => None,
        })
        .chain(survey.chosen.is_none().then(|| "no UpscalerJS backend works".to_owned()))
        .collect();
    if config.strict && !failed.is_empty() {
        anyhow::bail!("{} failed:\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}

/// Lupa's runners named by `--backends` (`native-cpu`, `native-cpu-burn`, `native-wgpu`,
/// `native-wgpu-burn`, `browser-webgpu`, `browser-webgpu-burn`, `browser-cpu`, `browser-cpu-pool`).
fn lupa_runners(config: &Config) -> Result<Vec<Runner>> {
    config
        .backends
        .iter()
        .map(|b| match b.split_once('-') {
            Some(("native", be)) => Ok(Runner::Native(be.into())),
            Some(("browser", be)) => Ok(Runner::Browser(be.into())),
            _ => anyhow::bail!(
                "unknown backend {b} (native-cpu, native-cpu-burn, native-wgpu, native-wgpu-burn, \
                 browser-webgpu, browser-webgpu-burn, browser-cpu, browser-cpu-pool)"
            ),
        })
        .collect()
}

/// Each tfjs backend on esrgan-slim at 64×64; a backend "works" when its output is within 40 dB
/// PSNR of tfjs's reference CPU backend. The fastest one that works is chosen.
fn survey(config: &Config, photo: &image::DynamicImage) -> Result<Survey> {
    let setup = &config.setup;
    let (input, warm) = speed::inputs(setup, photo, 64)?;
    let model = "esrgan-slim";
    let mut outputs = Vec::new();
    let mut rows = Vec::new();
    for backend in &config.upscaler_backends {
        log(&format!("survey: UpscalerJS {backend}"));
        let output = setup.work.join(format!("survey-{backend}.png"));
        let job = serde_json::json!({
            "runner": "upscalerjs", "backend": backend, "model": model, "warm": warm,
            "inputs": [{ "input": input, "output": output }],
        });
        let runner = Runner::UpscalerJs(backend.clone());
        let result =
            speed::browser(setup, &job, None).and_then(|r| r.into_measurement(&runner, model, None, 64));
        outputs.push((backend.clone(), image::open(&output).ok().map(|i| i.to_rgb8())));
        rows.push(SurveyRow {
            backend: backend.clone(),
            result: result.map(|m| (m, f64::NAN)).map_err(|e| format!("{e:#}")),
        });
    }
    let reference = outputs.iter().find(|(b, _)| b == "cpu").and_then(|(_, o)| o.clone());
    for (row, (_, out)) in rows.iter_mut().zip(&outputs) {
        if let (Ok((_, psnr)), Some(out), Some(reference)) = (&mut row.result, out, &reference) {
            *psnr = psnr_rgb(reference, out);
        }
    }
    let works = |psnr: f64| reference.is_none() || psnr >= 40.0;
    let chosen = rows
        .iter()
        .filter_map(|r| {
            r.result.as_ref().ok().filter(|(_, p)| works(*p)).map(|(m, _)| (r.backend.clone(), m.secs))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(b, _)| b);
    Ok(Survey { rows, chosen })
}

/// UpscalerJS's models at 4x on every set's LR images, on `backend`, scored like Lupa's.
fn upscaler_quality(config: &Config, sets: &[ImageSet], backend: &str) -> Result<Vec<Score>> {
    let setup = &config.setup;
    let dir = setup.work.join("upscalerjs-quality");
    let lr = quality::write_lr(sets, config.crop, 4, &dir.join("lr"))?;
    let (_, warm) = speed::inputs(setup, &image::open(&lr[0].2)?, 32)?;
    let mut scores = Vec::new();
    for model in &config.upscaler_models {
        log(&format!("quality: UpscalerJS {model} on {backend}, {} images", lr.len()));
        let out_dir = dir.join(model);
        std::fs::create_dir_all(&out_dir)?;
        let inputs: Vec<serde_json::Value> = lr
            .iter()
            .map(
                |(_, _, p)| serde_json::json!({ "input": p, "output": out_dir.join(p.file_name().unwrap()) }),
            )
            .collect();
        let job = serde_json::json!({ "runner": "upscalerjs", "backend": backend, "model": model, "warm": warm, "inputs": inputs });
        speed::browser(setup, &job, None)?;
        let outputs = lr
            .iter()
            .map(|(set, hr, p)| {
                Ok((set.clone(), hr.clone(), image::open(out_dir.join(p.file_name().unwrap()))?.to_rgb8()))
            })
            .collect::<Result<Vec<_>>>()?;
        scores.extend(quality::score_outputs(&format!("UpscalerJS {model}"), 4, &outputs)?);
    }
    Ok(scores)
}

fn done(outcomes: &[Outcome]) -> impl Iterator<Item = &Measurement> {
    outcomes.iter().filter_map(|o| match o {
        Outcome::Done(m) => Some(m),
        _ => None,
    })
}

fn find<'a>(outcomes: &'a [Outcome], runner: &str, model: &str, size: u32) -> Option<&'a Measurement> {
    done(outcomes).find(|m| m.runner == runner && m.model == model && m.size == size)
}

/// Mean PSNR/SSIM of `method` at `scale` over the sets named in `names`, weighted by image count.
fn pooled(scores: &[Score], method: &str, scale: u32, names: &[String]) -> Option<(f64, f64)> {
    let rows: Vec<&Score> =
        scores.iter().filter(|s| s.method == method && s.scale == scale && names.contains(&s.set)).collect();
    let n: usize = rows.iter().map(|s| s.images).sum();
    (n > 0).then(|| {
        let w = |f: fn(&Score) -> f64| rows.iter().map(|s| f(s) * s.images as f64).sum::<f64>() / n as f64;
        (w(|s| s.psnr), w(|s| s.ssim))
    })
}

/// cores × 2 FMA units × SIMD lanes (16 with AVX-512, 8 with AVX2) × the nominal clock: an upper
/// bound on multiply-adds per second, to compare each CPU runner's achieved GMAC/s with.
fn cpu_peak() -> String {
    let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else { return "unknown".into() };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let (lanes, isa) = if has("avx512f") {
        (16.0, "AVX-512")
    } else if has("avx2") {
        (8.0, "AVX2")
    } else {
        (4.0, "SSE")
    };
    let ghz = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.rsplit('@').next())
        .and_then(|f| f.trim().strip_suffix("GHz"))
        .and_then(|f| f.parse::<f64>().ok());
    match ghz {
        Some(ghz) => format!(
            "{:.0} GMAC/s = {cores} cores × 2 FMA × {lanes} lanes ({isa}) × {ghz} GHz (one thread: {:.0})",
            cores * 2.0 * lanes * ghz,
            2.0 * lanes * ghz
        ),
        None => "unknown (no clock in the CPU name)".into(),
    }
}

fn machine() -> String {
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    };
    [
        ("CPU", sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")),
        ("cores", sh("nproc")),
        ("memory", sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")),
        ("OS", sh(". /etc/os-release && echo $PRETTY_NAME")),
        ("CPU f32 peak (estimated)", cpu_peak()),
        ("GPU", sh("ls /dev/dri 2>/dev/null | grep -q render && echo present || echo none")),
        ("Vulkan", sh("dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers 2>/dev/null")),
        ("Chromium", sh("${LUPA_CHROMIUM:-/usr/bin/chromium} --version")),
        ("Node", sh("node --version")),
        ("Rust", sh("rustc --version")),
    ]
    .iter()
    .map(|(k, v)| format!("| {k} | {v} |\n"))
    .collect()
}

fn markdown(
    config: &Config,
    index: &ModelIndex,
    survey: &Survey,
    outcomes: &[Outcome],
    scores: &[Score],
    profiles: &[Profile],
) -> Result<String> {
    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "# Benchmarks\n")?;
    writeln!(
        w,
        "Generated by `{}` (`crates/lupa-bench`); do not edit by hand. Every number below comes from that one run.\n",
        config.command_line
    )?;
    writeln!(w, "## Machine\n\n| | |\n|---|---|")?;
    write!(w, "{}", machine())?;
    let adapters: BTreeSet<String> = done(outcomes).map(|m| format!("{}: {}", m.runner, m.adapter)).collect();
    writeln!(w, "\nWhat each runner reported running on:\n")?;
    for a in &adapters {
        writeln!(w, "- {a}")?;
    }

    // Targets first: they are what the numbers are for.
    writeln!(w, "\n## Targets\n")?;
    targets(w, config, index, survey, outcomes, scores)?;

    writeln!(w, "\n## Quality\n")?;
    writeln!(
        w,
        "PSNR-Y (dB) / SSIM-Y, standard protocol: each image centre-cropped to at most {c}×{c}, then to a \
         multiple of the scale; LR = antialiased bicubic downscale rounded to 8 bits; outputs rounded to 8 bits; \
         BT.601 Y; `scale` pixels shaved; SSIM as Wang et al. 2004 (11×11 Gaussian, σ 1.5). Image sets: {}.\n",
        sets_text(config),
        c = config.crop
    )?;
    let set_names: Vec<String> = {
        let mut seen = Vec::new();
        for s in scores {
            if !seen.contains(&s.set) {
                seen.push(s.set.clone());
            }
        }
        seen
    };
    writeln!(w, "| method | scale | MACs per input pixel | {} |", set_names.join(" | "))?;
    writeln!(w, "|---|---:|---:|{}", "---:|".repeat(set_names.len()))?;
    let mut methods: Vec<(u32, String)> = Vec::new();
    for s in scores {
        if !methods.contains(&(s.scale, s.method.clone())) {
            methods.push((s.scale, s.method.clone()));
        }
    }
    methods.sort_by_key(|(scale, _)| *scale);
    for (scale, method) in &methods {
        // The self-ensemble runs its model 8 times.
        let (id, runs) =
            method.strip_suffix(quality::ENSEMBLE_SUFFIX).map_or((method.as_str(), 1.0), |id| (id, 8.0));
        let macs = index
            .get(id)
            .map(|s| format!("{:.2} M", runs * s.macs_per_pixel as f64 / 1e6))
            .ok()
            .or_else(|| {
                let id = method.strip_prefix("UpscalerJS ")?;
                done(outcomes).find(|m| m.model == id).map(|m| format!("{:.2} M", m.macs_per_pixel / 1e6))
            })
            .unwrap_or_else(|| "–".into());
        let cells: Vec<String> = set_names
            .iter()
            .map(|set| {
                scores
                    .iter()
                    .find(|s| &s.set == set && &s.method == method && s.scale == *scale)
                    .map_or_else(|| "–".into(), |s| format!("{:.2} / {:.4}", s.psnr, s.ssim))
            })
            .collect();
        writeln!(w, "| {method} | x{scale} | {macs} | {} |", cells.join(" | "))?;
    }
    let counts: Vec<String> = set_names
        .iter()
        .map(|set| format!("{set} {}", scores.iter().find(|s| &s.set == set).map_or(0, |s| s.images)))
        .collect();
    writeln!(
        w,
        "\nImages per set: {}. GAN models (realesr-general-x4v3, realesrgan-x4plus, realesr-animevideov3) add texture by design and score below the fidelity models here; judge them by eye. The Real-CUGAN denoise variants expect noisy/JPEG input, not this clean bicubic LR. \
         \"+ self-ensemble\" rows: the same model averaged over the 8 flips and rotations of the input \
         (`UpscaleOptions::ensemble`), 8× its MACs.",
        counts.join(", ")
    )?;

    writeln!(w, "\n## Speed\n")?;
    writeln!(
        w,
        "One upscale of a square Lanczos3 resize of `{}` after a 32×32 warm-up, each measurement in its own \
         process (browser runs: a fresh headless Chromium each). Achieved GMAC/s = MACs per input pixel × input \
         pixels ÷ time. Peak memory: the process's peak RSS (VmHWM); in Chromium, the renderer plus the GPU \
         process. Lupa's browser time is the web worker's `run` (decode, tiles, PNG encode); UpscalerJS's is \
         `upscale` until its output tensor is read (whole images up to 256², UpscalerJS's 256-px patches with 16 px padding above: whole 1024² images overflow tfjs's wasm heap). Measurements estimated to take over {:.0} s are skipped, and one still running after three times that is stopped.\n",
        config.speed_image.display(),
        config.budget_secs
    )?;
    writeln!(
        w,
        "| model | runner | input | output | time | s per output MP | achieved GMAC/s | peak memory |"
    )?;
    writeln!(w, "|---|---|---|---|---:|---:|---:|---:|")?;
    for o in outcomes {
        match o {
            Outcome::Done(m) => writeln!(
                w,
                "| {} | {} | {}² | {}×{} | {:.2} s | {:.2} | {:.1} | {:.0} MB |",
                m.model,
                m.runner,
                m.size,
                m.output.0,
                m.output.1,
                m.secs,
                m.secs_per_mp(),
                m.gmacs(),
                m.peak_rss_mb
            )?,
            Outcome::Skipped { runner, model, size, estimate_secs } => writeln!(
                w,
                "| {model} | {runner} | {size}² | not run: estimated {estimate_secs:.0} s | | | | |"
            )?,
            Outcome::Failed { runner, model, size, error } => writeln!(
                w,
                "| {model} | {runner} | {size}² | failed: {} | | | | |",
                error.replace('|', "\\|")
            )?,
        }
    }

    writeln!(w, "\n### UpscalerJS: which tfjs backend\n")?;
    writeln!(
        w,
        "esrgan-slim on a 64×64 input on every tfjs backend in this Chromium; a backend works when its output is \
         within 40 dB PSNR (RGB) of tfjs's reference `cpu` backend. The fastest that works runs the rest: **{}**.\n",
        survey.chosen.as_deref().unwrap_or("none")
    )?;
    writeln!(w, "| tfjs backend | time (64² → 256²) | PSNR vs tfjs cpu | peak memory |")?;
    writeln!(w, "|---|---:|---:|---:|")?;
    for row in &survey.rows {
        match &row.result {
            Ok((m, psnr)) => {
                writeln!(w, "| {} | {:.2} s | {:.1} dB | {:.0} MB |", m.adapter, m.secs, psnr, m.peak_rss_mb)?
            }
            Err(e) => writeln!(w, "| {} | failed: {} | | |", row.backend, e.replace('|', "\\|"))?,
        }
    }

    writeln!(w, "\n### Ratios\n")?;
    ratios(w, config, outcomes)?;

    writeln!(w, "\n## Where Lupa's CPU time goes\n")?;
    for p in profiles {
        let conv = p.conv_secs();
        writeln!(
            w,
            "**{}**, {}² on `flex` (whole upscale, best of 2: {:.2} s with Lupa's fused convolution, {:.2} s \
             with Burn's conv): Lupa's convolutions alone {:.2} s ({:.0} %), everything else {:.2} s.\n",
            p.model,
            p.size,
            p.whole_secs,
            p.whole_burn_secs,
            conv,
            100.0 * conv / p.whole_secs,
            (p.whole_secs - conv).max(0.0),
        )?;
        writeln!(w, "| conv `[out, in, kh, kw]` | layers | Lupa | GMAC/s | Burn | GMAC/s |")?;
        writeln!(w, "|---|---:|---:|---:|---:|---:|")?;
        for c in &p.convs {
            writeln!(
                w,
                "| {:?} | {} | {:.3} s | {:.1} | {:.3} s | {:.1} |",
                c.shape,
                c.layers,
                c.secs,
                c.gmacs(p.size, c.secs),
                c.burn_secs,
                c.gmacs(p.size, c.burn_secs)
            )?;
        }
        writeln!(w)?;
    }
    writeln!(w, "{}", PROFILE_TEXT)?;

    // The plot is linked where it lies beside (or below) the report; one written elsewhere (e.g.
    // under target/) is named, not linked.
    let folder = config.out.parent().unwrap_or(std::path::Path::new(""));
    match config.plot.strip_prefix(folder) {
        Ok(plot) => {
            writeln!(w, "\n## Plot\n\n![PSNR-Y against time per output megapixel]({})\n", plot.display())?
        }
        Err(_) => writeln!(
            w,
            "\n## Plot\n\nWritten to `{}`, outside this report's folder.\n",
            config.plot.display()
        )?,
    }
    writeln!(
        w,
        "x4 models on the photo sets ({}): PSNR-Y against seconds per output megapixel at the first size \
         ({}²). Blue: Lupa (native CPU; browser CPU). Red: UpscalerJS on its chosen backend, and ncnn \
         running Lupa's models' original files (same quality as Lupa: the weights are the same). Lines: \
         bicubic and Lanczos3.",
        config.photo_sets.join(", "),
        config.sizes.first().copied().unwrap_or(0)
    )?;
    Ok(md)
}

const PROFILE_TEXT: &str = "How the two columns compute. Lupa: its fused convolution \
(`lupa_core::fused`, kernels in `crates/lupa-kernels`) keeps activations NHWC between layers, runs \
stride-1 3×3 layers with at least 16 input channels as Winograd F(4×4, 3×3) (36 multiplies per 4×4 output \
tile and channel pair instead of 144, so the GMAC/s here, direct MACs ÷ time, can exceed the CPU's \
peak, as ncnn's do) and the others (first layers, 1×1, stride 2) with a register-blocked direct \
kernel; bias, activation and SPAN's attention are applied in the kernels' epilogue; AVX2+FMA through \
`pulp`, rows or tile rows over rayon's threads. Burn: `flex`'s own conv (NCHW→NHWC per layer, a tiled \
im2col and a `gemm` call, bias and activation as separate passes). Transposed \
convolutions (Real-CUGAN's) run as one stride-1 convolution to every output phase and a scatter. \
What is still Burn's on the CPU: the element-wise work between convolutions (skip adds, SE gates, \
SPAN's concatenation and the pixel shuffle, run by Burn in NHWC order; reflect padding, the RGB \
mean, tile assembly). Weights are packed once per layer and kept (`fused/packed.rs`, up to 32 MiB).";

fn sets_text(config: &Config) -> String {
    config.sets.iter().map(|s| format!("`{}`", s.display())).collect::<Vec<_>>().join(", ")
}

fn targets(
    w: &mut String,
    config: &Config,
    index: &ModelIndex,
    survey: &Survey,
    outcomes: &[Outcome],
    scores: &[Score],
) -> Result<()> {
    // 1. Precision x4 against every UpscalerJS model on the photo sets.
    let precision = index.get("span-x4").ok().and_then(|_| pooled(scores, "span-x4", 4, &config.photo_sets));
    writeln!(
        w,
        "**Precision x4 (span-x4) beats every UpscalerJS model by ≥ 1.5 dB PSNR-Y on the photo sets ({}).**\n",
        config.photo_sets.join(", ")
    )?;
    match precision {
        Some((p, s)) => {
            writeln!(w, "| method | PSNR-Y / SSIM-Y | span-x4 ahead by | ≥ 1.5 dB |\n|---|---:|---:|---|")?;
            writeln!(w, "| span-x4 | {p:.2} / {s:.4} | | |")?;
            for model in &config.upscaler_models {
                if let Some((q, qs)) = pooled(scores, &format!("UpscalerJS {model}"), 4, &config.photo_sets) {
                    let d = p - q;
                    writeln!(
                        w,
                        "| UpscalerJS {model} | {q:.2} / {qs:.4} | {d:+.2} dB | {} |",
                        if d >= 1.5 { "met" } else { "**not met**" }
                    )?;
                }
            }
        }
        None => writeln!(w, "Not measured (span-x4 not in the quality run).")?,
    }

    // 2. Lupa on WebGPU against UpscalerJS's fastest backend, per output MP, at ≥ MACs per pixel.
    writeln!(
        w,
        "\n**In the same browser, Lupa on WebGPU is faster per output megapixel than UpscalerJS on its fastest \
         backend ({}), for a model with at least as many MACs per pixel.** Lupa's fastest model on WebGPU with at \
         least the UpscalerJS model's MACs, same input size:\n",
        survey.chosen.as_deref().unwrap_or("none")
    )?;
    writeln!(
        w,
        "| UpscalerJS model (MACs/px) | input | UpscalerJS s/MP | Lupa WebGPU model (MACs/px) | Lupa s/MP | Lupa ÷ UpscalerJS | target |"
    )?;
    writeln!(w, "|---|---|---:|---|---:|---:|---|")?;
    let webgpu = Runner::Browser("webgpu".into()).label();
    for u in done(outcomes).filter(|m| m.runner.starts_with("UpscalerJS")) {
        let lupa = done(outcomes)
            .filter(|m| m.runner == webgpu && m.size == u.size && m.macs_per_pixel >= u.macs_per_pixel)
            .min_by(|a, b| a.secs_per_mp().total_cmp(&b.secs_per_mp()));
        match lupa {
            Some(l) => {
                let r = l.secs_per_mp() / u.secs_per_mp();
                writeln!(
                    w,
                    "| {} ({:.2} M) | {}² | {:.2} | {} ({:.2} M) | {:.2} | {r:.2}× | {} |",
                    u.model,
                    u.macs_per_pixel / 1e6,
                    u.size,
                    u.secs_per_mp(),
                    l.model,
                    l.macs_per_pixel / 1e6,
                    l.secs_per_mp(),
                    if r < 1.0 { "met" } else { "**not met**" }
                )?;
            }
            None => writeln!(
                w,
                "| {} ({:.2} M) | {}² | {:.2} | no Lupa WebGPU run at this size | | | |",
                u.model,
                u.macs_per_pixel / 1e6,
                u.size,
                u.secs_per_mp()
            )?,
        }
    }

    // 3. Native CPU within 1.5× of ncnn.
    writeln!(w, "\n**Lupa's native CPU backend within 1.5× of ncnn's CPU time for the same model.**\n")?;
    writeln!(
        w,
        "| model | input | Lupa native cpu | ncnn CPU | Lupa ÷ ncnn | target |\n|---|---|---:|---:|---:|---|"
    )?;
    let cpu = Runner::Native("cpu".into()).label();
    for n in done(outcomes).filter(|m| m.runner == Runner::Ncnn.label()) {
        if let Some(l) = find(outcomes, &cpu, &n.model, n.size) {
            let r = l.secs / n.secs;
            writeln!(
                w,
                "| {} | {}² | {:.2} s | {:.2} s | {r:.1}× | {} |",
                n.model,
                n.size,
                l.secs,
                n.secs,
                if r <= 1.5 { "met" } else { "**not met**: see where the time goes" }
            )?;
        }
    }

    // 4. Lupa's fused convolution against Burn's, same backend, same run.
    let burn = Runner::Native("cpu-burn".into()).label();
    if done(outcomes).any(|m| m.runner == burn) {
        writeln!(
            w,
            "\n**Lupa's fused convolution against Burn's conv on the same CPU backend (`flex`).**\n"
        )?;
        writeln!(
            w,
            "| model | input | Burn's conv | Lupa's fused conv | speed-up | Lupa GMAC/s |\n|---|---|---:|---:|---:|---:|"
        )?;
        for b in done(outcomes).filter(|m| m.runner == burn) {
            if let Some(l) = find(outcomes, &cpu, &b.model, b.size) {
                writeln!(
                    w,
                    "| {} | {}² | {:.2} s | {:.2} s | {:.1}× | {:.1} |",
                    b.model,
                    b.size,
                    b.secs,
                    l.secs,
                    b.secs / l.secs,
                    l.gmacs()
                )?;
            }
        }
    }

    // 5. Lupa on wgpu against ncnn's Vulkan path, same device, same run.
    let wgpu = Runner::Native("wgpu".into()).label();
    let vulkan = Runner::NcnnVulkan.label();
    if done(outcomes).any(|m| m.runner == vulkan) {
        writeln!(
            w,
            "\n**Lupa's native wgpu within 1.5× of ncnn's Vulkan path on the same device** (the GPU kernels \
             against each other; on a software GPU a ratio, not a GPU speed).\n"
        )?;
        writeln!(
            w,
            "| model | input | Lupa native wgpu | ncnn Vulkan | Lupa ÷ ncnn | target |\n|---|---|---:|---:|---:|---|"
        )?;
        for n in done(outcomes).filter(|m| m.runner == vulkan) {
            if let Some(l) = find(outcomes, &wgpu, &n.model, n.size) {
                let r = l.secs / n.secs;
                writeln!(
                    w,
                    "| {} | {}² | {:.2} s | {:.2} s | {r:.2}× | {} |",
                    n.model,
                    n.size,
                    l.secs,
                    n.secs,
                    if r <= 1.5 { "met" } else { "**not met**" }
                )?;
            }
        }
    }

    // 6. Lupa's GPU kernel against Burn's direct conv, same device, same run: native and browser.
    let pairs = [
        ("native wgpu", Runner::Native("wgpu".into()), Runner::Native("wgpu-burn".into())),
        ("browser WebGPU", Runner::Browser("webgpu".into()), Runner::Browser("webgpu-burn".into())),
    ];
    if pairs.iter().any(|(_, _, burn)| done(outcomes).any(|m| m.runner == burn.label())) {
        writeln!(
            w,
            "\n**Lupa's fused GPU convolution against Burn's direct conv, same device, same run (whole \
             upscale); target in the browser on SwiftShader: ≥ 5×.**\n"
        )?;
        writeln!(
            w,
            "| model | runner | input | Burn's conv | Lupa's fused conv | speed-up | Lupa GMAC/s |\n\
             |---|---|---|---:|---:|---:|---:|"
        )?;
        for (name, lupa, burn) in &pairs {
            for b in done(outcomes).filter(|m| m.runner == burn.label()) {
                if let Some(l) = find(outcomes, &lupa.label(), &b.model, b.size) {
                    writeln!(
                        w,
                        "| {} | {name} | {}² | {:.2} s | {:.2} s | {:.1}× | {:.2} |",
                        b.model,
                        b.size,
                        b.secs,
                        l.secs,
                        b.secs / l.secs,
                        l.gmacs()
                    )?;
                }
            }
        }
    }

    // 7. The browser's CPU worker pool against one worker, same run.
    let one = Runner::Browser("cpu".into()).label();
    let pool = Runner::Browser("cpu-pool".into()).label();
    if done(outcomes).any(|m| m.runner == pool) {
        writeln!(
            w,
            "\n**The browser's CPU worker pool (one engine per core) is ≥ 1.8× one worker on 2 cores.** \
             Same model and input, same run; for the same tiles the result is bit-identical, and an \
             image the pool cuts finer (one tile per engine) equals one worker's to rounding \
             (tests/browser).\n"
        )?;
        writeln!(
            w,
            "| model | input | one worker | pool | workers | speed-up | pool GMAC/s | target |\n\
             |---|---|---:|---:|---|---:|---:|---|"
        )?;
        for p in done(outcomes).filter(|m| m.runner == pool) {
            if let Some(o) = find(outcomes, &one, &p.model, p.size) {
                let speedup = o.secs / p.secs;
                writeln!(
                    w,
                    "| {} | {}² | {:.2} s | {:.2} s | {} | {speedup:.2}× | {:.1} | {} |",
                    p.model,
                    p.size,
                    o.secs,
                    p.secs,
                    p.adapter,
                    p.gmacs(),
                    if speedup >= 1.8 { "met" } else { "**not met**" }
                )?;
            }
        }
    }
    Ok(())
}

fn ratios(w: &mut String, config: &Config, outcomes: &[Outcome]) -> Result<()> {
    let ncnn = Runner::Ncnn.label();
    let lupa_runners: Vec<String> = lupa_runners(config)?.iter().map(Runner::label).collect();
    writeln!(w, "Time of each Lupa runner ÷ ncnn CPU's time, same model and input (lower is better).\n")?;
    writeln!(w, "| model | input | {} |", lupa_runners.join(" | "))?;
    writeln!(w, "|---|---|{}", "---:|".repeat(lupa_runners.len()))?;
    for n in done(outcomes).filter(|m| m.runner == ncnn) {
        let cells: Vec<String> = lupa_runners
            .iter()
            .map(|r| {
                find(outcomes, r, &n.model, n.size)
                    .map_or_else(|| "–".into(), |l| format!("{:.1}×", l.secs / n.secs))
            })
            .collect();
        writeln!(w, "| {} | {}² | {} |", n.model, n.size, cells.join(" | "))?;
    }
    Ok(())
}

fn draw(config: &Config, outcomes: &[Outcome], scores: &[Score]) -> Result<()> {
    let size = config.sizes.first().copied().unwrap_or(256);
    let mut points = Vec::new();
    for m in done(outcomes).filter(|m| m.size == size) {
        let method = if m.runner.starts_with("UpscalerJS") {
            format!("UpscalerJS {}", m.model)
        } else {
            m.model.clone()
        };
        let Some((psnr, _)) = pooled(scores, &method, 4, &config.photo_sets) else { continue };
        let lupa = m.runner.starts_with("Lupa");
        // Native CPU and browser CPU for Lupa; the GPU runners are software here and say little.
        if lupa && !m.runner.ends_with("cpu") {
            continue;
        }
        let label = match m.runner.as_str() {
            r if r.starts_with("UpscalerJS") => format!("{method} ({})", r.trim_start_matches("UpscalerJS ")),
            r => format!("{} ({})", m.model, r.trim_start_matches("Lupa ")),
        };
        points.push(Point { label, secs_per_mp: m.secs_per_mp(), psnr, lupa });
    }
    let baselines: Vec<(String, f64)> = ["bicubic", "Lanczos3"]
        .iter()
        .filter_map(|b| pooled(scores, b, 4, &config.photo_sets).map(|(p, _)| (format!("{b} x4"), p)))
        .collect();
    if points.is_empty() {
        log("plot: no x4 model has both a speed and a photo-set score; nothing drawn");
        return Ok(());
    }
    plot::quality_vs_time(&config.plot, "Lupa and peers, x4 on photos", &points, &baselines)
}

/// PSNR over all RGB samples (−∞ for different sizes).
fn psnr_rgb(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    if a.dimensions() != b.dimensions() {
        return f64::NEG_INFINITY;
    }
    let to_f32 = |i: &image::RgbImage| i.as_raw().iter().map(|&v| f32::from(v)).collect::<Vec<_>>();
    lupa_core::metrics::psnr(&to_f32(a), &to_f32(b), 255.0)
}

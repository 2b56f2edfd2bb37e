//! How much memory one tile of a model really takes, per input pixel, on each backend: what
//! [`lupa_core::ModelSpec::memory_bytes_per_pixel`] (the registry's estimate that sizes tiles
//! against a memory budget) should be.
//!
//! Each measurement is one network pass over one square tile of a real photo (input upload,
//! forward, read-back of the output), in a process of its own (`lupa-bench memory-one`), so that
//! no earlier allocation is reused:
//! - `cpu` (`flex`): growth of the process's peak resident set (`VmHWM`, reset through
//!   `/proc/self/clear_refs` after the model is loaded) over its resident set before the pass;
//! - `wgpu`, `wgpu-f16`: growth of the bytes CubeCL's memory pools reserve on the device
//!   ([`lupa_core::burn::tensor::Device::memory_pool_usage`]; pools keep what they reserve until a
//!   cleanup, so after the pass it is the pass's peak), which is GPU memory on a real GPU.
//!
//! Two tile sides give the per-pixel figure as a slope, `(peak(b) − peak(a)) / (b² − a²)`, which
//! leaves out what does not grow with the tile (scratch per thread, pool pages' rounding at the
//! small size is what remains as noise).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use image::imageops::FilterType;
use lupa_core::burn::tensor::{DType, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// One pass, as `memory-one` prints it (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct Pass {
    /// Tile side in input pixels.
    pub side: u32,
    /// Bytes the pass took at its peak, over what the process held before it.
    pub peak_bytes: u64,
}

/// A model's measured memory per input pixel on one backend.
#[derive(Debug)]
pub struct PerPixel {
    pub model: String,
    pub backend: String,
    pub passes: [Pass; 2],
    /// The registry's estimate for the model.
    pub estimate: u64,
}

impl PerPixel {
    /// The slope between the two passes, in bytes per input pixel.
    pub fn bytes_per_pixel(&self) -> f64 {
        let [a, b] = &self.passes;
        let px = |p: &Pass| f64::from(p.side) * f64::from(p.side);
        (b.peak_bytes as f64 - a.peak_bytes as f64) / (px(b) - px(a))
    }
}

fn status_kb(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
}

/// `memory-one`: one pass of `id` on `backend` over a `side`² crop of `photo`; prints a [`Pass`].
pub fn one(photo: &Path, id: &str, backend: &str, side: u32, models_dir: &Path) -> Result<()> {
    let (device, _, precision) = crate::backend_device(backend)?;
    let model = crate::load_in(models_dir, id, &device, precision)?;
    let align = model.spec.input.align.max(model.spec.input.multiple_of).max(1);
    ensure!(side.is_multiple_of(align), "{id} needs a side that is a multiple of {align}");
    let rgb = image::open(photo)
        .with_context(|| format!("{}", photo.display()))?
        .resize_to_fill(side, side, FilterType::Triangle)
        .to_rgb32f();
    let planar: Vec<f32> = (0..3).flat_map(|c| rgb.pixels().map(move |p| p.0[c])).collect();
    let gpu = backend.starts_with("wgpu");
    let reserved = || device.memory_pool_usage().map_or(0, |u| u.bytes_reserved);
    let before = if gpu {
        device.memory_cleanup();
        reserved()
    } else {
        // "5" resets the peak resident set to the current one (Linux 4.0+, proc(5)).
        std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
        status_kb("VmRSS:")? * 1024
    };
    let x = Tensor::<4>::from_data(TensorData::new(planar, [1, 3, side as usize, side as usize]), &device);
    let y = pollster::block_on(model.network.forward(model.input(x)).cast(DType::F32).into_data_async())?;
    ensure!(y.as_slice::<f32>().is_ok_and(|v| v.iter().all(|v| v.is_finite())), "the output is not finite");
    let after = if gpu { reserved() } else { status_kb("VmHWM:")? * 1024 };
    let pass = Pass { side, peak_bytes: after.saturating_sub(before) };
    println!("{}", serde_json::to_string(&pass)?);
    Ok(())
}

/// Each of `models` on each of `backends` at tile sides `sides` (one process per pass).
pub fn measure(
    photo: &Path,
    models: &[String],
    backends: &[String],
    sides: [u32; 2],
    models_dir: &Path,
) -> Result<Vec<PerPixel>> {
    let exe = std::env::current_exe()?;
    let index = crate::read_index(models_dir)?;
    let mut rows = Vec::new();
    for id in models {
        let estimate = index.get(id)?.memory_bytes_per_pixel;
        for backend in backends {
            let pass = |side: u32| -> Result<Pass> {
                let out = Command::new(&exe)
                    .arg("memory-one")
                    .arg(photo)
                    .args([id, backend, &side.to_string()])
                    .arg(models_dir)
                    .output()?;
                if !out.status.success() {
                    bail!("{id} on {backend} at {side}²: {}", String::from_utf8_lossy(&out.stderr).trim());
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                let last = stdout.lines().last().context("memory-one printed nothing")?;
                Ok(serde_json::from_str(last)?)
            };
            let passes = [pass(sides[0])?, pass(sides[1])?];
            let row = PerPixel { model: id.clone(), backend: backend.clone(), passes, estimate };
            eprintln!("{} on {}: {:.0} B per input pixel", row.model, row.backend, row.bytes_per_pixel());
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rows as a markdown table.
pub fn table(rows: &[PerPixel]) -> String {
    let mut s = String::from(
        "| model | backend | peak at a² | peak at b² | measured, B per input px | registry's estimate | estimate ÷ measured |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let [a, b] = &r.passes;
        let mib = |p: &Pass| format!("{:.1} MiB ({}²)", p.peak_bytes as f64 / f64::from(1 << 20), p.side);
        s += &format!(
            "| {} | {} | {} | {} | {:.0} | {} | {:.2} |\n",
            r.model,
            r.backend,
            mib(a),
            mib(b),
            r.bytes_per_pixel(),
            r.estimate,
            r.estimate as f64 / r.bytes_per_pixel()
        );
    }
    s
}

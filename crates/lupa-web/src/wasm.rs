//! The JavaScript API of the browser engine, driven by `web/worker.js` inside a dedicated Web Worker
//! so the page stays responsive.
//!
//! JavaScript API (one engine per worker; every function but [`cancel`] is called one at a time):
//! - [`start_engine`]`(indexJson, backend)` picks the device: WebGPU through Burn's async initialisation,
//!   or the `flex` CPU backend compiled to wasm when WebGPU is missing, fails, or `backend` is
//!   `"cpu"`. Resolves to a JSON [`BackendInfo`] saying which runs and why.
//! - [`catalogue`]`()`: what the engine offers (modes, scales, denoise levels, formats, the
//!   self-ensemble) as JSON, [`lupa_core::Catalogue`]; the page builds its controls from it.
//! - [`load_model`]`(id, bytes)` checks the weights against the registry's size and sha256 and
//!   loads them.
//! - [`plan_job`]`(fileBytes, requestJson)` decodes the file and says what a job would do: a JSON
//!   [`lupa_core::JobPlan`] with the models to load, Smart mode's choice and the output size.
//! - [`run_job`]`(fileBytes, requestJson, tile, onProgress, pool)` runs it tile by tile
//!   (`onProgress(done, total, pass, passes)`), and resolves to `{ bytes, mime, extension, width,
//!   height, tiles, explanation, engineFailed, engineMemory }` with the result encoded here, in
//!   wasm, once: no canvas is involved, so results beyond the browser's canvas limits still encode.
//!   `pool.engines` (default 1) is how many engines the page runs for the job's tiles, this one
//!   and its helpers, started or not: an image that automatic tiles would cut into fewer tiles is
//!   cut finer, into at most one per engine ([`lupa_core::TileLimits::engines`]).
//!   With `pool = { slots, engines, runTile, reclaim }` (`slots > 0`), up to `slots` tiles at a time are
//!   handed to `runTile(task)`, which resolves to the upscaled tile from another engine (a helper
//!   worker of the pool) or rejects, and the tile is then run here; this engine runs tiles
//!   meanwhile, and calls `reclaim()` when it has none left, asking for the tiles not started yet
//!   to reject. The result is the same, bit for bit ([`lupa_core::UpscaleJob::run_shared`]). A
//!   task is `{ index, model, ensemble, width, height, data: Float32Array, context:
//!   Float32Array[] }`, the result `{ width, height, data: Float32Array }` (channel-planar RGB,
//!   [`lupa_core::PlanarRgb`]).
//! - [`run_tile`]`(task)`: what a helper does with each task: runs it with the model it names
//!   (loaded beforehand) and resolves to the result as above.
//! - [`zip_files`]`(names, files)` packs finished results into one zip.
//! - [`cancel`]`()` stops a running job before its next tile; it then rejects with the kind
//!   `cancelled`.
//!
//! Errors: every function throws (or rejects with) a JavaScript `Error` whose `name` is
//! `LupaError`, whose `message` is one sentence, and whose `kind` is the
//! [`lupa_core::ErrorKind`] name (`bad-input`, `unknown-model`, `weights`, `registry`, `limit`,
//! `backend`, `encode`, `cancelled`), made in one place, [`to_js`].
//!
//! Every tensor read is asynchronous (a synchronous read panics on WebGPU). A panic is printed to
//! the console by `console_error_panic_hook` and handed to `self.lupaReportPanic(message)`, which
//! the worker script forwards to the page; the wasm instance is unusable afterwards.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::task::{Poll, Waker};

use lupa_core::burn::tensor::Device;
#[cfg(feature = "gpu")]
use lupa_core::burn::tensor::Tensor;
#[cfg(feature = "gpu")]
use lupa_core::burn::tensor::wgpu::wgpu;
use lupa_core::{
    CpuFallback, Job, LupaError, ModelIndex, NoHelpers, PlanarRgb, Precision, SrModel, TileDone, TileHelpers,
    TileTask,
};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Which backend runs, on what, and why; sent to the page as JSON (camelCase).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    pub backend: &'static str,
    /// The GPU adapter's description, or "flex, wasm SIMD".
    pub adapter: String,
    /// Why this backend was chosen, for the user.
    pub reason: String,
    /// The device's largest buffer in bytes (WebGPU only).
    pub max_buffer: Option<u64>,
    /// What the models compute in: `"f16"` on a hardware GPU with `shader-f16`, else `"f32"`
    /// ([`lupa_core::Precision::for_adapter`]).
    pub precision: &'static str,
}

struct Engine {
    device: Device,
    info: BackendInfo,
    index: ModelIndex,
    models: RefCell<HashMap<String, Rc<SrModel>>>,
    /// On WebGPU, each loaded model's weights, for the CPU fallback that computes again a tile
    /// the GPU got wrong (`lupa_core::CpuFallback`); loaded on the CPU only then.
    cpu_weights: RefCell<HashMap<String, Vec<u8>>>,
    /// The WebGPU device, for [`lose_device`].
    gpu: Option<GpuDevice>,
}

#[cfg(feature = "gpu")]
type GpuDevice = wgpu::Device;
/// The CPU-only engine (built without the `gpu` feature) has no GPU device.
#[cfg(not(feature = "gpu"))]
enum GpuDevice {}

thread_local! {
    static ENGINE: RefCell<Option<Rc<Engine>>> = const { RefCell::new(None) };
    static CANCEL: Cell<bool> = const { Cell::new(false) };
}

#[wasm_bindgen]
extern "C" {
    /// Set by `web/worker.js`: forwards a panic message to the page.
    #[wasm_bindgen(catch, js_name = lupaReportPanic)]
    fn report_panic(message: &str) -> Result<(), JsValue>;

    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &js_sys::Function, millis: i32);
}

/// Runs when the module is instantiated: routes panics to the console and to the page.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        // The page first: the console hook reads a JavaScript stack, which can itself fail.
        let _ = report_panic(&info.to_string());
        console_error_panic_hook::hook(info);
    }));
}

/// The one conversion of the core's errors for JavaScript: an `Error` named `LupaError` with the
/// message and the stable `kind`.
pub fn to_js(e: LupaError) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    error.set_name("LupaError");
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&error, &"kind".into(), &e.kind().name().into());
    error.into()
}

fn to_json(value: &impl Serialize) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(|e| to_js(LupaError::Backend(format!("cannot write JSON: {e}"))))
}

/// Creates the engine on `backend` (`"auto"`, `"webgpu"` or `"cpu"`) for the models of
/// `index_json` (the text of `models/index.json`). Resolves to [`BackendInfo`] as JSON.
///
/// # Errors
/// `registry` for a malformed index, `bad-input` for an unknown backend, `backend` when
/// `"webgpu"` is asked for and unavailable.
#[wasm_bindgen]
pub async fn start_engine(index_json: String, backend: String) -> Result<String, JsValue> {
    let index = ModelIndex::from_json(&index_json).map_err(to_js)?;
    let (device, info, gpu) = match backend.as_str() {
        "cpu" => (Device::flex(), cpu_info("The CPU backend was chosen".into()), None),
        "webgpu" => webgpu()
            .await
            .map_err(|reason| to_js(LupaError::Backend(format!("WebGPU is unavailable: {reason}"))))?,
        "auto" => match webgpu().await {
            Ok(found) => found,
            Err(reason) => (Device::flex(), cpu_info(format!("WebGPU is unavailable: {reason}")), None),
        },
        other => {
            let message = format!("unknown backend `{other}` (expected auto, webgpu or cpu)");
            return Err(to_js(LupaError::BadInput(message)));
        }
    };
    let json = to_json(&info)?;
    let engine =
        Engine { device, info, index, models: RefCell::default(), cpu_weights: RefCell::default(), gpu };
    ENGINE.with(|e| *e.borrow_mut() = Some(Rc::new(engine)));
    Ok(json)
}

fn cpu_info(reason: String) -> BackendInfo {
    BackendInfo {
        backend: "cpu",
        adapter: "flex, wasm SIMD".into(),
        reason,
        max_buffer: None,
        precision: "f32",
    }
}

/// The CPU-only engine has no WebGPU backend.
#[cfg(not(feature = "gpu"))]
async fn webgpu() -> Result<(Device, BackendInfo, Option<GpuDevice>), String> {
    Err("this is Lupa's CPU engine (lupa-web-cpu), built without WebGPU".into())
}

/// Creates the WebGPU device and checks that it computes: `[1, 2] · 2` read back asynchronously.
/// Also returns the wgpu device itself, for [`lose_device`].
#[cfg(feature = "gpu")]
async fn webgpu() -> Result<(Device, BackendInfo, Option<GpuDevice>), String> {
    let navigator =
        js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not expose WebGPU (navigator.gpu is missing)".into());
    }
    let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| e.to_string())?;
    let probe = Tensor::<1>::from_floats([1.0, 2.0], &device) * 2.0;
    let data = probe.into_data_async().await.map_err(|e| format!("test computation failed: {e:?}"))?;
    if data.as_slice::<f32>().ok() != Some(&[2.0, 4.0][..]) {
        return Err(format!("test computation gave a wrong result: {data:?}"));
    }
    let adapter = setup.adapter.get_info();
    let name = [adapter.name.as_str(), adapter.driver.as_str(), adapter.driver_info.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let name = if name.is_empty() { format!("{:?} GPU", adapter.device_type) } else { name };
    let info = BackendInfo {
        backend: "webgpu",
        adapter: name,
        reason: "A WebGPU adapter was found and passed a test computation".into(),
        max_buffer: Some(lupa_core::largest_buffer(&setup.device.limits())),
        precision: lupa_core::Precision::for_adapter(&device, &adapter).name(),
    };
    Ok((device, info, Some(setup.device)))
}

fn engine() -> Result<Rc<Engine>, JsValue> {
    ENGINE
        .with(|e| e.borrow().clone())
        .ok_or_else(|| to_js(LupaError::Backend("the engine is not initialised".into())))
}

/// What the engine offers, as JSON ([`lupa_core::Catalogue`]).
///
/// # Errors
/// None in practice (the catalogue always serialises).
#[wasm_bindgen]
pub fn catalogue() -> Result<String, JsValue> {
    to_json(&lupa_core::catalogue())
}

/// Loads model `id`'s weights (the bytes of its safetensors file), checking size and sha256.
///
/// # Errors
/// `unknown-model`, or `weights` when they do not match the registry.
#[wasm_bindgen]
pub fn load_model(id: &str, weights: Vec<u8>) -> Result<(), JsValue> {
    let engine = engine()?;
    let spec = engine.index.get(id).map_err(to_js)?;
    if engine.gpu.is_some() {
        engine.cpu_weights.borrow_mut().insert(id.to_owned(), weights.clone());
    }
    let precision = if engine.info.precision == "f16" { Precision::F16 } else { Precision::F32 };
    let model = SrModel::load_with(spec, weights, &engine.device, precision).map_err(to_js)?;
    engine.models.borrow_mut().insert(id.to_owned(), Rc::new(model));
    Ok(())
}

/// The size of this engine's WebAssembly memory, in bytes: it grows as a job needs and never
/// shrinks, so over a batch it shows whether anything is kept that should not be.
fn engine_memory() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map_or(0.0, |m| m.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64)
}

/// A test hook: destroys the WebGPU device, as a driver reset or a long time in a background tab
/// would lose it, so that tests can check a job's recovery (the rest on the CPU). Nothing on
/// the CPU backend.
#[wasm_bindgen]
pub fn lose_device() {
    #[cfg(feature = "gpu")]
    if let Ok(engine) = engine()
        && let Some(gpu) = &engine.gpu
    {
        gpu.destroy();
    }
}

/// A test hook: makes the WebGPU device report an error no job survives, as a driver out of GPU
/// memory does (an uncaptured error, here for a buffer larger than the device allows). The
/// engine then crashes; the page runs the job again on the CPU (web/lupa.js).
#[wasm_bindgen]
pub fn fail_device() {
    #[cfg(feature = "gpu")]
    if let Ok(engine) = engine()
        && let Some(gpu) = &engine.gpu
    {
        let size = gpu.limits().max_buffer_size.saturating_add(1 << 20);
        drop(gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lupa test hook: larger than the device allows"),
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }));
    }
}

/// Lupa's fused convolution kernels on (the default) or off (Burn's conv and activations, for
/// benchmarks that compare the two: [`lupa_core::fused::set_enabled`]). The engine runs on this
/// thread, so this holds for every later upscale.
#[wasm_bindgen]
pub fn set_fused_convolution(enabled: bool) {
    lupa_core::fused::set_enabled(enabled);
}

/// Stops the running upscale before its next tile.
#[wasm_bindgen]
pub fn cancel() {
    CANCEL.with(|c| c.set(true));
}

/// [`crate::engine::prepare`] on this engine's device.
fn prepare(
    engine: &Engine,
    input: &[u8],
    request_json: &str,
    tile: u32,
    engines: u32,
) -> Result<Job, JsValue> {
    crate::engine::prepare(&engine.index, input, request_json, engine.info.max_buffer, tile, engines)
        .map_err(to_js)
}

/// What upscaling `input` as `request_json` asks would do: a JSON [`lupa_core::JobPlan`].
///
/// # Errors
/// `bad-input` for an undecodable file or a bad request, `unknown-model`, `limit` for a result
/// too large for the engine.
#[wasm_bindgen]
pub fn plan_job(input: Vec<u8>, request_json: &str) -> Result<String, JsValue> {
    let engine = engine()?;
    to_json(&prepare(&engine, &input, request_json, 0, 1)?.plan)
}

/// Runs the job `request_json` on the image file `input` with the models [`plan_job`] listed
/// (loaded beforehand). `tile` is the tile side in input pixels (0: sized from the device's
/// limits). `on_progress(done, total, pass, passes)` is called before the first tile and after
/// each one. Resolves to `{ bytes: Uint8Array, mime, extension, width, height, tiles, explanation,
/// engineFailed, engineMemory }`.
///
/// # Errors
/// Those of [`plan_job`], `weights` for a model not loaded, `cancelled`, `backend`, `encode`.
#[wasm_bindgen]
pub async fn run_job(
    input: Vec<u8>,
    request_json: String,
    tile: u32,
    on_progress: js_sys::Function,
    pool: JsValue,
) -> Result<JsValue, JsValue> {
    CANCEL.with(|c| c.set(false));
    let engine = engine()?;
    // The engines the page runs for this job's tiles (it and its pool's helpers, started or not,
    // so that the tiles and the result do not depend on how many were ready).
    let engines = get_u32(&pool, "engines").unwrap_or(1).max(1);
    let job = prepare(&engine, &input, &request_json, tile, engines)?;
    drop(input);
    let plan = job.plan.clone();
    let between_tiles = async |p: lupa_core::RecipeProgress| {
        let args = js_sys::Array::of4(
            &p.tiles.tiles_done.into(),
            &p.tiles.tiles_total.into(),
            &p.pass.into(),
            &p.passes.into(),
        );
        let _ = on_progress.apply(&JsValue::NULL, &args);
        // Let the worker's message loop run, so that a `cancel` sent by the page arrives.
        yield_to_event_loop().await;
        if CANCEL.with(Cell::get) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let model = |id: &str| engine.models.borrow().get(id).cloned();
    // The CPU's tiles are shared with its pool; on WebGPU, a tile the GPU gets wrong (NaN, black)
    // is computed again on the CPU.
    let on_cpu = |id: &str| {
        let spec = engine.index.get(id)?;
        let weights = engine.cpu_weights.borrow().get(id).cloned();
        let weights = weights.ok_or_else(|| LupaError::NotLoaded { id: id.to_owned() })?;
        SrModel::load(spec, weights, &Device::flex())
    };
    let done = match Pool::from_js(&pool) {
        Some(mut pool) => job.run_shared(model, &mut pool, between_tiles).await,
        None if engine.gpu.is_some() => {
            job.run_shared(model, &mut CpuFallback::new(NoHelpers, on_cpu), between_tiles).await
        }
        None => job.run_shared(model, &mut NoHelpers, between_tiles).await,
    }
    .map_err(to_js)?;

    let out = js_sys::Object::new();
    set_all(
        &out,
        [
            ("bytes", js_sys::Uint8Array::from(done.bytes.as_slice()).into()),
            ("mime", plan.mime.into()),
            ("extension", plan.extension.into()),
            ("width", done.width.into()),
            ("height", done.height.into()),
            ("tiles", done.tiles.into()),
            ("explanation", done.explanation.into()),
            ("engineFailed", done.engine_failed.into()),
            ("engineMemory", engine_memory().into()),
        ],
    );
    Ok(out.into())
}

/// The page's pool of helper engines, as [`run_job`] sees it: `run_tile(task)` returns a promise
/// of the tile from another worker; each settles into the inbox, which wakes [`Pool::wait`].
struct Pool {
    run_tile: js_sys::Function,
    reclaim: js_sys::Function,
    slots: usize,
    inbox: Rc<RefCell<Inbox>>,
}

impl Pool {
    /// `{ slots, runTile, reclaim }` with `slots > 0`; `None` for anything else (no pool).
    fn from_js(pool: &JsValue) -> Option<Self> {
        let function =
            |key: &str| js_sys::Reflect::get(pool, &key.into()).ok()?.dyn_into::<js_sys::Function>().ok();
        let slots = get_u32(pool, "slots").ok().filter(|&s| s > 0)?;
        Some(Self {
            run_tile: function("runTile")?,
            reclaim: function("reclaim")?,
            slots: slots as usize,
            inbox: Rc::default(),
        })
    }
}

#[derive(Default)]
struct Inbox {
    done: VecDeque<TileDone>,
    waker: Option<Waker>,
}

impl TileHelpers for Pool {
    fn capacity(&self) -> usize {
        self.slots
    }

    fn send(&mut self, task: TileTask) {
        let index = task.index;
        let sent = self.run_tile.call1(&JsValue::NULL, &task_to_js(&task)).map(js_sys::Promise::from);
        let inbox = Rc::clone(&self.inbox);
        wasm_bindgen_futures::spawn_local(async move {
            let result = match sent {
                Ok(promise) => JsFuture::from(promise).await.and_then(|tile| planar_from_js(&tile)),
                Err(e) => Err(e),
            };
            let result = result.map_err(|e| {
                let why = e.as_string().or_else(|| js_sys::Error::from(e).message().as_string());
                LupaError::Backend(format!(
                    "a helper engine failed tile {index}: {}",
                    why.unwrap_or_default()
                ))
            });
            let mut inbox = inbox.borrow_mut();
            inbox.done.push_back(TileDone { index, result });
            if let Some(waker) = inbox.waker.take() {
                waker.wake();
            }
        });
    }

    fn try_take(&mut self) -> Option<TileDone> {
        self.inbox.borrow_mut().done.pop_front()
    }

    fn reclaim(&mut self) {
        // Nothing to do if it fails: the tiles then come back when their helper has run them.
        let _ = self.reclaim.call0(&JsValue::NULL);
    }

    fn wait(&mut self) -> impl Future<Output = TileDone> {
        std::future::poll_fn(|cx| {
            let mut inbox = self.inbox.borrow_mut();
            match inbox.done.pop_front() {
                Some(done) => Poll::Ready(done),
                None => {
                    inbox.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// `{ index, model, ensemble, width, height, data: Float32Array, context: Float32Array[] }`.
fn task_to_js(task: &TileTask) -> JsValue {
    let context: js_sys::Array =
        task.context.iter().map(|v| js_sys::Float32Array::from(v.as_slice())).collect();
    let out = planar_to_js(&task.input);
    set_all(
        &out,
        [
            ("index", JsValue::from(task.index)),
            ("model", task.model.as_str().into()),
            ("ensemble", task.ensemble.into()),
            ("context", context.into()),
        ],
    );
    out.into()
}

/// A fresh object `{ width, height, data: Float32Array }` of `tile`, as [`planar_from_js`] reads it.
fn planar_to_js(tile: &PlanarRgb) -> js_sys::Object {
    let out = js_sys::Object::new();
    set_all(
        &out,
        [
            ("width", JsValue::from(tile.width)),
            ("height", tile.height.into()),
            ("data", js_sys::Float32Array::from(tile.data.as_slice()).into()),
        ],
    );
    out
}

/// Sets `entries` on `object`, a plain Object of ours (setting its properties cannot fail).
fn set_all<const N: usize>(object: &js_sys::Object, entries: [(&str, JsValue); N]) {
    for (key, value) in entries {
        let _ = js_sys::Reflect::set(object, &key.into(), &value);
    }
}

/// A number property of `object`, as a `u32`.
fn get_u32(object: &JsValue, key: &str) -> Result<u32, JsValue> {
    let value = js_sys::Reflect::get(object, &key.into())?.as_f64();
    match value {
        Some(v) if v >= 0.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 => Ok(v as u32),
        _ => Err(JsValue::from_str(&format!("`{key}` is not a size"))),
    }
}

/// A `Float32Array` property of `object`, copied out.
fn get_floats(object: &JsValue, key: &str) -> Result<Vec<f32>, JsValue> {
    let value = js_sys::Reflect::get(object, &key.into())?;
    let array = value
        .dyn_into::<js_sys::Float32Array>()
        .map_err(|_| JsValue::from_str(&format!("`{key}` is not a Float32Array")))?;
    Ok(array.to_vec())
}

/// `{ width, height, data: Float32Array }` as a tile.
fn planar_from_js(tile: &JsValue) -> Result<PlanarRgb, JsValue> {
    Ok(PlanarRgb {
        width: get_u32(tile, "width")?,
        height: get_u32(tile, "height")?,
        data: get_floats(tile, "data")?,
    })
}

/// Runs a tile task of another engine's job (see [`run_job`]) with the model it names, loaded
/// beforehand. Resolves to `{ width, height, data: Float32Array }`.
///
/// # Errors
/// `bad-input` for a malformed task, `weights` for a model not loaded, `backend`.
#[wasm_bindgen]
pub async fn run_tile(task: JsValue) -> Result<JsValue, JsValue> {
    let engine = engine()?;
    let bad = |e: JsValue| {
        let why = e.as_string().unwrap_or_else(|| "unreadable".into());
        to_js(LupaError::BadInput(format!("malformed tile task: {why}")))
    };
    let model_id =
        js_sys::Reflect::get(&task, &"model".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
    let context = js_sys::Reflect::get(&task, &"context".into()).map_err(bad)?;
    let context: Vec<Vec<f32>> = js_sys::Array::from(&context)
        .iter()
        .map(|v| v.dyn_into::<js_sys::Float32Array>().map(|a| a.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("`context` is not a list of Float32Arrays".into()))?;
    let task = TileTask {
        index: get_u32(&task, "index").map_err(bad)? as usize,
        ensemble: js_sys::Reflect::get(&task, &"ensemble".into()).map_err(bad)?.is_truthy(),
        input: planar_from_js(&task).map_err(bad)?,
        context,
        model: model_id,
    };
    let model = engine.models.borrow().get(&task.model).cloned();
    let model = model.ok_or_else(|| to_js(LupaError::NotLoaded { id: task.model.clone() }))?;
    let tile = lupa_core::run_tile_task(&model, &task).await.map_err(to_js)?;
    Ok(planar_to_js(&tile).into())
}

/// A zip of `files` (`Uint8Array`s) under `names`, stored uncompressed.
///
/// # Errors
/// `bad-input` for mismatched lengths, `encode` with the zip writer's message.
#[wasm_bindgen]
pub fn zip_files(names: Vec<String>, files: Vec<js_sys::Uint8Array>) -> Result<Vec<u8>, JsValue> {
    if names.len() != files.len() {
        return Err(to_js(LupaError::BadInput(format!("{} names for {} files", names.len(), files.len()))));
    }
    let entries: Vec<(String, Vec<u8>)> =
        names.into_iter().zip(files.iter().map(js_sys::Uint8Array::to_vec)).collect();
    crate::engine::zip(&entries).map_err(to_js)
}

/// Resolves on the next macrotask (`setTimeout(0)`), after pending messages are handled.
async fn yield_to_event_loop() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| set_timeout(&resolve, 0));
    let _ = JsFuture::from(promise).await;
}

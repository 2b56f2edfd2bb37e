//! The upscale pipeline: decoded image in, upscaled image out, tile by tile.
//!
//! One async body serves every front end: the CLI drives it with `pollster::block_on`, the web
//! worker with `spawn_local`. Tensor reads are the asynchronous ones only, since a synchronous read
//! panics on WebGPU in the browser.
//!
//! What happens to each kind of input:
//! - **RGB** (8-bit, 16-bit or float): converted to `f32` in `[0, 1]` without loss, upscaled, and
//!   written tile by tile straight into an image of the same colour type and bit depth.
//! - **Grayscale** (`L`, `LA`): replicated to RGB for the model, and the output converted back to
//!   one luma channel (the mean of R, G and B), same bit depth.
//! - **Alpha**: never shown to the model. Colour is upscaled by the model, alpha separately by
//!   bicubic (Catmull-Rom) interpolation, and the two recombined.

use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Luma, Pixel, Rgb32FImage};

use crate::error::{LupaError, Result};
use crate::model::{ImageContext, SrModel};
use crate::registry::ModelSpec;
use crate::tiling::{Rect, Tile, TileParams, TilePlan, plan_tiles, tile_size_for_budget};

/// How to run an upscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpscaleOptions {
    /// Largest tile core side in input pixels; 0 runs the whole image as one tile.
    pub tile_size: u32,
    /// Context around each tile in input pixels; `None` uses the model's default overlap.
    pub overlap: Option<u32>,
    /// Geometric self-ensemble ("maximum fidelity"): each tile runs through the model 8 times,
    /// under the 8 flips and rotations of the square (the dihedral group D4), each output is
    /// mapped back and the 8 are averaged; 8× the cost. The standard test-time augmentation of
    /// the SR literature: Timofte, Rothe & Van Gool, "Seven ways to improve example-based single
    /// image super resolution", CVPR 2016; EDSR's "+" models (Lim et al., CVPRW 2017). Each tile's
    /// result is exactly equivariant to those 8 transforms; the whole image is where the tiling
    /// and the padding (right and bottom) are symmetric too, e.g. a square image in one tile.
    pub ensemble: bool,
    /// Engines that share the tiles, each running one at a time ([`TileParams::engines`]): an
    /// image that `tile_size` cuts into fewer tiles is cut finer, into at most one tile per engine.
    /// 1 (the default) where one engine runs the job or its helpers share its cores (native
    /// threads).
    pub engines: u32,
}

impl Default for UpscaleOptions {
    fn default() -> Self {
        Self { tile_size: 256, overlap: None, ensemble: false, engines: 1 }
    }
}

/// What limits the automatic tile size: a memory budget and, on a GPU, the device's largest buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileLimits {
    /// Bytes of activations one tile may use (see [`ModelSpec::memory_bytes_per_pixel`]).
    pub memory_budget: u64,
    /// The device's largest buffer in bytes, the smaller of WebGPU's `maxStorageBufferBindingSize`
    /// and `maxBufferSize`; `None` on the CPU.
    pub max_buffer: Option<u64>,
    /// Largest tile core side in input pixels.
    pub max_side: u32,
    /// Engines that share a job's tiles, each running one at a time: the browser's CPU pool
    /// (`web/pool.js`), whose workers each have a core. Automatic tiles then cut an image of fewer
    /// tiles than engines finer, into at most one per engine ([`UpscaleOptions::engines`]); 1: no
    /// such cut.
    pub engines: u32,
}

/// The largest buffer a wgpu device allows, for [`TileLimits::max_buffer`]: the smaller of its
/// `max_storage_buffer_binding_size` and `max_buffer_size`.
#[cfg(feature = "gpu")]
pub fn largest_buffer(limits: &burn::tensor::wgpu::wgpu::Limits) -> u64 {
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

/// The tile core side (input pixels) for `spec` under `limits`: the largest that fits the memory
/// budget and keeps every buffer under the device's limit (see
/// [`crate::Architecture::largest_buffer_bytes_per_pixel`]). At least 16.
pub fn auto_tile_size(spec: &ModelSpec, limits: TileLimits) -> u32 {
    let overlap = spec.input.default_overlap;
    let by_memory =
        tile_size_for_budget(spec.memory_bytes_per_pixel, limits.memory_budget, overlap, limits.max_side);
    let by_buffer = limits.max_buffer.map_or(u32::MAX, |max| {
        let per_pixel = spec.architecture.largest_buffer_bytes_per_pixel();
        // Padding to `multiple_of` can add up to that many pixels per side.
        let margin = spec.input.multiple_of;
        tile_size_for_budget(per_pixel, max, overlap + margin, limits.max_side)
    });
    by_memory.min(by_buffer)
}

/// Progress report, sent before the first tile and after each tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Tiles finished.
    pub tiles_done: usize,
    /// Tiles in the plan.
    pub tiles_total: usize,
    /// Tiles computed on another engine ([`TileHelpers::recompute`]) because this engine's output
    /// failed the output check ([`output_fault`]) or this engine failed.
    pub recomputed: usize,
    /// Whether this engine failed (e.g. its GPU device was lost): from then on every tile of the
    /// job runs on the other engine.
    pub engine_failed: bool,
}

/// Plans the tiles `options` give for an image of `width × height` with `model`.
///
/// # Errors
/// As [`plan_tiles`].
pub fn plan_for(model: &SrModel, width: u32, height: u32, options: UpscaleOptions) -> Result<TilePlan> {
    let input = &model.spec.input;
    plan_tiles(
        width,
        height,
        TileParams {
            scale: model.spec.scale,
            tile_size: options.tile_size,
            overlap: options.overlap.unwrap_or(input.default_overlap),
            multiple_of: input.multiple_of,
            min_size: input.min_size,
            align: input.align,
            engines: options.engines,
        },
    )
}

/// A tiled upscale, run tile by tile ([`UpscaleJob::run`], or [`UpscaleJob::run_shared`] with
/// helpers) so that a front end can report progress, yield to its event loop and cancel between
/// tiles ([`upscale_image`] is the plain loop).
///
/// The result is written straight into an image of the input's colour type and bit depth (alpha
/// included), so an 8-bit RGB output costs 3 bytes per output pixel and no larger intermediate
/// exists: that is what lets the browser assemble outputs beyond its canvas limits.
pub struct UpscaleJob<'m> {
    model: &'m SrModel,
    ensemble: bool,
    rgb: Rgb32FImage,
    plan: TilePlan,
    context: Option<ImageContext>,
    /// The next tile not yet started.
    next: usize,
    /// Which tiles are in the output.
    pasted: Vec<bool>,
    /// How many are.
    done: usize,
    /// How many of them were computed on another engine ([`TileHelpers::recompute`]).
    recomputed: usize,
    /// Why this engine failed, if it did: the rest of the job runs on the other engine.
    failed: Option<LupaError>,
    canvas: DynamicImage,
}

impl<'m> UpscaleJob<'m> {
    /// Plans the tiles and allocates the output; alpha, if any, is upscaled here.
    ///
    /// # Errors
    /// As [`plan_tiles`].
    pub fn new(model: &'m SrModel, image: &DynamicImage, options: UpscaleOptions) -> Result<Self> {
        let plan = plan_for(model, image.width(), image.height(), options)?;
        let canvas = new_canvas(image, plan.output_width(), plan.output_height());
        let rgb = image.to_rgb32f();
        let context = if plan.tiles.len() > 1 && model.network.needs_image_context() {
            let (w, h) = plan.max_model_input();
            let small = context_image(&rgb, w.min(h), model.spec.input.min_size);
            model.network.image_context(model.input(to_tensor(&small, &model.device)))
        } else {
            None
        };
        let pasted = vec![false; plan.tiles.len()];
        Ok(Self {
            model,
            ensemble: options.ensemble,
            rgb,
            plan,
            context,
            next: 0,
            pasted,
            done: 0,
            recomputed: 0,
            failed: None,
            canvas,
        })
    }

    /// The tile plan.
    pub fn plan(&self) -> &TilePlan {
        &self.plan
    }

    /// The whole-image statistics every tile uses: for Real-CUGAN, when the image takes several
    /// tiles, the SE means of the whole image downscaled to the largest tile's size (the tiles
    /// then agree with each other exactly; see [`crate::arch::UpCunet`]).
    pub fn context(&self) -> Option<&ImageContext> {
        self.context.as_ref()
    }

    /// Replaces the whole-image statistics (e.g. to run the whole image with a tiled run's).
    #[must_use]
    pub fn with_context(mut self, context: Option<ImageContext>) -> Self {
        self.context = context;
        self
    }

    /// Tiles done so far and in all.
    pub fn progress(&self) -> Progress {
        Progress {
            tiles_done: self.done,
            tiles_total: self.plan.tiles.len(),
            recomputed: self.recomputed,
            engine_failed: self.failed.is_some(),
        }
    }

    /// Whether every tile has run.
    pub fn is_done(&self) -> bool {
        self.done == self.plan.tiles.len()
    }

    /// Runs tile `i` on this engine and writes it into the output. An output that fails the check
    /// ([`output_fault`]) is computed again by [`TileHelpers::recompute`] and checked again; when
    /// this engine fails (a GPU device lost, out of memory), this tile and every later one are
    /// computed there.
    ///
    /// # Errors
    /// This engine's error, or [`LupaError::Backend`] for a faulty output, when there is no other
    /// engine or it fails too.
    async fn run_here(
        &mut self,
        i: usize,
        context: &[Vec<f32>],
        helpers: &mut impl TileHelpers,
    ) -> Result<()> {
        let input = extract_padded(&self.rgb, &self.plan.tiles[i]);
        let fault = match &self.failed {
            Some(e) => format!("could not run here ({e})"),
            None => match run_model(self.model, &input, self.context.as_ref(), self.ensemble).await {
                Ok(upscaled) => match output_fault(&upscaled, || is_black(&input)) {
                    None => return self.paste(i, &upscaled),
                    Some(fault) => format!("came out {fault}"),
                },
                Err(e) => {
                    let fault = format!("could not run here ({e})");
                    self.failed = Some(e);
                    fault
                }
            },
        };
        let context = context.to_vec();
        let task =
            TileTask { index: i, model: self.model.spec.id.clone(), ensemble: self.ensemble, input, context };
        let again = match helpers.recompute(&task).await {
            Some(again) => again,
            None => {
                return Err(match self.failed.take() {
                    Some(e) => e,
                    None => broken(i, &fault, "no other engine can compute it again"),
                });
            }
        };
        let again = again.map_err(|e| broken(i, &fault, &format!("computing it again failed: {e}")))?;
        if let Some(again_fault) = output_fault(&again, || is_black(&task.input)) {
            return Err(broken(i, &fault, &format!("computed again, it came out {again_fault}")));
        }
        self.paste(i, &again)?;
        self.recomputed += 1;
        Ok(())
    }

    /// Writes tile `i`'s upscaled (padded) result into the output, once.
    ///
    /// # Errors
    /// [`LupaError::Backend`] for a result of the wrong size.
    fn paste(&mut self, i: usize, upscaled: &PlanarRgb) -> Result<()> {
        let tile = self.plan.tiles[i];
        let s = self.plan.scale;
        let expected = ((tile.input.width + tile.pad_right) * s, (tile.input.height + tile.pad_bottom) * s);
        let (w, h) = (upscaled.width, upscaled.height);
        if (w, h) != expected || upscaled.data.len() != 3 * w as usize * h as usize {
            return Err(LupaError::Backend(format!(
                "tile {i} came back {w}×{h} with {} values, expected {}×{} RGB",
                upscaled.data.len(),
                expected.0,
                expected.1
            )));
        }
        if !self.pasted[i] {
            paste_crop(&mut self.canvas, upscaled, &tile, s);
            self.pasted[i] = true;
            self.done += 1;
        }
        Ok(())
    }

    /// Tile `i` as a task for another engine.
    fn task(&self, i: usize, context: &[Vec<f32>]) -> TileTask {
        TileTask {
            index: i,
            model: self.model.spec.id.clone(),
            ensemble: self.ensemble,
            input: extract_padded(&self.rgb, &self.plan.tiles[i]),
            context: context.to_vec(),
        }
    }

    /// The upscaled image, in the input's colour type and bit depth.
    ///
    /// # Errors
    /// [`LupaError::Cancelled`] when tiles are left, i.e. the job was abandoned half way.
    pub fn finish(self) -> Result<DynamicImage> {
        if self.is_done() { Ok(self.canvas) } else { Err(LupaError::Cancelled) }
    }

    /// Runs every tile and returns the result. `between_tiles` is awaited with the progress before
    /// each tile and once after the last; it may yield to an event loop, and returning
    /// `ControlFlow::Break(())` cancels.
    ///
    /// # Errors
    /// [`LupaError::Cancelled`]; [`LupaError::Backend`] when reading a tile back fails.
    pub async fn run(
        self,
        between_tiles: impl AsyncFnMut(Progress) -> ControlFlow<()>,
    ) -> Result<DynamicImage> {
        self.run_shared(&mut NoHelpers, between_tiles).await
    }

    /// [`UpscaleJob::run`] with `helpers` running tiles at the same time: up to
    /// [`TileHelpers::capacity`] tiles are out with them while this engine runs the others; a
    /// tile a helper gives back unfinished (a crashed worker, or one [`TileHelpers::reclaim`]
    /// took back when this engine ran out of tiles) is run here. The result is the same
    /// as [`UpscaleJob::run`]'s, bit for bit, whoever ran which tile: every engine runs the same
    /// model on the same padded tile with the same whole-image context (read back once, here).
    ///
    /// # Errors
    /// As [`UpscaleJob::run`]; a helper's failure is not one.
    pub async fn run_shared(
        mut self,
        helpers: &mut impl TileHelpers,
        mut between_tiles: impl AsyncFnMut(Progress) -> ControlFlow<()>,
    ) -> Result<DynamicImage> {
        let total = self.plan.tiles.len();
        // The context as plain numbers, for helpers and for a tile computed again elsewhere: read
        // back once, now, while this engine works (a GPU lost later could not give it).
        let context = match &self.context {
            Some(c) => c.to_vectors().await?,
            None => Vec::new(),
        };
        let mut out = 0; // tiles with helpers
        let mut redo = Vec::new(); // tiles helpers gave back unfinished
        loop {
            out -= self.take_back(helpers, &mut redo);
            if between_tiles(self.progress()).await.is_break() {
                return Err(LupaError::Cancelled);
            }
            if self.is_done() {
                return self.finish();
            }
            // What came back while `between_tiles` yielded: its slots are free again now, not
            // after this engine's next tile (a helper would run dry meanwhile).
            out -= self.take_back(helpers, &mut redo);
            if self.is_done() {
                continue; // report the last tile, then finish
            }
            // The last tile not started stays here: a helper would only make this engine wait.
            while out < helpers.capacity() && total - self.next > 1 {
                helpers.send(self.task(self.next, &context));
                self.next += 1;
                out += 1;
            }
            let here = redo.pop().or_else(|| {
                (self.next < total).then(|| {
                    self.next += 1;
                    self.next - 1
                })
            });
            match here {
                Some(i) => self.run_here(i, &context, helpers).await?,
                None if out > 0 => {
                    helpers.reclaim();
                    let done = helpers.wait().await;
                    out -= 1;
                    self.accept(done, &mut redo);
                }
                None => unreachable!("every tile is done, out with a helper, or to run here"),
            }
        }
    }

    /// Takes every tile that has come back from `helpers`; returns how many.
    fn take_back(&mut self, helpers: &mut impl TileHelpers, redo: &mut Vec<usize>) -> usize {
        let mut n = 0;
        while let Some(done) = helpers.try_take() {
            self.accept(done, redo);
            n += 1;
        }
        n
    }

    /// Takes a helper's result: pasted if it is one and passes the output check, else the tile is
    /// to run here.
    fn accept(&mut self, done: TileDone, redo: &mut Vec<usize>) {
        let TileDone { index, result } = done;
        if index >= self.pasted.len() || self.pasted[index] {
            return; // not one of ours, or already in
        }
        let sound = result.ok().filter(|tile| {
            output_fault(tile, || is_black(&extract_padded(&self.rgb, &self.plan.tiles[index]))).is_none()
        });
        if sound.is_none_or(|tile| self.paste(index, &tile).is_err()) {
            redo.push(index);
        }
    }
}

/// One tile of a job handed to another engine (e.g. another Web Worker): everything that engine
/// needs to run it alone with [`run_tile_task`].
#[derive(Debug, Clone, PartialEq)]
pub struct TileTask {
    /// Its place in the pass's tile plan.
    pub index: usize,
    /// The model's registry id.
    pub model: String,
    /// Whether the self-ensemble runs ([`UpscaleOptions::ensemble`]).
    pub ensemble: bool,
    /// The padded tile the model takes.
    pub input: PlanarRgb,
    /// The whole image's context ([`ImageContext::to_vectors`]); empty when there is none.
    pub context: Vec<Vec<f32>>,
}

/// A tile back from a helper: its index and the upscaled (padded) tile, or why it did not run.
#[derive(Debug)]
pub struct TileDone {
    /// [`TileTask::index`].
    pub index: usize,
    /// The model's output for [`TileTask::input`].
    pub result: Result<PlanarRgb>,
}

/// Other engines that run tiles at the same time as this one ([`UpscaleJob::run_shared`]): the
/// browser's pool of CPU workers. Every task sent comes back once, through
/// [`TileHelpers::try_take`] or [`TileHelpers::wait`], finished or not.
pub trait TileHelpers {
    /// How many tiles may be out at once; 0: none, the job runs alone.
    fn capacity(&self) -> usize;
    /// Hands a tile out.
    fn send(&mut self, task: TileTask);
    /// A tile that has come back, without waiting.
    fn try_take(&mut self) -> Option<TileDone>;
    /// Waits for a tile to come back; only called while at least one is out.
    fn wait(&mut self) -> impl Future<Output = TileDone>;
    /// Asks for the tiles sent but not started yet: they come back unfinished, and this engine
    /// runs them rather than wait while they queue behind a busy helper. Called whenever this
    /// engine has nothing left to run; by default nothing comes back early.
    fn reclaim(&mut self) {}
    /// Computes `task` again on another kind of engine (the CPU under a GPU job, see
    /// [`CpuFallback`]) because this engine's output for it failed the output check
    /// ([`output_fault`]). `None`: there is no such engine (the default), and the job fails
    /// with the fault.
    fn recompute(&mut self, task: &TileTask) -> impl Future<Output = Option<Result<PlanarRgb>>> {
        let _ = task;
        std::future::ready(None)
    }
}

/// What is wrong with a tile's output, if anything: a value that is not finite (NaN or ∞), or
/// every value exactly 0 (black) where the input tile is not black (`input_is_black`, asked only
/// then). These are what a faulty GPU gives back, e.g. after the device is lost or its driver
/// runs out of memory; a working network never computes them from a real image.
pub fn output_fault(output: &PlanarRgb, input_is_black: impl FnOnce() -> bool) -> Option<&'static str> {
    if output.data.iter().any(|v| !v.is_finite()) {
        Some("with NaN or infinite values")
    } else if output.data.iter().all(|&v| v == 0.0) && !input_is_black() {
        Some("black where its input is not")
    } else {
        None
    }
}

/// The error for tile `i`, what went wrong with it (`fault`) and what followed (`then`).
fn broken(i: usize, fault: &str, then: &str) -> LupaError {
    LupaError::Backend(format!("tile {i} of the output {fault}, and {then}"))
}

/// Whether every value of `tile` is below 1/255 (black in 8 bits).
fn is_black(tile: &PlanarRgb) -> bool {
    tile.data.iter().all(|&v| v < 1.0 / 255.0)
}

/// [`TileHelpers`] for a job on the GPU: `helpers`' own behaviour (often [`NoHelpers`]), and a
/// CPU engine that computes again any tile the GPU got wrong ([`output_fault`]). Its models are
/// loaded on first use by `load(id)` (the model's weights on [`Device::flex`]), so a job whose
/// tiles are all sound costs nothing more.
pub struct CpuFallback<H, L> {
    /// The helpers every other call goes to.
    pub helpers: H,
    load: L,
    models: Vec<SrModel>,
}

impl<H, L: FnMut(&str) -> Result<SrModel>> CpuFallback<H, L> {
    /// `helpers` with a CPU fallback whose models `load` gives.
    pub fn new(helpers: H, load: L) -> Self {
        Self { helpers, load, models: Vec::new() }
    }
}

impl<H: TileHelpers, L: FnMut(&str) -> Result<SrModel>> TileHelpers for CpuFallback<H, L> {
    fn capacity(&self) -> usize {
        self.helpers.capacity()
    }
    fn send(&mut self, task: TileTask) {
        self.helpers.send(task);
    }
    fn try_take(&mut self) -> Option<TileDone> {
        self.helpers.try_take()
    }
    fn wait(&mut self) -> impl Future<Output = TileDone> {
        self.helpers.wait()
    }
    fn reclaim(&mut self) {
        self.helpers.reclaim();
    }
    async fn recompute(&mut self, task: &TileTask) -> Option<Result<PlanarRgb>> {
        let model = match self.models.iter().position(|m| m.spec.id == task.model) {
            Some(at) => &self.models[at],
            None => match (self.load)(&task.model) {
                Ok(model) => {
                    self.models.push(model);
                    self.models.last().expect("just pushed")
                }
                Err(e) => return Some(Err(e)),
            },
        };
        Some(run_tile_task(model, task).await)
    }
}

/// No helpers: the job runs every tile itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHelpers;

impl TileHelpers for NoHelpers {
    fn capacity(&self) -> usize {
        0
    }
    fn send(&mut self, task: TileTask) {
        unreachable!("no tile is sent with capacity 0 (tile {})", task.index)
    }
    fn try_take(&mut self) -> Option<TileDone> {
        None
    }
    fn wait(&mut self) -> impl Future<Output = TileDone> {
        std::future::pending()
    }
}

/// Runs a [`TileTask`] with `model` (the one [`TileTask::model`] names): what a helper engine
/// does with each tile it is given. Returns the upscaled padded tile, `[3, s·H, s·W]` planar.
///
/// # Errors
/// [`LupaError::BadInput`] for a tile whose data does not match its size or is below the model's
/// minimum, or a context the model cannot use; [`LupaError::Backend`] when the read-back fails.
pub async fn run_tile_task(model: &SrModel, task: &TileTask) -> Result<PlanarRgb> {
    let PlanarRgb { width, height, ref data } = task.input;
    let min = model.spec.input.min_size;
    if data.len() != 3 * width as usize * height as usize || width < min.max(1) || height < min.max(1) {
        return Err(LupaError::BadInput(format!(
            "tile {} is {width}×{height} with {} values (3 planes of at least {min}×{min} expected)",
            task.index,
            data.len()
        )));
    }
    let context = model.network.context_from_vectors(&task.context, &model.device)?;
    run_model(model, &task.input, context.as_ref(), task.ensemble).await
}

/// Upscales any decoded image, keeping its colour type, bit depth and alpha (see the module docs).
///
/// `progress` is called before the first tile and after every tile; returning
/// `ControlFlow::Break(())` cancels.
///
/// # Shapes
/// `W × H` → `s·W × s·H`, `s` the model's scale. Values are clamped to the output's range.
///
/// # Errors
/// [`LupaError::Cancelled`], [`LupaError::Backend`] when a readback fails, and the planner's errors.
pub async fn upscale_image(
    model: &SrModel,
    image: &DynamicImage,
    options: UpscaleOptions,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<DynamicImage> {
    UpscaleJob::new(model, image, options)?.run(async |p| progress(p)).await
}

/// The whole image, downscaled (triangle filter, which averages over the scale factor) so that its
/// longer side is at most `max_side` and each side at least `min_size` (edges replicated): what
/// one tile-sized pass can take in to compute whole-image statistics.
fn context_image(image: &Rgb32FImage, max_side: u32, min_size: u32) -> PlanarRgb {
    let (w, h) = image.dimensions();
    let factor = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
    let size = |side: u32| ((f64::from(side) * factor).round() as u32).max(1);
    let small = imageops::resize(image, size(w), size(h), FilterType::Triangle);
    let all = Rect { x: 0, y: 0, width: small.width(), height: small.height() };
    let tile = Tile {
        core: all,
        input: all,
        pad_right: min_size.saturating_sub(all.width),
        pad_bottom: min_size.saturating_sub(all.height),
        output: all,
        crop: all,
    };
    extract_padded(&small, &tile)
}

fn to_tensor(planar: &PlanarRgb, device: &Device) -> Tensor<4> {
    let (w, h) = (planar.width as usize, planar.height as usize);
    Tensor::<4>::from_data(TensorData::new(planar.data.clone(), [1, 3, h, w]), device)
}

/// Runs the model on a padded tile (with the self-ensemble if `ensemble`) and returns the
/// upscaled tile, `[3, s·H, s·W]` planar.
async fn run_model(
    model: &SrModel,
    input: &PlanarRgb,
    context: Option<&ImageContext>,
    ensemble: bool,
) -> Result<PlanarRgb> {
    let x = model.input(to_tensor(input, &model.device));
    let y = if ensemble {
        let sum = (0..8u8)
            .map(|t| dihedral_inverse(model.network.forward_in(dihedral(x.clone(), t), context), t))
            .reduce(|a, b| a + b)
            .expect("8 transforms");
        sum / 8.0
    } else {
        model.network.forward_in(x, context)
    };
    let [_, _, out_h, out_w] = y.dims();
    let data = y
        .cast(burn::tensor::DType::F32)
        .into_data_async()
        .await
        .map_err(|e| LupaError::Backend(format!("reading back a {out_w}×{out_h} tile failed: {e:?}")))?;
    let data = data
        .as_slice::<f32>()
        .map_err(|e| LupaError::Backend(format!("unexpected output data type: {e:?}")))?
        .to_vec();
    Ok(PlanarRgb { width: out_w as u32, height: out_h as u32, data })
}

/// The `t`-th (0..8) element of the dihedral group D4 on an NCHW batch: bit 0 flips the width,
/// bit 1 the height, bit 2 then transposes (swaps H and W). `t = 0` is the identity.
fn dihedral(x: Tensor<4>, t: u8) -> Tensor<4> {
    let x = if t & 1 != 0 { x.flip([3]) } else { x };
    let x = if t & 2 != 0 { x.flip([2]) } else { x };
    if t & 4 != 0 { x.swap_dims(2, 3) } else { x }
}

/// The inverse of [`dihedral`]`(·, t)`: the same steps (each is its own inverse) in reverse order.
fn dihedral_inverse(x: Tensor<4>, t: u8) -> Tensor<4> {
    let x = if t & 4 != 0 { x.swap_dims(2, 3) } else { x };
    let x = if t & 2 != 0 { x.flip([2]) } else { x };
    if t & 1 != 0 { x.flip([3]) } else { x }
}

/// A tile as the models take and give it: channel-planar RGB, `data[c·H·W + y·W + x]`, values
/// in `[0, 1]` in (out: not clamped).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarRgb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `3 · width · height` values: the R plane, then G, then B.
    pub data: Vec<f32>,
}

/// Copies a tile's input region out of `image` as planar RGB, replicating the last column and row
/// into the padding the model's size rules ask for.
fn extract_padded(image: &Rgb32FImage, tile: &Tile) -> PlanarRgb {
    let r = tile.input;
    let (w, h) = (r.width + tile.pad_right, r.height + tile.pad_bottom);
    let plane = (w * h) as usize;
    let mut data = vec![0.0; 3 * plane];
    for y in 0..h {
        let sy = r.y + y.min(r.height - 1);
        for x in 0..w {
            let sx = r.x + x.min(r.width - 1);
            let px = image.get_pixel(sx, sy).0;
            let i = (y * w + x) as usize;
            for c in 0..3 {
                data[c * plane + i] = px[c];
            }
        }
    }
    PlanarRgb { width: w, height: h, data }
}

/// Writes the tile's crop of `upscaled` into the colour channels of `canvas` at the tile's output
/// rectangle, clamped to the output's range; a grayscale output gets the mean of R, G and B.
fn paste_crop(canvas: &mut DynamicImage, upscaled: &PlanarRgb, tile: &Tile, scale: u32) {
    debug_assert_eq!(upscaled.width, (tile.input.width + tile.pad_right) * scale);
    match canvas {
        DynamicImage::ImageLuma8(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageLumaA8(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageLuma16(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageLumaA16(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgb8(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgba8(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgb16(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgba16(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgb32F(c) => paste_into(c, upscaled, tile),
        DynamicImage::ImageRgba32F(c) => paste_into(c, upscaled, tile),
        _ => unreachable!("new_canvas only makes the colour types above"),
    }
}

fn paste_into<P>(canvas: &mut ImageBuffer<P, Vec<P::Subpixel>>, upscaled: &PlanarRgb, tile: &Tile)
where
    P: Pixel,
    P::Subpixel: FromUnit,
{
    let plane = (upscaled.width * upscaled.height) as usize;
    let gray = P::CHANNEL_COUNT <= 2;
    let (c, o) = (tile.crop, tile.output);
    for y in 0..o.height {
        for x in 0..o.width {
            let i = ((c.y + y) * upscaled.width + c.x + x) as usize;
            let [r, g, b] = [0, 1, 2].map(|ch| upscaled.data[ch * plane + i].clamp(0.0, 1.0));
            let px = canvas.get_pixel_mut(o.x + x, o.y + y).channels_mut();
            if gray {
                px[0] = P::Subpixel::from_unit((r + g + b) / 3.0);
            } else {
                px[0] = P::Subpixel::from_unit(r);
                px[1] = P::Subpixel::from_unit(g);
                px[2] = P::Subpixel::from_unit(b);
            }
        }
    }
}

/// Channel types of the output: conversion from a value in `[0, 1]` (rounding as `image` does) and
/// clamping to the channel's range.
trait FromUnit: Sized {
    fn from_unit(v: f32) -> Self;
    /// Integer channels can't leave their range; float channels are clamped to `[0, 1]`.
    fn clamp_unit(self) -> Self {
        self
    }
}

impl FromUnit for u8 {
    fn from_unit(v: f32) -> Self {
        (v * 255.0).round() as u8
    }
}

impl FromUnit for u16 {
    fn from_unit(v: f32) -> Self {
        (v * 65535.0).round() as u16
    }
}

impl FromUnit for f32 {
    fn from_unit(v: f32) -> Self {
        v
    }
    fn clamp_unit(self) -> Self {
        self.clamp(0.0, 1.0)
    }
}

/// The output image: `original`'s colour type (anything exotic becomes RGBA float) at
/// `width × height`, with the alpha channel, if any, already upscaled by Catmull-Rom bicubic.
fn new_canvas(original: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    use DynamicImage as D;
    match original {
        D::ImageLuma8(_) => D::new_luma8(width, height),
        D::ImageLumaA8(src) => D::ImageLumaA8(with_alpha(src, width, height)),
        D::ImageLuma16(_) => D::new_luma16(width, height),
        D::ImageLumaA16(src) => D::ImageLumaA16(with_alpha(src, width, height)),
        D::ImageRgb8(_) => D::new_rgb8(width, height),
        D::ImageRgba8(src) => D::ImageRgba8(with_alpha(src, width, height)),
        D::ImageRgb16(_) => D::new_rgb16(width, height),
        D::ImageRgba16(src) => D::ImageRgba16(with_alpha(src, width, height)),
        D::ImageRgb32F(_) => D::new_rgb32f(width, height),
        D::ImageRgba32F(src) => D::ImageRgba32F(with_alpha(src, width, height)),
        other => D::ImageRgba32F(with_alpha(&other.to_rgba32f(), width, height)),
    }
}

/// An image of `src`'s pixel type at `width × height` whose last (alpha) channel is `src`'s alpha
/// resized with Catmull-Rom bicubic (clamped to the channel's range); colour channels are zero.
fn with_alpha<P>(
    src: &ImageBuffer<P, Vec<P::Subpixel>>,
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
    P::Subpixel: FromUnit + 'static,
    Luma<P::Subpixel>: Pixel<Subpixel = P::Subpixel>,
{
    let last = usize::from(P::CHANNEL_COUNT) - 1;
    let alpha: ImageBuffer<Luma<P::Subpixel>, _> =
        ImageBuffer::from_fn(src.width(), src.height(), |x, y| Luma([src.get_pixel(x, y).channels()[last]]));
    let alpha = imageops::resize(&alpha, width, height, FilterType::CatmullRom);
    let mut out = ImageBuffer::new(width, height);
    for (o, a) in out.pixels_mut().zip(alpha.pixels()) {
        let o: &mut P = o;
        o.channels_mut()[last] = a.0[0].clamp_unit();
    }
    out
}

/// Progress of a whole recipe: which pass, and its tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeProgress {
    /// Current pass, from 0.
    pub pass: usize,
    /// Passes in the recipe.
    pub passes: usize,
    /// Tiles of this pass.
    pub tiles: Progress,
}

impl RecipeProgress {
    /// Fraction done in `[0, 1]`, counting each pass equally.
    pub fn fraction(&self) -> f64 {
        let within = self.tiles.tiles_done as f64 / self.tiles.tiles_total.max(1) as f64;
        (self.pass as f64 + within) / self.passes.max(1) as f64
    }
}

/// One model pass of a recipe.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'m> {
    /// The model.
    pub model: &'m SrModel,
    /// Tiling.
    pub options: UpscaleOptions,
    /// Resize (Lanczos3) right after this pass, e.g. a 1x clean-up back to the input size.
    pub then_resize_to: Option<(u32, u32)>,
}

/// Runs model passes one after the other, each on the previous output, then resizes to `resize_to`
/// with Lanczos3 (keeping the colour type), so the pixels are resampled once after enlarging.
///
/// `between_tiles` is awaited before every tile and after each pass's last tile; it may yield to
/// an event loop, and `ControlFlow::Break(())` cancels.
///
/// # Errors
/// [`LupaError::Cancelled`], and those of [`UpscaleJob`].
pub async fn run_passes(
    passes: &[Pass<'_>],
    image: DynamicImage,
    resize_to: Option<(u32, u32)>,
    between_tiles: impl AsyncFnMut(RecipeProgress) -> ControlFlow<()>,
) -> Result<DynamicImage> {
    run_passes_shared(passes, image, resize_to, &mut NoHelpers, between_tiles).await
}

/// [`run_passes`] with `helpers` sharing every pass's tiles ([`UpscaleJob::run_shared`]).
///
/// # Errors
/// As [`run_passes`].
pub async fn run_passes_shared(
    passes: &[Pass<'_>],
    image: DynamicImage,
    resize_to: Option<(u32, u32)>,
    helpers: &mut impl TileHelpers,
    mut between_tiles: impl AsyncFnMut(RecipeProgress) -> ControlFlow<()>,
) -> Result<DynamicImage> {
    let resize = |image: DynamicImage, size: Option<(u32, u32)>| match size {
        Some((w, h)) if (w, h) != (image.width(), image.height()) => {
            image.resize_exact(w, h, FilterType::Lanczos3)
        }
        _ => image,
    };
    let mut image = image;
    for (pass, p) in passes.iter().enumerate() {
        let report = async |tiles| between_tiles(RecipeProgress { pass, passes: passes.len(), tiles }).await;
        image = UpscaleJob::new(p.model, &image, p.options)?.run_shared(helpers, report).await?;
        image = resize(image, p.then_resize_to);
    }
    Ok(resize(image, resize_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8 transforms are distinct, and each inverse undoes its transform.
    #[test]
    fn dihedral_transforms_are_the_eight_and_invert() {
        let device = Device::flex();
        // A 2×3 single-channel image with distinct values: no symmetry hides a wrong transform.
        let x = Tensor::<4>::from_data(
            TensorData::new((0..6).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 2, 3]),
            &device,
        );
        let values = |t: Tensor<4>| {
            let data = pollster::block_on(t.clone().into_data_async()).unwrap();
            (t.dims(), data.as_slice::<f32>().unwrap().to_vec())
        };
        let mut seen = Vec::new();
        for t in 0..8u8 {
            let y = dihedral(x.clone(), t);
            let v = values(y.clone());
            assert!(!seen.contains(&v), "transform {t} repeats another");
            seen.push(v);
            assert_eq!(values(dihedral_inverse(y, t)), values(x.clone()), "transform {t}");
        }
    }
}

//! The upscale pipeline on real images: tiling is seamless, alpha, grayscale and 16-bit inputs keep
//! their kind, progress is reported per tile and cancelling stops the work, and tiles shared out
//! to other engines (the browser's worker pool) give the same result bit for bit.

use std::ops::ControlFlow;

use lupa_core::burn::tensor::Device;
use lupa_core::image::Rgb32FImage;
use lupa_core::image::{DynamicImage, GenericImageView, ImageBuffer, Luma, Rgba};
use lupa_core::metrics::{max_abs_diff, psnr};
use lupa_core::tiling::TilePlan;
use lupa_core::{
    CpuFallback, LupaError, NoHelpers, PlanarRgb, Progress, SrModel, TileDone, TileHelpers, TileTask,
    TileThreads, UpscaleJob, UpscaleOptions, run_tile_task,
};
use lupa_tests::{load, open, samples, upscale, upscale_with};

/// A 96×80 crop of the astronaut photo: big enough for several tiles, small enough for the CPU.
fn photo() -> DynamicImage {
    open("images/astronaut_128.png").crop_imm(16, 24, 96, 80)
}

fn assert_tiled_equals_untiled(id: &str) {
    let model = load(id, &Device::flex());
    // Float in, float out: the comparison is not hidden by 8-bit rounding.
    let image: DynamicImage = photo().to_rgb32f().into();
    let whole = samples(&upscale(&model, &image, 0, None));
    // 36-pixel tiles: a 3×3 grid, every seam inside the image.
    let tiled = samples(&upscale(&model, &image, 36, None));
    let max = max_abs_diff(&whole, &tiled);
    println!(
        "{id}: tiled vs untiled max |diff| {:.4}/255, PSNR {:.1} dB",
        max * 255.0,
        psnr(&whole, &tiled, 1.0)
    );
    assert!(max <= 1.0 / 255.0, "{id}: tiles differ from the whole image by {:.3}/255", max * 255.0);
}

#[test]
fn tiled_span_equals_untiled() {
    assert_tiled_equals_untiled("span-x4");
}

#[test]
fn tiled_compact_equals_untiled() {
    assert_tiled_equals_untiled("realesr-animevideov3");
}

#[test]
fn tiled_general_x4v3_equals_untiled() {
    assert_tiled_equals_untiled("realesr-general-x4v3");
}

#[test]
fn too_little_overlap_shows_seams() {
    // The check above would pass vacuously if tiles ignored their context: prove overlap matters.
    let model = load("span-x4", &Device::flex());
    let image: DynamicImage = photo().to_rgb32f().into();
    let whole = samples(&upscale(&model, &image, 0, None));
    let seamy = samples(&upscale(&model, &image, 36, Some(0)));
    assert!(max_abs_diff(&whole, &seamy) > 4.0 / 255.0);
}

#[test]
fn alpha_is_upscaled_separately_and_kept() {
    let model = load("span-x2", &Device::flex());
    let rgb = photo().to_rgb8();
    let (w, h) = rgb.dimensions();
    // An opaque disc on a transparent background, with a soft edge.
    let rgba = ImageBuffer::from_fn(w, h, |x, y| {
        let d = ((x as f32 - 48.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt();
        let a = ((30.0 - d) * 64.0).clamp(0.0, 255.0) as u8;
        let [r, g, b] = rgb.get_pixel(x, y).0;
        Rgba([r, g, b, a])
    });
    let out = upscale(&model, &DynamicImage::ImageRgba8(rgba), 0, None);
    assert_eq!(out.color(), lupa_core::image::ColorType::Rgba8);
    assert_eq!(out.dimensions(), (2 * w, 2 * h));
    assert_eq!(out.get_pixel(0, 0).0[3], 0, "transparent corner stays transparent");
    assert_eq!(out.get_pixel(96, 80).0[3], 255, "opaque centre stays opaque");
    // Colour does not depend on alpha: it equals the RGB-only upscale.
    let colour_only = upscale(&model, &DynamicImage::ImageRgb8(rgb), 0, None).to_rgb8();
    let with_alpha = out.to_rgb8();
    assert_eq!(colour_only.as_raw(), with_alpha.as_raw());
}

#[test]
fn grayscale_stays_grayscale() {
    let model = load("span-x2", &Device::flex());
    let gray = DynamicImage::ImageLuma8(photo().to_luma8());
    let out = upscale(&model, &gray, 0, None);
    assert_eq!(out.color(), lupa_core::image::ColorType::L8);
    assert_eq!(out.dimensions(), (192, 160));
    // Same as upscaling the gray image as RGB and taking the mean of the channels: within 1/255,
    // since that path rounds each channel to 8 bits before averaging and ours rounds the mean.
    let as_rgb = upscale(&model, &DynamicImage::ImageRgb8(gray.to_rgb8()), 0, None).to_rgb32f();
    let mean: Vec<f32> = as_rgb.pixels().map(|p| (p.0[0] + p.0[1] + p.0[2]) / 3.0).collect();
    let ours: Vec<f32> = out.to_luma32f().into_raw();
    assert!(max_abs_diff(&mean, &ours) <= 1.0 / 255.0 + 1e-6);
}

#[test]
fn sixteen_bit_keeps_sixteen_bits() {
    let model = load("span-x2", &Device::flex());
    let deep = DynamicImage::ImageRgb16(photo().to_rgb16());
    let out = upscale(&model, &deep, 0, None);
    assert_eq!(out.color(), lupa_core::image::ColorType::Rgb16);
    let out16 = out.to_rgb16();
    // Real 16-bit output: far more distinct levels than 8 bits can hold.
    let mut levels: Vec<u16> = out16.as_raw().clone();
    levels.sort_unstable();
    levels.dedup();
    assert!(levels.len() > 1000, "only {} distinct 16-bit levels", levels.len());
    // And it agrees with the 8-bit path.
    let eight = upscale(&model, &DynamicImage::ImageRgb8(photo().to_rgb8()), 0, None);
    assert!(max_abs_diff(&samples(&eight), &samples(&out)) <= 1.0 / 255.0);
}

#[test]
fn progress_is_reported_per_tile_and_cancel_stops() {
    let model = load("span-x2", &Device::flex());
    let image = photo();
    let options = UpscaleOptions { tile_size: 32, overlap: Some(4), ensemble: false, engines: 1 };
    let mut seen = Vec::new();
    let mut record = |p: Progress| {
        seen.push((p.tiles_done, p.tiles_total));
        ControlFlow::Continue(())
    };
    pollster::block_on(lupa_core::upscale_image(&model, &image, options, &mut record)).unwrap();
    // 96×80 in 32-pixel tiles: 3×3 = 9 tiles, reported 0..=9.
    assert_eq!(seen, (0..=9).map(|d| (d, 9)).collect::<Vec<_>>());

    let mut calls = 0;
    let mut cancel_after_two = |p: Progress| {
        calls += 1;
        if p.tiles_done == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let result = pollster::block_on(lupa_core::upscale_image(&model, &image, options, &mut cancel_after_two));
    assert!(matches!(result, Err(LupaError::Cancelled)));
    assert_eq!(calls, 3);
}

#[test]
fn one_pixel_image_upscales() {
    let model = load("span-x4", &Device::flex());
    let dot = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([200u8])));
    let out = upscale(&model, &dot, 256, None);
    assert_eq!(out.dimensions(), (4, 4));
}

/// Real-CUGAN's tiles share the SE means of the downscaled whole image, so they agree exactly with
/// a whole-image run given the same means; against whole-image means the result differs a little
/// everywhere, never more at the seams (asserted: the mean difference in bands around the tile
/// boundaries is at most [`SEAM_FACTOR`] times the mean elsewhere). Tiles start at even offsets
/// (multiples of 4 at 3x): the stride-2 layers are not shift-invariant.
fn assert_realcugan_tiles_agree(id: &str) {
    let model = load(id, &Device::flex());
    let image: DynamicImage = photo().to_rgb32f().into();
    let options = |tile_size| UpscaleOptions { tile_size, overlap: None, ensemble: false, engines: 1 };
    let run = |job: UpscaleJob| pollster::block_on(job.run(async |_| ControlFlow::Continue(()))).unwrap();
    let tiled_job = UpscaleJob::new(&model, &image, options(36)).unwrap();
    let plan = tiled_job.plan().clone();
    assert!(plan.tiles.len() >= 6);
    let context = tiled_job.context().cloned();
    assert!(context.is_some(), "{id}: a tiled Real-CUGAN run needs whole-image SE means");
    let tiled = samples(&run(tiled_job));
    let whole_job = UpscaleJob::new(&model, &image, options(0)).unwrap();
    assert!(whole_job.context().is_none());
    let exact = samples(&run(whole_job));
    let whole_job = UpscaleJob::new(&model, &image, options(0)).unwrap();
    let same_means = samples(&run(whole_job.with_context(context)));
    let max = max_abs_diff(&same_means, &tiled);
    let seams = seam_errors(&plan, &exact, &tiled);
    println!(
        "{id}: tiled vs whole with the same SE means max |diff| {:.4}/255; vs whole-image means PSNR \
         {:.1} dB, mean |diff| {:.4}/255 within {} px of the {} seams ({} px), {:.4}/255 elsewhere ({} px)",
        max * 255.0,
        psnr(&exact, &tiled, 1.0),
        seams.seam_mean * 255.0,
        seams.band,
        seams.lines,
        seams.seam_pixels,
        seams.interior_mean * 255.0,
        seams.interior_pixels,
    );
    assert!(max <= 1.0 / 255.0, "{id}: tiles differ from the whole image by {:.3}/255", max * 255.0);
    assert!(seams.lines >= 2 && seams.seam_pixels > 0 && seams.interior_pixels > 0);
    assert!(
        seams.seam_mean <= SEAM_FACTOR * seams.interior_mean,
        "{id}: against whole-image means the tiles differ more at the seams ({:.4}/255) than \
         elsewhere ({:.4}/255): a seam",
        seams.seam_mean * 255.0,
        seams.interior_mean * 255.0
    );
}

/// A seam may raise the difference near the tile boundaries at most this much over the rest.
const SEAM_FACTOR: f64 = 1.5;

/// The per-pixel difference of two outputs (RGBA samples), near tile boundaries and elsewhere.
struct SeamErrors {
    /// Half-width of the bands around each boundary, in output pixels.
    band: u32,
    /// Interior tile boundaries (vertical and horizontal lines).
    lines: usize,
    seam_mean: f64,
    seam_pixels: usize,
    interior_mean: f64,
    interior_pixels: usize,
}

/// Mean over RGB of |a − b| per output pixel, averaged separately over the pixels within two input
/// pixels (times the scale) of a tile boundary of `plan` (from its tiles' output rectangles) and
/// over all the others.
fn seam_errors(plan: &TilePlan, a: &[f32], b: &[f32]) -> SeamErrors {
    let (w, h) = (plan.output_width(), plan.output_height());
    assert_eq!(a.len(), (w * h * 4) as usize);
    let mut xs: Vec<u32> = plan.tiles.iter().map(|t| t.output.x).filter(|&x| x > 0).collect();
    let mut ys: Vec<u32> = plan.tiles.iter().map(|t| t.output.y).filter(|&y| y > 0).collect();
    for v in [&mut xs, &mut ys] {
        v.sort_unstable();
        v.dedup();
    }
    let band = 2 * plan.scale;
    let near = |p: u32, lines: &[u32]| lines.iter().any(|&l| p + band >= l && p < l + band);
    let (mut seam, mut interior) = ((0.0, 0), (0.0, 0));
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let d = (0..3).map(|c| f64::from((a[i + c] - b[i + c]).abs())).sum::<f64>() / 3.0;
            let acc = if near(x, &xs) || near(y, &ys) { &mut seam } else { &mut interior };
            *acc = (acc.0 + d, acc.1 + 1);
        }
    }
    SeamErrors {
        band,
        lines: xs.len() + ys.len(),
        seam_mean: seam.0 / seam.1.max(1) as f64,
        seam_pixels: seam.1,
        interior_mean: interior.0 / interior.1.max(1) as f64,
        interior_pixels: interior.1,
    }
}

#[test]
fn tiled_realcugan_x2_agrees() {
    assert_realcugan_tiles_agree("realcugan-se-x2-no-denoise");
}

#[test]
fn tiled_realcugan_x3_agrees() {
    assert_realcugan_tiles_agree("realcugan-se-x3-denoise3x");
}

#[test]
fn tiled_realcugan_x4_agrees() {
    assert_realcugan_tiles_agree("realcugan-se-x4-conservative");
}

/// `image` mirrored about its main diagonal.
fn transpose(image: &Rgb32FImage) -> Rgb32FImage {
    ImageBuffer::from_fn(image.height(), image.width(), |x, y| *image.get_pixel(y, x))
}

/// The geometric self-ensemble averages over the 8 flips and rotations, so its result is exactly
/// equivariant to them (here: the transpose), which a plain run is not; and it stays close to the
/// plain result.
#[test]
fn self_ensemble_is_equivariant_and_close_to_plain() {
    let model = load("span-x2", &Device::flex());
    // A square 64×64 crop of the photo, in float so nothing is hidden by 8-bit rounding.
    let input = open("images/astronaut_128.png").crop_imm(40, 32, 64, 64).to_rgb32f();
    let run = |image: &Rgb32FImage, ensemble: bool| {
        let options = UpscaleOptions { tile_size: 0, overlap: None, ensemble, engines: 1 };
        upscale_with(&model, &DynamicImage::ImageRgb32F(image.clone()), options).to_rgb32f()
    };
    let equivariance = |ensemble: bool| {
        let out = run(&input, ensemble);
        let of_transposed = run(&transpose(&input), ensemble);
        (max_abs_diff(transpose(&out).as_raw(), of_transposed.as_raw()), out)
    };
    let (ensemble_diff, ensembled) = equivariance(true);
    let (plain_diff, plain) = equivariance(false);
    let db = psnr(plain.as_raw(), ensembled.as_raw(), 1.0);
    println!(
        "span-x2 64×64: f(xᵀ) vs f(x)ᵀ max |diff| {ensemble_diff:.2e} with the self-ensemble, \
         {plain_diff:.2e} without; ensemble vs plain PSNR {db:.1} dB"
    );
    assert!(ensemble_diff <= 1e-4, "the self-ensemble is not transpose-equivariant: {ensemble_diff:.2e}");
    assert!(
        plain_diff > 1e-2,
        "a plain run is (nearly) transpose-equivariant ({plain_diff:.2e}): the check proves nothing"
    );
    assert!(db > 35.0, "the self-ensemble moved the result too far from the plain one: {db:.1} dB");
}

/// Another engine (a worker of the browser's pool, here on this thread): its own copy of the
/// model, loaded from the same file, running the tasks it is sent. A task is finished each time
/// the job looks for one (`try_take`) or waits, last sent first, so tiles come back out of order;
/// with `crash_every: k`, every k-th task comes back unfinished, as from a crashed worker;
/// `reclaim` gives back all but the task it is on. A `slow` helper finishes tasks only when the
/// job waits for one (it never has one ready when the job looks).
struct Helper {
    model: SrModel,
    capacity: usize,
    slow: bool,
    crash_every: Option<usize>,
    queue: Vec<TileTask>,
    given_back: Vec<usize>,
    received: usize,
    ran: usize,
    crashed: usize,
    reclaimed: usize,
}

impl Helper {
    fn new(id: &str, capacity: usize, crash_every: Option<usize>) -> Self {
        let model = load(id, &Device::flex());
        Self {
            model,
            capacity,
            slow: false,
            crash_every,
            queue: Vec::new(),
            given_back: Vec::new(),
            received: 0,
            ran: 0,
            crashed: 0,
            reclaimed: 0,
        }
    }

    fn finish_one(&mut self) -> Option<TileDone> {
        if let Some(index) = self.given_back.pop() {
            return Some(TileDone { index, result: Err(LupaError::Backend("reclaimed".into())) });
        }
        let task = self.queue.pop()?;
        let index = task.index;
        if self.crash_every.is_some_and(|k| index % k == k - 1) {
            self.crashed += 1;
            return Some(TileDone { index, result: Err(LupaError::Backend("the worker crashed".into())) });
        }
        self.ran += 1;
        Some(TileDone { index, result: pollster::block_on(run_tile_task(&self.model, &task)) })
    }
}

impl TileHelpers for Helper {
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn send(&mut self, task: TileTask) {
        assert_eq!(task.model, self.model.spec.id);
        self.received += 1;
        self.queue.push(task);
    }
    fn try_take(&mut self) -> Option<TileDone> {
        if self.slow { None } else { self.finish_one() }
    }
    async fn wait(&mut self) -> TileDone {
        self.finish_one().expect("wait is called with a tile out")
    }
    fn reclaim(&mut self) {
        // The last task sent is the one this helper works on next; the others have not started.
        let keep = self.queue.pop();
        self.reclaimed += self.queue.len();
        self.given_back.extend(self.queue.drain(..).map(|t| t.index));
        self.queue.extend(keep);
    }
}

/// Runs `image` with `model` in `tile_size` tiles alone, then shared with `helper`; asserts the
/// two results are identical and returns how many tiles there were.
fn assert_shared_equals_alone(
    model: &SrModel,
    helper: &mut Helper,
    image: &DynamicImage,
    tile_size: u32,
) -> usize {
    let options = UpscaleOptions { tile_size, overlap: None, ensemble: false, engines: 1 };
    let alone = UpscaleJob::new(model, image, options).unwrap();
    let tiles = alone.plan().tiles.len();
    let alone = pollster::block_on(alone.run(async |_| ControlFlow::Continue(()))).unwrap();
    let mut reported = Vec::new();
    let shared = UpscaleJob::new(model, image, options).unwrap();
    let shared = pollster::block_on(shared.run_shared(helper, async |p: Progress| {
        reported.push(p.tiles_done);
        ControlFlow::Continue(())
    }))
    .unwrap();
    assert!(samples(&alone) == samples(&shared), "{}: shared tiles differ from one engine's", model.spec.id);
    // One progress bar over every engine's tiles: from 0 to all, never back.
    assert_eq!((reported.first(), reported.last()), (Some(&0), Some(&tiles)));
    assert!(reported.windows(2).all(|w| w[0] <= w[1]));
    tiles
}

#[test]
fn tiles_shared_with_helpers_equal_one_engine_bit_for_bit() {
    let image: DynamicImage = photo().to_rgb32f().into();
    let model = load("span-x2", &Device::flex());
    let mut helper = Helper::new("span-x2", 2, None);
    let tiles = assert_shared_equals_alone(&model, &mut helper, &image, 32);
    println!("span-x2: {tiles} tiles, {} run by the helper", helper.ran);
    assert_eq!(tiles, 9);
    // Both engines worked: the helper holds 2 at a time, this engine runs one meanwhile.
    assert!(helper.ran >= 4 && helper.ran < tiles, "the helper ran {} of {tiles}", helper.ran);
}

#[test]
fn a_crashed_helpers_tiles_are_redone_and_the_result_is_the_same() {
    let image: DynamicImage = photo().to_rgb32f().into();
    let model = load("span-x2", &Device::flex());
    let mut helper = Helper::new("span-x2", 3, Some(3));
    let tiles = assert_shared_equals_alone(&model, &mut helper, &image, 32);
    println!("span-x2: {tiles} tiles; the helper ran {}, crashed on {}", helper.ran, helper.crashed);
    assert!(helper.crashed >= 1 && helper.ran >= 1);
    assert_eq!(helper.received, helper.ran + helper.crashed + helper.reclaimed);
}

#[test]
fn tiles_a_helper_has_not_started_are_reclaimed_when_this_engine_runs_out() {
    // A slow helper holding 4 tiles at once: when this engine has run the rest it would wait for
    // tiles queued behind the helper's current one; it takes them back and runs them itself.
    let image: DynamicImage = photo().to_rgb32f().into();
    let model = load("span-x2", &Device::flex());
    let mut helper = Helper { slow: true, ..Helper::new("span-x2", 4, None) };
    let tiles = assert_shared_equals_alone(&model, &mut helper, &image, 32);
    println!("span-x2: {tiles} tiles; the helper ran {}, gave back {}", helper.ran, helper.reclaimed);
    assert!(helper.reclaimed >= 1 && helper.ran >= 1);
    assert_eq!(helper.received, helper.ran + helper.reclaimed);
}

#[test]
fn realcugan_tiles_shared_with_helpers_use_the_same_se_means() {
    // The helper has no means of its own: it gets the job's, read back once and sent with every
    // tile, so its tiles agree with this engine's exactly.
    let image: DynamicImage = photo().to_rgb32f().into();
    let id = "realcugan-se-x2-no-denoise";
    let model = load(id, &Device::flex());
    let mut helper = Helper::new(id, 2, None);
    let tiles = assert_shared_equals_alone(&model, &mut helper, &image, 40);
    println!("{id}: {tiles} tiles, {} run by the helper", helper.ran);
    assert!(tiles >= 4 && helper.ran >= 2);
}

#[test]
fn tiles_on_helper_threads_equal_one_engine_bit_for_bit() {
    // The CLI's helpers: threads of this process sharing the loaded model.
    let image: DynamicImage = photo().to_rgb32f().into();
    let model = load("span-x2", &Device::flex());
    let options = UpscaleOptions { tile_size: 32, overlap: None, ensemble: false, engines: 1 };
    let alone = UpscaleJob::new(&model, &image, options).unwrap();
    let alone = pollster::block_on(alone.run(async |_| ControlFlow::Continue(()))).unwrap();
    for threads in [1, 3] {
        let mut last = None;
        let shared = std::thread::scope(|scope| {
            let mut helpers = TileThreads::start(scope, vec![&model], threads);
            let job = UpscaleJob::new(&model, &image, options).unwrap();
            pollster::block_on(job.run_shared(&mut helpers, async |p: Progress| {
                last = Some(p);
                ControlFlow::Continue(())
            }))
        })
        .unwrap();
        assert!(samples(&alone) == samples(&shared), "{threads} helper threads changed the result");
        assert_eq!(
            last,
            Some(Progress { tiles_done: 9, tiles_total: 9, recomputed: 0, engine_failed: false })
        );
    }
}

#[test]
fn a_helper_refuses_a_malformed_tile_task() {
    let cugan = load("realcugan-se-x2-no-denoise", &Device::flex());
    let input = PlanarRgb { width: 40, height: 40, data: vec![0.5; 3 * 40 * 40] };
    let task =
        TileTask { index: 0, model: cugan.spec.id.clone(), ensemble: false, input, context: Vec::new() };
    let run = |task: &TileTask| pollster::block_on(run_tile_task(&cugan, task));
    let short = TileTask { input: PlanarRgb { data: vec![0.5; 100], ..task.input.clone() }, ..task.clone() };
    let error = run(&short).unwrap_err();
    assert!(matches!(error, LupaError::BadInput(_)), "{error}");
    // Real-CUGAN's 4 SE blocks: 64, 128, 128 and 64 channels.
    let wrong_means = TileTask { context: vec![vec![0.1; 64]; 3], ..task.clone() };
    let error = run(&wrong_means).unwrap_err();
    assert!(error.to_string().contains("3 SE mean vectors for 4 SE blocks"), "{error}");
    let means = vec![vec![0.1; 64], vec![0.1; 128], vec![0.1; 128], vec![0.1; 32]];
    let error = run(&TileTask { context: means, ..task.clone() }).unwrap_err();
    assert!(error.to_string().contains("SE block 3 has 64 channels"), "{error}");
    let good = vec![vec![0.1; 64], vec![0.1; 128], vec![0.1; 128], vec![0.1; 64]];
    let out = run(&TileTask { context: good, ..task.clone() }).unwrap();
    assert_eq!((out.width, out.height, out.data.len()), (80, 80, 3 * 80 * 80));
    // SPAN uses no context.
    let span = load("span-x2", &Device::flex());
    let with_means = TileTask { model: span.spec.id.clone(), context: vec![vec![0.1; 64]], ..task };
    assert!(pollster::block_on(run_tile_task(&span, &with_means)).is_err());
}

/// span-x2 with every value of its last convolution (`upsampler`, weight and bias) set to `value`,
/// as a faulty GPU would compute it: NaN makes every output NaN; 0 makes it black.
fn span_x2_with_upsampler(value: f32) -> SrModel {
    let index = lupa_tests::index();
    let spec = index.get("span-x2").unwrap();
    let weights = std::fs::read(lupa_tests::root().join("models").join(&spec.weights.file)).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
    let data: Vec<Vec<u8>> = names
        .iter()
        .map(|name| {
            let t = tensors.tensor(name).unwrap();
            match name.strip_prefix("upsampler.") {
                Some(_) => {
                    let n = 8 * t.data().len() / t.dtype().bitsize();
                    match t.dtype() {
                        // Half precision: the two values this needs, by their bits.
                        safetensors::Dtype::F16 if value.is_nan() => 0x7E00_u16.to_le_bytes().repeat(n),
                        safetensors::Dtype::F16 if value == 0.0 => vec![0; 2 * n],
                        safetensors::Dtype::F32 => value.to_le_bytes().repeat(n),
                        other => panic!("upsampler tensor of type {other:?}"),
                    }
                }
                None => t.data().to_vec(),
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = names
        .iter()
        .zip(&data)
        .map(|(name, bytes)| {
            let t = tensors.tensor(name).unwrap();
            (
                name.clone(),
                safetensors::tensor::TensorView::new(t.dtype(), t.shape().to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    SrModel::load_unverified(spec, safetensors::serialize(views, None).unwrap(), &Device::flex()).unwrap()
}

/// Runs `image` with `model` in 32-pixel tiles with a CPU fallback that loads the sound span-x2;
/// returns the result and the last progress report.
fn run_with_fallback(
    model: &SrModel,
    image: &DynamicImage,
) -> (lupa_core::Result<DynamicImage>, Option<Progress>) {
    let options = UpscaleOptions { tile_size: 32, overlap: None, ensemble: false, engines: 1 };
    let mut fallback = CpuFallback::new(NoHelpers, |id: &str| {
        assert_eq!(id, "span-x2");
        Ok(load(id, &Device::flex()))
    });
    let mut last = None;
    let job = UpscaleJob::new(model, image, options).unwrap();
    let result = pollster::block_on(job.run_shared(&mut fallback, async |p: Progress| {
        last = Some(p);
        ControlFlow::Continue(())
    }));
    (result, last)
}

#[test]
fn tiles_that_come_out_nan_or_black_are_computed_again_on_the_cpu() {
    let image: DynamicImage = photo().to_rgb32f().into();
    let sound = load("span-x2", &Device::flex());
    let options = UpscaleOptions { tile_size: 32, overlap: None, ensemble: false, engines: 1 };
    let alone = UpscaleJob::new(&sound, &image, options).unwrap();
    let alone = pollster::block_on(alone.run(async |_| ControlFlow::Continue(()))).unwrap();
    for (what, faulty) in [("NaN", span_x2_with_upsampler(f32::NAN)), ("black", span_x2_with_upsampler(0.0))]
    {
        let (result, last) = run_with_fallback(&faulty, &image);
        let result = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(samples(&alone) == samples(&result), "{what}: the recomputed tiles differ from a sound run");
        assert_eq!(
            last,
            Some(Progress { tiles_done: 9, tiles_total: 9, recomputed: 9, engine_failed: false }),
            "{what}"
        );
    }
    // Without another engine the job stops, saying what came out, rather than paste it.
    let faulty = span_x2_with_upsampler(f32::NAN);
    let job = UpscaleJob::new(&faulty, &image, options).unwrap();
    let err = pollster::block_on(job.run(async |_| ControlFlow::Continue(()))).unwrap_err();
    assert!(
        err.to_string()
            .contains("tile 0 of the output came out with NaN or infinite values, and no other engine"),
        "{err}"
    );
}

#[test]
fn a_black_output_for_a_black_input_is_no_fault() {
    // The zeroed network's output for a black image is black, as it should be: the fallback (which
    // would load the sound model) is never asked.
    let black: DynamicImage = DynamicImage::new_rgb32f(40, 36);
    let faulty = span_x2_with_upsampler(0.0);
    let options = UpscaleOptions { tile_size: 32, overlap: None, ensemble: false, engines: 1 };
    let mut fallback = CpuFallback::new(NoHelpers, |id: &str| -> lupa_core::Result<SrModel> {
        panic!("{id}: a black tile of a black image was taken for a fault")
    });
    let job = UpscaleJob::new(&faulty, &black, options).unwrap();
    let out = pollster::block_on(job.run_shared(&mut fallback, async |_| ControlFlow::Continue(()))).unwrap();
    assert_eq!((out.width(), out.height()), (80, 72));
}

#[test]
fn a_helpers_nan_tiles_are_run_again_here() {
    // A helper engine that computes NaN (a faulty GPU in a pool): its tiles fail the check on the
    // way in and run on this engine; the result is a sound run's.
    let image: DynamicImage = photo().to_rgb32f().into();
    let model = load("span-x2", &Device::flex());
    let mut helper = Helper { model: span_x2_with_upsampler(f32::NAN), ..Helper::new("span-x2", 2, None) };
    let tiles = assert_shared_equals_alone(&model, &mut helper, &image, 32);
    assert!(helper.ran >= 2, "the helper ran {} of {tiles}", helper.ran);
}

#[test]
fn the_job_says_how_many_tiles_were_computed_again() {
    let faulty = span_x2_with_upsampler(f32::NAN);
    let png = std::fs::read(lupa_tests::fixture("images/chelsea_64x48.png")).unwrap();
    let request = lupa_core::JobRequest { model: Some("span-x2".into()), ..Default::default() };
    let job = lupa_core::Job::prepare(&lupa_tests::index(), &png, request).unwrap();
    let mut fallback = CpuFallback::new(NoHelpers, |id: &str| Ok(load(id, &Device::flex())));
    let done = pollster::block_on(job.run_shared(
        |_| Some(&faulty),
        &mut fallback,
        async |_| ControlFlow::Continue(()),
    ))
    .unwrap();
    assert!(
        done.explanation.ends_with(
            "1 of 1 tiles came out broken (NaN, infinite or black) and were computed again on the CPU."
        ),
        "{}",
        done.explanation
    );
    let back = lupa_core::image::load_from_memory(&done.bytes).unwrap();
    assert_eq!((back.width(), back.height()), (128, 96));
}

//! The upscale pipeline: decoded image in, upscaled image out, tile by tile.
//!
//! One async body serves every front end: the CLI drives it with `pollster::block_on`, the web
//! worker with `spawn_local`. Tensor reads are the asynchronous ones only, since a synchronous read
//! panics on WebGPU in the browser.
//!
//! What happens to each kind of input:
//! - **RGB** (8-bit, 16-bit or float): converted to `f32` in `[0, 1]` without loss, upscaled, and
//!   returned in the same colour type and bit depth.
//! - **Grayscale** (`L`, `LA`): replicated to RGB for the model, and the output converted back to
//!   one luma channel (the mean of R, G and B), same bit depth.
//! - **Alpha**: never shown to the model. Colour is upscaled by the model, alpha separately by
//!   bicubic (Catmull-Rom) interpolation, and the two recombined.

use std::ops::ControlFlow;

use burn::tensor::{Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Luma, Rgb32FImage};

use crate::error::{LupaError, Result};
use crate::model::SrModel;
use crate::tiling::{Tile, TileParams, TilePlan, plan_tiles};

/// How to run an upscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpscaleOptions {
    /// Largest tile core side in input pixels; 0 runs the whole image as one tile.
    pub tile_size: u32,
    /// Context around each tile in input pixels; `None` uses the model's default overlap.
    pub overlap: Option<u32>,
}

impl Default for UpscaleOptions {
    fn default() -> Self {
        Self { tile_size: 256, overlap: None }
    }
}

/// Progress report, sent before the first tile and after each tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Tiles finished.
    pub tiles_done: usize,
    /// Tiles in the plan.
    pub tiles_total: usize,
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
        },
    )
}

/// Upscales an RGB float image (values in `[0, 1]`) tile by tile.
///
/// `progress` is called before the first tile and after every tile; returning
/// `ControlFlow::Break(())` cancels.
///
/// # Shapes
/// `W × H` → `s·W × s·H`, `s` the model's scale. Output values are clamped to `[0, 1]`.
///
/// # Errors
/// [`LupaError::Cancelled`], [`LupaError::Backend`] when a readback fails, and the planner's errors.
pub async fn upscale_rgb(
    model: &SrModel,
    image: &Rgb32FImage,
    options: UpscaleOptions,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Rgb32FImage> {
    let plan = plan_for(model, image.width(), image.height(), options)?;
    let total = plan.tiles.len();
    let mut output = Rgb32FImage::new(plan.output_width(), plan.output_height());
    for (done, tile) in plan.tiles.iter().enumerate() {
        if progress(Progress { tiles_done: done, tiles_total: total }).is_break() {
            return Err(LupaError::Cancelled);
        }
        let upscaled = run_tile(model, image, tile).await?;
        paste_crop(&mut output, &upscaled, tile, plan.scale);
    }
    if progress(Progress { tiles_done: total, tiles_total: total }).is_break() {
        return Err(LupaError::Cancelled);
    }
    Ok(output)
}

/// Upscales any decoded image, keeping its colour type, bit depth and alpha (see the module docs).
///
/// # Errors
/// As [`upscale_rgb`].
pub async fn upscale_image(
    model: &SrModel,
    image: &DynamicImage,
    options: UpscaleOptions,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<DynamicImage> {
    let rgb = image.to_rgb32f();
    let upscaled = upscale_rgb(model, &rgb, options, progress).await?;
    let alpha = image.color().has_alpha().then(|| upscale_alpha(image, upscaled.width(), upscaled.height()));
    Ok(restore_color_type(image, upscaled, alpha))
}

/// Runs the model on one tile and returns the upscaled (padded) tile as `[3, H', W']` planar data.
async fn run_tile(model: &SrModel, image: &Rgb32FImage, tile: &Tile) -> Result<PlanarRgb> {
    let input = extract_padded(image, tile);
    let device = &model.device;
    let (w, h) = (input.width as usize, input.height as usize);
    let x = Tensor::<4>::from_data(TensorData::new(input.data, [1, 3, h, w]), device);
    let y = model.network.forward(x);
    let [_, _, out_h, out_w] = y.dims();
    let data = y
        .into_data_async()
        .await
        .map_err(|e| LupaError::Backend(format!("reading back a {out_w}×{out_h} tile failed: {e:?}")))?;
    let data = data
        .as_slice::<f32>()
        .map_err(|e| LupaError::Backend(format!("unexpected output data type: {e:?}")))?
        .to_vec();
    Ok(PlanarRgb { width: out_w as u32, height: out_h as u32, data })
}

/// Channel-planar RGB, `data[c·H·W + y·W + x]`.
struct PlanarRgb {
    width: u32,
    height: u32,
    data: Vec<f32>,
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

/// Writes the tile's crop of `upscaled` into `output` at the tile's output rectangle, clamped to
/// `[0, 1]`.
fn paste_crop(output: &mut Rgb32FImage, upscaled: &PlanarRgb, tile: &Tile, scale: u32) {
    debug_assert_eq!(upscaled.width, (tile.input.width + tile.pad_right) * scale);
    let plane = (upscaled.width * upscaled.height) as usize;
    let (c, o) = (tile.crop, tile.output);
    for y in 0..o.height {
        for x in 0..o.width {
            let i = ((c.y + y) * upscaled.width + c.x + x) as usize;
            let px = [0, 1, 2].map(|ch| upscaled.data[ch * plane + i].clamp(0.0, 1.0));
            output.put_pixel(o.x + x, o.y + y, image::Rgb(px));
        }
    }
}

/// The alpha channel upscaled to `width × height` with Catmull-Rom bicubic, clamped to `[0, 1]`.
fn upscale_alpha(image: &DynamicImage, width: u32, height: u32) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    let rgba = image.to_rgba32f();
    let alpha = ImageBuffer::from_fn(rgba.width(), rgba.height(), |x, y| Luma([rgba.get_pixel(x, y).0[3]]));
    let mut up = imageops::resize(&alpha, width, height, FilterType::CatmullRom);
    up.pixels_mut().for_each(|p| p.0[0] = p.0[0].clamp(0.0, 1.0));
    up
}

/// Converts the upscaled RGB (plus alpha) back to the colour type and bit depth of `original`.
fn restore_color_type(
    original: &DynamicImage,
    rgb: Rgb32FImage,
    alpha: Option<ImageBuffer<Luma<f32>, Vec<f32>>>,
) -> DynamicImage {
    use image::ColorType as C;
    let (w, h) = rgb.dimensions();
    let gray = original.color().channel_count() <= 2;
    let rgba = image::Rgba32FImage::from_fn(w, h, |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let a = alpha.as_ref().map_or(1.0, |a| a.get_pixel(x, y).0[0]);
        if gray {
            let l = (r + g + b) / 3.0;
            image::Rgba([l, l, l, a])
        } else {
            image::Rgba([r, g, b, a])
        }
    });
    let out = DynamicImage::ImageRgba32F(rgba);
    match original.color() {
        C::L8 => out.to_luma8().into(),
        C::La8 => out.to_luma_alpha8().into(),
        C::L16 => out.to_luma16().into(),
        C::La16 => out.to_luma_alpha16().into(),
        C::Rgb8 => out.to_rgb8().into(),
        C::Rgba8 => out.to_rgba8().into(),
        C::Rgb16 => out.to_rgb16().into(),
        C::Rgba16 => out.to_rgba16().into(),
        C::Rgb32F => out.to_rgb32f().into(),
        _ => out,
    }
}

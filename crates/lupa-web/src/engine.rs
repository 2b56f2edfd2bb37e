//! The browser engine's logic that does not touch JavaScript, so it is tested natively: the whole
//! file-in, PNG-out upscale ([`upscale_to_png`]) with input decoding, the output-size guard, tile
//! sizing and PNG encoding.

use std::ops::ControlFlow;

use image::DynamicImage;
use lupa_core::codec::{self, Decoded, OutputFormat};
use lupa_core::{ModelSpec, Progress, SrModel, TileLimits, UpscaleJob, UpscaleOptions};

/// Activation budget of one tile on WebGPU. Browsers do not say how much GPU memory is free, so
/// this stays well under what integrated GPUs and phones give a page.
pub const GPU_TILE_BUDGET: u64 = 256 << 20;
/// Activation budget of one tile on the wasm CPU backend, whose heap also holds the whole result.
pub const CPU_TILE_BUDGET: u64 = 128 << 20;
/// Largest automatic tile core side, in input pixels.
pub const MAX_TILE: u32 = 512;
/// Largest result the engine accepts, in bytes of decoded pixels. The wasm32 heap ends at 4 GiB and
/// must also hold the input, one tile and the encoded PNG; 1.5 GiB leaves room for them.
/// (16384 × 16384 RGB at 8 bits is 768 MiB.)
pub const MAX_OUTPUT_BYTES: u64 = 1536 << 20;

/// An upscaled image, encoded.
#[derive(Debug)]
pub struct Upscaled {
    /// The PNG file.
    pub png: Vec<u8>,
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Tiles run.
    pub tiles: usize,
    /// Tile core side used, in input pixels.
    pub tile_size: u32,
}

/// Decodes the image file `input`, upscales it with `model` in tiles of `tile_size` input pixels,
/// and encodes the result as PNG, never holding more than the input, one tile and the output.
///
/// `between_tiles` is awaited before each tile and after the last with the progress so far; it
/// can yield to an event loop, and returning `ControlFlow::Break(())` cancels.
///
/// # Errors
/// A sentence for the user: undecodable input, a result too large, `"cancelled"`, or a backend
/// failure.
pub async fn upscale_to_png(
    model: &SrModel,
    input: &[u8],
    tile_size: u32,
    between_tiles: impl AsyncFnMut(Progress) -> ControlFlow<()>,
) -> Result<Upscaled, String> {
    let Decoded { image, metadata, .. } = decode(input)?;
    check_output_size(&image, model.spec.scale)?;
    let options = UpscaleOptions { tile_size, overlap: None };
    let job = UpscaleJob::new(model, &image, options).map_err(|e| e.to_string())?;
    drop(image);
    let tiles = job.plan().tiles.len();
    // A cancelled run's error reads "cancelled", which the worker script recognises.
    let result = job.run(between_tiles).await.map_err(|e| e.to_string())?;
    let (width, height) = (result.width(), result.height());
    let png = codec::encode(result, OutputFormat::Png, &metadata).map_err(|e| e.to_string())?;
    Ok(Upscaled { png, width, height, tiles, tile_size })
}

/// Decodes an image file (PNG, JPEG, WebP or BMP) with the core's codec: upright (EXIF
/// orientation applied once), with its ICC profile and EXIF kept for the output.
///
/// # Errors
/// A sentence for the user when the bytes are not a supported, intact image.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    codec::decode(bytes).map_err(|e| e.to_string())
}

/// Checks that upscaling a `width × height` image of `image`'s colour type by `scale` fits the
/// engine's memory.
///
/// # Errors
/// A sentence giving the output size and the limit.
pub fn check_output_size(image: &DynamicImage, scale: u32) -> Result<(), String> {
    let (w, h) = (u64::from(image.width()) * u64::from(scale), u64::from(image.height()) * u64::from(scale));
    let bytes = w * h * u64::from(image.color().bytes_per_pixel());
    if bytes > MAX_OUTPUT_BYTES {
        return Err(format!(
            "the result would be {w}×{h} pixels ({} MiB), more than the {} MiB this browser engine can \
             hold; crop the image or use the `lupa` command-line tool",
            bytes >> 20,
            MAX_OUTPUT_BYTES >> 20
        ));
    }
    Ok(())
}

/// The tile side for `spec` on a device whose largest buffer is `max_buffer` (`None`: the CPU).
pub fn tile_size(spec: &ModelSpec, max_buffer: Option<u64>) -> u32 {
    let memory_budget = if max_buffer.is_some() { GPU_TILE_BUDGET } else { CPU_TILE_BUDGET };
    lupa_core::auto_tile_size(spec, TileLimits { memory_budget, max_buffer, max_side: MAX_TILE })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/images/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn spec(id: &str) -> ModelSpec {
        let path = format!("{}/../../models/index.json", env!("CARGO_MANIFEST_DIR"));
        let index = lupa_core::ModelIndex::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        index.get(id).unwrap().clone()
    }

    #[test]
    fn decodes_a_real_photo_and_rejects_other_bytes() {
        let image = decode(&fixture("chelsea_64x48.png")).unwrap().image;
        assert_eq!((image.width(), image.height()), (64, 48));
        assert!(decode(b"").unwrap_err().contains("empty"));
        let err = decode(b"not an image at all").unwrap_err();
        assert!(err.contains("cannot read this file as an image"), "{err}");
        let png = fixture("chelsea_64x48.png");
        assert!(decode(&png[..png.len() / 2]).is_err(), "a truncated PNG must not decode");
    }

    #[test]
    fn output_guard_accepts_16k_and_rejects_beyond_the_heap() {
        let rgb = DynamicImage::new_rgb8(4096, 4096);
        assert!(check_output_size(&rgb, 4).is_ok(), "16384² RGB8 is 768 MiB");
        let err = check_output_size(&rgb, 8).unwrap_err();
        assert!(err.contains("32768×32768"), "{err}");
        // 16-bit RGBA doubles and more: 4096² at 4x is 2 GiB.
        assert!(check_output_size(&DynamicImage::new_rgba16(4096, 4096), 4).is_err());
    }

    #[test]
    fn tiles_shrink_to_fit_a_small_device_buffer() {
        let span = spec("span-x4");
        // With WebGPU's default 128 MiB binding limit the memory budget decides; a device with
        // only 32 MiB buffers gets smaller tiles.
        let roomy = tile_size(&span, Some(128 << 20));
        let small = tile_size(&span, Some(32 << 20));
        assert!(small < roomy, "{small} !< {roomy}");
        // The largest buffer of a tile must fit the 32 MiB limit.
        let side = u64::from(small + 2 * span.input.default_overlap + span.input.multiple_of);
        assert!(side * side * span.architecture.largest_buffer_bytes_per_pixel() <= 32 << 20);
        // RRDB needs far more per pixel than SPAN.
        assert!(tile_size(&spec("realesrgan-x4plus"), Some(32 << 20)) < small);
        // The CPU has no buffer limit, only the smaller wasm memory budget.
        assert!(tile_size(&span, None) < roomy);
    }

    fn load(id: &str) -> SrModel {
        let spec = spec(id);
        let path = format!("{}/../../models/{}", env!("CARGO_MANIFEST_DIR"), spec.weights.file);
        SrModel::load(&spec, std::fs::read(path).unwrap(), &lupa_core::burn::tensor::Device::flex()).unwrap()
    }

    /// A strip of the real photo, tiled across: 4200×12 → 16800×48, wider than any browser canvas
    /// (Chrome stops at 16384), goes through the engine's own path to a valid PNG.
    #[test]
    fn output_wider_than_a_browser_canvas_encodes() {
        let photo = decode(&fixture("chelsea_64x48.png")).unwrap().image.to_rgb8();
        let strip = image::RgbImage::from_fn(4200, 12, |x, y| *photo.get_pixel(x % 64, 18 + y));
        let mut file = Vec::new();
        strip.write_to(&mut std::io::Cursor::new(&mut file), image::ImageFormat::Png).unwrap();

        let model = load("span-x4");
        let mut reports = Vec::new();
        let record = async |p: Progress| {
            reports.push(p.tiles_done);
            ControlFlow::Continue(())
        };
        let out = pollster::block_on(upscale_to_png(&model, &file, 512, record)).unwrap();
        assert_eq!((out.width, out.height), (16800, 48));
        assert_eq!(out.tiles, 9, "4200 px in tiles of at most 512");
        assert_eq!(reports, (0..=9).collect::<Vec<_>>(), "one report before each tile and one at the end");
        let back = image::load_from_memory(&out.png).unwrap();
        assert_eq!((back.width(), back.height()), (16800, 48));
        // Real content, not a blank: the upscale follows the strip (bicubic within a few levels).
        let bicubic = image::imageops::resize(&strip, 16800, 48, image::imageops::FilterType::CatmullRom);
        let psnr = lupa_core::metrics::psnr_y(&bicubic, &back.to_rgb8(), 0).unwrap();
        assert!(psnr > 25.0, "PSNR-Y against bicubic only {psnr:.1} dB");
    }

    #[test]
    fn cancel_between_tiles_stops_with_cancelled() {
        let model = load("span-x4");
        let file = fixture("chelsea_64x48.png");
        let stop_after_one = async |p: Progress| {
            if p.tiles_done >= 1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let err = pollster::block_on(upscale_to_png(&model, &file, 16, stop_after_one)).unwrap_err();
        assert_eq!(err, "cancelled");
        let err =
            pollster::block_on(upscale_to_png(&model, b"GIF89a", 16, async |_| ControlFlow::Continue(())))
                .unwrap_err();
        assert!(err.contains("cannot read this file as an image"), "{err}");
    }

    /// A camera JPEG stored sideways comes back upright, with its colour profile, as PNG.
    #[test]
    fn camera_jpeg_comes_back_upright_with_its_profile() {
        let model = load("span-x2");
        let file = fixture("chelsea_64x48_exif6_srgb.jpg");
        let out = pollster::block_on(upscale_to_png(&model, &file, 0, async |_| ControlFlow::Continue(())))
            .unwrap();
        let back = codec::decode(&out.png).unwrap();
        assert_eq!((back.image.width(), back.image.height()), (128, 96));
        assert_eq!(back.format, image::ImageFormat::Png);
        assert!(back.metadata.icc.is_some());
    }
}

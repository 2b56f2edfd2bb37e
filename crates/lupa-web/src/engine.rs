//! The browser engine's logic that does not touch JavaScript, so it is tested natively: one
//! file's job from bytes in to encoded bytes out ([`prepare`] then [`run`]), with decoding, crop,
//! Smart mode, the recipe (mode, scale or fit, denoise), the output-size guard, tile sizing and
//! encoding; and the zip of a batch ([`zip`]).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::rc::Rc;

use image::DynamicImage;
use lupa_core::codec::{self, Decoded, Metadata, OutputFormat};
use lupa_core::recipe::{self, Ask, Mode, Recipe, Target};
use lupa_core::{ModelIndex, ModelSpec, Pass, RecipeProgress, SrModel, TileLimits, UpscaleOptions};
use serde::{Deserialize, Serialize};

/// Activation budget of one tile on WebGPU. Browsers do not say how much GPU memory is free, so
/// this stays well under what integrated GPUs and phones give a page.
pub const GPU_TILE_BUDGET: u64 = 256 << 20;
/// Activation budget of one tile on the wasm CPU backend, whose heap also holds the whole result.
pub const CPU_TILE_BUDGET: u64 = 128 << 20;
/// Largest automatic tile core side, in input pixels.
pub const MAX_TILE: u32 = 512;
/// Largest image the engine makes, in bytes of decoded pixels (the result, or a pass before the
/// final resize). The wasm32 heap ends at 4 GiB and must also hold the input, one tile and the
/// encoded file; 1.5 GiB leaves room for them. (16384 × 16384 RGB at 8 bits is 768 MiB.)
pub const MAX_OUTPUT_BYTES: u64 = 1536 << 20;

/// What the page asks for one file (JSON, camelCase). Missing fields take the defaults: Precision
/// at 4x, no denoise, no crop, PNG.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct JobRequest {
    /// `smart` or a mode name (`precision`, `creative`, `maximum-detail`, `illustration`).
    pub mode: String,
    /// A model id that overrides the mode's choice.
    pub model: Option<String>,
    /// 2, 3, 4 or 8.
    pub scale: Option<u32>,
    /// Fit inside `[width, height]` instead of a scale.
    pub fit: Option<[u32; 2]>,
    /// 0 to 3.
    pub denoise: Option<u8>,
    /// `[x, y, width, height]` in input pixels, applied before anything else.
    pub crop: Option<[u32; 4]>,
    /// `png`, `jpeg`, `webp` or `avif`.
    pub format: String,
    /// JPEG and AVIF quality, 1 to 100.
    pub quality: Option<u8>,
}

/// What a job will do, for the page (JSON, camelCase).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobPlan {
    /// Models to load, in the order they run.
    pub models: Vec<String>,
    /// What runs and why (with Smart's reasoning first).
    pub explanation: String,
    /// Size after the crop.
    pub input: [u32; 2],
    /// Size of the result.
    pub output: [u32; 2],
    /// The mode that runs (Smart's choice, or the one asked for).
    pub mode: String,
    /// Smart's recognised content (`photo`, `illustration`, `text`); `None` outside Smart mode.
    pub content: Option<String>,
    /// File extension of the result.
    pub extension: String,
    /// Media type of the result.
    pub mime: String,
}

/// A decoded, cropped and planned file, ready to [`run`].
#[derive(Debug)]
pub struct Job {
    image: DynamicImage,
    metadata: Metadata,
    recipe: Recipe,
    format: OutputFormat,
    /// What it will do.
    pub plan: JobPlan,
}

/// A finished job.
#[derive(Debug)]
pub struct Encoded {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Tiles run, over all passes.
    pub tiles: usize,
}

/// Decodes `input`, crops it, resolves Smart mode, plans the recipe and checks that every image
/// it makes fits the engine's memory.
///
/// # Errors
/// A sentence for the user: undecodable input, a crop outside the image, an unknown mode, model,
/// format or scale, a box needing more than 8x, or a result too large.
pub fn prepare(index: &ModelIndex, input: &[u8], request: &JobRequest) -> Result<Job, String> {
    let text = |e: lupa_core::LupaError| e.to_string();
    let format = match request.format.as_str() {
        "" | "png" => OutputFormat::Png,
        "jpeg" | "jpg" => OutputFormat::from_extension("jpg", request.quality).map_err(text)?,
        "webp" => OutputFormat::WebP,
        "avif" => OutputFormat::from_extension("avif", request.quality).map_err(text)?,
        other => return Err(format!("cannot write `{other}` (choose png, jpeg, webp or avif)")),
    };
    let Decoded { mut image, metadata, format: source } = decode(input)?;
    if let Some([x, y, w, h]) = request.crop {
        image = recipe::crop(&image, x, y, w, h).map_err(text)?;
    }
    let target = match (request.fit, request.scale) {
        (Some([width, height]), _) => Some(Target::Fit { width, height }),
        (None, Some(s)) => Some(Target::Scale(s)),
        (None, None) => None,
    };
    let mode = match request.mode.as_str() {
        "smart" => None,
        "" => Some(Mode::Precision),
        name => Some(name.parse().map_err(text)?),
    };
    let ask = Ask { mode, model: request.model.as_deref(), target, denoise: request.denoise };
    let (recipe, smart) = recipe::plan_image(index, &ask, &image, Some(source)).map_err(text)?;
    check_sizes(&image, &recipe)?;

    let mut models: Vec<String> = Vec::new();
    for id in recipe.models() {
        if !models.iter().any(|m| m == id) {
            models.push(id.to_owned());
        }
    }
    let plan = JobPlan {
        models,
        explanation: recipe.explanation.clone(),
        input: [image.width(), image.height()],
        output: [recipe.output.0, recipe.output.1],
        mode: recipe.mode.name().to_owned(),
        content: smart.map(|c| c.content.name().to_owned()),
        extension: format.extension().to_owned(),
        mime: format.mime().to_owned(),
    };
    Ok(Job { image, metadata, recipe, format, plan })
}

/// Checks the size of every image the recipe makes (each model's output and the result).
fn check_sizes(image: &DynamicImage, recipe: &Recipe) -> Result<(), String> {
    let bytes_per_pixel = u64::from(image.color().bytes_per_pixel());
    for &(w, h) in recipe.sizes.iter().chain([&recipe.output]) {
        let bytes = u64::from(w) * u64::from(h) * bytes_per_pixel;
        if bytes > MAX_OUTPUT_BYTES {
            return Err(format!(
                "this needs a {w}×{h} image ({} MiB), more than the {} MiB this browser engine can hold; \
                 crop the image, choose a smaller scale, or use the `lupa` command-line tool",
                bytes >> 20,
                MAX_OUTPUT_BYTES >> 20
            ));
        }
    }
    Ok(())
}

/// Runs a prepared job with the loaded models (`model(id)`), tiles of `tile_for(spec)` input
/// pixels, and encodes the result once.
///
/// `between_tiles` is awaited before each tile and after each pass; it can yield to an event
/// loop, and returning `ControlFlow::Break(())` cancels.
///
/// # Errors
/// A sentence for the user: a model not loaded, `"cancelled"`, a backend or encoder failure.
pub async fn run(
    job: Job,
    model: impl Fn(&str) -> Option<Rc<SrModel>>,
    tile_for: impl Fn(&ModelSpec) -> u32,
    mut between_tiles: impl AsyncFnMut(RecipeProgress) -> ControlFlow<()>,
) -> Result<Encoded, String> {
    let Job { image, metadata, recipe, format, .. } = job;
    let loaded: Vec<Rc<SrModel>> = recipe
        .models()
        .map(|id| model(id).ok_or_else(|| format!("model {id} is not loaded")))
        .collect::<Result<_, _>>()?;
    let passes: Vec<Pass> = loaded
        .iter()
        .enumerate()
        .map(|(i, m)| Pass {
            model: m,
            options: UpscaleOptions { tile_size: tile_for(&m.spec), overlap: None },
            then_resize_to: recipe.resize_after(i),
        })
        .collect();
    let mut tiles_per_pass: Vec<usize> = vec![0; passes.len()];
    let count = async |p: RecipeProgress| {
        tiles_per_pass[p.pass] = p.tiles.tiles_total;
        between_tiles(p).await
    };
    // A cancelled run's error reads "cancelled", which the worker script recognises.
    let result =
        lupa_core::run_passes(&passes, image, recipe.resize_to, count).await.map_err(|e| e.to_string())?;
    let (width, height) = (result.width(), result.height());
    let bytes = codec::encode(result, format, &metadata).map_err(|e| e.to_string())?;
    Ok(Encoded { bytes, width, height, tiles: tiles_per_pass.iter().sum() })
}

/// Decodes an image file (PNG, JPEG, WebP or BMP) with the core's codec: upright (EXIF
/// orientation applied once), with its ICC profile and EXIF kept for the output.
///
/// # Errors
/// A sentence for the user when the bytes are not a supported, intact image.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    codec::decode(bytes).map_err(|e| e.to_string())
}

/// The tile side for `spec` on a device whose largest buffer is `max_buffer` (`None`: the CPU).
pub fn tile_size(spec: &ModelSpec, max_buffer: Option<u64>) -> u32 {
    let memory_budget = if max_buffer.is_some() { GPU_TILE_BUDGET } else { CPU_TILE_BUDGET };
    lupa_core::auto_tile_size(spec, TileLimits { memory_budget, max_buffer, max_side: MAX_TILE })
}

/// A zip archive of `files` (name, bytes), stored without compression (the images are
/// compressed already). Repeated names get ` (2)`, ` (3)`… before the extension.
///
/// # Errors
/// The zip writer's message.
pub fn zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut used = HashSet::new();
    for (name, bytes) in files {
        let (stem, ext) = name.rsplit_once('.').map_or((name.as_str(), ""), |(s, e)| (s, e));
        let mut unique = name.clone();
        for n in 2.. {
            if used.insert(unique.clone()) {
                break;
            }
            unique = if ext.is_empty() { format!("{stem} ({n})") } else { format!("{stem} ({n}).{ext}") };
        }
        writer.start_file(unique, options).map_err(|e| e.to_string())?;
        writer.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(writer.finish().map_err(|e| e.to_string())?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lupa_core::recipe::Request;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/images/{name}",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn index() -> ModelIndex {
        let path =
            format!("{}/../../models/index.json", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
        ModelIndex::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn spec(id: &str) -> ModelSpec {
        index().get(id).unwrap().clone()
    }

    fn request(json: &str) -> JobRequest {
        serde_json::from_str(json).unwrap()
    }

    /// Loads the models a plan needs, as the worker does, and runs the job.
    fn run_job(job: Job, tile: u32, mut progress: impl FnMut(RecipeProgress)) -> Result<Encoded, String> {
        let models: HashMap<String, Rc<SrModel>> = job
            .plan
            .models
            .iter()
            .map(|id| {
                let spec = spec(id);
                let path = format!(
                    "{}/../../models/{}",
                    std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"),
                    spec.weights.file
                );
                let device = lupa_core::burn::tensor::Device::flex();
                (id.clone(), Rc::new(SrModel::load(&spec, std::fs::read(path).unwrap(), &device).unwrap()))
            })
            .collect();
        let record = async |p: RecipeProgress| {
            progress(p);
            ControlFlow::Continue(())
        };
        pollster::block_on(run(job, |id| models.get(id).cloned(), |_| tile, record))
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
    fn size_guard_accepts_16k_and_rejects_beyond_the_heap() {
        let idx = index();
        let plan = |image: &DynamicImage, s| {
            let request =
                Request { mode: Mode::Precision, model: None, target: Target::Scale(s), denoise: 0 };
            recipe::plan(&idx, &request, image.width(), image.height()).unwrap()
        };
        let rgb = DynamicImage::new_rgb8(4096, 4096);
        assert!(check_sizes(&rgb, &plan(&rgb, 4)).is_ok(), "16384² RGB8 is 768 MiB");
        let err = check_sizes(&rgb, &plan(&rgb, 8)).unwrap_err();
        assert!(err.contains("32768×32768"), "{err}");
        // 16-bit RGBA doubles and more: 4096² at 4x is 2 GiB.
        let deep = DynamicImage::new_rgba16(4096, 4096);
        assert!(check_sizes(&deep, &plan(&deep, 4)).is_err());
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

    /// A strip of the real photo, tiled across: 4200×12 → 16800×48, wider than any browser canvas
    /// (Chrome stops at 16384), goes through the engine's own path to a valid PNG.
    #[test]
    fn output_wider_than_a_browser_canvas_encodes() {
        let photo = decode(&fixture("chelsea_64x48.png")).unwrap().image.to_rgb8();
        let strip = image::RgbImage::from_fn(4200, 12, |x, y| *photo.get_pixel(x % 64, 18 + y));
        let mut file = Vec::new();
        strip.write_to(&mut std::io::Cursor::new(&mut file), image::ImageFormat::Png).unwrap();

        let job = prepare(&index(), &file, &request(r#"{"mode": "precision", "scale": 4}"#)).unwrap();
        assert_eq!(job.plan.models, ["span-x4"]);
        let mut reports = Vec::new();
        let out = run_job(job, 512, |p: RecipeProgress| reports.push(p.tiles.tiles_done)).unwrap();
        assert_eq!((out.width, out.height), (16800, 48));
        assert_eq!(out.tiles, 9, "4200 px in tiles of at most 512");
        assert_eq!(reports, (0..=9).collect::<Vec<_>>(), "one report before each tile and one at the end");
        let back = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (16800, 48));
        // Real content, not a blank: the upscale follows the strip (bicubic within a few levels).
        let bicubic = image::imageops::resize(&strip, 16800, 48, image::imageops::FilterType::CatmullRom);
        let psnr = lupa_core::metrics::psnr_y(&bicubic, &back.to_rgb8(), 0).unwrap();
        assert!(psnr > 25.0, "PSNR-Y against bicubic only {psnr:.1} dB");
    }

    #[test]
    fn cancel_between_tiles_stops_with_cancelled() {
        let model = Rc::new({
            let spec = spec("span-x4");
            let path = format!(
                "{}/../../models/{}",
                std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"),
                spec.weights.file
            );
            SrModel::load(&spec, std::fs::read(path).unwrap(), &lupa_core::burn::tensor::Device::flex())
                .unwrap()
        });
        let job = prepare(&index(), &fixture("chelsea_64x48.png"), &JobRequest::default()).unwrap();
        let stop_after_one = async |p: RecipeProgress| {
            if p.tiles.tiles_done >= 1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let err = pollster::block_on(run(job, |_| Some(model.clone()), |_| 16, stop_after_one)).unwrap_err();
        assert_eq!(err, "cancelled");
        let err = prepare(&index(), b"GIF89a", &JobRequest::default()).unwrap_err();
        assert!(err.contains("cannot read this file as an image"), "{err}");
        // Nothing loaded: a clear error, not a panic.
        let job = prepare(&index(), &fixture("chelsea_64x48.png"), &JobRequest::default()).unwrap();
        let err =
            pollster::block_on(run(job, |_| None, |_| 0, async |_| ControlFlow::Continue(()))).unwrap_err();
        assert_eq!(err, "model span-x4 is not loaded");
    }

    /// A camera JPEG stored sideways comes back upright, with its colour profile, as PNG.
    #[test]
    fn camera_jpeg_comes_back_upright_with_its_profile() {
        let job =
            prepare(&index(), &fixture("chelsea_64x48_exif6_srgb.jpg"), &request(r#"{"scale": 2}"#)).unwrap();
        let out = run_job(job, 0, |_| ()).unwrap();
        let back = codec::decode(&out.bytes).unwrap();
        assert_eq!((back.image.width(), back.image.height()), (128, 96));
        assert_eq!(back.format, image::ImageFormat::Png);
        assert!(back.metadata.icc.is_some());
    }

    #[test]
    fn crop_fit_and_webp_in_one_job() {
        let req =
            request(r#"{"mode": "precision", "crop": [0, 6, 64, 36], "fit": [240, 135], "format": "webp"}"#);
        let job = prepare(&index(), &fixture("chelsea_64x48.png"), &req).unwrap();
        assert_eq!((job.plan.input, job.plan.output), ([64, 36], [240, 135]));
        assert_eq!((job.plan.extension.as_str(), job.plan.mime.as_str()), ("webp", "image/webp"));
        assert!(job.plan.explanation.contains("Lanczos3 down to 240×135"), "{}", job.plan.explanation);
        let out = run_job(job, 0, |_| ()).unwrap();
        let back = codec::decode(&out.bytes).unwrap();
        assert_eq!(
            (back.format, back.image.width(), back.image.height()),
            (image::ImageFormat::WebP, 240, 135)
        );
        // A crop outside the image is refused.
        let bad = request(r#"{"crop": [40, 0, 30, 10]}"#);
        let err = prepare(&index(), &fixture("chelsea_64x48.png"), &bad).unwrap_err();
        assert!(err.contains("does not fit in the 64×48 image"), "{err}");
    }

    #[test]
    fn smart_plans_an_illustration_and_transparency_survives() {
        let job =
            prepare(&index(), &fixture("cartoon_kodim_128.png"), &request(r#"{"mode": "smart"}"#)).unwrap();
        assert_eq!(job.plan.content.as_deref(), Some("illustration"));
        assert_eq!(job.plan.mode, "illustration");
        assert_eq!(job.plan.models, ["realcugan-se-x4-no-denoise"]);
        assert!(job.plan.explanation.starts_with("Looks like an illustration"), "{}", job.plan.explanation);

        // A transparent border around the cartoon, upscaled 2x with Real-CUGAN and denoise.
        let cartoon = decode(&fixture("cartoon_32x40.png")).unwrap().image.to_rgba8();
        let framed = image::RgbaImage::from_fn(48, 56, |x, y| {
            if (8..40).contains(&x) && (8..48).contains(&y) {
                *cartoon.get_pixel(x - 8, y - 8)
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let mut file = Vec::new();
        framed.write_to(&mut std::io::Cursor::new(&mut file), image::ImageFormat::Png).unwrap();
        let req = request(r#"{"mode": "illustration", "scale": 2, "denoise": 3}"#);
        let job = prepare(&index(), &file, &req).unwrap();
        assert_eq!(job.plan.models, ["realcugan-se-x2-denoise3x"]);
        let out = run_job(job, 0, |_| ()).unwrap();
        let back = image::load_from_memory(&out.bytes).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (96, 112));
        assert_eq!(back.get_pixel(2, 2).0[3], 0, "transparent corner stays transparent");
        assert_eq!(back.get_pixel(48, 56).0[3], 255, "opaque centre stays opaque");
    }

    #[test]
    fn avif_output_and_bad_formats() {
        let req = request(r#"{"scale": 2, "format": "avif", "quality": 70}"#);
        let job = prepare(&index(), &fixture("chelsea_64x48.png"), &req).unwrap();
        assert_eq!(job.plan.mime, "image/avif");
        let out = run_job(job, 0, |_| ()).unwrap();
        assert_eq!(&out.bytes[4..12], b"ftypavif");
        assert_eq!((out.width, out.height), (128, 96));
        let err =
            prepare(&index(), &fixture("chelsea_64x48.png"), &request(r#"{"format": "gif"}"#)).unwrap_err();
        assert!(err.contains("cannot write `gif`"), "{err}");
        assert!(serde_json::from_str::<JobRequest>(r#"{"scael": 2}"#).is_err(), "typos are refused");
    }

    #[test]
    fn zip_holds_every_file_under_a_unique_name() {
        let files = vec![
            ("a.png".to_owned(), vec![1, 2, 3]),
            ("a.png".to_owned(), vec![4, 5]),
            ("b.webp".to_owned(), vec![6]),
        ];
        let bytes = zip(&files).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        names.sort();
        assert_eq!(names, ["a (2).png", "a.png", "b.webp"]);
        let mut second = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("a (2).png").unwrap(), &mut second).unwrap();
        assert_eq!(second, [4, 5]);
    }
}

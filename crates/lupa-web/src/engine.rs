//! The browser engine's side of the protocol that does not touch JavaScript, so it is tested
//! natively: the page's job request (JSON) with this engine's limits, and the zip of a batch. The
//! job itself is [`lupa_core::Job`]'s.

use std::collections::HashSet;

use lupa_core::{Job, JobRequest, Limits, LupaError, ModelIndex, TileLimits};

/// Activation budget of one tile on WebGPU. Browsers do not say how much GPU memory is free, so
/// this stays well under what integrated GPUs and phones give a page.
pub const GPU_TILE_BUDGET: u64 = 256 << 20;
/// Activation budget of one tile on the wasm CPU backend, whose heap also holds the whole result,
/// in the registry's estimate ([`lupa_core::ModelSpec::memory_bytes_per_pixel`]: 1.25 × the
/// measured peak), so a tile takes at most about 155 MiB. Measured (`lupa-bench memory`,
/// docs/MEMORY.md) that is for SPAN x4 tiles of 245² (core 213 px), SRVGGNetCompact 443² (core
/// 379: the overlap of 32 px costs little), Real-CUGAN 2x 189² (core 141).
pub const CPU_TILE_BUDGET: u64 = 192 << 20;
/// Largest automatic tile core side, in input pixels.
pub const MAX_TILE: u32 = 512;
/// Largest image the engine makes, in bytes of decoded pixels (the result, or a pass before the
/// final resize). The wasm32 heap ends at 4 GiB and must also hold the input, one tile and the
/// encoded file; 1.5 GiB leaves room for them. (16384 × 16384 RGB at 8 bits is 768 MiB.)
pub const MAX_OUTPUT_BYTES: u64 = 1536 << 20;
/// Memory a job's images may take at their peak ([`lupa_core::job::peak_memory`]): 3 GiB of the
/// 4 GiB wasm32 heap, which also holds the engine, the weights and the input file.
pub const MAX_JOB_MEMORY: u64 = 3 << 30;

/// This engine's limits on a device whose largest buffer is `max_buffer` (`None`: the CPU), with
/// tiles of `tile` input pixels when it is above 0, else sized automatically and, for `engines`
/// sharing the job (this one and the pool's helpers), cut finer where they are fewer than the
/// engines, into at most one per engine ([`TileLimits::engines`]).
pub fn limits(max_buffer: Option<u64>, tile: u32, engines: u32) -> Limits {
    let memory_budget = if max_buffer.is_some() { GPU_TILE_BUDGET } else { CPU_TILE_BUDGET };
    Limits {
        max_image_bytes: Some(MAX_OUTPUT_BYTES),
        limit_of: "this browser engine can hold (the `lupa` command-line tool has no such limit)",
        max_memory: Some(MAX_JOB_MEMORY),
        tile_size: (tile > 0).then_some(tile),
        overlap: None,
        tiles: TileLimits { memory_budget, max_buffer, max_side: MAX_TILE, engines },
        // The pool's helpers (web/pool.js) run their tiles in heaps of their own.
        tiles_at_once: 1,
    }
}

/// The page's job `request_json` (see [`JobRequest`]) on the image file `input`, decoded and
/// planned under this engine's [`limits`] for a device whose largest buffer is `max_buffer`
/// (`None`: the CPU), with tiles of `tile` input pixels (0: sized automatically) for `engines`.
/// What `plan_job` and `run_job` start with.
///
/// # Errors
/// [`LupaError::BadInput`] naming what the JSON gets wrong, and those of [`Job::prepare`].
pub fn prepare(
    index: &ModelIndex,
    input: &[u8],
    request_json: &str,
    max_buffer: Option<u64>,
    tile: u32,
    engines: u32,
) -> Result<Job, LupaError> {
    let request: JobRequest = serde_json::from_str(request_json)
        .map_err(|e| LupaError::BadInput(format!("bad job request: {e}")))?;
    Job::prepare(index, input, JobRequest { limits: limits(max_buffer, tile, engines), ..request })
}

/// A zip archive of `files` (name, bytes), stored without compression (the images are
/// compressed already). Repeated names get ` (2)`, ` (3)`… before the extension.
///
/// # Errors
/// [`LupaError::Encode`] with the zip writer's message.
pub fn zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, LupaError> {
    use std::io::Write;
    let failed = |e: &dyn std::fmt::Display| LupaError::Encode { format: "zip", reason: e.to_string() };
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
        writer.start_file(unique, options).map_err(|e| failed(&e))?;
        writer.write_all(bytes).map_err(|e| failed(&e))?;
    }
    Ok(writer.finish().map_err(|e| failed(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::ControlFlow;
    use std::rc::Rc;

    use image::DynamicImage;
    use lupa_core::codec;
    use lupa_core::{Encoded, ErrorKind, ModelSpec, RecipeProgress, SrModel};

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

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut file = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut file), image::ImageFormat::Png).unwrap();
        file
    }

    /// What `plan_job` and `run_job` do first, on the CPU engine.
    fn prepare(file: &[u8], json: &str, tile: u32) -> Result<Job, LupaError> {
        super::prepare(&index(), file, json, None, tile, 1)
    }

    fn load(id: &str) -> Rc<SrModel> {
        let spec = spec(id);
        let path = format!(
            "{}/../../models/{}",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"),
            spec.weights.file
        );
        let device = lupa_core::burn::tensor::Device::flex();
        Rc::new(SrModel::load(&spec, std::fs::read(path).unwrap(), &device).unwrap())
    }

    /// Loads the models a plan needs, as the worker does, and runs the job.
    fn run_job(job: Job, mut progress: impl FnMut(RecipeProgress)) -> Result<Encoded, LupaError> {
        let models: HashMap<String, Rc<SrModel>> =
            job.plan.models.iter().map(|id| (id.clone(), load(id))).collect();
        let record = async |p: RecipeProgress| {
            progress(p);
            ControlFlow::Continue(())
        };
        pollster::block_on(job.run(|id| models.get(id).cloned(), record))
    }

    #[test]
    fn undecodable_files_and_bad_requests_are_bad_input() {
        for bytes in [&b""[..], b"not an image at all", b"GIF89a"] {
            let err = prepare(bytes, "{}", 0).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadInput);
            assert!(err.to_string().contains("cannot read this file as an image"), "{err}");
        }
        let png = fixture("chelsea_64x48.png");
        assert!(prepare(&png[..png.len() / 2], "{}", 0).is_err(), "a truncated PNG must not decode");
        let err = prepare(&png, r#"{"scael": 2}"#, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert!(err.to_string().starts_with("bad job request:"), "{err}");
    }

    #[test]
    fn size_guard_accepts_16k_and_rejects_beyond_the_heap() {
        let rgb = png(&DynamicImage::new_rgb8(4096, 4096));
        assert!(prepare(&rgb, r#"{"scale": 4}"#, 0).is_ok(), "16384² RGB8 is 768 MiB");
        let err = prepare(&rgb, r#"{"scale": 8}"#, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(err.to_string().contains("32768×32768 image needs 3072 MiB"), "{err}");
        // 4096² at 3x: Lanczos3 from 16384² down to 12288² needs a 3 GiB f32 intermediate, over
        // the heap with the images; the job is refused before it starts, naming 2x.
        let err = prepare(&rgb, r#"{"scale": 3}"#, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(err.to_string().contains("2x fits"), "{err}");
        // 16-bit RGBA doubles and more: 4096² at 4x is 2 GiB.
        let deep = png(&DynamicImage::new_rgba16(4096, 4096));
        assert_eq!(prepare(&deep, r#"{"scale": 4}"#, 0).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn tiles_shrink_to_fit_a_small_device_buffer() {
        let span = spec("span-x4");
        let tile = |max_buffer| lupa_core::auto_tile_size(&span, limits(max_buffer, 0, 1).tiles);
        // With WebGPU's default 128 MiB binding limit the memory budget decides; a device with
        // only 32 MiB buffers gets smaller tiles.
        let roomy = tile(Some(128 << 20));
        let small = tile(Some(32 << 20));
        assert!(small < roomy, "{small} !< {roomy}");
        // The largest buffer of a tile must fit the 32 MiB limit.
        let side = u64::from(small + 2 * span.input.default_overlap + span.input.multiple_of);
        assert!(side * side * span.architecture.largest_buffer_bytes_per_pixel() <= 32 << 20);
        // RRDB needs far more per pixel than SPAN.
        let rrdb = spec("realesrgan-x4plus");
        assert!(lupa_core::auto_tile_size(&rrdb, limits(Some(32 << 20), 0, 1).tiles) < small);
        // The CPU has no buffer limit, only the wasm memory budget.
        let overlap = span.input.default_overlap;
        let by_budget = lupa_core::tiling::tile_size_for_budget(
            span.memory_bytes_per_pixel,
            CPU_TILE_BUDGET,
            overlap,
            MAX_TILE,
        );
        assert_eq!(tile(None), by_budget);
        // A forced tile side wins.
        assert_eq!(limits(None, 16, 1).tile_size, Some(16));
    }

    /// A strip of the real photo, tiled across: 4200×12 → 16800×48, wider than any browser canvas
    /// (Chrome stops at 16384), goes through the engine's own path to a valid PNG.
    #[test]
    fn output_wider_than_a_browser_canvas_encodes() {
        let photo = codec::decode(&fixture("chelsea_64x48.png")).unwrap().image.to_rgb8();
        let strip = image::RgbImage::from_fn(4200, 12, |x, y| *photo.get_pixel(x % 64, 18 + y));
        let file = png(&strip.clone().into());

        let job = prepare(&file, r#"{"mode": "precision", "scale": 4}"#, 512).unwrap();
        assert_eq!(job.plan.models, ["span-x4"]);
        let mut reports = Vec::new();
        let out = run_job(job, |p: RecipeProgress| reports.push(p.tiles.tiles_done)).unwrap();
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

    /// The pool's engines: an image of one automatic tile is cut in two for two engines, so that
    /// each runs one; the result equals one engine's to rounding (tiled equals untiled). A tile
    /// size asked for stays as asked.
    #[test]
    fn two_engines_get_a_tile_each() {
        let file = fixture("chelsea_64x48.png");
        let run = |tile, engines| {
            let job =
                super::prepare(&index(), &file, r#"{"model": "span-x2"}"#, None, tile, engines).unwrap();
            let out = run_job(job, |_| ()).unwrap();
            (out.tiles, codec::decode(&out.bytes).unwrap().image.to_rgb8())
        };
        let ((one_tiles, one), (two_tiles, two)) = (run(0, 1), run(0, 2));
        assert_eq!((one_tiles, two_tiles), (1, 2));
        let psnr = lupa_core::metrics::psnr_y(&one, &two, 0).unwrap();
        assert!(psnr > 50.0, "two tiles against one: PSNR-Y {psnr:.1} dB");
        assert_eq!(run(16, 2).0, 12, "a fixed 16-px tile: 4×3 tiles whatever the engines");
    }

    #[test]
    fn cancel_between_tiles_is_the_cancelled_kind() {
        let model = load("span-x4");
        let job = prepare(&fixture("chelsea_64x48.png"), "{}", 16).unwrap();
        let stop_after_one = async |p: RecipeProgress| {
            if p.tiles.tiles_done >= 1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let err = pollster::block_on(job.run(|_| Some(model.clone()), stop_after_one)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        // Nothing loaded: a clear error of the weights kind, not a panic.
        let job = prepare(&fixture("chelsea_64x48.png"), "{}", 0).unwrap();
        let err = pollster::block_on(job.run(|_| None::<Rc<SrModel>>, async |_| ControlFlow::Continue(())))
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string().as_str()),
            (ErrorKind::Weights, "model span-x4 is not loaded")
        );
    }

    /// A camera JPEG stored sideways comes back upright, with its colour profile, as PNG.
    #[test]
    fn camera_jpeg_comes_back_upright_with_its_profile() {
        let job = prepare(&fixture("chelsea_64x48_exif6_srgb.jpg"), r#"{"scale": 2}"#, 0).unwrap();
        let out = run_job(job, |_| ()).unwrap();
        let back = codec::decode(&out.bytes).unwrap();
        assert_eq!((back.image.width(), back.image.height()), (128, 96));
        assert_eq!(back.format, image::ImageFormat::Png);
        assert!(back.metadata.icc.is_some());
    }

    #[test]
    fn crop_fit_and_webp_in_one_job() {
        let req = r#"{"mode": "precision", "crop": [0, 6, 64, 36], "fit": [240, 135], "format": "webp"}"#;
        let job = prepare(&fixture("chelsea_64x48.png"), req, 0).unwrap();
        assert_eq!((job.plan.input, job.plan.output), ([64, 36], [240, 135]));
        assert_eq!((job.plan.extension.as_str(), job.plan.mime.as_str()), ("webp", "image/webp"));
        assert!(job.plan.explanation.contains("Lanczos3 down to 240×135"), "{}", job.plan.explanation);
        let out = run_job(job, |_| ()).unwrap();
        let back = codec::decode(&out.bytes).unwrap();
        assert_eq!(
            (back.format, back.image.width(), back.image.height()),
            (image::ImageFormat::WebP, 240, 135)
        );
        // A crop outside the image is refused.
        let err = prepare(&fixture("chelsea_64x48.png"), r#"{"crop": [40, 0, 30, 10]}"#, 0).unwrap_err();
        assert!(err.to_string().contains("does not fit in the 64×48 image"), "{err}");
    }

    #[test]
    fn smart_plans_an_illustration_and_transparency_survives() {
        let job = prepare(&fixture("cartoon_kodim_128.png"), r#"{"mode": "smart"}"#, 0).unwrap();
        assert_eq!(job.plan.content.as_deref(), Some("illustration"));
        assert_eq!(job.plan.mode, "illustration");
        assert_eq!(job.plan.models, ["realcugan-se-x4-no-denoise"]);
        assert!(job.plan.explanation.starts_with("Looks like an illustration"), "{}", job.plan.explanation);

        // A transparent border around the cartoon, upscaled 2x with Real-CUGAN and denoise.
        let cartoon = codec::decode(&fixture("cartoon_32x40.png")).unwrap().image.to_rgba8();
        let framed = image::RgbaImage::from_fn(48, 56, |x, y| {
            if (8..40).contains(&x) && (8..48).contains(&y) {
                *cartoon.get_pixel(x - 8, y - 8)
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let job = prepare(&png(&framed.into()), r#"{"mode": "illustration", "scale": 2, "denoise": 3}"#, 0)
            .unwrap();
        assert_eq!(job.plan.models, ["realcugan-se-x2-denoise3x"]);
        let out = run_job(job, |_| ()).unwrap();
        let back = image::load_from_memory(&out.bytes).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (96, 112));
        assert_eq!(back.get_pixel(2, 2).0[3], 0, "transparent corner stays transparent");
        assert_eq!(back.get_pixel(48, 56).0[3], 255, "opaque centre stays opaque");
    }

    #[test]
    fn avif_output_and_bad_formats() {
        let job =
            prepare(&fixture("chelsea_64x48.png"), r#"{"scale": 2, "format": "avif", "quality": 70}"#, 0)
                .unwrap();
        assert_eq!(job.plan.mime, "image/avif");
        let out = run_job(job, |_| ()).unwrap();
        assert_eq!(&out.bytes[4..12], b"ftypavif");
        assert_eq!((out.width, out.height), (128, 96));
        let err = prepare(&fixture("chelsea_64x48.png"), r#"{"format": "gif"}"#, 0).unwrap_err();
        assert!(err.to_string().contains("cannot write `.gif`"), "{err}");
    }

    /// The hostile-input corpus through the browser engine's own path (`plan_job`'s): each file
    /// is planned or refused with the kind `tests/fixtures/hostile/expected.csv` gives it.
    #[test]
    fn the_hostile_corpus_gets_the_documented_kinds() {
        let dir = format!(
            "{}/../../tests/fixtures/hostile",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        );
        let expected = std::fs::read_to_string(format!("{dir}/expected.csv")).unwrap();
        for line in expected.lines().skip(1) {
            let fields: Vec<&str> = line.splitn(4, ',').collect();
            let (file, result, check) = (fields[0], fields[1], fields[2]);
            let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
            match prepare(&bytes, r#"{"scale": 2}"#, 0) {
                Ok(job) => {
                    assert_eq!(result, "ok", "{file} was planned");
                    assert_eq!(format!("{}x{}", job.plan.output[0], job.plan.output[1]), check, "{file}");
                }
                Err(e) => {
                    assert_eq!(e.kind().name(), result, "{file}: {e}");
                    assert!(e.to_string().contains(check), "{file}: `{check}` not in {e}");
                }
            }
        }
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

//! The `lupa` binary end to end: outputs, the registry listing, and clear failures that leave
//! nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../../tests/fixtures/images")
        .join(name)
}

fn lupa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lupa"))
        .args(args)
        .env(
            "LUPA_MODELS",
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../../models"),
        )
        .output()
        .expect("run lupa")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files in `dir`, hidden ones included (a leftover temporary file would show here).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `lupa`, asserts success, and returns its stderr.
fn run_ok(args: &[&str]) -> String {
    let run = lupa(args);
    assert!(run.status.success(), "{args:?} failed:\n{}", stderr(&run));
    stderr(&run)
}

/// The arguments of `lupa upscale INPUT -o OUTPUT ARGS... --backend cpu -q`.
fn upscale_args<'a>(input: &'a Path, output: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["upscale", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend(["--backend", "cpu", "-q"]);
    all
}

/// `lupa upscale INPUT -o OUTPUT ARGS... --backend cpu -q`, asserting success; returns stderr.
fn upscale_ok(input: &Path, output: &Path, args: &[&str]) -> String {
    run_ok(&upscale_args(input, output, args))
}

/// The same, asserting it fails with `message` and leaves nothing beside `output` (see
/// [`assert_fails`]).
fn upscale_fails(input: &Path, output: &Path, args: &[&str], message: &str) {
    assert_fails(&upscale_args(input, output, args), output.parent().unwrap(), message);
}

#[test]
fn upscales_a_photo_4x_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face.png");
    let input = fixture("astronaut_face_40x32.png");
    let log =
        run_ok(&["upscale", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--backend", "cpu", "-q"]);
    let result = image::open(&out).unwrap();
    assert_eq!((result.width(), result.height()), (160, 128));
    assert!(log.contains("span-x4"), "default model for 4x is SPAN: {log}");
    assert_eq!(entries(dir.path()), vec!["face.png"]);
}

#[test]
fn tiles_side_by_side_give_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_face_40x32.png");
    let file = |n: &str| {
        let out = dir.path().join(format!("face-{n}.png"));
        upscale_ok(&input, &out, &["--tile", "12", "--parallel-tiles", n]);
        std::fs::read(out).unwrap()
    };
    let one = file("1");
    assert!(one == file("3"), "3 tiles at once changed the result");
    let out = dir.path().join("face-0.png");
    upscale_fails(&input, &out, &["--parallel-tiles", "0"], "--parallel-tiles");
}

#[test]
fn scale_two_picks_span_x2_and_jpeg_output_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face.jpg");
    let input = fixture("astronaut_face_40x32.png");
    let log = run_ok(&[
        "upscale",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scale",
        "2",
        "--backend",
        "cpu",
        "--tile",
        "16",
    ]);
    assert!(log.contains("span-x2"), "{log}");
    let result = image::open(&out).unwrap();
    assert_eq!((result.width(), result.height()), (80, 64));
}

#[test]
fn models_lists_the_registry() {
    let run = lupa(&["models"]);
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    for id in ["span-x2", "span-x4", "realesr-general-x4v3", "realesr-animevideov3", "realesrgan-x4plus"] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("Apache-2.0") && text.contains("BSD-3-Clause"));
}

/// Runs an upscale expected to fail and checks the message and that `dir` stays empty.
fn assert_fails(args: &[&str], dir: &Path, message: &str) {
    let run = lupa(args);
    assert!(!run.status.success(), "should fail: {args:?}");
    let err = stderr(&run);
    assert!(err.contains(message), "expected `{message}` in:\n{err}");
    assert!(
        entries(dir).iter().all(|n| !n.starts_with(".lupa-") && n != "out.png"),
        "left behind: {:?}",
        entries(dir)
    );
}

#[test]
fn clear_errors_and_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let out = out.to_str().unwrap();
    let good = fixture("astronaut_face_40x32.png");
    let good = good.to_str().unwrap();

    assert_fails(&["upscale", good, "-o", out, "--model", "nope"], dir.path(), "unknown model `nope`");
    assert_fails(
        &["upscale", good, "-o", out, "--model", "span-x2", "--scale", "4", "--backend", "cpu"],
        dir.path(),
        "span-x2 cannot reach 4.0x",
    );
    assert_fails(&["upscale", good, "-o", out, "--mode", "fast"], dir.path(), "unknown mode `fast`");
    assert_fails(
        &["upscale", good, "-o", out, "--crop", "30,0,20,20", "--backend", "cpu"],
        dir.path(),
        "does not fit in the 40×32 image",
    );
    assert_fails(
        &["upscale", good, "-o", out, "--quality", "80"],
        dir.path(),
        "quality only applies to JPEG",
    );
    assert_fails(&["upscale", good, "-o", out, "--scale", "5"], dir.path(), "scale 5x is not supported");
    let missing = dir.path().join("missing.png");
    assert_fails(&["upscale", missing.to_str().unwrap(), "-o", out], dir.path(), "does not exist");
    assert_fails(
        &["upscale", good, "-o", dir.path().join("out.xyz").to_str().unwrap()],
        dir.path(),
        "cannot write `.xyz` files",
    );

    // A corrupt file: a real PNG cut in half.
    let bytes = std::fs::read(good).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &["upscale", corrupt.to_str().unwrap(), "-o", out, "--backend", "cpu"],
        dir.path(),
        "cannot decode",
    );
    // Not an image at all.
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "hello").unwrap();
    assert_fails(
        &["upscale", text.to_str().unwrap(), "-o", out, "--backend", "cpu"],
        dir.path(),
        "cannot decode",
    );
}

#[test]
fn batch_writes_the_good_files_and_reports_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("broken.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out_dir = dir.path().join("out");
    let a = fixture("astronaut_face_40x32.png");
    let b = fixture("cartoon_32x40.png");
    let run = lupa(&[
        "upscale",
        a.to_str().unwrap(),
        corrupt.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--scale",
        "2",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("1 of 3 files failed"), "{}", stderr(&run));
    assert_eq!(entries(&out_dir), vec!["astronaut_face_40x32_x2.png", "cartoon_32x40_x2.png"]);
}

#[test]
fn every_mode_at_every_scale_gives_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_face_40x32.png");
    for (mode, scale, expect) in [
        ("precision", "2", "span-x2"),
        ("precision", "3", "span-x4 on 40×32, then Lanczos3 down"),
        ("precision", "8", "span-x4, then span-x2"),
        ("creative", "2", "realesr-general-x4v3 on 40×32, then Lanczos3 down"),
        ("creative", "3", "realesr-general-x4v3 on 40×32, then Lanczos3 down"),
        ("creative", "4", "realesr-general-x4v3 on"),
        ("creative", "8", "realesr-general-x4v3, then span-x2"),
        ("illustration", "2", "realcugan-se-x2-no-denoise on 40×32"),
        ("illustration", "3", "realcugan-se-x3-no-denoise on 40×32"),
        ("illustration", "4", "realcugan-se-x4-no-denoise on 40×32"),
        ("illustration", "8", "realcugan-se-x4-no-denoise, then realcugan-se-x2-no-denoise"),
    ] {
        let out = dir.path().join(format!("{mode}-{scale}.png"));
        let log = upscale_ok(&input, &out, &["--mode", mode, "--scale", scale]);
        assert!(log.contains(expect), "{mode} {scale}x: expected `{expect}` in {log}");
        let s: u32 = scale.parse().unwrap();
        let result = image::open(&out).unwrap();
        assert_eq!((result.width(), result.height()), (40 * s, 32 * s), "{mode} {scale}x");
    }
}

#[test]
fn crop_fit_and_webp_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.webp");
    let input = fixture("astronaut_128.png");
    // 128×72 crop into 960×540: 7.5x, so 8x (two passes), then down to exactly 960×540.
    let log = run_ok(&[
        "upscale",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--crop",
        "0,28,128,72",
        "--fit",
        "960x540",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert!(log.contains("Lanczos3 down to 960×540"), "{log}");
    let result = image::open(&out).unwrap();
    assert_eq!((result.width(), result.height()), (960, 540));
    // The crop is the right region: the result, shrunk back, matches the cropped source.
    let source = image::open(&input).unwrap().crop_imm(0, 28, 128, 72).to_rgb8();
    let back = image::imageops::resize(&result.to_rgb8(), 128, 72, image::imageops::FilterType::Triangle);
    let psnr = lupa_core::metrics::psnr_y(&source, &back, 0).unwrap();
    assert!(psnr > 28.0, "the crop came from elsewhere: {psnr:.1} dB");
}

/// `.webp` with `--quality` is lossy WebP (libwebp): a VP8 file, smaller than the lossless one
/// and close to it.
#[test]
fn webp_with_a_quality_is_lossy() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_128.png");
    let lossless = dir.path().join("lossless.webp");
    let lossy = dir.path().join("lossy.webp");
    upscale_ok(&input, &lossless, &["--scale", "2"]);
    upscale_ok(&input, &lossy, &["--scale", "2", "--quality", "80"]);
    let (lossless_bytes, lossy_bytes) = (std::fs::read(&lossless).unwrap(), std::fs::read(&lossy).unwrap());
    // The bitstream's chunk, after a `VP8X` header where there is metadata.
    let has = |bytes: &[u8], chunk: &[u8]| bytes.windows(4).any(|w| w == chunk);
    assert!(has(&lossless_bytes, b"VP8L") && !has(&lossless_bytes, b"VP8 "));
    assert!(has(&lossy_bytes, b"VP8 ") && !has(&lossy_bytes, b"VP8L"));
    assert!(
        lossy_bytes.len() * 2 < lossless_bytes.len(),
        "{} vs {} bytes",
        lossy_bytes.len(),
        lossless_bytes.len()
    );
    let (a, b) = (image::open(&lossless).unwrap().to_rgb8(), image::open(&lossy).unwrap().to_rgb8());
    assert_eq!(b.dimensions(), (256, 256));
    let psnr = lupa_core::metrics::psnr_y(&a, &b, 0).unwrap();
    assert!(psnr > 30.0, "lossy WebP at 80 against the lossless result: {psnr:.1} dB");
}

#[test]
fn transparency_and_orientation_survive() {
    let dir = tempfile::tempdir().unwrap();
    // A real photo with an alpha ramp.
    let mut rgba = image::open(fixture("astronaut_face_40x32.png")).unwrap().to_rgba8();
    rgba.enumerate_pixels_mut().for_each(|(x, _, p)| p.0[3] = (x * 6) as u8);
    let input = dir.path().join("ramp.png");
    rgba.save(&input).unwrap();
    let out = dir.path().join("ramp_x2.png");
    run_ok(&[
        "upscale",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scale",
        "2",
        "--backend",
        "cpu",
        "-q",
    ]);
    let result = image::open(&out).unwrap();
    assert_eq!(result.color(), image::ColorType::Rgba8);
    let alpha = result.to_rgba8();
    assert!(alpha.get_pixel(0, 10).0[3] < 10 && alpha.get_pixel(79, 10).0[3] > 220, "alpha ramp lost");

    // A camera JPEG stored sideways with EXIF orientation 6 comes out upright, once.
    let out = dir.path().join("upright.jpg");
    let jpeg = fixture("chelsea_64x48_exif6_srgb.jpg");
    run_ok(&[
        "upscale",
        jpeg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scale",
        "2",
        "--quality",
        "85",
        "--backend",
        "cpu",
        "-q",
    ]);
    let decoded = lupa_core::codec::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((decoded.image.width(), decoded.image.height()), (128, 96));
    assert!(decoded.metadata.icc.is_some(), "ICC profile carried over");
}

#[test]
fn a_directory_of_five_files_is_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let face = image::open(fixture("astronaut_face_40x32.png")).unwrap();
    for i in 0..5 {
        face.crop_imm(i * 4, 0, 24, 24).save(inputs.join(format!("p{i}.png"))).unwrap();
    }
    std::fs::write(inputs.join("notes.txt"), "not an image").unwrap();
    let out = dir.path().join("out");
    let log = run_ok(&[
        "upscale",
        inputs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scale",
        "2",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert!(log.contains("all 5 files done"), "{log}");
    assert_eq!(entries(&out), (0..5).map(|i| format!("p{i}_x2.png")).collect::<Vec<_>>());
    // The same files by a quoted glob pattern.
    let pattern = format!("{}/p[0-4].png", inputs.display());
    let out = dir.path().join("out2");
    run_ok(&["upscale", &pattern, "-o", out.to_str().unwrap(), "--scale", "2", "--backend", "cpu", "-q"]);
    assert_eq!(entries(&out).len(), 5);
}

#[test]
fn smart_mode_recognises_illustration_text_and_photo() {
    let dir = tempfile::tempdir().unwrap();
    for (file, says, model, size) in [
        ("cartoon_kodim_128.png", "Looks like an illustration", "realcugan-se-x4-no-denoise", (512, 512)),
        ("gimp_layer_new_200x150.png", "Looks like text or a screenshot", "span-x4", (800, 600)),
        ("astronaut_128.png", "Looks like a photo", "realesr-general-x4v3", (512, 512)),
    ] {
        let out = dir.path().join(file);
        let input = fixture(file);
        let log = upscale_ok(&input, &out, &["--mode", "smart"]);
        assert!(log.contains(says) && log.contains(model), "{file}: expected `{says}` and {model} in {log}");
        let result = image::open(&out).unwrap();
        assert_eq!((result.width(), result.height()), size, "{file}");
    }
    // The user's scale and denoise override Smart's.
    let out = dir.path().join("two.png");
    let input = fixture("cartoon_kodim_128.png");
    let log = upscale_ok(&input, &out, &["--mode", "smart", "--scale", "2", "--denoise", "3"]);
    assert!(log.contains("realcugan-se-x2-denoise3x"), "{log}");
    assert_eq!(image::open(&out).unwrap().width(), 256);
}

/// Mean absolute step across the borders of `period`-pixel blocks over the mean step elsewhere
/// (horizontal and vertical neighbours of the luma): about 1 for a natural image, clearly above 1
/// when JPEG blocks show.
fn blockiness(image: &image::DynamicImage, period: u32) -> f64 {
    let luma = image.to_luma8();
    let (w, h) = luma.dimensions();
    let (mut at, mut at_n, mut off, mut off_n) = (0.0, 0.0, 0.0, 0.0);
    for y in 0..h {
        for x in 0..w {
            let p = f64::from(luma.get_pixel(x, y).0[0]);
            for (nx, ny, edge) in [(x + 1, y, (x + 1) % period == 0), (x, y + 1, (y + 1) % period == 0)] {
                if nx < w && ny < h {
                    let d = (p - f64::from(luma.get_pixel(nx, ny).0[0])).abs();
                    if edge {
                        (at, at_n) = (at + d, at_n + 1.0);
                    } else {
                        (off, off_n) = (off + d, off_n + 1.0);
                    }
                }
            }
        }
    }
    (at / at_n) / (off / off_n)
}

#[test]
fn denoise_cleans_jpeg_blocks_before_upscaling() {
    let dir = tempfile::tempdir().unwrap();
    // The photo saved as a heavily compressed JPEG (quality 15): 8×8 blocks show.
    let jpeg = dir.path().join("blocky.jpg");
    let photo = image::open(fixture("astronaut_128.png")).unwrap().to_rgb8();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 15).encode_image(&photo).unwrap();
    std::fs::write(&jpeg, bytes).unwrap();
    let source = blockiness(&image::open(&jpeg).unwrap(), 8);

    let mut scores = Vec::new();
    for denoise in ["0", "2"] {
        let out = dir.path().join(format!("denoise{denoise}.png"));
        let log = upscale_ok(&jpeg, &out, &["--scale", "2", "--denoise", denoise]);
        assert_eq!(log.contains("clean-up with realcugan-se-x2-denoise2x"), denoise == "2", "{log}");
        let result = image::open(&out).unwrap();
        assert_eq!(result.width(), 256);
        // At 2x the blocks are 16 px.
        scores.push(blockiness(&result, 16));
    }
    println!("blockiness: JPEG {source:.2}, upscaled {:.2}, with clean-up {:.2}", scores[0], scores[1]);
    assert!(source > 1.4, "the fixture must show blocks ({source:.2})");
    assert!(scores[0] > 1.3, "without clean-up the blocks are enlarged ({:.2})", scores[0]);
    assert!(scores[1] < 1.15, "the clean-up removes them ({:.2})", scores[1]);
}

/// The modes come from the core's catalogue: `--help` lists them with their descriptions, and the
/// README's table is exactly `lupa modes --markdown`.
#[test]
fn modes_are_the_catalogue_in_the_help_and_the_readme() {
    let help = lupa(&["upscale", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let table = lupa(&["modes", "--markdown"]);
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    for line in table.lines().skip(2) {
        let id = line.split('`').nth(1).expect("an id in backticks");
        assert!(help.contains(id), "`{id}` missing from --help:\n{help}");
    }
    let readme = std::fs::read_to_string(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../../README.md"),
    )
    .unwrap();
    let begin = readme.find("<!-- modes:begin").expect("README has the modes table");
    let block = &readme[begin..readme.find("<!-- modes:end -->").expect("end marker")];
    let block = &block[block.find('\n').unwrap() + 1..];
    assert_eq!(block, table, "README's mode table is stale: paste `lupa modes --markdown`");
}

/// `--max-fidelity` averages the 8 flips and rotations: a result close to plain Precision but not
/// the same, and refused outside Precision.
#[test]
fn max_fidelity_is_a_close_variant_of_precision() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_face_40x32.png");
    let (plain, ensemble) = (dir.path().join("plain.png"), dir.path().join("ensemble.png"));
    upscale_ok(&input, &plain, &["--scale", "2"]);
    upscale_ok(&input, &ensemble, &["--scale", "2", "--max-fidelity"]);
    let (a, b) = (image::open(&plain).unwrap().to_rgb8(), image::open(&ensemble).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    let db = lupa_core::metrics::psnr_y(&a, &b, 0).unwrap();
    assert!(a != b && db > 35.0, "ensemble vs plain PSNR-Y {db:.1} dB");
    upscale_fails(
        &input,
        &dir.path().join("out.png"),
        &["--mode", "creative", "--max-fidelity"],
        "Precision mode only",
    );
}

/// One row of `tests/fixtures/hostile/expected.csv`: a file, `ok` or the error kind, the output
/// size (`WxH` at 2x) or a piece of the message, and what happens, in words (the README's table).
struct Hostile {
    file: String,
    result: String,
    check: String,
    what: String,
}

fn hostile_corpus() -> Vec<Hostile> {
    let dir = fixture("../hostile");
    let text = std::fs::read_to_string(dir.join("expected.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            // The last field may be quoted and hold commas; the others never do.
            let mut fields = line.splitn(4, ',');
            let mut next = || fields.next().expect("4 fields").to_owned();
            let (file, result, check) = (next(), next(), next());
            let what = next().trim_matches('"').to_owned();
            Hostile { file, result, check, what }
        })
        .collect()
}

/// The hostile-input corpus (made by `tests/hostile/make_corpus.py`) in one batch, under a 4 GiB
/// address-space cap: every file is upscaled or refused as `expected.csv` says, with a sentence
/// naming it, nothing panics, no partial file is left, and the other files still come out.
#[test]
fn the_hostile_corpus_is_handled_as_documented() {
    let corpus = hostile_corpus();
    assert_eq!(corpus.len(), 36);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let files: Vec<String> =
        corpus.iter().map(|h| fixture("../hostile").join(&h.file).to_str().unwrap().to_owned()).collect();
    let models = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../models");
    let script = format!(
        "ulimit -v 4194304; exec \"$0\" upscale \"$@\" -o '{}' --scale 2 --backend cpu -q",
        out_dir.display()
    );
    let run = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_lupa")])
        .args(&files)
        .env("LUPA_MODELS", models)
        .output()
        .unwrap();
    let err = stderr(&run);
    assert!(!err.contains("panicked"), "{err}");
    let failed = corpus.iter().filter(|h| h.result != "ok").count();
    assert!(err.contains(&format!("{failed} of 36 files failed")), "{err}");
    for h in &corpus {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("/{}", h.file)))
            .unwrap_or_else(|| panic!("{}: {err}", h.file));
        if h.result == "ok" {
            assert!(line.contains(&h.check.replace('x', "×")), "{}: expected {} in {line}", h.file, h.check);
        } else {
            assert!(
                line.starts_with("error: ") && line.contains(&h.check),
                "{}: expected `{}` in {line}",
                h.file,
                h.check
            );
        }
    }
    let outputs = entries(&out_dir);
    assert_eq!(outputs.len(), corpus.len() - failed, "{outputs:?}");
    assert!(outputs.iter().all(|n| !n.starts_with(".lupa-")), "left behind: {outputs:?}");

    // What the table promises about the content.
    let out = |name: &str| out_dir.join(name);
    let clear = image::open(out("transparent_x2.png")).unwrap().to_rgba8();
    assert!(clear.pixels().all(|p| p.0[3] == 0), "a transparent image stays transparent");
    let palette = image::open(out("palette_trns_x2.png")).unwrap();
    assert!(palette.color().has_alpha(), "tRNS gives an alpha channel");
    assert_eq!(image::open(out("rgb16_x2.png")).unwrap().color(), image::ColorType::Rgb16);
    assert_eq!(image::open(out("gray16_x2.png")).unwrap().color(), image::ColorType::L16);
    let icc = std::fs::read(out("garbage_icc_x2.png")).unwrap();
    assert!(!icc.windows(4).any(|w| w == b"iCCP"), "a profile that is not one is not carried over");
    for animated in ["animated.png", "animated.webp", "animated.gif"] {
        let line = err.lines().find(|l| l.contains(animated)).unwrap();
        assert!(line.contains("only its first frame"), "{line}");
    }
    let line = err.lines().find(|l| l.contains("pages.tiff")).unwrap();
    assert!(line.contains("only the first is upscaled"), "{line}");
    let line = err.lines().find(|l| l.contains("truncated.jpg")).unwrap();
    assert!(line.contains("ends early"), "{line}");

    // The README's table says the same.
    let readme = std::fs::read_to_string(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../README.md"),
    )
    .unwrap();
    for h in &corpus {
        let row = format!("| `{}` | {} |", h.file, h.what);
        assert!(readme.contains(&row), "README lacks the row\n{row}");
    }
}

/// A job that needs more memory than `--max-memory` is refused before it starts, naming the
/// largest scale that fits; that scale then runs.
#[test]
fn a_job_over_the_memory_limit_is_refused_with_the_scale_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_128.png");
    let out = dir.path().join("out.png");
    // 128² at 8x: the second pass holds 512² as input (15 bytes a pixel) and 1024² RGB: 7.8 MiB
    // with a 1 MiB tile (a quarter of the limit); at 4x 2 MiB.
    upscale_fails(
        &input,
        &out,
        &["--scale", "8", "--max-memory", "4"],
        "upscaling this 128×128 image to 1024×1024 needs 8 MiB, more than the 4 MiB of memory this job may use \
         here; at 8x the largest image that fits here is 85×85; 4x fits",
    );
    upscale_ok(&input, &out, &["--scale", "4", "--max-memory", "4"]);
    assert_eq!(image::open(&out).unwrap().width(), 512);
}

/// Inputs of the same name from different folders, or differing only in the extension, each get
/// their own result: none overwrites another.
#[test]
fn same_named_inputs_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(fixture("astronaut_face_40x32.png"), a.join("photo.png")).unwrap();
    std::fs::copy(fixture("cartoon_32x40.png"), b.join("photo.png")).unwrap();
    std::fs::copy(fixture("chelsea_64x48_exif6_srgb.jpg"), b.join("photo.jpg")).unwrap();
    let out = dir.path().join("out");
    let inputs = [a.join("photo.png"), b.join("photo.png"), b.join("photo.jpg")];
    let mut args = vec!["upscale"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", out.to_str().unwrap(), "--scale", "2", "--backend", "cpu", "-q"]);
    run_ok(&args);
    assert_eq!(entries(&out), ["photo_jpg_x2.png", "photo_png_x2.png", "photo_png_x2_2.png"]);
    let size = |name: &str| image::image_dimensions(out.join(name)).unwrap();
    assert_eq!((size("photo_png_x2.png"), size("photo_png_x2_2.png")), ((80, 64), (64, 80)));
}

/// `count` copies of the fixture `name` in a new directory, as `photo_000.png`, ….
fn copies(name: &str, count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture(name)).unwrap();
    for i in 0..count {
        std::fs::write(dir.path().join(format!("photo_{i:03}.png")), &bytes).unwrap();
    }
    dir
}

/// The resident memory of process `pid` (Linux's VmRSS), in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn spawn_lupa(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lupa"))
        .args(args)
        .env("LUPA_MODELS", Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../models"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ctrl+C in the middle of a batch: the file being upscaled stops before its next tile, the batch
/// ends with status 130, every file written before is whole, and nothing half-written is left.
#[test]
fn ctrl_c_in_a_batch_keeps_every_finished_file_and_leaves_nothing_half_written() {
    let inputs = copies("astronaut_128.png", 40);
    let out = tempfile::tempdir().unwrap();
    let (input, output) = (inputs.path().to_str().unwrap(), out.path().to_str().unwrap());
    let child = spawn_lupa(&[
        "upscale",
        input,
        "-o",
        output,
        "--model",
        "span-x4",
        "--tile",
        "48",
        "--backend",
        "cpu",
        "-q",
    ]);
    let started = std::time::Instant::now();
    while entries(out.path()).iter().filter(|n| n.ends_with(".png")).count() < 2 {
        assert!(started.elapsed().as_secs() < 300, "no output after 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let run = child.wait_with_output().unwrap();
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(130), "{err}");
    let written: Vec<String> = entries(out.path());
    assert!(written.iter().all(|n| !n.starts_with(".lupa-")), "left behind: {written:?}");
    assert!(written.len() >= 2 && written.len() < 40, "{} of 40 written", written.len());
    assert!(err.contains(&format!("interrupted: {} of 40 files written", written.len())), "{err}");
    for name in &written {
        let image = image::open(out.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((image.width(), image.height()), (512, 512), "{name}");
    }
    println!("interrupted after {} of 40 files", written.len());
}

/// A batch of 500 small real images in one process: every one comes out, and the resident memory,
/// sampled while it runs, is reported at the start and at the end of the batch.
#[test]
fn a_batch_of_500_images_all_come_out_with_memory_sampled() {
    let inputs = copies("chelsea_64x48.png", 500);
    let out = tempfile::tempdir().unwrap();
    let (input, output) = (inputs.path().to_str().unwrap(), out.path().to_str().unwrap());
    let mut child =
        spawn_lupa(&["upscale", input, "-o", output, "--model", "span-x2", "--backend", "cpu", "-q"]);
    let pid = child.id();
    let mut samples = Vec::new(); // (files written, RSS in KiB)
    while child.try_wait().unwrap().is_none() {
        if let Some(rss) = rss_kib(pid) {
            samples.push((entries(out.path()).len(), rss));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("all 500 files done"));
    assert_eq!(entries(out.path()).len(), 500);
    // Peak RSS over the first and the last 100 files (reported; the note and README give them).
    let peak = |range: std::ops::Range<usize>| {
        samples.iter().filter(|(n, _)| range.contains(n)).map(|&(_, r)| r).max().unwrap_or(0)
    };
    let (first, last) = (peak(0..100), peak(400..501));
    println!(
        "500 files: peak RSS {:.1} MiB over files 1–100, {:.1} MiB over files 401–500 ({} samples)",
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        samples.len()
    );
}

/// `--precision f16` on wgpu (lavapipe where there is no GPU: it has `shader-f16`) gives the CPU's
/// picture within f16's rounding; asked for on the CPU backend it is refused.
#[test]
fn f16_on_wgpu_gives_the_cpus_picture_and_is_refused_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("astronaut_face_40x32.png");
    let (f16, f32) = (dir.path().join("f16.png"), dir.path().join("f32.png"));
    let (i, o) = (input.to_str().unwrap(), f16.to_str().unwrap());
    run_ok(&["upscale", i, "-o", o, "--backend", "wgpu", "--precision", "f16", "-q"]);
    upscale_ok(&input, &f32, &[]);
    let pixels = |p: &Path| {
        image::open(p).unwrap().to_rgb8().into_raw().into_iter().map(f32::from).collect::<Vec<_>>()
    };
    let db = lupa_core::metrics::psnr(&pixels(&f16), &pixels(&f32), 255.0);
    println!("f16 on wgpu against the CPU: {db:.1} dB");
    assert!(db >= 45.0, "f16 on wgpu against the CPU: {db:.1} dB");
    upscale_fails(
        &input,
        &dir.path().join("refused.png"),
        &["--precision", "f16"],
        "--precision f16 needs a wgpu device",
    );
}

//! The `lupa` binary end to end: outputs, the registry listing, and clear failures that leave
//! nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images").join(name)
}

fn lupa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lupa"))
        .args(args)
        .env("LUPA_MODELS", Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
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

#[test]
fn upscales_a_photo_4x_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face.png");
    let input = fixture("astronaut_face_40x32.png");
    let run =
        lupa(&["upscale", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--backend", "cpu", "-q"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let result = image::open(&out).unwrap();
    assert_eq!((result.width(), result.height()), (160, 128));
    assert!(stderr(&run).contains("span-x4"), "default model for 4x is SPAN: {}", stderr(&run));
    assert_eq!(entries(dir.path()), vec!["face.png"]);
}

#[test]
fn scale_two_picks_span_x2_and_jpeg_output_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face.jpg");
    let input = fixture("astronaut_face_40x32.png");
    let run = lupa(&[
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
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("span-x2"));
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
        &["upscale", good, "-o", out, "--model", "span-x4", "--scale", "3"],
        dir.path(),
        "scale 3x is not supported",
    );
    assert_fails(&["upscale", good, "-o", out, "--scale", "5"], dir.path(), "scale 5x is not supported");
    let missing = dir.path().join("missing.png");
    assert_fails(&["upscale", missing.to_str().unwrap(), "-o", out], dir.path(), "does not exist");
    assert_fails(
        &["upscale", good, "-o", dir.path().join("out.xyz").to_str().unwrap()],
        dir.path(),
        "output format",
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

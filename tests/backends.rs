//! The wgpu backend computes what the CPU backend computes. On machines without a GPU this runs on
//! Mesa's lavapipe Vulkan driver (package mesa-vulkan-drivers), which `.ci/run` installs. RRDBNet
//! is left out: 17.9 M multiply-adds per pixel take about a minute even on a 40×32 crop under
//! lavapipe, and it shares every operation with the models below.

use lupa_core::burn::tensor::Device;
use lupa_core::metrics::{max_abs_diff, psnr};
use lupa_tests::{forward_raw, load, open};

#[test]
fn models_on_wgpu_match_cpu() {
    let (wgpu, setup) = Device::wgpu_options()
        .init_with_setup()
        .expect("no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)");
    println!("wgpu adapter: {:?}", setup.adapter.get_info());
    let input = open("images/astronaut_face_40x32.png").to_rgb32f();
    // Real-CUGAN x3 adds reflect padding, stride-2 and transposed (k5, stride 3) convolutions and
    // squeeze-excitation means; x4 adds the pixel shuffle and the nearest-neighbour residual.
    for id in [
        "span-x4",
        "realesr-general-x4v3",
        "realesr-animevideov3",
        "realcugan-se-x3-conservative",
        "realcugan-se-x4-denoise3x",
    ] {
        let cpu = forward_raw(&load(id, &Device::flex()), &input);
        let gpu = forward_raw(&load(id, &wgpu), &input);
        let db = psnr(&cpu, &gpu, 1.0);
        let max = max_abs_diff(&cpu, &gpu);
        println!("{id} wgpu vs CPU: PSNR {db:.1} dB, max |diff| {:.4}/255", max * 255.0);
        assert!(db >= 50.0 && max <= 2.0 / 255.0, "{id}: wgpu differs from CPU: {db:.1} dB, max {max}");
    }
}

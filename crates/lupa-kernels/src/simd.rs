//! The register-blocked inner kernel and the vector activations, generic over pulp's [`Simd`].

use pulp::Simd;

use crate::conv::{Epilogue, PackedConv2d, Source};

/// Computes output rows `first_row..` (rows of all images of the batch counted in order) into `out`.
///
/// `V` vectors of output channels × `P` output pixels of accumulators: for each kernel tap and input
/// channel, `V` weight loads and `P` broadcasts feed `V · P` multiply-adds.
#[inline(always)]
pub(crate) fn rows<S: Simd, const V: usize, const P: usize>(
    simd: S,
    conv: &PackedConv2d,
    source: &Source<'_>,
    first_row: usize,
    out: &mut [f32],
    residual: Option<&[f32]>,
) {
    let cout = conv.channels_out;
    let cin = conv.channels_in;
    let block = conv.block;
    debug_assert_eq!(block, V * S::F32_LANES, "packed for another instruction set");
    let [kh, kw] = conv.geometry.kernel;
    let [sh, sw] = conv.geometry.stride;
    let input_row = source.width * cin;
    let image = source.height * input_row;
    let ow = (source.width - kw) / sw + 1;
    let row_len = ow * cout;
    let block_weights = kh * kw * cin * block;

    for (r, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let residual_row = residual.map(|residual| &residual[r * row_len..][..row_len]);
        let row = first_row + r;
        let (n, oy) = (row / source.rows, row % source.rows);
        let inputs: Vec<&[f32]> = (0..kh)
            .map(|ky| {
                let at = n * image + (oy * sh + ky) * input_row;
                &source.data[at..at + input_row]
            })
            .collect();
        for (b, weights) in conv.weights.chunks_exact(block_weights).enumerate() {
            let channels = b * block..(b * block + block).min(cout);
            let bias = vectors::<S, V>(&conv.bias[b * block..][..block]);
            let slopes = match conv.epilogue {
                Epilogue::Prelu => vectors::<S, V>(&conv.slopes[b * block..][..block]),
                _ => [simd.splat_f32s(0.0); V],
            };
            let tile =
                Tile { simd, weights, inputs: &inputs, cin, kw, sw, bias, slopes, epilogue: conv.epilogue };
            let mut ox = 0;
            while ox + P <= ow {
                let acc = tile.compute::<P>(ox);
                store::<S, V, P>(simd, &acc, out_row, residual_row, ox, cout, channels.clone());
                ox += P;
            }
            while ox < ow {
                let acc = tile.compute::<1>(ox);
                store::<S, V, 1>(simd, &acc, out_row, residual_row, ox, cout, channels.clone());
                ox += 1;
            }
        }
    }
}

/// One output row × one channel block: everything a register tile needs.
pub(crate) struct Tile<'a, S: Simd, const V: usize> {
    pub(crate) simd: S,
    /// This block's packed weights, `[kh][kw][cin][block]`.
    pub(crate) weights: &'a [f32],
    /// The `kh` padded input rows this output row reads.
    pub(crate) inputs: &'a [&'a [f32]],
    pub(crate) cin: usize,
    pub(crate) kw: usize,
    pub(crate) sw: usize,
    pub(crate) bias: [S::f32s; V],
    pub(crate) slopes: [S::f32s; V],
    pub(crate) epilogue: Epilogue,
}

impl<S: Simd, const V: usize> Tile<'_, S, V> {
    /// The activated outputs of pixels `ox..ox + P` for this block's channels.
    #[inline(always)]
    pub(crate) fn compute<const P: usize>(&self, ox: usize) -> [[S::f32s; V]; P] {
        let simd = self.simd;
        let cin = self.cin;
        let tap_len = cin * V * S::F32_LANES;
        let mut acc = [self.bias; P];
        for (ky, row) in self.inputs.iter().enumerate() {
            for kx in 0..self.kw {
                let tap = (ky * self.kw + kx) * tap_len;
                let (weights, _) = S::as_simd_f32s(&self.weights[tap..tap + tap_len]);
                let pixels: [&[f32]; P] = core::array::from_fn(|p| {
                    let at = ((ox + p) * self.sw + kx) * cin;
                    &row[at..at + cin]
                });
                for (ci, w) in weights.chunks_exact(V).enumerate() {
                    for p in 0..P {
                        let x = simd.splat_f32s(pixels[p][ci]);
                        for v in 0..V {
                            acc[p][v] = simd.mul_add_e_f32s(x, w[v], acc[p][v]);
                        }
                    }
                }
            }
        }
        for pixel in &mut acc {
            for (v, value) in pixel.iter_mut().enumerate() {
                *value = activate(simd, self.epilogue, *value, self.slopes[v]);
            }
        }
        acc
    }
}

/// Writes pixels `ox..ox + P` of one channel block into an NHWC output row, applying SPAN's
/// attention with the residual row when there is one.
#[inline(always)]
pub(crate) fn store<S: Simd, const V: usize, const P: usize>(
    simd: S,
    acc: &[[S::f32s; V]; P],
    out_row: &mut [f32],
    residual_row: Option<&[f32]>,
    ox: usize,
    cout: usize,
    channels: core::ops::Range<usize>,
) {
    let lanes = S::F32_LANES;
    let width = channels.len();
    for (p, pixel) in acc.iter().enumerate() {
        let at = (ox + p) * cout + channels.start;
        let attended;
        let pixel = match residual_row {
            None => pixel,
            Some(residual) => {
                let residual = &residual[at..at + width];
                let mut values = *pixel;
                for (v, value) in values.iter_mut().enumerate() {
                    let lo = (v * lanes).min(width);
                    *value = span_attention(simd, *value, load(simd, &residual[lo..width.min(lo + lanes)]));
                }
                attended = values;
                &attended
            }
        };
        let dst = &mut out_row[at..at + width];
        if width == V * lanes {
            let (vectors, _) = S::as_mut_simd_f32s(dst);
            vectors[..V].copy_from_slice(pixel);
        } else {
            for (v, value) in pixel.iter().enumerate() {
                let lo = v * lanes;
                if lo < width {
                    simd.partial_store_f32s(&mut dst[lo..width.min(lo + lanes)], *value);
                }
            }
        }
    }
}

/// One vector from up to `lanes` values (the rest zero).
#[inline(always)]
pub(crate) fn load<S: Simd>(simd: S, values: &[f32]) -> S::f32s {
    match S::as_simd_f32s(values) {
        ([vector], []) => *vector,
        _ => simd.partial_load_f32s(values),
    }
}

/// Up to `lanes` values of a vector.
#[inline(always)]
pub(crate) fn store_partial<S: Simd>(simd: S, values: &mut [f32], vector: S::f32s) {
    match S::as_mut_simd_f32s(values) {
        ([slot], []) => *slot = vector,
        _ => simd.partial_store_f32s(values, vector),
    }
}

/// `V` vectors from `V · lanes` values.
#[inline(always)]
fn vectors<S: Simd, const V: usize>(values: &[f32]) -> [S::f32s; V] {
    let (vectors, _) = S::as_simd_f32s(values);
    let mut out = [vectors[0]; V];
    out.copy_from_slice(&vectors[..V]);
    out
}

#[inline(always)]
pub(crate) fn activate<S: Simd>(simd: S, epilogue: Epilogue, x: S::f32s, slope: S::f32s) -> S::f32s {
    match epilogue {
        Epilogue::Identity => x,
        Epilogue::Prelu => {
            let zero = simd.splat_f32s(0.0);
            simd.mul_add_e_f32s(slope, simd.min_f32s(x, zero), simd.max_f32s(x, zero))
        }
        Epilogue::Silu => {
            let half = simd.splat_f32s(0.5);
            let sigmoid = simd.mul_add_e_f32s(half, tanh(simd, simd.mul_f32s(half, x)), half);
            simd.mul_f32s(x, sigmoid)
        }
        // Applied in `store`, where the residual is read.
        Epilogue::SpanAttention => x,
    }
}

/// `(x + residual) · (sigmoid(x) − 1/2)`, with `sigmoid(x) − 1/2 = tanh(x / 2) / 2`.
#[inline(always)]
pub(crate) fn span_attention<S: Simd>(simd: S, x: S::f32s, residual: S::f32s) -> S::f32s {
    let half = simd.splat_f32s(0.5);
    let attention = simd.mul_f32s(half, tanh(simd, simd.mul_f32s(half, x)));
    simd.mul_f32s(simd.add_f32s(x, residual), attention)
}

/// `tanh(x)` as Eigen's `generic_fast_tanh_float`: a [13/6] rational approximation on the input
/// clamped to ±7.9053 (beyond it tanh rounds to ±1 in f32).
#[inline(always)]
pub(crate) fn tanh<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    const CLAMP: f32 = 7.905_311;
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = simd.max_f32s(simd.min_f32s(x, simd.splat_f32s(CLAMP)), simd.splat_f32s(-CLAMP));
    let x2 = simd.mul_f32s(x, x);
    // Horner's scheme in x², highest coefficient first.
    let mut p = simd.splat_f32s(ALPHA[6]);
    for &c in ALPHA[..6].iter().rev() {
        p = simd.mul_add_e_f32s(p, x2, simd.splat_f32s(c));
    }
    let mut q = simd.splat_f32s(BETA[3]);
    for &c in BETA[..3].iter().rev() {
        q = simd.mul_add_e_f32s(q, x2, simd.splat_f32s(c));
    }
    simd.div_f32s(simd.mul_f32s(p, x), q)
}

#[cfg(test)]
mod tests {
    use pulp::{Arch, Simd, WithSimd};

    /// The vector tanh against std's on a dense grid of [-12, 12].
    #[test]
    fn tanh_matches_std() {
        struct Check;
        impl WithSimd for Check {
            type Output = f32;
            fn with_simd<S: Simd>(self, simd: S) -> f32 {
                let mut worst = 0.0f32;
                for i in -120_000..=120_000 {
                    let x = i as f32 * 1e-4;
                    let mut lanes = vec![0.0; S::F32_LANES];
                    simd.partial_store_f32s(&mut lanes, super::tanh(simd, simd.splat_f32s(x)));
                    worst = worst.max((lanes[0] - x.tanh()).abs());
                }
                worst
            }
        }
        let worst = Arch::new().dispatch(Check);
        assert!(worst < 1e-6, "max |tanh error| {worst}");
    }
}

//! Transposed convolutions (PyTorch's `ConvTranspose2d`, no dilation or groups) as one stride-1
//! convolution and a scatter: the sub-pixel ("phase") decomposition.
//!
//! The definition, per axis: `y[o] = b + Σ x[i] · w[k]` over the pairs with `o = s·i + k − p`
//! (stride `s`, kernel `K`, padding `p`; the output is `(H − 1)·s + K − 2p` long). Writing
//! `o + p = s·q + r` with `0 ≤ r < s`, the taps that reach `o` are `k = r + s·m` at `i = q − m`
//! for `m = 0, 1, …` while `k < K`, so every output phase `r` is a correlation of `x` around `q`
//! with the `M = ⌈K / s⌉` taps `w[r], w[r + s], …` (a missing tap is zero), and all `s` phases
//! share the same input window. Per 2-D input pixel `q` that is one `M×M` stride-1 convolution (zero
//! padding `M − 1`) to `s_h · s_w · out` channels, ordered `(r_y, r_x, o)`, followed by a scatter of
//! the phase blocks to `o = s·q + r − p`. The convolution does exactly the multiply-adds of the
//! definition when `s` divides `K` (Real-CUGAN's 2×2 and 4×4 at stride 2); at 5×5 stride 3 a quarter
//! of the taps are the zeros of the shorter phases. Kernel = stride without padding is the 1×1 case.
//! See Shi et al., "Is the deconvolution layer the same as a convolutional layer?" (2016).

use crate::conv::{Activation, ConvGeometry, PackedConv2d, for_each_task};

/// A transposed convolution with its weights packed (see the module docs).
#[derive(Debug, Clone)]
pub struct PackedConvTranspose2d {
    /// The stride-1 `M×M` convolution to `s_h · s_w · channels_out` channels, ordered `(r_y, r_x, o)`.
    phases: PackedConv2d,
    /// Kernel, stride and padding as PyTorch's `ConvTranspose2d` reads them.
    geometry: ConvGeometry,
    channels_out: usize,
}

impl PackedConvTranspose2d {
    /// Packs IOHW `weights` (`[channels_in, channels_out, kh, kw]`, PyTorch's and Burn's layout for
    /// transposed convolutions) and an optional bias (`[channels_out]`). `geometry` is the
    /// transposed convolution's kernel, stride and padding (the padding removed from each side of
    /// the output).
    ///
    /// # Panics
    /// When a length disagrees with the shapes, a kernel side or stride is 0, PReLU has neither one
    /// slope nor one per output channel, or the activation is SPAN's attention.
    pub fn new(
        weights: &[f32],
        bias: Option<&[f32]>,
        channels_in: usize,
        channels_out: usize,
        geometry: ConvGeometry,
        activation: &Activation,
    ) -> Self {
        let ConvGeometry { kernel: [kh, kw], stride: [sh, sw], .. } = geometry;
        assert!(kh * kw > 0 && sh * sw > 0, "empty kernel or zero stride");
        assert_eq!(weights.len(), channels_in * channels_out * kh * kw, "weights are not [in, out, kh, kw]");
        assert!(
            *activation != Activation::SpanAttention,
            "SPAN's attention follows no transposed convolution"
        );
        let [mh, mw] = [kh.div_ceil(sh), kw.div_ceil(sw)];
        let wide = sh * sw * channels_out;
        // OIHW weights of the phase convolution: output channel (r_y, r_x, o), tap (a, b) reads
        // w[c, o, r_y + s_h·(M_h − 1 − a), r_x + s_w·(M_w − 1 − b)] (taps flipped: a correlation).
        let mut phases = vec![0.0; wide * channels_in * mh * mw];
        for (phase, (ry, rx)) in (0..sh).flat_map(|ry| (0..sw).map(move |rx| (ry, rx))).enumerate() {
            for o in 0..channels_out {
                let out = phase * channels_out + o;
                for c in 0..channels_in {
                    for (a, b) in (0..mh).flat_map(|a| (0..mw).map(move |b| (a, b))) {
                        let (ky, kx) = (ry + sh * (mh - 1 - a), rx + sw * (mw - 1 - b));
                        if ky < kh && kx < kw {
                            phases[((out * channels_in + c) * mh + a) * mw + b] =
                                weights[((c * channels_out + o) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
        }
        let repeat = |values: &[f32]| values.iter().copied().cycle().take(wide).collect::<Vec<f32>>();
        let bias = bias.map(|b| {
            assert_eq!(b.len(), channels_out, "bias is not [out]");
            repeat(b)
        });
        let activation = match activation {
            Activation::Prelu(slopes) if slopes.len() == channels_out && channels_out > 1 => {
                Activation::Prelu(repeat(slopes))
            }
            other => other.clone(),
        };
        let phase_geometry = ConvGeometry { kernel: [mh, mw], stride: [1, 1], padding: [mh - 1, mw - 1] };
        let phases =
            PackedConv2d::new(&phases, bias.as_deref(), channels_in, wide, phase_geometry, &activation);
        Self { phases, geometry, channels_out }
    }

    /// Bytes its packed weights, bias and slopes take.
    pub fn packed_bytes(&self) -> usize {
        self.phases.packed_bytes()
    }

    /// The output height and width for an input of `height × width`
    /// ([`ConvGeometry::transposed_output_size`]).
    pub fn output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        self.geometry.transposed_output_size(height, width)
    }

    /// Runs it on an NHWC `input` of `[batch, height, width, channels_in]`: the NHWC output
    /// `[batch, out_height, out_width, channels_out]` and its size ([`Self::output_size`]).
    ///
    /// # Panics
    /// When `input` does not hold `batch · height · width · channels_in` values, the input is
    /// empty, or the padding leaves no output.
    pub fn forward(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> (Vec<f32>, [usize; 2]) {
        let [oh, ow] =
            self.output_size(height, width).expect("an empty input, or the padding leaves no output");
        let ConvGeometry { stride: [sh, sw], padding: [ph, pw], .. } = self.geometry;
        let cout = self.channels_out;
        // Pixel (n, q_y, q_x) of `wide` holds the blocks of every phase of output (s·q + r − p).
        let (wide, [qh, qw]) = self.phases.forward(input, batch, height, width);
        let block = sh * sw * cout;
        let mut output = vec![0.0; batch * oh * ow * cout];
        let rows: Vec<(usize, &mut [f32])> = output.chunks_mut(ow * cout).enumerate().collect();
        for_each_task(rows, |(row, values)| {
            let (n, y) = (row / oh, row % oh);
            let (qy, ry) = ((y + ph) / sh, (y + ph) % sh);
            let source = &wide[(n * qh + qy) * qw * block..][..qw * block];
            for (x, out) in values.chunks_exact_mut(cout).enumerate() {
                let (qx, rx) = ((x + pw) / sw, (x + pw) % sw);
                out.copy_from_slice(&source[qx * block + (ry * sw + rx) * cout..][..cout]);
            }
        });
        (output, [oh, ow])
    }
}

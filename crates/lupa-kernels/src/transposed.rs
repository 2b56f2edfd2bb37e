//! Transposed convolutions whose kernel equals their stride (Real-CUGAN's 2×2, stride-2 upsampling).
//!
//! Without overlap, every input pixel owns one `kh × kw` block of the output:
//! `y[s·i + ky, s·j + kx, o] = b[o] + Σ_c x[i, j, c] · w[c, o, ky, kx]` (PyTorch's `ConvTranspose2d`
//! with padding 0). That is a 1×1 convolution to `kh · kw · out` channels followed by a scatter of
//! each pixel's channels into its block, so it runs on the packed direct kernel.

use crate::conv::{Activation, ConvGeometry, PackedConv2d};

/// A non-overlapping transposed convolution (kernel = stride, no padding) with its weights packed.
#[derive(Debug, Clone)]
pub struct PackedConvTranspose2d {
    /// The 1×1 convolution to `kernel[0] · kernel[1] · channels_out` channels, ordered `(ky, kx, o)`.
    pointwise: PackedConv2d,
    kernel: [usize; 2],
    channels_out: usize,
}

impl PackedConvTranspose2d {
    /// Packs IOHW `weights` (`[channels_in, channels_out, kh, kw]`, PyTorch's and Burn's layout for
    /// transposed convolutions) and an optional bias (`[channels_out]`).
    ///
    /// # Panics
    /// When a length disagrees with the shapes, a kernel side is 0, PReLU has neither one slope nor
    /// one per output channel, or the activation is SPAN's attention.
    pub fn new(
        weights: &[f32],
        bias: Option<&[f32]>,
        channels_in: usize,
        channels_out: usize,
        kernel: [usize; 2],
        activation: &Activation,
    ) -> Self {
        let [kh, kw] = kernel;
        let taps = kh * kw;
        assert!(taps > 0, "empty kernel");
        assert_eq!(weights.len(), channels_in * channels_out * taps, "weights are not [in, out, kh, kw]");
        assert!(
            *activation != Activation::SpanAttention,
            "SPAN's attention follows no transposed convolution"
        );
        let wide = taps * channels_out;
        // The 1×1 convolution's OIHW weights: output channel (tap, o) reads w[c, o, tap].
        let mut pointwise = vec![0.0; wide * channels_in];
        for c in 0..channels_in {
            for o in 0..channels_out {
                for tap in 0..taps {
                    pointwise[(tap * channels_out + o) * channels_in + c] =
                        weights[(c * channels_out + o) * taps + tap];
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
        let geometry = ConvGeometry { kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
        let pointwise =
            PackedConv2d::new(&pointwise, bias.as_deref(), channels_in, wide, geometry, &activation);
        Self { pointwise, kernel, channels_out }
    }

    /// Runs it on an NHWC `input` of `[batch, height, width, channels_in]`: the NHWC output
    /// `[batch, kh · height, kw · width, channels_out]` and its `[height, width]`.
    ///
    /// # Panics
    /// When `input` does not hold `batch · height · width · channels_in` values.
    pub fn forward(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> (Vec<f32>, [usize; 2]) {
        let [kh, kw] = self.kernel;
        let cout = self.channels_out;
        let (wide, _) = self.pointwise.forward(input, batch, height, width);
        let (oh, ow) = (kh * height, kw * width);
        let mut output = vec![0.0; batch * oh * ow * cout];
        // Pixel (n, i, j) of `wide` holds its output block, tap by tap.
        for (pixel, block) in wide.chunks_exact(kh * kw * cout).enumerate() {
            let (n, i, j) = (pixel / (height * width), pixel / width % height, pixel % width);
            for (tap, values) in block.chunks_exact(cout).enumerate() {
                let (y, x) = (i * kh + tap / kw, j * kw + tap % kw);
                output[((n * oh + y) * ow + x) * cout..][..cout].copy_from_slice(values);
            }
        }
        (output, [oh, ow])
    }
}

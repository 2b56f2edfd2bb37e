//! The packed convolution: weights packed once, padding, output rows over threads.

use std::borrow::Cow;

use pulp::{Arch, Simd, WithSimd};

use crate::{simd, winograd};

/// The activation fused after a convolution's bias.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// None: the convolution and its bias only.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `max(x, 0) + slope · min(x, 0)` with one slope for every channel.
    LeakyRelu(f32),
    /// `max(x, 0) + slope[c] · min(x, 0)`: one slope per output channel, or a single one for all.
    Prelu(Vec<f32>),
    /// `x · sigmoid(x)` (also called swish).
    Silu,
    /// `(x + residual) · (sigmoid(x) − 1/2)`: the parameter-free attention that ends each SPAN block
    /// (Wan et al., CVPRW 2024), with the block's input as the residual; run with
    /// [`PackedConv2d::forward_with_residual`].
    SpanAttention,
}

/// Kernel size, stride and symmetric zero padding of a convolution, as `[height, width]` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride (≥ 1).
    pub stride: [usize; 2],
    /// Zero rows added above and below, zero columns added left and right.
    pub padding: [usize; 2],
}

impl ConvGeometry {
    /// The output height and width for an input of `height × width`, or `None` when the padded input
    /// is smaller than the kernel.
    pub fn output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        let side = |size: usize, dim: usize| {
            let padded = size + 2 * self.padding[dim];
            (padded >= self.kernel[dim]).then(|| (padded - self.kernel[dim]) / self.stride[dim] + 1)
        };
        Some([side(height, 0)?, side(width, 1)?])
    }

    /// The output height and width of the *transposed* convolution of this geometry (PyTorch's
    /// `ConvTranspose2d`, padding removed from each side) on an input of `height × width`:
    /// `(H − 1)·s + K − 2p` per axis, or `None` for an empty input or when the padding leaves
    /// nothing.
    pub fn transposed_output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        let side = |size: usize, d: usize| {
            ((size.checked_sub(1)? * self.stride[d]) + self.kernel[d])
                .checked_sub(2 * self.padding[d])
                .filter(|&n| n > 0)
        };
        Some([side(height, 0)?, side(width, 1)?])
    }
}

/// How a [`PackedConv2d`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Register-blocked direct convolution: any kernel, stride and padding.
    Direct,
    /// Winograd F(4×4, 3×3): stride-1 3×3 kernels only.
    Winograd,
}

impl Algorithm {
    /// What [`PackedConv2d::new`] picks: Winograd for stride-1 3×3 with at least 16 input and 8
    /// output channels, where its transforms pay; the direct kernel otherwise.
    pub fn choose(channels_in: usize, channels_out: usize, geometry: ConvGeometry) -> Self {
        if winograd::applies(channels_in, channels_out, geometry.kernel, geometry.stride) {
            Self::Winograd
        } else {
            Self::Direct
        }
    }
}

/// What the epilogue applies to each accumulator vector after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Epilogue {
    Identity,
    /// PReLU with [`PackedConv2d::slopes`]; also ReLU (slopes 0) and LeakyReLU (one slope repeated).
    Prelu,
    Silu,
    SpanAttention,
}

/// A convolution with its weights packed for [`PackedConv2d::forward`].
///
/// Packed layout: output channels in blocks of `block` (the SIMD width times a small factor,
/// zero-padded at the end); within a block `[kh][kw][in][block]` for the direct kernel, so one kernel
/// tap and one input channel give `block` contiguous weights, loaded as a few SIMD vectors; for
/// Winograd the transformed kernels `[36][block of out][in][block]`.
#[derive(Debug, Clone)]
pub struct PackedConv2d {
    pub(crate) channels_in: usize,
    pub(crate) channels_out: usize,
    pub(crate) geometry: ConvGeometry,
    /// Output channels per block: the SIMD lane count times the kernel's vectors per block.
    pub(crate) block: usize,
    pub(crate) algorithm: Algorithm,
    pub(crate) weights: Vec<f32>,
    /// The bias, zero-padded to whole blocks.
    pub(crate) bias: Vec<f32>,
    /// PReLU slopes per output channel, zero-padded to whole blocks (empty for other epilogues).
    pub(crate) slopes: Vec<f32>,
    pub(crate) epilogue: Epilogue,
}

impl PackedConv2d {
    /// Packs OIHW `weights` (`[channels_out, channels_in, kh, kw]`, row-major) and an optional bias
    /// (`[channels_out]`), with the algorithm [`Algorithm::choose`] picks.
    ///
    /// # Panics
    /// When a length disagrees with the shapes, a stride is 0, or PReLU has neither one slope nor
    /// one per output channel.
    pub fn new(
        weights: &[f32],
        bias: Option<&[f32]>,
        channels_in: usize,
        channels_out: usize,
        geometry: ConvGeometry,
        activation: &Activation,
    ) -> Self {
        let algorithm = Algorithm::choose(channels_in, channels_out, geometry);
        Self::with_algorithm(weights, bias, channels_in, channels_out, geometry, activation, algorithm)
    }

    /// [`Self::new`] with a given algorithm (to compare them).
    ///
    /// # Panics
    /// As [`Self::new`], and for Winograd on a kernel other than stride-1 3×3.
    pub fn with_algorithm(
        weights: &[f32],
        bias: Option<&[f32]>,
        channels_in: usize,
        channels_out: usize,
        geometry: ConvGeometry,
        activation: &Activation,
        algorithm: Algorithm,
    ) -> Self {
        let [kh, kw] = geometry.kernel;
        assert_eq!(weights.len(), channels_out * channels_in * kh * kw, "weights are not [out, in, kh, kw]");
        assert!(geometry.stride.iter().all(|&s| s > 0), "stride 0");
        let block = block_width();
        let blocks = channels_out.div_ceil(block);
        let padded = blocks * block;
        let taps = kh * kw;

        let packed = match algorithm {
            Algorithm::Winograd => {
                assert!(
                    geometry.kernel == [3, 3] && geometry.stride == [1, 1],
                    "Winograd F(4,3) is for stride-1 3×3"
                );
                winograd::pack(weights, channels_in, channels_out, block)
            }
            Algorithm::Direct => {
                let mut packed = vec![0.0; padded * channels_in * taps];
                for co in 0..channels_out {
                    let (b, lane) = (co / block, co % block);
                    for ci in 0..channels_in {
                        for tap in 0..taps {
                            let from = (co * channels_in + ci) * taps + tap;
                            let to = ((b * taps + tap) * channels_in + ci) * block + lane;
                            packed[to] = weights[from];
                        }
                    }
                }
                packed
            }
        };
        let mut padded_bias = vec![0.0; padded];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), channels_out, "bias is not [out]");
            padded_bias[..channels_out].copy_from_slice(bias);
        }
        let per_channel = |slope: &dyn Fn(usize) -> f32| {
            let mut slopes = vec![0.0; padded];
            for (c, s) in slopes[..channels_out].iter_mut().enumerate() {
                *s = slope(c);
            }
            slopes
        };
        let (epilogue, slopes) = match activation {
            Activation::Identity => (Epilogue::Identity, Vec::new()),
            Activation::Silu => (Epilogue::Silu, Vec::new()),
            Activation::SpanAttention => (Epilogue::SpanAttention, Vec::new()),
            Activation::Relu => (Epilogue::Prelu, per_channel(&|_| 0.0)),
            Activation::LeakyRelu(slope) => (Epilogue::Prelu, per_channel(&|_| *slope)),
            Activation::Prelu(slopes) => {
                assert!(
                    slopes.len() == 1 || slopes.len() == channels_out,
                    "PReLU needs 1 or {channels_out} slopes, not {}",
                    slopes.len()
                );
                let one = slopes.len() == 1;
                (Epilogue::Prelu, per_channel(&|c| if one { slopes[0] } else { slopes[c] }))
            }
        };
        Self {
            channels_in,
            channels_out,
            geometry,
            block,
            algorithm,
            weights: packed,
            bias: padded_bias,
            slopes,
            epilogue,
        }
    }

    /// Input channels.
    pub fn channels_in(&self) -> usize {
        self.channels_in
    }

    /// Output channels.
    pub fn channels_out(&self) -> usize {
        self.channels_out
    }

    /// Kernel, stride and padding.
    pub fn geometry(&self) -> ConvGeometry {
        self.geometry
    }

    /// How it computes.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Bytes its packed weights, bias and slopes take.
    pub fn packed_bytes(&self) -> usize {
        (self.weights.len() + self.bias.len() + self.slopes.len()) * size_of::<f32>()
    }

    /// Runs the convolution on an NHWC `input` of `[batch, height, width, channels_in]` and returns
    /// the NHWC output `[batch, out_height, out_width, channels_out]` with its `[out_height,
    /// out_width]` ([`ConvGeometry::output_size`]).
    ///
    /// # Panics
    /// When `input` does not hold `batch · height · width · channels_in` values, the padded input
    /// is smaller than the kernel, or the activation is [`Activation::SpanAttention`].
    pub fn forward(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> (Vec<f32>, [usize; 2]) {
        assert!(self.epilogue != Epilogue::SpanAttention, "SPAN's attention needs forward_with_residual");
        self.run(input, None, batch, height, width)
    }

    /// [`Self::forward`] for [`Activation::SpanAttention`]: `residual` is NHWC like the output.
    ///
    /// # Panics
    /// As [`Self::forward`], when the activation is another one, or `residual` is not the output's size.
    pub fn forward_with_residual(
        &self,
        input: &[f32],
        residual: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> (Vec<f32>, [usize; 2]) {
        assert!(self.epilogue == Epilogue::SpanAttention, "a residual is only read by SPAN's attention");
        self.run(input, Some(residual), batch, height, width)
    }

    fn run(
        &self,
        input: &[f32],
        residual: Option<&[f32]>,
        batch: usize,
        height: usize,
        width: usize,
    ) -> (Vec<f32>, [usize; 2]) {
        let cin = self.channels_in;
        assert_eq!(input.len(), batch * height * width * cin, "input is not [batch, height, width, {cin}]");
        let [oh, ow] = self.geometry.output_size(height, width).unwrap_or_else(|| {
            panic!("a {height}×{width} input is smaller than the {:?} kernel", self.geometry.kernel)
        });
        let row_len = ow * self.channels_out;
        let mut output = vec![0.0; batch * oh * row_len];
        if let Some(residual) = residual {
            assert_eq!(
                residual.len(),
                output.len(),
                "the residual is not [batch, {oh}, {ow}, {}]",
                self.channels_out
            );
        }
        if row_len == 0 {
            return (output, [oh, ow]);
        }
        let [ph, pw] = self.geometry.padding;
        if self.algorithm == Algorithm::Winograd {
            // Whole 6×6 input tiles for every 4×4 output tile: zeros past the bottom and right too.
            let tiled = |size: usize| size.div_ceil(winograd::TILE) * winograd::TILE + 2;
            let size = [tiled(oh), tiled(ow)];
            let padded = pad(input, batch, height, width, cin, [ph, pw], size);
            self.winograd(&padded, size, residual, &mut output, [oh, ow]);
            return (output, [oh, ow]);
        }
        let size = [height + 2 * ph, width + 2 * pw];
        let padded = pad(input, batch, height, width, cin, [ph, pw], size);
        let source = Source { data: &padded, height: size[0], width: size[1], rows: oh };
        let tasks =
            output.chunks_mut(row_len * ROWS_PER_TASK).enumerate().map(|(t, out)| (t * ROWS_PER_TASK, out));
        for_each_task(tasks.collect(), |(row, out)| {
            let residual = residual.map(|r| &r[row * row_len..][..out.len()]);
            Arch::new().dispatch(Rows { conv: self, source: &source, first_row: row, out, residual });
        });
        (output, [oh, ow])
    }

    /// Winograd over tile rows (four output rows of one image) as thread tasks.
    fn winograd(
        &self,
        padded: &[f32],
        size: [usize; 2],
        residual: Option<&[f32]>,
        output: &mut [f32],
        [oh, ow]: [usize; 2],
    ) {
        let row_len = ow * self.channels_out;
        let band = winograd::TILE * row_len;
        let mut tasks = Vec::new();
        for (n, image) in output.chunks_mut(oh * row_len).enumerate() {
            for (ty, out) in image.chunks_mut(band).enumerate() {
                let at = (n * oh + ty * winograd::TILE) * row_len;
                let residual = residual.map(|r| &r[at..at + out.len()]);
                tasks.push((n, ty, out, residual));
            }
        }
        let scratch_len = winograd::scratch_len(self.channels_in, self.channels_out);
        for_each_task(tasks, |(n, ty, out, residual)| {
            // One scratch buffer per thread, reused by every tile row and layer it runs.
            SCRATCH.with_borrow_mut(|scratch| {
                if scratch.len() < scratch_len {
                    scratch.resize(scratch_len, 0.0);
                }
                let job = winograd::TileRow {
                    input: padded,
                    input_height: size[0],
                    input_width: size[1],
                    n,
                    ty,
                    width: ow,
                    out,
                    residual,
                    scratch,
                };
                Arch::new().dispatch(WinogradRow { conv: self, job });
            });
        });
    }
}

thread_local! {
    /// Winograd's per-thread scratch (transformed inputs and products of one batch of tiles).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The padded NHWC input and the output rows it yields per image.
pub(crate) struct Source<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) height: usize,
    pub(crate) width: usize,
    /// Output rows per image.
    pub(crate) rows: usize,
}

/// Copies NHWC `input` into zeros of `size` (`[height, width]`) at offset `padding` (rows, columns);
/// borrowed when that is the input itself.
fn pad(
    input: &[f32],
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
    padding: [usize; 2],
    size: [usize; 2],
) -> Cow<'_, [f32]> {
    let [ph, pw] = padding;
    let [hp, wp] = size;
    if ph == 0 && pw == 0 && hp == height && wp == width {
        return Cow::Borrowed(input);
    }
    let mut padded = vec![0.0; batch * hp * wp * channels];
    let row = width * channels;
    for (n, image) in input.chunks_exact(height * row).enumerate() {
        for (y, src) in image.chunks_exact(row).enumerate() {
            let at = ((n * hp + y + ph) * wp + pw) * channels;
            padded[at..at + row].copy_from_slice(src);
        }
    }
    Cow::Owned(padded)
}

/// Output rows per thread task: enough work per task to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 2;

/// Runs `job` on every task: over rayon's pool natively, in order on wasm32's one thread.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn for_each_task<T: Send>(tasks: Vec<T>, job: impl Fn(T) + Sync + Send) {
    use rayon::prelude::*;
    tasks.into_par_iter().for_each(job);
}

#[cfg(target_family = "wasm")]
pub(crate) fn for_each_task<T>(tasks: Vec<T>, job: impl Fn(T)) {
    tasks.into_iter().for_each(job);
}

/// Some consecutive output rows (across images of the batch), computed with one SIMD instruction set.
struct Rows<'a> {
    conv: &'a PackedConv2d,
    source: &'a Source<'a>,
    first_row: usize,
    out: &'a mut [f32],
    /// The residual rows matching `out` (SPAN's attention only).
    residual: Option<&'a [f32]>,
}

impl WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Rows { conv, source, first_row, out, residual } = self;
        match vectors_per_block::<S>() {
            1 => simd::rows::<S, 1, 12>(simd, conv, source, first_row, out, residual),
            2 => simd::rows::<S, 2, 6>(simd, conv, source, first_row, out, residual),
            _ => simd::rows::<S, 4, 4>(simd, conv, source, first_row, out, residual),
        }
    }
}

/// One Winograd tile row with one SIMD instruction set.
struct WinogradRow<'a> {
    conv: &'a PackedConv2d,
    job: winograd::TileRow<'a>,
}

impl WithSimd for WinogradRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let WinogradRow { conv, job } = self;
        match vectors_per_block::<S>() {
            1 => winograd::tile_row::<S, 1, 12>(simd, conv, job),
            2 => winograd::tile_row::<S, 2, 6>(simd, conv, job),
            _ => winograd::tile_row::<S, 4, 4>(simd, conv, job),
        }
    }
}

/// SIMD vectors per output-channel block: 16-lane vectors alone, 4/8-lane ones in pairs, the scalar
/// fallback four at a time, so a register block fits the machine's registers.
fn vectors_per_block<S: Simd>() -> usize {
    match S::F32_LANES {
        16 => 1,
        4 | 8 => 2,
        _ => 4,
    }
}

/// Output channels per packed block on this machine.
fn block_width() -> usize {
    struct Width;
    impl WithSimd for Width {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) -> usize {
            vectors_per_block::<S>() * S::F32_LANES
        }
    }
    Arch::new().dispatch(Width)
}

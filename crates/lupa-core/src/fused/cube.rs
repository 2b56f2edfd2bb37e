//! The fused convolutions on `Cube` (wgpu: WebGPU, Vulkan, Metal, DX12): one CubeCL kernel for
//! every 2-D convolution of the models (3×3 and 1×1 "same", Real-CUGAN's 2×2 stride 2 and valid
//! 3×3) and one for every transposed convolution (Real-CUGAN's 2×2 stride 2 up, and its 4×4 and
//! 5×5 last layers), with the bias and the activation in their epilogue.
//!
//! Burn's own conv2d on WGSL is cubek's direct kernel: one invocation per output vector of four
//! channels, re-reading the input window from global memory for every four output channels. Here
//! each invocation computes a **register block** of `PX` neighbouring output pixels of a row ×
//! `CB` vectors of four output channels:
//!
//! - per kernel row and input-channel step, the `(PX − 1)·stride + kw` input columns the block
//!   needs are loaded once (vectors of four input channels where the channel count allows) and
//!   serve every kernel column and every output channel of the block;
//! - every weight vector loaded serves the block's `PX` pixels, and all invocations of a
//!   workgroup work on the same output channels, so a workgroup reads the same weights at the same
//!   time (one broadcast from cache on a GPU);
//! - the bias starts the accumulators; the activation (LeakyReLU, PReLU, SiLU, SPAN's attention)
//!   runs on them before the one write of the output.
//!
//! Layout: activations NHWC (channels last). The input may be any NHWC view whose channels are
//! contiguous (the previous fused convolution's output is one, so chained layers never copy); the
//! output is a contiguous NHWC buffer with its channels rounded up to a multiple of four, returned
//! as an NCHW view of the real channels (permuted strides, as Burn's own conv returns). Weights are
//! repacked per call to `[kh, kw, cin, cout₄]` (cout rounded up to four, zero-filled), a copy the
//! size of the weights.
//!
//! The transposed kernel is the same register block computed as a gather: output pixel `o` takes
//! input `i = (o + pad − k) / stride` for the kernel taps `k` where that divides exactly. A block
//! starts at a multiple of the stride, so which taps each of its pixels takes is known when the
//! kernel is compiled (no per-tap test at run time); rows are tested once per kernel row.
//!
//! Stride-1 `k×k` layers with vectors of four input channels (the bulk of every model's work) have
//! a second kernel with **workgroup memory** ([`fused_conv2d_tiled_kernel`]): 8×8 invocations
//! share an 8 × 64-pixel output tile; per step of four input channels they stage the input tile
//! with its halo (zeros outside the image) and the step's weights for their output channels, then
//! each computes its 8 pixels × 2 vectors from workgroup memory. GPUs and SwiftShader get it
//! (span-x4 on SwiftShader: 1.4× faster than the register kernel); lavapipe, whose workgroup
//! memory is ordinary memory, keeps the register kernel (the tiled one 1.9× slower there).
//!
//! Storage is f32 or f16 (the models' [`crate::Precision`]); accumulation is always f32. A layer
//! over [`MACS_PER_DISPATCH`] is dispatched in bands of output rows (the TDR guard).
//!
//! Measured figures: docs/BENCHMARKS-GPU.md.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

// Burn's CubeCL backend itself (under `Fusion` when Burn's fusion is on).
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::tensor::{DType, FloatDType, Shape};
use burn_cubecl::CubeBackend as Cube;

use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::{permute_nchw_to_nhwc, permute_nhwc_to_nchw};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{FusedActivation, FusedConvOptions, FusedConvTransposeOptions, burn_activation};

/// The activation, as the kernel's comptime switch.
const IDENTITY: u32 = 0;
const LEAKY_RELU: u32 = 1;
const PRELU: u32 = 2;
const SILU: u32 = 3;
const SPAN_ATTENTION: u32 = 4;

/// Invocations per workgroup.
const WORKGROUP: u32 = 64;

/// The most multiply-adds one dispatch computes: a layer larger than this is dispatched in bands of
/// output rows, so that no dispatch runs long enough for an operating system's GPU watchdog (TDR
/// on Windows: 2 s) to reset the device. 2³¹ multiply-adds (4.3 GFLOP) take 1 s at 4.3 GFLOP/s;
/// a low-end integrated GPU's peak is about a hundred times that.
static MACS_PER_DISPATCH: AtomicU64 = AtomicU64::new(1 << 31);

/// The rows of a band of at most [`MACS_PER_DISPATCH`] multiply-adds, at `macs_per_row` (at
/// least one).
fn max_band_rows(macs_per_row: u64) -> usize {
    let rows = MACS_PER_DISPATCH.load(Ordering::Relaxed) / macs_per_row.max(1);
    usize::try_from(rows).unwrap_or(usize::MAX).max(1)
}

/// Sets [`MACS_PER_DISPATCH`] (tests: bands change no result).
#[cfg(test)]
pub(super) fn set_macs_per_dispatch(macs: u64) {
    MACS_PER_DISPATCH.store(macs, Ordering::Relaxed);
}

/// The kernel forced for stride-1 layers: 0 chosen per device, 1 the register kernel, 2 the
/// workgroup-memory one (tests; benchmarks use `LUPA_CONV_KERNEL`).
static FORCED_KERNEL: AtomicU8 = AtomicU8::new(0);

/// Forces the workgroup-memory kernel wherever it applies (`true`), or goes back to the device's
/// choice (tests: it runs on GPUs, not on lavapipe).
#[cfg(test)]
pub(super) fn force_tiled(tiled: bool) {
    FORCED_KERNEL.store(if tiled { 2 } else { 0 }, Ordering::Relaxed);
}

/// The register block of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    /// Neighbouring output pixels of a row.
    pixels: usize,
    /// Vectors of four output channels.
    channel_vectors: usize,
}

impl Block {
    /// The register kernel's block for the device `tensor` lives on: 16 pixels × 2 vectors where
    /// the adapter's subgroups are at most 8 wide (llvmpipe's 8 AVX2 lanes; measured there,
    /// span-x4 on 128²: 4 × 2 takes 1.7× the time of 16 × 2, 8 × 2 1.3×), 8 × 2 elsewhere (64
    /// accumulators, a GPU's usual register budget; not measured on a GPU yet). On SwiftShader
    /// 16 × 2 measured no faster than 8 × 2. `LUPA_CONV_BLOCK=px,vectors` overrides it, for
    /// benchmarks.
    fn for_device(tensor: &CubeTensor) -> Self {
        if let Some(block) = std::env::var("LUPA_CONV_BLOCK").ok().and_then(|v| Self::parse(&v)) {
            return block;
        }
        let narrow = tensor.client.properties().hardware.plane_size_max <= 8;
        Self { pixels: if narrow { 16 } else { 8 }, channel_vectors: 2 }
    }

    fn parse(value: &str) -> Option<Self> {
        let (pixels, vectors) = value.split_once(',')?;
        let block =
            Self { pixels: pixels.trim().parse().ok()?, channel_vectors: vectors.trim().parse().ok()? };
        (block.pixels > 0 && block.channel_vectors > 0).then_some(block)
    }
}

/// `activation(conv2d(x, weight) + bias)` as one kernel, or Burn's ops where the kernels do not
/// apply (a dtype other than f32 and f16, more workgroups than the device dispatches).
pub(super) fn fused_conv2d(
    x: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    activation: FusedActivation<Cube>,
    options: FusedConvOptions,
) -> CubeTensor {
    let [_, _, height, width] = dims(&x);
    let [_, _, kh, kw] = dims(&weight);
    let ([sh, sw], [ph, pw]) = (options.stride, options.padding);
    let out = [(height + 2 * ph - kh) / sh + 1, (width + 2 * pw - kw) / sw + 1];
    let block = Block::for_device(&x);
    let Some(launch) = Launch::new(&x, &weight, &bias, out, block.pixels, block, (kh * kw) as f64) else {
        return burn_activation::<Cube>(Cube::conv2d(x, weight, Some(bias), options.burn()), activation);
    };
    // [cout, cin, kh, kw] → [kh, kw, cin, cout₄].
    let weight = Cube::float_permute(weight, &[2, 3, 1, 0]);
    let args = launch.args(x, weight, bias, activation);
    let geometry = [kh, kw, sh, sw, ph, pw];
    // The register kernel's block reads (pixels − 1)·sw + kw input columns from its first.
    let window = [0, (launch.pixels - 1) * sw + kw, 0];
    let tiled = Tiled::for_layer(&launch, &args, geometry);
    match (launch.output.dtype, tiled) {
        (DType::F16, Some(tiled)) => launch_conv2d_tiled::<half::f16>(&launch, args, geometry, tiled),
        (_, Some(tiled)) => launch_conv2d_tiled::<f32>(&launch, args, geometry, tiled),
        (DType::F16, None) => launch_register::<half::f16>(&launch, args, geometry, window),
        (_, None) => launch_register::<f32>(&launch, args, geometry, window),
    }
    launch.finish()
}

/// The workgroup-memory variant's tile: `rows × cols` invocations, each `pixels` output pixels of
/// its row, so a workgroup computes `rows × cols·pixels` output pixels.
#[derive(Debug, Clone, Copy)]
struct Tiled {
    rows: usize,
    cols: usize,
    pixels: usize,
}

impl Tiled {
    /// The tile for a stride-1 `kh×kw` layer (kh, kw > 1) with vectors of four input channels,
    /// where its input tile (and halo) and weight block fit the device's workgroup memory; `None`
    /// otherwise (and on adapters with subgroups of at most 8 lanes, the CPU ones, where the
    /// register kernel measured faster). `LUPA_CONV_KERNEL=register|tiled` overrides the choice,
    /// for benchmarks.
    fn for_layer(launch: &Launch, args: &Args, [kh, kw, sh, sw, ..]: [usize; 6]) -> Option<Self> {
        let hardware = &launch.client.properties().hardware;
        let wanted =
            match (FORCED_KERNEL.load(Ordering::Relaxed), std::env::var("LUPA_CONV_KERNEL").as_deref()) {
                (2, _) | (_, Ok("tiled")) => true,
                (1, _) | (_, Ok("register")) => false,
                _ => hardware.plane_size_max > 8,
            };
        let applies = wanted && [sh, sw] == [1, 1] && kh > 1 && kw > 1 && args.input_vector == 4;
        let tile = Self { rows: 8, cols: 8, pixels: 8 };
        let element = args.input.dtype.size() * 4;
        let bytes = (tile.rows + kh - 1) * (tile.cols * tile.pixels + kw - 1) * element
            + kh * kw * 4 * launch.channel_vectors * element;
        (applies && bytes <= hardware.max_shared_memory_size).then_some(tile)
    }
}

/// [`fused_conv2d_tiled_kernel`] storing `F`, accumulating in f32.
fn launch_conv2d_tiled<F: Float + CubeElement>(
    launch: &Launch,
    args: Args,
    geometry: [usize; 6],
    tile: Tiled,
) {
    let [kh, kw, _, _, ph, pw] = geometry;
    for (row0, rows) in launch.bands(tile.rows) {
        let tiles_y = rows.div_ceil(tile.rows);
        let cubes = CubeCount::Static(
            launch.out[1].div_ceil(tile.cols * tile.pixels) as u32,
            (launch.batch * tiles_y) as u32,
            (launch.groups / launch.channel_vectors) as u32,
        );
        let [out_h, out_w] = launch.out;
        let sizes = SizesLaunch::new(out_h, out_w, tiles_y, 0, launch.channels_out, row0, rows);
        // SAFETY: the input tile is read only inside the image (zeros staged outside it), weights
        // and bias span `groups` vectors per row, and each output vector is written once
        // (`oy < out_h`, `ox < out_w`); the workgroup memory is `rows_in × cols_in` + the weight
        // block, as indexed.
        #[allow(unsafe_code)]
        unsafe {
            fused_conv2d_tiled_kernel::launch_unchecked::<F, f32>(
                &launch.client,
                cubes,
                CubeDim::new_2d(tile.cols as u32, tile.rows as u32),
                4,
                args.input.clone().into_tensor_arg(),
                args.weight.clone().into_buffer_arg(),
                args.bias.clone().into_buffer_arg(),
                args.alpha.clone().into_buffer_arg(),
                args.residual.clone().into_tensor_arg(),
                launch.output.clone().into_buffer_arg(),
                args.slope,
                sizes,
                [kh, kw, ph, pw],
                [tile.rows, tile.cols, tile.pixels],
                launch.channel_vectors,
                args.code,
            );
        }
    }
}

/// [`fused_conv_kernel`] storing `F`, accumulating in f32, in bands of rows; `window` as the
/// kernel takes it.
fn launch_register<F: Float + CubeElement>(
    launch: &Launch,
    args: Args,
    geometry: [usize; 6],
    window: [usize; 3],
) {
    // SAFETY: every index the kernel reads is inside its tensor: input columns and rows are
    // clamped to the image (and masked), weights and bias span `groups` vectors per row, and each
    // output vector is written by exactly one invocation (`ox < out_w`, `block < blocks`).
    for band in launch.bands(1) {
        #[allow(unsafe_code)]
        unsafe {
            fused_conv_kernel::launch_unchecked::<F, f32>(
                &launch.client,
                launch.cubes(band.1),
                CubeDim::new_1d(WORKGROUP),
                args.input_vector,
                4,
                args.input.clone().into_tensor_arg(),
                args.weight.clone().into_buffer_arg(),
                args.bias.clone().into_buffer_arg(),
                args.alpha.clone().into_buffer_arg(),
                args.residual.clone().into_tensor_arg(),
                launch.output.clone().into_buffer_arg(),
                args.slope,
                launch.sizes(band),
                geometry,
                window,
                launch.pixels,
                launch.channel_vectors,
                args.code,
            );
        }
    }
}

/// `activation(conv_transpose2d(x, weight) + bias)` as one kernel, or Burn's ops where it does
/// not apply (as [`fused_conv2d`]).
pub(super) fn fused_conv_transpose2d(
    x: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    activation: FusedActivation<Cube>,
    options: FusedConvTransposeOptions,
) -> CubeTensor {
    let [_, _, height, width] = dims(&x);
    let [_, _, kh, kw] = dims(&weight);
    let ([sh, sw], [ph, pw], [oph, opw]) = (options.stride, options.padding, options.padding_out);
    let out = [(height - 1) * sh + kh + oph - 2 * ph, (width - 1) * sw + kw + opw - 2 * pw];
    let block = Block::for_device(&x);
    // A block starts at a multiple of the stride: its pixels' taps are known at compile time.
    let pixels = block.pixels.div_ceil(sw) * sw;
    // Each output pixel takes kh·kw / (sh·sw) taps on average.
    let taps = (kh * kw) as f64 / (sh * sw) as f64;
    let Some(launch) = Launch::new(&x, &weight, &bias, out, pixels, block, taps) else {
        return burn_activation::<Cube>(
            Cube::conv_transpose2d(x, weight, Some(bias), options.burn()),
            activation,
        );
    };
    // The input columns a block reads: from ⌊(pw − kw + 1) / sw⌋ to ⌊(pixels − 1 + pw) / sw⌋ past
    // its first pixel's, as `shift − kw` (kept non-negative for the kernel's unsigned arithmetic).
    let first_column = (pw as i64 - kw as i64 + 1).div_euclid(sw as i64);
    let last_column = ((pixels - 1 + pw) as i64).div_euclid(sw as i64);
    let columns = (last_column - first_column + 1) as usize;
    let shift = (kw as i64 + first_column) as usize;
    // [cin, cout, kh, kw] → [kh, kw, cin, cout₄].
    let weight = Cube::float_permute(weight, &[2, 3, 0, 1]);
    let args = launch.args(x, weight, bias, activation);
    let geometry = [kh, kw, sh, sw, ph, pw];
    match launch.output.dtype {
        DType::F16 => launch_register::<half::f16>(&launch, args, geometry, [1, columns, shift]),
        _ => launch_register::<f32>(&launch, args, geometry, [1, columns, shift]),
    }
    launch.finish()
}

/// The dispatch of one fused convolution and its output buffer.
struct Launch {
    client: cubecl::client::Client,
    output: CubeTensor,
    batch: usize,
    out: [usize; 2],
    channels_out: usize,
    /// Vectors of four output channels (the channels rounded up to four).
    groups: usize,
    pixels: usize,
    channel_vectors: usize,
    blocks_x: usize,
    /// Multiply-adds per output row (all of the batch), for [`Launch::bands`].
    macs_per_row: u64,
}

/// A launch's tensors, in the layouts the kernels read.
struct Args {
    input: CubeTensor,
    input_vector: usize,
    weight: CubeTensor,
    bias: CubeTensor,
    /// PReLU's slopes (the bias, unread, for the other activations).
    alpha: CubeTensor,
    /// SPAN's residual as NHWC (the input, unread, for the other activations).
    residual: CubeTensor,
    slope: f32,
    code: u32,
}

impl Launch {
    /// The launch of a convolution of `x` (NCHW) with `weight` into `out` = `[height, width]`, in
    /// blocks of `pixels` × `block.channel_vectors`; `None` where the kernels do not apply: a dtype
    /// other than f32, or more workgroups than the device dispatches.
    fn new(
        x: &CubeTensor,
        weight: &CubeTensor,
        bias: &CubeTensor,
        out: [usize; 2],
        pixels: usize,
        block: Block,
        taps: f64,
    ) -> Option<Self> {
        if !matches!(x.dtype, DType::F32 | DType::F16) || [weight, bias].iter().any(|t| t.dtype != x.dtype) {
            return None;
        }
        let batch = dims(x)[0];
        let channels_out = bias.meta.shape()[0];
        let channels_in = dims(x)[1];
        let macs_per_row = (taps * (batch * out[1] * channels_in * channels_out) as f64) as u64;
        let groups = channels_out.div_ceil(4);
        let channel_vectors =
            if groups.is_multiple_of(block.channel_vectors) { block.channel_vectors } else { 1 };
        let blocks_x = out[1].div_ceil(pixels);
        let max = x.client.properties().hardware.max_cube_count;
        let widest = batch * blocks_x * out[0].min(max_band_rows(macs_per_row));
        if widest.div_ceil(WORKGROUP as usize) > max.0 as usize || groups / channel_vectors > max.1 as usize {
            return None;
        }
        let output = empty_device_contiguous_dtype(
            x.client.clone(),
            x.device.clone(),
            Shape::new([batch, out[0], out[1], groups * 4]),
            x.dtype,
        );
        let client = x.client.clone();
        Some(Self {
            client,
            output,
            batch,
            out,
            channels_out,
            groups,
            pixels,
            channel_vectors,
            blocks_x,
            macs_per_row,
        })
    }

    /// The output's rows in bands of whole `multiple`s of rows, each at most
    /// [`MACS_PER_DISPATCH`] multiply-adds (at least `multiple` rows): `(first row, rows)`.
    fn bands(&self, multiple: usize) -> Vec<(usize, usize)> {
        let rows = (max_band_rows(self.macs_per_row) / multiple).max(1) * multiple;
        (0..self.out[0]).step_by(rows).map(|row0| (row0, rows.min(self.out[0] - row0))).collect()
    }

    /// Workgroups for the band of `rows` rows: blocks of pixels along x, vectors of output
    /// channels along y.
    fn cubes(&self, rows: usize) -> CubeCount {
        let x = (self.batch * rows * self.blocks_x).div_ceil(WORKGROUP as usize);
        CubeCount::Static(x as u32, (self.groups / self.channel_vectors) as u32, 1)
    }

    /// The kernels' run-time sizes for the band `(row0, rows)`.
    fn sizes(&self, (row0, rows): (usize, usize)) -> SizesLaunch {
        let blocks = self.batch * rows * self.blocks_x;
        SizesLaunch::new(self.out[0], self.out[1], self.blocks_x, blocks, self.channels_out, row0, rows)
    }

    /// `x` as NHWC with contiguous channels (a fused convolution's output already is one), the
    /// weight (permuted to `[kh, kw, cin, cout]`) and bias padded to `groups` vectors, and the
    /// activation's operands.
    fn args(
        &self,
        x: CubeTensor,
        weight: CubeTensor,
        bias: CubeTensor,
        activation: FusedActivation<Cube>,
    ) -> Args {
        let channels = self.groups * 4;
        let mut input = permute_nchw_to_nhwc(x);
        if input.meta.strides()[3] != 1 {
            input = into_contiguous(input);
        }
        let channels_in = input.meta.shape()[3];
        let vectorised =
            channels_in.is_multiple_of(4) && input.meta.strides()[..3].iter().all(|s| s.is_multiple_of(4));
        let weight = pad_last(into_contiguous(weight), channels);
        let bias = pad_last(bias, channels);
        let (code, slope, alpha, residual) = match activation {
            FusedActivation::Identity => (IDENTITY, 0.0, bias.clone(), input.clone()),
            FusedActivation::LeakyRelu(slope) => (LEAKY_RELU, slope, bias.clone(), input.clone()),
            FusedActivation::Prelu(alpha) => {
                let count = alpha.meta.shape().num_elements();
                let slopes = Cube::float_reshape(alpha, Shape::new([count]));
                let slopes = Cube::float_expand(slopes, Shape::new([self.channels_out]));
                (PRELU, 0.0, pad_last(slopes, channels), input.clone())
            }
            FusedActivation::Silu => (SILU, 0.0, bias.clone(), input.clone()),
            FusedActivation::SpanAttention(residual) => {
                (SPAN_ATTENTION, 0.0, bias.clone(), permute_nchw_to_nhwc(residual))
            }
        };
        Args {
            input,
            input_vector: if vectorised { 4 } else { 1 },
            weight,
            bias,
            alpha,
            residual,
            slope,
            code,
        }
    }

    /// The output as an NCHW view of its real channels.
    fn finish(self) -> CubeTensor {
        let [h, w] = self.out;
        let output = if self.groups * 4 == self.channels_out {
            self.output
        } else {
            let ranges =
                [(0..self.batch).into(), (0..h).into(), (0..w).into(), (0..self.channels_out).into()];
            Cube::float_slice(self.output, &ranges)
        };
        permute_nhwc_to_nchw(output)
    }
}

/// `tensor` with its last axis zero-padded to `len`, contiguous.
fn pad_last(tensor: CubeTensor, len: usize) -> CubeTensor {
    let mut shape = tensor.meta.shape().clone();
    let last = shape.num_dims() - 1;
    if shape[last] == len {
        return into_contiguous(tensor);
    }
    shape[last] = len - shape[last];
    let dtype = if tensor.dtype == DType::F16 { FloatDType::F16 } else { FloatDType::F32 };
    let zeros = Cube::float_zeros(shape, &tensor.device, dtype);
    into_contiguous(Cube::float_cat(vec![tensor, zeros], last))
}

fn dims(tensor: &CubeTensor) -> [usize; 4] {
    let shape = tensor.meta.shape();
    std::array::from_fn(|i| shape[i])
}

/// The run-time sizes both kernels take.
#[derive(CubeLaunch, CubeType)]
struct Sizes {
    out_h: usize,
    out_w: usize,
    /// Blocks per output row (the tiled kernel: tiles down the band).
    blocks_x: usize,
    /// Blocks in this dispatch: batch × rows × blocks_x.
    blocks: usize,
    /// The real output channels (SPAN's residual has no padding channels).
    channels_out: usize,
    /// The first output row of this dispatch's band.
    row0: usize,
    /// The band's rows.
    rows: usize,
}

/// Where the block of one invocation is.
#[derive(CubeType, Clone, Copy)]
struct At {
    /// Batch index.
    b: usize,
    /// Output row.
    oy: usize,
    /// First output pixel of the row.
    ox0: usize,
    /// First output-channel vector.
    first: usize,
}

/// The block of this invocation (`CUBE_POS_X · CUBE_DIM_X + UNIT_POS_X < sizes.blocks`), in the
/// dispatch's band of rows.
#[cube]
fn block_of(sizes: &Sizes, #[comptime] pixels: usize, #[comptime] channel_vectors: usize) -> At {
    let block = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let bx = block % sizes.blocks_x;
    let row = block / sizes.blocks_x;
    At {
        b: row / sizes.rows,
        oy: sizes.row0 + row % sizes.rows,
        ox0: bx * pixels,
        first: CUBE_POS_Y as usize * channel_vectors,
    }
}

/// Accumulators starting at the bias: `pixels × channel_vectors`, pixel-major.
#[cube]
fn start<F: Float, A: Float, NO: Size>(
    bias: &[Vector<F, NO>],
    first: usize,
    #[comptime] pixels: usize,
    #[comptime] channel_vectors: usize,
) -> Array<Vector<A, NO>> {
    let mut acc = Array::<Vector<A, NO>>::new(comptime![pixels * channel_vectors]);
    #[unroll]
    for v in 0..channel_vectors {
        let b = Vector::<A, NO>::cast_from(bias[first + v]);
        #[unroll]
        for p in 0..pixels {
            acc[p * channel_vectors + v] = b;
        }
    }
    acc
}

/// Row `iy`'s input columns `first + c` for `c < columns`: their offsets (clamped to the row) and
/// masks (1 inside, 0 outside: zero padding).
#[cube]
fn columns_of<F: Float, A: Float, NI: Size>(
    input: &Tensor<Vector<F, NI>>,
    row_offset: usize,
    first: i32,
    #[comptime] columns: usize,
) -> (Array<usize>, Array<A>) {
    let mut offsets = Array::<usize>::new(columns);
    let mut masks = Array::<A>::new(columns);
    #[unroll]
    for c in 0..columns {
        let ix = first + c as i32;
        let inside = ix >= 0 && (ix as usize) < input.shape(2);
        offsets[c] = row_offset + select(inside, ix as usize, 0usize) * input.stride(2);
        masks[c] = select(inside, A::new(1.0), A::new(0.0));
    }
    (offsets, masks)
}

/// The activation on the accumulators, then the one write of each output vector.
#[cube]
#[allow(clippy::too_many_arguments)]
fn epilogue<F: Float, A: Float, NO: Size>(
    acc: &Array<Vector<A, NO>>,
    alpha: &[Vector<F, NO>],
    residual: &Tensor<F>,
    output: &mut [Vector<F, NO>],
    slope: f32,
    sizes: &Sizes,
    at: &At,
    #[comptime] pixels: usize,
    #[comptime] channel_vectors: usize,
    #[comptime] activation: u32,
) {
    let (b, oy, ox0, first) = (at.b, at.oy, at.ox0, at.first);
    let groups = alpha.len();
    let zero = Vector::<A, NO>::new(A::new(0.0));
    let one = Vector::<A, NO>::new(A::new(1.0));
    #[unroll]
    for p in 0..pixels {
        let ox = ox0 + p;
        if ox < sizes.out_w {
            let pixel = (b * sizes.out_h + oy) * sizes.out_w + ox;
            #[unroll]
            for v in 0..channel_vectors {
                let group = first + v;
                let y = acc[p * channel_vectors + v];
                let mut out = y;
                if comptime![activation == LEAKY_RELU] {
                    out = max(y, zero) + min(y, zero) * Vector::new(A::cast_from(slope));
                } else if comptime![activation == PRELU] {
                    out = max(y, zero) + min(y, zero) * Vector::<A, NO>::cast_from(alpha[group]);
                } else if comptime![activation == SILU] {
                    out = y / (one + Exp::exp(zero - y));
                } else if comptime![activation == SPAN_ATTENTION] {
                    let mut r = zero;
                    let base = b * residual.stride(0) + oy * residual.stride(1) + ox * residual.stride(2);
                    #[unroll]
                    for k in 0..NO::value() {
                        let channel = group * NO::value() + k;
                        if channel < sizes.channels_out {
                            r.insert(k, A::cast_from(residual[base + channel * residual.stride(3)]));
                        }
                    }
                    let sigmoid = one / (one + Exp::exp(zero - y));
                    out = (y + r) * (sigmoid - Vector::new(A::new(0.5)));
                }
                output[pixel * groups + group] = Vector::<F, NO>::cast_from(out);
            }
        }
    }
}

/// Kernel row `ky` of the block into `acc`: per step of `NI` input channels, the row's `columns`
/// input vectors (at `offsets`, zeroed by `masks`) are loaded once and serve every tap, pixel and
/// output-channel vector of the block. `taps` is `[kw, sw, transposed, pw, shift]`: a convolution
/// (`transposed` 0) takes tap `kx` of pixel `p` from column `p·sw + kx`; a transposed one from
/// column `(p + pw + sw·kw − kx) / sw − shift` where that divides exactly (none otherwise).
#[cube]
#[allow(clippy::too_many_arguments)]
fn accumulate_row<F: Float, A: Float, NI: Size, NO: Size>(
    input: &Tensor<Vector<F, NI>>,
    weight: &[Vector<F, NO>],
    offsets: &Array<usize>,
    masks: &Array<A>,
    acc: &mut Array<Vector<A, NO>>,
    groups: usize,
    first: usize,
    #[comptime] ky: usize,
    #[comptime] taps: [usize; 5],
    #[comptime] columns: usize,
    #[comptime] pixels: usize,
    #[comptime] channel_vectors: usize,
) {
    let ni = NI::value();
    let [kw, sw, transposed, pw, shift] = taps;
    let channels_in = input.shape(3);
    for ci in range_stepped(0usize, channels_in, ni) {
        let mut xs = Array::<Vector<A, NI>>::new(columns);
        #[unroll]
        for c in 0..columns {
            xs[c] = Vector::<A, NI>::cast_from(input[(offsets[c] + ci) / ni]) * Vector::new(masks[c]);
        }
        #[unroll]
        for kx in 0..kw {
            #[unroll]
            for j in 0..ni {
                let weight_row = ((ky * kw + kx) * channels_in + ci + j) * groups + first;
                #[unroll]
                for v in 0..channel_vectors {
                    let w = Vector::<A, NO>::cast_from(weight[weight_row + v]);
                    #[unroll]
                    for p in 0..pixels {
                        let t = comptime![p + pw + sw * kw - kx];
                        if comptime![transposed == 0 || t % sw == 0] {
                            let column =
                                comptime![if transposed == 1 { t / sw - shift } else { p * sw + kx }];
                            let x = Vector::<A, NO>::new(xs[column].extract(j));
                            acc[p * channel_vectors + v] += x * w;
                        }
                    }
                }
            }
        }
    }
}

/// One invocation of the convolution or, with `window[0]` = 1, the transposed convolution:
/// `pixels` output pixels of one row × `channel_vectors` vectors of four output channels.
/// `geometry` is `[kh, kw, stride_h, stride_w, pad_h, pad_w]`; `window` is `[transposed, columns,
/// shift]`: the block reads `columns` input columns, from `ox0·sw − pw` for a convolution, from
/// `ox0 / sw + shift − kw` for a transposed one (whose output row `oy` takes input row
/// `(oy + ph − ky) / sh` where that divides exactly).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn fused_conv_kernel<F: Float, A: Float, NI: Size, NO: Size>(
    input: &Tensor<Vector<F, NI>>,
    weight: &[Vector<F, NO>],
    bias: &[Vector<F, NO>],
    alpha: &[Vector<F, NO>],
    residual: &Tensor<F>,
    output: &mut [Vector<F, NO>],
    slope: f32,
    sizes: Sizes,
    #[comptime] geometry: [usize; 6],
    #[comptime] window: [usize; 3],
    #[comptime] pixels: usize,
    #[comptime] channel_vectors: usize,
    #[comptime] activation: u32,
) {
    if ((CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize) >= sizes.blocks {
        terminate!();
    }
    let [kh, kw, sh, sw, ph, pw] = geometry;
    let [transposed, columns, shift] = window;
    let at = block_of(&sizes, pixels, channel_vectors);
    let (b, oy, ox0, first) = (at.b, at.oy, at.ox0, at.first);
    let groups = bias.len();
    let mut acc = start::<F, A, NO>(bias, first, pixels, channel_vectors);

    #[unroll]
    for ky in 0..kh {
        let mut iy = (oy * sh + ky) as i32 - ph as i32;
        let mut on_row = iy >= 0;
        let mut first_column = (ox0 * sw) as i32 - pw as i32;
        if comptime![transposed == 1] {
            let ty = (oy + ph) as i32 - ky as i32;
            iy = ty / sh as i32;
            on_row = ty >= 0 && iy * sh as i32 == ty;
            first_column = (ox0 / sw + shift) as i32 - kw as i32;
        }
        if on_row && (iy as usize) < input.shape(1) {
            let row_offset = b * input.stride(0) + iy as usize * input.stride(1);
            let (offsets, masks) = columns_of::<F, A, NI>(input, row_offset, first_column, columns);
            let taps = comptime![[kw, sw, transposed, pw, shift]];
            accumulate_row::<F, A, NI, NO>(
                input,
                weight,
                &offsets,
                &masks,
                &mut acc,
                groups,
                first,
                ky,
                taps,
                columns,
                pixels,
                channel_vectors,
            );
        }
    }
    epilogue::<F, A, NO>(
        &acc,
        alpha,
        residual,
        output,
        slope,
        &sizes,
        &at,
        pixels,
        channel_vectors,
        activation,
    );
}

/// The convolution with workgroup memory, stride 1: a workgroup of `rows × cols` invocations
/// computes a `rows × cols·pixels` tile of the output. Per step of four input channels it stages
/// the input tile with its halo (zeros outside the image) and the step's weights for its output
/// channels in workgroup memory, then each invocation computes its `pixels × channel_vectors`
/// register block from there. `kernel` is `[kh, kw, pad_h, pad_w]`; `sizes.blocks_x` is the
/// number of tiles down the dispatch's band of rows.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn fused_conv2d_tiled_kernel<F: Float, A: Float, NO: Size>(
    input: &Tensor<Vector<F, NO>>,
    weight: &[Vector<F, NO>],
    bias: &[Vector<F, NO>],
    alpha: &[Vector<F, NO>],
    residual: &Tensor<F>,
    output: &mut [Vector<F, NO>],
    slope: f32,
    sizes: Sizes,
    #[comptime] kernel: [usize; 4],
    #[comptime] tile: [usize; 3],
    #[comptime] channel_vectors: usize,
    #[comptime] activation: u32,
) {
    let [kh, kw, ph, pw] = kernel;
    let [rows, cols, pixels] = tile;
    let rows_in = comptime![rows + kh - 1];
    let cols_in = comptime![cols * pixels + kw - 1];
    let tile_len = comptime![rows_in * cols_in];
    let taps = comptime![kh * kw * 4 * channel_vectors];
    let units = comptime![rows * cols];
    let columns = comptime![pixels + kw - 1];
    let mut staged = Shared::<[Vector<F, NO>]>::new_slice(tile_len);
    let mut staged_weights = Shared::<[Vector<F, NO>]>::new_slice(taps);

    let b = CUBE_POS_Y as usize / sizes.blocks_x;
    let oy0 = sizes.row0 + (CUBE_POS_Y as usize % sizes.blocks_x) * rows;
    let ox_tile = CUBE_POS_X as usize * cols * pixels;
    let first = CUBE_POS_Z as usize * channel_vectors;
    let (ry, rx) = (UNIT_POS_Y as usize, UNIT_POS_X as usize);
    let unit = ry * cols + rx;
    let groups = bias.len();
    let (in_h, in_w, channels_in) = (input.shape(1), input.shape(2), input.shape(3));
    let mut acc = start::<F, A, NO>(bias, first, pixels, channel_vectors);

    for ci in range_stepped(0usize, channels_in, 4usize) {
        let mut i = unit;
        while i < tile_len {
            let iy = (oy0 + i / cols_in) as i32 - ph as i32;
            let ix = (ox_tile + i % cols_in) as i32 - pw as i32;
            let mut value = Vector::<F, NO>::new(F::new(0.0));
            if iy >= 0 && (iy as usize) < in_h && ix >= 0 && (ix as usize) < in_w {
                let offset =
                    b * input.stride(0) + iy as usize * input.stride(1) + ix as usize * input.stride(2);
                value = input[(offset + ci) / 4];
            }
            staged[i] = value;
            i += units;
        }
        let mut k = unit;
        while k < taps {
            // k = ((tap · 4) + j) · channel_vectors + v, tap = ky · kw + kx.
            let v = k % channel_vectors;
            let tap_j = k / channel_vectors;
            let row = (tap_j / 4) * channels_in + ci + tap_j % 4;
            staged_weights[k] = weight[row * groups + first + v];
            k += units;
        }
        sync_cube();
        #[unroll]
        for ky in 0..kh {
            let row = (ry + ky) * cols_in + rx * pixels;
            let mut xs = Array::<Vector<A, NO>>::new(columns);
            #[unroll]
            for c in 0..columns {
                xs[c] = Vector::<A, NO>::cast_from(staged[row + c]);
            }
            #[unroll]
            for kx in 0..kw {
                #[unroll]
                for j in 0..4 {
                    #[unroll]
                    for v in 0..channel_vectors {
                        let w = Vector::<A, NO>::cast_from(
                            staged_weights[((ky * kw + kx) * 4 + j) * channel_vectors + v],
                        );
                        #[unroll]
                        for p in 0..pixels {
                            let x = Vector::<A, NO>::new(xs[p + kx].extract(j));
                            acc[p * channel_vectors + v] += x * w;
                        }
                    }
                }
            }
        }
        sync_cube();
    }
    let at = At { b, oy: oy0 + ry, ox0: ox_tile + rx * pixels, first };
    if at.oy < sizes.row0 + sizes.rows {
        epilogue::<F, A, NO>(
            &acc,
            alpha,
            residual,
            output,
            slope,
            &sizes,
            &at,
            pixels,
            channel_vectors,
            activation,
        );
    }
}

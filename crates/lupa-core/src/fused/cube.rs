//! The fused convolution on `Cube` (wgpu: WebGPU, Vulkan, Metal, DX12): one CubeCL kernel for
//! every 2-D convolution of the models (3×3 and 1×1 "same", Real-CUGAN's 2×2 stride 2 and valid
//! 3×3), with the bias and the activation in its epilogue.
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
//! The register block depends on the device ([`Block::for_device`]). The kernel stages nothing in
//! workgroup memory: the block's reuse lives in registers, and the weights a workgroup shares come
//! from cache.

use burn::backend::Cube;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, FloatDType, Shape};
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::{permute_nchw_to_nhwc, permute_nhwc_to_nchw};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{FusedActivation, FusedConvOptions, burn_activation};
use burn::backend::ops::ModuleOps;

/// The activation, as the kernel's comptime switch.
const IDENTITY: u32 = 0;
const LEAKY_RELU: u32 = 1;
const PRELU: u32 = 2;
const SILU: u32 = 3;
const SPAN_ATTENTION: u32 = 4;

/// Invocations per workgroup.
const WORKGROUP: u32 = 64;

/// The register block of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    /// Neighbouring output pixels of a row.
    pub pixels: usize,
    /// Vectors of four output channels.
    pub channel_vectors: usize,
}

impl Block {
    /// The block for the device `tensor` lives on: 16 pixels × 2 vectors where the adapter's
    /// subgroups are at most 8 wide (llvmpipe's 8 AVX2 lanes; measured there, span-x4 on 128²:
    /// 4 × 2 takes 1.7× the time of 16 × 2, 8 × 2 1.3×), 8 × 2 elsewhere (a GPU's usual
    /// register budget for 64 accumulators; not yet measured on one). `LUPA_CONV_BLOCK=px,vectors`
    /// overrides it, for benchmarks.
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

/// `activation(conv2d(x, weight) + bias)` as one kernel, or Burn's ops where the kernel does not
/// apply (a dtype other than f32, more workgroups than the device dispatches).
pub(super) fn fused_conv2d(
    x: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    activation: FusedActivation<Cube>,
    options: FusedConvOptions,
) -> CubeTensor {
    if [&x, &weight, &bias].iter().any(|t| t.dtype != DType::F32) {
        return burn_activation::<Cube>(Cube::conv2d(x, weight, Some(bias), options.burn()), activation);
    }
    let block = Block::for_device(&x);
    let [batch, channels_in, height, width] = dims(&x);
    let [channels_out, _, kh, kw] = dims(&weight);
    let [sh, sw] = options.stride;
    let [ph, pw] = options.padding;
    let out_h = (height + 2 * ph - kh) / sh + 1;
    let out_w = (width + 2 * pw - kw) / sw + 1;
    let groups = channels_out.div_ceil(4);
    let channel_vectors = if groups % block.channel_vectors == 0 { block.channel_vectors } else { 1 };
    let blocks_x = out_w.div_ceil(block.pixels);
    let blocks = batch * out_h * blocks_x;
    let cubes_x = blocks.div_ceil(WORKGROUP as usize);
    let cubes_y = groups / channel_vectors;
    let max = x.client.properties().hardware.max_cube_count;
    if cubes_x > max.0 as usize || cubes_y > max.1 as usize {
        return burn_activation::<Cube>(Cube::conv2d(x, weight, Some(bias), options.burn()), activation);
    }

    // NHWC input with contiguous channels (a fused convolution's output already is one).
    let mut input = permute_nchw_to_nhwc(x);
    if input.meta.strides()[3] != 1 {
        input = into_contiguous(input);
    }
    let vectorised = channels_in % 4 == 0 && input.meta.strides()[..3].iter().all(|s| s % 4 == 0);
    let input_vector = if vectorised { 4 } else { 1 };

    let weight = pad_last(into_contiguous(Cube::float_permute(weight, &[2, 3, 1, 0])), groups * 4);
    let bias = pad_last(bias, groups * 4);
    let (code, slope, alpha, residual) = match activation {
        FusedActivation::Identity => (IDENTITY, 0.0, bias.clone(), input.clone()),
        FusedActivation::LeakyRelu(slope) => (LEAKY_RELU, slope, bias.clone(), input.clone()),
        FusedActivation::Prelu(alpha) => {
            let slopes = Cube::float_reshape(alpha.clone(), Shape::new([alpha.meta.shape().num_elements()]));
            let slopes = into_contiguous(Cube::float_expand(slopes, Shape::new([channels_out])));
            (PRELU, 0.0, pad_last(slopes, groups * 4), input.clone())
        }
        FusedActivation::Silu => (SILU, 0.0, bias.clone(), input.clone()),
        FusedActivation::SpanAttention(residual) => {
            (SPAN_ATTENTION, 0.0, bias.clone(), permute_nchw_to_nhwc(residual))
        }
    };

    let client = input.client.clone();
    let device = input.device.clone();
    let output = empty_device_contiguous_dtype(
        client.clone(),
        device,
        Shape::new([batch, out_h, out_w, groups * 4]),
        DType::F32,
    );
    // SAFETY: every index the kernel reads is inside its tensor: input columns and rows are
    // clamped to the image (and masked), weights and bias span `groups` vectors per row, and each
    // output vector is written by exactly one invocation, `ox < out_w`, `block < blocks`.
    #[allow(unsafe_code)]
    unsafe {
        fused_conv2d_kernel::launch_unchecked::<f32>(
            &client,
            CubeCount::Static(cubes_x as u32, cubes_y as u32, 1),
            CubeDim::new_1d(WORKGROUP),
            input_vector,
            4,
            input.into_tensor_arg(),
            weight.into_buffer_arg(),
            bias.into_buffer_arg(),
            alpha.into_buffer_arg(),
            residual.into_tensor_arg(),
            output.clone().into_buffer_arg(),
            slope,
            out_h,
            out_w,
            blocks_x,
            blocks,
            channels_out,
            [kh, kw, sh, sw, ph, pw],
            block.pixels,
            channel_vectors,
            code,
        );
    }
    let output = if groups * 4 == channels_out {
        output
    } else {
        Cube::float_slice(
            output,
            &[(0..batch).into(), (0..out_h).into(), (0..out_w).into(), (0..channels_out).into()],
        )
    };
    permute_nhwc_to_nchw(output)
}

/// `tensor` with its last axis zero-padded to `len`.
fn pad_last(tensor: CubeTensor, len: usize) -> CubeTensor {
    let mut shape = tensor.meta.shape().clone();
    let last = shape.num_dims() - 1;
    if shape[last] == len {
        return into_contiguous(tensor);
    }
    shape[last] = len - shape[last];
    let zeros = Cube::float_zeros(shape, &tensor.device, FloatDType::F32);
    into_contiguous(Cube::float_cat(vec![tensor, zeros], last))
}

fn dims(tensor: &CubeTensor) -> [usize; 4] {
    let shape = tensor.meta.shape();
    std::array::from_fn(|i| shape[i])
}

/// One invocation: `pixels` output pixels of one row from `ox0`, × `channel_vectors` vectors of
/// four output channels from `CUBE_POS_Y · channel_vectors`.
///
/// `geometry` is `[kh, kw, stride_h, stride_w, pad_h, pad_w]`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn fused_conv2d_kernel<F: Float, NI: Size, NO: Size>(
    input: &Tensor<Vector<F, NI>>,
    weight: &[Vector<F, NO>],
    bias: &[Vector<F, NO>],
    alpha: &[Vector<F, NO>],
    residual: &Tensor<F>,
    output: &mut [Vector<F, NO>],
    slope: f32,
    out_h: usize,
    out_w: usize,
    blocks_x: usize,
    blocks: usize,
    channels_out: usize,
    #[comptime] geometry: [usize; 6],
    #[comptime] pixels: usize,
    #[comptime] channel_vectors: usize,
    #[comptime] activation: u32,
) {
    let block = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if block >= blocks {
        terminate!();
    }
    let kh = comptime![geometry[0]];
    let kw = comptime![geometry[1]];
    let sh = comptime![geometry[2]];
    let sw = comptime![geometry[3]];
    let ph = comptime![geometry[4]];
    let pw = comptime![geometry[5]];
    let columns = comptime![(pixels - 1) * sw + kw];
    let ni = NI::value();
    let no = NO::value();

    let bx = block % blocks_x;
    let row = block / blocks_x;
    let oy = row % out_h;
    let b = row / out_h;
    let ox0 = bx * pixels;
    let first = CUBE_POS_Y as usize * channel_vectors;
    let groups = bias.len();

    let in_h = input.shape(1);
    let in_w = input.shape(2);
    let channels_in = input.shape(3);
    let (s0, s1, s2) = (input.stride(0), input.stride(1), input.stride(2));

    let mut acc = Array::<Vector<F, NO>>::new(comptime![pixels * channel_vectors]);
    #[unroll]
    for v in 0..channel_vectors {
        let start = bias[first + v];
        #[unroll]
        for p in 0..pixels {
            acc[p * channel_vectors + v] = start;
        }
    }

    #[unroll]
    for ky in 0..kh {
        let iy = (oy * sh + ky) as i32 - ph as i32;
        if iy >= 0 && (iy as usize) < in_h {
            let row_offset = b * s0 + iy as usize * s1;
            let mut offsets = Array::<usize>::new(columns);
            let mut masks = Array::<F>::new(columns);
            #[unroll]
            for c in 0..columns {
                let ix = (ox0 * sw + c) as i32 - pw as i32;
                let inside = ix >= 0 && (ix as usize) < in_w;
                let clamped = select(inside, ix as usize, 0usize);
                offsets[c] = row_offset + clamped * s2;
                masks[c] = select(inside, F::new(1.0), F::new(0.0));
            }
            for ci in range_stepped(0usize, channels_in, ni) {
                let mut xs = Array::<Vector<F, NI>>::new(columns);
                #[unroll]
                for c in 0..columns {
                    xs[c] = input[(offsets[c] + ci) / ni] * Vector::new(masks[c]);
                }
                #[unroll]
                for kx in 0..kw {
                    #[unroll]
                    for j in 0..ni {
                        let weight_row = ((ky * kw + kx) * channels_in + ci + j) * groups + first;
                        #[unroll]
                        for v in 0..channel_vectors {
                            let w = weight[weight_row + v];
                            #[unroll]
                            for p in 0..pixels {
                                let x = Vector::<F, NO>::new(xs[p * sw + kx].extract(j));
                                acc[p * channel_vectors + v] += x * w;
                            }
                        }
                    }
                }
            }
        }
    }

    let zero = Vector::<F, NO>::new(F::new(0.0));
    let one = Vector::<F, NO>::new(F::new(1.0));
    #[unroll]
    for p in 0..pixels {
        let ox = ox0 + p;
        if ox < out_w {
            let pixel = (b * out_h + oy) * out_w + ox;
            #[unroll]
            for v in 0..channel_vectors {
                let group = first + v;
                let y = acc[p * channel_vectors + v];
                let mut out = y;
                if comptime![activation == LEAKY_RELU] {
                    out = max(y, zero) + min(y, zero) * Vector::new(F::cast_from(slope));
                } else if comptime![activation == PRELU] {
                    out = max(y, zero) + min(y, zero) * alpha[group];
                } else if comptime![activation == SILU] {
                    out = y / (one + Exp::exp(zero - y));
                } else if comptime![activation == SPAN_ATTENTION] {
                    let mut r = zero;
                    let base = b * residual.stride(0) + oy * residual.stride(1) + ox * residual.stride(2);
                    #[unroll]
                    for k in 0..no {
                        let channel = group * no + k;
                        if channel < channels_out {
                            r.insert(k, residual[base + channel * residual.stride(3)]);
                        }
                    }
                    let sigmoid = one / (one + Exp::exp(zero - y));
                    out = (y + r) * (sigmoid - Vector::new(F::new(0.5)));
                }
                output[pixel * groups + group] = out;
            }
        }
    }
}

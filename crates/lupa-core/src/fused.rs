//! Lupa's fused convolution: conv + bias + the activation that follows, as one op.
//!
//! Every architecture calls [`conv2d`] instead of `Conv2d::forward` followed by an activation (and
//! [`conv_transpose2d`] for `ConvTranspose2d`). The ops are a Burn backend extension ([`FusedConvBackend`], routed by `burn::backend::backend_extension`),
//! so model code stays backend-independent:
//!
//! - **Flex** (the CPU backend, native and wasm32) runs [`lupa_kernels::PackedConv2d`]: NHWC
//!   activations, weights packed into SIMD-width channel blocks (once per layer, at its first
//!   call, and kept while the model lives: `packed.rs`), bias and activation in the kernel's
//!   epilogue, rows over threads natively. Its output is an NHWC buffer viewed as NCHW (permuted
//!   strides), so the next fused convolution reads it without a layout conversion; Burn's element-wise
//!   ops accept the strided view as they accept any other ([`add`], [`scale_channels`],
//!   [`channel_means`], [`pixel_shuffle`] and [`cat_channels`] run theirs in NHWC order). Transposed
//!   convolutions run on [`lupa_kernels::PackedConvTranspose2d`] (one stride-1 convolution and a
//!   scatter); those with output padding on Burn's op.
//! - **Cube** (wgpu: WebGPU, Vulkan, Metal, DX12) runs Lupa's CubeCL kernels (`fused/cube.rs`):
//!   the fused convolution and transposed convolution, bias and activation in their epilogue, NHWC
//!   outputs viewed as NCHW as on `flex` (so the helpers above work in NHWC order there too). With
//!   Burn's `fusion` (this crate's feature `fusion`, off by default) they are opaque ops in its
//!   lazy stream, between the element-wise chains it fuses.
//!
//! [`set_enabled`]`(false)` routes the calling thread's calls to Burn's `Conv2d::forward` and
//! activation modules instead, for benchmarks that compare the two in one run.

use std::cell::Cell;

#[cfg(feature = "gpu")]
mod cube;
mod packed;

use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::ops::{ConvOptions, ConvTransposeOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DispatchDevice, ExtensionType, Flex, backend_extension};
use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{PRelu, PaddingConfig2d, PixelShuffle};
use burn::tensor::{DType, Tensor, TensorData, activation};
use lupa_kernels::{ConvGeometry, PackedConv2d, PackedConvTranspose2d};

/// The activation fused after a convolution (and its bias).
#[derive(Debug, Clone, Copy)]
pub enum Activation<'a> {
    /// None.
    Identity,
    /// `max(x, 0) + slope · min(x, 0)`.
    LeakyRelu(f32),
    /// PReLU with the module's learnt slopes (one, or one per channel).
    Prelu(&'a PRelu),
    /// `x · sigmoid(x)`.
    Silu,
    /// `(x + residual) · (sigmoid(x) − 1/2)`: SPAN's parameter-free attention, the residual being
    /// the block's input (the shape of the output).
    SpanAttention(&'a Tensor<4>),
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Turns the fused op on (the default) or off for the calling thread, where a model's forward pass
/// runs: off, [`conv2d`] is Burn's `Conv2d::forward` followed by Burn's activation, on every backend.
pub fn set_enabled(enabled: bool) {
    ENABLED.set(enabled);
}

/// Whether [`conv2d`] runs the fused op on this thread.
pub fn enabled() -> bool {
    ENABLED.get()
}

/// `activation(conv(x))` with the bias of `conv`.
///
/// # Shapes
/// `[batch, channels_in, H, W]` → `[batch, channels_out, H', W']` as `Conv2d::forward`.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, activation: Activation<'_>) -> Tensor<4> {
    let Some(options) = FusedConvOptions::of(conv).filter(|_| enabled()) else {
        return unfused(conv, x, activation);
    };
    let weight = conv.weight.val();
    let bias = bias_or_zeros(&conv.bias, weight.dims()[0], &weight);
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedConvBackend>::fused_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        activation.dispatch(),
        options,
    ))
}

/// Whether `x` is (likely) one of the NHWC views the fused op leaves: on `flex` and wgpu, with the
/// fused op on. The element-wise helpers below then work in NHWC order.
fn nhwc_here(x: &Tensor<4>) -> bool {
    enabled()
        && match x.device().as_dispatch() {
            DispatchDevice::Flex(_) => true,
            // Lupa's GPU kernels leave NHWC views too (fused/cube.rs).
            #[cfg(feature = "gpu")]
            DispatchDevice::Cube(_) => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
}

/// `f` of `tensors` in NHWC order where [`nhwc_here`] (the tensors permuted to `[batch, H, W, C]`,
/// no copy; memory then runs in their order, so Burn's loops go over whole rows of pixels, where in
/// NCHW order they would step by the channel count) and the result viewed as NCHW again; elsewhere
/// `f` of the NCHW tensors. `f` must not care which: element-wise work, or along the channels.
fn in_nhwc<const N: usize>(
    tensors: [Tensor<4>; N],
    f: impl FnOnce([Tensor<4>; N]) -> Tensor<4>,
) -> Tensor<4> {
    if !tensors.first().is_some_and(nhwc_here) {
        return f(tensors);
    }
    f(tensors.map(|t| t.permute([0, 2, 3, 1]))).permute([0, 3, 1, 2])
}

/// `a + b` (same shape), in NHWC order on `flex` and wgpu: e.g. a skip connection added to a
/// cropped earlier feature map (8–10× faster there than Burn's add of the NCHW views).
pub fn add(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    in_nhwc([a, b], |[a, b]| a + b)
}

/// `x · gate` with one `gate` per image and channel (`[batch, C, 1, 1]`), as a squeeze-excitation
/// block scales its input; in NHWC order on `flex` and wgpu.
pub fn scale_channels(x: Tensor<4>, gate: Tensor<4>) -> Tensor<4> {
    in_nhwc([x, gate], |[x, gate]| x * gate)
}

/// Each image's channel means over its pixels (a squeeze-excitation block's squeeze); in NHWC
/// order on `flex` and wgpu, where the sums run over whole rows of pixels.
///
/// # Shapes
/// `[batch, C, H, W]` → `[batch, C, 1, 1]`.
pub fn channel_means(x: Tensor<4>) -> Tensor<4> {
    if !nhwc_here(&x) {
        return x.mean_dim(3).mean_dim(2);
    }
    let [batch, channels, height, width] = x.dims();
    let pixels = x.permute([0, 2, 3, 1]).reshape([batch, height * width, channels]);
    pixels.mean_dim(1).reshape([batch, channels, 1, 1])
}

/// The 2-D pixel shuffle (depth to space; PyTorch's `PixelShuffle`, as Burn's): output pixel
/// `(h·r + i, w·r + j)` of channel `c` is input channel `c·r² + i·r + j` at `(h, w)`. On `flex` and
/// wgpu in NHWC order, one pass that writes the output NHWC.
///
/// # Shapes
/// `[batch, C·r², H, W]` → `[batch, C, r·H, r·W]`.
pub fn pixel_shuffle(shuffle: &PixelShuffle, x: Tensor<4>) -> Tensor<4> {
    if !nhwc_here(&x) {
        return shuffle.forward(x);
    }
    let r = shuffle.upscale_factor;
    let [batch, channels, height, width] = x.dims();
    let out = channels / (r * r);
    let nhwc = x.permute([0, 2, 3, 1]).reshape([batch, height, width, out, r, r]);
    let shuffled = nhwc.permute([0, 1, 4, 2, 5, 3]).reshape([batch, height * r, width * r, out]);
    shuffled.permute([0, 3, 1, 2])
}

/// `Tensor::cat(tensors, 1)`: the channels of `tensors` side by side, joined along NHWC's channel
/// axis on `flex` and wgpu, whole pixels at a time (3× faster than Burn's concatenation of the strided views
/// at SPAN's 4 × 48 channels), the result again an NHWC view. Elsewhere `Tensor::cat`.
///
/// # Shapes
/// `[batch, C_i, H, W]` each → `[batch, ΣC_i, H, W]`.
pub fn cat_channels(tensors: Vec<Tensor<4>>) -> Tensor<4> {
    if !tensors.first().is_some_and(nhwc_here) {
        return Tensor::cat(tensors, 1);
    }
    let nhwc = tensors.into_iter().map(|t| t.permute([0, 2, 3, 1])).collect();
    Tensor::cat(nhwc, 3).permute([0, 3, 1, 2])
}

/// `activation(conv_transpose(x))` with the bias of `conv`.
///
/// # Shapes
/// `[batch, channels_in, H, W]` → `[batch, channels_out, H', W']` as `ConvTranspose2d::forward`.
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<4>, activation: Activation<'_>) -> Tensor<4> {
    let Some(options) = FusedConvTransposeOptions::of(conv).filter(|_| enabled()) else {
        return activation.apply(conv.forward(x));
    };
    let weight = conv.weight.val();
    let bias = bias_or_zeros(&conv.bias, weight.dims()[1], &weight);
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedConvBackend>::fused_conv_transpose2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        activation.dispatch(),
        options,
    ))
}

/// A module's bias, or `channels` zeros on the weight's device (the ops always take one).
fn bias_or_zeros(bias: &Option<Param<Tensor<1>>>, channels: usize, weight: &Tensor<4>) -> Tensor<1> {
    bias.as_ref()
        .map_or_else(|| Tensor::<1>::zeros([channels], &weight.device()).cast(weight.dtype()), Param::val)
}

impl Activation<'_> {
    /// The activation as the backend op takes it.
    fn dispatch(self) -> FusedActivation<burn::backend::Dispatch> {
        match self {
            Activation::Identity => FusedActivation::Identity,
            Activation::LeakyRelu(slope) => FusedActivation::LeakyRelu(slope),
            Activation::Prelu(prelu) => {
                // Broadcastable against the output, as `burn::tensor::activation::prelu` shapes it.
                let alpha = prelu.alpha.val();
                let slopes = alpha.dims()[0];
                FusedActivation::Prelu(alpha.reshape([1, slopes, 1, 1]).into_dispatch())
            }
            Activation::Silu => FusedActivation::Silu,
            Activation::SpanAttention(residual) => {
                FusedActivation::SpanAttention(residual.clone().into_dispatch())
            }
        }
    }

    /// Burn's activation module or function on `y`.
    fn apply(self, y: Tensor<4>) -> Tensor<4> {
        match self {
            Activation::Identity => y,
            Activation::LeakyRelu(slope) => activation::leaky_relu(y, f64::from(slope)),
            Activation::Prelu(prelu) => prelu.forward(y),
            Activation::Silu => activation::silu(y),
            Activation::SpanAttention(residual) => {
                (y.clone() + residual.clone()) * (activation::sigmoid(y) - 0.5)
            }
        }
    }
}

/// Burn's module and activation: the reference the fused op must match.
fn unfused(conv: &Conv2d, x: Tensor<4>, activation: Activation<'_>) -> Tensor<4> {
    activation.apply(conv.forward(x))
}

/// The activation as the backend sees it.
#[derive(ExtensionType)]
#[extension_type(fusion: cfg(feature = "fusion"))]
pub enum FusedActivation<B: Backend> {
    /// None.
    Identity,
    /// One slope for all channels.
    LeakyRelu(f32),
    /// PReLU's slopes, `[1, 1, 1, 1]` or `[1, channels_out, 1, 1]`.
    Prelu(FloatTensor<B>),
    /// `x · sigmoid(x)`.
    Silu,
    /// SPAN's attention with this residual (the output's shape).
    SpanAttention(FloatTensor<B>),
}

/// Stride and symmetric zero padding of a fused convolution (dilation 1, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedConvOptions {
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Zero rows above and below, zero columns left and right.
    pub padding: [usize; 2],
}

impl FusedConvOptions {
    /// The options of `conv`, or `None` for what the fused op does not cover (dilation, groups,
    /// asymmetric or input-dependent padding): those run as Burn's module.
    fn of(conv: &Conv2d) -> Option<Self> {
        let padding = match conv.padding {
            PaddingConfig2d::Valid => [0, 0],
            PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
                [top, left]
            }
            _ => return None,
        };
        (conv.dilation == [1, 1] && conv.groups == 1).then_some(Self { stride: conv.stride, padding })
    }

    fn burn(self) -> ConvOptions<2> {
        ConvOptions::new(self.stride, self.padding, [1, 1], 1)
    }
}

/// Stride and padding of a fused transposed convolution (dilation 1, one group), as
/// `ConvTranspose2d`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedConvTransposeOptions {
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Rows and columns removed from each side of the full output.
    pub padding: [usize; 2],
    /// Rows and columns added at the bottom and right.
    pub padding_out: [usize; 2],
}

impl FusedConvTransposeOptions {
    /// The options of `conv`, or `None` (dilation or groups): those run as Burn's module.
    fn of(conv: &ConvTranspose2d) -> Option<Self> {
        (conv.dilation == [1, 1] && conv.groups == 1).then_some(Self {
            stride: conv.stride,
            padding: conv.padding,
            padding_out: conv.padding_out,
        })
    }

    fn burn(self) -> ConvTransposeOptions<2> {
        ConvTransposeOptions::new(self.stride, self.padding, self.padding_out, [1, 1], 1)
    }
}

/// The fused convolutions as backend ops.
#[cfg_attr(feature = "gpu", backend_extension(Flex, Cube, Fusion: cfg(feature = "fusion")))]
#[cfg_attr(not(feature = "gpu"), backend_extension(Flex))]
pub trait FusedConvBackend: Backend {
    /// `activation(conv2d(x, weight) + bias)`.
    ///
    /// # Shapes
    /// x `[batch, channels_in, H, W]`, weight `[channels_out, channels_in, kh, kw]`, bias
    /// `[channels_out]` → `[batch, channels_out, H', W']`.
    #[fusion(dtype = x, shape = conv_output_shape(x, weight, options))]
    fn fused_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        #[extension_type] activation: FusedActivation<Self>,
        options: FusedConvOptions,
    ) -> FloatTensor<Self> {
        burn_activation::<Self>(Self::conv2d(x, weight, Some(bias), options.burn()), activation)
    }

    /// `activation(conv_transpose2d(x, weight) + bias)`.
    ///
    /// # Shapes
    /// x `[batch, channels_in, H, W]`, weight `[channels_in, channels_out, kh, kw]`, bias
    /// `[channels_out]` → `[batch, channels_out, H', W']`.
    #[fusion(dtype = x, shape = conv_transpose_output_shape(x, weight, options))]
    fn fused_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        #[extension_type] activation: FusedActivation<Self>,
        options: FusedConvTransposeOptions,
    ) -> FloatTensor<Self> {
        burn_activation::<Self>(Self::conv_transpose2d(x, weight, Some(bias), options.burn()), activation)
    }
}

/// The output shape of [`FusedConvBackend::fused_conv2d`] (what Burn's fusion records ahead).
#[cfg(feature = "fusion")]
fn conv_output_shape(
    x: &burn::tensor::Shape,
    weight: &burn::tensor::Shape,
    options: &FusedConvOptions,
) -> burn::tensor::Shape {
    let geometry =
        ConvGeometry { kernel: [weight[2], weight[3]], stride: options.stride, padding: options.padding };
    let [h, w] = geometry.output_size(x[2], x[3]).expect("the padded input is smaller than the kernel");
    burn::tensor::Shape::from([x[0], weight[0], h, w])
}

/// The output shape of [`FusedConvBackend::fused_conv_transpose2d`].
#[cfg(feature = "fusion")]
fn conv_transpose_output_shape(
    x: &burn::tensor::Shape,
    weight: &burn::tensor::Shape,
    options: &FusedConvTransposeOptions,
) -> burn::tensor::Shape {
    let geometry =
        ConvGeometry { kernel: [weight[2], weight[3]], stride: options.stride, padding: options.padding };
    let [h, w] =
        geometry.transposed_output_size(x[2], x[3]).expect("an empty input, or the padding leaves no output");
    burn::tensor::Shape::from([x[0], weight[1], h + options.padding_out[0], w + options.padding_out[1]])
}

/// Burn's activation ops on any backend.
fn burn_activation<B: Backend>(y: FloatTensor<B>, activation: FusedActivation<B>) -> FloatTensor<B> {
    match activation {
        FusedActivation::Identity => y,
        FusedActivation::LeakyRelu(slope) => B::leaky_relu(y, f64::from(slope).into()),
        FusedActivation::Prelu(alpha) => B::prelu(y, alpha),
        FusedActivation::Silu => B::float_mul(y.clone(), B::sigmoid(y)),
        FusedActivation::SpanAttention(residual) => {
            let attention = B::float_sub_scalar(B::sigmoid(y.clone()), 0.5f32.into());
            B::float_mul(B::float_add(y, residual), attention)
        }
    }
}

// `Cube` itself where Burn's fusion is off; the backend inside `Fusion<…>` where it is on.
#[cfg(feature = "gpu")]
impl FusedConvBackend for burn_cubecl::CubeBackend {
    fn fused_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: FusedActivation<Self>,
        options: FusedConvOptions,
    ) -> FloatTensor<Self> {
        cube::fused_conv2d(x, weight, bias, activation, options)
    }

    fn fused_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: FusedActivation<Self>,
        options: FusedConvTransposeOptions,
    ) -> FloatTensor<Self> {
        cube::fused_conv_transpose2d(x, weight, bias, activation, options)
    }
}

impl FusedConvBackend for Flex {
    fn fused_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        activation: FusedActivation<Self>,
        options: FusedConvOptions,
    ) -> FlexTensor {
        if [&x, &weight, &bias].iter().any(|t| t.dtype() != DType::F32) {
            return burn_activation::<Self>(Self::conv2d(x, weight, Some(bias), options.burn()), activation);
        }
        let [batch, channels_in, height, width] = dims(&x);
        let [channels_out, _, kh, kw] = dims(&weight);
        let (activation, residual) = kernel_activation(activation);
        let geometry = ConvGeometry { kernel: [kh, kw], stride: options.stride, padding: options.padding };
        let conv = packed_layer(&packed::CONVS, &weight, bias, geometry, activation, |w, b, a| {
            PackedConv2d::new(w, Some(b), channels_in, channels_out, geometry, a)
        });

        let input = contiguous(Flex::float_permute(x, &[0, 2, 3, 1]));
        let (output, [oh, ow]) = match &residual {
            Some(r) => conv.forward_with_residual(values(&input), values(r), batch, height, width),
            None => conv.forward(values(&input), batch, height, width),
        };
        nchw_view(output, [batch, oh, ow, channels_out])
    }

    fn fused_conv_transpose2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        activation: FusedActivation<Self>,
        options: FusedConvTransposeOptions,
    ) -> FlexTensor {
        let [channels_in, channels_out, kh, kw] = dims(&weight);
        // Lupa's kernel covers every stride and padding (all of Real-CUGAN's layers); Burn the rest
        // (output padding, SPAN's attention, f16).
        let covered = options.padding_out == [0, 0]
            && !matches!(activation, FusedActivation::SpanAttention(_))
            && [&x, &weight, &bias].iter().all(|t| t.dtype() == DType::F32);
        if !covered {
            return burn_activation::<Self>(
                Flex::conv_transpose2d(x, weight, Some(bias), options.burn()),
                activation,
            );
        }
        let [batch, _, height, width] = dims(&x);
        let (activation, _) = kernel_activation(activation);
        let geometry = ConvGeometry { kernel: [kh, kw], stride: options.stride, padding: options.padding };
        let conv = packed_layer(&packed::TRANSPOSED, &weight, bias, geometry, activation, |w, b, a| {
            PackedConvTranspose2d::new(w, Some(b), channels_in, channels_out, geometry, a)
        });
        let input = contiguous(Flex::float_permute(x, &[0, 2, 3, 1]));
        let (output, [oh, ow]) = conv.forward(values(&input), batch, height, width);
        nchw_view(output, [batch, oh, ow, channels_out])
    }
}

/// `cache`'s packing of the layer with `weight`, `bias`, `geometry` and `activation`: made by
/// `pack(weights in row-major order, bias, activation)` at the layer's first call (`packed.rs`).
fn packed_layer<T: packed::PackedBytes>(
    cache: &packed::Cache<T>,
    weight: &FlexTensor,
    bias: FlexTensor,
    geometry: ConvGeometry,
    activation: lupa_kernels::Activation,
    pack: impl FnOnce(&[f32], &[f32], &lupa_kernels::Activation) -> T,
) -> std::sync::Arc<T> {
    let rows = contiguous(weight.clone());
    let bias = values(&contiguous(bias)).to_vec();
    let recipe = packed::Recipe::new(weight, values(&rows), geometry, activation, bias);
    cache.get_or_pack(weight, recipe, |r| pack(values(&rows), &r.bias, &r.activation))
}

/// The kernels' activation, and SPAN's residual in NHWC order.
fn kernel_activation(activation: FusedActivation<Flex>) -> (lupa_kernels::Activation, Option<FlexTensor>) {
    match activation {
        FusedActivation::Identity => (lupa_kernels::Activation::Identity, None),
        FusedActivation::LeakyRelu(slope) => (lupa_kernels::Activation::LeakyRelu(slope), None),
        FusedActivation::Prelu(alpha) => {
            (lupa_kernels::Activation::Prelu(values(&contiguous(alpha)).to_vec()), None)
        }
        FusedActivation::Silu => (lupa_kernels::Activation::Silu, None),
        FusedActivation::SpanAttention(r) => {
            let residual = contiguous(Flex::float_permute(r, &[0, 2, 3, 1]));
            (lupa_kernels::Activation::SpanAttention, Some(residual))
        }
    }
}

/// An NHWC buffer as an NCHW tensor (permuted strides, no copy).
fn nchw_view(values: Vec<f32>, [batch, height, width, channels]: [usize; 4]) -> FlexTensor {
    let nhwc = FlexTensor::from_data(TensorData::new(values, [batch, height, width, channels]));
    Flex::float_permute(nhwc, &[0, 3, 1, 2])
}

fn dims(tensor: &FlexTensor) -> [usize; 4] {
    let shape = tensor.layout().shape();
    std::array::from_fn(|i| shape[i])
}

/// The values of a [`contiguous`] f32 tensor in row-major order.
fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// The tensor itself when its values are row-major in memory, else a row-major copy.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.as_slice::<f32>().is_some() { tensor } else { tensor.to_contiguous() }
}

#[cfg(test)]
mod tests {
    use burn::nn::PReluConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let read =
            |t: Tensor<4>| pollster::block_on(t.into_data_async()).unwrap().try_to_vec::<f32>().unwrap();
        let (a, b) = (read(a), read(b));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// `x` with `conv` and `activation`, fused and as Burn's module, agree to f32 rounding; the fused
    /// output then feeds a second fused convolution (reading the strided NHWC view it returns).
    fn agree(conv: &Conv2d, x: Tensor<4>, activation: Activation<'_>) {
        let fused = conv2d(conv, x.clone(), activation);
        let burn = unfused(conv, x, activation);
        let difference = max_difference(fused.clone(), burn.clone());
        assert!(difference < 1e-4, "{activation:?}: max difference {difference}");
        let [_, channels, ..] = fused.dims();
        let next = Conv2dConfig::new([channels, 5], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&fused.device());
        let chained =
            max_difference(conv2d(&next, fused, Activation::Silu), unfused(&next, burn, Activation::Silu));
        assert!(chained < 1e-4, "{activation:?} then a fused conv: max difference {chained}");
    }

    #[test]
    fn the_fused_op_on_flex_matches_burns_conv_and_activations() {
        matches_burns_conv_and_activations(&Device::flex());
    }

    /// The default wgpu device, created once for the tests that share it (lavapipe where there is
    /// no GPU).
    #[cfg(feature = "gpu")]
    fn wgpu() -> Device {
        static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
        DEVICE
            .get_or_init(|| {
                let (device, setup) = Device::wgpu_options()
                    .init_with_setup()
                    .expect("no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)");
                println!("wgpu adapter: {:?}", setup.adapter.get_info());
                device
            })
            .clone()
    }

    /// Lupa's CubeCL kernel (fused/cube.rs), on lavapipe where there is no GPU.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_fused_op_on_wgpu_matches_burns_conv_and_activations() {
        let device = wgpu();
        matches_burns_conv_and_activations(&device);
        // 1×1, a first layer of three input channels (scalar input loads), and widths that are
        // not a multiple of the register block's four pixels.
        let x = Tensor::<4>::random([1, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let first = Conv2dConfig::new([3, 16], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        agree(&first, x.clone(), Activation::LeakyRelu(0.2));
        let pointwise = Conv2dConfig::new([3, 12], [1, 1]).init(&device);
        agree(&pointwise, x, Activation::Identity);
    }

    /// The workgroup-memory kernel (GPUs' choice, forced here on lavapipe) and layers dispatched
    /// in bands of rows (the TDR guard, forced to the smallest bands) compute what Burn does.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_tiled_kernel_and_bands_of_rows_match_burns() {
        let device = wgpu();
        cube::force_tiled(true);
        matches_burns_conv_and_activations(&device);
        cube::set_macs_per_dispatch(1);
        matches_burns_conv_and_activations(&device);
        transposed_matches_burns(&device);
        cube::force_tiled(false);
        cube::set_macs_per_dispatch(1 << 31);
    }

    fn matches_burns_conv_and_activations(device: &Device) {
        let device = device.clone();
        let same = |cin, cout| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device)
        };
        let x = Tensor::<4>::random([1, 48, 19, 23], Distribution::Normal(0.0, 1.0), &device);
        let prelu = PReluConfig::new().with_num_parameters(48).init(&device);
        agree(&same(48, 48), x.clone(), Activation::Identity);
        agree(&same(48, 48), x.clone(), Activation::Silu);
        agree(&same(48, 48), x.clone(), Activation::LeakyRelu(0.2));
        agree(&same(48, 48), x.clone(), Activation::Prelu(&prelu));
        agree(&same(48, 48), x.clone(), Activation::SpanAttention(&x));

        // Real-CUGAN's stride-2 2×2 and valid 3×3 on a reflect-padded (non-contiguous source) input,
        // a batch of two, and an output channel count that is not a multiple of the SIMD width.
        let padded = x.clone().slice([0..1, 0..48, 1..18, 2..21]).repeat_dim(0, 2);
        let down = Conv2dConfig::new([48, 64], [2, 2]).with_stride([2, 2]).init(&device);
        agree(&down, padded.clone(), Activation::LeakyRelu(0.1));
        agree(&Conv2dConfig::new([48, 27], [3, 3]).init(&device), padded, Activation::Identity);
    }

    /// Real-CUGAN's 2×2 stride-2 upsampling (Lupa's kernel) and its 4×4 stride-2 padded last
    /// layer (Burn's op inside the fused one) against Burn's module.
    #[test]
    fn the_fused_transposed_op_matches_burns() {
        transposed_matches_burns(&Device::flex());
    }

    /// On wgpu every transposed layer of Real-CUGAN runs Lupa's kernel (fused/cube.rs), x3's 5×5
    /// stride 3 too, and widths that are not a multiple of the block.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_fused_transposed_op_on_wgpu_matches_burns() {
        use burn::nn::conv::ConvTranspose2dConfig;
        let device = wgpu();
        transposed_matches_burns(&device);
        let x = Tensor::<4>::random([1, 64, 7, 10], Distribution::Normal(0.0, 1.0), &device);
        let x3 = ConvTranspose2dConfig::new([64, 3], [5, 5])
            .with_stride([3, 3])
            .with_padding([2, 2])
            .init(&device);
        let x4 = ConvTranspose2dConfig::new([64, 64], [4, 4])
            .with_stride([2, 2])
            .with_padding([3, 3])
            .init(&device);
        for (conv, activation) in [(&x3, Activation::Identity), (&x4, Activation::LeakyRelu(0.1))] {
            let fused = conv_transpose2d(conv, x.clone(), activation);
            let burn = activation.apply(conv.forward(x.clone()));
            let difference = max_difference(fused, burn);
            assert!(difference < 1e-4, "{:?}: max difference {difference}", conv.kernel_size);
        }
    }

    fn transposed_matches_burns(device: &Device) {
        use burn::nn::conv::ConvTranspose2dConfig;
        let device = device.clone();
        let x = Tensor::<4>::random([2, 64, 9, 11], Distribution::Normal(0.0, 1.0), &device);
        let up = ConvTranspose2dConfig::new([64, 48], [2, 2]).with_stride([2, 2]).init(&device);
        let last = ConvTranspose2dConfig::new([64, 3], [4, 4])
            .with_stride([2, 2])
            .with_padding([3, 3])
            .init(&device);
        for (conv, activation) in [(&up, Activation::LeakyRelu(0.1)), (&last, Activation::Identity)] {
            let fused = conv_transpose2d(conv, x.clone(), activation);
            let burn = activation.apply(conv.forward(x.clone()));
            let difference = max_difference(fused, burn);
            assert!(difference < 1e-4, "{:?}: max difference {difference}", conv.kernel_size);
        }
    }

    /// Concatenating the fused op's NHWC views equals Burn's concatenation of the same values.
    #[test]
    fn channels_concatenate_as_burns_cat() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::random([2, 3, 7, 9], Distribution::Default, &device);
        let (a, b) = (conv2d(&conv, x.clone(), Activation::Silu), x.clone());
        let ours = cat_channels(vec![a.clone(), b.clone()]);
        let burns = Tensor::cat(vec![a, b], 1);
        assert_eq!(max_difference(ours, burns), 0.0);
    }

    /// The NHWC-order element-wise helpers equal Burn's ops on the same values: a cropped NHWC view
    /// added to another (Real-CUGAN's skips), channels scaled by per-image gates (its SE blocks),
    /// the pixel shuffle of a cropped view (every 4x model's last step), and mixed layouts.
    #[test]
    fn nhwc_helpers_equal_burns_ops() {
        nhwc_helpers_equal_burns_ops_on(Device::flex());
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn nhwc_helpers_equal_burns_ops_on_wgpu() {
        nhwc_helpers_equal_burns_ops_on(wgpu());
    }

    /// `add`, `scale_channels`, `channel_means` and `pixel_shuffle` on the fused op's NHWC views,
    /// cropped views and plain NCHW tensors equal Burn's ops on `device`.
    fn nhwc_helpers_equal_burns_ops_on(device: Device) {
        let conv = |cin: usize, cout: usize| Conv2dConfig::new([cin, cout], [3, 3]).init(&device);
        let x = Tensor::<4>::random([2, 3, 13, 11], Distribution::Default, &device);
        let big = conv2d(&conv(3, 8), x.clone(), Activation::Silu); // [2, 8, 11, 9], an NHWC view
        let small = conv2d(&conv(8, 8), big.clone(), Activation::Identity); // [2, 8, 9, 7]
        let crop = big.clone().slice([0..2, 0..8, 1..10, 1..8]);
        assert_eq!(max_difference(add(crop.clone(), small.clone()), crop.clone() + small.clone()), 0.0);
        assert_eq!(max_difference(add(small.clone(), crop.clone()), small.clone() + crop.clone()), 0.0);
        let plain = Tensor::<4>::random([2, 8, 9, 7], Distribution::Default, &device); // NCHW
        assert_eq!(max_difference(add(small.clone(), plain.clone()), small.clone() + plain), 0.0);

        let gate = Tensor::<4>::random([2, 8, 1, 1], Distribution::Default, &device);
        let scaled = scale_channels(small.clone(), gate.clone());
        assert_eq!(max_difference(scaled, small.clone() * gate), 0.0);
        let means = small.clone().mean_dim(3).mean_dim(2);
        assert!(max_difference(channel_means(small.clone()), means) < 1e-6);
        assert!(max_difference(channel_means(crop.clone()), crop.clone().mean_dim(3).mean_dim(2)) < 1e-6);

        let shuffle = burn::nn::PixelShuffleConfig::new(2).init();
        let ours = pixel_shuffle(&shuffle, crop.clone());
        assert_eq!(ours.dims(), [2, 2, 18, 14]);
        assert_eq!(max_difference(ours, shuffle.forward(crop)), 0.0);
        set_enabled(false);
        let off = pixel_shuffle(&shuffle, small.clone());
        set_enabled(true);
        assert_eq!(max_difference(off, shuffle.forward(small)), 0.0);
    }

    #[test]
    fn switched_off_it_is_burns_module() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([3, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::random([1, 3, 7, 9], Distribution::Default, &device);
        set_enabled(false);
        let off = conv2d(&conv, x.clone(), Activation::Silu);
        set_enabled(true);
        let burn = unfused(&conv, x, Activation::Silu);
        assert_eq!(max_difference(off, burn), 0.0);
    }
}

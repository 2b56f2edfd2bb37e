//! Lupa's CPU kernels: the hot path of every shipped super-resolution network.
//!
//! [`PackedConv2d`] is a 2-D convolution (cross-correlation, as in PyTorch's `Conv2d`) on NHWC
//! activations with the bias and the activation that follows it fused into the epilogue. Weights
//! are packed once into blocks of output channels (the SIMD width times a small factor); the
//! kernel keeps a register block of output pixels × one channel block of accumulators, so each
//! weight load feeds several multiply-adds and each input value is broadcast once per block.
//!
//! - Layout: activations are NHWC (`[batch, height, width, channels]`, channels fastest), the layout
//!   a direct convolution reads contiguously; weights arrive as PyTorch's OIHW
//!   (`[out, in, kh, kw]`).
//! - SIMD: [`pulp`] picks the widest instruction set at run time (AVX2 + FMA on x86-64, NEON on
//!   aarch64, simd128 in wasm32 when built with `+simd128`, a scalar fallback otherwise); one
//!   generic source serves all of them, with no `unsafe` here.
//! - Algorithms: stride-1 3×3 convolutions with ≥ 16 input channels run as Winograd F(4×4, 3×3)
//!   (36 multiplies per 4×4 output tile and channel pair instead of 144); the rest (first layers,
//!   1×1, stride 2, other kernels) as the direct kernel. See [`Algorithm`]. Transposed
//!   convolutions of any kernel, stride and padding ([`PackedConvTranspose2d`]) run as one
//!   stride-1 convolution to every output phase's channels and a scatter.
//! - Threads: output rows are shared out over rayon's pool natively; wasm32 runs on one thread.
//!
//! Numerics: f32 throughout, products accumulated in input-channel order within each kernel tap
//! (the order differs from an im2col GEMM, so results match Burn's conv to rounding, not bitwise).
//! Winograd's transforms add rounding of their own: 5–7e-6 of the output's magnitude on the shipped
//! models' layers, against 1e-6 for the direct kernel (`tests/conv.rs` measures both).
//! SiLU uses a rational tanh approximation (Eigen's `generic_fast_tanh_float`, max error a few ulp)
//! through `sigmoid(x) = (1 + tanh(x / 2)) / 2`.

mod conv;
mod simd;
mod transposed;
mod winograd;

pub use conv::{Activation, Algorithm, ConvGeometry, PackedConv2d};
pub use transposed::PackedConvTranspose2d;

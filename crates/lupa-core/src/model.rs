//! A loaded super-resolution model, whatever its architecture.

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor};
use burn_store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use sha2::{Digest, Sha256};

use crate::arch::{RrdbNet, SeMeans, Span, SrVggNetCompact, UpCunet};
use crate::error::{LupaError, Result};
use crate::registry::{Architecture, ModelSpec};

/// A network ready to run on a device.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one value per loaded model: boxing would save ~0.5 KB once")]
pub enum Network {
    /// SPAN
    Span(Span),
    /// SRVGGNetCompact
    SrVggNetCompact(SrVggNetCompact),
    /// RRDBNet
    RrdbNet(RrdbNet),
    /// Real-CUGAN se
    UpCunet(UpCunet),
}

impl Network {
    /// Builds the architecture with random weights on `device`.
    pub fn init(architecture: &Architecture, device: &Device) -> Self {
        match architecture {
            Architecture::Span(c) => Self::Span(c.init(device)),
            Architecture::SrVggNetCompact(c) => Self::SrVggNetCompact(c.init(device)),
            Architecture::RrdbNet(c) => Self::RrdbNet(c.init(device)),
            Architecture::UpCunet(c) => Self::UpCunet(c.init(device)),
        }
    }

    /// Runs the network.
    ///
    /// # Shapes
    /// `[batch, 3, H, W]` RGB in `[0, 1]` → `[batch, 3, s·H, s·W]` (not clamped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Span(m) => m.forward(x),
            Self::SrVggNetCompact(m) => m.forward(x),
            Self::RrdbNet(m) => m.forward(x),
            Self::UpCunet(m) => m.forward(x),
        }
    }

    /// Whether a tile's result depends on statistics of the whole image (Real-CUGAN's SE blocks),
    /// so that tiles need an [`ImageContext`] to agree with each other.
    pub fn needs_image_context(&self) -> bool {
        matches!(self, Self::UpCunet(_))
    }

    /// The whole-image statistics of `x` (usually a downscaled copy of the whole image); `None`
    /// for networks that need none.
    ///
    /// # Shapes
    /// `x`: `[1, 3, H, W]` RGB in `[0, 1]`.
    pub fn image_context(&self, x: Tensor<4>) -> Option<ImageContext> {
        match self {
            Self::UpCunet(m) => Some(ImageContext::SeMeans(m.se_means(x))),
            _ => None,
        }
    }

    /// [`Network::forward`] for a tile of an image whose [`ImageContext`] is `context`.
    pub fn forward_in(&self, x: Tensor<4>, context: Option<&ImageContext>) -> Tensor<4> {
        match (self, context) {
            (Self::UpCunet(m), Some(ImageContext::SeMeans(means))) => m.forward_with_means(x, means),
            _ => self.forward(x),
        }
    }

    /// An [`ImageContext`] from its [`ImageContext::to_vectors`] (e.g. made by another engine),
    /// checked against this network; no vectors is no context.
    ///
    /// # Errors
    /// [`LupaError::BadInput`] for vectors this network cannot use.
    pub fn context_from_vectors(
        &self,
        vectors: &[Vec<f32>],
        device: &Device,
    ) -> Result<Option<ImageContext>> {
        let bad = |reason: String| {
            LupaError::BadInput(format!("the image context does not fit the model: {reason}"))
        };
        match self {
            _ if vectors.is_empty() => Ok(None),
            Self::UpCunet(m) => {
                m.means_from_vectors(vectors, device).map(|m| Some(ImageContext::SeMeans(m))).map_err(bad)
            }
            _ => Err(bad("this network uses none".into())),
        }
    }

    fn load_safetensors(&mut self, bytes: Vec<u8>, dtype: DType) -> std::result::Result<(), String> {
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(FloatCastAdapter::to(dtype))
            .validate(true)
            .allow_partial(false);
        let result = match self {
            Self::Span(m) => m.load_from(&mut store),
            Self::SrVggNetCompact(m) => m.load_from(&mut store),
            Self::RrdbNet(m) => m.load_from(&mut store),
            Self::UpCunet(m) => m.load_from(&mut store),
        }
        .map_err(|e| e.to_string())?;
        if !result.errors.is_empty() {
            let errors: Vec<_> = result.errors.iter().map(ToString::to_string).collect();
            return Err(errors.join("; "));
        }
        if !result.missing.is_empty() {
            let names: Vec<_> = result.missing.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!("tensors missing from the file: {}", names.join(", ")));
        }
        if !result.unused.is_empty() {
            return Err(format!("tensors in the file the model does not use: {}", result.unused.join(", ")));
        }
        Ok(())
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Self::Span(m) => m.num_params(),
            Self::SrVggNetCompact(m) => m.num_params(),
            Self::RrdbNet(m) => m.num_params(),
            Self::UpCunet(m) => m.num_params(),
        }
    }
}

/// Statistics of a whole image that some networks use in every tile.
#[derive(Debug, Clone)]
pub enum ImageContext {
    /// Real-CUGAN's squeeze-excitation channel means.
    SeMeans(SeMeans),
}

impl ImageContext {
    /// The statistics as plain vectors (read back from the device), to hand to another engine,
    /// which turns them back with [`Network::context_from_vectors`].
    ///
    /// # Errors
    /// [`LupaError::Backend`] when the read-back fails.
    pub async fn to_vectors(&self) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::SeMeans(means) => means
                .to_vectors()
                .await
                .map_err(|e| LupaError::Backend(format!("reading back the SE means failed: {e}"))),
        }
    }
}

/// The float type a model's weights and activations are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats: every backend.
    #[default]
    F32,
    /// 16-bit floats (IEEE half) for weights and activations; Lupa's GPU kernels still accumulate
    /// in f32. On wgpu devices with `shader-f16`: half the memory traffic and activation memory.
    F16,
}

impl Precision {
    /// Whether models on `device` can be f16: a wgpu device with `shader-f16` (the CPU backend's
    /// kernels are f32).
    pub fn f16_supported(device: &Device) -> bool {
        let gpu = !matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_));
        gpu && device.supports_dtype(DType::F16)
    }

    /// The precision to use on the wgpu `device` of adapter `info`: f16 on a hardware GPU that
    /// supports it, f32 on software adapters (lavapipe, SwiftShader: f16 there only adds
    /// conversions; measured on lavapipe, span-x4 on 128² takes 1.12× the f32 time) and elsewhere.
    #[cfg(feature = "gpu")]
    pub fn for_adapter(device: &Device, info: &burn::tensor::wgpu::wgpu::AdapterInfo) -> Self {
        let names = format!("{} {} {}", info.name, info.driver, info.driver_info).to_ascii_lowercase();
        let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu
            || ["llvmpipe", "lavapipe", "swiftshader"].iter().any(|s| names.contains(s));
        if !software && Self::f16_supported(device) { Self::F16 } else { Self::F32 }
    }

    /// Burn's dtype for it.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }

    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

/// A model from the registry with its weights loaded.
#[derive(Debug)]
pub struct SrModel {
    /// The registry entry it was loaded from.
    pub spec: ModelSpec,
    /// The network on its device.
    pub network: Network,
    /// The device the weights live on and the model runs on.
    pub device: Device,
    /// What the weights and activations are stored in.
    pub precision: Precision,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl SrModel {
    /// Loads `weights` (the bytes of the spec's safetensors file) onto `device`.
    ///
    /// Checks the bytes against the spec's size and sha256, then names and shapes: every tensor the
    /// architecture needs must be in the file with the right shape, and the file must hold nothing
    /// else.
    ///
    /// # Errors
    /// [`LupaError::WeightsMismatch`] when size, hash, names or shapes differ.
    pub fn load(spec: &ModelSpec, weights: Vec<u8>, device: &Device) -> Result<Self> {
        Self::load_with(spec, weights, device, Precision::F32)
    }

    /// [`SrModel::load`] in `precision`.
    ///
    /// # Errors
    /// As [`SrModel::load`], and [`LupaError::Backend`] for f16 on a device without it.
    pub fn load_with(
        spec: &ModelSpec,
        weights: Vec<u8>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        if precision == Precision::F16 && !Precision::f16_supported(device) {
            return Err(LupaError::Backend("this device does not compute in f16 (no shader-f16)".into()));
        }
        let mismatch = |reason: String| LupaError::WeightsMismatch { id: spec.id.clone(), reason };
        if weights.len() as u64 != spec.weights.bytes {
            return Err(mismatch(format!(
                "{} is {} bytes, expected {}",
                spec.weights.file,
                weights.len(),
                spec.weights.bytes
            )));
        }
        let actual = sha256_hex(&weights);
        if actual != spec.weights.sha256 {
            return Err(mismatch(format!(
                "{} has sha256 {actual}, expected {}",
                spec.weights.file, spec.weights.sha256
            )));
        }
        let mut model = Self::load_unverified_with(spec, weights, device, precision)?;
        model.precision = precision;
        Ok(model)
    }

    /// Like [`SrModel::load`] without the size and hash check: for the importer, which loads the
    /// file it just wrote before the registry entry exists.
    ///
    /// # Errors
    /// [`LupaError::WeightsMismatch`] when names or shapes differ.
    pub fn load_unverified(spec: &ModelSpec, weights: Vec<u8>, device: &Device) -> Result<Self> {
        Self::load_unverified_with(spec, weights, device, Precision::F32)
    }

    fn load_unverified_with(
        spec: &ModelSpec,
        weights: Vec<u8>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let mut network = Network::init(&spec.architecture, device);
        network
            .load_safetensors(weights, precision.dtype())
            .map_err(|reason| LupaError::WeightsMismatch { id: spec.id.clone(), reason })?;
        Ok(Self { spec: spec.clone(), network, device: device.clone(), precision })
    }

    /// An f32 input `x` in the model's precision (for [`Network::forward`]; cast the output back
    /// with `.cast(DType::F32)` before reading it as f32).
    pub fn input(&self, x: Tensor<4>) -> Tensor<4> {
        if self.precision == Precision::F32 { x } else { x.cast(self.precision.dtype()) }
    }
}

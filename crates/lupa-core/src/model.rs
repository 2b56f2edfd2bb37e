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

    fn load_safetensors(&mut self, bytes: Vec<u8>) -> std::result::Result<(), String> {
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(FloatCastAdapter::to(DType::F32))
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

/// A model from the registry with its weights loaded.
#[derive(Debug)]
pub struct SrModel {
    /// The registry entry it was loaded from.
    pub spec: ModelSpec,
    /// The network on its device.
    pub network: Network,
    /// The device the weights live on and the model runs on.
    pub device: Device,
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
        Self::load_unverified(spec, weights, device)
    }

    /// Like [`SrModel::load`] without the size and hash check: for the importer, which loads the
    /// file it just wrote before the registry entry exists.
    ///
    /// # Errors
    /// [`LupaError::WeightsMismatch`] when names or shapes differ.
    pub fn load_unverified(spec: &ModelSpec, weights: Vec<u8>, device: &Device) -> Result<Self> {
        let mut network = Network::init(&spec.architecture, device);
        network
            .load_safetensors(weights)
            .map_err(|reason| LupaError::WeightsMismatch { id: spec.id.clone(), reason })?;
        Ok(Self { spec: spec.clone(), network, device: device.clone() })
    }
}

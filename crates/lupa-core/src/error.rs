//! Typed errors of the core, split by who is at fault.

use thiserror::Error;

/// Everything the core can fail with. Messages carry the numbers a user needs to act on them.
#[derive(Debug, Error)]
pub enum LupaError {
    /// The caller passed an image or an option the core cannot work with.
    #[error("bad input: {0}")]
    BadInput(String),

    /// No model with this id is in the registry.
    #[error("unknown model `{id}`; available: {available}")]
    UnknownModel {
        /// The id that was asked for.
        id: String,
        /// The ids the registry offers, comma separated.
        available: String,
    },

    /// The model exists but cannot produce the requested scale factor.
    #[error("model `{id}` upscales {native}x; scale {requested}x is not supported by it")]
    UnsupportedScale {
        /// Model id.
        id: String,
        /// The model's own scale factor.
        native: u32,
        /// What was asked for.
        requested: u32,
    },

    /// The weights do not match what the registry promises (hash, names or shapes).
    #[error("weights for `{id}` do not match the registry: {reason}")]
    WeightsMismatch {
        /// Model id.
        id: String,
        /// What did not match.
        reason: String,
    },

    /// The model registry (`models/index.json`) could not be read.
    #[error("model registry is invalid: {0}")]
    Registry(String),

    /// A size or memory limit would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),

    /// The compute backend failed (device lost, readback failed, ...).
    #[error("backend failure: {0}")]
    Backend(String),

    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
}

/// Result alias used across the core.
pub type Result<T, E = LupaError> = std::result::Result<T, E>;

//! Typed errors of the core. Each variant carries the data a user needs to act on it, and has a
//! stable [`ErrorKind`] that survives every boundary: the CLI prints the message, the browser
//! engine hands `{ kind, message }` to the page.

use thiserror::Error;

/// Everything the core can fail with. Messages are one sentence, with the numbers that matter.
#[derive(Debug, Error)]
pub enum LupaError {
    /// The caller passed an option (or a combination) the core cannot work with.
    #[error("{0}")]
    BadInput(String),

    /// The file is not an image Lupa can read: empty, damaged or of another format.
    #[error(
        "cannot read this file as an image (cannot decode it as PNG, JPEG, WebP, BMP, GIF or TIFF: {reason})"
    )]
    Decode {
        /// What the decoder said.
        reason: String,
    },

    /// No model with this id is in the registry.
    #[error("unknown model `{id}`; available: {available}")]
    UnknownModel {
        /// The id that was asked for.
        id: String,
        /// The ids the registry offers, comma separated.
        available: String,
    },

    /// The weights do not match what the registry promises (hash, names or shapes).
    #[error("weights for `{id}` do not match the registry: {reason}")]
    WeightsMismatch {
        /// Model id.
        id: String,
        /// What did not match.
        reason: String,
    },

    /// A job needs a model whose weights the front end has not loaded.
    #[error("model {id} is not loaded")]
    NotLoaded {
        /// Model id.
        id: String,
    },

    /// The model registry (`models/index.json`) could not be read.
    #[error("model registry is invalid: {0}")]
    Registry(String),

    /// A size or memory limit would be exceeded.
    #[error("{what} needs {}, more than the {} {limit_of}; {advice}", unit.show(*needed), unit.show(*limit))]
    LimitExceeded {
        /// What would be made, e.g. "a 32768×32768 image".
        what: String,
        /// How much it needs, in `unit`s.
        needed: u64,
        /// The limit, in `unit`s.
        limit: u64,
        /// What `needed` and `limit` count.
        unit: Unit,
        /// Whose limit it is, e.g. "this browser engine can hold".
        limit_of: &'static str,
        /// What the user can do, e.g. "crop the image or choose a smaller size".
        advice: String,
    },

    /// The decoder refused the image as too large before saying its size (PNG on wasm32, whose
    /// address space is 4 GiB, does so for images over it).
    #[error(
        "this image is too large to decode: more than the {} MiB Lupa decodes ({reason}); make it smaller \
         with an image editor first",
        limit >> 20
    )]
    DecodeTooLarge {
        /// The decoding limit in bytes.
        limit: u64,
        /// What the decoder said.
        reason: String,
    },

    /// Encoding the result failed (the encoder's message).
    #[error("cannot encode the result as {format}: {reason}")]
    Encode {
        /// The output format, e.g. `PNG`.
        format: &'static str,
        /// What the encoder said.
        reason: String,
    },

    /// The compute backend failed (device lost, readback failed, ...).
    #[error("backend failure: {0}")]
    Backend(String),

    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
}

/// What a [`LupaError::LimitExceeded`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, shown in MiB.
    Bytes,
    /// Pixels along one side.
    PixelsASide,
}

impl Unit {
    fn show(self, n: u64) -> String {
        match self {
            Self::Bytes => format!("{} MiB", n.div_ceil(1 << 20)),
            Self::PixelsASide => format!("{n} pixels a side"),
        }
    }
}

/// The stable kind of a [`LupaError`], for programs: the worker protocol, the JS API and tests
/// match on it, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A file that is not a readable image, or an option the core cannot work with.
    BadInput,
    /// A model id the registry does not have.
    UnknownModel,
    /// Weights missing, or not matching the registry.
    Weights,
    /// The registry itself is invalid.
    Registry,
    /// A size or memory limit.
    Limit,
    /// The compute backend failed.
    Backend,
    /// The result could not be encoded.
    Encode,
    /// The caller cancelled.
    Cancelled,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 8] = [
        Self::BadInput,
        Self::UnknownModel,
        Self::Weights,
        Self::Registry,
        Self::Limit,
        Self::Backend,
        Self::Encode,
        Self::Cancelled,
    ];

    /// The kind's name in the worker protocol and the JS API (`bad-input`, `limit`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::BadInput => "bad-input",
            Self::UnknownModel => "unknown-model",
            Self::Weights => "weights",
            Self::Registry => "registry",
            Self::Limit => "limit",
            Self::Backend => "backend",
            Self::Encode => "encode",
            Self::Cancelled => "cancelled",
        }
    }
}

impl LupaError {
    /// The error's stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadInput(_) | Self::Decode { .. } => ErrorKind::BadInput,
            Self::UnknownModel { .. } => ErrorKind::UnknownModel,
            Self::WeightsMismatch { .. } | Self::NotLoaded { .. } => ErrorKind::Weights,
            Self::Registry(_) => ErrorKind::Registry,
            Self::LimitExceeded { .. } | Self::DecodeTooLarge { .. } => ErrorKind::Limit,
            Self::Encode { .. } => ErrorKind::Encode,
            Self::Backend(_) => ErrorKind::Backend,
            Self::Cancelled => ErrorKind::Cancelled,
        }
    }
}

/// Result alias used across the core.
pub type Result<T, E = LupaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names_and_limits_read_in_mib() {
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        let e = LupaError::LimitExceeded {
            what: "a 32768×32768 image".into(),
            needed: 3 << 30,
            limit: 1536 << 20,
            unit: Unit::Bytes,
            limit_of: "this browser engine can hold",
            advice: "crop the image or choose a smaller size".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert_eq!(
            e.to_string(),
            "a 32768×32768 image needs 3072 MiB, more than the 1536 MiB this browser engine can hold; \
             crop the image or choose a smaller size"
        );
        assert_eq!(LupaError::Decode { reason: "x".into() }.kind(), ErrorKind::BadInput);
    }
}

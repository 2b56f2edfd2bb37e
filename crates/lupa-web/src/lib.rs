//! Lupa's browser engine: the core compiled to `wasm32-unknown-unknown` with wasm-bindgen.
//!
//! - [`engine`]: decoding, the output-size guard, tile sizing and PNG encoding; plain Rust, tested
//!   natively.
//! - `wasm` (wasm32 only): the functions `web/worker.js` calls; see that module for the API.

pub mod engine;
#[cfg(target_family = "wasm")]
pub mod wasm;

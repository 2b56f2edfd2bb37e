//! Lupa's browser engine: the core compiled to `wasm32-unknown-unknown` with wasm-bindgen, run by
//! `web/worker.js` in a Web Worker. The job is [`lupa_core::Job`]'s; this crate is the protocol.
//!
//! - [`engine`]: the page's job request with this engine's limits, and the zip of a batch; plain
//!   Rust, tested natively.
//! - `wasm` (wasm32 only): the functions `web/worker.js` calls, and the one conversion of a
//!   [`lupa_core::LupaError`] to a JavaScript `Error` carrying its kind; see that module for the API.
//!
//! How the crates and the web modules fit together: `ARCHITECTURE.md` at the repository's root.

pub mod engine;
#[cfg(target_family = "wasm")]
pub mod wasm;

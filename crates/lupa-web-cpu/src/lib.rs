//! Lupa's browser CPU engine: `lupa-web` built without its `gpu` feature (no wgpu, no CubeCL),
//! the same exports and protocol (`web/worker.js` loads one engine or the other). Its own crate so
//! that Trunk builds it as a second module beside the full engine.

pub use lupa_web::*;

//! Packed convolutions kept between calls on `flex`, so that a model's weights are packed once,
//! not at every tile.
//!
//! A model's weights are the same tensors at every call (its `Param`s), so a layer is found again by
//! its weight buffer: each entry holds a [`Weak`] to it, whose address cannot be reused while the
//! entry exists; the entry dies with the model (its buffer dropped) and is removed at the next
//! insert. A hash of the weights' values (FNV-1a over their bits: 20 µs for a 64-channel 3×3 layer,
//! whose packing takes 450), the layout, geometry, bias and activation (PReLU's slopes) are
//! compared too, so a buffer written in place, or a call with other values, is packed anew. At
//! most [`BUDGET`] bytes are kept: a model's layers past it (RRDB's 16.7 M parameters are 4× that
//! in Winograd form) are packed at every call, as they were before this cache.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use burn::backend::flex::FlexTensor;
use burn::tensor::Bytes;
use lupa_kernels::{Activation, ConvGeometry, PackedConv2d, PackedConvTranspose2d};

/// Bytes of packed weights kept at most (per process: per wasm worker in the browser). Every
/// shipped model but RRDB fits (SPAN x4 takes about 7 MB, realesr-general-x4v3 19 MB in Winograd
/// form).
pub const BUDGET: usize = 32 << 20;

/// The convolutions packed so far.
pub static CONVS: Cache<PackedConv2d> = Cache::new();
/// The transposed convolutions packed so far.
pub static TRANSPOSED: Cache<PackedConvTranspose2d> = Cache::new();

/// What a convolution is packed from, besides its weight buffer.
#[derive(Debug, PartialEq)]
pub struct Recipe {
    /// The weight tensor's shape, strides and offset into its buffer.
    view: (Vec<usize>, Vec<isize>, usize),
    /// FNV-1a of the weights' values in row-major order.
    hash: u64,
    pub geometry: ConvGeometry,
    pub activation: Activation,
    pub bias: Vec<f32>,
}

impl Recipe {
    /// `weight`'s view and the hash of its `values` (row-major), with the rest.
    pub fn new(
        weight: &FlexTensor,
        values: &[f32],
        geometry: ConvGeometry,
        activation: Activation,
        bias: Vec<f32>,
    ) -> Self {
        let layout = weight.layout();
        let view = (layout.shape().to_vec(), layout.strides().to_vec(), layout.start_offset());
        Self { view, hash: fnv1a(values), geometry, activation, bias }
    }
}

/// 64-bit FNV-1a over the values' bits, a pair of values at a time.
fn fnv1a(values: &[f32]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let word = |pair: &[f32]| pair.iter().fold(0u64, |w, v| (w << 32) | u64::from(v.to_bits()));
    values.chunks(2).fold(0xcbf2_9ce4_8422_2325, |h, pair| (h ^ word(pair)).wrapping_mul(PRIME))
}

struct Entry<T> {
    weight: Weak<Bytes>,
    recipe: Recipe,
    bytes: usize,
    packed: Arc<T>,
}

/// Packed convolutions of one kind.
pub struct Cache<T> {
    entries: Mutex<Vec<Entry<T>>>,
}

/// The packed form's size in bytes.
pub trait PackedBytes {
    fn packed_bytes(&self) -> usize;
}

impl PackedBytes for PackedConv2d {
    fn packed_bytes(&self) -> usize {
        PackedConv2d::packed_bytes(self)
    }
}

impl PackedBytes for PackedConvTranspose2d {
    fn packed_bytes(&self) -> usize {
        PackedConvTranspose2d::packed_bytes(self)
    }
}

impl<T: PackedBytes> Cache<T> {
    const fn new() -> Self {
        Self { entries: Mutex::new(Vec::new()) }
    }

    /// The convolution packed from `weight` (its buffer) and `recipe`: the one kept from an
    /// earlier call, else `pack(&recipe)`'s, kept where it fits the [`BUDGET`].
    pub fn get_or_pack(
        &self,
        weight: &FlexTensor,
        recipe: Recipe,
        pack: impl FnOnce(&Recipe) -> T,
    ) -> Arc<T> {
        let buffer = weight.data_arc();
        let found = |entries: &[Entry<T>]| {
            entries
                .iter()
                .find(|e| std::ptr::eq(e.weight.as_ptr(), Arc::as_ptr(&buffer)) && e.recipe == recipe)
                .map(|e| Arc::clone(&e.packed))
        };
        if let Some(packed) = found(&self.lock()) {
            return packed;
        }
        // Packed without the lock: another thread may pack the same layer meanwhile (the CLI's
        // tile threads); the first to insert it wins.
        let packed = Arc::new(pack(&recipe));
        let mut entries = self.lock();
        if let Some(kept) = found(&entries) {
            return kept;
        }
        entries.retain(|e| e.weight.strong_count() > 0);
        let bytes = packed.packed_bytes();
        let used: usize = entries.iter().map(|e| e.bytes).sum();
        if used + bytes <= BUDGET {
            let weight = Arc::downgrade(&buffer);
            entries.push(Entry { weight, recipe, bytes, packed: Arc::clone(&packed) });
        }
        packed
    }

    /// Entries and their bytes, the dead ones included (for the tests).
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.len(), entries.iter().map(|e| e.bytes).sum())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry<T>>> {
        // A panic while the lock was held leaves whole entries: the list stays usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use burn::backend::Flex;
    use burn::backend::ops::FloatTensorOps;
    use burn::tensor::TensorData;

    use super::*;

    const GEOMETRY: ConvGeometry = ConvGeometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1] };

    /// A 3×3 layer of `channels` in and out.
    fn layer(channels: usize, seed: f32) -> FlexTensor {
        let values: Vec<f32> = (0..channels * channels * 9).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        FlexTensor::from_data(TensorData::new(values, [channels, channels, 3, 3]))
    }

    fn weight(seed: f32) -> FlexTensor {
        layer(16, seed)
    }

    /// Packs `weight` through `cache`, counting the packings in `packs`.
    fn pack(
        cache: &Cache<PackedConv2d>,
        weight: &FlexTensor,
        bias: f32,
        packs: &Cell<usize>,
    ) -> Arc<PackedConv2d> {
        let values = weight.as_slice::<f32>().unwrap().to_vec();
        let channels = weight.layout().shape()[0];
        let recipe = Recipe::new(weight, &values, GEOMETRY, Activation::Silu, vec![bias; channels]);
        cache.get_or_pack(weight, recipe, |r| {
            packs.set(packs.get() + 1);
            PackedConv2d::new(&values, Some(&r.bias), channels, channels, GEOMETRY, &r.activation)
        })
    }

    #[test]
    fn a_layer_is_packed_once_while_its_weights_live() {
        let (cache, packs) = (Cache::new(), Cell::new(0));
        let w = weight(0.0);
        let first = pack(&cache, &w, 0.5, &packs);
        // The same buffer again, and through a clone of the tensor (what `Param::val` returns).
        assert!(Arc::ptr_eq(&first, &pack(&cache, &w, 0.5, &packs)));
        assert!(Arc::ptr_eq(&first, &pack(&cache, &w.clone(), 0.5, &packs)));
        assert_eq!(packs.get(), 1);
        // Another bias, or the same values in another buffer: packed for themselves.
        assert!(!Arc::ptr_eq(&first, &pack(&cache, &w, 0.25, &packs)));
        let twin = weight(0.0);
        pack(&cache, &twin, 0.5, &packs);
        assert_eq!((packs.get(), cache.usage().0), (3, 3));
        // Dropped weights: their entries go at the next insert.
        drop((w, twin));
        pack(&cache, &weight(1.0), 0.5, &packs);
        assert_eq!(cache.usage().0, 1);
    }

    #[test]
    fn a_buffer_written_in_place_is_packed_anew() {
        let (cache, packs) = (Cache::new(), Cell::new(0));
        let w = weight(0.0);
        let before = pack(&cache, &w, 0.5, &packs);
        // Flex writes an op's result into its input's storage when no other tensor holds it
        // (`Arc::make_mut`; the cache's reference is weak, which makes it move the storage to a
        // new `Arc`, and the hash would tell the values apart anyway).
        let doubled = Flex::float_mul_scalar(w, 2.0f32.into());
        let after = pack(&cache, &doubled, 0.5, &packs);
        assert_eq!(packs.get(), 2);
        assert!(!Arc::ptr_eq(&before, &after));
    }

    #[test]
    fn layers_past_the_budget_are_packed_at_every_call() {
        let (cache, packs) = (Cache::new(), Cell::new(0));
        // 512 channels in and out: 36 · 512² f32 in Winograd form, 37.7 MB.
        let large = layer(512, 0.0);
        pack(&cache, &large, 0.5, &packs);
        let small = weight(0.0);
        pack(&cache, &small, 0.5, &packs);
        pack(&cache, &large, 0.5, &packs);
        pack(&cache, &small, 0.5, &packs);
        let (entries, bytes) = cache.usage();
        assert_eq!((packs.get(), entries), (3, 1), "the large layer twice, the small one once");
        assert!(bytes <= BUDGET);
    }
}

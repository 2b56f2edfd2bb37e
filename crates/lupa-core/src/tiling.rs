//! Tiling: a pure plan from (image size, model requirements, tile size, overlap) to rectangles.
//!
//! The image is cut into a grid of *cores* that partition it exactly. Each tile feeds the model its
//! core grown by `overlap` pixels of context on every side (clamped to the image), then keeps only
//! the upscaled core. Because cores partition the input, their upscaled rectangles partition the
//! output: every output pixel is written exactly once. When the overlap is at least the model's
//! receptive-field radius, the tiled result equals the untiled one (up to float rounding).
//!
//! Same semantics as Real-ESRGAN's `tile_process` (xinntao/Real-ESRGAN `realesrgan/utils.py`), with
//! balanced tile sizes instead of a thin last tile, and no hidden state.

use crate::error::{LupaError, Result};

/// An axis-aligned rectangle in pixels; `x`, `y` is the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge (inclusive).
    pub x: u32,
    /// Top edge (inclusive).
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// What the planner needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileParams {
    /// Scale factor of the model.
    pub scale: u32,
    /// Largest core side in input pixels; 0 means one tile for the whole image (both before
    /// [`TileParams::engines`] cuts finer).
    pub tile_size: u32,
    /// Context added on each side of a core, in input pixels.
    pub overlap: u32,
    /// The model's input must have sides that are multiples of this (the pipeline pads by edge
    /// replication and crops the padding away).
    pub multiple_of: u32,
    /// The model's smallest accepted side (padded up to, like `multiple_of`).
    pub min_size: u32,
    /// Tile inputs start at multiples of this: a network with stride-2 layers computes something
    /// else for the same pixels at an odd offset (it is not shift-invariant).
    pub align: u32,
    /// Engines that share the image's tiles, each running one at a time (0 and 1: one). Where
    /// `tile_size` gives fewer tiles than engines, the image is cut finer, into the grid of at
    /// most this many tiles whose largest (with its overlap) is smallest: e.g. two strips for two
    /// engines ([`grid`]).
    pub engines: u32,
}

/// One tile of a [`TilePlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// The region of the input this tile is responsible for. Cores partition the input.
    pub core: Rect,
    /// The region of the input fed to the model: the core plus overlap, clamped to the image.
    pub input: Rect,
    /// Pixels to add to the right of `input` (edge replication) to meet the model's size rules.
    pub pad_right: u32,
    /// Pixels to add below `input` (edge replication) to meet the model's size rules.
    pub pad_bottom: u32,
    /// Where the upscaled core goes in the output image (`core · scale`).
    pub output: Rect,
    /// The part of the model's output (coordinates relative to the upscaled, padded `input`) that
    /// is copied to `output`. Same size as `output`.
    pub crop: Rect,
}

/// The tiles covering one image, in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Scale factor.
    pub scale: u32,
    /// The tiles.
    pub tiles: Vec<Tile>,
}

impl TilePlan {
    /// Output width (`width · scale`).
    pub fn output_width(&self) -> u32 {
        self.width * self.scale
    }

    /// Output height (`height · scale`).
    pub fn output_height(&self) -> u32 {
        self.height * self.scale
    }

    /// The largest model input (after padding) of any tile, as `(width, height)`.
    pub fn max_model_input(&self) -> (u32, u32) {
        self.tiles.iter().fold((0, 0), |(w, h), t| {
            (w.max(t.input.width + t.pad_right), h.max(t.input.height + t.pad_bottom))
        })
    }
}

/// Splits `0..len` into `parts` contiguous, nearly equal ranges `(start, length)`.
fn split_balanced(len: u32, parts: u32) -> impl Iterator<Item = (u32, u32)> {
    let (len, parts) = (u64::from(len), u64::from(parts));
    (0..parts).map(move |i| {
        let start = i * len / parts;
        let end = (i + 1) * len / parts;
        // Both fit in u32: they are at most `len`.
        (start as u32, (end - start) as u32)
    })
}

/// Along one side of `len` pixels, the tile input `(from, to)` of the core `start..start + size`:
/// grown by `overlap` on both sides (the start rounded down to `align`), clamped to the image.
fn input_span(start: u32, size: u32, len: u32, overlap: u32, align: u32) -> (u32, u32) {
    let from = start.saturating_sub(overlap) / align * align;
    let to = start.saturating_add(size).saturating_add(overlap).min(len);
    (from, to)
}

/// The largest and the total extent of the tile inputs along one side of `len` pixels cut into
/// `parts` cores ([`input_span`]).
fn input_extents(len: u32, parts: u32, overlap: u32, align: u32) -> (u64, u64) {
    split_balanced(len, parts).fold((0, 0), |(largest, total), (start, size)| {
        let (from, to) = input_span(start, size, len, overlap, align);
        let extent = u64::from(to - from);
        (largest.max(extent), total + extent)
    })
}

/// Rows and columns of cores for an image of `width × height`: as many as `tile_size` needs, and
/// where that makes fewer tiles than `engines`, the grid of at most `engines` tiles (and at least
/// as many rows and columns) whose largest tile input is smallest, as it is the one the job waits
/// for; then the one with the least work (all tiles' input pixels), then the fewest columns (strips
/// of whole rows). On two engines a square image of one tile becomes two strips, each half the
/// image plus one overlap; a tiny image, whose every tile would be all of it with the overlap,
/// stays one tile.
pub fn grid(width: u32, height: u32, params: TileParams) -> (u32, u32) {
    let TileParams { tile_size, overlap, align, engines, .. } = params;
    let count = |len: u32| if tile_size == 0 { 1 } else { len.div_ceil(tile_size) };
    let (rows, cols) = (count(height), count(width));
    if u64::from(rows) * u64::from(cols) >= u64::from(engines) {
        return (rows, cols);
    }
    let cost = |(r, c): (u32, u32)| {
        let (tallest, all_rows) = input_extents(height, r, overlap, align);
        let (widest, all_cols) = input_extents(width, c, overlap, align);
        (tallest * widest, all_rows * all_cols, c)
    };
    // Here `rows · cols < engines`, so both are below `engines` and the grids are few.
    (rows..=height.min(engines))
        .flat_map(|r| (cols..=width.min(engines / r)).map(move |c| (r, c)))
        .min_by_key(|&grid| cost(grid))
        .unwrap_or((rows, cols))
}

fn padding_to(size: u32, multiple_of: u32, min_size: u32) -> u32 {
    let wanted = size.max(min_size).div_ceil(multiple_of) * multiple_of;
    wanted - size
}

/// Plans the tiles for an image of `width × height` input pixels.
///
/// # Errors
/// - [`LupaError::BadInput`] for an empty image, a zero scale or a zero `multiple_of`.
/// - [`LupaError::LimitExceeded`] when the output side would not fit in `u32`.
pub fn plan_tiles(width: u32, height: u32, params: TileParams) -> Result<TilePlan> {
    let TileParams { scale, overlap, multiple_of, min_size, align, .. } = params;
    if width == 0 || height == 0 {
        return Err(LupaError::BadInput(format!("image is empty ({width}×{height} pixels)")));
    }
    if scale == 0 || multiple_of == 0 || align == 0 {
        return Err(LupaError::BadInput(format!(
            "scale ({scale}), multiple_of ({multiple_of}) and align ({align}) must be at least 1"
        )));
    }
    let (Some(_), Some(_)) = (width.checked_mul(scale), height.checked_mul(scale)) else {
        return Err(LupaError::LimitExceeded {
            what: format!("{width}×{height} at {scale}x"),
            needed: u64::from(width.max(height)) * u64::from(scale),
            limit: u64::from(u32::MAX),
            unit: crate::error::Unit::PixelsASide,
            limit_of: "an image can have",
            advice: "choose a smaller size".into(),
        });
    };

    let (rows, cols) = grid(width, height, params);
    let mut tiles = Vec::new();
    for (cy, ch) in split_balanced(height, rows) {
        for (cx, cw) in split_balanced(width, cols) {
            let core = Rect { x: cx, y: cy, width: cw, height: ch };
            let (x0, x1) = input_span(cx, cw, width, overlap, align);
            let (y0, y1) = input_span(cy, ch, height, overlap, align);
            let input = Rect { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
            tiles.push(Tile {
                core,
                input,
                pad_right: padding_to(input.width, multiple_of, min_size),
                pad_bottom: padding_to(input.height, multiple_of, min_size),
                output: Rect { x: cx * scale, y: cy * scale, width: cw * scale, height: ch * scale },
                crop: Rect {
                    x: (cx - x0) * scale,
                    y: (cy - y0) * scale,
                    width: cw * scale,
                    height: ch * scale,
                },
            });
        }
    }
    Ok(TilePlan { width, height, scale, tiles })
}

/// The largest tile (core side, input pixels) whose padded model input fits `budget_bytes`, given
/// the model's activation memory per input pixel. At least 16 and at most `max_side`.
pub fn tile_size_for_budget(
    memory_bytes_per_pixel: u64,
    budget_bytes: u64,
    overlap: u32,
    max_side: u32,
) -> u32 {
    let pixels = budget_bytes / memory_bytes_per_pixel.max(1);
    // Integer square root: the side of a square tile including overlap on both sides.
    let side = (pixels as f64).sqrt() as u64;
    let core = side.saturating_sub(2 * u64::from(overlap));
    core.clamp(16, u64::from(max_side.max(16))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(scale: u32, tile_size: u32, overlap: u32) -> TileParams {
        TileParams { scale, tile_size, overlap, multiple_of: 1, min_size: 1, align: 1, engines: 1 }
    }

    /// Counts how often each output pixel is written; every count must be exactly one.
    fn assert_exact_cover(plan: &TilePlan) {
        let (w, h) = (plan.output_width() as usize, plan.output_height() as usize);
        let mut writes = vec![0u8; w * h];
        for t in &plan.tiles {
            for y in t.output.y..t.output.y + t.output.height {
                for x in t.output.x..t.output.x + t.output.width {
                    writes[y as usize * w + x as usize] += 1;
                }
            }
        }
        let wrong = writes.iter().filter(|&&n| n != 1).count();
        assert_eq!(wrong, 0, "{wrong} of {} output pixels not written exactly once", w * h);
    }

    /// Checks the invariants tying core, input, crop and output together.
    fn assert_consistent(plan: &TilePlan, p: TileParams) {
        for t in &plan.tiles {
            // The input holds the core, within the image.
            assert!(t.input.x <= t.core.x && t.input.y <= t.core.y);
            assert!(t.input.x + t.input.width >= t.core.x + t.core.width);
            assert!(t.input.y + t.input.height >= t.core.y + t.core.height);
            assert!(t.input.x + t.input.width <= plan.width);
            assert!(t.input.y + t.input.height <= plan.height);
            // The context is the overlap (widened to the alignment), or what the border leaves.
            assert_eq!(t.input.x, t.core.x.saturating_sub(p.overlap) / p.align * p.align);
            assert_eq!(t.input.y, t.core.y.saturating_sub(p.overlap) / p.align * p.align);
            // The crop lies inside the upscaled padded input and has the output's size.
            let padded_w = (t.input.width + t.pad_right) * p.scale;
            let padded_h = (t.input.height + t.pad_bottom) * p.scale;
            assert!(t.crop.x + t.crop.width <= padded_w && t.crop.y + t.crop.height <= padded_h);
            assert_eq!((t.crop.width, t.crop.height), (t.output.width, t.output.height));
            // Padding meets the model's rules.
            assert_eq!((t.input.width + t.pad_right) % p.multiple_of, 0);
            assert!(t.input.width + t.pad_right >= p.min_size);
            assert!(t.input.height + t.pad_bottom >= p.min_size);
            if p.tile_size > 0 {
                assert!(t.core.width <= p.tile_size && t.core.height <= p.tile_size);
            }
        }
    }

    #[test]
    fn one_pixel_image_is_one_tile() {
        let p = params(4, 64, 8);
        let plan = plan_tiles(1, 1, p).unwrap();
        assert_eq!(plan.tiles.len(), 1);
        let t = plan.tiles[0];
        assert_eq!(t.input, Rect { x: 0, y: 0, width: 1, height: 1 });
        assert_eq!(t.output, Rect { x: 0, y: 0, width: 4, height: 4 });
        assert_eq!(t.crop, t.output);
        assert_exact_cover(&plan);
    }

    #[test]
    fn image_smaller_than_a_tile_is_one_unpadded_tile() {
        let plan = plan_tiles(37, 21, params(2, 128, 16)).unwrap();
        assert_eq!(plan.tiles.len(), 1);
        let t = plan.tiles[0];
        assert_eq!(t.core, t.input);
        assert_eq!(t.core, Rect { x: 0, y: 0, width: 37, height: 21 });
        assert_eq!((plan.output_width(), plan.output_height()), (74, 42));
        assert_exact_cover(&plan);
    }

    #[test]
    fn odd_sizes_are_covered_exactly_once() {
        for (w, h) in [(3, 5), (97, 31), (101, 257), (513, 17), (1000, 872)] {
            for (scale, tile, overlap) in [(2, 32, 4), (3, 50, 10), (4, 64, 16), (4, 7, 0), (8, 1, 3)] {
                let p = params(scale, tile, overlap);
                let plan = plan_tiles(w, h, p).unwrap();
                assert_exact_cover(&plan);
                assert_consistent(&plan, p);
                let expected = w.div_ceil(tile) * h.div_ceil(tile);
                assert_eq!(plan.tiles.len() as u32, expected, "{w}×{h} tile {tile}");
            }
        }
    }

    #[test]
    fn tiles_are_balanced_not_a_thin_last_one() {
        let plan = plan_tiles(130, 10, params(4, 64, 8)).unwrap();
        let widths: Vec<u32> = plan.tiles.iter().map(|t| t.core.width).collect();
        assert_eq!(widths, vec![43, 43, 44]);
    }

    #[test]
    fn interior_tiles_get_full_overlap_and_borders_are_clamped() {
        let plan = plan_tiles(300, 300, params(2, 100, 10)).unwrap();
        let middle = plan.tiles[4];
        assert_eq!(middle.core, Rect { x: 100, y: 100, width: 100, height: 100 });
        assert_eq!(middle.input, Rect { x: 90, y: 90, width: 120, height: 120 });
        assert_eq!(middle.crop, Rect { x: 20, y: 20, width: 200, height: 200 });
        let corner = plan.tiles[0];
        assert_eq!(corner.input, Rect { x: 0, y: 0, width: 110, height: 110 });
        assert_eq!(corner.crop, Rect { x: 0, y: 0, width: 200, height: 200 });
    }

    #[test]
    fn model_size_rules_add_padding() {
        let p = TileParams { multiple_of: 4, min_size: 16, ..params(2, 40, 6) };
        let plan = plan_tiles(45, 9, p).unwrap();
        assert_consistent(&plan, p);
        assert_exact_cover(&plan);
        // 9 rows: padded up to the minimum of 16.
        assert!(plan.tiles.iter().all(|t| t.input.height + t.pad_bottom == 16));
    }

    #[test]
    fn aligned_tiles_start_at_multiples() {
        let p = TileParams { align: 4, ..params(3, 30, 7) };
        let plan = plan_tiles(101, 67, p).unwrap();
        assert_consistent(&plan, p);
        assert_exact_cover(&plan);
        assert!(plan.tiles.len() > 4);
        assert!(plan.tiles.iter().any(|t| t.core.x > 7 && (t.core.x - 7) % 4 != 0), "test needs rounding");
        for t in &plan.tiles {
            assert_eq!((t.input.x % 4, t.input.y % 4), (0, 0), "{t:?}");
            // Alignment only widens the context, never below the overlap asked for.
            assert!(t.core.x - t.input.x >= t.core.x.min(7), "{t:?}");
        }
    }

    /// Work (input pixels) of every tile, and of the largest.
    fn work(plan: &TilePlan) -> (u32, u32) {
        let area = |t: &Tile| t.input.width * t.input.height;
        (plan.tiles.iter().map(area).sum(), plan.tiles.iter().map(area).max().unwrap())
    }

    #[test]
    fn engines_without_a_tile_each_cut_strips() {
        // 256² in one tile (SRVGG's 32-px overlap); two engines: two strips of 128 rows + 32.
        let one = params(4, 379, 32);
        let two = TileParams { engines: 2, ..one };
        assert_eq!(plan_tiles(256, 256, one).unwrap().tiles.len(), 1);
        let plan = plan_tiles(256, 256, two).unwrap();
        assert_exact_cover(&plan);
        assert_consistent(&plan, two);
        let inputs: Vec<Rect> = plan.tiles.iter().map(|t| t.input).collect();
        assert_eq!(
            inputs,
            [Rect { x: 0, y: 0, width: 256, height: 160 }, Rect { x: 0, y: 96, width: 256, height: 160 }]
        );
        // A wide image is cut the other way.
        let wide = plan_tiles(300, 100, two).unwrap();
        assert_eq!(wide.tiles.iter().map(|t| t.core.width).collect::<Vec<_>>(), [150, 150]);
        // Three engines: three strips (a 2×2 grid would give one engine two tiles).
        let three = plan_tiles(256, 256, TileParams { engines: 3, ..one }).unwrap();
        assert_eq!(three.tiles.len(), 3);
        assert!(three.tiles.iter().all(|t| t.core.width == 256), "{:?}", three.tiles);
        // Four: the 2×2 grid, whose largest tile (160²) is smaller than four strips' (256×128).
        let four = plan_tiles(256, 256, TileParams { engines: 4, ..one }).unwrap();
        assert_eq!(four.tiles.len(), 4);
        assert_eq!(work(&four).1, 160 * 160);
    }

    #[test]
    fn engines_leave_plans_with_a_tile_each_alone() {
        for (w, h) in [(1000, 872), (513, 17), (97, 31)] {
            let p = params(4, 64, 8);
            let base = plan_tiles(w, h, p).unwrap();
            for engines in [0, 1, 2, base.tiles.len() as u32] {
                assert_eq!(
                    plan_tiles(w, h, TileParams { engines, ..p }).unwrap(),
                    base,
                    "{w}×{h}, {engines}"
                );
            }
        }
        // Tiny images, whose every tile would be all of them with the overlap, stay one tile.
        for (w, h) in [(1, 1), (3, 1), (16, 16)] {
            let plan = plan_tiles(w, h, TileParams { engines: 4, ..params(2, 64, 8) }).unwrap();
            assert_eq!(plan.tiles.len(), 1, "{w}×{h}");
        }
    }

    #[test]
    fn more_engines_never_make_the_largest_tile_larger() {
        for (w, h) in [(256, 256), (200, 120), (64, 500), (37, 21)] {
            for (tile, overlap, align) in [(512, 32, 1), (213, 16, 1), (141, 12, 4), (0, 8, 2)] {
                let p = TileParams { align, ..params(2, tile, overlap) };
                let mut largest = u32::MAX;
                for engines in 1..=8 {
                    let q = TileParams { engines, ..p };
                    let plan = plan_tiles(w, h, q).unwrap();
                    assert_exact_cover(&plan);
                    assert_consistent(&plan, q);
                    let base = plan_tiles(w, h, p).unwrap().tiles.len() as u32;
                    assert!((plan.tiles.len() as u32) <= base.max(engines), "{w}×{h} {q:?}");
                    let (_, max) = work(&plan);
                    assert!(max <= largest, "{w}×{h} {q:?}: largest tile {max} > {largest}");
                    largest = max;
                }
            }
        }
    }

    #[test]
    fn zero_tile_size_means_whole_image() {
        let plan = plan_tiles(640, 480, params(4, 0, 16)).unwrap();
        assert_eq!(plan.tiles.len(), 1);
        assert_eq!(plan.max_model_input(), (640, 480));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(plan_tiles(0, 10, params(4, 64, 8)), Err(LupaError::BadInput(_))));
        assert!(matches!(plan_tiles(10, 0, params(4, 64, 8)), Err(LupaError::BadInput(_))));
        assert!(matches!(plan_tiles(10, 10, params(0, 64, 8)), Err(LupaError::BadInput(_))));
        assert!(matches!(
            plan_tiles(u32::MAX / 2, 10, params(4, 64, 8)),
            Err(LupaError::LimitExceeded { .. })
        ));
    }

    #[test]
    fn budget_picks_a_tile_that_fits() {
        // 10 KB per pixel, 100 MB budget: 10,000 pixels -> a 100-pixel square, minus 2·10 overlap.
        assert_eq!(tile_size_for_budget(10_000, 100_000_000, 10, 4096), 80);
        // Never below 16, never above the cap.
        assert_eq!(tile_size_for_budget(1 << 30, 1, 10, 4096), 16);
        assert_eq!(tile_size_for_budget(1, u64::MAX / 2, 0, 512), 512);
    }
}

//! Image-quality metrics under the standard super-resolution protocol.
//!
//! PSNR on the Y channel follows BasicSR's `calculate_psnr(..., test_y_channel=True)`
//! (xinntao/BasicSR `basicsr/metrics/psnr_ssim.py`): 8-bit RGB, Y of ITU-R BT.601 in the `[16, 235]`
//! studio range (MATLAB's `rgb2ycbcr`), `crop_border` pixels shaved on every side, peak 255.

use image::RgbImage;

use crate::error::{LupaError, Result};

/// BT.601 luma of an 8-bit RGB pixel in `[16, 235]` (MATLAB `rgb2ycbcr`), as f64.
pub fn y_bt601(rgb: [u8; 3]) -> f64 {
    let [r, g, b] = rgb.map(f64::from);
    16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
}

/// PSNR in dB between two equally sized 8-bit RGB images on the Y channel, with `crop_border`
/// pixels shaved off each side. Infinite for identical images.
///
/// # Errors
/// [`LupaError::BadInput`] when sizes differ or nothing is left after shaving.
pub fn psnr_y(reference: &RgbImage, test: &RgbImage, crop_border: u32) -> Result<f64> {
    if reference.dimensions() != test.dimensions() {
        return Err(LupaError::BadInput(format!(
            "PSNR of {:?} against {:?}: sizes differ",
            test.dimensions(),
            reference.dimensions()
        )));
    }
    let (w, h) = reference.dimensions();
    if w <= 2 * crop_border || h <= 2 * crop_border {
        return Err(LupaError::BadInput(format!("{w}×{h} has no pixels left after shaving {crop_border}")));
    }
    let mut sum = 0.0;
    for y in crop_border..h - crop_border {
        for x in crop_border..w - crop_border {
            let d = y_bt601(reference.get_pixel(x, y).0) - y_bt601(test.get_pixel(x, y).0);
            sum += d * d;
        }
    }
    let mse = sum / f64::from((w - 2 * crop_border) * (h - 2 * crop_border));
    Ok(10.0 * (255.0 * 255.0 / mse).log10())
}

/// PSNR in dB between two float buffers with values on a `[0, peak]` scale.
///
/// # Panics
/// If the lengths differ.
pub fn psnr(reference: &[f32], test: &[f32], peak: f64) -> f64 {
    assert_eq!(reference.len(), test.len(), "PSNR of buffers of different lengths");
    let mse = reference.iter().zip(test).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>()
        / reference.len() as f64;
    10.0 * (peak * peak / mse).log10()
}

/// Largest absolute difference between two buffers.
///
/// # Panics
/// If the lengths differ.
pub fn max_abs_diff(reference: &[f32], test: &[f32]) -> f32 {
    assert_eq!(reference.len(), test.len(), "difference of buffers of different lengths");
    reference.iter().zip(test).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_matlab_range() {
        assert!((y_bt601([0, 0, 0]) - 16.0).abs() < 1e-9);
        assert!((y_bt601([255, 255, 255]) - 235.0).abs() < 1e-9);
    }

    #[test]
    fn psnr_y_of_a_known_error() {
        let a = RgbImage::from_pixel(8, 8, image::Rgb([100, 100, 100]));
        let mut b = a.clone();
        // A +10 step in every channel moves Y by 10·219/255 on the interior only.
        for y in 2..6 {
            for x in 2..6 {
                b.put_pixel(x, y, image::Rgb([110, 110, 110]));
            }
        }
        let d = 10.0 * 219.0 / 255.0;
        let expected = 10.0 * (255.0f64 * 255.0 / (d * d)).log10();
        assert!((psnr_y(&a, &b, 2).unwrap() - expected).abs() < 1e-9);
        assert!(psnr_y(&a, &a, 0).unwrap().is_infinite());
        assert!(psnr_y(&a, &b, 4).is_err());
    }

    #[test]
    fn float_psnr_and_max_diff() {
        let a = [0.0, 0.5, 1.0, 0.25];
        let b = [0.0, 0.5, 0.9, 0.25];
        assert!((max_abs_diff(&a, &b) - 0.1).abs() < 1e-6);
        let expected = 10.0 * (1.0 / (0.01f64 / 4.0)).log10();
        assert!((psnr(&a, &b, 1.0) - expected).abs() < 1e-4);
    }
}

//! Image-quality metrics under the standard super-resolution protocol.
//!
//! PSNR on the Y channel follows BasicSR's `calculate_psnr(..., test_y_channel=True)`
//! (xinntao/BasicSR `basicsr/metrics/psnr_ssim.py`): 8-bit RGB, Y of ITU-R BT.601 in the `[16, 235]`
//! studio range (MATLAB's `rgb2ycbcr`), `crop_border` pixels shaved on every side, peak 255.
//!
//! SSIM on the Y channel follows BasicSR's `calculate_ssim(..., test_y_channel=True)` and its
//! `_ssim`, i.e. Wang et al., "Image quality assessment: from error visibility to structural
//! similarity" (IEEE TIP 2004): the same Y and shaving, an 11×11 Gaussian window with σ = 1.5,
//! `C1 = (0.01·255)²`, `C2 = (0.03·255)²`, population (co)variances, the SSIM map over the "valid"
//! positions only (5 px from each side of the shaved image), and its mean.

use image::RgbImage;

use crate::error::{LupaError, Result};

/// BT.601 luma of an 8-bit RGB pixel in `[16, 235]` (MATLAB `rgb2ycbcr`), as f64.
pub fn y_bt601(rgb: [u8; 3]) -> f64 {
    let [r, g, b] = rgb.map(f64::from);
    16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
}

/// The common size of two images a `metric` compares.
fn same_size(metric: &str, reference: &RgbImage, test: &RgbImage) -> Result<(u32, u32)> {
    if reference.dimensions() == test.dimensions() {
        Ok(reference.dimensions())
    } else {
        Err(LupaError::BadInput(format!(
            "{metric} of {:?} against {:?}: sizes differ",
            test.dimensions(),
            reference.dimensions()
        )))
    }
}

/// PSNR in dB between two equally sized 8-bit RGB images on the Y channel, with `crop_border`
/// pixels shaved off each side. Infinite for identical images.
///
/// # Errors
/// [`LupaError::BadInput`] when sizes differ or nothing is left after shaving.
pub fn psnr_y(reference: &RgbImage, test: &RgbImage, crop_border: u32) -> Result<f64> {
    let (w, h) = same_size("PSNR", reference, test)?;
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

/// SSIM between two equally sized 8-bit RGB images on the Y channel, with `crop_border` pixels
/// shaved off each side (module docs). 1 for identical images.
///
/// # Errors
/// [`LupaError::BadInput`] when sizes differ or less than 11×11 pixels are left after shaving.
pub fn ssim_y(reference: &RgbImage, test: &RgbImage, crop_border: u32) -> Result<f64> {
    const RADIUS: usize = 5;
    const SIGMA: f64 = 1.5;
    let (w, h) = same_size("SSIM", reference, test)?;
    let (cw, ch) = (w.saturating_sub(2 * crop_border) as usize, h.saturating_sub(2 * crop_border) as usize);
    if cw <= 2 * RADIUS || ch <= 2 * RADIUS {
        return Err(LupaError::BadInput(format!(
            "{w}×{h} is too small for SSIM after shaving {crop_border}"
        )));
    }
    let luma = |image: &RgbImage| -> Vec<f64> {
        let mut out = Vec::with_capacity(cw * ch);
        for y in 0..ch as u32 {
            for x in 0..cw as u32 {
                out.push(y_bt601(image.get_pixel(x + crop_border, y + crop_border).0));
            }
        }
        out
    };
    let (a, b) = (luma(reference), luma(test));
    // Normalised 1-D Gaussian; the 11×11 window is its outer product (OpenCV getGaussianKernel).
    let g: Vec<f64> = (0..=2 * RADIUS)
        .map(|i| (-((i as f64 - RADIUS as f64).powi(2)) / (2.0 * SIGMA * SIGMA)).exp())
        .collect();
    let total: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / total).collect();
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut sum, mut count) = (0.0, 0usize);
    for y in RADIUS..ch - RADIUS {
        for x in RADIUS..cw - RADIUS {
            let (mut ma, mut mb, mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (j, gy) in g.iter().enumerate() {
                let row = (y + j - RADIUS) * cw;
                for (i, gx) in g.iter().enumerate() {
                    let k = row + x + i - RADIUS;
                    let weight = gy * gx;
                    ma += weight * a[k];
                    mb += weight * b[k];
                    aa += weight * a[k] * a[k];
                    bb += weight * b[k] * b[k];
                    ab += weight * a[k] * b[k];
                }
            }
            let (va, vb, cov) = (aa - ma * ma, bb - mb * mb, ab - ma * mb);
            sum += ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    Ok(sum / count as f64)
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

    /// Reference values from scikit-image 0.26.0 `structural_similarity(y_ref, y_test,
    /// gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)` on the same
    /// Y planes (BT.601 studio range, 4 px shaved) of the astronaut crop.
    #[test]
    fn ssim_y_matches_scikit_image() {
        let path = format!(
            "{}/../../tests/fixtures/images/astronaut_128.png",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        );
        let a = image::open(path).unwrap().to_rgb8();
        let (w, h) = a.dimensions();
        let shifted = RgbImage::from_fn(w, h, |x, y| *a.get_pixel((x + 1) % w, y));
        let flat = RgbImage::from_fn(w, h, |x, y| image::Rgb(a.get_pixel(x, y).0.map(|v| v / 2 + 64)));
        assert!((ssim_y(&a, &shifted, 4).unwrap() - 0.839_239_324_299_818).abs() < 1e-9);
        assert!((ssim_y(&a, &flat, 4).unwrap() - 0.832_125_460_385_366_1).abs() < 1e-9);
        assert!((ssim_y(&a, &a, 4).unwrap() - 1.0).abs() < 1e-12);
        assert!(ssim_y(&a, &a, 60).is_err());
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

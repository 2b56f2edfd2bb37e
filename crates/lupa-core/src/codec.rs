//! Image files in and out, in memory (bytes, never paths), with the `image` crate's codecs, shared
//! by the CLI and the browser engine.
//!
//! - **Decoding** reads PNG, JPEG, WebP, BMP, GIF and TIFF whatever the file is called (of an
//!   animation or a multi-page TIFF, the first frame or page, saying so), applies the EXIF
//!   orientation to the pixels, and keeps the ICC profile and the EXIF block with its orientation
//!   tag reset to "normal", so the rotation happens exactly once.
//! - **Encoding** writes PNG (8/16-bit, alpha), JPEG (8-bit, no alpha, quality 1–100), WebP
//!   (lossless, 8-bit, alpha; natively also lossy at quality 1–100, by libwebp), AVIF (8-bit,
//!   alpha, quality 1–100; encode only, by the pure-Rust `ravif`/`rav1e`, which also runs in wasm)
//!   or BMP, converting the colour type only as far as the format needs, and carries the ICC profile and EXIF over where the format can hold them (see
//!   [`OutputFormat::keeps`]). The pixels are never colour-converted: they stay in the source's
//!   colour space, which the carried ICC profile describes (sRGB when there is none).

use std::io::Cursor;

use image::codecs::avif::AvifEncoder;
use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader};

use crate::error::{LupaError, Result};

/// Metadata carried from the input file to the output file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The embedded ICC colour profile.
    pub icc: Option<Vec<u8>>,
    /// The raw EXIF block (TIFF header onwards), orientation already reset to 1.
    pub exif: Option<Vec<u8>>,
    /// The EXIF orientation that was applied to the pixels on decoding.
    pub applied_orientation: Option<Orientation>,
}

/// A decoded image file.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Pixels, upright.
    pub image: DynamicImage,
    /// Colour profile and EXIF to carry over.
    pub metadata: Metadata,
    /// The file's format, detected from its bytes.
    pub format: ImageFormat,
    /// What the user should know about how the file was read, one sentence each: an animation
    /// (APNG, animated WebP or GIF) of which only the first frame was decoded, a TIFF of which
    /// only the first page was, a JPEG that ends early (its missing part decodes grey).
    pub notes: Vec<&'static str>,
}

/// Largest decoded image [`decode`] accepts, in bytes of pixels: 1 GiB, e.g. 18 000 × 18 000 RGB
/// at 8 bits or 13 000 × 13 000 RGBA at 16 bits per channel. Checked from the file's header,
/// before anything is allocated, so a small file that declares a huge image (a decompression
/// bomb) is refused at once.
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Decodes an image file (PNG, JPEG, WebP, BMP, GIF or TIFF), detecting the format from its bytes.
///
/// # Errors
/// [`LupaError::Decode`] with the decoder's reason when the bytes are empty, not a supported
/// format, or damaged; [`LupaError::LimitExceeded`] when the header declares an image over
/// [`MAX_DECODED_BYTES`], [`LupaError::DecodeTooLarge`] when a decoder refuses it as too large
/// before saying its size.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    let unreadable = |e: &dyn std::fmt::Display| LupaError::Decode { reason: e.to_string() };
    if bytes.is_empty() {
        return Err(unreadable(&"the file is empty"));
    }
    let reader = |limits: image::Limits| {
        let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
        reader.limits(limits);
        Ok::<_, std::io::Error>(reader)
    };
    // First the header alone, without limits (a decoder may refuse a huge image in its own words,
    // as PNG does on wasm32), to say how large the image is; nothing is allocated for the pixels.
    let header = reader(image::Limits::no_limits()).map_err(|e| unreadable(&e))?;
    let format = header.format().ok_or_else(|| unreadable(&"unknown format"))?;
    // A decoder that refuses on its own limits says so in a limit error, not as damage.
    let failed = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => {
            LupaError::DecodeTooLarge { limit: MAX_DECODED_BYTES, reason: e.to_string() }
        }
        e => unreadable(&e),
    };
    let probe = header.into_decoder().map_err(failed)?;
    let (width, height) = probe.dimensions();
    if probe.total_bytes() > MAX_DECODED_BYTES {
        return Err(LupaError::LimitExceeded {
            what: format!("decoding this {width}×{height} image"),
            needed: probe.total_bytes(),
            limit: MAX_DECODED_BYTES,
            unit: crate::error::Unit::Bytes,
            limit_of: "Lupa decodes",
            advice: "make it smaller with an image editor first".into(),
        });
    }
    drop(probe);
    // Then the image, with the decoders' own buffers under the same bound. (`into_decoder` does
    // not count the image itself against `max_alloc`, as `ImageReader::decode` would, which loses
    // the ICC profile and EXIF: that is what the check above is for.)
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut decoder = reader(limits).map_err(|e| unreadable(&e))?.into_decoder().map_err(failed)?;
    // A profile that is not one (no `acsp` signature, a wrong size) is dropped, not carried over.
    let icc = decoder.icc_profile().ok().flatten().filter(|p| is_icc_profile(p));
    let mut exif = decoder.exif_metadata().ok().flatten().filter(|e| !e.is_empty());
    let orientation = exif.as_mut().and_then(|e| Orientation::remove_from_exif_chunk(e));
    let mut image = DynamicImage::from_decoder(decoder).map_err(failed)?;
    if let Some(o) = orientation {
        image.apply_orientation(o);
    }
    let mut notes = Vec::new();
    if is_animated(bytes, format) {
        notes.push("An animation: only its first frame is upscaled.");
    }
    if format == ImageFormat::Tiff && tiff_has_more_pages(bytes) {
        notes.push("A TIFF of several pages: only the first is upscaled.");
    }
    if format == ImageFormat::Jpeg && !ends_with_eoi(bytes) {
        notes.push("The JPEG file ends early: its missing part is grey.");
    }
    Ok(Decoded { image, metadata: Metadata { icc, exif, applied_orientation: orientation }, format, notes })
}

/// Whether `profile` looks like an ICC profile: at least its 128-byte header, the size it declares
/// within the bytes there are, and the `acsp` signature at offset 36 (ICC.1:2022, 7.2).
fn is_icc_profile(profile: &[u8]) -> bool {
    let declared = profile.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize);
    profile.len() >= 128
        && declared.is_some_and(|n| (128..=profile.len()).contains(&n))
        && &profile[36..40] == b"acsp"
}

/// Whether a JPEG file ends with its end-of-image marker (`FF D9`), allowing for padding after it.
fn ends_with_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Whether the file holds an animation: an APNG (an `acTL` chunk before the first `IDAT`), an
/// animated WebP (the animation flag of its `VP8X` header) or a GIF of more than one image.
fn is_animated(bytes: &[u8], format: ImageFormat) -> bool {
    match format {
        ImageFormat::Png => {
            let mut at = 8;
            while let Some(header) = bytes.get(at..at + 8) {
                let length = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
                match &header[4..8] {
                    b"acTL" => return true,
                    b"IDAT" => return false,
                    _ => at = at.saturating_add(12).saturating_add(length),
                }
            }
            false
        }
        ImageFormat::WebP => {
            bytes.get(12..16) == Some(b"VP8X") && bytes.get(20).is_some_and(|f| f & 0x02 != 0)
        }
        ImageFormat::Gif => gif_images(bytes) > 1,
        _ => false,
    }
}

/// How many images (image descriptors) a GIF holds, counted up to 2, by walking its blocks as
/// GIF89a (sections 18–27) lays them out; a damaged file counts what comes before the damage.
fn gif_images(bytes: &[u8]) -> usize {
    // The size of a colour table, from a packed field's flag and size bits.
    let table = |packed: u8| if packed & 0x80 != 0 { 3 << ((packed & 7) + 1) } else { 0 };
    // Skips data sub-blocks (a size byte, then that many bytes) up to the empty one.
    let sub_blocks = |mut at: usize| {
        while let Some(&size) = bytes.get(at) {
            at += 1 + usize::from(size);
            if size == 0 {
                return Some(at);
            }
        }
        None
    };
    let Some(&screen) = bytes.get(10) else { return 0 };
    let mut at = 13 + table(screen);
    let mut images = 0;
    while images < 2 {
        let next = match bytes.get(at) {
            // An extension: its label, then sub-blocks.
            Some(0x21) => sub_blocks(at + 2),
            // An image descriptor: 9 bytes, a local colour table, the LZW code size, sub-blocks.
            Some(0x2C) => {
                images += 1;
                bytes.get(at + 9).and_then(|&packed| sub_blocks(at + 11 + table(packed)))
            }
            _ => None, // the trailer (0x3B), or damage
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    images
}

/// Whether a TIFF (classic or BigTIFF) has an image file directory after the first: a page more.
fn tiff_has_more_pages(bytes: &[u8]) -> bool {
    let little = bytes.starts_with(b"II");
    let int = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        let fold = |v: u64, &x: &u8| (v << 8) | u64::from(x);
        Some(if little { b.iter().rev().fold(0, fold) } else { b.iter().fold(0, fold) })
    };
    // Classic: 2-byte entry counts, 12-byte entries, 4-byte offsets; BigTIFF (43): 8, 20 and 8.
    let (count, entry, offset, first) = match int(2, 2) {
        Some(42) => (2, 12, 4, 4),
        Some(43) => (8, 20, 8, 8),
        _ => return false,
    };
    let next = || {
        let ifd = usize::try_from(int(first, offset)?).ok()?;
        let entries = usize::try_from(int(ifd, count)?).ok()?;
        int(ifd.checked_add(count)?.checked_add(entries.checked_mul(entry)?)?, offset)
    };
    next().is_some_and(|n| n != 0)
}

/// An output file format and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG, lossless; 8 or 16 bits per channel as the image has; alpha kept.
    Png,
    /// JPEG at `quality` (1–100); 8-bit, alpha dropped (composited on nothing: the colour is kept).
    Jpeg {
        /// 1 (smallest) to 100 (best).
        quality: u8,
    },
    /// WebP, lossless (the `image` crate's encoder); 8-bit; alpha kept.
    WebP,
    /// WebP, lossy (VP8, alpha lossless) at `quality` (1–100), encoded by libwebp through the
    /// `webp` crate; 8-bit; alpha kept. Native builds only: the web app encodes lossy WebP with
    /// the browser's own encoder (web/browser-codecs.js), so the wasm engines refuse it.
    WebPLossy {
        /// 1 (smallest) to 100 (best).
        quality: u8,
    },
    /// AVIF at `quality` (1–100), encoded by `ravif`/`rav1e` (pure Rust) at speed 6; 8-bit;
    /// alpha kept.
    Avif {
        /// 1 (smallest) to 100 (best).
        quality: u8,
    },
    /// BMP; 8-bit; alpha kept.
    Bmp,
}

/// JPEG quality when none is given.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;
/// AVIF quality when none is given (`cavif`'s default).
pub const DEFAULT_AVIF_QUALITY: u8 = 80;
/// Lossy WebP quality when none is given: the web app's (and Chrome's `convertToBlob`) default.
pub const DEFAULT_WEBP_QUALITY: u8 = 80;
/// The largest side a WebP file holds (its header stores width and height in 14 bits).
pub const WEBP_MAX_SIDE: u32 = 16_383;
/// rav1e speed, 1 (slowest, smallest) to 10: 6 keeps a 4-megapixel result to seconds natively.
const AVIF_SPEED: u8 = 6;

impl OutputFormat {
    /// The format for a file extension (`png`, `jpg`/`jpeg`, `webp`, `avif`, `bmp`; any case) or
    /// a request's format id ([`OutputFormat::name`], e.g. `webp-lossy`). `quality` applies to
    /// JPEG, AVIF and lossy WebP: natively, `webp` with a quality is lossy WebP, without one
    /// lossless; for the other lossless formats it must be `None`.
    ///
    /// # Errors
    /// [`LupaError::BadInput`] for an unknown extension, a quality out of 1–100, a quality for a
    /// lossless format, or lossy WebP in a wasm engine (the web app encodes it in the browser).
    pub fn from_extension(extension: &str, quality: Option<u8>) -> Result<Self> {
        let format = match extension.to_ascii_lowercase().as_str() {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg { quality: quality.unwrap_or(DEFAULT_JPEG_QUALITY) },
            "webp" => match quality {
                Some(quality) if Self::WebPLossy { quality }.built() => Self::WebPLossy { quality },
                _ => Self::WebP,
            },
            "webp-lossy" => Self::WebPLossy { quality: quality.unwrap_or(DEFAULT_WEBP_QUALITY) },
            "avif" => Self::Avif { quality: quality.unwrap_or(DEFAULT_AVIF_QUALITY) },
            "bmp" => Self::Bmp,
            other => {
                return Err(LupaError::BadInput(format!(
                    "cannot write `.{other}` files (use .png, .jpg, .webp, .avif or .bmp)"
                )));
            }
        };
        if !format.built() {
            return Err(LupaError::BadInput(
                "this engine writes WebP lossless only (the web app encodes lossy WebP with the browser's \
                 encoder)"
                    .into(),
            ));
        }
        match (format.quality(), quality) {
            (Some(q), _) if !(1..=100).contains(&q) => {
                Err(LupaError::BadInput(format!("quality must be 1 to 100, not {q}")))
            }
            (Some(_), _) | (None, None) => Ok(format),
            (None, Some(_)) => Err(LupaError::BadInput(format!(
                "`.{extension}` is lossless here: a quality only applies to JPEG, AVIF{}",
                if (Self::WebPLossy { quality: DEFAULT_WEBP_QUALITY }).built() {
                    " and lossy WebP"
                } else {
                    ""
                }
            ))),
        }
    }

    /// Every format Lupa writes, at its default quality, in the order front ends list them; a
    /// build writes those that are [`OutputFormat::built`].
    pub const ALL: [OutputFormat; 6] = [
        Self::Png,
        Self::Jpeg { quality: DEFAULT_JPEG_QUALITY },
        Self::WebP,
        Self::WebPLossy { quality: DEFAULT_WEBP_QUALITY },
        Self::Avif { quality: DEFAULT_AVIF_QUALITY },
        Self::Bmp,
    ];

    /// Whether this build writes the format: all but lossy WebP everywhere, lossy WebP natively
    /// only (libwebp is C; the web app encodes lossy WebP with the browser's encoder).
    pub fn built(self) -> bool {
        !matches!(self, Self::WebPLossy { .. }) || cfg!(not(target_family = "wasm"))
    }

    /// The format's id in job requests (`png`, `jpeg`, `webp`, `webp-lossy`, `avif`, `bmp`);
    /// [`OutputFormat::from_extension`] takes it too.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg { .. } => "jpeg",
            Self::WebPLossy { .. } => "webp-lossy",
            other => other.extension(),
        }
    }

    /// The format's name for people, e.g. `WebP (lossless)`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg { .. } => "JPEG",
            Self::WebP => "WebP (lossless)",
            Self::WebPLossy { .. } => "WebP (lossy)",
            Self::Avif { .. } => "AVIF",
            Self::Bmp => "BMP",
        }
    }

    /// The quality of a lossy format; `None` for lossless ones.
    pub fn quality(self) -> Option<u8> {
        match self {
            Self::Jpeg { quality } | Self::Avif { quality } | Self::WebPLossy { quality } => Some(quality),
            _ => None,
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg { .. } => "jpg",
            Self::WebP | Self::WebPLossy { .. } => "webp",
            Self::Avif { .. } => "avif",
            Self::Bmp => "bmp",
        }
    }

    /// The media type, e.g. `image/png`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg { .. } => "image/jpeg",
            Self::WebP | Self::WebPLossy { .. } => "image/webp",
            Self::Avif { .. } => "image/avif",
            Self::Bmp => "image/bmp",
        }
    }

    /// Which metadata the format keeps: `(icc, exif)`.
    pub fn keeps(self) -> (bool, bool) {
        match self {
            Self::Png | Self::Jpeg { .. } | Self::WebP | Self::WebPLossy { .. } => (true, true),
            // ravif writes EXIF but has no way to embed an ICC profile.
            Self::Avif { .. } => (false, true),
            Self::Bmp => (false, false),
        }
    }

    /// Converts `image` to the nearest colour type the format can store.
    fn fit(self, image: DynamicImage) -> DynamicImage {
        let color = image.color();
        let gray = color.channel_count() <= 2;
        let deep = color.bytes_per_pixel() > color.channel_count();
        match self {
            Self::Png if matches!(color, ColorType::Rgb32F | ColorType::Rgba32F) => {
                if color.has_alpha() {
                    image.to_rgba16().into()
                } else {
                    image.to_rgb16().into()
                }
            }
            Self::Png => image,
            Self::Jpeg { .. } if gray => image.to_luma8().into(),
            Self::Jpeg { .. } if color.has_alpha() || deep => image.to_rgb8().into(),
            Self::Jpeg { .. } => image,
            Self::WebP | Self::WebPLossy { .. } | Self::Avif { .. } | Self::Bmp if gray || deep => {
                if color.has_alpha() { image.to_rgba8().into() } else { image.to_rgb8().into() }
            }
            Self::WebP | Self::WebPLossy { .. } | Self::Avif { .. } | Self::Bmp => image,
        }
    }
}

/// Encodes `image` as `format`, carrying the metadata the format can hold.
///
/// # Errors
/// [`LupaError::Encode`] with the encoder's message.
pub fn encode(image: DynamicImage, format: OutputFormat, metadata: &Metadata) -> Result<Vec<u8>> {
    let image = format.fit(image);
    if let OutputFormat::WebPLossy { quality } = format {
        // libwebp, not one of `image`'s encoders.
        return lossy_webp(&image, quality, metadata)
            .map_err(|reason| LupaError::Encode { format: format.label(), reason });
    }
    let mut out = Vec::new();
    let mut sink = Cursor::new(&mut out);
    let written = match format {
        // Fast deflate: a 4x result is large, and in the browser encoding runs on one thread.
        OutputFormat::Png => write(
            PngEncoder::new_with_quality(sink, CompressionType::Fast, FilterType::Adaptive),
            &image,
            metadata,
            format,
        ),
        OutputFormat::Jpeg { quality } => {
            write(JpegEncoder::new_with_quality(sink, quality), &image, metadata, format)
        }
        OutputFormat::WebP => write(WebPEncoder::new_lossless(sink), &image, metadata, format),
        OutputFormat::Avif { quality } => {
            write(AvifEncoder::new_with_speed_quality(sink, AVIF_SPEED, quality), &image, metadata, format)
        }
        OutputFormat::Bmp => write(BmpEncoder::new(&mut sink), &image, metadata, format),
        OutputFormat::WebPLossy { .. } => unreachable!("encoded by libwebp above"),
    };
    written.map_err(|e| LupaError::Encode { format: format.label(), reason: e.to_string() })?;
    Ok(out)
}

/// Lossy WebP by libwebp (`webp` crate, libwebp's default settings at `quality`), with the ICC
/// profile and EXIF added to its container ([`webp_with_metadata`]).
#[cfg(not(target_family = "wasm"))]
fn lossy_webp(
    image: &DynamicImage,
    quality: u8,
    metadata: &Metadata,
) -> std::result::Result<Vec<u8>, String> {
    let (width, height) = (image.width(), image.height());
    if width > WEBP_MAX_SIDE || height > WEBP_MAX_SIDE {
        return Err(format!(
            "WebP holds at most {WEBP_MAX_SIDE} pixels a side and this image is {width}×{height} (use PNG or JPEG)"
        ));
    }
    let encoder = match image {
        DynamicImage::ImageRgb8(rgb) => webp::Encoder::from_rgb(rgb.as_raw(), width, height),
        DynamicImage::ImageRgba8(rgba) => webp::Encoder::from_rgba(rgba.as_raw(), width, height),
        other => return Err(format!("no lossy WebP of {:?} pixels", other.color())),
    };
    let riff = encoder.encode_simple(false, f32::from(quality)).map_err(|e| format!("libwebp: {e:?}"))?;
    webp_with_metadata(&riff, width, height, metadata)
}

#[cfg(target_family = "wasm")]
fn lossy_webp(_: &DynamicImage, _: u8, _: &Metadata) -> std::result::Result<Vec<u8>, String> {
    Err("this engine writes WebP lossless only".into())
}

/// The WebP file `riff` as libwebp writes it (a simple `VP8 ` file, or `VP8X`, `ALPH` and `VP8 `
/// with alpha) with the ICC profile and EXIF added: an extended file whose `VP8X` header flags
/// them, `ICCP` first and `EXIF` after the image (Google's "WebP Container Specification",
/// "Extended File Format").
#[cfg(not(target_family = "wasm"))]
fn webp_with_metadata(
    riff: &[u8],
    width: u32,
    height: u32,
    metadata: &Metadata,
) -> std::result::Result<Vec<u8>, String> {
    let (icc, exif) = (metadata.icc.as_deref(), metadata.exif.as_deref());
    if icc.is_none() && exif.is_none() {
        return Ok(riff.to_vec());
    }
    let malformed = || "libwebp wrote a malformed RIFF file".to_string();
    let mut rest = riff
        .get(12..)
        .filter(|_| riff.starts_with(b"RIFF") && &riff[8..12] == b"WEBP")
        .ok_or_else(malformed)?;
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let header = rest.get(..8).ok_or_else(malformed)?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let data = rest.get(8..8 + size).ok_or_else(malformed)?;
        chunks.push((&header[..4], data));
        rest = rest.get(8 + size + size % 2..).unwrap_or_default();
    }
    let alpha = chunks.iter().any(|(id, _)| *id == b"ALPH");
    let flags = if icc.is_some() { 0x20 } else { 0 }
        | if alpha { 0x10 } else { 0 }
        | if exif.is_some() { 0x08 } else { 0 };
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let image = chunks.iter().filter(|(id, _)| *id != b"VP8X").map(|(id, data)| (*id, *data));
    let extended = std::iter::once((&b"VP8X"[..], &vp8x[..]))
        .chain(icc.map(|icc| (&b"ICCP"[..], icc)))
        .chain(image)
        .chain(exif.map(|exif| (&b"EXIF"[..], exif)));
    let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
    for (id, data) in extended {
        out.extend_from_slice(id);
        out.extend_from_slice(&u32::try_from(data.len()).map_err(|_| malformed())?.to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    }
    let size = u32::try_from(out.len() - 8).map_err(|_| malformed())?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

fn write<E: ImageEncoder>(
    mut encoder: E,
    image: &DynamicImage,
    metadata: &Metadata,
    format: OutputFormat,
) -> image::ImageResult<()> {
    let (keep_icc, keep_exif) = format.keeps();
    if keep_icc && let Some(icc) = &metadata.icc {
        encoder.set_icc_profile(icc.clone()).ok();
    }
    if keep_exif && let Some(exif) = &metadata.exif {
        encoder.set_exif_metadata(exif.clone()).ok();
    }
    encoder.write_image(image.as_bytes(), image.width(), image.height(), image.color().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/images/{name}",
            std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn orientation_of(exif: &[u8]) -> Option<Orientation> {
        Orientation::from_exif_chunk(exif)
    }

    #[test]
    fn exif_orientation_is_applied_once_and_icc_is_kept() {
        // Stored 48×64 with orientation 6; upright it is the 64×48 PNG crop.
        let decoded = decode(&fixture("chelsea_64x48_exif6_srgb.jpg")).unwrap();
        assert_eq!(decoded.format, ImageFormat::Jpeg);
        assert_eq!((decoded.image.width(), decoded.image.height()), (64, 48));
        assert_eq!(decoded.metadata.applied_orientation, Some(Orientation::Rotate90));
        let upright = decode(&fixture("chelsea_64x48.png")).unwrap().image.to_rgb8();
        let psnr = crate::metrics::psnr_y(&upright, &decoded.image.to_rgb8(), 0).unwrap();
        assert!(psnr > 35.0, "the rotated JPEG should match the PNG it was made from: {psnr:.1} dB");
        let icc = decoded.metadata.icc.clone().expect("sRGB profile");
        assert!(icc.len() > 300 && &icc[36..40] == b"acsp", "an ICC profile has the `acsp` signature");
        assert_eq!(orientation_of(decoded.metadata.exif.as_ref().unwrap()), Some(Orientation::NoTransforms));

        let formats = [
            OutputFormat::Png,
            OutputFormat::Jpeg { quality: 90 },
            OutputFormat::WebP,
            OutputFormat::WebPLossy { quality: 90 },
        ];
        for format in formats {
            let bytes = encode(decoded.image.clone(), format, &decoded.metadata).unwrap();
            let again = decode(&bytes).unwrap();
            assert_eq!((again.image.width(), again.image.height()), (64, 48), "{format:?} rotated twice");
            assert_eq!(again.metadata.icc.as_ref(), Some(&icc), "{format:?} lost the ICC profile");
            let exif = again.metadata.exif.expect("EXIF carried");
            assert_eq!(orientation_of(&exif), Some(Orientation::NoTransforms), "{format:?}");
            assert!(
                exif.windows(17).any(|w| w == b"Lupa test fixture"),
                "{format:?} kept the other EXIF tags"
            );
        }
        let bmp = decode(&encode(decoded.image, OutputFormat::Bmp, &decoded.metadata).unwrap()).unwrap();
        assert_eq!(bmp.metadata, Metadata::default(), "BMP holds no metadata");
    }

    #[test]
    fn each_format_gets_a_colour_type_it_can_store() {
        let photo = decode(&fixture("chelsea_64x48.png")).unwrap().image;
        let mut rgba16 = photo.to_rgba16();
        rgba16.pixels_mut().for_each(|p| p.0[3] = 40_000);
        let rgba16 = DynamicImage::from(rgba16);
        let none = Metadata::default();
        let round = |f| decode(&encode(rgba16.clone(), f, &none).unwrap()).unwrap().image;
        assert_eq!(round(OutputFormat::Png).color(), ColorType::Rgba16, "PNG keeps 16-bit alpha");
        assert_eq!(round(OutputFormat::Jpeg { quality: 90 }).color(), ColorType::Rgb8, "JPEG: no alpha");
        let webp = round(OutputFormat::WebP);
        assert_eq!(webp.color(), ColorType::Rgba8);
        assert_eq!(webp.to_rgba8().get_pixel(3, 3).0[3], 156, "alpha 40000/65535 kept as 156/255");
        let lossy = round(OutputFormat::WebPLossy { quality: 80 });
        assert_eq!(lossy.color(), ColorType::Rgba8, "lossy WebP keeps alpha");
        assert_eq!(lossy.to_rgba8().get_pixel(3, 3).0[3], 156, "losslessly (libwebp's ALPH chunk)");
        let gray = DynamicImage::from(photo.to_luma8());
        assert_eq!(
            decode(&encode(gray, OutputFormat::Jpeg { quality: 80 }, &none).unwrap()).unwrap().image.color(),
            ColorType::L8
        );
    }

    #[test]
    fn extensions_and_qualities() {
        assert_eq!(
            OutputFormat::from_extension("JPG", Some(75)).unwrap(),
            OutputFormat::Jpeg { quality: 75 }
        );
        assert_eq!(OutputFormat::from_extension("jpeg", None).unwrap(), OutputFormat::Jpeg { quality: 90 });
        assert_eq!(OutputFormat::from_extension("webp", None).unwrap(), OutputFormat::WebP);
        assert!(OutputFormat::from_extension("jpg", Some(0)).is_err());
        assert!(OutputFormat::from_extension("png", Some(80)).unwrap_err().to_string().contains("lossless"));
        assert!(OutputFormat::from_extension("tiff", None).unwrap_err().to_string().contains(".tiff"));
        assert!(decode(b"").is_err());
        assert!(decode(b"GIF89a....").unwrap_err().to_string().contains("cannot read"));
        assert!(decode(b"II*\0....").unwrap_err().to_string().contains("cannot read"));
        assert_eq!(
            OutputFormat::from_extension("AVIF", Some(60)).unwrap(),
            OutputFormat::Avif { quality: 60 }
        );
        assert_eq!(OutputFormat::from_extension("avif", None).unwrap().mime(), "image/avif");
        // WebP with a quality is lossy WebP; the request id `webp-lossy` too, at 80 by default.
        assert_eq!(
            OutputFormat::from_extension("webp", Some(70)).unwrap(),
            OutputFormat::WebPLossy { quality: 70 }
        );
        let lossy = OutputFormat::from_extension("webp-lossy", None).unwrap();
        assert_eq!((lossy.name(), lossy.extension(), lossy.quality()), ("webp-lossy", "webp", Some(80)));
        assert!(OutputFormat::from_extension("webp", Some(101)).is_err());
    }

    /// Lossy WebP (libwebp): a real VP8 file, much smaller than the lossless one, close to the
    /// source at the default quality, and refused past WebP's largest side.
    #[test]
    fn lossy_webp_is_smaller_and_close() {
        let photo = decode(&fixture("astronaut_128.png")).unwrap().image;
        let none = Metadata::default();
        let lossless = encode(photo.clone(), OutputFormat::WebP, &none).unwrap();
        let lossy =
            encode(photo.clone(), OutputFormat::WebPLossy { quality: DEFAULT_WEBP_QUALITY }, &none).unwrap();
        assert_eq!(&lossy[12..16], b"VP8 ", "a simple lossy file");
        assert_eq!(&lossless[12..16], b"VP8L");
        assert!(
            lossy.len() * 2 < lossless.len(),
            "lossy {} bytes, lossless {} bytes",
            lossy.len(),
            lossless.len()
        );
        let back = decode(&lossy).unwrap().image.to_rgb8();
        let psnr = crate::metrics::psnr_y(&photo.to_rgb8(), &back, 0).unwrap();
        assert!(psnr > 30.0, "quality 80 stays close: {psnr:.1} dB");
        let small = encode(photo.clone(), OutputFormat::WebPLossy { quality: 10 }, &none).unwrap();
        assert!(small.len() < lossy.len(), "a lower quality, a smaller file");

        let wide = DynamicImage::new_rgb8(WEBP_MAX_SIDE + 1, 1);
        let error = encode(wide, OutputFormat::WebPLossy { quality: 80 }, &none).unwrap_err().to_string();
        assert!(error.contains("16383 pixels a side"), "{error}");
    }

    fn hostile(name: &str) -> Vec<u8> {
        fixture(&format!("../hostile/{name}"))
    }

    /// An animated GIF decodes to exactly its first frame, and says so; a still one says nothing.
    #[test]
    fn a_gif_is_its_first_frame() {
        use image::AnimationDecoder;
        let bytes = hostile("animated.gif");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.format, ImageFormat::Gif);
        assert_eq!(decoded.notes, ["An animation: only its first frame is upscaled."]);
        let frames = image::codecs::gif::GifDecoder::new(Cursor::new(&bytes[..]))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(decoded.image.to_rgba8(), *frames[0].buffer(), "the first frame, pixel for pixel");
        assert_ne!(frames[0].buffer(), frames[1].buffer());

        let photo = decode(&fixture("chelsea_64x48.png")).unwrap().image;
        let mut still = Vec::new();
        image::codecs::gif::GifEncoder::new(&mut still)
            .encode_frame(image::Frame::new(photo.to_rgba8()))
            .unwrap();
        let still = decode(&still).unwrap();
        assert!(still.notes.is_empty(), "{:?}", still.notes);
        assert_eq!((still.image.width(), still.image.height()), (64, 48));
        assert_eq!(gif_images(&hostile("truncated.gif")), 1, "counted up to the damage");
    }

    /// A TIFF decodes losslessly; of a multi-page one, the first page, and the note says so.
    #[test]
    fn a_tiff_is_its_first_page() {
        let photo = decode(&fixture("chelsea_64x48.png")).unwrap().image.to_rgb8();
        for (file, notes) in [
            ("photo.tiff", &[][..]),
            ("pages.tiff", &["A TIFF of several pages: only the first is upscaled."][..]),
        ] {
            let decoded = decode(&hostile(file)).unwrap();
            assert_eq!(decoded.format, ImageFormat::Tiff);
            assert_eq!(decoded.image.to_rgb8(), photo, "{file}: the photo, losslessly");
            assert_eq!(decoded.notes, notes, "{file}");
        }
        // The same page written by `image` (classic, little-endian, one directory) has no page more.
        let mut one = Vec::new();
        DynamicImage::from(photo).write_to(&mut Cursor::new(&mut one), ImageFormat::Tiff).unwrap();
        assert!(!tiff_has_more_pages(&one));
        assert!(!tiff_has_more_pages(b"II*\0\xff\xff\xff\xff"), "a directory past the end");
    }

    /// A PNG that declares `width × height` RGB 8-bit in its header but holds no pixels: a
    /// signature, IHDR, the start of a zlib stream in IDAT, and IEND; what a decompression bomb's
    /// header says, without its data.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let body = [&kind[..], data].concat();
            // CRC-32 (ISO-HDLC) of the chunk type and data, as PNG requires.
            let crc = !body.iter().fold(!0u32, |mut c, &b| {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
                }
                c
            });
            let length = u32::try_from(data.len()).expect("small").to_be_bytes();
            [&length[..], &body, &crc.to_be_bytes()].concat()
        };
        // 8-bit, RGB, deflate, adaptive filter, no interlace.
        let ihdr = [&width.to_be_bytes()[..], &height.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
        [
            &b"\x89PNG\r\n\x1a\n"[..],
            &chunk(b"IHDR", &ihdr),
            &chunk(b"IDAT", &[0x78, 0x9c]),
            &chunk(b"IEND", &[]),
        ]
        .concat()
    }

    #[test]
    fn a_header_declaring_a_huge_image_is_refused_before_allocating() {
        // 65535 × 65535 RGB would be 12 GB; the file is 59 bytes (the CLI tests use it too).
        let bomb = png_header(65535, 65535);
        assert_eq!(bomb, fixture("../hostile/bomb_65535x65535.png"));
        let err = decode(&bomb).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Limit, "{err}");
        assert!(err.to_string().contains("decoding this 65535×65535 image needs 12288 MiB"), "{err}");
        // 20000 × 20000 RGB is 1.2 GB, over the limit too; 18000 × 18000 is under it, so its
        // header passes and the missing data is what fails.
        assert_eq!(decode(&png_header(20000, 20000)).unwrap_err().kind(), crate::ErrorKind::Limit);
        assert_eq!(decode(&png_header(18000, 18000)).unwrap_err().kind(), crate::ErrorKind::BadInput);
    }

    /// The `image` crate cannot decode AVIF without a C library, so the file is checked as a
    /// container: the ISO-BMFF `ftyp` box with the `avif` brand, an alpha auxiliary image, and the
    /// EXIF block, at a fraction of the PNG's size.
    #[test]
    fn avif_has_the_avif_brand_alpha_and_exif() {
        let decoded = decode(&fixture("chelsea_64x48_exif6_srgb.jpg")).unwrap();
        let mut rgba = decoded.image.to_rgba8();
        rgba.pixels_mut().for_each(|p| p.0[3] = 128);
        let rgba = DynamicImage::from(rgba);
        let avif = encode(rgba.clone(), OutputFormat::Avif { quality: 80 }, &decoded.metadata).unwrap();
        assert_eq!(&avif[4..12], b"ftypavif", "not an AVIF file");
        let contains = |needle: &[u8]| avif.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"), "no alpha plane");
        assert!(contains(b"Lupa test fixture"), "EXIF not carried");
        let png = encode(rgba, OutputFormat::Png, &decoded.metadata).unwrap();
        assert!(avif.len() * 2 < png.len(), "AVIF {} bytes vs PNG {}", avif.len(), png.len());
    }
}

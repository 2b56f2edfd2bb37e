"""Writes the hostile-input corpus, tests/fixtures/hostile/, from two real test images.

    python3 -m venv /tmp/hostile && /tmp/hostile/bin/pip install -r tests/hostile/requirements.txt
    /tmp/hostile/bin/python tests/hostile/make_corpus.py

Every file is made from `tests/fixtures/images/chelsea_64x48.png` (scikit-image's chelsea, CC0)
or `cartoon_32x40.png` (kodim01 from crates.io `vips`, MIT), or is synthetic (no content). What
Lupa does with each is in `tests/fixtures/hostile/expected.csv`, which the CLI and web-engine tests
check and the README's table repeats. Deterministic: the same bytes on every run (damage at fixed
offsets; encoders without timestamps).
"""

import io
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageCms
import pillow_heif

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests/fixtures/images"
OUT = ROOT / "tests/fixtures/hostile"


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, idat: bytes = b"\x78\x9c") -> bytes:
    """A PNG whose IHDR declares width × height RGB 8-bit, with `idat` as its only data."""
    ihdr = struct.pack(">II", width, height) + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def flip(data: bytes, offsets) -> bytes:
    """`data` with the bits of the bytes at `offsets` inverted."""
    out = bytearray(data)
    for o in offsets:
        out[o] ^= 0xFF
    return bytes(out)


def zeros_png(side: int) -> bytes:
    """A side × side RGB PNG of zeros, compressed as far as zlib goes (about 1 MB at 20000²)."""
    row = b"\x00" + b"\x00" * (3 * side)  # filter byte 0, then black pixels
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(side)] + [z.flush()]
    ihdr = struct.pack(">II", side, side) + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16×16 baseline JPEG whose SOF0 frame header is rewritten to claim width × height."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (90, 120, 150)), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A real 16×16 GIF whose logical screen and image descriptor are rewritten to claim width × height."""
    data = bytearray(encode(Image.new("P", (16, 16), 3), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    image = data.index(b"\x2c", 13)
    struct.pack_into("<HH", data, image + 5, width, height)
    return bytes(data)


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def main() -> None:
    pillow_heif.register_heif_opener()
    OUT.mkdir(parents=True, exist_ok=True)
    photo = Image.open(IMAGES / "chelsea_64x48.png").convert("RGB")
    cartoon = Image.open(IMAGES / "cartoon_32x40.png").convert("RGB")
    png = encode(photo, "PNG")
    jpeg = encode(photo, "JPEG", quality=90)
    webp = encode(photo, "WEBP", lossless=True)
    gif = encode(photo.convert("P"), "GIF")

    files = {
        # Not images, or not whole ones.
        "empty.png": b"",
        "notes.png": b"These are my notes, saved with the wrong name.\n",
        "truncated.png": png[: len(png) // 2],
        "bitflip.png": flip(png, range(200, 260, 7)),
        "header_only.png": b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">II", 64, 48) + bytes([8, 2, 0, 0, 0])),
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "bitflip.jpg": flip(jpeg, range(700, 760, 7)),
        "truncated.webp": webp[: len(webp) // 2],
        "bitflip.webp": flip(webp, range(100, 160, 7)),
        "zero_width.png": png_header(0, 48),
        # Decompression bombs: small files declaring huge images.
        "bomb_65535x65535.png": png_header(65535, 65535),
        "zeros_20000x20000.png": zeros_png(20000),
        "claims_65500x65500.jpg": jpeg_claiming(65500, 65500),
        # Unusual but valid.
        "one_pixel.png": encode(photo.crop((10, 10, 11, 11)), "PNG"),
        "one_column_1x40.png": encode(photo.crop((20, 4, 21, 44)), "PNG"),
        "one_row_60x1.png": encode(photo.crop((2, 20, 62, 21)), "PNG"),
        "rgb16.png": rgb16_png(photo),
        "gray16.png": encode(photo.convert("L").point(lambda v: v * 257, "I").convert("I;16"), "PNG"),
        "palette_trns.png": encode(cartoon.quantize(16), "PNG", transparency=0),
        "gray_alpha.png": encode(Image.merge("LA", (photo.convert("L"), photo.convert("L").point(lambda v: 255 if v > 60 else 0))), "PNG"),
        "transparent.png": encode(Image.new("RGBA", (24, 20), (0, 0, 0, 0)), "PNG"),
        "cmyk.jpg": encode(photo.convert("CMYK"), "JPEG", quality=90),
        "progressive.jpg": encode(photo, "JPEG", quality=90, progressive=True),
        "animated.gif": encode(photo.convert("P"), "GIF", save_all=True, append_images=[cartoon.resize((64, 48)).convert("P")], duration=100, loop=0),
        "animated.webp": encode(photo, "WEBP", save_all=True, append_images=[cartoon.resize((64, 48))], duration=100, lossless=True),
        "animated.png": encode(photo, "PNG", save_all=True, append_images=[cartoon.resize((64, 48))], duration=100),
        "exif_orientation_9.jpg": encode(photo, "JPEG", quality=90, exif=exif_orientation(9)),
        "garbage_icc.png": encode(photo, "PNG", icc_profile=b"this is not an ICC profile" * 4),
        "jpeg_named.png": jpeg,
        "png_named.jpg": png,
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="teal"/></svg>\n',
        "photo.tiff": encode(photo, "TIFF"),
        "pages.tiff": encode(photo, "TIFF", compression="tiff_lzw", save_all=True, append_images=[cartoon]),
        "truncated.gif": gif[: len(gif) // 2],
        "bomb_65535x65535.gif": gif_claiming(65535, 65535),
        "photo.heic": encode(photo, "HEIF", quality=90),
    }

    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{name:28} {len(data):>9} bytes")


def rgb16_png(image: Image.Image) -> bytes:
    """A 16-bit RGB PNG of `image` (v · 257 per channel), written by hand: Pillow has no 16-bit RGB mode."""
    w, h = image.size
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            for v in image.getpixel((x, y)):
                raw += struct.pack(">H", v * 257)
    ihdr = struct.pack(">II", w, h) + bytes([16, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    main()

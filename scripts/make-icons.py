#!/usr/bin/env python3
"""Draws Lupa's app icons (web/icons/*.png): a white magnifying glass ("lupa") on the accent blue.

Pure Python (zlib), 4x4 supersampled. `any` icons are a rounded square on transparency; the
`maskable` one fills the square and keeps the glyph inside the central 80 % safe zone.
Usage: scripts/make-icons.py   (rewrites web/icons/)
"""
import math
import struct
import zlib
from pathlib import Path

ACCENT = (0x2F, 0x6F, 0xDE)
WHITE = (0xFF, 0xFF, 0xFF)


def inside_glyph(x, y):
    """Whether (x, y) in the unit square is on the glass's ring or its handle."""
    cx, cy, r, w = 0.44, 0.44, 0.20, 0.065
    d = math.hypot(x - cx, y - cy)
    if abs(d - r) <= w / 2:
        return True
    # The handle: a thick segment from the ring at 45° outwards.
    ax = cx + (r + w / 2) * math.sqrt(0.5)
    bx = 0.74
    t = ((x - ax) + (y - ax)) / 2
    px, py = ax + t, ax + t
    return 0 <= t <= bx - ax and math.hypot(x - px, y - py) <= w * 0.75


def inside_square(x, y, radius):
    """Whether (x, y) is inside the unit square with corners rounded by `radius`."""
    qx = min(max(x, radius), 1 - radius)
    qy = min(max(y, radius), 1 - radius)
    return math.hypot(x - qx, y - qy) <= radius


def draw(size, maskable):
    n = 4
    rows = []
    for j in range(size):
        row = bytearray([0])
        for i in range(size):
            acc = [0, 0, 0, 0]
            for sj in range(n):
                for si in range(n):
                    x = (i + (si + 0.5) / n) / size
                    y = (j + (sj + 0.5) / n) / size
                    if not maskable and not inside_square(x, y, 0.18):
                        continue
                    # The maskable icon's glyph is shrunk to the safe zone.
                    gx, gy = ((x - 0.5) / 0.8 + 0.5, (y - 0.5) / 0.8 + 0.5) if maskable else (x, y)
                    colour = WHITE if inside_glyph(gx, gy) else ACCENT
                    for c in range(3):
                        acc[c] += colour[c]
                    acc[3] += 255
            alpha = acc[3] / (n * n)
            rgb = [round(acc[c] / max(acc[3] / 255, 1e-9)) if acc[3] else 0 for c in range(3)]
            row += bytes([*(min(255, v) for v in rgb), round(alpha)])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "web" / "icons"
    out.mkdir(exist_ok=True)
    for name, size, maskable in [("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                 ("maskable-512.png", 512, True)]:
        (out / name).write_bytes(draw(size, maskable))
        print(f"wrote {out / name}")

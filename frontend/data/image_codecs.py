"""Decoding image files into NumPy arrays (HW for grey, HWC for colour), without
requiring Pillow: .npy, netpbm (.pgm/.ppm/.pnm, P2/P3/P5/P6), and .png (Pillow when
installed, else a small decoder for 8-bit, non-interlaced grey/grey+alpha/RGB/RGBA/palette).
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

SUPPORTED_EXTENSIONS = (".npy", ".pgm", ".ppm", ".pnm", ".png")


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def load_image(path) -> np.ndarray:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext not in SUPPORTED_EXTENSIONS:
        raise ImageDecodeError(f"{path}: unsupported image file type {ext!r} "
                               f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    with open(path, "rb") as f:
        data = f.read()
    try:
        if ext == ".png":
            return _decode_png_any(data)
        return decode_netpbm(data)
    except ImageDecodeError as err:
        raise ImageDecodeError(f"{path}: {err}") from None


# ---- netpbm ---------------------------------------------------------------------------

def _netpbm_header(data: bytes, count: int) -> tuple[list[bytes], int]:
    """The first ``count`` whitespace-separated tokens (skipping # comments) and the
    offset just past the single whitespace byte that ends the header."""
    tokens, pos = [], 0
    while len(tokens) < count:
        while pos < len(data) and (data[pos:pos + 1].isspace() or data[pos:pos + 1] == b"#"):
            if data[pos:pos + 1] == b"#":
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end
            pos += 1
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b"#":
            pos += 1
        if start == pos:
            raise ImageDecodeError("truncated netpbm header")
        tokens.append(data[start:pos])
    return tokens, pos + 1


def decode_netpbm(data: bytes) -> np.ndarray:
    magic = data[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        raise ImageDecodeError(f"not a greymap/pixmap netpbm file (magic {magic!r}; "
                               f"supported P2, P3, P5, P6)")
    tokens, offset = _netpbm_header(data, 4)
    try:
        width, height, maxval = (int(t) for t in tokens[1:4])
    except ValueError:
        raise ImageDecodeError(f"bad netpbm header {tokens!r}") from None
    if not (0 < maxval < 65536 and width > 0 and height > 0):
        raise ImageDecodeError(f"bad netpbm header {tokens!r}")
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    if magic in (b"P2", b"P3"):  # ASCII
        values = np.array([int(v) for v in data[offset:].split()[:count]], dtype=np.int64)
    elif len(data) - offset >= count * np.dtype(dtype).itemsize:
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    else:
        values = np.zeros(0)
    if values.size != count:
        raise ImageDecodeError(f"netpbm pixel data is truncated ({values.size} of {count} values)")
    out_dtype = np.uint8 if maxval < 256 else np.uint16
    shape = (height, width, 3) if channels == 3 else (height, width)
    return values.astype(out_dtype).reshape(shape)


# ---- PNG ------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def _decode_png_any(data: bytes) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        return decode_png(data)
    import io
    with Image.open(io.BytesIO(data)) as img:
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif img.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
            img = img.convert("RGB" if img.mode in ("CMYK", "YCbCr") else "L")
        return np.asarray(img)


def decode_png(data: bytes) -> np.ndarray:
    """Pure NumPy + zlib PNG decoder for 8-bit, non-interlaced images."""
    if data[:8] != PNG_SIGNATURE:
        raise ImageDecodeError("not a PNG file (bad signature)")
    pos, header, palette, idat = 8, None, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageDecodeError("truncated PNG chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageDecodeError(f"PNG chunk {kind!r} fails its CRC check")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ImageDecodeError("PNG has no IHDR or no IDAT chunk")
    width, height, bit_depth, colour_type, _, _, interlace = header
    if bit_depth != 8 or colour_type not in _PNG_CHANNELS or interlace != 0:
        raise ImageDecodeError(
            f"unsupported PNG (bit depth {bit_depth}, colour type {colour_type}, interlace "
            f"{interlace}); the built-in decoder reads 8-bit non-interlaced images - "
            f"install Pillow for others")
    channels = _PNG_CHANNELS[colour_type]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ImageDecodeError(f"corrupt PNG image data ({err})") from None
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ImageDecodeError("PNG image data has the wrong size")
    pixels = _unfilter(np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1), channels)
    image = pixels.reshape(height, width, channels)
    if colour_type == 3:
        if palette is None:
            raise ImageDecodeError("palette PNG without a PLTE chunk")
        return palette[image[..., 0]]
    return image[..., 0] if channels == 1 else image


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the per-scanline PNG filters (None, Sub, Up, Average, Paeth)."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: running sum per channel, mod 256 via uint8 wrap-around
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            cur = line + prior
        elif kind in (3, 4):  # depend on the decoded left neighbour: byte by byte
            cur = _unfilter_sequential(kind, line.tolist(), prior.tolist(), bpp)
        else:
            raise ImageDecodeError(f"bad PNG filter type {kind} in row {y}")
        out[y] = cur
        prior = out[y]
    return out


def _unfilter_sequential(kind: int, line: list[int], prior: list[int], bpp: int) -> np.ndarray:
    cur = [0] * len(line)
    for i, value in enumerate(line):
        left = cur[i - bpp] if i >= bpp else 0
        up = prior[i]
        if kind == 3:
            cur[i] = (value + ((left + up) >> 1)) & 0xFF
        else:
            up_left = prior[i - bpp] if i >= bpp else 0
            p = left + up - up_left
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
            predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
            cur[i] = (value + predictor) & 0xFF
    return np.array(cur, dtype=np.uint8)

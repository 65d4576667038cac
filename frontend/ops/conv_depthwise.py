"""Depthwise conv2d (groups == C, O = C * mult): per kernel offset, a broadcast
multiply-accumulate over a block of images. No matmul: each channel's filter is tiny.

Speed notes (same ideas as the GEMM path in conv_kernels.py):
* Images are processed in cache-sized blocks.
* A strided conv first splits each padded block into stride-phase planes
  (rows a::sh, columns b::sw); stride 1 has one plane, the padded block itself.
* Planes are read "wide": for each kernel offset the window of a plane is one
  contiguous run of OH * (plane width) values, so every NumPy call streams long
  rows instead of OW-long fragments. The extra columns are cropped from the
  output and carry zero gradient.
"""
import numpy as np

from . import conv_kernels
from .conv_kernels import out_size, padded_blocks


class DepthwiseGeometry:
    def __init__(self, x_shape, w_shape, pads, stride, dilation):
        n, c, h, w = x_shape
        self.c, self.h, self.w = c, h, w
        self.mult, self.kh, self.kw = w_shape[0] // c, w_shape[2], w_shape[3]
        self.pads, self.stride, self.dilation = pads, stride, dilation
        self.oh = out_size(h, self.kh, stride[0], pads[0], pads[2], dilation[0])
        self.ow = out_size(w, self.kw, stride[1], pads[1], pads[3], dilation[1])
        self.hp, self.wp = h + pads[0] + pads[2], w + pads[1] + pads[3]
        # Phase planes: ceil(Hp / sh) x ceil(Wp / sw), plus one spare zero row for the
        # wide windows of the last offsets.
        self.plane_h = -(-self.hp // stride[0])
        self.plane_w = -(-self.wp // stride[1])
        self.length = self.oh * self.plane_w

    def block_size(self, n, itemsize):
        planes = self.c * (self.plane_h + 1) * self.plane_w * self.stride[0] * self.stride[1]
        per_image = (planes + 2 * self.c * self.mult * self.length) * itemsize
        return int(max(1, min(n, conv_kernels.BLOCK_BYTES // max(per_image, 1))))

    def phases(self, xp):
        """Flattened phase planes (nb, C, (plane_h + 1) * plane_w) of a padded block."""
        sh, sw = self.stride
        nb = xp.shape[0]
        if (sh, sw) == (1, 1):  # xp already has the spare row (padded_blocks extra_rows=1)
            return [[xp.reshape(nb, self.c, -1)]]
        planes = []
        for a in range(sh):
            row = []
            for b in range(sw):
                plane = np.zeros((nb, self.c, self.plane_h + 1, self.plane_w), dtype=xp.dtype)
                part = xp[:, :, a::sh, b::sw]
                plane[:, :, :part.shape[2], :part.shape[3]] = part
                row.append(plane.reshape(nb, self.c, -1))
            planes.append(row)
        return planes

    def unphase(self, planes, dxp):
        """Inverse of phases(): write phase planes back into padded block `dxp`."""
        sh, sw = self.stride
        for a in range(sh):
            for b in range(sw):
                target = dxp[:, :, a::sh, b::sw]
                plane = planes[a][b].reshape(dxp.shape[0], self.c, self.plane_h + 1, self.plane_w)
                target[...] = plane[:, :, :target.shape[2], :target.shape[3]]

    def window(self, planes, i, j):
        """(nb, C, OH * plane_w) contiguous-row window read by kernel offset (i, j)."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        ri, rj = i * dh, j * dw
        start = (ri // sh) * self.plane_w + rj // sw
        return planes[ri % sh][rj % sw][:, :, start:start + self.length]

    def offsets(self):
        return [(i, j) for i in range(self.kh) for j in range(self.kw)]

    def crop(self, wide):
        """(..., OH * plane_w) -> (..., OH, OW)."""
        return wide.reshape(wide.shape[:-1] + (self.oh, self.plane_w))[..., :self.ow]


def _blocks(x, geo, nb):
    extra_rows = 1 if geo.stride == (1, 1) else 0
    return padded_blocks(x, geo.pads, nb, extra_rows)


def depthwise_forward(x, w, pads, stride, dilation):
    x = np.ascontiguousarray(x)
    geo = DepthwiseGeometry(x.shape, w.shape, pads, stride, dilation)
    n, c = x.shape[:2]
    w4 = w.reshape(c, geo.mult, geo.kh, geo.kw)
    dtype = np.result_type(x, w)
    y = np.empty((n, c, geo.mult, geo.oh, geo.ow), dtype=dtype)
    nb = geo.block_size(n, x.itemsize)
    acc = np.empty((min(nb, n), c, geo.mult, geo.length), dtype=dtype)
    tmp = np.empty_like(acc)
    for s, e, xp in _blocks(x, geo, nb):
        planes = geo.phases(xp)
        ab, tb = acc[:e - s], tmp[:e - s]
        for k, (i, j) in enumerate(geo.offsets()):
            window = geo.window(planes, i, j)[:, :, None]
            np.multiply(window, w4[:, :, i, j][:, :, None], out=ab if k == 0 else tb)
            if k:
                ab += tb
        y[s:e] = geo.crop(ab)
    return y.reshape(n, c * geo.mult, geo.oh, geo.ow), (geo, x)


def depthwise_backward(g, x_shape, w, state, need_x, need_w):
    geo, x = state
    n, c, h, wd = x_shape
    t, l = geo.pads[:2]
    g5 = g.reshape(n, c, geo.mult, geo.oh, geo.ow)
    w4 = w.reshape(c, geo.mult, geo.kh, geo.kw)
    dw = np.zeros(w4.shape, dtype=g.dtype) if need_w else None
    dx = np.empty(x_shape, dtype=g.dtype) if need_x else None
    nb = geo.block_size(n, g.itemsize)
    # Only [..., :OW] is overwritten per block: the extra wide columns stay zero.
    g_wide = np.zeros((min(nb, n), c, geo.mult, geo.oh, geo.plane_w), dtype=g.dtype)
    for s, e, xp in _blocks(x, geo, nb):
        gb = g_wide[:e - s]
        gb[..., :geo.ow] = g5[s:e]
        gb = gb.reshape(e - s, c, geo.mult, geo.length)
        planes = geo.phases(xp)
        grad_planes = [[np.zeros_like(p) for p in row] for row in planes] if need_x else None
        for i, j in geo.offsets():
            if need_w:
                dw[:, :, i, j] += np.einsum("ncml,ncl->cm", gb, geo.window(planes, i, j))
            if need_x:
                target = geo.window(grad_planes, i, j)
                if geo.mult == 1:
                    target += gb[:, :, 0] * w4[:, 0, i, j][:, None]
                else:
                    target += np.einsum("ncml,cm->ncl", gb, w4[:, :, i, j])
        if need_x:
            if geo.stride == (1, 1):
                dxp = grad_planes[0][0].reshape(xp.shape)
            else:
                dxp = np.empty((e - s, c, geo.hp, geo.wp), dtype=g.dtype)
                geo.unphase(grad_planes, dxp)
            dx[s:e] = dxp[:, :, t:t + h, l:l + wd]
    return dx, (dw.reshape(w.shape) if need_w else None)

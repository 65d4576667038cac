"""NumPy kernels behind dense and grouped conv2d: im2col + GEMM (depthwise
convolution lives in conv_depthwise.py).

Speed notes (measured on one core against PyTorch):
* The column matrix of a whole batch is tens of MB; writing it and reading it
  back from DRAM made the GEMMs memory-bound (~4x slower). So images are
  processed in blocks whose columns fit in L2 cache (`BLOCK_BYTES`); each block
  is one batched matmul. Only these blocks and the kh*kw kernel offsets are
  Python loops, never single pixels or single images.
* Stride-1 convolutions use "wide" columns: every output row is computed over
  the full padded width Wp, so for each kernel offset a window of one channel
  plane is a single contiguous run of OH*Wp values (long copies in im2col and
  long adds in col2im instead of OW-long row fragments). The Wp - OW extra
  columns per row are cropped from the output; their gradient is zero.
* The backward pass recomputes the columns block by block instead of keeping
  them alive from the forward pass: cheaper than the memory traffic of storing them.
* For stride 1 the input gradient is itself a convolution (of the output
  gradient with the spatially flipped, channel-transposed kernel), which runs
  through the same fast forward path; strided convs use col2im, one strided
  slice-add per kernel offset.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

# Column-block budget; ~1 MB keeps the columns and the GEMM output in L2.
BLOCK_BYTES = 1 << 20


def out_size(size, kernel, stride, pad_begin, pad_end, dilation):
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def offset_view(xp, i, j, geometry):
    """The (N, C, OH, OW) view of padded input read by kernel offset (i, j)."""
    (sh, sw), (dh, dw), (oh, ow) = geometry
    return xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


def padded_blocks(x, pads, nb, extra_rows=0):
    """Yield (start, end, zero-padded block of nb images) over the batch of `x`.

    The padded copies share one buffer whose zero border is written once, so the
    padding work stays in cache instead of materialising a padded batch.
    """
    n, c, h, w = x.shape
    t, l, b, r = pads
    buf = None
    if t or l or b or r or extra_rows:
        buf = np.zeros((min(nb, n), c, h + t + b + extra_rows, w + l + r), dtype=x.dtype)
    for s in range(0, n, nb):
        e = min(n, s + nb)
        if buf is None:
            yield s, e, x[s:e]
        else:
            block = buf[:e - s]
            block[:, :, t:t + h, l:l + w] = x[s:e]
            yield s, e, block


def crop2d(xp, pads, h, w):
    """The unpadded (N, C, h, w) part of a padded array, contiguous."""
    t, l = pads[0], pads[1]
    return np.ascontiguousarray(xp[:, :, t:t + h, l:l + w])


class ColumnLayout:
    """How one conv reads its padded input as columns (nb, C*kh*kw, L), block by block.

    Wide layout (stride 1): L = OH * Wp, output (i, j) -> column i * Wp + j.
    Window layout (strided): L = OH * OW, a plain 2-D window per kernel offset.
    """

    def __init__(self, x_shape, kernel, pads, stride, dilation):
        n, c, h, w = x_shape
        self.c, self.h, self.w = c, h, w
        self.kh, self.kw = kernel
        self.pads, self.stride, self.dilation = pads, stride, dilation
        self.oh = out_size(h, self.kh, stride[0], pads[0], pads[2], dilation[0])
        self.ow = out_size(w, self.kw, stride[1], pads[1], pads[3], dilation[1])
        self.hp, self.wp = h + pads[0] + pads[2], w + pads[1] + pads[3]
        self.wide = stride == (1, 1)
        self.row = self.wp if self.wide else self.ow
        self.length = self.oh * self.row
        # Wide windows of the last offsets run (kw-1)*dw values past the last padded row.
        self.extra_rows = 1 if self.wide and self.kw > 1 else 0

    @property
    def geometry(self):
        return self.stride, self.dilation, (self.oh, self.ow)

    def block_size(self, n, itemsize):
        per_image = self.c * self.kh * self.kw * self.length * itemsize
        return int(max(1, min(n, BLOCK_BYTES // max(per_image, 1))))

    def padded_blocks(self, x, nb):
        return padded_blocks(x, self.pads, nb, self.extra_rows)

    def _windows(self, xp):
        """Read-only (nb, C, kh, kw, L-or-(OH, OW)) view of the columns of a padded block."""
        nb, c = xp.shape[:2]
        s_n, s_c, s_h, s_w = xp.strides
        (sh, sw), (dh, dw) = self.stride, self.dilation
        if self.wide:
            shape = (nb, c, self.kh, self.kw, self.length)
            strides = (s_n, s_c, s_h * dh, s_w * dw, s_w)
        else:
            shape = (nb, c, self.kh, self.kw, self.oh, self.ow)
            strides = (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw)
        return as_strided(xp, shape, strides, writeable=False)

    def im2col(self, xp, out):
        """Copy the columns of padded block `xp` into `out` (nb, C*kh*kw, L)."""
        view = self._windows(xp)
        np.copyto(out.reshape(view.shape), view)
        return out

    def col2im(self, dcols, dxp):
        """Add column gradients (nb, C*kh*kw, L) onto padded block `dxp`, one offset at a time."""
        nb = dcols.shape[0]
        d = dcols.reshape(nb, self.c, self.kh, self.kw, self.oh, self.row)[..., :self.ow]
        for i in range(self.kh):
            for j in range(self.kw):
                offset_view(dxp, i, j, self.geometry)[...] += d[:, :, i, j]

    def crop_output(self, y_cols):
        """(nb, O, L) GEMM output -> (nb, O, OH, OW)."""
        nb, o = y_cols.shape[:2]
        return y_cols.reshape(nb, o, self.oh, self.row)[..., :self.ow]

    def widen_grad(self, g_block, out):
        """(nb, O, OH, OW) output gradient -> (nb, O, L) with zeros in the extra wide columns."""
        nb, o = g_block.shape[:2]
        if not self.wide:
            return g_block.reshape(nb, o, self.length)
        wide = out.reshape(nb, o, self.oh, self.row)
        wide[..., :self.ow] = g_block
        wide[..., self.ow:] = 0
        return out


# ------------------------------------------------------------------ dense / grouped


def _is_plain_1x1(w_shape, pads, stride):
    return w_shape[2] == w_shape[3] == 1 and stride == (1, 1) and not any(pads)


def _gemm(w_groups, cols, groups, out=None):
    """W (G, O/G, K/G) times columns (nb, K, L) -> (nb, O, L), one batched matmul."""
    nb, k, length = cols.shape
    if groups == 1:
        return np.matmul(w_groups[0], cols, out=out)
    y = np.matmul(w_groups, cols.reshape(nb, groups, k // groups, length))
    return y.reshape(nb, -1, length)


def gemm_forward(x, w, pads, stride, dilation, groups):
    """Dense or grouped conv. Returns (y, state for gemm_backward)."""
    x = np.ascontiguousarray(x)  # wide columns need each (H, W) plane contiguous
    n, c, h, wd = x.shape
    o = w.shape[0]
    w_groups = w.reshape(groups, o // groups, -1)
    if _is_plain_1x1(w.shape, pads, stride):  # the input already is the column matrix
        y = _gemm(w_groups, x.reshape(n, c, h * wd), groups)
        return y.reshape(n, o, h, wd), (None, x)
    layout = ColumnLayout(x.shape, w.shape[2:], pads, stride, dilation)
    y = np.empty((n, o, layout.oh, layout.ow), dtype=np.result_type(x, w))
    nb = layout.block_size(n, x.itemsize)
    cols = np.empty((nb, w_groups.shape[2] * groups, layout.length), dtype=x.dtype)
    y_cols = np.empty((nb, o, layout.length), dtype=y.dtype) if groups == 1 else None
    for s, e, xp in layout.padded_blocks(x, nb):
        block = layout.im2col(xp, cols[:e - s])
        y[s:e] = layout.crop_output(_gemm(w_groups, block, groups, None if y_cols is None else y_cols[:e - s]))
    return y, (layout, x)


def gemm_backward(g, x_shape, w, state, groups, need_x, need_w):
    layout, x = state
    n, c, h, wd = x_shape
    o = w.shape[0]
    w_groups = w.reshape(groups, o // groups, -1)
    w_t = w_groups.transpose(0, 2, 1)
    if layout is None:  # plain 1x1
        g3 = g.reshape(n, o, h * wd)
        dx = _gemm(w_t, g3, groups).reshape(x_shape) if need_x else None
        dw = None
        if need_w:
            x4 = x.reshape(n, groups, c // groups, h * wd)
            dw = np.matmul(g3.reshape(n, groups, o // groups, -1), x4.transpose(0, 1, 3, 2)).sum(axis=0)
            dw = dw.reshape(w.shape)
        return dx, dw

    dx = None
    if need_x and _transposed_pads(layout) is not None:
        # Stride 1: dx is itself a convolution of g, which runs as fast as the forward.
        dx = _input_grad_as_conv(g, w, layout, groups)
        need_x = False
    if not (need_x or need_w):
        return dx, None
    nb = layout.block_size(n, g.itemsize)
    k = w_groups.shape[2] * groups
    g_cols = np.empty((nb, o, layout.length), dtype=g.dtype)
    cols = np.empty((nb, k, layout.length), dtype=g.dtype) if need_w else None
    dcols = np.empty((nb, k, layout.length), dtype=g.dtype) if (need_x and groups == 1) else None
    dxp = np.empty((nb, c, layout.hp, layout.wp), dtype=g.dtype) if need_x else None
    dw_t = np.zeros(w_t.shape, dtype=g.dtype) if need_w else None
    if need_x:
        dx = np.empty(x_shape, dtype=g.dtype)
    for s, e, xp in layout.padded_blocks(x, nb):
        gb = layout.widen_grad(g[s:e], g_cols[:e - s])
        if need_w:
            block = layout.im2col(xp, cols[:e - s])
            gb4 = gb.reshape(e - s, groups, o // groups, -1)
            block4 = block.reshape(e - s, groups, k // groups, -1)
            # columns @ g.T (dW transposed) runs ~1.5x faster in BLAS than g @ columns.T
            dw_t += np.matmul(block4, gb4.transpose(0, 1, 3, 2)).sum(axis=0)
        if need_x:
            d = _gemm(w_t, gb, groups, None if dcols is None else dcols[:e - s])
            dxp_block = dxp[:e - s]
            dxp_block.fill(0)
            layout.col2im(d, dxp_block)
            dx[s:e] = dxp_block[:, :, layout.pads[0]:layout.pads[0] + h, layout.pads[1]:layout.pads[1] + wd]
    dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(w.shape) if need_w else None
    return dx, dw


def _transposed_pads(layout):
    """Padding that turns a stride-1 conv's input gradient into a plain conv of the
    output gradient (a 'full' correlation with the flipped kernel); None if not stride 1."""
    if not layout.wide:
        return None
    dh, dw = layout.dilation
    t, l, b, r = layout.pads
    pads = (dh * (layout.kh - 1) - t, dw * (layout.kw - 1) - l, dh * (layout.kh - 1) - b, dw * (layout.kw - 1) - r)
    return pads if min(pads) >= 0 else None


def _input_grad_as_conv(g, w, layout, groups):
    """dx = conv(g, w flipped in space with in/out channels swapped per group)."""
    o, cg, kh, kw = w.shape
    w_t = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    w_t = np.ascontiguousarray(w_t).reshape(groups * cg, o // groups, kh, kw)
    dx, _ = gemm_forward(g, w_t, _transposed_pads(layout), (1, 1), layout.dilation, groups)
    return dx

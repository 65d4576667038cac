"""conv2d: the Function (dispatching to the kernels in conv_kernels) and its checked wrapper."""
from ..autograd import Function
from ..errors import ShapeError
from . import conv_depthwise as D
from . import conv_kernels as K
from ._util import as_tensor, fmt_shape, pads4, pair, shape_error


def _is_depthwise(x_channels, w_shape, groups):
    return groups > 1 and groups == x_channels and w_shape[1] == 1


class Conv2d(Function):
    ir_op = "conv2d"

    @staticmethod
    def forward(ctx, x, w, b=None, *, stride, padding, dilation, groups):
        depthwise = _is_depthwise(x.shape[1], w.shape, groups)
        if depthwise:
            y, state = D.depthwise_forward(x, w, padding, stride, dilation)
        else:
            y, state = K.gemm_forward(x, w, padding, stride, dilation, groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        if any(ctx.needs_input_grad):
            ctx.x_shape, ctx.w, ctx.groups, ctx.depthwise = x.shape, w, groups, depthwise
            ctx.state = state  # (geometry, input): backward recomputes the columns from the input
        return y

    @staticmethod
    def backward(ctx, g):
        need_x, need_w = ctx.needs_input_grad[:2]
        if ctx.depthwise:
            dx, dw = D.depthwise_backward(g, ctx.x_shape, ctx.w, ctx.state, need_x, need_w)
        else:
            dx, dw = K.gemm_backward(g, ctx.x_shape, ctx.w, ctx.state, ctx.groups, need_x, need_w)
        if len(ctx.needs_input_grad) == 2:
            return dx, dw
        db = None
        if ctx.needs_input_grad[2]:  # sum the contiguous H*W run first: much faster than axis=(0, 2, 3)
            db = g.reshape(g.shape[0], g.shape[1], -1).sum(axis=2).sum(axis=0)
        return dx, dw, db

    @classmethod
    def ir_attrs(cls, stride, padding, dilation, groups):
        return {"strides": list(stride), "pads": list(padding), "dilations": list(dilation),
                "group": int(groups)}


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of NCHW `x` with weight [O, C/groups, kh, kw].

    `padding` is an int, an (h, w) pair or (top, left, bottom, right).
    """
    x = as_tensor(x)
    if weight.ndim != 4:
        raise ShapeError(f"conv2d: expected weight of shape (O, C/groups, kh, kw), got {fmt_shape(weight.shape)}")
    o, cg, kh, kw = weight.shape
    groups = int(groups)
    if groups < 1 or o % groups:
        raise ShapeError(f"conv2d: weight {fmt_shape(weight.shape)} has {o} output channels, "
                         f"not divisible by groups={groups}")
    if x.ndim != 4 or x.shape[1] != cg * groups:
        raise shape_error("conv2d", f"(N, {cg * groups}, H, W)", x.shape)
    if bias is not None and tuple(bias.shape) != (o,):
        raise ShapeError(f"conv2d: expected bias of shape ({o},), got {fmt_shape(bias.shape)}")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding = pads4(padding)
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: bad stride {stride}, dilation {dilation} or padding {padding}")
    oh = K.out_size(x.shape[2], kh, stride[0], padding[0], padding[2], dilation[0])
    ow = K.out_size(x.shape[3], kw, stride[1], padding[1], padding[3], dilation[1])
    if oh < 1 or ow < 1:
        raise ShapeError(f"conv2d: kernel ({kh}, {kw}) with dilation {dilation} does not fit input "
                         f"{fmt_shape(x.shape)} padded by {padding}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)

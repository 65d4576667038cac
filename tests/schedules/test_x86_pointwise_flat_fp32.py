"""Which nodes the 1x1 conv over the flat pixel axis (schedules/x86_pointwise_flat_fp32.py) takes; its results
against NumPy are in test_x86_fp32.py::test_conv2d_f32_1x1, with a fused add in test_x86_fp32_residual.py."""
import pytest

from yuan.schedules.x86_pointwise_flat_fp32 import flat_tile


@pytest.mark.parametrize("xs,out_channels,takes", [
    ((1, 64, 14, 14), 384, True),     # MobileNetV2's expand layer on 14 x 14
    ((1, 384, 14, 14), 64, False),    # its projection: measured slower than the tiled kernel
    ((1, 160, 7, 7), 960, False),     # 49 pixels in 64 lanes: too many spare
    ((1, 32, 28, 28), 192, False),    # whole-row tiles: conv2d_f32_nchw_1x1
])
def test_flat_1x1_takes_expand_layers_on_14x14(xs, out_channels, takes):
    in_types = [(xs, "float32"), ((out_channels, xs[1], 1, 1), "float32")]
    assert (flat_tile(dict(strides=[1, 1], pads=[0] * 4), in_types) is not None) == takes

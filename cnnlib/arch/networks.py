"""Ready-made specs of classic networks, each with its input shape in `*_INPUT`."""
from __future__ import annotations

from .layers import FC, Conv, Flatten, Layer, Pool


def _vgg_block(channels: int, convs: int) -> tuple[Layer, ...]:
    return tuple(Conv(channels, 3, padding=1) for _ in range(convs)) + (Pool(2, 2),)


# Activations (ReLU, tanh) are left out of the ready-made specs: they add no
# parameters or MACs, and frameworks apply them in place, so counting their
# outputs would double the activation memory.

LENET5_INPUT = (1, 32, 32)
# LeCun et al. (1998) in its common modern form: full connections from S2 to C3
# and plain 2x2 average pooling instead of subsampling with trainable coefficients.
LENET5: tuple[Layer, ...] = (
    Conv(6, 5), Pool(2, 2, kind="avg"),
    Conv(16, 5), Pool(2, 2, kind="avg"),
    Flatten(), FC(120), FC(84), FC(10),
)

ALEXNET_INPUT = (3, 224, 224)
# torchvision's single-tower AlexNet (64/192/384/256/256 filters). Its adaptive
# average pool to 6x6 is the identity for a 224x224 input and is omitted.
ALEXNET: tuple[Layer, ...] = (
    Conv(64, 11, stride=4, padding=2), Pool(3, 2),
    Conv(192, 5, padding=2), Pool(3, 2),
    Conv(384, 3, padding=1), Conv(256, 3, padding=1), Conv(256, 3, padding=1), Pool(3, 2),
    Flatten(), FC(4096), FC(4096), FC(1000),
)

# Krizhevsky et al. (2012), split over two GPUs: conv2, conv4 and conv5 only see the
# kernels on their own GPU (groups=2). The paper's figure says 224, but an 11x11
# window with stride 4 gives 55 outputs only from 227: (227 - 11) / 4 + 1 = 55.
ALEXNET_ORIGINAL_INPUT = (3, 227, 227)
ALEXNET_ORIGINAL: tuple[Layer, ...] = (
    Conv(96, 11, stride=4), Pool(3, 2),
    Conv(256, 5, padding=2, groups=2), Pool(3, 2),
    Conv(384, 3, padding=1), Conv(384, 3, padding=1, groups=2), Conv(256, 3, padding=1, groups=2),
    Pool(3, 2),
    Flatten(), FC(4096), FC(4096), FC(1000),
)

VGG16_INPUT = (3, 224, 224)
# Simonyan and Zisserman (2014), configuration D.
VGG16: tuple[Layer, ...] = (
    _vgg_block(64, 2) + _vgg_block(128, 2) + _vgg_block(256, 3)
    + _vgg_block(512, 3) + _vgg_block(512, 3)
    + (Flatten(), FC(4096), FC(4096), FC(1000))
)

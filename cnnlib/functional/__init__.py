"""Pure functions: forward ops and their ``*_backward`` twins (see cnnlib/DESIGN.md, "The
functional contract"). Every backward takes the upstream gradient and the forward's inputs and
arguments."""
from .activation import (
                         leaky_relu,
                         leaky_relu_backward,
                         relu,
                         relu_backward,
                         sigmoid,
                         sigmoid_backward,
                         tanh,
                         tanh_backward,
)
from .conv import (
                         conv1d,
                         conv1d_backward,
                         conv2d,
                         conv2d_backward,
                         conv3d,
                         conv3d_backward,
                         conv_transpose2d,
                         conv_transpose2d_backward,
)
from .linear import linear, linear_backward
from .loss import cross_entropy, cross_entropy_backward, log_softmax, softmax
from .pool import (
                         avg_pool2d,
                         avg_pool2d_backward,
                         global_avg_pool2d,
                         global_avg_pool2d_backward,
                         max_pool2d,
                         max_pool2d_backward,
)


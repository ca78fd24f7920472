"""Looking inside a network, one topic per module:

- ``spectra``: a weight as a matrix, its singular values and eigenvalues, condition number,
  effective and numerical rank, ``spectrum_report`` of every Conv and Linear layer;
- ``units``: every layer's output (``activations``), dead and zero ReLU fractions, filter
  redundancy;
- ``attribution``: saliency, class activation maps, Grad-CAM, activation maximisation;
- ``invariance``: ``shift_invariance``.
"""
from .attribution import activation_maximization, class_activation_map, grad_cam, saliency
from .invariance import ShiftInvariance, shift_invariance
from .spectra import (
                      SpectrumReport,
                      condition_number,
                      effective_rank,
                      eigenvalues,
                      numerical_rank,
                      singular_values,
                      spectrum_report,
                      weight_matrix,
)
from .units import FilterRedundancy, activations, dead_relu_fraction, filter_redundancy, relu_zero_fraction

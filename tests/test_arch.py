import itertools

import pytest

from cnnlib import arch
from cnnlib.arch import FC, Conv, Flatten, Pool, ReLU

# ---------------------------------------------------------------- output size


def test_output_size_basics():
    assert arch.output_size(5, 3) == 3
    assert arch.output_size(5, 3, padding=1) == 5
    assert arch.output_size(32, 5) == 28
    assert arch.output_size(7, 3, stride=2) == 3
    assert arch.output_size(10, 3, dilation=2) == 6


def test_exercise_7x7_stride_2_then_3x3_stride_2_pool():
    after_conv = arch.output_size(224, 7, stride=2, padding=3)
    assert after_conv == 112  # floor(223 / 2) + 1: the last pixel is not covered
    assert not arch.fits(224, 7, 2, 3)
    assert arch.output_size(after_conv, 3, stride=2) == 55
    assert arch.output_size(after_conv, 3, stride=2, ceil_mode=True) == 56
    assert arch.output_size(after_conv, 3, stride=2, padding=1) == 56


def test_alexnet_first_layer_fits_227_but_not_224():
    assert arch.output_size(227, 11, stride=4) == 55  # (227 - 11) / 4 + 1
    assert arch.fits(227, 11, 4, 0)
    assert arch.output_size(224, 11, stride=4) == 54  # floor(213 / 4) + 1
    assert not arch.fits(224, 11, 4, 0)
    assert arch.output_size(224, 11, stride=4, padding=2) == 55  # torchvision's choice


def test_fits_examples():
    assert not arch.fits(10, 3, 2, 0)  # (10 - 3) / 2 + 1 = 4.5
    assert arch.fits(11, 3, 2, 0)
    assert arch.fits(32, 5, 1, 2)


def test_ceil_mode_drops_a_window_that_would_start_in_the_padding():
    # n=5, k=2, s=2, p=1: rounding up gives ceil(5 / 2) + 1 = 4 windows, but the 4th would
    # start at padded index 6, the right padding (the input is at 1..5), so it is dropped.
    assert arch.output_size(5, 2, stride=2, padding=1, ceil_mode=True) == 3
    assert arch.output_size(6, 2, stride=2, padding=1, ceil_mode=True) == 4
    assert arch.output_size(6, 2, stride=2, padding=1) == 4


def test_output_size_matches_torch():
    import torch
    functional = torch.nn.functional
    for n, k, s, d in itertools.product(range(1, 11), range(1, 5), range(1, 4), (1, 2)):
        for p in range(k // 2 + 1):
            x = torch.zeros(1, 1, n)
            if d * (k - 1) + 1 > n + 2 * p:
                with pytest.raises(ValueError):
                    arch.output_size(n, k, s, p, d)
            else:
                conv = functional.conv1d(x, torch.zeros(1, 1, k), stride=s, padding=p, dilation=d)
                assert arch.output_size(n, k, s, p, d) == conv.shape[-1], (n, k, s, p, d)
            for ceil_mode in (False, True):
                try:  # ceil mode may keep a window that reaches past the padded input
                    size = functional.max_pool1d(x, k, s, p, d, ceil_mode=ceil_mode).shape[-1]
                except RuntimeError:
                    with pytest.raises(ValueError):
                        arch.output_size(n, k, s, p, d, ceil_mode)
                    continue
                assert arch.output_size(n, k, s, p, d, ceil_mode) == size, (n, k, s, p, d, ceil_mode)


def test_output_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"kernel 7 .*does not fit input 5 with padding 0"):
        arch.output_size(5, 7)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        arch.output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        arch.output_size(5, 3, padding=-1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        arch.output_size(0, 1)
    with pytest.raises(ValueError, match="dilation"):
        arch.fits(5, 3, 1, 0, dilation=0)
    with pytest.raises(TypeError, match="kernel"):
        arch.output_size(5, 2.5)
    with pytest.raises(TypeError, match="stride"):
        arch.output_size(5, 3, stride=True)


# ---------------------------------------------------------------- receptive field


def test_receptive_field_of_small_stacks():
    assert arch.receptive_field([]) == (1, 1)
    assert arch.receptive_field([(3, 1)] * 2) == (5, 1)  # two 3x3 see as far as one 5x5
    assert arch.receptive_field([(3, 1)] * 3) == (7, 1)
    assert arch.receptive_field([(3, 1, 2)]) == (5, 1)
    assert arch.receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == (15, 1)
    assert arch.receptive_field([(2, 2)] * 3) == (8, 8)
    assert arch.receptive_field([(11, 4), (3, 2)]) == (19, 8)


def test_receptive_field_rejects_bad_layers():
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        arch.receptive_field([(3, 1), (3,)])
    with pytest.raises(ValueError, match="stride"):
        arch.receptive_field([(3, 0)])


def _vgg16_layers():
    layers = []
    for convs in (2, 2, 3, 3, 3):
        layers += [(3, 1)] * convs + [(2, 2)]
    return layers


def test_vgg16_receptive_field():
    layers = _vgg16_layers()
    # conv5_3 is the last 3x3 conv, just before the fifth pool.
    assert arch.receptive_field(layers[:-1]) == (196, 16)
    assert arch.receptive_field(layers) == (212, 32)
    rows = {row.name: row for row in arch.summarize(arch.VGG16, arch.VGG16_INPUT)}
    assert (rows["conv13"].receptive_field, rows["conv13"].jump) == (196, 16)
    assert (rows["pool5"].receptive_field, rows["pool5"].jump) == (212, 32)
    assert rows["fc1"].receptive_field is None


def test_alexnet_receptive_field():
    rows = {row.name: row for row in arch.summarize(arch.ALEXNET, arch.ALEXNET_INPUT)}
    assert rows["pool3"].receptive_field == 195 and rows["pool3"].jump == 32


# ---------------------------------------------------------------- parameter counts


PUBLISHED = [
    ("LENET5", 61_706),
    ("ALEXNET", 61_100_840),
    ("ALEXNET_ORIGINAL", 60_965_224),
    ("VGG16", 138_357_544),
]


@pytest.mark.parametrize("name, params", PUBLISHED)
def test_published_parameter_counts(name, params):
    summary = arch.summarize(getattr(arch, name), getattr(arch, f"{name}_INPUT"))
    assert summary.total_params == params


def test_lenet5_shapes():
    summary = arch.summarize(arch.LENET5, arch.LENET5_INPUT)
    assert [r.output_shape for r in summary] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,),
    ]
    assert [r.params for r in summary] == [156, 0, 2416, 0, 0, 48120, 10164, 850]


def test_alexnet_original_layers():
    summary = arch.summarize(arch.ALEXNET_ORIGINAL, arch.ALEXNET_ORIGINAL_INPUT)
    rows = {row.name: row for row in summary}
    assert rows["conv1"].output_shape == (96, 55, 55)
    assert rows["conv1"].params == 96 * (11 * 11 * 3 + 1) == 34_944
    assert rows["conv2"].params == 256 * (48 * 25 + 1) == 307_456  # groups=2: each sees 48 maps
    assert rows["conv3"].params == 885_120  # conv3 sees both GPUs
    assert rows["conv4"].params == 663_936
    assert rows["conv5"].params == 442_624
    assert rows["pool3"].output_shape == (256, 6, 6)
    assert rows["flatten1"].output_shape == (9216,)
    assert rows["fc1"].params == 9216 * 4096 + 4096
    # Grouping is the only difference from an ungrouped net with the same widths.
    ungrouped = [Conv(layer.out_channels, layer.kernel, layer.stride, layer.padding)
                 if isinstance(layer, Conv) else layer for layer in arch.ALEXNET_ORIGINAL]
    assert arch.summarize(ungrouped, (3, 227, 227)).total_params == 62_378_344


def _torch_model(spec, input_shape):
    import torch
    nn = torch.nn
    modules, shape = [], input_shape
    for layer in spec:
        if isinstance(layer, Conv):
            modules.append(nn.Conv2d(shape[0], layer.out_channels, layer.kernel, layer.stride,
                                     layer.padding, groups=layer.groups, bias=layer.bias))
        elif isinstance(layer, Pool):
            pool = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
            modules.append(pool(layer.kernel, layer.stride, layer.padding))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, FC):
            modules.append(nn.Linear(shape[0], layer.out_features, bias=layer.bias))
        else:
            modules.append(nn.ReLU())
        with torch.device("meta"):
            shape = tuple(nn.Sequential(*modules).to("meta")(torch.empty(1, *input_shape)).shape[1:])
    return nn.Sequential(*modules)


@pytest.mark.parametrize("name", [name for name, _ in PUBLISHED])
def test_summary_agrees_with_torch(name):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec, input_shape = getattr(arch, name), getattr(arch, f"{name}_INPUT")
    summary = arch.summarize(spec, input_shape)
    with torch.device("meta"):
        model = _torch_model(spec, input_shape)
        x = torch.empty(1, *input_shape)
        with FlopCounterMode(display=False) as counter:
            shapes = []
            for module in model:
                x = module(x)
                shapes.append(tuple(x.shape[1:]))
    assert [row.output_shape for row in summary] == shapes
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    # torch counts a multiply-accumulate as two floating-point operations.
    assert 2 * summary.total_macs == counter.get_total_flops()


def test_known_mac_totals():
    assert arch.summarize(arch.VGG16, arch.VGG16_INPUT).total_macs == 15_470_264_320
    assert arch.summarize(arch.ALEXNET, arch.ALEXNET_INPUT).total_macs == 714_188_480


# ---------------------------------------------------------------- the seed's numbers


def test_seed_cost_example():
    # 224x224x3 image, 11x11 kernel, stride 4, 64 filters: (K*K) * (H*W)/(s*s) * C_in * C_out.
    assert 224 * 224 / (4 * 4) == 3136 == 56**2
    estimate = arch.approx_conv_macs(11, 224, 224, 4, 3, 64)
    assert estimate == 121 * 3136 * 3 * 64 == 72_855_552
    # The estimate assumes a 56x56 output; that needs padding 4 (floor(232 - 11) / 4 + 1 = 56).
    assert arch.conv_macs((3, 224, 224), 64, 11, stride=4, padding=4) == 72_855_552
    # The real output is 54x54 without padding, 55x55 with torchvision's padding 2.
    assert arch.conv_macs((3, 224, 224), 64, 11, stride=4) == 54 * 54 * 121 * 3 * 64 == 67_744_512
    assert arch.conv_macs((3, 224, 224), 64, 11, stride=4, padding=2) == 70_276_800


def test_alexnet_first_layer_with_and_without_parameter_sharing():
    neurons = 55 * 55 * 96
    assert neurons == 290_400
    assert 11 * 11 * 3 == 363
    assert arch.unshared_params((96, 55, 55), 11, 3) == 290_400 * 364 == 105_705_600
    # The seed's 105,415,200 is 290,400 * 363: the biases are left out.
    assert arch.unshared_params((96, 55, 55), 11, 3, bias=False) == 105_415_200
    assert arch.conv_params(3, 96, 11) == 96 * 364 == 34_944
    # Same number as the unshared weights: every weight of the unshared layer is used once.
    assert arch.conv_macs((3, 227, 227), 96, 11, stride=4) == 105_415_200


def test_activation_memory_of_three_3x3_conv_layers():
    summary = arch.summarize([Conv(64, 3, padding=1)] * 3, (3, 224, 224))
    assert [row.output_shape for row in summary] == [(64, 224, 224)] * 3
    assert summary.total_activations == 3 * 224 * 224 * 64 == 9_633_792  # "about 10 million"
    assert summary.total_activation_bytes == 38_535_168  # float32, forward only
    nbytes = arch.activation_bytes(summary.total_activations, with_gradients=True)
    assert nbytes == 77_070_336
    assert nbytes / 2**20 == 73.5  # MiB; 77.07 MB in powers of ten: the seed's "72MB" is neither
    assert arch.activation_bytes(10, bytes_per_value=8) == 80


# ---------------------------------------------------------------- summaries


def test_summary_rows_and_totals():
    spec = [Conv(8, 3, padding=1), ReLU(), Pool(2), Flatten(), FC(10)]
    summary = arch.summarize(spec, (3, 8, 8))
    assert len(summary) == 5
    assert [r.name for r in summary] == ["conv1", "relu1", "pool1", "flatten1", "fc1"]
    conv, relu, pool, flatten, fc = summary
    assert conv.params == 8 * 27 + 8 and conv.macs == 8 * 8 * 8 * 27
    assert relu.output_shape == (8, 8, 8) and relu.params == 0 and relu.activations == 512
    assert pool.output_shape == (8, 4, 4) and pool.activations == 128
    assert flatten.output_shape == (128,) and flatten.activations == 0  # a view
    assert fc.params == 1290 and fc.macs == 1280
    assert summary.total_params == 224 + 1290
    assert summary.total_activations == 512 + 512 + 128 + 10
    assert summary.total_activation_bytes == 4 * summary.total_activations
    assert arch.summarize(spec, (3, 8, 8), bytes_per_value=8).total_activation_bytes == 8 * 1162


def test_format_summary_text_and_html():
    summary = arch.summarize(arch.LENET5, arch.LENET5_INPUT)
    text = arch.format_summary(summary)
    assert text == str(summary)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["layer", "type", "output"]
    assert lines[-1].startswith("total") and "61,706" in lines[-1]
    assert any(line.startswith("conv2") and "16x10x10" in line and "2,416" in line for line in lines)
    html = summary._repr_html_()
    assert html == arch.format_summary(summary, html=True)
    assert html.startswith("<table>") and html.endswith("</table>")
    assert html.count("<tr>") == len(summary) + 2
    assert "<td>fc3</td>" in html and "<th>61,706</th>" in html


def test_summarize_rejects_bad_specs():
    with pytest.raises(ValueError, match=r"Flatten\(\)"):
        arch.summarize([FC(10)], (1, 4, 4))
    with pytest.raises(ValueError, match="divisible by groups 2"):
        arch.summarize([Conv(4, 3, groups=2)], (3, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        arch.summarize([Conv(4, 9)], (3, 8, 8))
    with pytest.raises(ValueError, match="kind"):
        arch.summarize([Pool(2, kind="min")], (3, 8, 8))
    with pytest.raises(ValueError, match="padding 2 exceeds half the kernel 3"):
        arch.summarize([Pool(3, padding=2)], (3, 8, 8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        arch.summarize([Flatten(), Conv(4, 1)], (3, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        arch.summarize([], (8, 8))
    with pytest.raises(TypeError, match="spec\\[0\\]"):
        arch.summarize(["conv"], (3, 8, 8))

"""Layers, optimisers and training: against PyTorch, numerical gradients and a real task."""
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlib
from cnnlib import data, losses, nn, optim, train
from cnnlib import functional as F
from cnnlib.gradcheck import numerical_gradient, relative_error


def module_gradcheck(module, x, rng):
    """Relative errors of dx and of every parameter gradient of sum(module(x) * dy)."""
    dy = rng.standard_normal(module(x).shape)
    module.zero_grad()
    module(x)
    dx = module.backward(dy)

    def loss(_):
        return float(np.sum(module(x) * dy))
    errors = {"x": relative_error(dx, numerical_gradient(loss, x))}
    for name, p in module.named_parameters():
        errors[name] = relative_error(p.grad, numerical_gradient(loss, p.data))
    return errors


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 2, 7)),
    (lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2), (2, 4, 8, 7)),
    (lambda: nn.Conv3d(2, 2, 2, padding="same"), (2, 2, 4, 4, 3)),
    (lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1), (2, 2, 4, 3)),
    (lambda: nn.Linear(5, 3), (3, 5)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                           nn.Linear(3 * 4 * 4, 2)), (2, 2, 8, 8)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(3, stride=2)), (2, 2, 9, 9)),
    (lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Sigmoid(),
                                       nn.Conv2d(2, 2, 3, padding=1))), (2, 2, 6, 6)),
    (lambda: nn.Residual(nn.Conv2d(2, 4, 3, padding=1), shortcut=nn.Conv2d(2, 4, 1)), (2, 2, 6, 6)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.LeakyReLU(0.1), nn.GlobalAvgPool2d()),
     (3, 2, 6, 6)),
])
def test_module_gradients_match_numerical(make, shape):
    cnnlib.seed(0)
    rng = np.random.default_rng(1)
    errors = module_gradcheck(make(), rng.standard_normal(shape), rng)
    assert max(errors.values()) < 1e-6, errors


def test_max_pool_keeps_the_argmax_while_training_and_searches_again_in_eval():
    rng = np.random.default_rng(3)
    x, layer = rng.standard_normal((2, 3, 7, 7)), nn.MaxPool2d(3, stride=2, padding=1)
    dy = rng.standard_normal((2, 3, 4, 4))
    expected = F.max_pool2d_backward(dy, x, 3, stride=2, padding=1)
    layer(x)
    assert layer.indices is not None
    np.testing.assert_array_equal(layer.backward(dy), expected)
    layer.eval()
    layer(x)
    assert layer.indices is None
    np.testing.assert_array_equal(layer.backward(dy), expected)


def test_batchnorm_matches_torch_in_training_and_eval():
    rng = np.random.default_rng(2)
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3).double()
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
        xt = torch.tensor(x, requires_grad=True)
        dy = rng.standard_normal(x.shape)
        y = ours(x)
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), atol=1e-12)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("momentum", [0.3, None])
def test_batchnorm_running_statistics_and_state_follow_torch(momentum):
    """momentum=None averages the batches seen (num_batches_tracked of them); the state moves
    both ways between the two libraries."""
    rng = np.random.default_rng(8)
    ours, theirs = nn.BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum).double()
    for _ in range(4):
        x = rng.standard_normal((5, 3, 4, 4)) * 3 - 1
        ours(x), theirs(torch.tensor(x))
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), atol=1e-12, err_msg=key)
    assert int(ours.num_batches_tracked) == 4
    back = nn.BatchNorm2d(3, momentum=momentum)
    back.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()})
    there = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    there.load_state_dict({key: torch.tensor(value) for key, value in ours.state_dict().items()})
    back.eval(), there.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(back(x), there(torch.tensor(x)).detach().numpy(), atol=1e-12)
    assert int(back.num_batches_tracked) == int(there.num_batches_tracked) == 4


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    layer = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    y = layer(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)


def test_layers_initialise_like_pytorch_bounds():
    cnnlib.seed(3)
    conv = nn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.9 * bound
    assert conv.weight.shape == (16, 8, 3, 3) and conv.bias.shape == (16,)
    assert nn.Linear(10, 4, bias=False).bias is None
    assert nn.Conv2d(4, 4, 3, dtype=np.float32).weight.data.dtype == np.float32


@pytest.mark.parametrize("kind", ["sgd", "sgd_momentum", "adam"])
def test_optimisers_match_torch(kind):
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((3, 4))
    ours = nn.Parameter(w0.copy())
    theirs = torch.tensor(w0.copy(), requires_grad=True)
    if kind == "adam":
        a, b = optim.Adam([ours], lr=0.01, weight_decay=0.1), torch.optim.Adam([theirs], lr=0.01, weight_decay=0.1)
    else:
        momentum = 0.9 if kind == "sgd_momentum" else 0.0
        a = optim.SGD([ours], lr=0.1, momentum=momentum, weight_decay=0.01)
        b = torch.optim.SGD([theirs], lr=0.1, momentum=momentum, weight_decay=0.01)
    for _ in range(5):
        g = rng.standard_normal(w0.shape)
        a.zero_grad(), b.zero_grad()
        ours.grad += g
        theirs.grad = torch.tensor(g)
        a.step(), b.step()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("kind, name", [("SGD", "lr"), ("SGD", "momentum"), ("SGD", "weight_decay"),
                                        ("Adam", "lr"), ("Adam", "eps"), ("Adam", "weight_decay"),
                                        ("Adam", "beta1"), ("Adam", "beta2")])
@pytest.mark.parametrize("value", [-1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 2.0, float("nan")])
def test_optimisers_accept_and_refuse_the_arguments_pytorch_does(kind, name, value):
    """As PyTorch's optimisers, except that a NaN is refused everywhere (PyTorch's SGD takes it)."""
    def make(module, params):
        if name.startswith("beta"):
            betas = (value, 0.999) if name == "beta1" else (0.9, value)
            return getattr(module, kind)(params, lr=0.01, betas=betas)
        return getattr(module, kind)(params, **{"lr": 0.01, name: value})
    try:
        make(torch.optim, [torch.zeros(2, requires_grad=True)])
        assert not np.isnan(value)
    except (ValueError, AssertionError):
        with pytest.raises(ValueError, match={"beta1": r"betas\[0\]", "beta2": r"betas\[1\]"}.get(name, name)):
            make(optim, [nn.Parameter(np.zeros(2))])
    else:
        make(optim, [nn.Parameter(np.zeros(2))])


def test_parameter_names_are_pytorchs_state_dict_keys():
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(2, 3)),
                         nn.BatchNorm2d(3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 3)),
                                 torch.nn.BatchNorm2d(3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()][:4] == ["", "0.", "1.", "2."]


def test_module_bookkeeping():
    cnnlib.seed(5)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    assert model.num_parameters() == 4 * 9 + 4 + 144 * 10 + 10
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias",
                                                        "3.weight", "3.bias"]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and head[0] is model[0]
    state = model.state_dict()
    clone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    clone.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(clone(x), model(x))
    with pytest.raises(ValueError, match="state keys differ"):
        clone.load_state_dict({})
    model.eval()
    assert not model[1].training
    with pytest.raises(TypeError, match="layer 1 is int"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="body gives"):
        nn.Residual(nn.Conv2d(1, 2, 3))(x)
    assert "Conv2d(1, 4, kernel_size=(3, 3))" in repr(model)


def test_batchnorm_backward_follows_the_mode_of_its_forward():
    # The gradient belongs to the forward that ran: a mode switched in between changes nothing.
    rng = np.random.default_rng(7)
    x, dy = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    for training in (True, False):
        ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3, dtype=torch.float64)
        ours.train(training), theirs.train(training)
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt).backward(torch.tensor(dy))
        ours(x)
        ours.train(not training)
        np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), atol=1e-12)


def test_batchnorm_refuses_to_train_on_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(2)(np.ones((1, 2, 1, 1)))
    assert nn.BatchNorm2d(2).eval()(np.ones((1, 2, 1, 1))).shape == (1, 2, 1, 1)


def test_a_layer_runs_once_per_model_and_tied_weights_are_one_parameter():
    # A layer keeps only the input of its last forward, so one used twice would send a wrong
    # gradient back: refused by name. Two layers sharing a Parameter give PyTorch's gradient.
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="Sequential: 2 is 0 again"):
        nn.Sequential(lin, nn.ReLU(), lin)
    with pytest.raises(ValueError, match="Sequential: 1.body is 0 again"):
        nn.Sequential(lin, nn.Residual(lin))
    second = nn.Linear(2, 2)
    second.weight, second.bias = lin.weight, lin.bias
    model = nn.Sequential(lin, nn.Tanh(), second)
    twin = torch.nn.Linear(2, 2, dtype=torch.float64)
    theirs = torch.nn.Sequential(twin, torch.nn.Tanh(), twin)
    with torch.no_grad():
        twin.weight[...], twin.bias[...] = torch.tensor(lin.weight.data), torch.tensor(lin.bias.data)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert model.num_parameters() == 6 and len(model.state_dict()) == len(theirs.state_dict()) == 4
    x = np.random.default_rng(8).standard_normal((3, 2))
    theirs(torch.tensor(x)).sum().backward()
    model.backward(np.ones_like(model(x)))
    np.testing.assert_allclose(lin.weight.grad, twin.weight.grad.numpy(), atol=1e-12)
    before = lin.weight.data.copy()
    optim.SGD(model.parameters(), lr=0.1).step()  # once, though two layers hold it
    np.testing.assert_allclose(lin.weight.data, before - 0.1 * lin.weight.grad)


def test_evaluating_restores_every_modules_previous_mode_even_after_an_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Residual(nn.Sequential(nn.BatchNorm2d(1))))
    model[1].eval()  # mixed modes come back as they were, not as the root's
    before = [m.training for _, m in model.named_modules()]
    with model.evaluating() as same:
        assert same is model and not any(m.training for _, m in model.named_modules())
    assert [m.training for _, m in model.named_modules()] == before
    with pytest.raises(ZeroDivisionError):
        with model.evaluating():
            1 / 0
    assert [m.training for _, m in model.named_modules()] == before


def test_mse_loss_gradient():
    rng = np.random.default_rng(6)
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = losses.MSELoss()
    value = loss(p, t)
    assert np.isclose(value, torch.nn.functional.mse_loss(torch.tensor(p), torch.tensor(t)).item())
    assert relative_error(loss.backward(), numerical_gradient(lambda q: losses.MSELoss()(q, t), p.copy())) < 1e-7


def digits_cnn(dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64, dtype=dtype), nn.ReLU(), nn.Linear(64, 10, dtype=dtype))


def test_small_cnn_reaches_97_percent_on_digits():
    cnnlib.seed(0)
    x_train, y_train, x_test, y_test = data.load_digits()
    model = digits_cnn()
    history = train.fit(model, x_train.astype(np.float32), y_train, optim.Adam(model.parameters(), lr=3e-3),
                        epochs=15, batch_size=32, validation=(x_test.astype(np.float32), y_test), progress=False)
    _, accuracy = train.evaluate(model, x_test.astype(np.float32), y_test)
    assert accuracy >= 0.97, accuracy
    assert history.train_loss[-1] < history.train_loss[0] / 5
    assert len(history.val_accuracy) == 15 and history.val_accuracy[-1] == accuracy


def test_fit_rejects_mismatched_data():
    model = digits_cnn()
    with pytest.raises(ValueError, match="x has 3 samples but y has 2"):
        train.fit(model, np.zeros((3, 1, 8, 8)), np.zeros(2, int), optim.SGD(model.parameters()), progress=False)


def test_fit_without_progress_starts_no_thread():
    import threading
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    before = threading.active_count()
    train.fit(model, np.zeros((3, 1, 2, 2)), np.zeros(3, int), optim.SGD(model.parameters()), progress=False)
    assert threading.active_count() == before


def test_conv_repr_shows_non_default_arguments():
    assert repr(nn.Conv2d(1, 4, 3, padding=1)) == "Conv2d(1, 4, kernel_size=(3, 3), padding=1)"
    assert repr(nn.Conv2d(2, 4, 3, stride=2, groups=2, bias=False)) == \
        "Conv2d(2, 4, kernel_size=(3, 3), stride=2, groups=2, bias=False)"
    assert repr(nn.ConvTranspose2d(2, 4, 4, stride=2, padding=1, output_padding=1)) == \
        "ConvTranspose2d(2, 4, kernel_size=(4, 4), stride=2, padding=1, output_padding=1)"


def test_pool_reprs_are_pytorchs_and_conv_reprs_skip_defaults_given_as_tuples():
    for args, kwargs in [((2,), {}), ((3, 2, 1), {}), ((3, 1, 1), dict(ceil_mode=True))]:
        assert repr(nn.MaxPool2d(*args, **kwargs)) == repr(torch.nn.MaxPool2d(*args, **kwargs))
        assert repr(nn.AvgPool2d(*args, **kwargs)) == repr(torch.nn.AvgPool2d(*args, **kwargs))
    assert repr(nn.Conv2d(1, 4, 3, padding=(0, 0), dilation=(1, 1))) == "Conv2d(1, 4, kernel_size=(3, 3))"
    assert repr(nn.ConvTranspose2d(1, 4, 3, output_padding=(0, 0))) == "ConvTranspose2d(1, 4, kernel_size=(3, 3))"


def test_nested_repr_indents_like_pytorch():
    block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1),
                          nn.Residual(block),
                          nn.Residual(nn.Conv2d(4, 8, 1), shortcut=nn.Conv2d(4, 8, 1, bias=False)),
                          nn.Flatten())
    assert repr(model) == """\
Sequential(
  (0): Conv2d(1, 4, kernel_size=(3, 3), padding=1)
  (1): Residual(
    (body): Sequential(
      (0): Conv2d(4, 4, kernel_size=(3, 3), padding=1)
      (1): ReLU()
    )
  )
  (2): Residual(
    (body): Conv2d(4, 8, kernel_size=(1, 1))
    (shortcut): Conv2d(4, 8, kernel_size=(1, 1), bias=False)
  )
  (3): Flatten()
)"""
    # The same layout as PyTorch's for the same nesting (leaf lines aside, which name their defaults).
    twin = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Sequential(torch.nn.ReLU())))
    mine = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Sequential(nn.ReLU())))
    assert repr(mine) == repr(twin)
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential()) == "Sequential()"


# The engine's design document and its dev dependencies have no test file of their own; they are
# checked here, next to the layers.
ROOT = Path(__file__).resolve().parents[1]


def test_design_document_exists_where_functional_points_and_names_every_module():
    import re

    import cnnlib.functional

    pointer = re.search(r"see (\S+DESIGN\.md)", cnnlib.functional.__doc__).group(1)
    design = (ROOT / pointer).read_text()
    assert "## The functional contract" in design
    # The first cell of each row of the module table: `optim.py`, `nn/`, ...
    named = {m for cell in re.findall(r"^\| (.+?) \|", design, flags=re.M)
             for m in re.findall(r"`(\w+)(?:\.py|/)`", cell)}
    modules = {p.stem for p in (ROOT / "cnnlib").glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name for p in (ROOT / "cnnlib").glob("*/__init__.py")}
    assert modules <= named, f"modules missing from cnnlib/DESIGN.md: {sorted(modules - named)}"
    # Every backward the contract names by example exists (``op_backward`` is the generic form).
    for name in set(re.findall(r"`(\w+_backward)\(", design)) - {"op_backward"}:
        assert hasattr(cnnlib.functional, name), name


def test_every_declared_dev_library_is_imported_somewhere():
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    declared = {re.match(r"[\w-]+", d).group(0).lower() for d in dev}
    # Libraries that code imports (tools and plugins such as pytest-xdist or jupyter-book are not).
    libraries = {"hypothesis": "hypothesis", "scipy": "scipy", "torch": "torch", "cloudpickle": "cloudpickle",
                 "nbformat": "nbformat", "nbclient": "nbclient", "nbgrader": "nbgrader"}
    sources = [p.read_text(errors="replace") for folder in ("cnnlib", "grader", "tests")
               for p in (ROOT / folder).rglob("*.py")]
    for dist, module in libraries.items():
        if dist in declared:
            pattern = re.compile(rf"^\s*(import|from) {module}\b", re.M)
            assert any(pattern.search(s) for s in sources), f"{dist} is a dev dependency but nothing imports it"


def test_fit_redraws_its_bar_a_handful_of_times_off_a_terminal(capsys):
    # A build log or a notebook's captured stream keeps every redraw as a line: 400 batches
    # must not write 400 of them.
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = np.random.default_rng(0).random((640, 1, 2, 2)), np.arange(640) % 2
    train.fit(model, x, y, optim.SGD(model.parameters(), lr=0.1), epochs=5, batch_size=8, rng=0)
    redraws = [line for line in capsys.readouterr().err.split("\r") if "batch" in line]
    assert 1 <= len(redraws) <= 8, len(redraws)

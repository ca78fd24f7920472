"""Planted submissions of a5-train-a-cnn, made from the released notebook.

Each variant fills the solution cells (grade ids ``build_model``, ``train_model``,
``vgg_receptive_field``, ``answer_stacks``). ``EXPECTED`` gives the autograded
score (out of ``FULL``) and status. Every variant trains a network twice (the
student's own cell and the hidden test), a few seconds each.
"""
from __future__ import annotations

from ._writer import writers


ASSIGNMENT = "a5-train-a-cnn"

BUILD = '''
def build_model():
    """Two convolutions, one pooling, two dense layers."""
    f = np.float32
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, dtype=f), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1, dtype=f), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(512, 64, dtype=f), nn.ReLU(), nn.Linear(64, 10, dtype=f))
'''
TRAIN = '''
def train_model(model, x_train, y_train):
    """Adam."""
    fit(model, x_train.astype(np.float32), y_train, Adam(model.parameters(), lr=2e-3),
        epochs=10, batch_size=32, progress=False)
    return model
'''
# a LeNet-like net trained with SGD and momentum, with its own training loop
BUILD_LENET = '''
def build_model():
    """Conv-pool-conv, one dense layer."""
    f = np.float32
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, dtype=f), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, dtype=f), nn.ReLU(),
                         nn.Flatten(), nn.Linear(256, 10, dtype=f))
'''
TRAIN_SGD_LOOP = '''
from cnnlib.losses import CrossEntropyLoss
def train_model(model, x_train, y_train):
    """Plain loop with SGD and momentum; trains in place, returns nothing."""
    x = x_train.astype(np.float32)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for epoch in range(15):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            idx = order[i:i + 32]
            loss(model(x[idx]), y_train[idx])
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
'''
# far too small and trained for one epoch
BUILD_WEAK = '''
def build_model():
    """Tiny."""
    return nn.Sequential(nn.Conv2d(1, 1, 3, dtype=np.float32), nn.Flatten(), nn.Linear(36, 10, dtype=np.float32))
'''
TRAIN_WEAK = '''
def train_model(model, x_train, y_train):
    """One epoch, small steps."""
    fit(model, x_train.astype(np.float32), y_train, SGD(model.parameters(), lr=0.01), epochs=1, progress=False)
    return model
'''
# no convolution at all
BUILD_MLP = '''
def build_model():
    """Dense only."""
    f = np.float32
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128, dtype=f), nn.ReLU(), nn.Linear(128, 10, dtype=f))
'''
VGG = '''
rf_conv5_3, jump_conv5_3, rf_pool5, jump_pool5 = 196, 16, 212, 32
'''
# adds k - 1 per layer, forgetting the jump
VGG_NO_JUMP = '''
rf_conv5_3, jump_conv5_3, rf_pool5, jump_pool5 = 1 + 13 * 2 + 4, 16, 1 + 13 * 2 + 5, 32
'''
ANSWER = "Both see 7x7 pixels; the stack has 27 C^2 weights instead of 49 C^2 and three ReLUs."


def _v(**changes):
    return {"build_model": BUILD, "train_model": TRAIN, "vgg_receptive_field": VGG, **changes}


VARIANTS = {
    "correct": _v(),
    "correct-lenet-sgd": _v(build_model=BUILD_LENET, train_model=TRAIN_SGD_LOOP),
    "weak": _v(build_model=BUILD_WEAK, train_model=TRAIN_WEAK),
    "no-convolution": _v(build_model=BUILD_MLP),
    "vgg-no-jump": _v(vgg_receptive_field=VGG_NO_JUMP),
    "stub": {},
}

# points: build_model 1, trained model 1, hidden training >= 90% 2, >= 95% 3; VGG conv5_3 2,
# pool5 1 (+ 2 graded by hand)
FULL = 10
EXPECTED = {
    "correct": (FULL, "graded"),
    "correct-lenet-sgd": (FULL, "graded"),
    "weak": (FULL - 1 - 2 - 3, "graded"),            # build_model's structure is fine
    "no-convolution": (FULL - 1 - 2 - 3, "graded"),  # accurate, but not a CNN
    "vgg-no-jump": (FULL - 2 - 1, "graded"),
    "stub": (0, "graded"),
}


make, make_class = writers(ASSIGNMENT, VARIANTS, "answer_stacks", ANSWER)

"""Notebook 02, The standard (shallow) autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import functools

import torch
from torch import nn

from course import models, training
from course.exercises.core import Exercise, _Wrong, _add, _brief, _call, _described, _on_cpu, _same, _tensor
from course.exercises.fitting import (
    _build, _device_probe, _missing_gradients, _module_class, _probe, _training_mse)
from course.exercises.inputs import _real


# The shallow model's training check: as the course trains (Adam, lr 1e-3, batch 64), a few hundred steps.
_SHALLOW_HIDDEN, _SHALLOW_STEPS, _SHALLOW_TOLERANCE = 64, 300, 1.5


@functools.lru_cache(maxsize=None)
def _reference_shallow_training() -> tuple[float, float]:
    torch.manual_seed(0)
    return _training_mse(models.ShallowAutoencoder(_SHALLOW_HIDDEN), _SHALLOW_STEPS, 64, 1e-3, images=False)


def _linear_layers(model: nn.Module) -> str:
    layers = [f"Linear({m.in_features}, {m.out_features}{', bias=False' if m.bias is None else ''})"
              for m in model.modules() if isinstance(m, nn.Linear)]
    return ", ".join(layers) if layers else "none"


def _check_shallow_autoencoder(answer) -> str:
    cls = _module_class(answer, "ShallowAutoencoder")
    _device_probe("model(x)", _build(cls, "ShallowAutoencoder(hidden_dim=32)", hidden_dim=32), _real(16))
    with _on_cpu():
        return _check_shallow_autoencoder_on_cpu(cls)


def _check_shallow_autoencoder_on_cpu(cls: type) -> str:
    h = 32
    model = _build(cls, f"ShallowAutoencoder(hidden_dim={h})", hidden_dim=h)
    x = _real(16)
    _probe(model, x)
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            raise _Wrong(f"your class has no {method} method: write encode(x) -> z, decode(z) -> x_hat and "
                         "forward(x) -> (z, x_hat)")
    count = sum(p.numel() for p in model.parameters())
    expected = 784 * h + h + h * 784 + 784
    if count == 0:
        raise _Wrong("your model has no parameters: layers kept in a Python list or dict, or made inside forward, "
                     "are invisible to PyTorch; assign them as attributes in __init__ "
                     "(self.encoder = nn.Sequential(...))")
    if count != expected:
        missing = {h: "the encoder's Linear has no bias", 784: "the decoder's Linear has no bias",
                   h + 784: "neither Linear has a bias"}.get(expected - count)
        if missing:
            raise _Wrong(f"{missing} (bias=False?): a 784-{h}-784 autoencoder has 784*{h} + {h} + {h}*784 + 784 = "
                         f"{expected:,} parameters, yours {count:,}")
        raise _Wrong(f"wrong layer sizes: with hidden_dim={h} your model has {count:,} parameters, a 784-{h}-784 "
                     f"autoencoder {expected:,}; your layers: {_linear_layers(model)}; expected Linear(784, {h}) "
                     f"then Linear({h}, 784)")
    out = _call(model, x, what="model(x) with x of shape (16, 784)")
    if isinstance(out, torch.Tensor):
        raise _Wrong(f"forward returned one tensor (shape {tuple(out.shape)}); return the pair (z, x_hat): "
                     "the code and the reconstruction, in that order")
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not all(isinstance(t, torch.Tensor) for t in out):
        raise _Wrong(f"forward should return a pair of tensors (z, x_hat), it returned {_described(out)}")
    z, x_hat = out
    if z.shape == (16, 784) and x_hat.shape == (16, h):
        raise _Wrong("forward returned (x_hat, z): swap them, forward returns (z, x_hat), the code first")
    if z.shape != (16, h) or x_hat.shape != (16, 784):
        raise _Wrong(f"for x of shape (16, 784) forward returned z {tuple(z.shape)} and x_hat {tuple(x_hat.shape)}; "
                     f"expected z (16, {h}) and x_hat (16, 784)")
    z_alone = _tensor(_call(model.encode, x, what="model.encode(x)"), "model.encode(x)")
    x_hat_alone = _tensor(_call(model.decode, z_alone, what="model.decode(z)"), "model.decode(z)")
    if not (_same(z_alone, z) and _same(x_hat_alone, x_hat)):
        raise _Wrong("forward(x) should return (encode(x), decode(encode(x))); yours returns something else")
    if bool((z < 0).any()):
        raise _Wrong(f"the code z has negative values ({float(z.detach().min()):.3f}): "
                     "which activation after the first Linear never gives a negative number?")
    if not bool((z == 0).any()):
        raise _Wrong("no entry of z is exactly 0, as ReLU units give for about half the inputs at first: "
                     "which activation on the hidden layer gives exact zeros?")
    with torch.no_grad():
        far = model.decode(100 * z)  # large codes: only a squashing output stays in [0, 1]
    for images in (x_hat.detach(), far):
        if float(images.min()) < 0 or float(images.max()) > 1:
            raise _Wrong(f"x_hat runs from {float(images.min()):.3f} to {float(images.max()):.3f}, outside [0, 1] "
                         "where pixels live: which activation maps any number into (0, 1), and where must it go?")
    if bool((x_hat == 0).any()):
        raise _Wrong("some outputs are exactly 0, which a sigmoid never gives: what ends your decoder, and is "
                     "it the activation the statement asks for?")

    missing = _missing_gradients(model, training.mse_loss(x_hat, x))
    if missing:
        raise _Wrong(f"no gradient reaches {', '.join(missing)}: something in forward cuts the graph "
                     "(.detach(), torch.no_grad(), .item(), .data or numpy)")

    torch.manual_seed(0)
    model = _build(cls, f"ShallowAutoencoder(hidden_dim={_SHALLOW_HIDDEN})", hidden_dim=_SHALLOW_HIDDEN)
    try:
        before, after = _training_mse(model, _SHALLOW_STEPS, 64, 1e-3, images=False)
    except Exception as error:
        raise _Wrong(f"training your model raised {_brief(error)}") from error
    _, reference_after = _reference_shallow_training()
    if not after <= _SHALLOW_TOLERANCE * reference_after:
        raise _Wrong(f"your model does not learn as it should: after {_SHALLOW_STEPS} Adam steps its held-out MSE "
                     f"went from {before:.4f} to {after:.4f}, the reference's to {reference_after:.4f}")
    return (f"encode, decode and forward -> (z, x_hat) with the right shapes, {count:,} parameters for "
            f"hidden_dim={h}, ReLU code, sigmoid output; {_SHALLOW_STEPS} Adam steps lower its MSE to "
            f"{after:.4f} (the reference's: {reference_after:.4f})")


class ShallowAutoencoder(nn.Module):
    """One hidden layer of ReLU units: 784-hidden_dim-784, with a sigmoid output."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.encoder = nn.Sequential(nn.Linear(784, hidden_dim), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(hidden_dim, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)  # (B, 784) -> (B, hidden_dim)

    def decode(self, z):
        return self.decoder(z)  # (B, hidden_dim) -> (B, 784), pixels in (0, 1)

    def forward(self, x):
        z = self.encode(x)
        return z, self.decode(z)


_add(Exercise(
    "02.ShallowAutoencoder", "02_standard_autoencoder",
    "Write the autoencoder with one hidden layer of hidden_dim ReLU units as a PyTorch module whose decoder gives "
    "pixels between 0 and 1 and whose forward returns the code and the reconstruction, in that order.",
    "class ShallowAutoencoder(nn.Module): __init__(self, hidden_dim); encode(x) -> z (B, hidden_dim); "
    "decode(z) -> x_hat (B, 784); forward(x) -> (z, x_hat)",
    15, models.ShallowAutoencoder, _check_shallow_autoencoder, shown=ShallowAutoencoder))


def encoder_filters(model):
    """Each hidden unit's 784 input weights as a 28x28 image: (hidden_dim, 28, 28)."""
    weight = model.encoder[0].weight.detach()  # (hidden_dim, 784): row i holds unit i's input weights
    return weight.view(weight.shape[0], 28, 28)  # each row, read row by row as the pixels were flattened


class _SigmoidShallow(nn.Module):
    """Not the course's class: sigmoid units, no hidden_dim or filters; only model.encoder[0] is a Linear(784, h)."""

    def __init__(self, units: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, units), nn.Sigmoid())
        self.decoder = nn.Sequential(nn.Linear(units, 784), nn.Sigmoid())

    def forward(self, x):
        z = self.encoder(x)
        return z, self.decoder(z)


_FILTERS_BIAS_HINT = ("a filter is the unit's 784 input weights only: leave the bias out "
                      "(model.encoder[0].weight, not its bias)")


def _filters_crash_hint(error: BaseException, units: int) -> str | None:
    """The hint for a typical crash of encoder_filters, or None."""
    message = str(error)
    if isinstance(error, AttributeError) and ("'hidden_dim'" in message or "'filters'" in message):
        return ("this model has no .hidden_dim or .filters (only the course's class has them): take the number of "
                "units from the weight itself; model.encoder[0] is all you may rely on")
    if isinstance(error, AttributeError) and "'Sequential' object has no attribute 'weight'" in message:
        return ("model.encoder is an nn.Sequential (the Linear, then its activation): the Linear is "
                "model.encoder[0], its weights model.encoder[0].weight")
    if f"input of size {units * 785}" in message:
        return _FILTERS_BIAS_HINT
    return None


def _check_encoder_filters(answer) -> str:
    torch.manual_seed(0)
    _device_probe("encoder_filters(model)", answer, models.ShallowAutoencoder(16))
    with _on_cpu():
        return _check_encoder_filters_on_cpu(answer)


def _check_encoder_filters_on_cpu(answer) -> str:
    torch.manual_seed(0)
    cases = (("the course's ShallowAutoencoder(hidden_dim=16)", models.ShallowAutoencoder(16)),
             ("a model of another class, model.encoder[0] a Linear(784, 10)", _SigmoidShallow(10)))
    for label, model in cases:
        weight, bias = model.encoder[0].weight.detach().clone(), model.encoder[0].bias.detach().clone()
        h = weight.shape[0]
        expected = weight.view(h, 28, 28)
        saved = [p.detach().clone() for p in model.parameters()]
        what = f"encoder_filters(model) for {label}"
        try:
            out = _tensor(_call(answer, model, what=what), what)
        except _Wrong as wrong:
            hint = None if wrong.__cause__ is None else _filters_crash_hint(wrong.__cause__, h)
            if hint is None:
                raise
            raise _Wrong(f"{what} failed: {hint}") from wrong
        if not all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), saved)):
            raise _Wrong("your function changed the model's weights (an in-place operation such as .div_() on "
                         "them?): compute on a copy (weight / ..., not weight.div_(...)), the model still needs them")
        shape = tuple(out.shape)
        if shape != (h, 28, 28):
            shape_hints = {
                (h, 784): "the weights flat, one row of 784 per unit: each unit's row must become one 28x28 "
                          "image",
                (784, h): "one column per unit: a transposed weight, or the decoder's? Print "
                          "model.encoder[0].weight.shape: along which axis are the units?",
                (28, 28, h): f"the units come first, one 28x28 image each, ({h}, 28, 28); in a shape "
                             f"(28, 28, {h}) each 28x28 slice mixes the weights of several units",
                (h, 785): _FILTERS_BIAS_HINT,
            }
            raise _Wrong(f"{what} returned shape {shape}: {shape_hints.get(shape, f'expected ({h}, 28, 28)')}")
        values = out.detach().to(weight.dtype)
        if not _same(values, expected, rtol=0, atol=0):
            sorted_values = values.flatten().sort().values
            decoder_weights = [m.weight.detach().flatten().sort().values for m in model.decoder.modules()
                               if isinstance(m, nn.Linear)]
            if _same(values, expected.transpose(1, 2), rtol=0, atol=0):
                raise _Wrong("the rows and columns of each image are swapped (a transpose): the images were "
                             "flattened row by row, and a plain change of shape already reads the 784 weights "
                             "back in that order. What did your transpose add?")
            if torch.equal(sorted_values, weight.flatten().sort().values):
                raise _Wrong("each image mixes the weights of several units (a reshape of the transposed weight, "
                             "or a view to (28, 28, h)?). Along which axis of the weight do unit i's 784 weights lie, "
                             "and does your image i, flattened again, equal them?")
            if any(torch.equal(sorted_values, w) for w in decoder_weights if w.numel() == values.numel()):
                raise _Wrong("these are the decoder's weights: the filters are the encoder's, model.encoder[0]."
                             "weight (h, 784), the pattern each hidden unit responds to")
            if _same(values, (weight + bias[:, None]).view(h, 28, 28)):
                raise _Wrong(_FILTERS_BIAS_HINT)
            raise _Wrong(f"for {label} your images are not the encoder's weights as they are: a filter shows "
                         "each unit's 784 weights unchanged, only arranged as 28x28, not scaled or normalised")
        if out.requires_grad:
            raise _Wrong("your filters are still part of the graph of gradients (requires_grad=True): they are a "
                         "picture to plot, not a parameter to train. What cuts a tensor from the graph?")
    return ("each hidden unit's 784 input weights as a 28x28 image, (h, 28, 28), detached, for the course's "
            "ShallowAutoencoder and for another model with a Linear(784, h) as model.encoder[0]")


_add(Exercise(
    "02.encoder_filters", "02_standard_autoencoder",
    "Return each hidden unit's 784 input weights, from the first encoder layer, as a 28 by 28 image, detached from the model, for any model whose first encoder layer maps 784 pixels to hidden_dim units.",
    "encoder_filters(model) -> (hidden_dim, 28, 28): model.encoder[0] a Linear(784, hidden_dim)",
    5, encoder_filters, _check_encoder_filters))

"""Notebook 06, The convolutional autoencoder: its exercises, their checks and references."""
from __future__ import annotations

import functools
import inspect
import math
import numbers

import torch
from torch import nn

from course import models, training
from course.exercises.core import Exercise, _Wrong, _add, _brief, _call, _described, _on_cpu, _tensor
from course.exercises.fitting import (
    _build, _device_probe, _leaf_sizes, _missing_gradients, _module_class, _probe, _training_mse)
from course.exercises.inputs import _generator, _real


# (size, kernel, stride, padding): the course's encoder and pooling, and strided, padded layers.
_CONV_CASES = [(28, 3, 1, 0), (26, 2, 2, 0), (13, 3, 1, 0), (11, 2, 2, 0), (5, 3, 1, 0), (3, 2, 2, 0),
               (28, 3, 1, 1), (28, 5, 2, 2), (7, 3, 2, 1), (32, 4, 3, 0), (14, 3, 2, 1)]


def _plain_int(value, what: str) -> int:
    """value as a plain int when it is an int (or numpy's); a subclass's == is never consulted, so it is a hint."""
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__module__ == "numpy":
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Wrong(f"{what} gave a {type(value).__name__}, a subclass of int; return a plain Python int")
    shown = f"{value!r} ({type(value).__name__})" if type(value) in (float, bool, str) else _described(value)
    raise _Wrong(f"{what} gave {shown}; return a plain Python int: a size counts whole positions")


def _check_conv_output_size(conv_output_size) -> str:
    what = "conv_output_size(28, 3) (stride and padding left at their defaults)"
    try:
        _call(conv_output_size, 28, 3, what=what)
    except _Wrong as wrong:
        raise _Wrong(f"{wrong}; give stride a default of 1 and padding a default of 0") from wrong
    calls = [f"conv_output_size({n}, {k}, stride={s}, padding={p})" for n, k, s, p in _CONV_CASES]
    values = [_call(conv_output_size, n, k, stride=s, padding=p, what=what)
              for (n, k, s, p), what in zip(_CONV_CASES, calls)]
    for value, what in zip(values, calls):
        if type(value) is float and math.isnan(value):
            raise _Wrong(f"{what} gave NaN (not a number): an undefined step such as 0 / 0 is in your computation")
        if type(value) is float and not value.is_integer():
            raise _Wrong(f"{what} gave {value}: a size is a whole number: a window that does not fit is no position; which division drops it?")
    values = [_plain_int(value, what) for value, what in zip(values, calls)]
    expected = [models.conv_output_size(*case) for case in _CONV_CASES]
    if values == expected:
        return f"the output side as an int, on {len(_CONV_CASES)} layer shapes"
    variants = [
        (lambda n, k, s, p: (n + 2 * p - k) // s,
         "you forgot the + 1: you are one position short; a kernel exactly as wide as the input fits "
         "once and gives 1 output: what does yours give?"),
        (lambda n, k, s, p: (n + p - k) // s + 1, "padding is added on both sides: how many pixels does it add to the length of a side?"),
        (lambda n, k, s, p: n + 2 * p - k + 1, "you ignored the stride: with stride 2 the window skips every other position; how many are left?"),
        (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "round down, not up: a window that does not fit is dropped"),
    ]
    wrong = next(i for i, (value, right) in enumerate(zip(values, expected)) if value != right)
    (n, k, s, p), shown = _CONV_CASES[wrong], f"{calls[wrong]} gave {values[wrong]}, expected {expected[wrong]}"
    for rule, hint in variants:
        if values == [rule(*case) for case in _CONV_CASES]:
            raise _Wrong(f"{shown}: {hint}")
    raise _Wrong(f"{shown}: list by hand the starts of the window of {k} along the padded side of {n} + 2 * {p} "
                 f"pixels, {s} apart, up to the last one at which the window still fits")


def transposed_output_size(size, kernel, stride=1, padding=0, output_padding=0):
    """Side of a transposed convolution's output for a size x size input, as an int."""
    # the input values are spread stride pixels apart, each paints a kernel-wide stamp, padding trims both borders
    return (size - 1) * stride - 2 * padding + kernel + output_padding


# (size, kernel, stride, padding, output_padding): the code-only decoder's layers and other shapes.
_TRANSPOSED_CASES = [(1, 3, 1, 0, 0), (3, 3, 2, 0, 0), (7, 3, 2, 1, 1), (14, 3, 2, 1, 1), (7, 4, 2, 1, 0),
                     (5, 5, 3, 2, 2), (2, 2, 2, 0, 0), (10, 3, 1, 1, 0), (4, 3, 3, 1, 2)]


def _transposed_layer_size(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    """The side PyTorch's own nn.ConvTranspose2d gives: the ground truth, not a copy of the equation."""
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, output_padding=output_padding)
    with torch.no_grad():
        return int(layer(torch.zeros(1, 1, size, size)).shape[-1])


def _check_transposed_output_size(transposed_output_size) -> str:
    what = "transposed_output_size(7, 3) (stride, padding and output_padding left at their defaults)"
    try:
        _call(transposed_output_size, 7, 3, what=what)
    except _Wrong as wrong:
        raise _Wrong(f"{wrong}; give stride a default of 1, padding and output_padding defaults of 0") from wrong
    calls = [f"transposed_output_size({n}, {k}, stride={s}, padding={p}, output_padding={o})"
             for n, k, s, p, o in _TRANSPOSED_CASES]
    values = [_plain_int(_call(transposed_output_size, n, k, stride=s, padding=p, output_padding=o, what=what), what)
              for (n, k, s, p, o), what in zip(_TRANSPOSED_CASES, calls)]
    expected = [_transposed_layer_size(*case) for case in _TRANSPOSED_CASES]
    if values == expected:
        return f"the output side as an int on {len(_TRANSPOSED_CASES)} layer shapes, 7 to 14 among them"
    variants = [
        (lambda n, k, s, p, o: (n - 1) * s - 2 * p + k, "output_padding is added to the result (one more row and "
                                                        "column on one side)"),
        (lambda n, k, s, p, o: (n - 1) * s - p + k + o, "padding trims the result at both borders of a side: how many rows does it take away?"),
        (lambda n, k, s, p, o: n * s - 2 * p + k + o, "the stamps of n inputs start stride pixels apart, so the "
                                                      "last starts (n - 1) strides after the first"),
        (lambda n, k, s, p, o: (n - 1) * s + 2 * p + k + o, "padding trims the result: it takes rows away, it does not add them"),
        (lambda n, k, s, p, o: (n + 2 * p - k) // s + 1, "that is a convolution's size (it shrinks); a transposed "
                                                        "convolution grows the input"),
    ]
    wrong = next(i for i, (value, right) in enumerate(zip(values, expected)) if value != right)
    shown = f"{calls[wrong]} gave {values[wrong]}, expected {expected[wrong]}"
    for rule, hint in variants:
        if values == [rule(*case) for case in _TRANSPOSED_CASES]:
            raise _Wrong(f"{shown}: {hint}")
    raise _Wrong(f"{shown}: look at the size equation above the exercise again")


# The code-only decoder's training check: through the course's conv encoder, a short seeded run.
_DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, _DECODER_TOLERANCE = 120, 32, 3e-3, 1.5


@functools.lru_cache(maxsize=None)
def _reference_decoder_training() -> tuple[float, float]:
    torch.manual_seed(0)
    model = models.ConvCodeAutoencoder(decoder=models.CodeOnlyDecoder())
    return _training_mse(model, _DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, images=True)


def _transposed_made_in_forward(decoder: nn.Module) -> bool:
    """Whether decoding runs an nn.ConvTranspose2d that is not among the decoder's modules (made in forward)."""
    own, strangers = set(map(id, decoder.modules())), []

    def hook(module, inputs, output):
        if isinstance(module, nn.ConvTranspose2d) and id(module) not in own:
            strangers.append(module)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad():
            decoder(torch.randn(2, 16, 1, 1, generator=_generator(4)))
    except Exception:
        pass
    finally:
        handle.remove()
    return bool(strangers)


def _affine_before_sigmoid(decoder: nn.Module, z: torch.Tensor) -> bool:
    """Whether the logits under the final sigmoid are an affine function of the code: f(a) + f(b) = f(a + b) + f(0)
    for two codes a, b, as no ReLU (or other nonlinearity) between the layers gives. In eval mode, one code at a time."""
    a, b = 0.5 * z[:1], 0.5 * z[1:2]
    training_mode = decoder.training
    decoder.eval()
    try:
        with torch.no_grad():
            f = [torch.logit(decoder(code).double().clamp(1e-7, 1 - 1e-7)) for code in (a, b, a + b, 0 * a)]
    except Exception:
        return False
    finally:
        decoder.train(training_mode)
    scale = float((f[0] - f[3]).abs().max() + (f[1] - f[3]).abs().max())
    return scale > 0 and float((f[0] + f[1] - f[2] - f[3]).abs().max()) < 1e-3 * scale


def _check_code_only_decoder(answer) -> str:
    cls = _module_class(answer, "CodeOnlyDecoder")
    _device_probe("decoding a (2, 16, 1, 1) code", _build(cls, "CodeOnlyDecoder()"), torch.randn(2, 16, 1, 1))
    with _on_cpu():
        return _check_code_only_decoder_on_cpu(cls)


def _check_code_only_decoder_on_cpu(cls: type) -> str:
    decoder = _build(cls, "CodeOnlyDecoder(channels=(8, 16, 16))", channels=(8, 16, 16))
    _probe(decoder, torch.randn(2, 16, 1, 1))
    layers = list(decoder.modules())
    if any(isinstance(m, nn.MaxUnpool2d) for m in layers):
        raise _Wrong("your decoder unpools (nn.MaxUnpool2d), which needs the encoder's pooling indices; this decoder "
                     "sees only the code: grow it with strided nn.ConvTranspose2d layers")
    if not any(isinstance(m, nn.ConvTranspose2d) for m in layers):
        if _transposed_made_in_forward(decoder):
            raise _Wrong("your decoder's nn.ConvTranspose2d layers are made inside forward: PyTorch never sees them "
                         "(.parameters() finds none, so nothing is trained, and each call draws new weights); "
                         "create them in __init__ as attributes of self (or in an nn.Sequential)")
        raise _Wrong("your decoder has no nn.ConvTranspose2d: grow the 1x1 code to 28x28 with transposed "
                     "convolutions (the notebook draws their kernels)")
    required = [p for p in inspect.signature(decoder.forward).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1:
        raise _Wrong(f"forward takes {', '.join(p.name for p in required)}; it must take only the code z "
                     "(no pooling indices or sizes)")
    shape_hint = ("a ConvTranspose2d turns size n into (n - 1) * stride - 2 * padding + kernel + output_padding")
    for batch in (1, 4):  # the last, a batch of 4, is checked further below
        z = torch.randn(batch, 16, 1, 1, generator=_generator(batch))
        what = f"decoding a ({batch}, 16, 1, 1) code"
        try:
            out = decoder(z)
        except NotImplementedError:
            raise
        except Exception as error:
            raise _Wrong(f"{what} raised {_brief(error)}; sizes after each layer: {_leaf_sizes(decoder, z)}") from error
        out = _tensor(out, what).detach()
        if out.shape != (batch, 1, 28, 28):
            raise _Wrong(f"{what} gave shape {tuple(out.shape)}, expected ({batch}, 1, 28, 28); sizes after each "
                         f"layer: {_leaf_sizes(decoder, z)} ({shape_hint})")
    with torch.no_grad():
        far = decoder(100 * z)  # large codes: only a squashing output stays in [0, 1]
    for images in (out, far):
        if float(images.min()) < 0 or float(images.max()) > 1:
            raise _Wrong(f"your images run from {float(images.min()):.3f} to {float(images.max()):.3f}, outside "
                         "[0, 1]: end the decoder with a sigmoid")
    if bool((out == 0).any()):
        raise _Wrong("some pixels are exactly 0, which a sigmoid never gives: what ends your decoder, a ReLU "
                     "or a clamp?")
    z = torch.randn(4, 16, 1, 1, generator=_generator(5))
    with torch.no_grad():
        images = decoder(z)
        other = decoder(torch.randn(4, 16, 1, 1, generator=_generator(6)))
    if float((images - other).abs().max()) < 1e-6 or float((images - images[0]).abs().max()) < 1e-6:
        raise _Wrong("your images do not depend on the code: different codes must decode to different images")
    if _affine_before_sigmoid(decoder, z):
        raise _Wrong("there is no nonlinearity between your transposed convolutions: before the sigmoid your decoder "
                     "is an affine function of the code (f(a) + f(b) = f(a + b) + f(0) on two codes), and a stack of "
                     "linear layers is no more than one linear layer; the statement asks for a ReLU between the "
                     "layers: where is yours?")
    if not any(True for _ in decoder.parameters()):
        raise _Wrong("your decoder has no parameters: layers made inside forward, or kept in a Python list, are "
                     "invisible to PyTorch; create them in __init__ as attributes (or use nn.Sequential)")
    target = _real(4).view(-1, 1, 28, 28)
    missing = _missing_gradients(decoder, training.mse_loss(decoder(z), target))
    if missing:
        raise _Wrong(f"no gradient reaches {', '.join(missing)}: something in forward cuts the graph "
                     "(.detach(), torch.no_grad() or .data)")
    small = _build(cls, "CodeOnlyDecoder(channels=(4, 8, 12))", channels=(4, 8, 12))
    z_small = torch.randn(2, 12, 1, 1, generator=_generator(7))
    try:
        small_shape = tuple(small(z_small).shape)
    except NotImplementedError:
        raise
    except Exception as error:
        small_shape = _brief(error)
    if small_shape != (2, 1, 28, 28):
        raise _Wrong(f"with channels=(4, 8, 12) decoding a (2, 12, 1, 1) code gave {small_shape}: build the layers "
                     "from channels (c1, c2, c3 = channels; the code has c3 channels), not from fixed numbers")

    torch.manual_seed(0)
    decoder = _build(cls, "CodeOnlyDecoder(channels=(8, 16, 16))", channels=(8, 16, 16))
    model = models.ConvCodeAutoencoder(decoder=decoder)
    try:
        before, after = _training_mse(model, _DECODER_STEPS, _DECODER_BATCH, _DECODER_LR, images=True)
    except Exception as error:
        raise _Wrong(f"training the conv encoder with your decoder raised {_brief(error)}") from error
    _, reference_after = _reference_decoder_training()
    if not after <= _DECODER_TOLERANCE * reference_after:
        with torch.no_grad():
            darkest = float(decoder(torch.randn(64, 16, 1, 1, generator=_generator(8))).min())
        if darkest >= 0.5:  # a ReLU (or any non-negative layer) right before the sigmoid: no pixel can be dark
            raise _Wrong(f"your decoder does not learn: after {_DECODER_STEPS} Adam steps no pixel it draws goes below "
                         f"0.5 (the darkest is {darkest:.3f}), so the black background is out of reach; what reaches "
                         "your sigmoid is never negative: what sits right before it?")
        raise _Wrong(f"your decoder does not learn as it should: after {_DECODER_STEPS} Adam steps through the "
                     f"course's conv encoder the held-out MSE went from {before:.4f} to {after:.4f}, the "
                     f"reference's to {reference_after:.4f}")
    return (f"(B, 16, 1, 1) codes to (B, 1, 28, 28) images in (0, 1) from the code alone, with transposed "
            f"convolutions; {_DECODER_STEPS} Adam steps through the conv encoder lower the MSE to {after:.4f} "
            f"(the reference's: {reference_after:.4f})")


class CodeOnlyDecoder(nn.Sequential):
    """Grows a (B, c3, 1, 1) code to a (B, 1, 28, 28) image with transposed convolutions, from the code alone."""

    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(
            nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # 1 -> 3
            nn.ConvTranspose2d(c2, c2, 3, stride=2), nn.ReLU(),  # 3 -> 7
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 14 -> 28
        )


_add(Exercise(
    "06.conv_output_size", "06_convolutional_autoencoder",
    "Compute the side of a convolution's (or a pooling layer's) output from the side of its input, its kernel, its "
    "stride and its padding.",
    "conv_output_size(size, kernel, stride=1, padding=0) -> int",
    5, models.conv_output_size, _check_conv_output_size))

_add(Exercise(
    "06.transposed_output_size", "06_convolutional_autoencoder",
    "Compute the side of a transposed convolution's output from the side of its input, its kernel, its stride, "
    "its padding and its output padding.",
    "transposed_output_size(size, kernel, stride=1, padding=0, output_padding=0) -> int",
    10, transposed_output_size, _check_transposed_output_size))

_add(Exercise(
    "06.CodeOnlyDecoder", "06_convolutional_autoencoder",
    "Write a decoder that grows a (B, 16, 1, 1) code into a (B, 1, 28, 28) image with pixels between 0 and 1 with "
    "transposed convolutions, from the code alone (no pooling indices).",
    "class CodeOnlyDecoder(nn.Module): __init__(self, channels=(8, 16, 16)); forward(z) -> x_hat: "
    "z (B, channels[2], 1, 1), x_hat (B, 1, 28, 28)",
    20, models.CodeOnlyDecoder, _check_code_only_decoder, shown=CodeOnlyDecoder))

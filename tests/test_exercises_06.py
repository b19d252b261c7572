"""Notebook 06's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course import models
from exercise_helpers import answer_id, notebook_tests, verdict


# 06.conv_output_size
def size_no_plus_one(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride


def size_padding_once(size, kernel, stride=1, padding=0):
    return (size + padding - kernel) // stride + 1


def size_no_floor(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) / stride + 1


def size_no_stride(size, kernel, stride=1, padding=0):
    return size + 2 * padding - kernel + 1


def size_no_defaults(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


# 06.CodeOnlyDecoder
class DecoderWrongSize(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # 1 -> 3
                         nn.ConvTranspose2d(c2, c2, 3, stride=2), nn.ReLU(),  # 3 -> 7
                         nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1), nn.ReLU(),  # 7 -> 13: no output_padding
                         nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1), nn.Sigmoid())  # 13 -> 25


class DecoderNoSigmoid(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__(*list(models.CodeOnlyDecoder(channels))[:-1])


class DecoderWithUnpool(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2)
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z):
        return self.body(z)


class DecoderNeedsIndices(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z, indices):
        return self.body(z)


class DecoderUpsampleOnly(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(nn.Upsample(size=7), nn.Conv2d(c3, c1, 3, padding=1), nn.ReLU(),
                         nn.Upsample(size=28), nn.Conv2d(c1, 1, 3, padding=1), nn.Sigmoid())


class DecoderIgnoresCode(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z):
        return self.body(torch.ones_like(z))  # the same image whatever the code


class DecoderFixedChannels(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__(*models.CodeOnlyDecoder((8, 16, 16)))  # channels ignored


class DecoderStuckHalf(nn.Sequential):
    """A ReLU before the sigmoid: every pixel stays at 0.5 or above, so the decoder cannot learn."""

    def __init__(self, channels=(8, 16, 16)):
        layers = list(models.CodeOnlyDecoder(channels))
        super().__init__(*layers[:-1], nn.ReLU(), layers[-1])


class DecoderNoReLU(nn.Sequential):
    """The reference without its ReLUs: four transposed convolutions in a row collapse into one linear map."""

    def __init__(self, channels=(8, 16, 16)):
        super().__init__(*[m for m in models.CodeOnlyDecoder(channels) if not isinstance(m, nn.ReLU)])


class DecoderLayersInForward(nn.Module):
    """The layers are made inside forward: .parameters() finds none, and each call draws new weights."""

    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.channels = channels

    def forward(self, z):
        return models.CodeOnlyDecoder(self.channels)(z)


class DecoderFunctionalReLU(nn.Module):
    """A correct answer with explicit forward code and F.relu: no ReLU module to find."""

    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        c1, c2, c3 = channels
        self.t1 = nn.ConvTranspose2d(c3, c2, 3)
        self.t2 = nn.ConvTranspose2d(c2, c2, 3, stride=2)
        self.t3 = nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1)
        self.t4 = nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1)

    def forward(self, z):
        h = F.relu(self.t3(F.relu(self.t2(F.relu(self.t1(z))))))
        return torch.sigmoid(self.t4(h))


# 06.transposed_output_size
def transposed_no_output_padding(size, kernel, stride=1, padding=0, output_padding=0):
    return (size - 1) * stride - 2 * padding + kernel


def transposed_padding_once(size, kernel, stride=1, padding=0, output_padding=0):
    return (size - 1) * stride - padding + kernel + output_padding


def transposed_n_strides(size, kernel, stride=1, padding=0, output_padding=0):
    return size * stride - 2 * padding + kernel + output_padding


def transposed_padding_added(size, kernel, stride=1, padding=0, output_padding=0):
    return (size - 1) * stride + 2 * padding + kernel + output_padding


def transposed_as_convolution(size, kernel, stride=1, padding=0, output_padding=0):
    return (size + 2 * padding - kernel) // stride + 1


def transposed_no_defaults(size, kernel, stride, padding, output_padding):
    return (size - 1) * stride - 2 * padding + kernel + output_padding


WRONG = [
    ("06.conv_output_size", size_no_plus_one, "forgot the + 1"),
    ("06.conv_output_size", size_padding_once, "both sides"),
    ("06.conv_output_size", size_no_floor, "which division drops it"),
    ("06.conv_output_size", size_no_stride, "ignored the stride"),
    ("06.conv_output_size", size_no_defaults, "give stride a default of 1"),
    ("06.transposed_output_size", transposed_no_output_padding, "output_padding is added"),
    ("06.transposed_output_size", transposed_padding_once, "at both borders of a side"),
    ("06.transposed_output_size", transposed_n_strides, "(n - 1) strides after the first"),
    ("06.transposed_output_size", transposed_padding_added, "it does not add them"),
    ("06.transposed_output_size", transposed_as_convolution, "that is a convolution's size"),
    ("06.transposed_output_size", transposed_no_defaults, "output_padding defaults of 0"),
    ("06.CodeOnlyDecoder", DecoderWrongSize, "ConvTranspose2d 8x13x13 -> ReLU 8x13x13 -> ConvTranspose2d 1x25x25"),
    ("06.CodeOnlyDecoder", DecoderNoSigmoid, "end the decoder with a sigmoid"),
    ("06.CodeOnlyDecoder", DecoderWithUnpool, "pooling indices"),
    ("06.CodeOnlyDecoder", DecoderNeedsIndices, "must take only the code"),
    ("06.CodeOnlyDecoder", DecoderUpsampleOnly, "no nn.ConvTranspose2d"),
    ("06.CodeOnlyDecoder", DecoderIgnoresCode, "do not depend on the code"),
    ("06.CodeOnlyDecoder", DecoderFixedChannels, "build the layers from channels"),
    ("06.CodeOnlyDecoder", DecoderStuckHalf, "goes below 0.5"),
    ("06.CodeOnlyDecoder", DecoderNoReLU, "no nonlinearity between your transposed convolutions"),
    ("06.CodeOnlyDecoder", DecoderLayersInForward, "create them in __init__"),
]


# Correct answers written differently from the reference: the checks must not demand its exact code.
class DecoderLinearFirst(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        c1, c2, c3 = channels
        self.c2 = c2
        self.fc = nn.Linear(c3, c2 * 7 * 7)
        self.up = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # 7 -> 14
                                nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1), nn.Sigmoid())  # 14 -> 28

    def forward(self, z):
        return self.up(self.fc(z.flatten(1)).view(-1, self.c2, 7, 7))


CORRECT = [
    ("06.transposed_output_size", lambda size, kernel, stride=1, padding=0, output_padding=0:
        int(nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding)(torch.zeros(1, 1, size, size))
            .shape[-1])),
    ("06.conv_output_size", lambda size, kernel, stride=1, padding=0:
        math.floor((size + 2 * padding - kernel) / stride) + 1),
    ("06.CodeOnlyDecoder", DecoderLinearFirst),
    ("06.CodeOnlyDecoder", DecoderFunctionalReLU),
]

(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("06", WRONG, CORRECT)


# The fix as code, which a hint must not print (issue 19: it names the mistake, not the answer).
FIX_CODE = ("//", "2 * padding", "floor(", "+ 1)", "nn.Sigmoid()", "nn.ReLU()")


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(n, a) for n, a, _ in WRONG])
def test_a_hint_names_the_mistake_without_printing_the_fix(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    # The decoder's size message may print the transposed convolution's size rule: the notebook states it.
    codes = FIX_CODE if name != "06.CodeOnlyDecoder" else ("nn.Sigmoid()", "nn.ReLU()")
    assert not [code for code in codes if code in line], line

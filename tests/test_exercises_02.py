"""Notebook 02's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course import models
from course.exercises import solution
from exercise_helpers import answer_id, notebook_tests, verdict


# 02.ShallowAutoencoder
class ShallowBase(nn.Module):
    def __init__(self, hidden_dim, encoder=None, decoder=None):
        super().__init__()
        self.encoder = encoder or nn.Sequential(nn.Linear(784, hidden_dim), nn.ReLU())
        self.decoder = decoder or nn.Sequential(nn.Linear(hidden_dim, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        z = self.encode(x)
        return z, self.decode(z)


class ShallowOnlyXHat(ShallowBase):
    def forward(self, x):
        return self.decode(self.encode(x))


class ShallowSwapped(ShallowBase):
    def forward(self, x):
        z = self.encode(x)
        return self.decode(z), z


class ShallowNoSigmoid(ShallowBase):
    def __init__(self, hidden_dim):
        super().__init__(hidden_dim, decoder=nn.Linear(hidden_dim, 784))


class ShallowNoReLU(ShallowBase):
    def __init__(self, hidden_dim):
        super().__init__(hidden_dim, encoder=nn.Linear(784, hidden_dim))


class ShallowFixedWidth(ShallowBase):
    def __init__(self, hidden_dim):
        super().__init__(128)  # hidden_dim ignored


class ShallowNoEncoderBias(ShallowBase):
    def __init__(self, hidden_dim):
        super().__init__(hidden_dim, encoder=nn.Sequential(nn.Linear(784, hidden_dim, bias=False), nn.ReLU()))


class ShallowDetachedCode(ShallowBase):
    def forward(self, x):
        z = self.encode(x).detach()  # the encoder never learns
        return z, self.decode(z)


class ShallowStuckHalf(ShallowBase):
    """A ReLU before the sigmoid: outputs never fall below 0.5, so it cannot learn black backgrounds."""

    def __init__(self, hidden_dim):
        super().__init__(hidden_dim, decoder=nn.Sequential(nn.Linear(hidden_dim, 784), nn.ReLU(), nn.Sigmoid()))


class ShallowNoSuperInit(nn.Module):
    def __init__(self, hidden_dim):
        self.encoder = nn.Linear(784, hidden_dim)


class ShallowLayersInList(ShallowBase):
    def __init__(self, hidden_dim):
        nn.Module.__init__(self)
        self.layers = [nn.Linear(784, hidden_dim), nn.Linear(hidden_dim, 784)]  # invisible to PyTorch

    def encode(self, x):
        return torch.relu(self.layers[0](x))

    def decode(self, z):
        return torch.sigmoid(self.layers[1](z))


# 02.encoder_filters
def filters_decoder(model):
    weight = model.decoder[0].weight.detach()  # (784, h)
    return weight.T.reshape(-1, 28, 28)


def filters_decoder_view(model):
    return model.decoder[0].weight.detach().view(-1, 28, 28)


def filters_transposed_reshape(model):
    weight = model.encoder[0].weight.detach()
    return weight.T.reshape(weight.shape[0], 28, 28)


def filters_units_last(model):
    return model.encoder[0].weight.detach().view(28, 28, -1)


def filters_units_last_permuted(model):
    return model.encoder[0].weight.detach().reshape(28, 28, -1).permute(2, 0, 1)


def filters_rows_and_columns_swapped(model):
    return model.encoder[0].weight.detach().view(-1, 28, 28).transpose(1, 2)


def filters_flat(model):
    return model.encoder[0].weight.detach()


def filters_columns(model):
    return model.encoder[0].weight.detach().T


def filters_not_detached(model):
    return model.encoder[0].weight.view(-1, 28, 28)


def filters_with_bias(model):
    layer = model.encoder[0]
    return (layer.weight + layer.bias[:, None]).detach().view(-1, 28, 28)


def filters_hidden_dim(model):
    return model.encoder[0].weight.detach().view(model.hidden_dim, 28, 28)


def filters_property(model):
    return model.filters


def filters_sequential_weight(model):
    return model.encoder.weight.detach().view(-1, 28, 28)


def filters_normalised_in_place(model):
    weight = model.encoder[0].weight.detach()  # shares the parameter's memory
    return weight.div_(weight.abs().max()).view(-1, 28, 28)


def filters_normalised(model):
    weight = model.encoder[0].weight.detach()
    return (weight / weight.abs().max()).view(-1, 28, 28)


WRONG = [
    ("02.ShallowAutoencoder", ShallowOnlyXHat, "forward returned one tensor"),
    ("02.ShallowAutoencoder", ShallowSwapped, "returned (x_hat, z)"),
    ("02.ShallowAutoencoder", ShallowNoSigmoid, "which activation maps any number into (0, 1)"),
    ("02.ShallowAutoencoder", ShallowNoReLU, "never gives a negative number"),
    ("02.ShallowAutoencoder", ShallowFixedWidth, "wrong layer sizes"),
    ("02.ShallowAutoencoder", ShallowNoEncoderBias, "the encoder's Linear has no bias"),
    ("02.ShallowAutoencoder", ShallowDetachedCode, "no gradient reaches encoder"),
    ("02.ShallowAutoencoder", ShallowStuckHalf, "does not learn as it should"),
    ("02.ShallowAutoencoder", ShallowNoSuperInit, "call super().__init__()"),
    ("02.ShallowAutoencoder", ShallowLayersInList, "has no parameters"),
    ("02.ShallowAutoencoder", ShallowBase(32), "not a model built from it"),
    ("02.encoder_filters", filters_decoder, "the decoder's weights"),
    ("02.encoder_filters", filters_decoder_view, "the decoder's weights"),
    ("02.encoder_filters", filters_transposed_reshape, "mixes the weights of several units"),
    ("02.encoder_filters", filters_units_last_permuted, "mixes the weights of several units"),
    ("02.encoder_filters", filters_units_last, "returned shape (28, 28, 16): the units come first"),
    ("02.encoder_filters", filters_rows_and_columns_swapped, "rows and columns of each image are swapped"),
    ("02.encoder_filters", filters_flat, "returned shape (16, 784): the weights flat"),
    ("02.encoder_filters", filters_columns, "returned shape (784, 16): one column per unit"),
    ("02.encoder_filters", filters_not_detached, "requires_grad=True"),
    ("02.encoder_filters", filters_with_bias, "leave the bias out"),
    ("02.encoder_filters", filters_hidden_dim, "this model has no .hidden_dim or .filters"),
    ("02.encoder_filters", filters_property, "this model has no .hidden_dim or .filters"),
    ("02.encoder_filters", filters_sequential_weight, "model.encoder is an nn.Sequential"),
    ("02.encoder_filters", filters_normalised_in_place, "changed the model's weights"),
    ("02.encoder_filters", filters_normalised, "not scaled or normalised"),
]


# Correct answers written differently from the reference: the checks must not demand its exact code.
class ShallowFunctional(nn.Module):
    def __init__(self, hidden_dim):
        super().__init__()
        self.out = nn.Linear(hidden_dim, 784)  # made first: a different initialisation from the reference's
        self.hidden = nn.Linear(784, hidden_dim)

    def encode(self, x):
        return F.relu(self.hidden(x))

    def decode(self, z):
        return torch.sigmoid(self.out(z))

    def forward(self, x):
        z = self.encode(x)
        return z, self.decode(z)


CORRECT = [
    ("02.ShallowAutoencoder", ShallowFunctional),
    ("02.encoder_filters", lambda model: model.encoder[0].weight.data.T.reshape(28, 28, -1).permute(2, 0, 1)),
]

(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("02", WRONG, CORRECT)


def test_a_stub_whose_forward_raises_is_not_attempted_yet(capsys):
    class Stub(ShallowBase):
        def forward(self, x):
            raise NotImplementedError("Student exercise: return (z, x_hat)")

    passed, line = verdict(capsys, "02.ShallowAutoencoder", Stub)
    assert not passed and "not attempted yet" in line


def test_the_encoder_filters_reference_is_the_shallow_autoencoders_filters():
    torch.manual_seed(0)
    model = models.ShallowAutoencoder(hidden_dim=12)
    filters = solution("02.encoder_filters")(model)
    assert filters.shape == (12, 28, 28) and not filters.requires_grad
    assert torch.equal(filters, model.filters)
    assert torch.equal(filters[3, 2], model.encoder[0].weight[3, 56:84].detach())  # unit 3, image row 2


def test_every_way_of_keeping_the_bias_gets_the_bias_hint(capsys):
    def concatenated_then_viewed(model):
        layer = model.encoder[0]
        return torch.cat([layer.weight, layer.bias[:, None]], dim=1).detach().view(layer.weight.shape[0], 28, 28)

    def concatenated(model):
        layer = model.encoder[0]
        return torch.cat([layer.weight, layer.bias[:, None]], dim=1).detach()  # (h, 785)

    for answer in (filters_with_bias, concatenated_then_viewed, concatenated):
        passed, line = verdict(capsys, "02.encoder_filters", answer)
        assert not passed and "leave the bias out" in line, line


# Issue 19: a wrong answer's line names the mistake and asks; it does not print the fix as code.
@pytest.mark.parametrize("answer", [filters_transposed_reshape, filters_units_last_permuted, filters_flat,
                                    filters_units_last, filters_rows_and_columns_swapped, filters_not_detached,
                                    filters_normalised, filters_hidden_dim])
def test_an_encoder_filters_line_does_not_print_the_fix_as_code(capsys, answer):
    passed, line = verdict(capsys, "02.encoder_filters", answer)
    assert not passed and "view(" not in line and ".detach()" not in line and "shape[0]" not in line, line


# The fix, as code or as the one decision the exercise asks for, which a hint must not print (issue 19).
FIX_CODE = ("nn.ReLU()", "nn.Sigmoid()", "row i", "each ROW", "weight.T", "missing the sigmoid", "missing the ReLU")


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(n, a) for n, a, _ in WRONG])
def test_a_hint_names_the_mistake_without_printing_the_fix(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    assert not [code for code in FIX_CODE if code in line], line

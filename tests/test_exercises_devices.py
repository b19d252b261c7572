"""The checks run the student's code on the notebook's device: every check on CUDA where there is one, and on the
CPU the device path itself (an explicit device, setup()'s device, the hint for a result on another device)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course import models, training
from course.exercises import EXERCISES, check, core, solution_source
from exercise_helpers import NOTEBOOK_IMPORTS, verdict

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def solved(name: str):
    """The exercise's solution as a student would have it: run from its source, not the course's own object."""
    namespace: dict = {}
    exec(compile(NOTEBOOK_IMPORTS + solution_source(name), f"<solution {name}>", "exec"), namespace)
    return namespace[EXERCISES[name].answer_name]


def line_of(capsys, name, answer, device) -> tuple[bool, str]:
    passed = check(name, answer, device=device)
    return passed, capsys.readouterr().out.strip()


@CUDA
@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_check_passes_its_solution_on_cuda(capsys, name):
    passed, line = line_of(capsys, name, solved(name), "cuda")
    assert passed, line


@CUDA
@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_check_passes_its_reference_on_cuda(name):
    status, line = core._run_checker(EXERCISES[name], EXERCISES[name].reference, credit_reference=True, device="cuda")
    assert status == core.PASSED, line


def _cpu_only_reparameterize(mu, logvar, generator):
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)  # eps always on the CPU


def _cpu_only_corrupt(x, noise_std, generator):
    return (x + noise_std * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def _cpu_only_perturb(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn(z.shape, generator=generator)


def _cpu_result_interpolate(z0, z1, steps):
    return models.interpolate(z0, z1, steps).cpu()


class _CpuLayerDecoder(nn.Module):
    """Keeps its last layer in a plain list, out of .to(device)'s reach: it stays on the CPU."""

    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        layers = list(models.CodeOnlyDecoder(channels))
        self.body, self.last = nn.Sequential(*layers[:-2]), [layers[-2]]

    def forward(self, z):
        return torch.sigmoid(self.last[0](self.body(z)))


@CUDA
@pytest.mark.parametrize("name, answer", [("07.reparameterize", _cpu_only_reparameterize),
                                          ("04.gaussian_corrupt", _cpu_only_corrupt),
                                          ("05.perturb_code", _cpu_only_perturb),
                                          ("05.interpolate", _cpu_result_interpolate),
                                          ("06.CodeOnlyDecoder", _CpuLayerDecoder)])
def test_code_that_works_on_the_cpu_only_gets_a_device_hint_on_cuda(capsys, name, answer):
    # Issue 19: torch.randn(mu.shape, generator=generator) passed the CPU-only check, then failed in 07 on CUDA.
    assert check(name, answer, device="cpu")
    capsys.readouterr()
    passed, line = line_of(capsys, name, answer, "cuda")
    assert not passed and "device" in line and "cuda" in line, line


@CUDA
def test_a_check_on_cuda_leaves_the_cuda_random_stream_alone(capsys):
    torch.cuda.manual_seed(5)
    state = torch.cuda.get_rng_state()
    check("07.reparameterize", lambda mu, logvar, generator: mu + torch.exp(0.5 * logvar) * torch.randn_like(mu),
          device="cuda")
    assert torch.equal(torch.cuda.get_rng_state(), state)


def test_an_explicit_cpu_device_runs_the_answer_on_the_cpu_with_a_cpu_generator(capsys):
    seen = []

    def reparameterize(mu, logvar, generator):
        seen.append((mu.device.type, logvar.device.type, generator.device.type))
        return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, device=mu.device)

    assert line_of(capsys, "07.reparameterize", reparameterize, "cpu")[0]
    assert seen and set(seen) == {("cpu", "cpu", "cpu")}


def test_the_checks_device_is_the_notebooks_which_setup_sets(monkeypatch, capsys):
    from course.notebook import setup

    monkeypatch.setattr(core, "_DEVICE", torch.device("meta"))  # anything but what setup() will choose
    run = setup(device="cpu")
    assert run.device == torch.device("cpu") and core._DEVICE == torch.device("cpu")
    assert core._resolve(None) == torch.device("cpu")


@pytest.mark.parametrize("bad", [5, "gpu0", object()])
def test_a_bad_device_is_refused_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="device"):
        check("03.l1_penalty", lambda z, weight: weight * z.abs().mean(), device=bad)
    with pytest.raises(ValueError, match="device"):
        core.set_device(bad)


def test_a_verdict_is_remembered_per_device(capsys):
    calls = []

    def l1_penalty(z, weight):
        calls.append(z.device)
        return weight * z.abs().mean()

    assert check("03.l1_penalty", l1_penalty, device="cpu")
    count = len(calls)
    assert check("03.l1_penalty", l1_penalty, device="cpu") and len(calls) == count  # remembered
    assert core._verdict(EXERCISES["03.l1_penalty"], l1_penalty, torch.device("cpu"))[0] == core.PASSED


class _MetaOutput(nn.Module):
    """The course's shallow autoencoder, whose forward hands its result over on another device."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.inner = models.ShallowAutoencoder(hidden_dim)
        self.encoder, self.decoder = self.inner.encoder, self.inner.decoder

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, z):
        return self.inner.decode(z)

    def forward(self, x):
        z, x_hat = self.inner(x)
        return z, x_hat.to("meta")


def _meta_loss_step(model, optimizer, x):
    return training.train_step(model, optimizer, x, x, training.Reconstruction()).to("meta")


def _meta_filters(model):
    return model.encoder[0].weight.detach().view(-1, 28, 28).to("meta")


@pytest.mark.parametrize("name, answer", [("02.ShallowAutoencoder", _MetaOutput),
                                          ("01.train_on_batch", _meta_loss_step),
                                          ("02.encoder_filters", _meta_filters),
                                          ("04.denoising_loss", lambda model, x, corrupt:
                                           training.mse_loss(model(corrupt(x))[1], x).to("meta"))])
def test_a_model_exercise_whose_result_is_on_another_device_gets_the_device_hint(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed and "on meta" in line and "on cpu" in line, line


def test_an_error_from_mixing_devices_gets_a_device_note(capsys):
    def l1_penalty(z, weight):
        return weight * (z.abs() + torch.zeros(z.shape, device="meta")).mean()

    passed, line = verdict(capsys, "03.l1_penalty", l1_penalty)
    assert not passed and "tensors on different devices: the inputs are on cpu" in line, line

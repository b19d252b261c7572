"""Notebook 04's helpers (course.denoising): measurements that can be checked against what they should give."""
from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from course import denoising  # noqa: E402
from course.checkpoints import run_config  # noqa: E402
from course.metrics import class_means  # noqa: E402
from course.models import ShallowAutoencoder  # noqa: E402
from course.training import GaussianNoise, Reconstruction, denoising_loss, gaussian_corrupt  # noqa: E402


def test_corruption_stats_on_black_images_match_the_half_normal():
    pixels = torch.zeros(500, 784, dtype=torch.uint8)
    stats = denoising.corruption_stats(gaussian_corrupt, pixels, [0.1], seed=0, chunk=128)[0.1]
    assert stats["black share"] == 1.0
    assert stats["black made brighter"] == pytest.approx(0.5, abs=0.01)
    assert stats["black mean / σ"] == pytest.approx(1 / math.sqrt(2 * math.pi), rel=0.02)  # no clip at 1 at σ = 0.1
    assert stats["noisy input MSE"] == pytest.approx(0.1 ** 2 / 2, rel=0.02)  # half the noise is clipped away


def test_corruption_rows_show_each_level_from_the_stats():
    pixels = torch.zeros(200, 784, dtype=torch.uint8)
    stats = denoising.corruption_stats(gaussian_corrupt, pixels, [0.1, 0.9], seed=0)
    rows = denoising.corruption_rows(stats)
    assert [r["σ"] for r in rows] == ["0.1", "0.9"]
    assert rows[1][denoising.BLACK_AFTER] == stats[0.9]["black mean / σ"]
    assert rows[1][denoising.BLACK_AFTER] < rows[0][denoising.BLACK_AFTER]  # the clip at 1
    assert rows[0]["MSE of the noisy image"] == stats[0.1]["noisy input MSE"]


def test_corruption_stats_counts_chunks_alike_and_rejects_bad_levels():
    pixels = (torch.rand(300, 784, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    pixels[:, :400] = 0
    once = denoising.corruption_stats(lambda x, s, g: x, pixels, [0.5], chunk=1000)[0.5]
    assert once["noisy input MSE"] == 0 and once["black made brighter"] == 0
    assert once["black share"] == pytest.approx(float((pixels == 0).float().mean()))
    with pytest.raises(ValueError, match="noise_levels"):
        denoising.corruption_stats(gaussian_corrupt, pixels, [0.0])


def test_denoising_objective_scores_the_trainers_noisy_batch_against_the_clean_one():
    torch.manual_seed(0)
    model, target = ShallowAutoencoder(8), torch.rand(16, 784)
    x = GaussianNoise(0.5)(target, torch.Generator().manual_seed(1))
    ours = denoising.DenoisingObjective(denoising_loss)(model, x, target)
    assert torch.allclose(ours, Reconstruction()(model, x, target))
    assert not torch.allclose(ours, Reconstruction()(model, target, target))
    ours.backward()
    assert model.encoder[0].weight.grad is not None


def test_denoising_objective_is_keyed_by_its_loss_function(tiny):
    def other_loss(model, x, corrupt):
        return denoising_loss(model, x, corrupt) * 1.0

    def key(objective):
        return run_config(ShallowAutoencoder, {"hidden_dim": 8}, tiny, 1, 1e-3, 64, 0,
                          corruption=GaussianNoise(0.5), objective=objective)

    assert key(denoising.DenoisingObjective(denoising_loss)) == key(denoising.DenoisingObjective(denoising_loss))
    assert key(denoising.DenoisingObjective(denoising_loss)) != key(denoising.DenoisingObjective(other_loss))
    assert key(denoising.DenoisingObjective(denoising_loss)) != key(None)


def test_first_of_each_class():
    y = torch.tensor([3, 1, 1, 0, 2, 3])
    assert denoising.first_of_each_class(y, n=3).tolist() == [3, 1, 4]
    with pytest.raises(ValueError, match="n must be"):
        denoising.first_of_each_class(y, n=5)


class _Identity(nn.Module):
    def forward(self, x):
        return x, x


def test_probe_reads_the_images_it_is_given_and_the_same_noise_as_the_error_table():
    torch.manual_seed(0)
    probe, pixels = nn.Linear(784, 10), (torch.rand(300, 784) * 255).to(torch.uint8)
    x = pixels.float() / 255
    assert torch.equal(denoising.probe_reads(probe, pixels), probe(x).argmax(1))
    assert torch.equal(denoising.probe_reads(probe, pixels, _Identity()), probe(x).argmax(1))
    noisy = denoising.probe_reads(probe, pixels, corruption=GaussianNoise(0.8), seed=3)
    assert torch.equal(noisy, denoising.probe_reads(probe, pixels, _Identity(), GaussianNoise(0.8), seed=3))
    assert not torch.equal(noisy, probe(x).argmax(1))


def test_class_change_figure_marks_a_wrong_class_in_red():
    images = {"clean": torch.rand(3, 784), "output": torch.rand(3, 784)}
    reads = {"clean": torch.tensor([0, 1, 2]), "output": torch.tensor([0, 2, 2])}
    fig = denoising.class_change_figure(images, reads, torch.tensor([0, 1, 2]), ["a", "b", "c"])
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes]
    assert titles[4] == ("c", "red") and titles[3] == ("a", "black") and titles[1] == ("b", "black")
    fig = denoising.class_change_figure(images, reads, torch.tensor([0, 1, 2]), ["a", "b", "c"], indices=[7, 3, 9])
    assert [ax.get_title() for ax in fig.axes][:4] == ["test 7\na", "test 3\nb", "test 9\nc", "a"]  # first row only


def test_filter_comparison_and_figure(tiny):
    torch.manual_seed(0)
    models = {"a": ShallowAutoencoder(16), "b": ShallowAutoencoder(16)}
    mask = tiny.train.ink_mask(0.01)
    compared = denoising.filter_comparison(models, tiny, gaussian_corrupt, 0.5, seed=0, pixel_masks={"a": mask})
    for name, r in compared.items():
        assert r["filters"].shape == (r["living units"], 784) and 0 < r["living units"] <= 16
        assert r["median roughness"] > 0 and 0 <= r["median template similarity"] <= 1
    assert bool((compared["a"]["filters"][:, ~mask] == 0).all())
    assert not bool((compared["b"]["filters"][:, ~mask] == 0).all())
    assert len(denoising.filter_figure(compared, 16).axes) == 2
    fig = denoising.filter_figure(compared, 16, templates=class_means(tiny.val.pixels, tiny.val.y), n=4)
    assert len(fig.axes) == 3 and "the 4 busiest" in fig.axes[0].get_title()


def test_class_means_is_the_mean_image_of_each_class():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.5, 0.0]])
    assert torch.equal(class_means(x, torch.tensor([3, 3, 1])), torch.tensor([[0.5, 0.0], [0.5, 1.0]]))


def test_show_error_table_adds_the_noisy_input_row():
    table = {"a": {0.0: 0.01, 0.5: 0.05}, "b": {0.0: 0.02, 0.5: 0.03}}
    frame = denoising.show_error_table(table, {0.5: 0.1}, caption="test")
    assert list(frame.index) == ["a", "b", "noisy input itself"]
    assert frame.loc["noisy input itself", "σ = 0.5"] == 0.1 and frame.loc["noisy input itself", "σ = 0"] == 0.0

    few = denoising.show_error_table(table, {0.5: 0.1}, caption="test", levels=[0.5])
    assert list(few.columns) == ["σ = 0.5"]
    with pytest.raises(ValueError, match="levels must be .*measured noise levels"):
        denoising.show_error_table(table, {0.5: 0.1}, caption="test", levels=[0.9])

def test_error_curves_robustness_and_wins(tiny):
    table = {"a": {0.0: 0.01, 0.5: 0.05}, "b": {0.0: 0.02, 0.5: 0.03}}
    fig = denoising.error_curves(table, {0.5: 0.1}, 0.5, highlight="b")
    assert len(fig.axes[0].lines) == 4  # two models, the noisy input, the training level
    assert denoising.wins(table, "b") == [0.5] and denoising.wins(table, "a") == [0.0]
    models = {"identity": _Identity(), "ae": ShallowAutoencoder(8)}
    robust = denoising.corruption_robustness(models, tiny.test.pixels, {"masking": [0.0, 0.5]})
    assert robust["masking"]["identity"][0.0] == 0 and robust["masking"]["identity"][0.5] > 0
    assert len(denoising.robustness_figure(robust).axes) == 1


class _Halving(nn.Module):
    """Returns half of every image: (x, x / 2)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a device to run on

    def forward(self, x):
        return x, x / 2


def test_clean_brightness_is_the_mean_pixel_of_the_inputs_and_of_the_outputs():
    pixels = (torch.rand(700, 784, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    shade, shade_out = denoising.clean_brightness(_Halving(), pixels)
    assert shade == pytest.approx(float(pixels.double().mean()) / 255, rel=1e-6)
    assert shade_out == pytest.approx(shade / 2, rel=1e-6)


def test_blur_baseline_is_a_denoiser_that_only_blurs():
    from course.denoising import BlurBaseline
    from course.metrics import gaussian_blur

    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    z, x_hat = BlurBaseline(1.0)(x)
    assert z.shape == (5, 784) and torch.equal(z, x)
    assert torch.allclose(x_hat, gaussian_blur(x, 1.0))
    assert not torch.allclose(x_hat, x)  # it changes the image: a real blur, not the identity
    flat = torch.full((2, 784), 0.5)
    assert float(BlurBaseline(2.0)(flat)[1][:, 14 * 28 + 14].sub(0.5).abs().max()) < 1e-6  # the middle of a flat image stays
    for bad in (0, -1.0, "1", True):
        with pytest.raises(ValueError, match="sigma"):
            BlurBaseline(bad)

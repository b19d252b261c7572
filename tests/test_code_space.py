"""course.code_space: the probe's confidence, class partners, the map of the holes and 05's lesson checks."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course.metrics import probe_classifier
from course.code_space import (class_partners, correlated_pair, extremes, holes_figure, manifold_lessons, near_far_confident,
                               probe_classes, probe_confidence, share_beyond, share_confident)


def test_probe_confidence_is_the_probes_top_class_probability(sample):
    x = sample.test.pixels[:200]
    confidence = probe_confidence(x, sample)
    with torch.no_grad():
        expected = probe_classifier(sample).eval()(x.float() / 255).softmax(1).max(1).values
    assert confidence.shape == (200,) and torch.allclose(confidence, expected, atol=1e-5)
    assert bool((confidence >= 0.1 - 1e-6).all() and (confidence <= 1).all())  # the top of ten is at least 1/10
    assert float(confidence.median()) > 0.9  # sure of most real digits


def test_probe_classes_name_most_real_digits_right(sample):
    x, y = sample.test.pixels[:200], sample.test.y[:200]
    named = probe_classes(x, sample)
    assert named.shape == (200,) and named.dtype == torch.int64
    assert float((named == y).float().mean()) > 0.85
    with pytest.raises(ValueError, match="x"):
        probe_classes(torch.full((4, 784), 2.0), sample)


def test_probe_confidence_refuses_images_out_of_range(sample):
    with pytest.raises(ValueError, match="x"):
        probe_confidence(torch.full((4, 784), 2.0), sample)


def test_class_partners_within_a_class_never_pick_the_image_itself():
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    partner = class_partners(y, same_class=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[partner], y) and not bool((partner == torch.arange(len(y))).any())


def test_class_partners_of_another_class_always_differ_in_class():
    y = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(1))
    partner = class_partners(y, same_class=False, generator=torch.Generator().manual_seed(0))
    assert partner.shape == (300,) and not bool((y[partner] == y).any())
    again = class_partners(y, same_class=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(partner, again)  # the generator decides


def test_class_partners_refuse_what_cannot_be_paired():
    with pytest.raises(ValueError, match="twice"):
        class_partners(torch.tensor([0, 0, 1]), same_class=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="two classes"):
        class_partners(torch.tensor([2, 2, 2]), same_class=False, generator=torch.Generator())


def test_share_confident_and_extremes():
    confidence = torch.tensor([0.2, 0.95, 0.9, 0.5])
    assert share_confident(confidence) == 0.5 and share_confident(confidence, 0.96) == 0.0
    closest, farthest = extremes(torch.tensor([3.0, 0.5, 9.0, 1.0, 7.0, 2.0]), 2)
    assert closest.tolist() == [1, 3] and farthest.tolist() == [2, 4]
    with pytest.raises(ValueError, match="k"):
        extremes(torch.tensor([1.0, 2.0]), 2)
    with pytest.raises(ValueError, match="confidence"):
        share_confident(torch.tensor([]))


def test_share_beyond_counts_distances_past_the_inside_quantile():
    inside = torch.arange(1.0, 101.0)  # its 0.95 quantile is 95.05
    assert share_beyond(torch.tensor([10.0, 96.0, 200.0, 95.0]), inside) == 0.5
    assert share_beyond(inside, inside, 0.5) == 0.5
    with pytest.raises(ValueError, match="quantile"):
        share_beyond(inside, inside, 1.0)
    with pytest.raises(ValueError, match="inside"):
        share_beyond(inside, torch.tensor([]))


def test_holes_figure_draws_each_set_on_the_map_and_its_distances():
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(300, 8, generator=g)
    sets = {name: (torch.randn(50, 8, generator=g), torch.rand(50, generator=g), torch.rand(50, generator=g))
            for name in ("noisy", "random")}
    sets["random"] = (sets["random"][0], sets["random"][1], torch.cat([torch.ones(10), torch.zeros(40)]))
    fig = holes_figure(reference, sets, noun="digit")
    left, right = fig.axes
    assert len(left.collections) == 3  # the reference codes, then each set
    assert left.get_legend() is None and [t.get_text() for t in fig.legends[0].get_texts()] == [
        "test digits' codes", "noisy", "random"]
    assert "most correlated" in left.get_title() and "in spreads" in left.get_xlabel()
    assert left.collections[-1].get_zorder() > left.collections[1].get_zorder()  # the last set drawn on top
    assert [t.get_text() for t in right.get_yticklabels()] == ["random", "noisy"]  # the first set on top
    assert len(right.patches) == 2 and "distance to the nearest training code" in right.get_xlabel()  # one box a set
    with pytest.raises(ValueError, match="noisy"):
        holes_figure(reference, {"noisy": (sets["noisy"][0], torch.rand(3), torch.rand(50))})


class _Table:
    """A likeness table with made-up numbers: Fréchet distance, nearest MSE and code distance per name."""

    def __init__(self, rows):
        self.rows = rows

    def frechet(self, name):
        return self.rows[name][0]

    def nearest_mse(self, name):
        return self.rows[name][1]

    def code_distance(self, name):
        return self.rows[name][2]


NAMES = dict(real="real", blur="blur", mean_image="mean", noisy="noisy", recon="recon", code_noise=["n1", "n2", "n3"],
             mid_same="same", mid_other="other", random="random")
GOOD = {"real": (1, 0.04, 0), "blur": (4, 0.03, 0), "mean": (50, 0.05, 0), "noisy": (60, 0.1, 0),
        "recon": (2, 0.02, 0.5), "n1": (2.5, 0.02, 0.6), "n2": (8, 0.03, 1.0), "n3": (30, 0.05, 3.0),
        "same": (3, 0.02, 0.55), "other": (9, 0.03, 0.8), "random": (20, 0.04, 1.5)}


def test_manifold_lessons_hold_on_a_run_that_shows_them():
    lessons = manifold_lessons(_Table(GOOD), NAMES)
    assert all(condition for condition, _ in lessons.values())
    assert set(lessons) == {"measure", "blur_wins_nearest_mse", "nearest_mse_misleads", "near_codes", "far_codes",
                            "pixel_noise_worse", "gaps", "random_codes"}


def test_manifold_lessons_fail_where_the_run_contradicts_them():
    bad = dict(GOOD, other=(2.6, 0.03, 0.8), n3=(30, 0.05, 0.9))  # no gap between classes; the farthest noise not farthest
    lessons = manifold_lessons(_Table(bad), NAMES)
    failed = {key for key, (condition, _) in lessons.items() if not condition}
    assert failed == {"gaps", "far_codes"}
    with pytest.raises(ValueError, match="random"):
        manifold_lessons(_Table(GOOD), {k: v for k, v in NAMES.items() if k != "random"})


def test_near_far_confident_splits_every_set_at_the_inside_sets_quantile():
    sets = {"real": (None, torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.95, 0.99, 0.97, 0.5])),
            "far": (None, torch.tensor([5.0, 6.0]), torch.tensor([0.2, 0.95]))}
    near, far = near_far_confident(sets, inside="real", quantile=1.0)  # cutoff 0.4: the real codes are all near
    assert near == 0.75 and far == 0.5
    with pytest.raises(ValueError, match="inside"):
        near_far_confident(sets, inside="nope")
    with pytest.raises(ValueError, match="beyond"):
        near_far_confident({"real": sets["real"]}, inside="real", quantile=1.0)


def test_correlated_pair_finds_the_two_dimensions_that_move_together():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 5, generator=g)
    z[:, 3] = -0.8 * z[:, 1] + 0.2 * torch.randn(2000, generator=g)
    i, j, r = correlated_pair(z)
    assert (i, j) == (1, 3) and r < -0.9
    with pytest.raises(ValueError, match="z must be"):
        correlated_pair(torch.zeros(5))


def test_holes_figure_maps_only_the_sets_named_but_boxes_every_set():
    g = torch.Generator().manual_seed(1)
    reference = torch.randn(300, 8, generator=g)
    sets = {name: (torch.randn(40, 8, generator=g), torch.rand(40, generator=g), torch.rand(40, generator=g))
            for name in ("noisy", "half-way", "random")}
    fig = holes_figure(reference, sets, on_map=["random"])
    left, right = fig.axes
    assert len(left.collections) == 2  # the reference codes and the random ones
    assert [t.get_text() for t in right.get_yticklabels()] == ["random", "half-way", "noisy"]
    with pytest.raises(ValueError, match="on_map"):
        holes_figure(reference, sets, on_map=["nowhere"])


"""course.sparse: notebook 03's penalty grid, trainer verdicts and sparsity measurements on hand-made cases."""
from __future__ import annotations

import functools
import warnings
from types import SimpleNamespace

import pytest
import torch

from course import sparse
from course.models import ShallowAutoencoder
from course.training import History, L1Penalty, l1_penalty


def test_penalty_grid_sorts_adds_the_collapse_weight_and_checks_its_parameters():
    grid = sparse.penalty_grid([0.1, 0.0, 0.01, 0.1], None, 0.1)
    assert grid.trade_off == [0.0, 0.01, 0.1]
    assert grid.collapse == pytest.approx(1e-4 * 64 * 1024)  # the original's first all-dead weight
    assert grid.all == [0.0, 0.01, 0.1, grid.collapse]
    assert [grid.role(w) for w in grid.all] == ["no penalty", "trade-off", "trade-off", "collapse (on purpose)"]
    assert sparse.penalty_grid([0.0, 0.5], 0.5).all == [0.0, 0.5]  # a collapse weight in the grid is not repeated
    with pytest.raises(ValueError, match="exercise_weight must be one of 0.01, 0.1, or None, got 0.0"):
        sparse.penalty_grid([0.0, 0.01, 0.1], None, 0.0)
    with pytest.raises(ValueError, match="exercise_weight must be one of 0.01, or None, got 0.5"):
        sparse.penalty_grid([0.0, 0.01], None, 0.5)
    with pytest.raises(ValueError, match="collapse_weight must be None or a number > 0"):
        sparse.penalty_grid([0.0], -1.0)
    with pytest.raises(ValueError, match="penalty_weights must be a non-empty list"):
        sparse.penalty_grid([-0.1, 0.0])
    with pytest.raises(ValueError, match="penalty_weights must be a list of numbers"):
        sparse.penalty_grid(["a"])


def test_trained_with_names_each_kind_of_hook():
    assert sparse.trained_with(None) == "none"
    assert sparse.trained_with(functools.partial(l1_penalty, weight=0.1)) == "your l1_penalty"
    assert sparse.trained_with(L1Penalty(0.1)) == "L1Penalty"


def test_kept_val_mse_and_trainer_verdicts_read_the_history():
    history = History(train_loss=[1, 1, 1], val_mse=[0.3, 0.1, 0.2], best_epoch=2, mean_image_mse=0.1)
    assert sparse.kept_val_mse(history) == 0.1
    assert sparse.kept_val_mse(History(train_loss=[1, 1], val_mse=[0.3, 0.2])) == 0.2  # no best epoch: the last
    trained = {0.0: SimpleNamespace(history=History(train_loss=[1], val_mse=[0.02], mean_image_mse=0.1), from_cache=True),
               6.5: SimpleNamespace(history=history, from_cache=False)}
    rows = sparse.trainer_verdicts(trained, {0.0: [], 6.5: ["no better than ..."]})
    assert rows[0] == {"weight": 0.0, "model": "from the cache", "validation MSE, kept weights": 0.02,
                       "validation MSE, mean image": 0.1, "ratio": pytest.approx(0.2), "warns": False,
                       "warned while training here": False}
    assert rows[1]["warns"]
    assert rows[1]["ratio"] == pytest.approx(1.0) and rows[1]["warned while training here"] and rows[1]["model"] == "trained now"


def test_train_noting_collapse_catches_only_the_mean_image_warning(monkeypatch):
    def fake_train_or_load(*args, **kwargs):
        warnings.warn(f"training ended {sparse.MEAN_IMAGE_WARNING} training image", RuntimeWarning)
        warnings.warn("something else", UserWarning)
        return "model"

    monkeypatch.setattr(sparse, "train_or_load", fake_train_or_load)
    with pytest.warns(UserWarning, match="something else"):
        trained, caught = sparse.train_noting_collapse("shallow")
    assert trained == "model" and len(caught) == 1 and sparse.MEAN_IMAGE_WARNING in caught[0]


def _shallow_with_dead_units(dead: int = 3, units: int = 8) -> ShallowAutoencoder:
    torch.manual_seed(0)
    model = ShallowAutoencoder(hidden_dim=units)
    with torch.no_grad():
        model.encoder[0].weight.abs_()  # every live unit is on for any image with ink
        model.encoder[0].bias.fill_(0.1)
        model.encoder[0].weight[:dead] = 0.0
        model.encoder[0].bias[:dead] = -1.0  # always below 0: dead
    return model.eval()


def test_sparsity_measures_count_dead_and_living_units(tiny):
    model = _shallow_with_dead_units(dead=3, units=8)
    m = sparse.sparsity_measures(model, tiny.test.pixels)
    assert m["dead_fraction"] == pytest.approx(3 / 8) and m["living_units"] == 5
    assert m["active_units_per_image"] == pytest.approx(5.0)  # the living units are on for every image
    assert m["active_share_all"] == pytest.approx(5 / 8) and m["active_share_living"] == pytest.approx(1.0)
    assert m["median_firing_rate_living"] == pytest.approx(1.0)
    assert m["value_when_on"] > 0 and m["decoder_norm_living"] > 0 and 0 < m["test_mse"] < 1
    wrong = sparse.sparsity_measures(model, tiny.test.pixels, dead_fraction=lambda z: 0.5)  # the student's function
    assert wrong["dead_fraction"] == 0.5 and wrong["living_units"] == 4


def test_sparsity_measures_of_a_dead_network(tiny):
    m = sparse.sparsity_measures(_shallow_with_dead_units(dead=8, units=8), tiny.test.pixels)
    assert m["dead_fraction"] == 1.0 and m["living_units"] == 0 and m["active_units_per_image"] == 0.0
    assert m["active_share_living"] is None and m["median_firing_rate_living"] is None
    assert m["decoder_norm_living"] is None and m["value_when_on"] == 0.0


def test_largest_preactivation_is_each_units_maximum(tiny):
    model = _shallow_with_dead_units(dead=3, units=8)
    largest = sparse.largest_preactivation(model, tiny.test.pixels)
    with torch.no_grad():
        expected = model.encoder[0](tiny.test.x).max(0).values
    assert largest.shape == (8,) and torch.allclose(largest, expected, atol=1e-5)
    assert (largest[:3] == -1.0).all()


def test_roughness_yardsticks_put_noise_above_the_mean_image():
    inked = torch.zeros(28, 28, dtype=torch.bool)
    inked[4:24, 4:24] = True
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blob = torch.exp(-((yy - 14) ** 2 + (xx - 14) ** 2) / 40).flatten()  # a smooth, broad image
    refs = sparse.roughness_yardsticks(inked.flatten(), blob, n=16)
    assert refs["noise"] > 2.5 and refs["mean_image"] < 0.5
    assert sparse.roughness_yardsticks(inked.flatten(), blob, n=16) == refs  # seeded


def test_rising():
    assert sparse.rising([1, 2, 3]) and sparse.rising([5])
    assert not sparse.rising([1, 1, 2]) and not sparse.rising([2, 1])


def _row(weight, mse, units_on, dead, living_share, norm, value):
    return {"weight": weight, "role": "x", "test_mse": mse, "avg_activation": 0.1, "active_units_per_image": units_on,
            "active_share_all": units_on / 1024, "dead_fraction": dead, "living_units": round(1024 * (1 - dead)),
            "active_share_living": living_share, "median_firing_rate_living": 0.5, "decoder_norm_living": norm,
            "value_when_on": value}


def test_lesson_checks_hold_on_a_good_run_and_fail_on_a_bad_one():
    grid = sparse.penalty_grid([0.0, 0.01, 0.1], 6.5)
    good = {0.0: _row(0.0, 0.001, 800, 0.0, 0.8, 1.0, 0.5), 0.01: _row(0.01, 0.004, 300, 0.1, 0.3, 2.0, 0.3),
            0.1: _row(0.1, 0.01, 50, 0.6, 0.1, 3.0, 0.1), 6.5: _row(6.5, 0.1, 0.0, 1.0, None, None, 0.0)}
    dead_history = History(train_loss=[1], val_mse=[0.1], mean_image_mse=0.1)
    lessons = sparse.lesson_checks(good, grid, 0.1, dead_history)
    assert all(condition for condition, _ in lessons.values()), lessons
    bad = {**good, 0.1: _row(0.1, 0.003, 50, 0.6, 0.1, 3.0, 0.1)}  # the error falls at 0.1: no trade-off
    assert not sparse.lesson_checks(bad, grid, 0.1, dead_history)["trade_off"][0]
    alive_history = History(train_loss=[1], val_mse=[0.05], mean_image_mse=0.1)
    assert not sparse.lesson_checks(good, grid, 0.1, alive_history)["collapse_history"][0]


def test_figures_and_table_draw(tiny):
    import matplotlib.pyplot as plt

    models = {"a": _shallow_with_dead_units(3, 16), "b": _shallow_with_dead_units(16, 16)}
    fig = sparse.one_code_figure(tiny.test.take(0), models)
    titles = [ax.get_title() for ax in fig.axes]
    assert "a\n13 of 16 units on" in titles and "b\n0 of 16 units on" in titles
    rows = [_row(0.0, 0.001, 800, 0.0, 0.8, 1.0, 0.5), _row(6.5, 0.1, 0.0, 1.0, None, None, 0.0)]
    fig = sparse.trade_off_figure(rows, 0.1, title="t")
    assert len(fig.axes) == 3
    table = sparse.show_sparsity_table(rows, caption="c")
    assert list(table.index) == ["0", "6.5"] and "dead units" in table.columns
    plt.close("all")


def test_death_split_factors_the_fall_of_the_share_on_into_death_and_selectivity():
    # The sample run's figures (issue 19 review): 76.5% -> 7.2% on, 2.5% -> 33.9% dead.
    low = {"dead_fraction": 0.025, "active_share_all": 0.765}
    high = {"dead_fraction": 0.339, "active_share_all": 0.072}
    split = sparse.death_split(low, high)
    assert split["fold"] == pytest.approx(0.765 / 0.072)
    assert split["death_fold"] == pytest.approx(0.975 / 0.661)
    assert split["death_fold"] * split["selective_fold"] == pytest.approx(split["fold"])
    assert 0.1 < split["death_share"] < 0.25  # mostly selectivity, though a third of the units died
    everything_dead = {"dead_fraction": 1.0, "active_share_all": 0.0}
    with pytest.raises(ValueError, match="no unit alive"):
        sparse.death_split(low, everything_dead)


def test_death_finding_names_the_leading_fold_of_this_run():
    rows = {0.0: {"dead_fraction": 0.025, "active_share_all": 0.765}, 0.1: {"dead_fraction": 0.339, "active_share_all": 0.072}}
    shown = sparse.death_finding(rows, 0.0, 0.1)
    assert shown.case == "selective" and "10.6-fold" in str(shown) and "34% dead" in str(shown)
    rows[0.1] = {"dead_fraction": 0.9, "active_share_all": 0.07}  # nearly all of the fall is fewer units alive
    assert sparse.death_finding(rows, 0.0, 0.1).case == "death"


def test_grid_rows_measure_every_model_and_say_how_it_was_trained():
    torch.manual_seed(0)
    grid = sparse.penalty_grid([0.0, 0.1], 5.0, 0.1)
    models = {w: ShallowAutoencoder(hidden_dim=16) for w in grid.all}
    trained = {w: SimpleNamespace(model=m, history=History(train_loss=[1], val_mse=[0.1], seconds=[1.234]),
                                  from_cache=w == 0.0) for w, m in models.items()}
    penalty_for = lambda w: None if w == 0 else functools.partial(l1_penalty, weight=w) if w == 0.1 else L1Penalty(w)
    x = torch.rand(20, 784)
    rows = sparse.grid_rows(trained, grid, penalty_for, x, dead_fraction=lambda z: 0.25)
    assert [r["weight"] for r in rows] == grid.all
    assert [r["trained_with"] for r in rows] == ["none", "your l1_penalty", "L1Penalty"]
    assert [r["role"] for r in rows] == ["no penalty", "trade-off", "collapse (on purpose)"]
    assert all(r["dead_fraction"] == 0.25 and r["living_units"] == 12 and r["train_seconds"] == 1.23 for r in rows)
    assert [r["from_cache"] for r in rows] == [True, False, False]
    assert rows[1]["test_mse"] == pytest.approx(sparse.sparsity_measures(models[0.1], x)["test_mse"])


class _FixedCodes(torch.nn.Module):
    """encode returns the first columns of x as the code: a model whose firing is known."""

    def encode(self, x):
        return x[:, :4]

    def decode(self, z):
        return z

    def forward(self, x):
        return self.encode(x), x


def test_firing_rates_count_the_images_each_unit_is_on_for_busiest_first():
    x = torch.zeros(4, 784)
    x[:, 1] = 1.0          # on for every image
    x[:2, 3] = 0.5         # on for half
    rates = sparse.firing_rates(_FixedCodes(), x)
    assert rates.tolist() == [1.0, 0.5, 0.0, 0.0]
    import matplotlib
    matplotlib.use("Agg")
    fig = sparse.firing_rate_figure({"a": rates}, noun="digit")
    assert "2 living, 2 dead" in fig.axes[0].get_legend().get_texts()[0].get_text()

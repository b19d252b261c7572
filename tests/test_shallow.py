"""course.shallow: notebook 02's noise measures, decoder parts and filter measures."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from course import shallow
from course.models import Autoencoder, ShallowAutoencoder
from course.references import ORIGINAL_VALIDATION


class _Copy(Autoencoder):
    """A perfect copying machine: its output is its input."""

    def encode(self, x):
        return x

    def decode(self, z):
        return z


def _model(hidden_dim: int = 16) -> ShallowAutoencoder:
    torch.manual_seed(0)
    return ShallowAutoencoder(hidden_dim)


def test_correlation_is_one_for_a_copy_and_minus_one_for_a_negative():
    a = torch.rand(5, 784)
    assert torch.allclose(shallow.correlation(a, a), torch.ones(5), atol=1e-5)
    assert torch.allclose(shallow.correlation(a, 1 - a), -torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        shallow.correlation(a, a[:4])


def test_noise_response_tells_a_copying_machine_from_an_autoencoder(sample):
    noise = torch.rand(20, 784, generator=torch.Generator().manual_seed(0))
    copy = shallow.noise_response(_Copy(), noise, sample.test.pixels[:50], sample.train.pixels)
    assert set(copy) == set(shallow.NOISE_COLUMNS)
    assert copy["correlation_with_noise_input"] == pytest.approx(1.0, abs=1e-5)
    # a copy of the noise resembles a training image exactly as little as the noise does
    assert copy["correlation_with_closest_training_image"] == pytest.approx(copy["noise_with_closest_training_image"], abs=1e-5)
    model = shallow.noise_response(_model(), noise, sample.test.pixels[:50], sample.train.pixels)
    assert model["correlation_with_noise_input"] < 0.9


def test_closest_correlation_finds_an_image_in_the_reference(sample):
    reference = sample.train.pixels[:100]
    assert torch.allclose(shallow.closest_correlation(reference[10:13], reference), torch.ones(3), atol=1e-5)
    assert float(shallow.closest_correlation(torch.rand(5, 784), reference).max()) < 0.5


def test_decoder_parts_add_up_to_the_output():
    model, x = _model(), torch.rand(3, 784)
    parts, bias = shallow.decoder_parts(model, x)
    assert parts.shape == (3, 16, 784) and bias.shape == (784,)
    assert torch.allclose(torch.sigmoid(bias + parts.sum(1)), model.reconstruct(x), atol=1e-5)


def test_parts_needed_grows_with_the_share_and_never_passes_the_active_units():
    model, x = _model(32), torch.rand(10, 784)
    active = (model.encode(x) > 0).sum(1)
    most, half = shallow.parts_needed(model, x, share=1.0), shallow.parts_needed(model, x, share=0.5, chunk=3)
    assert most.shape == (10,) and bool((most <= active).all()) and bool((half <= most).all())
    assert bool((half >= 1).all())  # halfway from the bias alone takes at least one part
    with pytest.raises(ValueError, match="share"):
        shallow.parts_needed(model, x, share=0.0)


def test_parts_figure_shows_the_input_the_parts_and_the_sums():
    parts = torch.randn(16, 784)
    fig = shallow.parts_figure(torch.rand(1, 784), parts, {0: torch.rand(784), 2: torch.rand(784), 16: torch.rand(784)})
    titles = [ax.get_title() for ax in fig.axes]
    assert "input" in titles and any(t.startswith("part 8: z_j d_j\nnorm ") for t in titles) and any(t.startswith("bias alone\nMSE ") for t in titles) \
        and "the output\n(all 16 parts on)" in titles
    plt.close(fig)


def test_noise_figure_titles_each_output_with_its_correlation_to_its_input():
    torch.manual_seed(0)
    models = {8: ShallowAutoencoder(8), 16: ShallowAutoencoder(16)}
    noise = torch.rand(5, 784)
    fig = shallow.noise_figure(noise, models, n=3)
    assert len(fig.axes) == 9
    r = shallow.correlation(models[16].reconstruct(noise[:3]), noise[:3])
    assert fig.axes[7].get_title() == f"r = {float(r[1]):.2f}" and fig.axes[1].get_title() == ""
    plt.close(fig)


def test_filters_figure_titles_count_the_living_and_the_dead():
    filters = {4: torch.randn(4, 28, 28), 8: torch.randn(8, 28, 28)}
    living = {4: torch.tensor([2, 0, 1]), 8: torch.arange(8)}
    fig = shallow.filters_figure(filters, living, n_filters=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["width 4: 2 most often active of 3 living units\n(1 dead, not drawn)",
                      "width 8: 2 most often active of 8 living units\n(0 dead, not drawn)"]
    assert "all 3 living units" in shallow.filters_figure(filters, living, n_filters=64).axes[0].get_title()
    plt.close("all")


def test_nearest_similarity_finds_a_copy():
    f = torch.randn(3, 28, 28, generator=torch.Generator().manual_seed(1))
    f[2] = 2 * f[0]
    similarity = shallow.nearest_similarity(f)
    assert similarity[0] == pytest.approx(1.0) and similarity[2] == pytest.approx(1.0) and similarity[1] < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        shallow.nearest_similarity(f[:1])


def test_filter_measures_put_copies_above_the_random_baseline():
    f = torch.randn(8, 28, 28, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(28, 28, dtype=torch.bool)
    unrelated, copies = shallow.filter_measures(f, mask), shallow.filter_measures(torch.cat([f[:4], f[:4]]), mask)
    assert copies["nearest_neighbour_similarity"] == pytest.approx(1.0)
    assert unrelated["nearest_neighbour_similarity"] < 0.3 and unrelated["random_filters_similarity"] < 0.3
    assert unrelated["roughness"] > 0


def test_relative_cuts():
    assert shallow.relative_cuts([4.0, 2.0, 1.5]) == pytest.approx([0.5, 0.25])
    for bad in ([1.0], [1.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="positive"):
            shallow.relative_cuts(bad)


def test_tables_name_their_columns(sample):
    table = shallow.show_mse_table({64: 0.01, 32: 0.02}, sample)
    assert ORIGINAL_VALIDATION in table.columns and table.loc[32, ORIGINAL_VALIDATION] != table.loc[32, ORIGINAL_VALIDATION]
    garments = SimpleNamespace(dataset="fashion-mnist", test=sample.test, nouns="garments")
    assert list(shallow.show_mse_table({64: 0.01}, garments).columns) == ["this run: test MSE (1,000 test garments)"]
    rows = {64: dict.fromkeys(shallow.NOISE_COLUMNS, 0.1)}
    assert list(shallow.show_noise_table(rows).columns) == [name for key, name in shallow.NOISE_COLUMNS.items()
                                                            if key != shallow.NOISE_BASELINE]
    measures = {64: shallow.filter_measures(torch.randn(4, 28, 28), torch.ones(28, 28, dtype=torch.bool))}
    assert "nearest-neighbour similarity" in shallow.show_filter_table(measures).columns


def test_noise_table_caption_counts_the_training_images_searched(monkeypatch):
    """On the 3,333-image offline sample the closest image is sought among all 3,333, not the default 5,000."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.caption))
    rows = {64: {key: 0.5 for key in shallow.NOISE_COLUMNS}}
    shallow.show_noise_table(rows, 3333)
    shallow.show_noise_table(rows, 50000)
    assert shown == ["the closest training image sought among all 3,333",
                     f"the closest training image sought among the first {shallow.N_REFERENCE:,} of 50,000"]


def test_noise_finding_names_a_width_that_wins_only_narrowly():
    def row(closest, own):
        return {"correlation_with_closest_training_image": closest, "correlation_with_noise_input": own,
                "noise_with_closest_training_image": 0.10}
    clear = str(shallow.noise_finding({64: row(0.30, 0.05), 256: row(0.40, 0.10)}, "garment"))
    narrow = str(shallow.noise_finding({64: row(0.30, 0.05), 256: row(0.347, 0.332)}, "garment"))
    assert "at every width" in clear and "narrowly" not in clear
    assert "width 256 only narrowly, 0.35 against 0.33" in narrow and "width 64" not in narrow


def test_build_up_orders_the_parts_and_ends_on_the_output():
    model, x = _model(32), torch.rand(1, 784)
    parts, rebuilt = shallow.build_up(model, x, ks=(0, 1, 2, 4, 64))
    sizes = parts.norm(dim=1)
    assert parts.shape == (32, 784) and bool((sizes[:-1] >= sizes[1:]).all())  # the largest first
    on = int((model.encode(x) > 0).sum())
    assert set(rebuilt) == {k for k in (0, 1, 2, 4) if k < on} | {32}  # k past the units on: the same as the output
    assert torch.allclose(rebuilt[32], model.reconstruct(x)[0], atol=1e-6)
    assert torch.allclose(rebuilt[0], torch.sigmoid(model.decoder[0].bias.detach()))


def test_noise_figure_adds_the_closest_training_image_of_the_narrowest_model():
    torch.manual_seed(0)
    models = {8: ShallowAutoencoder(8), 16: ShallowAutoencoder(16)}
    noise, reference = torch.rand(5, 784), torch.rand(40, 784)
    fig = shallow.noise_figure(noise, models, n=3, reference=reference)
    assert len(fig.axes) == 12  # noise, two widths, the closest training images
    r, index = shallow.closest_correlation(models[8].reconstruct(noise[:3]), reference, index=True)
    assert fig.axes[9].get_title() == f"r = {float(r[0]):.2f}"
    assert torch.allclose(torch.as_tensor(fig.axes[9].images[0].get_array()).float().flatten(), reference[index[0]])
    assert torch.allclose(r, shallow.closest_correlation(models[8].reconstruct(noise[:3]), reference))
    plt.close(fig)


def test_parts_figure_calls_the_sum_of_every_part_on_the_output_and_gives_each_sum_its_mse_to_it():
    parts = torch.cat([torch.randn(5, 784), torch.zeros(3, 784)])  # 5 units on, 3 off
    sums = {0: torch.rand(784), 2: torch.rand(784), 5: torch.rand(784)}
    fig = shallow.parts_figure(torch.rand(1, 784), parts, sums)
    titles = [ax.get_title() for ax in fig.axes]
    assert "the output\n(all 5 parts on)" in titles
    assert f"2 parts\nMSE {float(((sums[2] - sums[5]) ** 2).mean()):.4f}" in titles
    assert f"part 1: z_j d_j\nnorm {float(parts[0].norm()):.2f}" in titles  # the parts' size, by which they are ranked
    plt.close(fig)


def test_dark_pixels_finding_sums_the_parts_the_inputs_switch_on():
    torch.manual_seed(0)
    model = ShallowAutoencoder(4)
    dark = torch.zeros(784, dtype=torch.bool)
    dark[:10] = True
    with torch.no_grad():
        model.decoder[0].weight[:10] = -1.0  # every part pulls the dark pixels down
        model.decoder[0].bias[:10] = 0.0
    text = str(shallow.dark_pixels_finding(model, dark, "digits", torch.rand(6, 784)))
    assert "100% of the part weights are negative" in text and "the bias there is +0.00" in text and "add -" in text
    assert "the bias alone would give 0.50" in text and "(at the other pixels 0." in text
    with torch.no_grad():
        model.decoder[0].weight[:10] = 1.0
    assert "yet before the sigmoid the parts" in str(shallow.dark_pixels_finding(model, dark, "digits", torch.rand(6, 784)))


def test_width_findings_name_which_way_the_widest_models_gap_goes():
    mse = {64: 0.02, 128: 0.015, 256: 0.01}
    assert "worse on validation" in str(shallow.width_findings(mse, 0.010, 0.012, "digits")[1])
    assert "within 10%" in str(shallow.width_findings(mse, 0.010, 0.0105, "digits")[1])
    assert "50% better on validation" in str(shallow.width_findings(mse, 0.010, 0.005, "digits")[1])

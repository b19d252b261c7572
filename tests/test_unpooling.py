"""course.unpooling: the fixed-index control of notebook 06 and the index swap."""
import pytest
import torch

from course.models import ConvAutoencoder, ConvCodeAutoencoder
from course import unpooling
from course.unpooling import FixedIndexUnpoolAutoencoder, fixed_random_indices, index_swap, swapped_decode


def test_fixed_random_indices_pick_one_pixel_of_each_window_the_same_for_every_call():
    idx = fixed_random_indices(8, (13, 13), (26, 26), seed=0)
    assert idx.shape == (8, 13, 13)
    rows, cols = idx // 26, idx % 26
    assert ((rows // 2) == torch.arange(13)[:, None]).all() and ((cols // 2) == torch.arange(13)[None, :]).all()
    assert set((2 * (rows % 2) + cols % 2).flatten().tolist()) == {0, 1, 2, 3}
    assert torch.equal(idx, fixed_random_indices(8, (13, 13), (26, 26), seed=0))
    assert not torch.equal(idx, fixed_random_indices(8, (13, 13), (26, 26), seed=1))


def test_fixed_random_indices_refuse_a_map_that_does_not_fit():
    with pytest.raises(ValueError, match="must fit"):
        fixed_random_indices(1, (3, 3), (5, 5))


def test_the_control_ignores_the_image_beyond_its_code():
    torch.manual_seed(0)
    model = FixedIndexUnpoolAutoencoder().eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ConvAutoencoder().parameters())
    x = torch.rand(4, 784)
    z, x_hat = model(x)
    assert z.shape == (4, 16, 1, 1) and x_hat.shape == (4, 1, 28, 28)
    assert torch.equal(model.decode(z), x_hat)  # the decoder needs nothing but the code
    # The leaky model's output changes with another image's indices; the control has none to change.
    leaky = ConvAutoencoder().eval()
    z_l, pooled = leaky.encode_with_indices(x)
    _, pooled_other = leaky.encode_with_indices(x.flip(0))
    assert not torch.allclose(leaky.decode(z_l, pooled), leaky.decode(z_l, pooled_other))


def test_the_control_refuses_pooling_indices():
    model = FixedIndexUnpoolAutoencoder()
    z, pooled = model.encode_with_indices(torch.rand(2, 784))
    with pytest.raises(ValueError, match="pooled must be None"):
        model.decode(z, pooled)


def test_the_control_trains_every_weight():
    model = FixedIndexUnpoolAutoencoder()
    model(torch.rand(3, 1, 28, 28))[1].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_index_swap_of_an_image_with_itself_is_never_closer_to_the_donor():
    torch.manual_seed(0)
    x = torch.rand(6, 784)
    result = index_swap(ConvAutoencoder(), x, x)
    assert result["closer_to_b"] == 0.0 and torch.equal(result["to_a"], result["to_b"])
    assert result["to_a"].shape == (6,)


def test_index_swap_refuses_a_model_without_indices_and_unequal_sets():
    with pytest.raises(ValueError, match="encode_with_indices"):
        index_swap(ConvCodeAutoencoder(), torch.rand(2, 784), torch.rand(2, 784))
    with pytest.raises(ValueError, match="same number"):
        index_swap(ConvAutoencoder(), torch.rand(2, 784), torch.rand(3, 784))


def test_swapped_decode_takes_b_indices_only_at_the_layers_named():
    torch.manual_seed(0)
    model = ConvAutoencoder().eval()
    a, b = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        z_a, pooled_a = model.encode_with_indices(a)
        _, pooled_b = model.encode_with_indices(b)
        assert torch.equal(swapped_decode(model, a, b, layers=[1]), model.decode(z_a, [pooled_b[0], *pooled_a[1:]]))
        assert torch.equal(swapped_decode(model, a, b), model.decode(z_a, pooled_b))
        assert not torch.equal(swapped_decode(model, a, b, layers=[1]), swapped_decode(model, a, b, layers=[3]))
    for bad in ([], [0], [4], [True]):
        with pytest.raises(ValueError, match="layers"):
            index_swap(model, a, b, layers=bad)


@pytest.mark.parametrize("mse, verdict", [((0.02, 0.05, 0.03), "beats"), ((0.04, 0.05, 0.03), "not enough"),
                                          ((0.06, 0.05, 0.03), "do not even help")])
def test_print_verdicts_reads_the_table_in_pairs(capsys, mse, verdict):
    from course.unpooling import print_verdicts
    print_verdicts(dict(zip(("leaky", "control", "code-only"), mse)))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and f"{mse[1] / mse[0]:.1f} times as high" in lines[0] and verdict in lines[2]


def test_comparison_figure_puts_the_best_model_on_top_and_the_mean_image_as_a_line():
    import matplotlib.pyplot as plt

    fig = unpooling.comparison_figure({"a": 0.03, "b": 0.01, "c": 0.02}, baseline=0.05)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]  # bottom-up: the best, b, on top
    assert ax.lines[0].get_xdata()[0] == 0.05 and "0.0500" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="errors"):
        unpooling.comparison_figure({}, baseline=0.05)
    with pytest.raises(ValueError, match="untrained"):
        unpooling.comparison_figure({"a": 0.03}, baseline=0.05, untrained=["z"])
    plt.close(fig)


def test_comparison_figure_colours_the_bars_of_no_model_of_their_own():
    import matplotlib.pyplot as plt

    fig = unpooling.comparison_figure({"a": 0.03, "fed": 0.02}, baseline=0.05, untrained=["fed"])
    ax = fig.axes[0]
    colours = {label.get_text(): patch.get_facecolor() for label, patch in zip(ax.get_yticklabels(), ax.patches)}
    assert colours["fed"] != colours["a"]
    assert "not retrained" in [t.get_text() for t in ax.get_legend().get_texts()][-1]
    plt.close(fig)


def test_layer_swap_finding_compares_the_layer_that_moves_most_with_the_richest():
    bits = [{"layer": 1, "entropy_bits": 1300.0}, {"layer": 2, "entropy_bits": 400.0}, {"layer": 3, "entropy_bits": 20.0}]
    same = unpooling.layer_swap_finding({1: 0.31, 2: 0.09, 3: 0.0}, bits)
    assert same.case is True and "pooling layer 1" in str(same) and "31%" in str(same)
    other = unpooling.layer_swap_finding({1: 0.08, 2: 0.34, 3: 0.0}, bits)
    assert other.case is False and "pooling layer 2 moves the output most" in str(other) and "not layer 1" in str(other)

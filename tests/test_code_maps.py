"""course.code_maps: the decoded grid of a 2-D code space and the prior's circles."""
import math

import matplotlib
import pytest
import torch

from course.code_maps import centre_finding, code_grid, decoded_grid, prior_circles, prior_share_within, share_within
from course.models import VariationalAutoencoder

matplotlib.use("Agg")


def test_code_grid_runs_left_to_right_and_top_down():
    z = code_grid(reach=1.0, side=3)
    assert z.shape == (9, 2)
    assert z[0].tolist() == [-1.0, 1.0] and z[2].tolist() == [1.0, 1.0] and z[-1].tolist() == [1.0, -1.0]


@pytest.mark.parametrize("side, reach", [(1, 3.0), (2.5, 3.0), (5, 0.0), (5, -1.0)])
def test_code_grid_refuses_bad_sizes(side, reach):
    with pytest.raises(ValueError, match="side|reach"):
        code_grid(reach=reach, side=side)


def test_decoded_grid_puts_each_code_s_image_in_its_tile():
    torch.manual_seed(0)
    model = VariationalAutoencoder(latent_dim=2, hidden_dim=8)
    canvas = decoded_grid(model, reach=2.0, side=4)
    assert canvas.shape == (4 * 28, 4 * 28)
    z = code_grid(2.0, 4)
    with torch.no_grad():
        expected = model.eval().decode(z[1:2]).reshape(28, 28)  # top row, second column
    assert torch.allclose(canvas[:28, 28:56], expected)


def test_share_within_counts_the_codes_inside_the_radius():
    z = torch.tensor([[0.5, 0.0], [0.0, 1.5], [3.0, 4.0]])
    assert share_within(z, 1) == pytest.approx(1 / 3)
    assert share_within(z, 5) == 1.0
    with pytest.raises(ValueError, match="shape"):
        share_within(torch.zeros(0, 2), 1)


def test_prior_share_within_matches_sampling():
    draws = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    for radius in (1, 2):
        assert share_within(draws, radius) == pytest.approx(prior_share_within(radius), abs=0.005)
    assert prior_share_within(2) == pytest.approx(1 - math.exp(-2))
    with pytest.raises(ValueError, match="dim"):
        prior_share_within(1, dim=3)


def test_prior_circles_draws_three_labelled_circles_and_the_grid_box_beside_the_class_legend():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.scatter([0], [0], label="class 0")
    class_legend = ax.legend()
    prior_circles(ax, square=3.0)
    circles = [p for p in ax.patches if hasattr(p, "radius")]
    assert [round(p.radius, 1) for p in circles] == [1.0, 2.0, 3.0]
    assert "39%" in circles[0].get_label() and "99%" in circles[2].get_label()
    box = [p for p in ax.patches if not hasattr(p, "radius")]
    assert len(box) == 1 and (box[0].get_x(), box[0].get_width()) == (-3.0, 6.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "the decoded grid (±3)"
    assert class_legend in ax.artists or class_legend in ax.get_children()  # still drawn
    plt.close(fig)


def test_centre_finding_says_whether_the_codes_leave_the_prior_s_centre_empty():
    ring = torch.tensor([[2.0, 0.0], [0.0, -2.0], [-3.0, 0.0], [1.5, 1.5], [1.2, 0.0], [0.5, 0.0]])  # 1 of 6 within 1 sigma
    assert "partly empty: 17% of them" in str(centre_finding(ring))  # the prior's draws: 39%
    assert "more thinly than its draws: 25%" in str(centre_finding(ring[2:]))
    assert "about as its draws do: 100%" in str(centre_finding(torch.zeros(5, 2)))

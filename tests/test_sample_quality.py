"""The data-likeness measure: a Fréchet distance in a probe classifier's features, and the controls that calibrate it."""
import pytest
import torch

from course import metrics
from course.metrics import (frechet_distance, gaussian_blur, likeness_controls, nearest_neighbour_mse,
                            probe_accuracy, probe_classifier, probe_features, probe_frechet_distance)


@pytest.fixture(scope="module")
def measured(sample):
    """The controls of the offline sample (667 images each) and their distances to the 1,000 test digits."""
    controls = likeness_controls(sample, seed=0)
    return controls, {name: probe_frechet_distance(x, sample) for name, x in controls.items()}


def test_the_controls_are_named_and_sized_for_the_data(sample, measured):
    controls, _ = measured
    assert list(controls) == ["real validation digits", "validation digits, blurred (σ = 1 px)",
                              "the mean training image, repeated", "validation digits + pixel noise (σ = 0.3)",
                              "uniform pixel noise"]
    # 8-bit images, as real images are stored: a quarter of the memory of float32
    assert all(x.shape == (len(sample.val), 784) and x.dtype == torch.uint8 for x in controls.values())
    assert torch.equal(controls["real validation digits"], sample.val.pixels)


def test_real_images_rank_first_and_blur_noise_and_the_mean_image_clearly_behind(measured):
    _, fd = measured
    real = fd["real validation digits"]
    assert real == min(fd.values())
    assert fd["validation digits, blurred (σ = 1 px)"] > 1.5 * real  # about 2x on this sample
    assert fd["validation digits + pixel noise (σ = 0.3)"] > 5 * real
    assert fd["the mean training image, repeated"] > 20 * real
    assert fd["uniform pixel noise"] == max(fd.values())


def test_blur_wins_nearest_training_image_mse_but_not_this_measure(sample, measured):
    """Why the course needs this measure: nearest-image MSE prefers blurred digits to real ones."""
    controls, fd = measured
    real, blurred = controls["real validation digits"], controls["validation digits, blurred (σ = 1 px)"]
    assert nearest_neighbour_mse(blurred, sample.train.x).median() < nearest_neighbour_mse(real, sample.train.x).median()
    assert fd["validation digits, blurred (σ = 1 px)"] > fd["real validation digits"]


def test_an_explicit_reference_gives_the_same_distance_as_the_default(sample, measured):
    _, fd = measured
    real = sample.val.x
    assert probe_frechet_distance(real, sample, reference=sample.test.x) == pytest.approx(
        fd["real validation digits"], rel=1e-6)
    assert probe_frechet_distance(real, sample, reference=real) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_on_exact_cases():
    a = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)).double()
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)  # same covariance
    centred = a - a.mean(0)
    # b = 2a: means 0 and 0, covariances C and 4C: tr C + 4 tr C - 2 tr(2C) = tr C
    assert frechet_distance(centred, 2 * centred) == pytest.approx(float(torch.cov(centred.T).trace()), rel=1e-6)
    b = torch.randn(300, 6, generator=torch.Generator().manual_seed(1)) * 2 + 1
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    one_point = a[:1].expand(200, -1)  # a repeated image: zero covariance
    assert frechet_distance(one_point, a) == pytest.approx(
        float((a[0] - a.mean(0)).pow(2).sum() + torch.cov(a.T).trace()), rel=1e-6)


def test_the_probe_is_a_real_classifier_of_the_data(sample, measured):
    probe = probe_classifier(sample, seed=0)  # trained for `measured`, kept in memory
    assert probe_classifier(sample, seed=0) is probe
    assert probe_accuracy(probe, sample.test.x, sample.test.y) > 0.85
    features = probe_features(probe, sample.test.pixels[:5])  # uint8 pixels are converted
    torch.testing.assert_close(features, probe_features(probe, sample.test.x[:5]))
    assert features.shape == (5, metrics.PROBE_HIDDEN_DIM)


def test_the_probe_is_seeded_trains_under_no_grad_and_leaves_the_global_random_state(sample, monkeypatch):
    monkeypatch.setattr(metrics, "PROBE_STEPS", 20)  # the training itself is the same at any length
    monkeypatch.setattr(metrics, "_PROBES", {})
    state = torch.random.get_rng_state()
    probe = probe_classifier(sample, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    monkeypatch.setattr(metrics, "_PROBES", {})
    with torch.no_grad():
        again = probe_classifier(sample, seed=3)
    assert again is not probe
    assert all(torch.equal(p, q) for p, q in zip(probe.parameters(), again.parameters()))
    other = probe_classifier(sample, seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(probe.parameters(), other.parameters()))


def test_gaussian_blur_keeps_flat_regions_and_softens_edges():
    flat = torch.full((1, 784), 0.5)
    assert torch.allclose(gaussian_blur(flat).reshape(28, 28)[3:-3, 3:-3], torch.tensor(0.5))
    edge = torch.zeros(1, 28, 28)
    edge[:, :, 14:] = 1.0
    row = gaussian_blur(edge.reshape(1, 784), sigma=1.0).reshape(28, 28)[14]
    assert 0 < float(row[13]) < 0.5 < float(row[14]) < 1  # the step becomes a ramp
    assert torch.allclose(row[18:24], torch.tensor(1.0), atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(flat, sigma=0)


@pytest.mark.parametrize("x, match", [
    (torch.rand(10, 784) * 255, r"x must hold pixel values in \[0, 1\]"),
    (torch.full((10, 784), float("nan")), "got NaN in 7840 pixels"),
    (torch.rand(10, 100), r"x must have shape \(N, 784\) or \(N, 1, 28, 28\)"),
    (torch.rand(1, 784), "with N >= 2"),
])
def test_probe_frechet_distance_names_bad_images(sample, x, match):
    with pytest.raises(ValueError, match=match):
        probe_frechet_distance(x, sample)


def test_likeness_controls_and_frechet_distance_name_bad_arguments(sample):
    with pytest.raises(ValueError, match="n must be an int from 2 to the validation size 667"):
        likeness_controls(sample, n=668)
    with pytest.raises(ValueError, match="features must be"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))


# --- the chunked nearest-image MSE and the likeness table of 05 and 07 ------------------------------

def test_nearest_neighbour_mse_in_chunks_equals_the_brute_force_answer(sample):
    x = sample.val.x[:37]
    reference = sample.train.pixels[:301]  # uint8, converted a chunk at a time
    brute = ((x[:, None, :] - reference.float()[None] / 255) ** 2).mean(2).min(1).values
    for chunk in (7, 100, 5000):
        got = nearest_neighbour_mse(x, reference, batch_size=10, reference_chunk=chunk)
        assert torch.allclose(got, brute, atol=1e-6)


def test_nearest_code_distance_in_units_of_the_spread():
    from course.likeness import nearest_code_distance

    reference = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [9.0, 2.0]])
    assert torch.allclose(nearest_code_distance(z, reference, chunk=1), torch.tensor([1.0, 5 ** 0.5]))
    assert torch.allclose(nearest_code_distance(z, reference, scale=torch.tensor([1.0, 2.0])),
                          torch.tensor([1.0, 2 ** 0.5]))
    with pytest.raises(ValueError, match="scale must be 2 numbers > 0"):
        nearest_code_distance(z, reference, scale=torch.tensor([1.0, 0.0]))


def test_likeness_table_measures_controls_and_decoded_codes(sample, measured):
    from course.likeness import CODE_DISTANCE, FRECHET, NEAREST_MSE, LikenessTable

    _, distances = measured
    table = LikenessTable(sample, seed=0, n_nearest=50)
    names = table.add_controls()
    assert names == list(distances) and len(table) == 5
    real = names[0]
    assert table.frechet(real) == pytest.approx(distances[real], rel=1e-6)
    assert table.nearest_mse(real) == pytest.approx(
        float(nearest_neighbour_mse(sample.val.x[:50], sample.train.pixels).median()), rel=1e-6)
    z = torch.randn(len(sample.val), 3, generator=torch.Generator().manual_seed(0))
    table.set_reference_codes(z[:100] + 1, scale=torch.ones(3))
    row = table.measure("decoded codes", sample.val.pixels, z=z)
    assert set(row) == {FRECHET, NEAREST_MSE, CODE_DISTANCE} and table.code_distance("decoded codes") > 0
    assert table[real]["kind"] == "control"
    frame = table.show([real, "decoded codes"], caption="c")
    assert list(frame.index) == [real, "decoded codes"]
    assert list(table.show(columns=[FRECHET, CODE_DISTANCE]).columns) == [FRECHET, CODE_DISTANCE]
    with pytest.raises(ValueError, match="columns must be among"):
        table.show(columns=["accuracy"])
    record = table.record()
    assert record["decoded codes"][FRECHET] == round(row[FRECHET], 5)
    with pytest.raises(KeyError, match="no set named 'nope'"):
        table.frechet("nope")


def test_likeness_table_without_nearest_measures_the_frechet_distance_only(sample):
    from course.likeness import FRECHET, LikenessTable

    table = LikenessTable(sample, n_nearest=None)
    assert set(table.measure("real", sample.val.pixels[:100])) == {FRECHET}
    with pytest.raises(ValueError, match="give the training codes first"):
        table.measure("codes", sample.val.pixels[:100], z=torch.zeros(100, 2))
    with pytest.raises(ValueError, match="x must hold pixel values"):
        table.measure("bad", sample.val.x[:10] * 255)

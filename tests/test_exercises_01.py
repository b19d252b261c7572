"""Notebook 01's exercises: each typical mistake gets its own hint; other correct answers pass."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from course import models, training
from course.exercises import EXERCISES, solution, solution_source, use
from exercise_helpers import NOTEBOOK_IMPORTS, answer_id, notebook_tests, stub_for, verdict


# 01.pca_reconstruct
def pca_no_centre(x, k):
    vt = torch.linalg.svd(x, full_matrices=False).Vh[:k]
    return x @ vt.T @ vt


def pca_smallest_variance(x, k):
    mean = x.mean(0)
    values, vectors = torch.linalg.eigh((x - mean).T @ (x - mean))  # ascending: the first k are the smallest
    v = vectors[:, :k]
    return (x - mean) @ v @ v.T + mean


def pca_no_mean_back(x, k):
    centred = x - x.mean(0)
    vt = torch.linalg.svd(centred, full_matrices=False).Vh[:k]
    return centred @ vt.T @ vt


def pca_codes_only(x, k):
    centred = x - x.mean(0)
    return centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:k].T


def pca_fixed_k(x, k):
    return models.pca_reconstruct(x, 30)


def pca_randomized(x, k):
    mean = x.mean(0)
    _, _, v = torch.pca_lowrank(x, q=k, center=True)
    return (x - mean) @ v @ v.T + mean


def pca_columns_of_vh(x, k):
    centred = x - x.mean(0)
    v = torch.linalg.svd(centred, full_matrices=False).Vh[:, :k]  # columns, not rows
    return centred @ v @ v.T + x.mean(0)


def pca_centred_per_image(x, k):
    image_means = x.mean(1, keepdim=True)  # one mean per image, over its pixels: the wrong axis
    centred = x - image_means
    vt = torch.linalg.svd(centred, full_matrices=False).Vh[:k]
    return centred @ vt.T @ vt + image_means


# 01.train_on_batch: the reference's lines, with one thing changed
def step_no_zero_grad(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    loss.backward()  # gradients pile up from call to call
    optimizer.step()
    return loss.item()


def step_before_backward(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    optimizer.step()  # no gradients yet
    loss.backward()
    return loss.item()


def step_lagging(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.step()  # applies the previous batch's gradients
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def step_no_backward(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_zero_grad_after_backward(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    loss.backward()
    optimizer.zero_grad()  # clears the gradients just computed (to None)
    optimizer.step()
    return loss.item()


def step_zero_grad_to_zeros_after_backward(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    loss.backward()
    optimizer.zero_grad(set_to_none=False)  # clears them to zeros: "every gradient is 0" would misdiagnose it
    optimizer.step()
    return loss.item()


def step_loss_only(model, optimizer, x):
    z, x_hat = model(x)
    return F.mse_loss(x_hat, x).item()


def step_no_step(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def step_twice(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def step_sum(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x, reduction="sum")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_sum_over_pixels(model, optimizer, x):
    z, x_hat = model(x)
    loss = ((x_hat - x) ** 2).sum(dim=1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_target_code(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, z)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_outputs_swapped(model, optimizer, x):
    x_hat, z = model(x)  # forward returns (z, x_hat)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_output_pair_as_tensor(model, optimizer, x):
    loss = F.mse_loss(model(x), x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_detached_target(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x_hat.detach())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_unreduced_loss(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x, reduction="none")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.mean().item()


def step_forward_without_grad(model, optimizer, x):
    with torch.no_grad():
        z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_returns_graph(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def step_returns_nothing(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def step_returns_loss_after_step(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return F.mse_loss(model(x)[1], x).item()  # a second forward pass, after the update


def step_with_loss(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step(loss)
    return loss.item()


def step_on_the_loss(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    loss.backward()
    loss.step()
    return loss.item()


def step_backward_on_optimizer(model, optimizer, x):
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    optimizer.zero_grad()
    optimizer.backward()
    optimizer.step()
    return loss.item()


def step_own_optimizer(model, optimizer, x):
    own = torch.optim.SGD(model.parameters(), lr=0.5)  # the same kind and rate as the check's, yet not its
    z, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    own.zero_grad()
    loss.backward()
    own.step()
    return loss.item()


WRONG = [
    ("01.pca_reconstruct", pca_no_centre, "did not centre"),
    ("01.pca_reconstruct", pca_smallest_variance, "SMALLEST"),
    ("01.pca_reconstruct", pca_no_mean_back, "add the mean image back"),
    ("01.pca_reconstruct", pca_codes_only, "returned the codes"),
    ("01.pca_reconstruct", pca_fixed_k, "use k"),
    ("01.pca_reconstruct", pca_randomized, "approximate method"),
    ("01.pca_reconstruct", pca_columns_of_vh, "its two axes are not alike"),
    ("01.pca_reconstruct", pca_centred_per_image, "centred x along the wrong axis: per image"),
    ("01.train_on_batch", step_no_zero_grad, "backward() adds to the .grad already there"),
    ("01.train_on_batch", step_before_backward, "optimizer.step() ran before loss.backward()"),
    ("01.train_on_batch", step_lagging, "optimizer.step() ran before loss.backward()"),
    ("01.train_on_batch", step_no_backward, "found no gradients and none were computed"),
    ("01.train_on_batch", step_no_step, "the gradients are there but the weights did not move"),
    ("01.train_on_batch", step_zero_grad_after_backward, "computed (backward ran) but cleared again before the step"),
    ("01.train_on_batch", step_zero_grad_to_zeros_after_backward,
     "computed (backward ran) but cleared again before the step"),
    ("01.train_on_batch", step_loss_only, "no gradient was computed and the optimizer never stepped"),
    ("01.train_on_batch", step_twice, "stepped the optimizer 2 times"),
    ("01.train_on_batch", step_sum, "25,088 times the reference's: you summed the squared errors"),
    ("01.train_on_batch", step_sum_over_pixels, "784 times the reference's: you summed over the pixels"),
    ("01.train_on_batch", step_target_code, "not with the code z"),
    ("01.train_on_batch", step_outputs_swapped, "not with the code z"),
    ("01.train_on_batch", step_output_pair_as_tensor, "model(x) returns the pair (z, x_hat)"),
    ("01.train_on_batch", step_detached_target, "every gradient is 0"),
    ("01.train_on_batch", step_unreduced_loss, "loss.backward() needs one number"),
    ("01.train_on_batch", step_forward_without_grad, "your loss has no graph"),
    ("01.train_on_batch", step_returns_graph, "with its graph (requires_grad=True)"),
    ("01.train_on_batch", step_returns_nothing, "returned None (a missing return statement?)"),
    ("01.train_on_batch", step_returns_loss_after_step, "return the loss you called backward on"),
    ("01.train_on_batch", step_with_loss, "optimizer.step() takes no loss"),
    ("01.train_on_batch", step_on_the_loss, "step() and zero_grad() are the optimizer's"),
    ("01.train_on_batch", step_backward_on_optimizer, "step() and zero_grad() are the optimizer's"),
    ("01.train_on_batch", step_own_optimizer, "an optimizer of your own"),
]


# Correct answers written differently from the reference: the checks must not demand its exact code.
# Correct answers written differently from the reference: the checks must not demand its exact code.
def pca_by_eigh(x, k):
    mean = x.mean(dim=0, keepdim=True)
    centred = x - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred / (x.shape[0] - 1))
    v = vectors[:, -k:]  # eigh sorts ascending: the last k have the largest variance
    return centred @ v @ v.T + mean


def step_zero_grad_last(model, optimizer, x):
    x_hat = model(x)[1]
    loss = ((x_hat - x) ** 2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # clearing after the step leaves the next call clean too
    return float(loss)


CORRECT = [
    ("01.pca_reconstruct", pca_by_eigh),
    ("01.train_on_batch", step_zero_grad_last),
]

(test_a_typical_mistake_fails_with_its_own_hint, test_every_exercise_detects_at_least_two_typical_mistakes,
 test_different_mistakes_of_one_exercise_get_different_hints, test_a_correct_answer_written_differently_passes,
 test_strict_mode_raises_the_same_hint_for_a_wrong_answer) = notebook_tests("01", WRONG, CORRECT)


def test_the_train_on_batch_reference_is_the_courses_train_step_with_its_loss_written_out(capsys):
    # Adam, as the course trains: the same weights and losses over three batches, and the course's step passes.
    torch.manual_seed(0)
    ours = models.small_autoencoder(latent_dim=4, hidden_dim=16)
    course = copy.deepcopy(ours)
    ours_optimizer, course_optimizer = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (ours, course))
    x = torch.rand(3, 16, 784, generator=torch.Generator().manual_seed(1))
    for batch in x:
        loss = solution("01.train_on_batch")(ours, ours_optimizer, batch)
        course_loss = training.train_step(course, course_optimizer, batch, batch, training.Reconstruction())
        assert not loss.requires_grad and torch.equal(loss, course_loss)
    for p, q in zip(ours.parameters(), course.parameters()):
        assert torch.equal(p, q)
    assert verdict(capsys, "01.train_on_batch", lambda model, optimizer, x: training.train_step(
        model, optimizer, x, x, training.Reconstruction()))[0]


def test_the_old_name_train_step_still_works(capsys):
    # The exercise was "01.train_step" (its function shadowed course.training.train_step); notebooks may still say so.
    assert "01.train_step" not in EXERCISES and solution("01.train_step") is solution("01.train_on_batch")
    passed, line = verdict(capsys, "01.train_step", step_zero_grad_last)
    assert passed and line.startswith("✓ 01.train_step: correct")
    passed, line = verdict(capsys, "01.train_step", step_sum)
    assert not passed and "you summed the squared errors" in line
    assert use("01.train_step", stub_for("01.train_step")) is solution("01.train_on_batch")
    assert capsys.readouterr().out == "using the course's reference 01.train_step (not attempted yet)\n"
    namespace: dict = {}
    exec(NOTEBOOK_IMPORTS + solution_source("01.train_step"), namespace)  # the solved notebook's cell
    assert namespace["train_step"] is namespace["train_on_batch"]
    assert verdict(capsys, "01.train_step", namespace["train_step"])[0]


# Issue 19: a wrong answer's line names the mistake and asks; it does not print the fix as code.
FIX_AS_CODE = [
    ("01.pca_reconstruct", pca_columns_of_vh, ["Vh[:k]", "@"]),
    ("01.pca_reconstruct", pca_codes_only, ["@", "directions.T"]),
    ("01.train_on_batch", step_returns_graph, ["loss.detach()", "loss.item()"]),
    ("01.train_on_batch", step_returns_nothing, ["loss.detach()", "loss.item()"]),
    ("01.train_on_batch", step_no_zero_grad, ["zero_grad() before", "optimizer.zero_grad()"]),
    ("01.train_on_batch", step_lagging, ["zero_grad, backward, step"]),
    ("01.train_on_batch", step_no_backward, ["loss.backward() before"]),
    ("01.train_on_batch", step_no_step, ["optimizer.step() after"]),
    ("01.train_on_batch", step_detached_target, ["F.mse_loss(x_hat, x)"]),
    ("01.train_on_batch", step_with_loss, ["with no argument"]),
]


@pytest.mark.parametrize("name, answer, code", FIX_AS_CODE, ids=[answer_id(n, a) for n, a, _ in FIX_AS_CODE])
def test_a_wrong_answers_line_does_not_print_the_fix_as_code(capsys, name, answer, code):
    passed, line = verdict(capsys, name, answer)
    assert not passed and not [c for c in code if c in line], line


def test_centring_each_image_by_its_own_mean_is_not_called_uncentred(capsys):
    passed, line = verdict(capsys, "01.pca_reconstruct", pca_centred_per_image)
    assert not passed and "did not centre" not in line and "per pixel over the images" in line

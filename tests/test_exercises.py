"""The exercises: references pass, typical mistakes fail with their own hint, stubs, fallbacks and solutions."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course import exercises, metrics, models, training
from course.exercises import EXERCISES, check, solution, solution_source, use

# The imports a notebook has before its exercises: every solution_source must run after exactly these.
NOTEBOOK_IMPORTS = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"


def verdict(capsys, name, answer) -> tuple[bool, str]:
    """check()'s result and the one line it printed."""
    passed = check(name, answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"check printed {out!r}, not one line"
    return passed, out.strip()


# ---------------------------------------------------------------------------------------------
# Typical wrong answers, one per mistake, with a phrase of the hint that names it.

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


# 01.train_step: the reference's lines, with one thing changed
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


# 03.l1_penalty
def l1_sum_over_batch(z, weight):
    return weight * z.abs().sum(0).mean()


def l1_sum_everything(z, weight):
    return weight * z.abs().sum()


def l1_sum_over_units(z, weight):
    return weight * z.abs().sum(1).mean()


def l1_no_abs(z, weight):
    return weight * z.mean()


def l1_no_weight(z, weight):
    return z.abs().mean()


def l1_per_image(z, weight):
    return weight * z.abs().mean(1)


def l1_item(z, weight):
    return (weight * z.abs().mean()).item()


def l1_squared(z, weight):
    return weight * z.pow(2).mean()


# 03.dead_fraction
def dead_zero_entries(z):
    return float((z == 0).float().mean())


def dead_on_any_image(z):
    return float((z == 0).any(dim=0).float().mean())


def dead_count(z):
    return int((z == 0).all(dim=0).sum())


def dead_transposed(z):
    return float((z == 0).all(dim=1).float().mean())


def dead_alive_fraction(z):
    return float((z > 0).any(dim=0).float().mean())


def dead_no_return(z):
    float((z == 0).all(dim=0).float().mean())  # computed, never returned


# 04.gaussian_corrupt
def corrupt_no_clip(x, noise_std, generator):
    return x + noise_std * torch.randn(x.shape, generator=generator)


def corrupt_std_as_variance(x, noise_std, generator):
    return (x + math.sqrt(noise_std) * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def corrupt_ignores_generator(x, noise_std, generator):
    return (x + noise_std * torch.randn_like(x)).clamp(0, 1)


def corrupt_multiplicative(x, noise_std, generator):
    return (x * (1 + noise_std * torch.randn(x.shape, generator=generator))).clamp(0, 1)


def corrupt_per_image(x, noise_std, generator):
    return (x + noise_std * torch.randn(x.shape[0], 1, generator=generator)).clamp(0, 1)


def corrupt_same_pattern(x, noise_std, generator):
    return (x + noise_std * torch.randn(x.shape[1], generator=generator)).clamp(0, 1)


def corrupt_in_place(x, noise_std, generator):
    return x.add_(noise_std * torch.randn(x.shape, generator=generator)).clamp_(0, 1)


def corrupt_uniform(x, noise_std, generator):
    return (x + noise_std * torch.rand(x.shape, generator=generator)).clamp(0, 1)


# 04.denoising_loss
def denoise_noisy_target(model, x, corrupt):
    noisy = corrupt(x)
    return F.mse_loss(model(noisy)[1], noisy)


def denoise_clean_input(model, x, corrupt):
    return F.mse_loss(model(x)[1], x)


def denoise_corrupt_unused(model, x, corrupt):
    noisy = corrupt(x)  # noqa: F841 (made, then forgotten)
    return F.mse_loss(model(x)[1], x)


def denoise_sum(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], x, reduction="sum")


def denoise_second_draw_target(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], corrupt(x))


def denoise_item(model, x, corrupt):
    return F.mse_loss(model(corrupt(x))[1], x).item()


# 05.interpolate
def interp_without_ends(z0, z1, steps):
    t = torch.linspace(0, 1, steps + 2)[1:-1].unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_without_end(z0, z1, steps):
    t = (torch.arange(steps) / steps).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_reversed(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return (1 - t) * z1 + t * z0


def interp_transposed(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return ((1 - t) * z0 + t * z1).T


def interp_uneven(z0, z1, steps):
    t = torch.linspace(0, 1, steps).pow(2).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def interp_numpy(z0, z1, steps):
    import numpy as np

    t = np.linspace(0, 1, steps)[:, None]
    return (1 - t) * z0.numpy() + t * z1.numpy()


def interp_placeholder(z0, z1, steps):
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # noqa: F841 (the student stopped here)
    return ...


# 05.perturb_code
def perturb_raw_units(z, noise_std, code_std, generator):
    return z + noise_std * torch.randn(z.shape, generator=generator)


def perturb_variance_scale(z, noise_std, code_std, generator):
    return z + noise_std * code_std ** 2 * torch.randn(z.shape, generator=generator)


def perturb_std_as_variance(z, noise_std, code_std, generator):
    return z + math.sqrt(noise_std) * code_std * torch.randn(z.shape, generator=generator)


def perturb_same_eps_for_all_images(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn(z.shape[1], generator=generator)


def perturb_same_eps_for_all_dimensions(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn(z.shape[0], 1, generator=generator)


def perturb_ignores_generator(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.randn_like(z)


def perturb_reseeds(z, noise_std, code_std, generator):
    generator = torch.Generator().manual_seed(0)
    return z + noise_std * code_std * torch.randn(z.shape, generator=generator)


def perturb_in_place(z, noise_std, code_std, generator):
    z += noise_std * code_std * torch.randn(z.shape, generator=generator)
    return z


def perturb_uniform(z, noise_std, code_std, generator):
    return z + noise_std * code_std * torch.rand(z.shape, generator=generator)


def perturb_noise_only(z, noise_std, code_std, generator):
    return noise_std * code_std * torch.randn(z.shape, generator=generator)


def perturb_one_spread(z, noise_std, code_std, generator):
    return z + noise_std * code_std.mean() * torch.randn(z.shape, generator=generator)


# 06.conv_output_size
def size_no_plus_one(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride


def size_padding_once(size, kernel, stride=1, padding=0):
    return (size + padding - kernel) // stride + 1


def size_no_floor(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) / stride + 1


def size_no_stride(size, kernel, stride=1, padding=0):
    return size + 2 * padding - kernel + 1


def size_no_defaults(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


# 06.CodeOnlyDecoder
class DecoderWrongSize(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # 1 -> 3
                         nn.ConvTranspose2d(c2, c2, 3, stride=2), nn.ReLU(),  # 3 -> 7
                         nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1), nn.ReLU(),  # 7 -> 13: no output_padding
                         nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1), nn.Sigmoid())  # 13 -> 25


class DecoderNoSigmoid(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__(*list(models.CodeOnlyDecoder(channels))[:-1])


class DecoderWithUnpool(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2)
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z):
        return self.body(z)


class DecoderNeedsIndices(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z, indices):
        return self.body(z)


class DecoderUpsampleOnly(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        c1, c2, c3 = channels
        super().__init__(nn.Upsample(size=7), nn.Conv2d(c3, c1, 3, padding=1), nn.ReLU(),
                         nn.Upsample(size=28), nn.Conv2d(c1, 1, 3, padding=1), nn.Sigmoid())


class DecoderIgnoresCode(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        self.body = models.CodeOnlyDecoder(channels)

    def forward(self, z):
        return self.body(torch.ones_like(z))  # the same image whatever the code


class DecoderFixedChannels(nn.Sequential):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__(*models.CodeOnlyDecoder((8, 16, 16)))  # channels ignored


class DecoderStuckHalf(nn.Sequential):
    """A ReLU before the sigmoid: every pixel stays at 0.5 or above, so the decoder cannot learn."""

    def __init__(self, channels=(8, 16, 16)):
        layers = list(models.CodeOnlyDecoder(channels))
        super().__init__(*layers[:-1], nn.ReLU(), layers[-1])


# 07.reparameterize
def reparam_variance_as_std(mu, logvar, generator):
    return mu + torch.exp(logvar) * torch.randn(mu.shape, generator=generator)


def reparam_exponent_sign(mu, logvar, generator):
    return mu + torch.exp(-logvar / 2) * torch.randn(mu.shape, generator=generator)


def reparam_minus_mu(mu, logvar, generator):
    return -mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=generator)


def reparam_sqrt_logvar(mu, logvar, generator):
    return mu + torch.sqrt(logvar) * torch.randn(mu.shape, generator=generator)


def reparam_ignores_generator(mu, logvar, generator):
    return mu + torch.exp(logvar / 2) * torch.randn_like(mu)


def reparam_torch_normal(mu, logvar, generator):
    return torch.normal(mu, torch.exp(logvar / 2), generator=generator)


def reparam_detached(mu, logvar, generator):
    return (mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=generator)).detach()


def reparam_shared_eps(mu, logvar, generator):
    return mu + torch.exp(logvar / 2) * torch.randn(mu.shape[1], generator=generator)


# 07.kl_divergence
def kl_reference_terms(mu, logvar):
    return 1 + logvar - mu.pow(2) - logvar.exp()


def kl_sign(mu, logvar):
    return 0.5 * kl_reference_terms(mu, logvar).sum(1).mean()


def kl_sum_over_batch(mu, logvar):
    return -0.5 * kl_reference_terms(mu, logvar).sum()


def kl_mean_over_dims(mu, logvar):
    return -0.5 * kl_reference_terms(mu, logvar).mean(1).mean()


def kl_logvar_for_exp(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar).sum(1).mean()


def kl_missing_one(mu, logvar):
    return -0.5 * (logvar - mu.pow(2) - logvar.exp()).sum(1).mean()


def kl_mu_sign(mu, logvar):
    return -0.5 * (1 + logvar + mu.pow(2) - logvar.exp()).sum(1).mean()


L1_BATCH_HINT = ("your penalty grows with the batch size: you summed over the batch; "
                 "take the mean over images and units")

WRONG = [
    ("01.pca_reconstruct", pca_no_centre, "did not centre"),
    ("01.pca_reconstruct", pca_smallest_variance, "SMALLEST"),
    ("01.pca_reconstruct", pca_no_mean_back, "add the mean image back"),
    ("01.pca_reconstruct", pca_codes_only, "returned the codes"),
    ("01.pca_reconstruct", pca_fixed_k, "use k"),
    ("01.pca_reconstruct", pca_randomized, "approximate method"),
    ("01.pca_reconstruct", pca_columns_of_vh, "the principal directions are the ROWS of Vh"),
    ("01.train_step", step_no_zero_grad, "backward() adds to the .grad already there"),
    ("01.train_step", step_before_backward, "optimizer.step() ran before loss.backward()"),
    ("01.train_step", step_lagging, "optimizer.step() ran before loss.backward()"),
    ("01.train_step", step_no_backward, "found no gradients and none were computed"),
    ("01.train_step", step_no_step, "call optimizer.step() after loss.backward()"),
    ("01.train_step", step_twice, "stepped the optimizer 2 times"),
    ("01.train_step", step_sum, "25,088 times the reference's: you summed the squared errors"),
    ("01.train_step", step_sum_over_pixels, "784 times the reference's: you summed over the pixels"),
    ("01.train_step", step_target_code, "not with the code z"),
    ("01.train_step", step_outputs_swapped, "not with the code z"),
    ("01.train_step", step_output_pair_as_tensor, "model(x) returns the pair (z, x_hat)"),
    ("01.train_step", step_detached_target, "every gradient is 0"),
    ("01.train_step", step_unreduced_loss, "loss.backward() needs one number"),
    ("01.train_step", step_forward_without_grad, "your loss has no graph"),
    ("01.train_step", step_returns_graph, "with its graph (requires_grad=True)"),
    ("01.train_step", step_returns_nothing, "returned None (a missing return statement?)"),
    ("01.train_step", step_returns_loss_after_step, "return the loss you called backward on"),
    ("01.train_step", step_with_loss, "optimizer.step() takes no loss"),
    ("01.train_step", step_on_the_loss, "step() and zero_grad() are the optimizer's"),
    ("01.train_step", step_backward_on_optimizer, "step() and zero_grad() are the optimizer's"),
    ("01.train_step", step_own_optimizer, "an optimizer of your own"),
    ("02.ShallowAutoencoder", ShallowOnlyXHat, "forward returned one tensor"),
    ("02.ShallowAutoencoder", ShallowSwapped, "returned (x_hat, z)"),
    ("02.ShallowAutoencoder", ShallowNoSigmoid, "missing the sigmoid"),
    ("02.ShallowAutoencoder", ShallowNoReLU, "missing the ReLU"),
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
    ("03.l1_penalty", l1_sum_over_batch, L1_BATCH_HINT),
    ("03.l1_penalty", l1_sum_everything, L1_BATCH_HINT),  # the original's flaw: the same hint
    ("03.l1_penalty", l1_sum_over_units, "grows with the number of units"),
    ("03.l1_penalty", l1_no_abs, "absolute value"),
    ("03.l1_penalty", l1_no_weight, "does not change with weight"),
    ("03.l1_penalty", l1_per_image, "of shape (8,)"),
    ("03.l1_penalty", l1_item, "returned a Python float"),
    ("03.l1_penalty", l1_squared, "L2 penalty"),
    ("03.dead_fraction", dead_zero_entries, "fraction of zero ENTRIES"),
    ("03.dead_fraction", dead_on_any_image, "0 on ANY image"),
    ("03.dead_fraction", dead_count, "return the fraction"),
    ("03.dead_fraction", dead_transposed, "wrong axis"),
    ("03.dead_fraction", dead_alive_fraction, "ALIVE"),
    ("03.dead_fraction", dead_no_return, "returned None (a missing return statement?)"),
    ("04.gaussian_corrupt", corrupt_no_clip, "clip them back to [0, 1]"),
    ("04.gaussian_corrupt", corrupt_std_as_variance, "used noise_std as the variance"),
    ("04.gaussian_corrupt", corrupt_ignores_generator, "the generator is ignored"),
    ("04.gaussian_corrupt", corrupt_multiplicative, "multiplicative"),
    ("04.gaussian_corrupt", corrupt_per_image, "every pixel of an image gets the same noise"),
    ("04.gaussian_corrupt", corrupt_same_pattern, "every image gets the same noise pattern"),
    ("04.gaussian_corrupt", corrupt_in_place, "in place"),
    ("04.gaussian_corrupt", corrupt_uniform, "torch.rand draws U(0, 1)"),
    ("04.denoising_loss", denoise_noisy_target, "scored against the corrupted images"),
    ("04.denoising_loss", denoise_clean_input, "corrupt was never called"),
    ("04.denoising_loss", denoise_corrupt_unused, "the model saw the clean x"),
    ("04.denoising_loss", denoise_sum, "summed the squared errors"),
    ("04.denoising_loss", denoise_second_draw_target, "second corruption"),
    ("04.denoising_loss", denoise_item, "returned a Python float"),
    ("05.interpolate", interp_without_ends, "both ends must be included"),
    ("05.interpolate", interp_without_end, "your t runs [0.00, 0.20, 0.40, 0.60, 0.80]"),
    ("05.interpolate", interp_reversed, "runs backwards"),
    ("05.interpolate", interp_transposed, "transposed"),
    ("05.interpolate", interp_uneven, "not evenly spaced"),
    ("05.interpolate", interp_numpy, "returned a numpy.ndarray; return a torch tensor"),
    ("05.interpolate", interp_placeholder, "a placeholder of the stub is still there"),
    ("05.perturb_code", perturb_raw_units, "in the codes' raw units"),
    ("05.perturb_code", perturb_variance_scale, "code_std squared"),
    ("05.perturb_code", perturb_std_as_variance, "used noise_std as a variance"),
    ("05.perturb_code", perturb_same_eps_for_all_images, "every image gets the same noise"),
    ("05.perturb_code", perturb_same_eps_for_all_dimensions, "every code dimension of an image gets the same eps"),
    ("05.perturb_code", perturb_ignores_generator, "the generator is ignored"),
    ("05.perturb_code", perturb_reseeds, "do not reseed"),
    ("05.perturb_code", perturb_in_place, "changed its input tensor in place"),
    ("05.perturb_code", perturb_uniform, "torch.rand draws U(0, 1)"),
    ("05.perturb_code", perturb_noise_only, "the codes must come back unchanged"),
    ("05.perturb_code", perturb_one_spread, "the spread of your noise is wrong"),
    ("06.conv_output_size", size_no_plus_one, "forgot the + 1"),
    ("06.conv_output_size", size_padding_once, "both sides"),
    ("06.conv_output_size", size_no_floor, "floor the division"),
    ("06.conv_output_size", size_no_stride, "ignored the stride"),
    ("06.conv_output_size", size_no_defaults, "give stride a default of 1"),
    ("06.CodeOnlyDecoder", DecoderWrongSize, "ConvTranspose2d 8x13x13 -> ReLU 8x13x13 -> ConvTranspose2d 1x25x25"),
    ("06.CodeOnlyDecoder", DecoderNoSigmoid, "end the decoder with a sigmoid"),
    ("06.CodeOnlyDecoder", DecoderWithUnpool, "pooling indices"),
    ("06.CodeOnlyDecoder", DecoderNeedsIndices, "must take only the code"),
    ("06.CodeOnlyDecoder", DecoderUpsampleOnly, "no nn.ConvTranspose2d"),
    ("06.CodeOnlyDecoder", DecoderIgnoresCode, "do not depend on the code"),
    ("06.CodeOnlyDecoder", DecoderFixedChannels, "build the layers from channels"),
    ("06.CodeOnlyDecoder", DecoderStuckHalf, "does not learn as it should"),
    ("07.reparameterize", reparam_variance_as_std, "exp(logvar), the variance, as the std"),
    ("07.reparameterize", reparam_exponent_sign, "sign error in the exponent"),
    ("07.reparameterize", reparam_minus_mu, "is -mu: a sign error"),
    ("07.reparameterize", reparam_sqrt_logvar, "sqrt(logvar) is not sigma"),
    ("07.reparameterize", reparam_ignores_generator, "the generator is ignored"),
    ("07.reparameterize", reparam_torch_normal, "no gradient reaches mu"),
    ("07.reparameterize", reparam_detached, "no gradient flows"),
    ("07.reparameterize", reparam_shared_eps, "every image gets the same eps"),
    ("07.kl_divergence", kl_sign, "a sign error"),
    ("07.kl_divergence", kl_sum_over_batch, "summed over the batch"),
    ("07.kl_divergence", kl_mean_over_dims, "averaged over the code's dimensions"),
    ("07.kl_divergence", kl_logvar_for_exp, "you wrote logvar where the formula has exp(logvar)"),
    ("07.kl_divergence", kl_missing_one, "your KL is 2, not 0"),
    ("07.kl_divergence", kl_mu_sign, "sign error on mu^2"),
]


def answer_id(name, answer) -> str:
    return f"{name}-{getattr(answer, '__name__', type(answer).__name__)}"


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[answer_id(name, answer) for name, answer, _ in WRONG])
def test_a_typical_mistake_fails_with_its_own_hint(capsys, name, answer, phrase):
    passed, line = verdict(capsys, name, answer)
    assert not passed
    assert line.startswith(f"✗ {name}: ")
    assert phrase in line


def test_every_exercise_detects_at_least_two_typical_mistakes():
    counts = {name: sum(1 for n, _, _ in WRONG if n == name) for name in EXERCISES}
    assert min(counts.values()) >= 2, counts


def test_different_mistakes_of_one_exercise_get_different_hints(capsys):
    for name in EXERCISES:
        lines = {verdict(capsys, n, answer)[1] for n, answer, _ in WRONG if n == name}
        assert len(lines) == len({phrase for n, _, phrase in WRONG if n == name}), name


# ---------------------------------------------------------------------------------------------
# References, stubs, fallbacks, solutions


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


class DecoderLinearFirst(nn.Module):
    def __init__(self, channels=(8, 16, 16)):
        super().__init__()
        c1, c2, c3 = channels
        self.c2 = c2
        self.fc = nn.Linear(c3, c2 * 7 * 7)
        self.up = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # 7 -> 14
                                nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1), nn.Sigmoid())  # 14 -> 28

    def forward(self, z):
        return self.up(self.fc(z.flatten(1)).view(-1, self.c2, 7, 7))


CORRECT = [
    ("01.pca_reconstruct", pca_by_eigh),
    ("01.train_step", step_zero_grad_last),
    ("02.ShallowAutoencoder", ShallowFunctional),
    ("02.encoder_filters", lambda model: model.encoder[0].weight.data.T.reshape(28, 28, -1).permute(2, 0, 1)),
    ("03.l1_penalty", lambda z, weight: weight * z.abs().sum() / z.numel()),
    ("03.dead_fraction", lambda z: (z.sum(dim=0) == 0).float().mean()),  # a 0-d tensor is fine
    ("04.gaussian_corrupt", lambda x, noise_std, generator:
        torch.clip(x + torch.normal(0.0, noise_std, size=x.shape, generator=generator), 0, 1)),
    ("04.denoising_loss", lambda model, x, corrupt: ((model(corrupt(x))[1] - x) ** 2).mean()),
    ("05.interpolate", lambda z0, z1, steps: torch.stack([z0 + (z1 - z0) * i / (steps - 1) for i in range(steps)])),
    ("05.perturb_code", lambda z, noise_std, code_std, generator:
        torch.normal(z, noise_std * code_std.expand_as(z), generator=generator)),
    ("06.conv_output_size", lambda size, kernel, stride=1, padding=0:
        math.floor((size + 2 * padding - kernel) / stride) + 1),
    ("06.CodeOnlyDecoder", DecoderLinearFirst),
    ("07.reparameterize", lambda mu, logvar, generator:
        mu + logvar.mul(0.5).exp() * torch.randn(mu.size(), generator=generator)),
    ("07.kl_divergence", lambda mu, logvar: 0.5 * torch.sum(mu ** 2 + logvar.exp() - 1 - logvar, dim=1).mean()),
]


@pytest.mark.parametrize("name, answer", CORRECT, ids=[name for name, _ in CORRECT])
def test_a_correct_answer_written_differently_passes(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert passed, line


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_passes_its_own_check(name):
    status, line = exercises._run_checker(EXERCISES[name], solution(name), credit_reference=True)
    assert status == exercises.PASSED, line
    assert line.startswith(f"✓ {name}: correct")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_is_never_credited_as_the_students_answer(capsys, name):
    # issue 17 item 8: after a Run All, use() has rebound the name to the reference; checking it again said
    # "✓ correct", and use() "using your ...", for an exercise never attempted.
    stub = stub_for(name)
    assert use(name, stub) is solution(name)
    capsys.readouterr()
    passed, line = verdict(capsys, name, solution(name))
    assert not passed
    assert line.startswith(f"○ {name}: not attempted yet: this is the course's reference")
    assert "✓" not in line and "correct" not in line
    assert use(name, solution(name)) is solution(name)
    assert capsys.readouterr().out == f"using the course's reference {name} (not attempted yet)\n"
    assert check(name, solution(name), strict=True) is False  # strict mode never raises for the reference
    assert "this is the course's reference" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(EXERCISES))
def test_strict_mode_raises_the_same_hint_for_a_stub(capsys, name):
    line = verdict(capsys, name, stub_for(name))[1]
    with pytest.raises(AssertionError) as raised:
        check(name, stub_for(name), strict=True)
    assert str(raised.value) == line
    assert capsys.readouterr().out == ""  # the message is the line; nothing printed twice


@pytest.mark.parametrize("name, answer, phrase", WRONG[::7], ids=[answer_id(n, a) for n, a, _ in WRONG[::7]])
def test_strict_mode_raises_the_same_hint_for_a_wrong_answer(capsys, name, answer, phrase):
    line = verdict(capsys, name, answer)[1]
    with pytest.raises(AssertionError) as raised:
        check(name, answer, strict=True)
    assert str(raised.value) == line and phrase in line


def test_strict_mode_returns_true_for_a_correct_answer(capsys):
    def l1_penalty(z, weight):
        return weight * z.abs().mean()

    assert check("03.l1_penalty", l1_penalty, strict=True) is True
    assert capsys.readouterr().out.startswith("✓ 03.l1_penalty: correct")


def stub_for(name: str):
    """What a student starts from: the Neuromatch-style stub that raises NotImplementedError."""
    reference = solution(name)
    if isinstance(reference, type):
        class Stub(nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                raise NotImplementedError("Student exercise: define the layers")
        return Stub

    def stub(*args, **kwargs):
        raise NotImplementedError("Student exercise: write this function")
    return stub


@pytest.mark.parametrize("name", list(EXERCISES))
def test_a_stub_is_not_attempted_yet(capsys, name):
    passed, line = verdict(capsys, name, stub_for(name))
    assert not passed
    assert line == f"○ {name}: not attempted yet. Task: {EXERCISES[name].task}"
    assert verdict(capsys, name, None) == (False, line)


def test_a_stub_whose_forward_raises_is_not_attempted_yet(capsys):
    class Stub(ShallowBase):
        def forward(self, x):
            raise NotImplementedError("Student exercise: return (z, x_hat)")

    passed, line = verdict(capsys, "02.ShallowAutoencoder", Stub)
    assert not passed and "not attempted yet" in line


def test_a_crash_in_student_code_is_a_hint_quoting_the_error(capsys):
    def broken(z, weight):
        return weight * z.view(3, -1).abs().mean()  # a shape error

    passed, line = verdict(capsys, "03.l1_penalty", broken)
    assert not passed
    assert "l1_penalty(z, weight=0.3) with z of shape (8, 32) raised RuntimeError: shape '[3, -1]' is invalid" in line


def test_use_falls_back_to_the_reference_with_one_line(capsys):
    assert use("03.l1_penalty", l1_sum_over_batch) is training.l1_penalty
    assert capsys.readouterr().out == \
        "using the course's reference 03.l1_penalty (your version did not pass its check)\n"
    assert use("03.l1_penalty", stub_for("03.l1_penalty")) is training.l1_penalty
    assert capsys.readouterr().out == "using the course's reference 03.l1_penalty (not attempted yet)\n"
    assert use("03.dead_fraction", None) is metrics.dead_fraction
    assert capsys.readouterr().out == "using the course's reference 03.dead_fraction (not attempted yet)\n"


def test_use_returns_a_passing_answer_itself(capsys):
    def l1_penalty(z, weight):
        return weight * torch.mean(torch.abs(z))

    assert use("03.l1_penalty", l1_penalty) is l1_penalty
    assert capsys.readouterr().out == "using your 03.l1_penalty (it passed its check)\n"


def test_use_after_check_prints_only_its_own_line(capsys):
    check("03.l1_penalty", l1_no_abs)
    capsys.readouterr()
    use("03.l1_penalty", l1_no_abs)
    assert capsys.readouterr().out.splitlines() == [
        "using the course's reference 03.l1_penalty (your version did not pass its check)"]


@pytest.mark.parametrize("call", [check, use])
def test_unknown_names_raise_listing_the_exercises(call):
    with pytest.raises(ValueError, match="01.pca_reconstruct, 01.train_step, 02.ShallowAutoencoder"):
        call("03.l2_penalty", l1_no_abs)
    for lookup in (solution, solution_source):
        with pytest.raises(ValueError, match="07.kl_divergence"):
            lookup("l1_penalty")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_source_runs_alone_and_passes_its_check(capsys, name):
    source = solution_source(name)
    namespace: dict = {}
    exec(compile(NOTEBOOK_IMPORTS + source, f"<solution {name}>", "exec"), namespace)
    answer = namespace[EXERCISES[name].answer_name]
    assert answer is not solution(name)
    passed, line = verdict(capsys, name, answer)
    assert passed, line


def test_show_solution_displays_the_highlighted_source(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    exercises.show_solution("05.interpolate")
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Code)
    assert shown[0].data == solution_source("05.interpolate") and "def interpolate(" in shown[0].data


def test_checks_leave_the_random_streams_and_thread_count_alone(capsys):
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    check("04.gaussian_corrupt", corrupt_no_clip)
    check("07.reparameterize", lambda mu, logvar, generator: models.reparameterize(mu, logvar, generator))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_a_statistical_check_gives_the_same_line_every_time(capsys):
    # Two equal answers (distinct objects, so neither verdict is remembered): the same seeded draws, the same line.
    lines = {verdict(capsys, "04.gaussian_corrupt", lambda x, s, g: (x + s * torch.randn(x.shape, generator=g))
                     .clamp(0, 1))[1] for _ in range(2)}
    assert len(lines) == 1


def test_an_answer_drawing_noise_differently_but_correctly_passes(capsys):
    def gaussian_corrupt(x, noise_std, generator):
        return torch.normal(x, noise_std, generator=generator).clamp(0, 1)

    def reparameterize(mu, logvar, generator):
        return mu - torch.exp(0.5 * logvar) * torch.empty_like(mu).normal_(generator=generator)  # -eps ~ N(0, 1)

    def perturb_code(z, noise_std, code_std, generator):
        return z - noise_std * code_std * torch.empty_like(z).normal_(generator=generator)  # -eps ~ N(0, 1)

    assert verdict(capsys, "04.gaussian_corrupt", gaussian_corrupt)[0]
    assert verdict(capsys, "07.reparameterize", reparameterize)[0]
    assert verdict(capsys, "05.perturb_code", perturb_code)[0]


def test_the_train_step_reference_is_the_courses_train_step_with_its_loss_written_out(capsys):
    # Adam, as the course trains: the same weights and losses over three batches, and the course's step passes.
    torch.manual_seed(0)
    ours = models.small_autoencoder(latent_dim=4, hidden_dim=16)
    course = copy.deepcopy(ours)
    ours_optimizer, course_optimizer = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (ours, course))
    x = torch.rand(3, 16, 784, generator=torch.Generator().manual_seed(1))
    for batch in x:
        loss = solution("01.train_step")(ours, ours_optimizer, batch)
        course_loss = training.train_step(course, course_optimizer, batch, batch, training.Reconstruction())
        assert not loss.requires_grad and torch.equal(loss, course_loss)
    for p, q in zip(ours.parameters(), course.parameters()):
        assert torch.equal(p, q)
    assert verdict(capsys, "01.train_step", lambda model, optimizer, x: training.train_step(
        model, optimizer, x, x, training.Reconstruction()))[0]


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


def test_exercise_specs_name_their_notebook_and_reference():
    for name, exercise in EXERCISES.items():
        number, answer_name = name.split(".")
        assert exercise.notebook.startswith(number + "_"), name
        assert exercise.reference.__name__ == answer_name
        assert exercise.task.endswith(".") and exercise.task.count(". ") == 0, exercise.task
        assert answer_name in exercise.signature
        assert exercise.minutes > 0


def test_the_real_inputs_are_mlxtends_digits(sample):
    # The checks' fast reader and course.data's loader see the same 5,000 digits (sums per pixel compared).
    everything = torch.cat([sample.train.x, sample.val.x, sample.test.x])
    digits = exercises._digits()
    assert digits.shape == everything.shape == (5000, 784)
    assert torch.allclose(digits.double().sum(0), everything.double().sum(0), atol=1e-6)


def _float64_corrupt(x, noise_std, generator=None):
    return (x.double() + noise_std * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)


def _float64_perturb(z, noise_std, code_std, generator=None):
    return z.double() + noise_std * code_std * torch.randn(z.shape, generator=generator, dtype=torch.float64)


def _float64_reparameterize(mu, logvar, generator=None):
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float64)
    return mu.double() + torch.exp(0.5 * logvar.double()) * eps


def _half_reparameterize(mu, logvar, generator=None):
    return solution("07.reparameterize")(mu, logvar, generator).half()


@pytest.mark.parametrize("name, answer, dtype", [("04.gaussian_corrupt", _float64_corrupt, "float64"),
                                                 ("05.perturb_code", _float64_perturb, "float64"),
                                                 ("07.reparameterize", _float64_reparameterize, "float64"),
                                                 ("07.reparameterize", _half_reparameterize, "float16")])
def test_an_answer_of_another_dtype_is_refused_before_the_notebook_uses_it(capsys, name, answer, dtype):
    """Issue 17.4: a float64 answer got ✓, then the notebook's next cell failed on mixed dtypes."""
    passed, line = verdict(capsys, name, answer)
    assert not passed
    assert f"returned a {dtype} tensor; return float32" in line


# Issue 17, misleading hints: NaN, dtype and device named for what they are; plain values compared.
def _nan_penalty(z, weight):
    return weight * z.abs().mean() * float("nan")


def _nan_pixel_corrupt(x, noise_std, generator):
    noisy = (x + noise_std * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    noisy[0, 0] = float("nan")
    return noisy


def _nan_kl(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.sqrt()).sum(1).mean()  # the square root of negative logvars


@pytest.mark.parametrize("name, answer", [("03.l1_penalty", _nan_penalty), ("04.gaussian_corrupt", _nan_pixel_corrupt),
                                          ("07.kl_divergence", _nan_kl),
                                          ("03.dead_fraction", lambda z: float("nan")),
                                          ("01.train_step", lambda model, optimizer, x:
                                           float(solution("01.train_step")(model, optimizer, x)) * math.nan)])
def test_a_nan_answer_gets_a_hint_that_says_nan(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed and "NaN" in line, line
    assert "changes sign" not in line and "generator is ignored" not in line


def test_a_half_precision_interpolate_gets_the_dtype_hint(capsys):
    passed, line = verdict(capsys, "05.interpolate", lambda z0, z1, steps: models.interpolate(z0, z1, steps).half())
    assert not passed and "returned a float16 tensor; return float32" in line and "evenly" not in line


@pytest.mark.parametrize("name, answer", [
    ("03.l1_penalty", lambda z, weight: (weight * z.abs().mean()).to("meta")),
    ("05.interpolate", lambda z0, z1, steps: models.interpolate(z0, z1, steps).to("meta")),
    ("03.dead_fraction", lambda z: torch.tensor(0.25, device="meta")),
])
def test_an_answer_on_another_device_gets_a_hint_naming_the_device(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed and "on meta" in line and "on cpu" in line, line
    assert "your code raised" not in line


class _AlwaysEqualInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class _AlwaysEqualFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class _AlwaysEqualTensor(torch.Tensor):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("name, answer", [
    ("06.conv_output_size", lambda size, kernel, stride=1, padding=0: _AlwaysEqualInt(0)),
    ("03.dead_fraction", lambda z: _AlwaysEqualFloat(0.0)),
    ("05.interpolate", lambda z0, z1, steps: torch.zeros(steps, z0.shape[0]).as_subclass(_AlwaysEqualTensor)),
])
def test_an_answer_that_claims_equality_is_compared_by_its_plain_value(capsys, name, answer):
    passed, line = verdict(capsys, name, answer)
    assert not passed, line


def test_a_plain_numpy_integer_size_still_passes(capsys):
    import numpy as np

    assert verdict(capsys, "06.conv_output_size", lambda size, kernel, stride=1, padding=0:
                   np.int64(models.conv_output_size(size, kernel, stride, padding)))[0]

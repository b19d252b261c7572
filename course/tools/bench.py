"""Benchmark: one epoch of the deep autoencoder, seed-style DataLoader loop versus the course trainer."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from course.config import data_root as resolve_data_root, resolve_device, set_seed
from course.data import DigitData, IDX_FILES, load_data
from course.models import deep_autoencoder
from course.training import fit

BATCH_SIZE = 64
LR = 1e-3


class SeedStyleImages(Dataset):
    """uint8 digits served one PIL image at a time through ToTensor, as torchvision's MNIST does."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(Image.fromarray(self.images[index].numpy(), mode="L"))


@dataclass
class BenchResult:
    """Seconds per run of each loop, and what they ran on."""

    seed_seconds: float
    course_seconds: float
    epochs: int
    train_size: int
    val_size: int
    data_source: str
    dataset: str
    device: str

    @property
    def speedup(self) -> float:
        return self.seed_seconds / self.course_seconds


def default_dataset() -> str:
    """MNIST where its full files are on disk, else Fashion-MNIST (Debian's package holds it offline)."""
    raw = resolve_data_root() / "MNIST" / "raw"
    present = all((raw / name).is_file() for pair in IDX_FILES.values() for name in pair)
    return "mnist" if present else "fashion-mnist"


def _uint8_images(x: torch.Tensor) -> torch.Tensor:
    # the raw pixels a torchvision dataset holds: (N, 28, 28) uint8
    return (x * 255).round().to(torch.uint8).view(-1, 28, 28)


def seed_style_fit(data: DigitData, epochs: int, device: torch.device, seed: int) -> float:
    """Train and validate like the original notebook (Dataset + ToTensor + DataLoader, flatten per batch); seconds."""
    set_seed(seed)
    model = deep_autoencoder().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    train_loader = DataLoader(SeedStyleImages(_uint8_images(data.train.x)), batch_size=BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(SeedStyleImages(_uint8_images(data.val.x)), batch_size=BATCH_SIZE)
    criterion = torch.nn.MSELoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        train_loss = 0.0
        for x in train_loader:
            x = x.view(x.size(0), -1).to(device)
            _, x_hat = model(x)
            loss = criterion(x_hat, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * x.size(0)
        model.eval()
        val_loss = 0.0
        with torch.no_grad():
            for x in val_loader:
                x = x.view(x.size(0), -1).to(device)
                val_loss += criterion(model(x)[1], x).item() * x.size(0)
    return time.perf_counter() - start


def course_fit(data: DigitData, epochs: int, device: torch.device, seed: int) -> float:
    """Train and validate with course.training.fit; return seconds."""
    set_seed(seed)
    model = deep_autoencoder()
    start = time.perf_counter()
    fit(model, data, epochs=epochs, lr=LR, batch_size=BATCH_SIZE, device=device, seed=seed, progress=False)
    return time.perf_counter() - start


def run_bench(dataset: str | None = None, device: str = "auto", epochs: int = 1, seed: int = 0) -> BenchResult:
    """Time both loops on the same data in this process."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    resolved = resolve_device(device)
    data = load_data(dataset or default_dataset(), seed=seed)
    seed_seconds = seed_style_fit(data, epochs, resolved, seed)
    course_seconds = course_fit(data, epochs, resolved, seed)
    return BenchResult(seed_seconds, course_seconds, epochs, len(data.train), len(data.val), data.source,
                       data.dataset, str(resolved))


def format_result(result: BenchResult) -> str:
    """The lines `python -m course bench` prints."""
    per = f"{result.epochs} epoch{'s' if result.epochs > 1 else ''}"
    return "\n".join([
        f"data: {result.dataset} from {result.data_source}, {result.train_size:,} training and "
        f"{result.val_size:,} validation images; device {result.device}, {torch.get_num_threads()} threads",
        f"deep autoencoder 784-512-256-128-30-128-256-784, batch {BATCH_SIZE}, Adam lr {LR}; "
        "an epoch is a training pass and a validation pass in both loops",
        f"seed-style loop (Dataset + ToTensor + DataLoader): {result.seed_seconds:7.2f} s for {per}",
        f"course trainer (course.training.fit):             {result.course_seconds:7.2f} s for {per}",
        f"speed-up: {result.speedup:.2f}x",
    ])

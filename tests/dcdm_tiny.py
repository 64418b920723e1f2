"""A training run small enough for unit tests (seconds on one CPU thread)."""

from learned.dcdm.train import TrainConfig

TINY = TrainConfig(
    dim=2,
    grid=8,
    steps=6,
    batch_size=2,
    operators=2,
    ritz_steps=12,
    pool=64,
    channels=4,
    blocks=1,
)

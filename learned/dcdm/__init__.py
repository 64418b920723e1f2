"""Deep conjugate-direction method (DCDM): a trained network proposes CG search directions.

Kaneda, Akar, Chen, Kala, Hyde and Teran, "A Deep Conjugate Direction Method for
Iteratively Solving Linear Systems", ICML 2023: a convolutional network ``f``
approximates the action of ``A^{-1}`` up to a constant; each iteration applies it
to the normalised residual, ``A``-orthogonalises the result against the last few
search directions and takes an exact line search.

Modules, one idea each:

``stencil``   the 5/7-point grid operator of a sparse matrix, applied in torch
``network``   the convolutional network (the paper's one-pool net and a multilevel one)
``pyramid``   grid transfers and the Galerkin operators the network's operator layers read
``loss``      the scale-invariant training losses: the paper's residual loss, energy-norm ones
``ritz``      Lanczos Ritz vectors of the training operators (npz, resumable)
``data``      right-hand sides from Ritz vectors; the Lightning DataModule
``module``    the LightningModule; safetensors checkpoints and resume
``io``        saving and loading models as safetensors; the shipped models
``solve``     :func:`dcdm_solve`, with a safeguard that makes it converge on any SPD system
``select``    checkpoint selection by the solver's iteration count on validation grids
``train``     the command line ``python -m learned.dcdm.train``
"""

from learned.dcdm.io import load_model, pretrained, save_model
from learned.dcdm.loss import dcdm_loss
from learned.dcdm.network import DCDMNet
from learned.dcdm.pyramid import OperatorPyramid
from learned.dcdm.solve import dcdm_solve
from learned.dcdm.stencil import GridStencil, apply_stencil

__all__ = [
    "DCDMNet",
    "GridStencil",
    "OperatorPyramid",
    "apply_stencil",
    "dcdm_loss",
    "dcdm_solve",
    "load_model",
    "pretrained",
    "save_model",
]

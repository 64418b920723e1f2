"""Torch and Lightning consumers of numlib (learned solvers, layers, compression).

``learned.bitplane_linear`` holds :class:`~learned.bitplane_linear.BitplaneLinear`,
an ``nn.Linear`` replacement computing with low-bit bipolar-INT weights and
activations through exact bit-plane products. Importing this package imports
nothing heavy; each submodule imports torch itself.
"""

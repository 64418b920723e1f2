"""Torch and Lightning consumers of numlib (learned solvers, layers, compression).

Empty until the learned-solver issues land; importing it costs nothing.
"""

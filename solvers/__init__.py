"""Iterative and PDE solvers built on numlib.

``solvers.krylov`` holds CG and GMRES(m); ``solvers.problems`` a gallery of PDE
systems to run them on.
"""

from solvers.krylov import cg, gmres

__all__ = ["cg", "gmres"]

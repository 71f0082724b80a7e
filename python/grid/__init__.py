"""Grids, boundary conditions and stencil operators (``js.grid``).

>>> import jitsolve as js
>>> g = js.grid.Grid(shape=(256, 256), extent=((0, 1), (0, 1)), bc=js.grid.Dirichlet(0.0))
>>> A = js.grid.Laplacian(g)
"""
from .boundary import BoundaryCondition, Dirichlet, Neumann, Periodic
from .mesh import Grid
from .operators import GridOperator, ScaledOperator, SumOperator, TransposedOperator
from .stencils import Advection, Diffusion, Identity, Laplacian

__all__ = ["Grid", "BoundaryCondition", "Dirichlet", "Neumann", "Periodic", "GridOperator",
           "ScaledOperator", "SumOperator", "TransposedOperator", "Laplacian", "Diffusion",
           "Advection", "Identity"]

"""jitsolve: a differentiable solver engine in compiled Python.

Numba kernels (stencils, BLAS-1, integrator stages) under a thin, Julia-style API of
problems, algorithms and ``solve``.  ``import jitsolve`` loads no compiler: kernels are
imported, and compiled or read from Numba's disk cache, on first use.

>>> import jitsolve as js
>>> g = js.Grid((64, 64), bc=js.Dirichlet(0.0))
>>> L = js.Laplacian(g)
"""
__version__ = "0.1.0"

from . import errors
from .algorithms import (AbstractAlgorithm, LinearAlgorithm, ODEAlgorithm, Preconditioner,
                         SDEAlgorithm, SensitivityAlgorithm)
from .functions import ODEFunction
from .grid import (Advection, BoundaryCondition, Diffusion, Dirichlet, Grid, GridOperator,
                   Identity, Laplacian, Neumann, Periodic)
from . import grid
from .io import load
from .problems import (EnsembleProblem, LinearProblem, ODEProblem, SDEProblem, SplitODEProblem,
                       remake)
from .retcodes import ReturnCode
from .solution import (EnsembleSolution, EnsembleSummary, LinearSolution, ODESolution, SDESolution,
                       SolverStats)
from .solve import register, registered as solve_registry, solve
from .losses import EnsembleLoss, L2Loss, Loss, MomentLoss
from .gradient import gradient
from .linear import (AMG, CG, BiCGSTAB, Chebyshev, Direct, FlexibleCG, GMRES, Jacobi,
                     Multigrid)
from .sensitivity import (BacksolveAdjoint, DiscreteAdjoint, FiniteDifference, ForwardSensitivity,
                          HDF5Store, InterpolatingAdjoint, QuadratureAdjoint, check_gradient)
from .ode_stiff import ImplicitEuler, KenCarp4, Kvaerno5, Rodas5P, Rosenbrock23
from .exponential import ETDRK4
from .sde import EM, SRA1, SRIW1, EulerHeun, Milstein, reverse_sde
from . import ode_stiff, sde
from .fit import FitResult, Tikhonov, TotalVariation, fit
from .local_sensitivity import ParameterCovariance, local_sensitivities, parameter_covariance
from .ode import (DP5, RK4, ContinuousCallback, DiscreteCallback, Euler, ExplicitRK, Tsit5,
                  Vern7)
from .profile import profile; from .workprecision import work_precision  # noqa: E702

__all__ = [
    "__version__", "errors", "grid",
    "ODEFunction", "ODEProblem", "SDEProblem", "SplitODEProblem", "LinearProblem",
    "EnsembleProblem", "remake",
    "AbstractAlgorithm", "ODEAlgorithm", "SDEAlgorithm", "LinearAlgorithm", "Preconditioner",
    "SensitivityAlgorithm",
    "solve", "register", "solve_registry",
    "ReturnCode", "SolverStats", "ODESolution", "SDESolution", "LinearSolution",
    "EnsembleSolution", "EnsembleSummary", "load",
    "Grid", "BoundaryCondition", "Dirichlet", "Neumann", "Periodic", "GridOperator",
    "Laplacian", "Diffusion", "Advection", "Identity",
    "Loss", "L2Loss", "EnsembleLoss", "MomentLoss", "gradient",
    "Euler", "RK4", "Tsit5", "DP5", "Vern7", "ExplicitRK", "ContinuousCallback",
    "DiscreteCallback", "DiscreteAdjoint", "FiniteDifference", "InterpolatingAdjoint",
    "BacksolveAdjoint", "QuadratureAdjoint", "ForwardSensitivity", "HDF5Store", "check_gradient",
    "local_sensitivities", "parameter_covariance", "ParameterCovariance",
    "fit", "FitResult", "Tikhonov", "TotalVariation",
    "ImplicitEuler", "Rosenbrock23", "Rodas5P", "KenCarp4", "Kvaerno5", "ode_stiff", "ETDRK4",
    "EM", "EulerHeun", "Milstein", "SRIW1", "SRA1", "reverse_sde", "sde",
    "profile", "work_precision",
    "CG", "FlexibleCG", "BiCGSTAB", "GMRES", "Direct", "Jacobi", "Chebyshev", "Multigrid", "AMG",
]

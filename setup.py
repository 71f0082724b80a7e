"""jitsolve: one distribution, import name ``jitsolve``; the layer folders map onto subpackages."""
from setuptools import setup

PACKAGE_DIR = {
    "jitsolve": "python",
    "jitsolve.grid": "python/grid",
    "jitsolve.kernels": "kernels",
    "jitsolve.kernels.cpu": "kernels/cpu",
    "jitsolve.kernels.cuda": "kernels/cuda",
    "jitsolve.solvers": "solvers",
    "jitsolve.solvers.linear": "solvers/linear",
    "jitsolve.solvers.linear.precond": "solvers/linear/precond",
    "jitsolve.solvers.ode": "solvers/ode",
    "jitsolve.solvers.ode.tableaus": "solvers/ode/tableaus",
    "jitsolve.solvers.sde": "solvers/sde",
    "jitsolve.adjoint": "adjoint",
}

setup(
    name="jitsolve",
    version="0.1.0",
    description="Differentiable solver engine: Numba kernels for stencils, Krylov solvers, "
                "ODE/SDE integrators and their adjoints, under a Julia-style Python API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIR),
    package_dir=PACKAGE_DIR,
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.59", "h5py>=3.8", "pyamg>=5.0"],
    extras_require={
        "test": ["pytest>=7", "pytest-benchmark>=4", "pytest-xdist>=3", "hypothesis>=6", "mpmath>=1.3"],
        "cuda": ["numba-cuda", "cupy-cuda12x"],
        "mpi": ["mpi4py>=3.1"],
        "plot": ["matplotlib>=3.6"],
    },
    entry_points={"console_scripts": ["jitsolve = jitsolve.cli:main"]},
)

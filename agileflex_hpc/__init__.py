"""agileflex_hpc: headroom, footroom and hosting capacity of LV networks on HPC clusters."""

__version__ = "0.1.0"

__all__ = ["__version__"]

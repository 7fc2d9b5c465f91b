"""SLURM: the stage batch scripts (one template), ``agileflex submit`` (the dependent pipeline),
the submitted jobs' states for ``agileflex status``, and ``agileflex resubmit``."""

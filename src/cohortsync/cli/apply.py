"""`cohortsync apply`: declare authentications, queries, segments and activations as code."""


def apply() -> None:
    """Apply a YAML file of definitions (being built)."""
    raise NotImplementedError("cohortsync apply is being built")

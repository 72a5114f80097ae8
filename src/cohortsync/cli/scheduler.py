"""`cohortsync scheduler`: run saved queries and activations on their schedules."""


def scheduler() -> None:
    """Run due saved queries and activations (being built)."""
    raise NotImplementedError("cohortsync scheduler is being built")

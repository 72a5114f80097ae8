"""`cohortsync export`: export a query result to a Braze cohort."""


def export() -> None:
    """Export a query result to a Braze cohort (being built)."""
    raise NotImplementedError("cohortsync export is being built")

"""The no-op job for RQ."""


def noop(i: int) -> None:
    return None

"""Lets `fab` find the release tasks from the repository root (they live in ``deploy/``)."""
from deploy import ns

__all__ = ["ns"]

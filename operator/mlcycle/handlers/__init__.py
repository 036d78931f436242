"""kopf entry points, one module per kind. Importing this package registers every handler."""

from mlcycle.handlers import trainingjob  # noqa: F401

"""kopf entry points, one module per kind. Importing this package registers every handler."""

from mlcycle.handlers import (
    modelversion,  # noqa: F401
    trainingjob,  # noqa: F401
)

"""kopf entry points, one module per kind. Importing this package registers every handler."""

from mlcycle.handlers import (
    inferenceservice,  # noqa: F401
    modelversion,  # noqa: F401
    trainingjob,  # noqa: F401
)

"""The ModelVersion controller's pure parts: artifact verification, validation gates, alias resolution and
status. The kopf entry points are in mlcycle.handlers.modelversion."""

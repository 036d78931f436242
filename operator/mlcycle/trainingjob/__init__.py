"""TrainingJob: pure builders of its children (manifests), its status (status) and its ModelVersion
(registration). The kopf handlers in mlcycle.handlers.trainingjob only read, call these, apply and patch."""

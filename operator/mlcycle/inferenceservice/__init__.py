"""Pure rules of an InferenceService: one builder per child (deployment, service, hpa, cronjob), the Triton
model configuration, rollout steps and the status, all testable without a cluster."""

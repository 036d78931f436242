"""Data validation: the expectations of TrainingJob spec.dataValidation checked on a dataset (pure), and the
report that shows them. `mlcycle validate-data` (workloads/validate_data.py) reads the data and runs them."""

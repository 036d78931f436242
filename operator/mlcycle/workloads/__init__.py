"""Programs that run inside the pods mlcycle creates (the built-in trainer, …), not in the operator."""

return health(obj, {Pending = "Progressing", Verifying = "Progressing", Ready = "Healthy", Rejected = "Degraded",
                    Failed = "Degraded"})

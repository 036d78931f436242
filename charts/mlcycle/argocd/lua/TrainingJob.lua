return health(obj, {Pending = "Progressing", Running = "Progressing", Succeeded = "Healthy", Failed = "Degraded",
                    Suspended = "Suspended"})

"""The long-running processes: the production worker and the projector (duban worker, project)."""

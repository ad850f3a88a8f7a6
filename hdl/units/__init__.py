"""Function units of the CPU, one per file; ports are prefixed by the stage they belong to."""

"""Command implementations: one module per ``bpfcore`` command (registered in
:data:`bpfcore.cli.COMMAND_MODULES`)."""

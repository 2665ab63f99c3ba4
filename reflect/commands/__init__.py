"""The subcommands of the ``reflect`` command line, one module each."""

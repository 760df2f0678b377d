"""The `qihe` command: its subcommands, the local demo and the benchmark runner."""

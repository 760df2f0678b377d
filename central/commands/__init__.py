"""Commands to sensor boards from the centre (``docs/commands.md``): the config, the sender
that publishes a command and waits for its reply, and ``qihe command``."""

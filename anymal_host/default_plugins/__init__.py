"""Built-in behaviour, registered through the same hooks third-party plugins use."""

DEFAULT_PLUGINS = ("anymal_host.default_plugins.projectors", "anymal_host.default_plugins.safety")

"""mpcnet party daemon, bus, coordinator and local cluster tooling."""

__version__ = "0.1.0"

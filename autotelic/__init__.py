"""autotelic: an LLM agent that sets its own goals and learns online with SAC-GLAM.

The subpackages follow the data flow: ``envs`` -> ``runtime`` (collector) ->
``storage`` -> ``learners`` -> ``goals``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autotelic")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

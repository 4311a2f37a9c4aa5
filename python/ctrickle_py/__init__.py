"""ctrickle_py: the Python side of ctrickle's python.so plugin.

python.so (worker/plugins/python.c) embeds CPython in a ctrickle worker and
drives ctrickle_py.bridge.Bridge, which loads a PyTrickle-style processor and
converts frames. Processors do not import this package: they import
``pytrickle`` (the compatible surface shipped beside it). The helpers below
are for code that wants ctrickle's services directly.
"""

from .runtime import emit_data, emit_event, in_worker, log

__all__ = ["emit_data", "emit_event", "in_worker", "log"]

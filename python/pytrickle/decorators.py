"""Handler decorators of PyTrickle: mark methods of a plain class as the
hooks of a processor (StreamProcessor.from_handlers, or directly as the
"class" of ctrickle's python plugin)."""


def trickle_handler(handler_type: str):
    """Marks a method as the handler of handler_type: "video", "audio",
    "model_loader", "param_updater", "stream_start" or "stream_stop"."""
    def decorator(func):
        func._trickle_handler_type = handler_type
        func._trickle_handler = True
        return func
    return decorator


def _shortcut(kind):
    def deco(func=None, **_options):
        if func is None:  # used as @deco(...)
            return lambda f: trickle_handler(kind)(f)
        return trickle_handler(kind)(func)
    deco.__name__ = kind
    deco.__doc__ = 'Same as @trickle_handler("%s").' % kind
    return deco


video_handler = _shortcut("video")
audio_handler = _shortcut("audio")
model_loader = _shortcut("model_loader")
param_updater = _shortcut("param_updater")
on_stream_start = _shortcut("stream_start")
on_stream_stop = _shortcut("stream_stop")

__all__ = ["trickle_handler", "video_handler", "audio_handler", "model_loader",
           "param_updater", "on_stream_start", "on_stream_stop"]

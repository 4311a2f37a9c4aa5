"""StreamServer of PyTrickle. In ctrickle the HTTP server is build/gateway:
this class records its arguments so that a processor file that builds one
(for example under `if __name__ == "__main__":`) still imports and runs its
setup; serving from Python is not possible and says how to run instead."""

HOW_TO_RUN = ("ctrickle serves processors from build/gateway: run "
              "`build/gateway --processor python:MODULE:CLASS` (docs/python.md)")


class StreamServer:
    def __init__(self, frame_processor=None, port=8000, **kwargs):
        self.frame_processor = frame_processor
        self.port = port
        self.kwargs = kwargs
        self.current_client = None

    async def run_forever(self):
        raise RuntimeError(HOW_TO_RUN)

    def run(self):
        raise RuntimeError(HOW_TO_RUN)

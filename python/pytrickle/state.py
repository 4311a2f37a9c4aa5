"""Stream state of PyTrickle, kept for processors that read or attach it.
In ctrickle the gateway owns health and state (/health)."""

from enum import Enum


class PipelineState(Enum):
    LOADING = "LOADING"
    IDLE = "IDLE"
    OK = "OK"
    ERROR = "ERROR"


class StreamState:
    """Minimal state: the flags processors use."""

    def __init__(self):
        self.state = PipelineState.LOADING
        self.startup_complete = False
        self.error_message = None

    def set_startup_complete(self):
        self.startup_complete = True
        self.state = PipelineState.IDLE

    def set_state(self, state):
        self.state = state

    def set_error(self, message):
        self.state = PipelineState.ERROR
        self.error_message = message

    def clear_error(self):
        self.error_message = None
        if self.state == PipelineState.ERROR:
            self.state = PipelineState.IDLE

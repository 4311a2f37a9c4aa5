"""Worker services for Python code: log lines, events and data lines.

Inside a ctrickle worker they go through the builtin ``_ctrickle`` module of
python.so; outside one (a processor imported by plain python3, a unit test)
they fall back to the ``logging`` module and return -107 (ENOTCONN).
"""

import json
import logging

try:
    import _ctrickle  # builtin module of python.so
except ImportError:  # not inside a worker
    _ctrickle = None

ENOTCONN = 107
LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}


def in_worker():
    """True when running inside a ctrickle worker (python.so)."""
    return _ctrickle is not None


def log(level, text):
    """One line in the worker's log. level: 0 error, 1 warn, 2 info, 3 debug."""
    if _ctrickle is not None:
        _ctrickle.log(int(level), str(text))
    else:
        logging.getLogger("ctrickle").log(
            {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(level, logging.DEBUG),
            text)


def _text(obj, what):
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, str):
        return obj
    return json.dumps(obj, default=str)


def emit_data(data):
    """Sends one line (str, bytes, or anything json.dumps takes) to the
    stream's data channel. Returns 0 or a negative errno."""
    line = _text(data, "data").replace("\n", " ")
    if _ctrickle is None:
        return -ENOTCONN
    return _ctrickle.emit_data(line)


def emit_event(event):
    """Sends a monitoring event (a dict, or JSON object text) to the stream's
    events channel. Returns 0 or a negative errno."""
    if _ctrickle is None:
        return -ENOTCONN
    return _ctrickle.emit_event(_text(event, "event"))


class WorkerLogHandler(logging.Handler):
    """A logging handler that writes records into the worker's log."""

    def emit(self, record):
        try:
            msg = self.format(record).replace("\n", " | ")
            if record.levelno >= logging.ERROR:
                lvl = 0
            elif record.levelno >= logging.WARNING:
                lvl = 1
            elif record.levelno >= logging.INFO:
                lvl = 2
            else:
                lvl = 3
            log(lvl, msg)
        except Exception:  # never let logging break a frame
            pass

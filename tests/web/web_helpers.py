"""Helpers shared by the web tests: a `minidet` web command in a subprocess, and waiting."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path


class CliServer:
    """``minidet COMMAND ARGS... --no-browser`` in a subprocess; ``url`` once it listens."""

    def __init__(self, command: str, *args: str, cwd: Path, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minidet.cli", command, *map(str, args), "--no-browser"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(cwd),
        )
        self.output: list[str] = []
        self.url = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            self.output.append(line)
            match = re.search(r"open (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return
        self.kill()
        raise RuntimeError(f"`minidet {command}` did not start:\n" + "".join(self.output))

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to save anything (a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> str:
        """SIGTERM (the server saves and ends); returns everything it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        return "".join(self.output) + (out or "")


def wait_for(predicate, timeout: float = 20.0, what: str = "condition", poll_s: float = 0.05):
    """Call ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")

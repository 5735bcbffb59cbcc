"""Browser terminal: keystroke-to-echo latency in Chromium, beside a raw WebSocket client.

One run starts a real runner in-process on a free port with the terminal page on (as the tests
do), one busybox container, and two tty ``/bin/sh`` sessions in it:

- browser: the runner's page (/ui/terminal) in Debian's Chromium driven by Playwright. Playwright
  presses a key (trusted input through the DevTools protocol); the page timestamps the key's
  ``keydown`` (``performance.now()``) and the moment xterm has parsed the echoed character into its
  buffer (``onWriteParsed`` with that character in the cell left of the cursor). So the figure is
  what a person sees: xterm's key handling, the stdin frame (UTF-8, base64, JSON), the runner, the
  exec's tty echo, the stdout frame back, and xterm's parse. The next key is pressed once the
  echo is in (parsed, not yet drawn: see below).
- raw: a Python ``websockets`` client on the same route (signed upgrade, per-message deflate as
  Chromium negotiates it): ``perf_counter`` from sending the one-character stdin frame to receiving
  the stdout frame that holds it.

Keys are the letters a..z in turn after a ``#`` (the shell takes each line as a comment), 40 to a
line, then Enter, ``--pace-ms`` apart (default 50: 20 keys a second, faster than anyone types; the
time from one echo to the next key press, for both ways). The two ways alternate line by line,
after a warm-up line each; p50 and p95 are over ``--keys`` keystrokes per way (default 200).
Target: browser p50 under 30 ms and within 10 ms of raw. The load average is printed at both
ends: the figures move with the machine's load.

Where the browser's extra time goes (seen with a Chromium trace, then by experiment): the runner
answers within 2-4 ms, but when a main frame is already pending as Chromium finishes handling an
input event, it holds the renderer's other per-frame tasks, the WebSocket message included, until
that frame is drawn (its DeferRendererTasksAfterInput feature, on by default; its default policy
defers every per-frame task type). Here the pending frame is the previous echo's: the next key is
pressed as soon as the echo is parsed, before xterm has drawn it (xterm draws on the next animation
frame). The key itself asks for no frame: xterm cancels it and changes nothing on screen until
the echo, and skipping xterm's key handling altogether changes nothing (p50 13.8 ms).
So the browser figure here is one frame of deferral that typing at a person's pace does not meet:
with the same page, pressing each key once the previous echo is drawn (a requestAnimationFrame,
then a timeout) gave p50 2.4 ms, p95 4.0 (raw 0.97 / 1.46, 200 keys, load 0.4); pausing 20 ms
or 100 ms between keys gave p50 2.9 and 3.5 ms (100 and 60 keys). The flag
``--chromium-arg=--disable-features=DeferRendererTasksAfterInput`` turns the feature off: p50 2.7 ms.
Owning the socket in a dedicated Web Worker does not help: the worker had the echo 2.6 ms after
the keydown, but its postMessage to the page (a per-frame task too) was held 10.7 ms (p50), and
the browser p50 stayed 13.6 ms. A plain <textarea> page that sends on keydown shows the same:
about 2 ms when the key changes nothing on screen, about 13 ms when it does (the typed character
is then the pending frame).

Hence the pace: back to back (``--pace-ms 0``) each key lands on the previous echo's pending
frame and the browser figure measures Chromium's frame deferral (p50 about 14 ms); at any pace
that lets the echo be drawn first, it measures the terminal.

    .venv/bin/python bench/terminal.py [--keys 200] [--pace-ms 50] [--json PATH] [--chromium-arg FLAG ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, sync_playwright
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, TerminalPage, browser_problem
from tests.support.server import TEST_SECRET, make_settings, running_runner
from websockets.sync.client import ClientConnection, connect

from docker_runner_client import ContainerOpts, HttpDockerRunnerClient
from docker_runner_client._routes import terminal_target
from docker_runner_client._signing import sign_headers

IMAGE = os.environ.get("RUNNER_TEST_IMAGE", "runner-test/busybox:latest")
BENCH_LABELS = {"dev.docker-runner.bench": "terminal"}
LINE_KEYS = 40
LETTERS = "abcdefghijklmnopqrstuvwxyz"
P50_TARGET_MS = 30.0
GAP_TARGET_MS = 10.0
PROMPT = b"/ # "

# Installed in the page: timestamps a letter's keydown and its arrival in xterm's buffer.
INSTRUMENT = """() => {
  const term = window.runnerTerminal.terminal;
  const bench = (window.bench = { samples: [], expected: null, started: 0 });
  term.textarea.addEventListener("keydown", (event) => {
    if (/^[a-z]$/.test(event.key)) {
      bench.expected = event.key;
      bench.started = performance.now();
    }
  }, true);
  term.onWriteParsed(() => {
    if (bench.expected === null) return;
    const buffer = term.buffer.active;
    const line = buffer.getLine(buffer.baseY + buffer.cursorY);
    const cell = line && buffer.cursorX > 0 ? line.getCell(buffer.cursorX - 1) : undefined;
    if (cell && cell.getChars() === bench.expected) {
      bench.samples.push(performance.now() - bench.started);
      bench.expected = null;
    }
  });
}"""
AWAIT_SAMPLE = """(count) => new Promise((resolve, reject) => {
  const started = performance.now();
  const check = () => {
    if (window.bench.samples.length > count) resolve(window.bench.samples[count]);
    else if (performance.now() - started > 10000) reject(new Error("no echo within 10 s"));
    else setTimeout(check, 1);
  };
  check();
})"""


class BenchError(RuntimeError):
    """A session misbehaved: the figures would measure failures."""


@dataclass
class Figures:
    keys: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float


def figures(samples: list[float]) -> Figures:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Figures(len(ordered), statistics.median(ordered), p95, statistics.fmean(ordered), ordered[-1])


class BrowserWay:
    def __init__(self, page: Page, pace_seconds: float) -> None:
        self.page = page
        self.pace_seconds = pace_seconds
        self.terminal = TerminalPage(page)
        self.samples: list[float] = []
        self._count = 0

    def start(self, url: str) -> None:
        self.page.goto(url)
        self.terminal.wait_state("open")
        self.terminal.wait_prompt()
        self.page.evaluate(INSTRUMENT)

    def line(self, keys: int, record: bool) -> None:
        self.page.keyboard.press("#")
        for index in range(keys):
            self.page.keyboard.press(LETTERS[index % len(LETTERS)])
            sample = float(self.page.evaluate(AWAIT_SAMPLE, self._count))
            self._count += 1
            if record:
                self.samples.append(sample)
            time.sleep(self.pace_seconds)
        self.page.keyboard.press("Enter")
        self.terminal.wait_prompt()


class RawWay:
    def __init__(self, base_url: str, container_id: str, pace_seconds: float) -> None:
        self.pace_seconds = pace_seconds
        target = terminal_target(container_id, None, None, None)
        url = base_url.replace("http", "ws", 1) + target
        headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
        self.connection: ClientConnection = connect(url, additional_headers=headers, legacy=True)
        self.samples: list[float] = []
        ready = self._frame()
        if ready.get("type") != "ready":
            raise BenchError(f"the raw session did not start: {ready}")
        self._read_until(PROMPT)

    def _frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.connection.recv(timeout=10))
        if frame.get("type") in ("exit", "error"):
            raise BenchError(f"the raw session ended: {frame}")
        return frame

    def _read_until(self, needle: bytes) -> None:
        seen = b""
        while needle not in seen:
            frame = self._frame()
            if frame.get("type") == "stdout":
                seen += base64.b64decode(frame["data"])

    def _send(self, data: bytes) -> None:
        self.connection.send(json.dumps({"type": "stdin", "data": base64.b64encode(data).decode()}))

    def line(self, keys: int, record: bool) -> None:
        self._send(b"#")
        self._read_until(b"#")
        for index in range(keys):
            letter = LETTERS[index % len(LETTERS)].encode()
            started = time.perf_counter()
            self._send(letter)
            self._read_until(letter)
            if record:
                self.samples.append((time.perf_counter() - started) * 1000)
            time.sleep(self.pace_seconds)
        self._send(b"\r")
        self._read_until(PROMPT)

    def close(self) -> None:
        self.connection.close()


def measure(keys: int, pace_ms: float, chromium_args: list[str]) -> dict[str, Figures]:
    with (
        running_runner(make_settings(ui=True)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
        sync_playwright() as playwright,
    ):
        box = client.start_container(ContainerOpts(image=IMAGE, cmd=["sleep", "3600"], labels=BENCH_LABELS))
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *chromium_args], headless=True
        )
        raw: RawWay | None = None
        try:
            page = browser.new_context(viewport={"width": 1000, "height": 600}).new_page()
            in_browser = BrowserWay(page, pace_ms / 1000)
            in_browser.start(client.terminal_url(box.container_id))
            raw = RawWay(server.url, box.container_id, pace_ms / 1000)
            in_browser.line(LINE_KEYS // 2, record=False)
            raw.line(LINE_KEYS // 2, record=False)
            while len(in_browser.samples) < keys:
                in_browser.line(min(LINE_KEYS, keys - len(in_browser.samples)), record=True)
                raw.line(min(LINE_KEYS, keys - len(raw.samples)), record=True)
        finally:
            if raw is not None:
                raw.close()
            browser.close()
            client.remove_container(box.container_id, force=True)
    return {"browser": figures(in_browser.samples), "raw": figures(raw.samples)}


def report(results: dict[str, Figures]) -> dict[str, Any]:
    print(f"{'way':<10}{'keys':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for name, row in results.items():
        print(f"{name:<10}{row.keys:>6}{row.p50_ms:>10.2f}{row.p95_ms:>10.2f}{row.mean_ms:>10.2f}{row.max_ms:>10.2f}")
    browser, raw = results["browser"], results["raw"]
    gap = browser.p50_ms - raw.p50_ms
    verdicts = {
        "browser_p50_under_30ms": browser.p50_ms < P50_TARGET_MS,
        "within_10ms_of_raw": gap < GAP_TARGET_MS,
    }
    under, within = _ok(verdicts["browser_p50_under_30ms"]), _ok(verdicts["within_10ms_of_raw"])
    print(f"\nbrowser p50 {browser.p50_ms:.2f} ms (target < {P50_TARGET_MS:g}): {under}")
    print(f"browser p50 - raw p50 = {gap:.2f} ms (target < {GAP_TARGET_MS:g}): {within}")
    return {"figures": {name: asdict(row) for name, row in results.items()}, "p50_gap_ms": gap, "targets": verdicts}


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes timed per way (default 200)")
    parser.add_argument(
        "--pace-ms", type=float, default=50, help="from one echo to the next key press, in ms (default 50)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument(
        "--chromium-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="one more Chromium flag, e.g. --chromium-arg=--disable-features=DeferRendererTasksAfterInput",
    )
    args = parser.parse_args()
    if args.keys < 1:
        parser.error("--keys must be at least 1")
    problem = browser_problem()
    if problem is not None:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    print("load average at start: {:.2f} {:.2f} {:.2f}\n".format(*os.getloadavg()))
    if args.chromium_arg:
        print("extra Chromium flags:", " ".join(args.chromium_arg), "\n")
    print(f"keys {args.pace_ms:g} ms after the previous echo\n")
    document = report(measure(args.keys, args.pace_ms, args.chromium_arg))
    document["pace_ms"] = args.pace_ms
    document["chromium_args"] = [*CHROMIUM_ARGS, *args.chromium_arg]
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

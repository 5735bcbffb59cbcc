/**
 * The full-window terminal page the runner serves at /ui/terminal. Its WebSocket URL, ticket
 * included, is the location fragment (`/ui/terminal#ws://host/v1/exec/interactive/ws?...&ticket=...`):
 * a fragment is never sent to a server, so the ticket stays out of access logs.
 *
 * For tests and tools the page exposes the terminal as `window.runnerTerminal` and records every
 * event in `window.runnerTerminalEvents`.
 */

import { RunnerTerminal, type TerminalEvents } from "./terminal";

interface RecordedEvent {
  type: keyof TerminalEvents;
  detail: TerminalEvents[keyof TerminalEvents];
}

declare global {
  interface Window {
    runnerTerminal?: RunnerTerminal;
    runnerTerminalEvents: RecordedEvent[];
  }
}

const HOW_TO = "Open a link printed by `docker-runner-client terminal CONTAINER`.";

/** The WebSocket URL in the fragment, or why there is none usable. */
export function socketUrlFromFragment(hash: string, pageHost: string): { url: string } | { problem: string } {
  const raw = hash.replace(/^#/, "");
  if (!raw) {
    return { problem: `This page needs the exec WebSocket URL in its fragment (#ws://...). ${HOW_TO}` };
  }
  const text = /^wss?%3A/i.test(raw) ? decodeURIComponent(raw) : raw;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: `The fragment is not a URL. ${HOW_TO}` };
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return { problem: `The fragment must be a ws:// or wss:// URL, not ${url.protocol}. ${HOW_TO}` };
  }
  if (url.host !== pageHost) {
    return { problem: `This page only connects to the runner that serves it (${pageHost}), not ${url.host}.` };
  }
  return { url: url.toString() };
}

function showProblem(root: HTMLElement, problem: string): void {
  const message = document.createElement("p");
  message.className = "runner-terminal-problem";
  message.textContent = problem;
  root.replaceChildren(message);
  document.title = "terminal: no session";
}

function start(): void {
  window.runnerTerminalEvents = [];
  const root = document.getElementById("terminal");
  if (root === null) {
    return;
  }
  const target = socketUrlFromFragment(location.hash, location.host);
  if ("problem" in target) {
    showProblem(root, target.problem);
    return;
  }
  const container = new URL(target.url).searchParams.get("containerId") ?? "";
  const name = container.length > 12 ? container.slice(0, 12) : container;
  document.title = `terminal: ${name}`;
  const terminal = new RunnerTerminal(root, { url: target.url });
  const record = <K extends keyof TerminalEvents>(type: K) =>
    terminal.on(type, (detail) => window.runnerTerminalEvents.push({ type, detail }));
  record("ready");
  record("error");
  record("exit");
  terminal.on("exit", ({ exitCode }) => {
    document.title = `terminal: ${name} (exited ${exitCode})`;
  });
  terminal.on("error", () => {
    document.title = `terminal: ${name} (disconnected)`;
  });
  window.runnerTerminal = terminal;
  terminal.focus();
}

start();

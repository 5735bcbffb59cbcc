/**
 * An xterm.js terminal attached to a docker-runner interactive-exec WebSocket (docs/protocol.md section 5),
 * for a platform to embed in its own page:
 *
 *   import { RunnerTerminal } from "./terminal.js";   // dist/terminal.js, with dist/terminal.css
 *   const term = new RunnerTerminal(element, { url: "wss://runner/v1/exec/interactive/ws?...&ticket=..." });
 *   term.on("ready", ({ execId }) => ...);
 *   term.on("exit", ({ exitCode }) => ...);
 *   term.on("error", ({ code, message }) => ...);
 *   term.dispose();                                   // closes the socket: the runner kills the exec
 *
 * Keystrokes and pastes go out as `stdin` frames (UTF-8, base64); output is written to xterm as bytes,
 * so a multi-byte character split across frames renders whole; a `resize` frame follows every change
 * of size. Error frames, a refused upgrade (the runner is asked why: browsers hide the status) and a
 * lost connection are written into the terminal and reported as `error` events. It never reconnects
 * by itself: a ticket opens one session, and a new shell is the user's decision.
 */

import { FitAddon } from "@xterm/addon-fit";
import { type ITerminalOptions, Terminal } from "@xterm/xterm";

export type TerminalState = "connecting" | "starting" | "open" | "exited" | "failed" | "closed" | "disposed";

export interface ReadyEvent {
  execId: string;
}

export interface ExitEvent {
  execId: string;
  exitCode: number;
}

/** `frame`: an error frame from the runner; `upgrade`: the socket was refused; `connection`: it was lost. */
export interface ErrorEvent {
  kind: "frame" | "upgrade" | "connection";
  code: string;
  message: string;
}

export interface TerminalEvents {
  ready: ReadyEvent;
  exit: ExitEvent;
  error: ErrorEvent;
}

export interface RunnerTerminalOptions {
  /** The exec WebSocket URL, ticket included: `ws(s)://host/v1/exec/interactive/ws?...&ticket=...`. */
  url: string;
  /** Options for the xterm.js Terminal. */
  terminal?: ITerminalOptions;
  /** Keep the terminal fitted to its element (default true). */
  fit?: boolean;
  /** After a refused upgrade, ask the runner why with a plain GET of the same URL (default true). */
  diagnose?: boolean;
}

type Listener<K extends keyof TerminalEvents> = (event: TerminalEvents[K]) => void;

interface Frame {
  type?: unknown;
  data?: unknown;
  execId?: unknown;
  exitCode?: unknown;
  error?: unknown;
  code?: unknown;
}

const RED = "\x1b[1;31m";
const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";
const RESET = "\x1b[0m";
const HIDE_CURSOR = "\x1b[?25l";
const CHUNK = 0x8000;

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let start = 0; start < bytes.length; start += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(start, start + CHUNK));
  }
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) {
    bytes[index] = binary.charCodeAt(index);
  }
  return bytes;
}

/** The http(s) URL of a ws(s) URL: where the runner explains a refused upgrade. */
export function diagnosisUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  return url.toString();
}

/** What to tell the user about the runner's answer to a refused upgrade, or null when it gave no reason. */
export function explainRefusal(code: string, message: string, origin: string): string | null {
  if (code === "invalid_ticket") {
    if (/already used/i.test(message)) {
      return "ticket already used: a terminal link opens one session only. Ask for a new link.";
    }
    if (/expired/i.test(message)) {
      return "ticket expired: a terminal link must be opened within its TTL. Ask for a new link.";
    }
    return `${message}. Ask for a new link.`;
  }
  if (code === "origin_not_allowed") {
    return `this page's origin (${origin}) may not open exec sessions: the runner lists the allowed ones in DOCKER_RUNNER_ALLOWED_ORIGINS.`;
  }
  if (code === "upgrade_required") {
    return null;
  }
  return `${message} (${code})`;
}

export class RunnerTerminal {
  readonly terminal: Terminal;
  private readonly options: RunnerTerminalOptions;
  private readonly fitAddon = new FitAddon();
  private readonly listeners = new Map<keyof TerminalEvents, Set<Listener<never>>>();
  private readonly encoder = new TextEncoder();
  private readonly disposables: Array<() => void> = [];
  private socket: WebSocket | null = null;
  private opened = false;
  private reportedError = false;
  private _state: TerminalState = "connecting";
  private _execId: string | null = null;
  private _exitCode: number | null = null;

  constructor(element: HTMLElement, options: RunnerTerminalOptions) {
    this.options = options;
    this.terminal = new Terminal({ scrollback: 5000, theme: { background: "#1e1e1e" }, ...options.terminal });
    this.terminal.loadAddon(this.fitAddon);
    this.terminal.open(element);
    if (options.fit !== false) {
      this.fit();
      this.watchSize(element);
    }
    const data = this.terminal.onData((text) => this.sendStdin(this.encoder.encode(text)));
    const binary = this.terminal.onBinary((text) => this.sendStdin(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));
    const resize = this.terminal.onResize(({ cols, rows }) => this.sendResize(cols, rows));
    this.disposables.push(
      () => data.dispose(),
      () => binary.dispose(),
      () => resize.dispose(),
    );
    this.connect(options.url);
  }

  get state(): TerminalState {
    return this._state;
  }

  get execId(): string | null {
    return this._execId;
  }

  get exitCode(): number | null {
    return this._exitCode;
  }

  /** Subscribe to an event; returns the unsubscribe function. */
  on<K extends keyof TerminalEvents>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  /** Fit the terminal to its element now (it does so by itself when the element changes size). */
  fit(): void {
    if (this._state !== "disposed") {
      this.fitAddon.fit();
    }
  }

  focus(): void {
    this.terminal.focus();
  }

  /** What the terminal shows, scrollback included, one line per row, trailing blanks trimmed. */
  text(): string {
    const buffer = this.terminal.buffer.active;
    const lines: string[] = [];
    for (let row = 0; row < buffer.length; row += 1) {
      lines.push(buffer.getLine(row)?.translateToString(true) ?? "");
    }
    return lines.join("\n").replace(/\n+$/, "");
  }

  /** Close the socket (the runner then kills the exec's processes) and tear the terminal down. */
  dispose(): void {
    if (this._state === "disposed") {
      return;
    }
    this._state = "disposed";
    this.socket?.close(1000, "disposed");
    this.socket = null;
    for (const dispose of this.disposables.splice(0)) {
      dispose();
    }
    this.terminal.dispose();
    this.listeners.clear();
  }

  private emit<K extends keyof TerminalEvents>(type: K, event: TerminalEvents[K]): void {
    for (const listener of this.listeners.get(type) ?? []) {
      try {
        (listener as Listener<K>)(event);
      } catch (error) {
        console.error(`docker-runner terminal: a ${type} listener failed`, error);
      }
    }
  }

  private notice(text: string, style = RED): void {
    this.terminal.write(`\r\n${style}[${text}]${RESET}\r\n`);
  }

  private fail(kind: ErrorEvent["kind"], code: string, message: string, state: TerminalState = "failed"): void {
    this.reportedError = true;
    this.notice(message);
    this.end(state);
    this.emit("error", { kind, code, message });
  }

  /** No more input: the session is over (the terminal stays, to be read). */
  private end(state: TerminalState): void {
    this._state = state;
    this.terminal.options.disableStdin = true;
    this.terminal.write(HIDE_CURSOR);
  }

  private watchSize(element: HTMLElement): void {
    let pending = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => this.fit());
    });
    observer.observe(element);
    this.disposables.push(() => {
      cancelAnimationFrame(pending);
      observer.disconnect();
    });
  }

  private connect(url: string): void {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      this.fail("connection", "invalid_url", `cannot open ${url}: ${String(error)}`);
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.opened = true;
      this._state = "starting";
    };
    socket.onmessage = (message: MessageEvent) => {
      if (typeof message.data === "string") {
        this.handleFrame(message.data);
      }
    };
    socket.onclose = (close: CloseEvent) => {
      void this.handleClose(close);
    };
  }

  private handleFrame(text: string): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      return;
    }
    switch (frame.type) {
      case "stdout":
      case "stderr":
        if (typeof frame.data === "string") {
          this.terminal.write(fromBase64(frame.data));
        }
        break;
      case "ready":
        this._execId = String(frame.execId ?? "");
        this._state = "open";
        this.sendResize(this.terminal.cols, this.terminal.rows);
        this.emit("ready", { execId: this._execId });
        break;
      case "exit":
        this._exitCode = Number(frame.exitCode);
        this.notice(`process exited with code ${this._exitCode}`, BOLD);
        this.end("exited");
        this.emit("exit", { execId: String(frame.execId ?? this._execId ?? ""), exitCode: this._exitCode });
        break;
      case "error": {
        const code = String(frame.code ?? "error");
        const message = String(frame.error ?? "the runner reported an error");
        this.reportedError = true;
        this.notice(`error: ${message} (${code})`);
        this.emit("error", { kind: "frame", code, message });
        break;
      }
      default:
        break;
    }
  }

  private async handleClose(close: CloseEvent): Promise<void> {
    this.socket = null;
    if (this._state === "disposed" || this._state === "exited") {
      return;
    }
    if (!this.opened) {
      const reason = this.options.diagnose === false ? null : await this.diagnose();
      // the state may have changed while the runner was asked
      if (this.state !== "disposed") {
        this.fail("upgrade", reason?.code ?? "upgrade_refused", `refused: ${reason?.message ?? this.unexplained()}`);
      }
      return;
    }
    if (this.reportedError) {
      this.notice(`session ended (close code ${close.code})`, DIM);
      this.end("closed");
      return;
    }
    const why = close.reason ? `${close.code} ${close.reason}` : `${close.code}`;
    this.fail(
      "connection",
      "connection_lost",
      `connection lost (close code ${why}); the shell is gone. Open a new link for a new session.`,
      "closed",
    );
  }

  private unexplained(): string {
    const host = new URL(this.options.url).host;
    return `the runner at ${host} could not be reached, or refused the connection without saying why.`;
  }

  /** Browsers hide why an upgrade failed: the same URL as a plain GET tells, without using the ticket. */
  private async diagnose(): Promise<{ code: string; message: string } | null> {
    try {
      const response = await fetch(diagnosisUrl(this.options.url), {
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
      const code = String(body.error?.code ?? "");
      const explained = explainRefusal(code, String(body.error?.message ?? ""), location.origin);
      return explained === null ? null : { code, message: explained };
    } catch {
      return null;
    }
  }

  private send(frame: object): void {
    if (this.socket !== null && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  private sendStdin(bytes: Uint8Array): void {
    if (this._state === "open" && bytes.length > 0) {
      this.send({ type: "stdin", data: toBase64(bytes) });
    }
  }

  private sendResize(cols: number, rows: number): void {
    if (this._state === "open") {
      this.send({ type: "resize", cols, rows });
    }
  }
}

/** `new RunnerTerminal(element, options)`, for those who prefer a function. */
export function attachTerminal(element: HTMLElement, options: RunnerTerminalOptions): RunnerTerminal {
  return new RunnerTerminal(element, options);
}

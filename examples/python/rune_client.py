#!/usr/bin/env python3
"""A Rune client in plain Python (standard library only, Python 3.9+).

It speaks the Model Context Protocol to the Rune daemon, either over stdio
(it starts ``rune serve --stdio`` itself; the default) or over Streamable
HTTP to a running daemon (``--url http://127.0.0.1:8484/mcp``), lists the
models, streams a generation as it arrives, and chats with history.

    python3 rune_client.py models
    python3 rune_client.py generate "Why is the sky blue?" --model llama3.2
    python3 rune_client.py chat --model ollama/qwen3
    python3 rune_client.py --url http://127.0.0.1:8484/mcp --token "$RUNE_TOKEN" models

Both transports use the 2025 era of MCP (protocol 2025-06-18): an
``initialize`` handshake, then requests; over HTTP the daemon hands out a
session (``Mcp-Session-Id``) and answers each request with a stream of
server-sent events, which this client reads as they come. Tokens arrive as
``notifications/progress`` (the request carries a progress token) and are
printed at once. Ctrl-C cancels the request in flight with
``notifications/cancelled``, and the daemon stops the model at once (in
chat, Ctrl-C stops the reply and the chat goes on; Ctrl-C at the prompt
quits).

Bounds: a message from the daemon longer than MAX_MESSAGE_BYTES is an error
(and ends the connection); at most MAX_QUEUED_MESSAGES wait to be handled
(the reader then stops reading, which holds the daemon back); the last
STDERR_LINES lines of the daemon's stderr are kept for error messages.

Exit codes: 0 success, 1 failure (message on stderr), 2 usage error,
130 interrupted.
"""

import argparse
import collections
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional

PROTOCOL_VERSION = "2025-06-18"
SUPPORTED_VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26"}
# The daemon's own limit on a message (--max-message-bytes).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_QUEUED_MESSAGES = 1024
STDERR_LINES = 20
DEFAULT_CMD = "rune serve --stdio"
CLIENT_INFO = {"name": "rune-python-example", "version": "0.1.0"}

Message = Dict[str, Any]


class RuneError(Exception):
    """A failure the user can act on; the message says what to do."""


class RpcError(RuneError):
    """A JSON-RPC error answer."""


# ---------------------------------------------------------------------------
# Transports: each turns one outgoing message into the incoming messages
# that follow it, until the caller has its answer.


class StdioTransport:
    """Runs the daemon as a child process and talks over its stdin/stdout."""

    def __init__(self, cmd: List[str]) -> None:
        try:
            # A session of its own: Ctrl-C in the terminal reaches only this
            # client, which cancels the request instead of killing the daemon.
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            raise RuneError(
                f"Cannot start the Rune daemon {cmd[0]!r}: {error.strerror or error}. "
                'Install rune ("deno task install" in the Rune checkout) or pass --cmd.'
            ) from error
        self.incoming: "queue.Queue[Optional[Message]]" = queue.Queue(MAX_QUEUED_MESSAGES)
        self.stderr_tail: "collections.deque[str]" = collections.deque(maxlen=STDERR_LINES)
        self.failure: Optional[str] = None
        self.write_lock = threading.Lock()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                line = stdout.readline(MAX_MESSAGE_BYTES + 1)
                if not line:
                    break
                if len(line) > MAX_MESSAGE_BYTES and not line.endswith(b"\n"):
                    self.failure = (
                        f"The Rune daemon sent a message longer than {MAX_MESSAGE_BYTES} bytes."
                    )
                    break
                line = line.strip()
                if not line:
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    print(f"rune_client: ignored a line that is not JSON: {line[:200]!r}",
                          file=sys.stderr)
                    continue
                if isinstance(message, dict):
                    self.incoming.put(message)
        finally:
            self.incoming.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip()[:500])

    def send(self, message: Message) -> None:
        data = (json.dumps(message) + "\n").encode("utf-8")
        assert self.process.stdin is not None
        try:
            with self.write_lock:
                self.process.stdin.write(data)
                self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise RuneError(self._exit_message()) from error

    def _exit_message(self) -> str:
        if self.failure:
            return self.failure
        code = self.process.wait()
        tail = "\n".join(self.stderr_tail)
        return f"The Rune daemon exited (code {code})" + (f":\n{tail}" if tail else ".")

    def exchange(self, message: Message) -> Iterator[Message]:
        self.send(message)
        while True:
            incoming = self.incoming.get()
            if incoming is None:
                # Seen by the next call too.
                self.incoming.put(None)
                raise RuneError(self._exit_message())
            yield incoming

    def cancel(self, request_id: int) -> None:
        try:
            self.send(cancelled(request_id))
        except RuneError:
            pass

    def close(self) -> None:
        # EOF on stdin shuts the daemon down.
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait()


class HttpTransport:
    """Streamable HTTP with a 2025 session: each POST's answer is JSON or an SSE stream."""

    def __init__(self, url: str, token: Optional[str]) -> None:
        self.url = url
        self.token = token
        self.session_id: Optional[str] = None
        self.protocol_version: Optional[str] = None
        self.response: Any = None  # the stream being read, closed on cancel
        host = urllib.parse.urlsplit(url).hostname or ""
        handlers = []
        if host in ("127.0.0.1", "localhost", "::1"):
            # A proxy from the environment must not carry loopback traffic.
            handlers.append(urllib.request.ProxyHandler({}))
        self.opener = urllib.request.build_opener(*handlers)

    def _headers(self) -> Dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def _open(self, method: str, body: Optional[Message] = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.url, data=data, method=method,
                                         headers=self._headers())
        try:
            return self.opener.open(request)
        except urllib.error.HTTPError as error:
            detail = error.read(64 * 1024).decode("utf-8", "replace").strip()
            error.close()
            if error.code == 401:
                raise RuneError(
                    f"The daemon at {self.url} wants a bearer token (401): pass --token or set "
                    "RUNE_TOKEN."
                ) from error
            raise RuneError(f"{method} {self.url} failed: HTTP {error.code} {detail}") from error
        except urllib.error.URLError as error:
            raise RuneError(
                f"Cannot reach the Rune daemon at {self.url}: {error.reason}. "
                "Is \"rune serve\" running?"
            ) from error

    def send(self, message: Message) -> None:
        with self._open("POST", message) as response:
            response.read(64 * 1024)

    def exchange(self, message: Message) -> Iterator[Message]:
        response = self._open("POST", message)
        self.response = response
        try:
            session = response.headers.get("Mcp-Session-Id")
            if session:
                self.session_id = session
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            if kind == "application/json":
                body = response.read(MAX_MESSAGE_BYTES + 1)
                if len(body) > MAX_MESSAGE_BYTES:
                    raise RuneError(f"The daemon's answer is longer than {MAX_MESSAGE_BYTES} bytes.")
                for item in as_list(json.loads(body)):
                    yield item
            elif kind == "text/event-stream":
                for item in read_events(response):
                    yield item
            else:
                raise RuneError(f"The daemon answered with {kind or 'no content type'}, "
                                "not JSON or an event stream.")
            raise RuneError("The daemon ended the answer without a result.")
        finally:
            self.response = None
            response.close()

    def cancel(self, request_id: int) -> None:
        # Tell the daemon, then drop the stream (which alone would cancel too).
        try:
            self.send(cancelled(request_id))
        except RuneError:
            pass
        if self.response is not None:
            self.response.close()

    def close(self) -> None:
        if self.session_id:
            try:
                self._open("DELETE").close()
            except RuneError:
                pass


def as_list(value: Any) -> List[Message]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def read_events(stream: Any) -> Iterator[Message]:
    """Parses server-sent events; yields the JSON-RPC messages of their data."""
    data: List[bytes] = []
    size = 0
    while True:
        line = stream.readline(MAX_MESSAGE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_MESSAGE_BYTES and not line.endswith(b"\n"):
            raise RuneError(f"The daemon sent an event longer than {MAX_MESSAGE_BYTES} bytes.")
        line = line.rstrip(b"\r\n")
        if line == b"":
            if data:
                for item in as_list(json.loads(b"\n".join(data))):
                    yield item
            data, size = [], 0
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
            size += len(value)
            if size > MAX_MESSAGE_BYTES:
                raise RuneError(f"The daemon sent an event longer than {MAX_MESSAGE_BYTES} bytes.")
        # "event:", "id:", "retry:" and ":" comments carry nothing this client needs.


def cancelled(request_id: int) -> Message:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "cancelled by the user (Ctrl-C)"},
    }


# ---------------------------------------------------------------------------
# The MCP client


class Client:
    """An MCP client over one transport: handshake, tool calls, progress, cancel."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.next_id = 1

    def request(self, method: str, params: Message,
                on_progress: Optional[Callable[[Message], None]] = None) -> Message:
        request_id = self.next_id
        self.next_id += 1
        token = None
        if on_progress is not None:
            token = f"rune-python-{request_id}"
            params = dict(params, _meta={"progressToken": token})
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            for incoming in self.transport.exchange(message):
                kind = incoming.get("method")
                if isinstance(kind, str):
                    if "id" in incoming:
                        self._answer(incoming)
                    elif (kind == "notifications/progress" and on_progress is not None
                          and isinstance(incoming.get("params"), dict)
                          and incoming["params"].get("progressToken") == token):
                        on_progress(incoming["params"])
                    continue
                # Answers to requests cancelled earlier are not ours.
                if incoming.get("id") != request_id:
                    continue
                if "error" in incoming:
                    error = incoming["error"] if isinstance(incoming["error"], dict) else {}
                    raise RpcError(str(error.get("message", incoming["error"])))
                result = incoming.get("result")
                return result if isinstance(result, dict) else {}
        except KeyboardInterrupt:
            self.transport.cancel(request_id)
            raise
        raise RuneError("The connection ended without an answer.")

    def _answer(self, request: Message) -> None:
        """Answers a request from the daemon: pings, and refusals of the rest."""
        if request["method"] == "ping":
            reply: Message = {"jsonrpc": "2.0", "id": request["id"], "result": {}}
        else:
            reply = {"jsonrpc": "2.0", "id": request["id"],
                     "error": {"code": -32601, "message": f"Method not found: {request['method']}"}}
        self.transport.send(reply)

    def initialize(self) -> Message:
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": CLIENT_INFO,
        })
        version = result.get("protocolVersion")
        if version not in SUPPORTED_VERSIONS:
            raise RuneError(f"The daemon speaks MCP {version}, which this client does not.")
        if isinstance(self.transport, HttpTransport):
            self.transport.protocol_version = version
        self.transport.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def call_tool(self, name: str, arguments: Message,
                  on_progress: Optional[Callable[[Message], None]] = None) -> Message:
        result = self.request("tools/call", {"name": name, "arguments": arguments}, on_progress)
        if result.get("isError"):
            raise RuneError(result_text(result) or f"{name} failed.")
        return result


def result_text(result: Message) -> str:
    content = result.get("content")
    parts = [item.get("text", "") for item in content or []
             if isinstance(item, dict) and item.get("type") == "text"]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Commands


class Printer:
    """Prints streamed text as it arrives and remembers how the output ends."""

    def __init__(self, thinking: bool) -> None:
        self.thinking = thinking
        self.thought = False  # reasoning written on stderr, its line not ended yet
        self.wrote = False
        self.last = ""

    def __call__(self, params: Message) -> None:
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        thought = meta.get("thinking")
        if self.thinking and isinstance(thought, str) and thought:
            sys.stderr.write(thought)
            sys.stderr.flush()
            self.thought = True
        text = params.get("message")
        if isinstance(text, str) and text:
            self.write(text)

    def write(self, text: str) -> None:
        if self.thought:
            sys.stderr.write("\n")
            self.thought = False
        sys.stdout.write(text)
        sys.stdout.flush()
        self.wrote = True
        self.last = text[-1:]

    def end_line(self) -> None:
        """Ends a partial line (the answer, or what came before a failure)."""
        if self.thought:
            sys.stderr.write("\n")
            self.thought = False
        if self.wrote and self.last != "\n":
            self.write("\n")


def model_options(args: argparse.Namespace) -> Optional[Message]:
    options: Message = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    return options or None


def require_model(args: argparse.Namespace) -> str:
    model = args.model or os.environ.get("RUNE_MODEL")
    if not model:
        raise UsageError("No model given: pass --model NAME (see the models command) or set "
                         "RUNE_MODEL.")
    return model


class UsageError(RuneError):
    """Bad usage: exit 2."""


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    result = client.request("tools/call", {"name": "ai_list_models", "arguments": {}})
    structured = result.get("structuredContent") or {}
    for model in structured.get("models", []):
        details = [model.get("parameter_size"), model.get("quantization"),
                   "(loaded)" if model.get("loaded") else None]
        print("  ".join([model["name"]] + [d for d in details if d]))
    for error in structured.get("errors", []):
        print(f"rune_client: {error.get('provider')}: {error.get('error')}", file=sys.stderr)
    if result.get("isError"):
        if not structured.get("errors"):
            print(f"error: {result_text(result)}", file=sys.stderr)
        return 1
    return 0


def cmd_generate(client: Client, args: argparse.Namespace) -> int:
    arguments: Message = {"model": require_model(args), "prompt": args.prompt}
    if args.system:
        arguments["system"] = args.system
    options = model_options(args)
    if options:
        arguments["options"] = options
    printer = Printer(args.thinking)
    try:
        result = client.call_tool("ai_generate", arguments, printer)
        if not printer.wrote:
            # Nothing streamed (a daemon that sends no progress): the result has it all.
            printer.write((result.get("structuredContent") or {}).get("response")
                          or result_text(result))
    finally:
        printer.end_line()
    return 0


def read_turns(interactive: bool) -> Iterator[str]:
    """The user's turns: typed at a prompt on a terminal, else one per stdin line."""
    while True:
        if interactive:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            return
        yield line.strip()


def cmd_chat(client: Client, args: argparse.Namespace) -> int:
    model = require_model(args)
    interactive = sys.stdin.isatty()
    history: List[Message] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    if interactive:
        print(f"Chatting with {model}. Ctrl-C stops a reply; /exit quits.", file=sys.stderr)
    options = model_options(args)
    for text in read_turns(interactive):
        if text in ("/exit", "/quit"):
            break
        if not text:
            continue
        history.append({"role": "user", "content": text})
        arguments: Message = {"model": model, "messages": history}
        if options:
            arguments["options"] = options
        printer = Printer(args.thinking)
        try:
            result = client.call_tool("ai_chat", arguments, printer)
        except KeyboardInterrupt:
            # The reply is stopped (and cancelled upstream); the chat goes on without it.
            printer.end_line()
            history.pop()
            print("(reply stopped)", file=sys.stderr)
            continue
        except RuneError:
            printer.end_line()
            history.pop()
            if not interactive:
                raise
            print(f"error: {sys.exc_info()[1]}", file=sys.stderr)
            continue
        message = (result.get("structuredContent") or {}).get("message") or {}
        content = message.get("content", "")
        if not printer.wrote:
            printer.write(content)
        printer.end_line()
        history.append({"role": "assistant", "content": content})
    return 0


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rune_client.py",
        description="A Rune MCP client in plain Python: list models, stream a generation, chat.",
    )
    parser.add_argument("--cmd", default=DEFAULT_CMD,
                        help=f"the daemon to start on stdio (default: {DEFAULT_CMD!r})")
    parser.add_argument("--url", help="a running daemon's Streamable HTTP endpoint instead, "
                        "e.g. http://127.0.0.1:8484/mcp")
    parser.add_argument("--token", default=os.environ.get("RUNE_TOKEN"),
                        help="bearer token for --url (default: $RUNE_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the models of every provider")
    for name, helptext in (("generate", "stream a completion of PROMPT"),
                           ("chat", "chat with history (one turn per line)")):
        sub = commands.add_parser(name, help=helptext)
        if name == "generate":
            sub.add_argument("prompt", help="the prompt")
        sub.add_argument("-m", "--model", help="provider/model (default: $RUNE_MODEL)")
        sub.add_argument("-s", "--system", help="system prompt")
        sub.add_argument("--temperature", type=float, help="sampling temperature")
        sub.add_argument("--max-tokens", type=int, help="stop after N tokens")
        sub.add_argument("--thinking", action="store_true",
                         help="show a thinking model's reasoning on stderr")
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    transport: Any = None
    try:
        if args.url:
            transport = HttpTransport(args.url, args.token)
        else:
            cmd = shlex.split(args.cmd)
            if not cmd:
                raise UsageError("--cmd is empty.")
            transport = StdioTransport(cmd)
        client = Client(transport)
        client.initialize()
        run = {"models": cmd_models, "generate": cmd_generate, "chat": cmd_chat}[args.command]
        return run(client, args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (| head): nothing left to say.
        return 0
    finally:
        if transport is not None:
            transport.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

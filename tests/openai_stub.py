"""A small OpenAI-compatible chat-completions server for tests: scripted answers over real HTTP.

Answers are chosen by the question text: `script[question]` is a list of answers, served in order
(cycled) as the n choices. `delay` seconds are slept per request (timeouts, kill-in-the-middle tests).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self, script: dict[str, list[str]], delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                time.sleep(stub.delay)
                text = " ".join(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text").strip()
                answers = stub.script.get(text, ["I do not know"])
                choices = [{"index": i, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": answers[i % len(answers)]}}
                           for i in range(body.get("n", 1))]
                payload = json.dumps({"id": "stub", "object": "chat.completion", "model": body["model"],
                                      "choices": choices}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def spec(self, model: str = "stub-model") -> str:
        return f"openai:{self.url}#{model}"

    def __enter__(self) -> "OpenAIStub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

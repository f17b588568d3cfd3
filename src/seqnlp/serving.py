"""`seqnlp serve`: model packages answering JSON over HTTP, and a page to try them (FastAPI, served by uvicorn).

One endpoint per command of the Python API (``seqnlp.contract.COMMANDS``), each taking a batch. The model work
runs off the event loop, in at most ``Limits.threads`` threads, and one call at a time per model: a predictor
keeps state (the questions index grows with ``add``, the scorer loads on first use), and a model's XLA
programs already spread each call over every core. A request whose client goes away is dropped from the queue,
or stops at its next input if its work has started.
"""

import dataclasses
import errno
import logging
import os
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated

from seqnlp.errors import UserError

log = logging.getLogger("seqnlp.serve")


def _limit(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask (`seqnlp serve --help` shows each as an option, with its help); a request over
    a limit is refused with 4xx and a one-line error naming the field."""
    max_body_bytes: int = _limit(1_000_000, "largest request body, in bytes")
    max_inputs: int = _limit(64, "most texts, prefixes, pairs or questions in one request")
    max_text_chars: int = _limit(2_000, "longest text, in characters")
    max_generate_length: int = _limit(1_000, "most characters generated per sample")
    max_samples: int = _limit(8, "most samples per prefix")
    max_top: int = _limit(100, "most similar questions per question")
    threads: int = _limit(2, "model calls running at once (each model answers one call at a time)")


@dataclasses.dataclass
class Served:
    """A loaded predictor and its card."""
    name: str
    predictor: object
    card: dict


@dataclasses.dataclass
class Traffic:
    """The model requests now waiting for their model or a thread, now running, and dropped because their client
    went away (``GET /health`` shows them). Only the event loop changes them."""
    waiting: int = 0
    running: int = 0
    abandoned: int = 0
    unanswered_inputs: int = 0


class ClientGone(Exception):
    """The client of a request went away; the number of its inputs left unanswered."""


def card(name, predictor):
    """What ``GET /models`` says of a model: its task, commands, commit, metrics and format version."""
    from seqnlp import contract

    info = predictor.package.info
    git = info["provenance"]["git"] or {}  # None: packaged outside git
    return {
        "name": name,
        "task": info["task"],
        "predictor": info["predictor"],
        "commands": contract.answered_by(predictor),
        "format_version": info["format_version"],
        "commit": git.get("commit"),
        "uncommitted_code_or_params": git.get("uncommitted_code_or_params"),
        "training_steps": info["training"]["steps"],
        "metrics": {metric: entry["value"] for metric, entry in info["metrics"].items()},
        "data": info["data"],
        "answers": info["answers"],
    }


def load_models(sources):
    """Each source (a package folder, or a task of the checkout) loaded once, named by its task."""
    import seqnlp

    served = {}
    for source in sources:
        predictor = seqnlp.load(source)
        name = predictor.package.info["task"]
        if name in served:
            raise UserError(f"two packages of the task {name!r}: serve one of them")
        served[name] = Served(name, predictor, card(name, predictor))
    return served


def request_bodies(limits):
    """The request body of each command, with ``limits`` in their JSON Schema (so in the OpenAPI description)."""
    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

    def not_blank(value):
        if not value.strip():
            raise ValueError("is empty or only spaces")
        return value

    text = Annotated[str, StringConstraints(max_length=limits.max_text_chars), AfterValidator(not_blank)]

    def batch(item):
        return Annotated[list[item], Field(min_length=1, max_length=limits.max_inputs)]

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        model: str | None = Field(None, description="the model to ask (GET /models); default: the only one loaded "
                                                    "that answers this command")

    class Texts(Body):
        texts: batch(text)

        @property
        def inputs(self):
            return self.texts

    class Prefixes(Body):
        prefixes: batch(Annotated[str, StringConstraints(max_length=limits.max_text_chars)])
        n: int = Field(1, ge=1, le=limits.max_samples, description="samples per prefix")
        length: int = Field(200, ge=1, le=limits.max_generate_length, description="characters per sample")
        temperature: float = Field(1.0, ge=0, le=10, description="0 is greedy; 1 samples the model's distribution")
        seed: int = Field(0, ge=0, lt=2**31, description="random seed of each prefix's first sample")

        @property
        def inputs(self):
            return self.prefixes

    class Pairs(Body):
        pairs: batch(Annotated[list[text], Field(min_length=2, max_length=2)])

        @property
        def inputs(self):
            return self.pairs

    class Questions(Body):
        questions: batch(text)
        top: int = Field(5, ge=1, le=limits.max_top, description="similar questions per question")

        @property
        def inputs(self):
            return self.questions

    return {"classify": Texts, "generate": Prefixes, "tag": Texts, "duplicates": Pairs, "similar": Questions}


def answer(command, predictor, body, gone):
    """What ``predictor`` answers ``body`` of ``command``: one result per input, in order. Once ``gone`` is set, it
    raises ClientGone instead of making its next model call: classify, tag and duplicates make one call for the
    whole batch, generate and similar one per input (each can take seconds)."""
    results = []

    def unless_gone(call, *arguments):
        if gone.is_set():
            raise ClientGone(len(body.inputs) - len(results))
        return call(*arguments)

    if command == "classify":
        return unless_gone(predictor.predict, body.texts)
    if command == "tag":
        return unless_gone(predictor.tag, body.texts)
    if command == "duplicates":
        return unless_gone(predictor.judge, body.pairs)
    for item in body.inputs:
        results.append(unless_gone(predictor.generate, item, body.n, body.length, body.temperature, body.seed)
                       if command == "generate" else unless_gone(predictor.similar, item, body.top))
    return results


SUMMARIES = {
    "classify": "The topic of each text, with every topic's probability",
    "generate": "Text sampled from each prefix, n samples each",
    "tag": "Each text's tokens, IOB2 tags and entities (with character offsets)",
    "duplicates": "Each pair's cosine similarity and whether it is a duplicate at the model's threshold",
    "similar": "The indexed questions most similar to each question",
}


def _field(location):
    """A validation error's location as one would write it: texts[1], pairs[0][1], body."""
    parts = [part for part in location if part != "body"]
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")
    return name or "body"


def error_response(status, message):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413 before the app reads any of it
    (by its Content-Length, or as it arrives when it is chunked)."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = error_response(413, f"body: over the limit of {self.max_bytes} bytes")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await too_large(scope, receive, send)
            if not message.get("more_body"):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)


def create_app(models, limits=Limits()):
    """The FastAPI app serving ``models`` (name -> Served) within ``limits``."""
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse
    from starlette.exceptions import HTTPException

    from seqnlp import __version__

    app = FastAPI(title="seqnlp", version=__version__,
                  description="The trained sequence models of this project, from their model packages. Every "
                              "command takes a batch and answers one result per input, in order; an error is "
                              '`{"error": "one line naming the field"}` with a 4xx status.')
    threads = anyio.CapacityLimiter(limits.threads)
    model_locks = {}  # made on first use: an anyio lock belongs to the event loop that runs the app
    traffic = Traffic()
    bodies = request_bodies(limits)
    page_html = resources.files("seqnlp").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error):
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            return error_response(400, f"body: malformed JSON ({first.get('ctx', {}).get('error', 'cannot parse')})")
        return error_response(422, f"{_field(first['loc'])}: {first['msg']}")

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        if error.status_code == 404 and error.detail == "Not Found":
            return error_response(404, f"{request.url.path}: no such endpoint (GET /docs lists them)")
        if error.status_code == 405:
            return error_response(405, f"{request.method} {request.url.path}: not allowed (GET /docs lists them)")
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(UserError)
    async def refused(request, error):
        return error_response(422, str(error))

    @app.exception_handler(Exception)
    async def failed(request, error):
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"the server failed to answer ({type(error).__name__}); its log has the details")

    def chosen(command, name):
        able = [served for served in models.values() if command in served.card["commands"]]
        if name is not None:
            if name not in models:
                raise HTTPException(404, f"model: {name!r} is not loaded (loaded: {', '.join(models) or 'none'})")
            if models[name] not in able:
                raise HTTPException(422, f"model: {name!r} does not answer {command}"
                                         f" (models that do: {', '.join(s.name for s in able) or 'none'})")
            return models[name]
        if len(able) != 1:
            raise HTTPException(422, f"model: {command} needs a model name, one of {', '.join(s.name for s in able)}"
                                if able else f"model: no loaded model answers {command}")
        return able[0]

    async def respond(request, command, body):
        served = chosen(command, body.model)
        gone = threading.Event()

        async def until_gone(scope):
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()
            scope.cancel()

        async def work():
            """The answers, or None when the client went away first (then no model call is left to make)."""
            traffic.waiting += 1
            started = False
            try:
                async with model_locks.setdefault(served.name, anyio.Lock()), threads:
                    traffic.waiting, traffic.running, started = traffic.waiting - 1, traffic.running + 1, True
                    try:
                        # Cancelling a started thread waits for it; `gone` makes it stop before its next input.
                        return await anyio.to_thread.run_sync(answer, command, served.predictor, body, gone)
                    except ClientGone as cut_short:
                        traffic.unanswered_inputs += cut_short.args[0]
                        return None
                    finally:
                        traffic.running -= 1
            finally:
                if not started:  # cancelled in the queue: its client went away before any model call
                    traffic.waiting -= 1
                    traffic.unanswered_inputs += len(body.inputs)

        results = None
        async with anyio.create_task_group() as watching:
            watching.start_soon(until_gone, watching.cancel_scope)
            results = await work()
            watching.cancel_scope.cancel()
        if gone.is_set():
            traffic.abandoned += 1
            return error_response(499, "the client went away")
        return {"model": served.name, "results": results}

    def endpoint(command, body_type):
        async def handle(request: Request, body: body_type):
            return await respond(request, command, body)

        handle.__name__ = command
        app.post(f"/{command}", summary=SUMMARIES[command])(handle)

    for command, body_type in bodies.items():
        endpoint(command, body_type)

    @app.get("/health", summary="Whether the server answers, its models, and its model requests: waiting, running, "
                                 "and dropped because their client went away")
    async def health():
        return {"status": "ok", "models": list(models), "requests": dataclasses.asdict(traffic)}

    @app.get("/models", summary="Each model's card: task, commands, commit, metrics, format version")
    async def cards():
        return {"models": [served.card for served in models.values()],
                "limits": dataclasses.asdict(limits)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return page_html

    return BodyLimit(app, limits.max_body_bytes)


def listening_socket(host, port):
    """A socket bound to ``host:port`` and listening, or a one-line error (the port is in use, ...)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With the protocol named, asyncio sets TCP_NODELAY on each connection; without it, every response waited
    # about 40 ms for the client's delayed ACK (benchmarks/serving.py showed it on GET /health).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.listen(128)
    return sock


def serve(sources=(), host="127.0.0.1", port=8000, limits=Limits()):
    """Load ``sources`` (default: the checkout's tasks whose models answer a command) once, then answer on
    ``host:port`` until Ctrl-C or SIGTERM (in-flight requests get a second to finish)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported: a progress bar per request, unread
    import uvicorn

    from seqnlp import contract

    sock = listening_socket(host, port)
    with sock:
        models = load_models(sources or [task_name for task_name, _, module in contract.task_modules()
                                         if contract.commands(module)])
        config = uvicorn.Config(create_app(models, limits), log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1)
        bound = sock.getsockname()
        print(f"seqnlp serve: http://{host}:{bound[1]} answers with {', '.join(models)} "
              f"({limits.threads} model threads; Ctrl-C stops)", flush=True)
        uvicorn.Server(config).run(sockets=[sock])


def package_folder_or_task(argument):
    """A `seqnlp serve` argument: an existing folder (a package, as an absolute path), else a task name."""
    path = Path(argument)
    return path.resolve() if path.is_dir() else argument

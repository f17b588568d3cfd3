"""`seqnlp serve` as a real process on 127.0.0.1, answering over HTTP from the package of a tiny Shakespeare model
trained here by the real commands (every task's endpoint is tested on the small-slice packages in
test_pipeline_end_to_end.py)."""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import seqnlp
from seqnlp import layout
from test_packages import packaged_repo
from test_training_trust import TASK

pytestmark = pytest.mark.slow  # the server answers from a model trained here

SEQNLP = str(Path(sys.executable).with_name("seqnlp"))
LIMITS = ["--max-inputs", "4", "--max-text-chars", "50", "--max-body-bytes", "2000", "--max-generate-length", "60"]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = packaged_repo(tmp_path_factory.mktemp("served") / "repo")
    outside = tmp_path_factory.mktemp("elsewhere") / TASK
    shutil.copytree(root / layout.package(TASK), outside)
    return outside


def start(*arguments, cwd, env=None):
    """`seqnlp serve ARGUMENTS` on a free port, in ``cwd``: its process, startup line and address."""
    process = subprocess.Popen([SEQNLP, "serve", *arguments, "--port", "0"], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    address = re.search(r"http://[\d.]+:\d+", line)
    if address is None:
        process.kill()
        pytest.fail(f"seqnlp serve did not start: {line!r}\n{process.stderr.read()}")
    return process, line, address.group()


@pytest.fixture(scope="module")
def server(package):
    process, line, url = start(str(package), *LIMITS, cwd=package.parent)
    yield url, line
    process.terminate()
    process.wait(timeout=10)


def test_the_startup_line_gives_the_address_and_the_models_and_health_answers(server):
    url, line = server
    assert url.startswith("http://127.0.0.1:") and f"answers with {TASK}" in line
    assert httpx.get(f"{url}/health").json() == {
        "status": "ok", "models": [TASK],
        "requests": {"waiting": 0, "running": 0, "abandoned": 0, "unanswered_inputs": 0}}


def test_generate_answers_what_the_python_api_does_for_each_prefix(server, package):
    url, _ = server
    body = {"prefixes": ["to be", ""], "n": 2, "length": 30, "temperature": 0.7, "seed": 3}
    answered = httpx.post(f"{url}/generate", json=body).json()
    model = seqnlp.load(package)
    expected = [model.generate(prefix, 2, 30, 0.7, 3) for prefix in body["prefixes"]]
    assert answered == {"model": TASK, "results": expected}


def test_the_models_card_holds_the_packages_commit_metrics_and_format(server, package):
    url, _ = server
    info = json.loads((package / "package.json").read_text())
    cards = httpx.get(f"{url}/models").json()
    [card] = cards["models"]
    assert card["commands"] == ["generate"] and card["format_version"] == info["format_version"]
    assert card["commit"] == (info["provenance"]["git"] or {}).get("commit")
    assert card["metrics"]["log_perplexity"] == info["metrics"]["log_perplexity"]["value"]
    assert cards["limits"]["max_inputs"] == 4


@pytest.mark.parametrize("send, status, error", [
    ({"content": b'{"prefixes": ["to'}, 400, "body: malformed JSON"),
    ({"json": {"prefixes": "to be"}}, 422, "prefixes: Input should be a valid list"),
    ({"json": {"prefixes": [7]}}, 422, "prefixes[0]: Input should be a valid string"),
    ({"json": {"prefixes": ["to be"], "length": "30"}}, 422, "length: Input should be a valid integer"),
    ({"json": {"prefixes": []}}, 422, "prefixes: List should have at least 1 item"),
    ({"json": {"prefixes": ["a"] * 5}}, 422, "prefixes: List should have at most 4 items"),
    ({"json": {"prefixes": ["a" * 51]}}, 422, "prefixes[0]: String should have at most 50 characters"),
    ({"json": {"prefixes": ["to be"], "length": 61}}, 422, "length: Input should be less than or equal to 60"),
    ({"json": {"prefixes": ["to be"], "model": "topics"}}, 404, "model: 'topics' is not loaded (loaded: "),
    ({"json": {"prefixes": ["to be"], "colour": "red"}}, 422, "colour: Extra inputs are not permitted"),
    ({"json": {"prefixes": ["x" * 40] * 60}}, 413, "body: over the limit of 2000 bytes"),
])
def test_bad_input_is_a_4xx_with_one_line_naming_the_field(server, send, status, error):
    url, _ = server
    response = httpx.post(f"{url}/generate", headers={"content-type": "application/json"}, **send)
    assert response.status_code == status and response.json()["error"].startswith(error), response.text
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(server):
    url, _ = server

    def chunks():
        yield b'{"prefixes": ['
        for _ in range(100):
            yield b'"' + b"x" * 40 + b'", '
        yield b'"x"]}'

    response = httpx.post(f"{url}/generate", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_unknown_endpoints_and_commands_no_model_answers_are_named(server):
    url, _ = server
    assert httpx.get(f"{url}/nowhere").json() == {"error": "/nowhere: no such endpoint (GET /docs lists them)"}
    assert httpx.get(f"{url}/generate").status_code == 405
    refused = httpx.post(f"{url}/classify", json={"texts": ["Stocks fell"]})
    assert refused.status_code == 422 and refused.json() == {"error": "model: no loaded model answers classify"}


def test_the_openapi_description_states_every_endpoint_and_its_limits(server):
    url, _ = server
    description = httpx.get(f"{url}/openapi.json").json()
    assert set(description["paths"]) == {"/classify", "/generate", "/tag", "/duplicates", "/similar", "/health",
                                         "/models"}
    prefixes = description["components"]["schemas"]["Prefixes"]["properties"]
    assert prefixes["prefixes"]["maxItems"] == 4 and prefixes["length"]["maximum"] == 60


def test_concurrent_clients_each_get_their_own_answer(server, package):
    url, _ = server
    model = seqnlp.load(package)
    expected = {seed: model.generate("to be", 1, 25, 1.0, seed) for seed in range(12)}
    with httpx.Client() as client, ThreadPoolExecutor(12) as pool:
        answers = pool.map(lambda seed: (seed, client.post(f"{url}/generate", json={
            "prefixes": ["to be"], "length": 25, "seed": seed}).json()["results"][0]), expected)
        assert dict(answers) == expected


def sent_and_left_open(url, command, body):
    """A raw connection that sent a POST of ``body`` to ``command`` and reads nothing: closing it is a client
    going away mid-request."""
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    payload = json.dumps(body).encode()
    connection.sendall(f"POST /{command} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return connection


def requests_once(url, shown, limit_seconds=120):
    """The server's request counts (GET /health) once ``shown`` holds for them; a failure, not a hang, if never."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        counts = httpx.get(f"{url}/health").json()["requests"]
        if shown(counts):
            return counts
        time.sleep(0.02)
    pytest.fail(f"GET /health never showed it in {limit_seconds} s: {counts}")


def test_health_answers_during_a_long_generation_and_a_client_that_goes_away_costs_no_more_model_work(package):
    process, _, url = start(str(package), "--threads", "1", "--max-inputs", "64", cwd=package.parent)
    try:
        long = {"prefixes": ["to be"] * 64, "n": 8, "length": 1000}  # 64 model calls of 8,000 characters
        working = sent_and_left_open(url, "generate", long)
        requests_once(url, lambda counts: counts["running"] == 1)
        queued = sent_and_left_open(url, "generate", long)
        requests_once(url, lambda counts: counts["waiting"] == 1)
        queued.close()
        assert requests_once(url, lambda counts: counts["abandoned"] == 1) == {
            "waiting": 0, "running": 1, "abandoned": 1, "unanswered_inputs": 64}
        working.close()
        after = requests_once(url, lambda counts: counts["abandoned"] == 2)
        assert after["running"] == 0 and after["unanswered_inputs"] > 64  # the first stopped before its last prefix
        answered = httpx.post(f"{url}/generate", json={"prefixes": ["to be"], "length": 10, "seed": 1})
        assert answered.json() == {"model": TASK, "results": [seqnlp.load(package).generate("to be", 1, 10, 1.0, 1)]}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_page_is_served_and_needs_nothing_from_another_host(server):
    url, _ = server
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'fetch("/models")' in page.text and not re.search(r"(src|href)=\"(https?:)?//", page.text)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_server_within_seconds(package, stop):
    process, _, url = start(str(package), cwd=package.parent)
    assert httpx.get(f"{url}/health").status_code == 200
    process.send_signal(stop)
    stopped = time.monotonic()
    process.wait(timeout=10)
    assert time.monotonic() - stopped < 3
    assert process.returncode == 128 + stop and process.stderr.read() == "seqnlp serve: interrupted\n"


def test_a_port_in_use_is_a_one_line_error(package):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([SEQNLP, "serve", str(package), "--port", str(port)], cwd=package.parent,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"seqnlp serve: error: cannot listen on 127.0.0.1:{port}: the port is in use\n"


def test_the_load_benchmark_reports_every_level_with_no_error(package):
    result = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "benchmarks/serving.py"), str(package),
                             "--clients", "1", "4", "--requests", "8", "--memory-requests", "20", "--cli-runs", "1"],
                            cwd=package.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    for clients in (1, 4):
        assert re.search(rf"^generate +{clients} +8 +0 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+$", output, re.MULTILINE), output
    assert re.search(r"server resident memory: \d+ MB before and \d+ MB after 20 more /generate requests", output)
    assert re.search(r"^generate +[\d.]+ +[\d.]+ +[\d.]+$", output, re.MULTILINE) and "errors: 0" in output

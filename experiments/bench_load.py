"""Load benchmark of the prediction service over loopback HTTP.

    python -m sendtime.experiments.bench_load [--rate 100] [--seconds 20] [--batch 1000] [--start-server]

1. Open loop: single-subscriber `POST /predict` requests at a fixed rate, each sent at its scheduled
   instant whatever the earlier ones are doing (at most `--max-in-flight` outstanding); latency runs from
   the scheduled instant to the end of the answer, so a server that falls behind shows it (no
   coordinated omission). p50, p99, achieved throughput, errors.
2. Cold contacts: `--cold` sequential single requests with contacts the service has never seen (the
   predictor memoises per-contact resolution, so a first sight costs more than a repeat).
3. Batches: `--batches` sequential requests of `--batch` subscribers each; p50 and p99.
0. First sight (`--first-sight N`, before anything warms the service): N known subscribers, each asked
   for once, alternating on one keep-alive connection with `GET /livez` (a trivial endpoint on the same
   stack); p50 and p99 of both and their ratio (target: p50 within 2.5x of /livez, p99 under 10 ms).

Before phase 1 the contact pool is sent once in batches, as a service in steady traffic has seen its
regular subscribers (`--no-warm` skips this). Targets: single p50 <= 5 ms and p99 <= 25 ms at
100 requests/s without errors; a batch of 1,000 <= 250 ms. The client runs on the same machine and
its own time is included; with `--start-server` the table is followed by the same requests' time inside
the server (BentoML's access log) and the server's CPU time per request, which depend less on what
else the machine is doing.

With `--start-server` it runs `sendtime serve` itself on a free port on the champion in SENDTIME_HOME
(training a small one on a simulated world first when there is none) and stops it afterwards.
Contacts come from a data folder's subscribers table (`--data`, or that simulated world).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_ACCESS = re.compile(r"path=/predict,type=[^,]*,length=(\d+)\).* ([0-9.]+)ms")
INLINE_LOG_BYTES = 400  # request bodies this small are the single-subscriber requests
TARGETS = {"single_p50_ms": 5.0, "single_p99_ms": 25.0, "batch_p50_ms": 250.0}
_AREA_CODES = ("212", "214", "305", "312", "415", "206", "617", "713")


# ------------------------------------------------------------------------------------------ contacts
def contacts(data: Path | None, n: int, seed: int) -> list[dict[str, str]]:
    """`n` subscribers from the data folder's subscribers table (else made up): 50% e-mail only,
    20% phone only, 30% both."""
    rng = np.random.default_rng(seed)
    emails: list[str] = []
    phones: list[str] = []
    if data is not None:
        import pandas as pd

        files = sorted(Path(data).glob("subscribers.*"))
        if files:
            table = pd.read_parquet(files[0]) if files[0].suffix == ".parquet" else pd.read_csv(files[0])
            channel = table["channel"].astype(str).str.lower()
            emails = table.loc[channel == "email", "address"].astype(str).tolist()
            phones = table.loc[channel == "sms", "address"].astype(str).tolist()
    emails = emails or [f"person{i}@example.com" for i in range(2000)]
    phones = phones or [f"+1{_AREA_CODES[i % 8]}555{i % 10000:04d}" for i in range(1000)]
    out = []
    for _ in range(n):
        kind = rng.random()
        person = {}
        if kind < 0.8:
            person["email"] = emails[rng.integers(len(emails))]
        if kind >= 0.5:
            person["phone"] = phones[rng.integers(len(phones))]
        out.append(person)
    return out


def distinct_known(data: Path | None, n: int) -> list[dict[str, str]]:
    """Up to `n` different known subscribers (one e-mail address each) from the data folder's table."""
    import pandas as pd

    files = sorted(Path(data).glob("subscribers.*")) if data is not None else []
    if not files:
        return []
    table = pd.read_parquet(files[0]) if files[0].suffix == ".parquet" else pd.read_csv(files[0])
    emails = table.loc[table["channel"].astype(str).str.lower() == "email", "address"].astype(str)
    return [{"email": e} for e in emails.drop_duplicates().tolist()[:n]]


def fresh_contacts(n: int, seed: int) -> list[dict[str, str]]:
    """Contacts nobody has seen: new e-mail addresses, half of them with a new US phone number."""
    rng = np.random.default_rng(seed + 1_000_003)
    out = []
    for i in range(n):
        person = {"email": f"bench.{seed}.{i}.{rng.integers(1 << 40):x}@example.org"}
        if i % 2:
            person["phone"] = f"+1{_AREA_CODES[i % 8]}555{rng.integers(10000):04d}"
        out.append(person)
    return out


# -------------------------------------------------------------------------------------------- load
async def _one(client, url: str, body: bytes, headers: dict, t_sched: float) -> tuple[float, int | str]:
    try:
        response = await client.post(url, content=body, headers=headers)
        await response.aread()
        return time.perf_counter() - t_sched, response.status_code
    except Exception as exc:  # counted, not raised: the benchmark reports errors
        return time.perf_counter() - t_sched, type(exc).__name__


def _summary(results: list[tuple[float, int | str]], extra: dict | None = None) -> dict:
    latency = np.array([r[0] for r in results]) * 1000
    ok = np.array([r[1] == 200 for r in results])
    return {
        "requests": len(results),
        "errors": int((~ok).sum()),
        "error_kinds": sorted({str(r[1]) for r in results if r[1] != 200}),
        "p50_ms": float(np.nanpercentile(latency, 50)),  # dropped requests (NaN) count as errors only
        "p99_ms": float(np.nanpercentile(latency, 99)),
        "max_ms": float(np.nanmax(latency)),
        **(extra or {}),
    }


async def warm(base: str, people: list[dict], headers: dict) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=300.0) as client:
        for lo in range(0, len(people), 1000):
            body = json.dumps({"subscribers": people[lo : lo + 1000]}).encode()
            await _one(client, f"{base}/predict", body, headers, time.perf_counter())


async def first_sight(base: str, people: list[dict], headers: dict) -> tuple[dict, dict]:
    """Each person once, sequentially, each request beside a `GET /livez` on the same connection."""
    import httpx

    predict, livez = [], []
    async with httpx.AsyncClient(timeout=30.0) as client:
        await client.get(f"{base}/livez")  # the connection, opened before timing
        for person in people:
            t = time.perf_counter()
            response = await client.get(f"{base}/livez")
            livez.append((time.perf_counter() - t, response.status_code))
            body = json.dumps({"subscribers": [person]}).encode()
            predict.append(await _one(client, f"{base}/predict", body, headers, time.perf_counter()))
    return _summary(predict), _summary(livez)


async def open_loop(
    base: str, people: list[dict], rate: float, seconds: float, max_in_flight: int, headers: dict
) -> dict:
    import httpx

    url = f"{base}/predict"
    bodies = [json.dumps({"subscribers": [p]}).encode() for p in people]
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for body in bodies[:20]:  # warm-up: connections
            await _one(client, url, body, headers, time.perf_counter())
        total = int(rate * seconds)
        tasks: list[asyncio.Task] = []
        dropped = 0
        start = time.perf_counter() + 0.05
        for i in range(total):
            t_sched = start + i / rate
            delay = t_sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if sum(not t.done() for t in tasks[-max_in_flight:]) >= max_in_flight:
                dropped += 1
                continue
            tasks.append(asyncio.create_task(_one(client, url, bodies[i % len(bodies)], headers, t_sched)))
        results = list(await asyncio.gather(*tasks))
        elapsed = time.perf_counter() - start
    results += [(float("nan"), "dropped (client limit)")] * dropped
    ok = sum(r[1] == 200 for r in results)
    return _summary(results, {"offered_rps": rate, "throughput_rps": ok / elapsed})


async def sequential(
    base: str, people: list[dict], batch: int, count: int, headers: dict, warmup: int
) -> dict:
    import httpx

    url = f"{base}/predict"
    results = []
    async with httpx.AsyncClient(timeout=120.0) as client:
        for k in range(count + warmup):
            chunk = [people[(k * batch + j) % len(people)] for j in range(batch)]
            body = json.dumps({"subscribers": chunk}).encode()
            outcome = await _one(client, url, body, headers, time.perf_counter())
            if k >= warmup:
                results.append(outcome)
    return _summary(results, {"batch": batch})


# ------------------------------------------------------------------------------------------ server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_champion(data: Path | None) -> Path | None:
    """Train a small champion on a simulated world when SENDTIME_HOME has none; returns the data folder."""
    from sendtime import home
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry

    settings = load_settings()
    registry.configure_mlflow(settings.training.experiment)
    world = home.sendtime_home() / "bench-world"
    if registry.champion_version(settings.training.registered_model) is None:
        from sendtime.experiments.simulate import simulate
        from sendtime.workflows.train import train

        print(f"no champion in {home.sendtime_home()}: simulating a world and training a small model ...")
        if not (world / "events.parquet").exists():
            simulate(world, subscribers=2000, days=84, seed=7)
        small = load_settings(overrides={"training": {"snapshots": 3, "num_boost_round": 150}})
        train(world, small, progress=False, echo=lambda *_: None)
    return data or (world if world.exists() else None)


def start_server(port: int, env: dict | None = None, timeout: float = 120.0) -> subprocess.Popen:
    """`sendtime serve --port P` in the background; returns once /readyz answers 200."""
    import httpx

    command = [str(Path(sys.executable).parent / "sendtime"), "serve", "--port", str(port)]
    log = (
        Path(tempfile.mkdtemp(prefix="sendtime-bench-")) / "serve.log"
    )  # a file: a pipe nobody reads fills up
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server.log = log  # type: ignore[attr-defined]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sendtime serve exited; its log {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"sendtime serve did not become ready in {timeout:.0f} s")


def stop_server(server: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to `sendtime serve` (it stops BentoML and its workers); SIGKILL to what is left by then."""
    import psutil

    try:
        family = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    _, alive = psutil.wait_procs(family, timeout=10)
    for process in alive:
        process.kill()


def _log_lines(server: subprocess.Popen | None) -> int:
    return 0 if server is None else len(server.log.read_text().splitlines())  # type: ignore[attr-defined]


def _server_cpu(server: subprocess.Popen | None) -> float:
    """CPU seconds used so far by `sendtime serve` and every process under it."""
    import psutil

    if server is None:
        return 0.0
    total = 0.0
    root = psutil.Process(server.pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _server_ms(server: subprocess.Popen | None, since: int) -> np.ndarray:
    """Durations of single-subscriber /predict requests in the server's access log after line `since`."""
    if server is None:
        return np.array([])
    lines = server.log.read_text().splitlines()[since:]  # type: ignore[attr-defined]
    found = (_ACCESS.search(line) for line in lines)
    return np.array([float(m.group(2)) for m in found if m and int(m.group(1)) < INLINE_LOG_BYTES])


# -------------------------------------------------------------------------------------------- main
def table(single: dict, cold: dict, batch: dict) -> str:
    rows = [
        ("single, open loop", f"{single['offered_rps']:g} rps x {single['requests']}", single,
         f"{single['throughput_rps']:.1f} rps", "p50 <= 5, p99 <= 25"),
        ("single, unseen", f"{cold['requests']} sequential", cold, f"{1000 / cold['p50_ms']:.0f} rps", ""),
        (f"batch of {batch['batch']:,}", f"{batch['requests']} sequential", batch,
         f"{batch['batch'] * 1000 / batch['p50_ms']:,.0f} subs/s", "p50 <= 250"),
    ]  # fmt: skip
    head = f"{'load':<20} {'requests':<18} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'throughput':>14} {'errors':>7}  target"
    lines = [head, "-" * len(head)]
    for name, req, r, thr, target in rows:
        lines.append(
            f"{name:<20} {req:<18} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {thr:>14} "
            f"{r['errors']:>7}  {target}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--url", default="http://127.0.0.1:3000", help="a running `sendtime serve` (default %(default)s)"
    )
    p.add_argument(
        "--start-server", action="store_true", help="start `sendtime serve` here on SENDTIME_HOME's champion"
    )
    p.add_argument("--rate", type=float, default=100.0, help="single-subscriber requests per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--cold", type=int, default=200, help="sequential single requests with unseen contacts")
    p.add_argument(
        "--first-sight", type=int, default=0, help="known subscribers asked for once each, beside /livez"
    )
    p.add_argument("--batch", type=int, default=1000, help="subscribers per batch request")
    p.add_argument("--batches", type=int, default=20, help="sequential batch requests")
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--data", type=Path, help="data folder whose subscribers table supplies contacts")
    p.add_argument(
        "--no-warm", action="store_true", help="do not send the contact pool once before measuring"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    headers = {"content-type": "application/json"}
    if key := os.environ.get("SENDTIME_API_KEY"):
        headers["x-api-key"] = key
    server = None
    base, data = args.url.rstrip("/"), args.data
    if args.start_server:
        data = _ensure_champion(args.data)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(port)
    try:
        if args.first_sight:
            seen, trivial = asyncio.run(first_sight(base, distinct_known(data, args.first_sight), headers))
            print(
                f"first sight, {seen['requests']} known subscribers: p50 {seen['p50_ms']:.2f} ms, p99 "
                f"{seen['p99_ms']:.2f} ms ({seen['errors']} errors); /livez p50 {trivial['p50_ms']:.2f} ms, "
                f"p99 {trivial['p99_ms']:.2f} ms; p50 ratio {seen['p50_ms'] / trivial['p50_ms']:.2f}x"
            )
        people = contacts(data, max(args.batch * 2, 5000), args.seed)
        if not args.no_warm:
            asyncio.run(warm(base, people, headers))
        mark, cpu = _log_lines(server), _server_cpu(server)
        single = asyncio.run(open_loop(base, people, args.rate, args.seconds, args.max_in_flight, headers))
        inside, cpu = (
            _server_ms(server, mark),
            (_server_cpu(server) - cpu) / max(single["requests"], 1) * 1000,
        )
        cold = asyncio.run(sequential(base, fresh_contacts(args.cold, args.seed), 1, args.cold, headers, 0))
        batch = asyncio.run(sequential(base, people, args.batch, args.batches, headers, 2))
    finally:
        if server is not None:
            stop_server(server)
    print(table(single, cold, batch))
    if len(inside):
        print(
            f"single, open loop, inside the server (BentoML access log): p50 {np.percentile(inside, 50):.1f} ms, "
            f"p99 {np.percentile(inside, 99):.1f} ms over {len(inside)} requests; server CPU {cpu:.2f} ms a request"
        )
        single.update(server_p50_ms=float(np.percentile(inside, 50)), server_p99_ms=float(np.percentile(inside, 99)),
                      server_cpu_ms=cpu)  # fmt: skip
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    kinds = sorted(set(single["error_kinds"] + cold["error_kinds"] + batch["error_kinds"]))
    if kinds:
        print(f"error kinds: {', '.join(kinds)}")
    met = (
        single["p50_ms"] <= TARGETS["single_p50_ms"]
        and single["p99_ms"] <= TARGETS["single_p99_ms"]
        and single["errors"] == 0
        and batch["p50_ms"] <= TARGETS["batch_p50_ms"]
        and batch["errors"] == 0
    )
    print(f"targets {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(
            json.dumps({"single": single, "cold": cold, "batch": batch, "targets": TARGETS}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

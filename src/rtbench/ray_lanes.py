"""Ray lanes (``--executor ray``, extra ``rtbench[ray]``): a zoo's runs on the GPUs (or CPUs) of a Ray cluster.

Each lane is a placement group of one bundle on one node: one GPU there (or, for ``--device cpu``, all of the
node's CPUs), so every runtime group of the model the lane serves runs on the same GPU and its paired speedups
stay paired. Each runtime group is a Ray actor in that bundle holding its share of the GPU (``num_gpus``: Ray sets
``CUDA_VISIBLE_DEVICES`` before the actor starts) and running rtbench.worker's own request handling
(``start_group``, ``GroupMeasurer.handle``): one timing loop, whatever the executor. Results come back to the
driver, which writes the store; nothing runs on a node but measurement.

A lost actor or node fails the request with the reason (``WorkerLost``), and the engine tries the cell again in
a fresh actor up to ``max_retries`` times before storing it ``failed``; every block stored before stays.
"""
from __future__ import annotations

import functools
import math
import os
import time

from rtbench.errors import UserError
from rtbench.lanes import Lane
from rtbench.status import Status
from rtbench.worker import WorkerLost, one_line

DEFAULT_MAX_RETRIES = 1
READY_TIMEOUT_S = 120.0  # a lane's placement group must be placed within this


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'rtbench[ray]'") from None
    return ray


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this host belongs to), or start one on this host
    (None); a driver that is already connected stays as it is."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a benchmark sends nothing anywhere
    if address is None:  # a cluster of this host alone: on the loopback address (Ray's switch, read at import)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _ray()
    if ray.is_initialized():
        return
    local = {"object_store_memory": 512 * 2**20} if address is None else {}  # results are small: keep /dev/shm free
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 **local)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all mean the same fix
        raise UserError(f"--ray-address {address}: no Ray cluster there ({one_line(e)}): start one with `ray start "
                        "--head`, or leave --ray-address out to start one on this host") from None


@functools.cache
def _actor_class():
    ray = _ray()

    @ray.remote(max_restarts=0)
    class GroupActor:
        """One runtime group of one run, in a Ray worker process: rtbench.worker's measurer, as is."""

        def __init__(self, job: dict):
            from rtbench.worker import start_group

            self.m, self.info, self.group = start_group(job)

        def ready(self):
            return self.info, self.group

        def handle(self, req: tuple):
            return self.m.handle(req)

        def close(self) -> None:
            self.m.close()

    return GroupActor


def _probe(device: str, precisions: tuple) -> dict:
    """Runs in a lane's bundle: the node's harness cost, peaks, fingerprint and placement."""
    from rtbench.engine import harness_cost
    from rtbench.env import fingerprint
    from rtbench.hardware import peaks
    from rtbench.worker import placement

    return {"harness": harness_cost(), "peaks": peaks(device, precisions), "fingerprint": fingerprint(device),
            "placement": placement(device)}


class RayLane(Lane):
    """One bundle (one GPU, or one node's CPUs) of a Ray cluster."""

    forks = False
    precompiles = False  # its workers are actors on a node; they compile there and share the node's caches

    def __init__(self, node: dict, bundle: dict, index: int, max_retries: int = DEFAULT_MAX_RETRIES):
        super().__init__()
        ray = _ray()
        self.node, self.bundle, self.max_retries = node["NodeManagerAddress"], bundle, max_retries
        self.name = f"ray:{self.node}:{index}"
        self.pg = ray.util.placement_group([bundle], strategy="STRICT_PACK")
        self.facts: dict = {}

    def _options(self, share: float) -> dict:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        floor = lambda v: math.floor(v * share * 1e4) / 1e4  # noqa: E731 - Ray's resource precision
        return {"num_gpus": floor(self.bundle.get("GPU", 0)), "num_cpus": floor(self.bundle.get("CPU", 0)),
                "scheduling_strategy": PlacementGroupSchedulingStrategy(placement_group=self.pg,
                                                                        placement_group_bundle_index=0)}

    def start_probe(self, device: str, precisions):
        return _ray().remote(_probe).options(**self._options(1.0)).remote(device, tuple(precisions))

    def take_probe(self, facts: dict) -> None:
        self.facts = facts
        p = facts["placement"]
        self.accelerator = p["gpu"]["name"] if "gpu" in p else f"cpu: {facts['fingerprint'].get('cpu')}"

    def sweep_device(self, device: str) -> str:
        return "cuda:0" if device.startswith("cuda") else device  # Ray sets the actor's CUDA_VISIBLE_DEVICES

    def harness(self) -> dict:
        return self.facts["harness"]

    def peaks(self, device: str, precisions) -> dict:
        return self.facts["peaks"]

    def fingerprint(self, device: str) -> dict:
        return {**self.facts["fingerprint"], **self.describe()}

    def describe(self) -> dict:
        p = self.facts.get("placement", {})
        return {"lane": {"name": self.name, "executor": "ray", "node": self.node, "host": p.get("node"),
                         "bundle": self.bundle, **({"gpu": p["gpu"]["name"], "gpu_uuid": p["gpu"]["uuid"]}
                                                   if "gpu" in p else {})}}

    def worker(self, sweep, runtime: str, precision: str, workdir, timeout: float, refs_dir=None,
               own_contexts: int | None = None, compile_threads: int | None = None):
        # an actor's node has no other worker of the run on its GPU, and its cores are its own
        groups = len({(c.runtime, c.precision) for c in sweep.cells()})
        return RayWorker(self, sweep, runtime, precision, workdir, timeout, refs_dir, self._options(1 / groups))

    def close(self) -> None:
        try:
            _ray().util.remove_placement_group(self.pg)
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass


class RayWorker:
    """The engine's handle on one runtime group's actor: the same contract as rtbench.worker.Worker."""

    def __init__(self, lane: RayLane, sweep, runtime: str, precision: str, workdir, timeout: float, refs_dir,
                 options: dict):
        from rtbench.runtimes import base

        self.lane, self.dead, self.proc = lane, False, self  # the engine asks ``worker.proc.is_alive()``
        job = {"sweep": sweep.to_dict(), "runtime": runtime, "precision": precision, "workdir": str(workdir),
               "refs_dir": str(refs_dir) if refs_dir is not None else None,
               "plugins": os.environ.get(base.PLUGINS_ENV), "run_pid": os.getpid(),
               "threads": int(lane.bundle.get("CPU", 0))}  # as a local worker: all the lane's cores (blocks take turns)
        t0 = time.perf_counter()
        self.actor = _actor_class().options(**options).remote(job)
        info, self.group_outcome = self._get(self.actor.ready.remote(), timeout, "runtime setup")
        self.pid, self.setup_s, self.setup_parts = info["pid"], info["setup_s"], info["setup_parts"]
        self.placement = {**(info.get("placement") or {}), "ray_node": lane.node}
        self.start_s = max(0.0, time.perf_counter() - t0 - self.setup_s)  # scheduling, process start, imports

    def is_alive(self) -> bool:
        return not self.dead

    def request(self, what: str, *args, timeout: float):
        return self._get(self.actor.handle.remote((what, *args)), timeout, f"this cell's {what}")

    def _get(self, ref, timeout: float, what: str):
        ray = _ray()
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            self.kill()
            raise WorkerLost(Status.TIMEOUT, f"{what} took longer than the cell timeout of {timeout:g} s; "
                                             "Ray worker killed") from None
        except ray.exceptions.RayError as e:
            self.kill()
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise WorkerLost(Status.FAILED, f"Ray worker on node {self.lane.node} lost during {what}: "
                                            f"{type(e).__name__}: {first}") from None

    def kill(self) -> None:
        self.dead = True
        try:
            _ray().kill(self.actor)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self) -> None:
        if not self.dead:
            try:
                _ray().get(self.actor.close.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - it is killed below either way
                pass
        self.kill()


def cluster_lanes(device: str, precisions, max_retries: int = DEFAULT_MAX_RETRIES) -> list[RayLane]:
    """One lane per GPU of every live node (or per node, for a CPU device), each probed on its node."""
    ray = _ray()
    lanes: list[RayLane] = []
    for node in (n for n in ray.nodes() if n.get("Alive")):
        res, ip = node["Resources"], node["NodeManagerAddress"]
        pin = {f"node:{ip}": 0.001}
        if device.startswith("cuda"):
            gpus = int(res.get("GPU", 0))
            cpus = math.floor(res.get("CPU", 0) / gpus) if gpus else 0
            lanes += [RayLane(node, {"GPU": 1, **({"CPU": cpus} if cpus else {}), **pin}, g, max_retries)
                      for g in range(gpus)]
        elif res.get("CPU", 0) >= 1:
            lanes.append(RayLane(node, {"CPU": math.floor(res["CPU"]), **pin}, 0, max_retries))
    if not lanes:
        raise UserError(f"the Ray cluster has no node with {'a GPU' if device.startswith('cuda') else 'CPUs'}: "
                        "add one, or pick another --device")
    try:
        ray.get([lane.pg.ready() for lane in lanes], timeout=READY_TIMEOUT_S)
        facts = ray.get([lane.start_probe(device, precisions) for lane in lanes], timeout=READY_TIMEOUT_S * 5)
    except Exception as e:  # noqa: BLE001 - a cluster that cannot place or probe its lanes
        for lane in lanes:
            lane.close()
        raise UserError(f"the Ray cluster could not place or probe its lanes ({one_line(e)}): check `ray status`")
    for lane, f in zip(lanes, facts):
        lane.take_probe(f)
    return lanes

"""The closing summary is made from events alone: steps, cache hits, layers, phases."""

from __future__ import annotations

import json

from pykaniko.executor.events import (
    BlobProgress,
    BuildFinished,
    CacheChecked,
    Event,
    ImagePushed,
    LayerCreated,
    Notice,
    PhaseTimed,
    StageSkipped,
    StageStarted,
    StepFinished,
    StepOutput,
    StepStarted,
)
from pykaniko.executor.summary import SummaryCollector
from pykaniko.image import mediatypes as mt
from pykaniko.image.manifest import Descriptor, Manifest

BASE = "sha256:" + "0" * 64
BUILT = "sha256:" + "1" * 64
CACHED = "sha256:" + "2" * 64
CONFIG = "sha256:" + "3" * 64


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def manifest() -> Manifest:
    return Manifest.build(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG, CONFIG, 10),
        layers=(
            Descriptor(mt.OCI_LAYER_GZIP, BASE, 1000),
            Descriptor(mt.OCI_LAYER_GZIP, BUILT, 200),
            Descriptor(mt.OCI_LAYER_GZIP, CACHED, 30),
        ),
    )


def collect() -> SummaryCollector:
    clock = Clock()
    c = SummaryCollector(clock=clock)
    events: list[Event] = [
        StageSkipped(0, "tests", "not needed by the target", 4),
        PhaseTimed("resolve", 0.5, detail="base:1"),
        StageStarted(1, None, "base:1"),
        StepStarted(1, 1, 3, "RUN make"),
        PhaseTimed("pull", 1.5, detail="base:1"),  # charged to the running step
        StepOutput(1, "ok"),
        CacheChecked(1, "k1", hit=False),
        LayerCreated(1, BUILT, 200, 7, 0.25),
        StepFinished(1, 1, 3.0),
        StepStarted(1, 2, 3, "RUN make test"),
        CacheChecked(1, "k2", hit=True, digest=CACHED),
        StepFinished(1, 2, 0.1),
        StepStarted(1, 3, 3, "ENV A=1"),
        StepFinished(1, 3, 0.0),
        PhaseTimed("push", 2.0),
        BlobProgress("push", BUILT, 100, 200),
        BlobProgress("push", BUILT, 200, 200, finished=True),
        Notice("warning", "w"),
        ImagePushed("reg/app:1", "sha256:m"),
        ImagePushed("reg/app:latest", "sha256:m"),
        BuildFinished("sha256:m", 7.0),
    ]
    for event in events:
        c(event)
    return c


def test_counts_layers_and_phases() -> None:
    s = collect().summary(
        digest="sha256:m", manifest=manifest(), destinations=["reg/app:1", "reg/app:latest"]
    )
    assert (s.steps_run, s.steps_cached, s.steps_skipped) == (2, 1, 4)
    assert s.size == 1230
    assert [(x.digest, x.origin, x.step) for x in s.layers] == [
        (BASE, "base", None),
        (BUILT, "built", 1),
        (CACHED, "cached", 2),
    ]
    assert s.layers[1].entries == 7
    assert dict(s.phases) == {"resolve": 0.5, "pull": 1.5, "snapshot": 0.25, "push": 2.0}
    assert dict(s.steps[0].phases) == {"pull": 1.5, "snapshot": 0.25}
    assert s.steps[0].seconds == 3.0
    assert s.steps[1].layer_size == 30  # a cached layer's size comes from the manifest
    assert s.pushed == ("reg/app:1", "reg/app:latest")
    assert (s.bytes_pushed, s.warnings, s.seconds) == (200, 1, 7.0)


def test_json_form_round_trips() -> None:
    s = collect().summary(digest="sha256:m", manifest=manifest(), destinations=["reg/app:1"])
    data = json.loads(json.dumps(s.to_dict()))
    assert data["steps"] == {"run": 2, "cached": 1, "skipped": 4}
    assert data["size"] == 1230
    assert [t["status"] for t in data["step_times"]] == ["run", "cached", "run"]
    assert data["step_times"][2]["layer"] is None
    assert data["phases"]["push"] == 2.0


def test_unfinished_build_still_summarises() -> None:
    clock = Clock()
    c = SummaryCollector(clock=clock)
    c(StepStarted(0, 1, 1, "RUN sleep 1"))
    clock.t = 4.0
    s = c.summary(digest="", manifest=None, destinations=())
    assert s.steps[0].seconds == 4.0
    assert s.seconds == 4.0
    assert s.layers == ()

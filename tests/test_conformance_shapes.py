"""The emulator's answers have the shape of the recorded real ones: same JSON paths, same value
types, per kind of answer. Every difference must be in ALLOWED, with its reason.

Reads ``../shared/real_fixtures`` (see ``test_conformance_real.py``); skips where it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

FIXTURES = Path(
    os.environ.get("NBP_KIT_REAL_FIXTURES") or Path(__file__).resolve().parents[2] / "shared" / "real_fixtures"
)
pytestmark = pytest.mark.skipif(
    not (FIXTURES / "cases.json").is_file(),
    reason=f"real-service recordings not present at {FIXTURES} (they sit beside the repository in CI only)",
)

PRO = "/v1beta/models/gemini-3-pro-image-preview"
BODY = {
    "contents": [{"role": "user", "parts": [{"text": "a sea otter"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": "1K"}},
}

#: (kind, "+" emulator only / "-" recording only, path: type) -> why the difference is accepted.
#: An object entry also covers every path below it.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("refusal", "-", "createTime: str"): "Vertex AI field; the emulator speaks the Gemini API",
    ("refusal", "-", "usageMetadata.trafficType: str"): "Vertex AI field; the emulator speaks the Gemini API",
    ("refusal", "+", "usageMetadata.serviceTier: str"): "Gemini API field (Vertex reports trafficType instead)",
    ("refusal", "+", "responseId: str"): "the recorded print is cut after createTime (PROVENANCE.md)",
    ("refusal", "+", "candidates[].index: int"): "the Gemini API sends index (every other recording has it)",
    (
        "refusal",
        "+",
        "usageMetadata.candidatesTokenCount: int",
    ): "the emulator reports 0 candidates tokens for a refusal; the Vertex print omits it",
    (
        "relay",
        "+",
        "usage: object",
    ): "gpt-image answers carry usage (the kit reads it); the recorded fixture predates it",
}


def _explained(diff: tuple[str, str, str]) -> bool:
    kind, sign, path = diff
    name = path.split(": ")[0]
    return diff in ALLOWED or any(
        k == kind and s == sign and p.endswith(": object") and name.startswith(p.split(": ")[0] + ".")
        for k, s, p in ALLOWED
    )


def shape(doc: Any, prefix: str = "") -> set[str]:
    """``{"a.b[].c: str", ...}``: every path with the JSON type of its value (lists collapsed)."""
    kinds = {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float", type(None): "null"}
    out = {f"{prefix}: {kinds[type(doc)]}"} if prefix else set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out |= shape(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(doc, list):
        for v in doc:
            out |= shape(v, f"{prefix}[]")
    return out


def _events(raw: str) -> list[dict[str, Any]]:
    return [json.loads(e.strip()[len("data:") :]) for e in raw.replace("\r\n", "\n").split("\n\n") if e.strip()]


def _recorded(case: str) -> set[str]:
    path = FIXTURES / "bodies" / (case + (".sse" if case.endswith("stream") else ".json"))
    docs = _events(path.read_text()) if path.suffix == ".sse" else [json.loads(path.read_text())]
    return set().union(*(shape(d) for d in docs))


def _emulated(emu: Any, kind: str) -> set[str]:
    key = {"x-goog-api-key": emu.api_key}
    with httpx.Client(base_url=emu.base_url, timeout=60) as c:
        if kind == "unary":
            docs = [c.post(PRO + ":generateContent", json=BODY, headers=key).json()]
        elif kind in ("stream", "refusal"):
            hdrs = {**key, **({"x-emulator-fault": "image-safety"} if kind == "refusal" else {})}
            docs = _events(c.post(PRO + ":streamGenerateContent?alt=sse", json=BODY, headers=hdrs).text)
        elif kind == "429":
            docs = [c.post(PRO + ":generateContent", json=BODY, headers={**key, "x-emulator-fault": "429"}).json()]
        elif kind == "400":
            bad = {**BODY, "generationConfig": {"imageConfig": {"aspectRatio": "7:3"}}}
            docs = [c.post(PRO + ":generateContent", json=bad, headers=key).json()]
        else:
            docs = [
                c.post(
                    "/v1/images/generations",
                    headers={"authorization": f"Bearer {emu.api_key}"},
                    json={
                        "model": "gemini-3-pro-image-preview",
                        "prompt": "a sea otter",
                        "size": "1024x1024",
                        "response_format": "b64_json",
                    },
                ).json()
            ]
    return set().union(*(shape(d) for d in docs))


KINDS = {
    "unary": "pro_image_only",
    "stream": "pro_preview_stream",
    "429": "quota_daily_429",
    "400": "aspect_ratio_invalid_400",
    "refusal": "pro_image_prohibited_stream",
    "relay": "openai_images_b64",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_emulator_answers_have_the_recorded_shape(emulator, kind: str) -> None:
    real, emulated = _recorded(KINDS[kind]), _emulated(emulator, kind)
    diffs = {(kind, "+", p) for p in emulated - real} | {(kind, "-", p) for p in real - emulated}
    unexplained = sorted(d for d in diffs if not _explained(d))
    assert unexplained == [], "differences from the recording that ALLOWED does not explain"


def test_allow_list_has_no_stale_entries(emulator) -> None:
    """Every allowed difference still occurs: a fixed one must leave the list."""
    seen = set()
    for kind, case in KINDS.items():
        real, emulated = _recorded(case), _emulated(emulator, kind)
        seen |= {(kind, "+", p) for p in emulated - real} | {(kind, "-", p) for p in real - emulated}
    assert sorted(set(ALLOWED) - seen) == []

"""Editing: reference images in, multi-turn sessions with thought signatures, the emulator's checks.

Real parts throughout: the emulator on loopback, the kit's client, the google-genai SDK's chats.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import httpx2 as httpx
import pytest
from PIL import Image

from nbp_kit import Client, EditSession, ImageSpec, RunStore
from nbp_kit.client.inputs import (
    INLINE_REQUEST_LIMIT_BYTES,
    MAX_INPUT_IMAGES,
    check_inline_size,
    load_input_images,
    sniff_mime,
)
from nbp_kit.emulator.editing import TOKENS_PER_INPUT_IMAGE, sign, signature_ok
from nbp_kit.errors import ConfigError, RequestFailed

MODEL = "gemini-3-pro-image-preview"
MISSING_SIGNATURE = (
    "Image part is missing a thought_signature in content position 2, part position 1. Please refer "
    "to https://ai.google.dev/gemini-api/docs/thought-signatures#model-behavior for more details."
)


def _png(w: int = 48, h: int = 32, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def _real_fixtures() -> Path | None:
    repo = Path(__file__).resolve().parents[1]
    for base in (
        os.environ.get("NBP_KIT_REAL_FIXTURES"),
        repo.parent / "shared" / "real_fixtures",
        repo.parent.parent / "shared" / "real_fixtures",
    ):
        if base and (Path(base) / "cases.json").is_file():
            return Path(base)
    return None


# --------------------------------------------------------------------------- inputs
def test_inputs_accept_paths_bytes_and_pil_images(tmp_path: Path) -> None:
    path = tmp_path / "ref.jpg"
    Image.new("RGB", (20, 10)).save(path, "JPEG")
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, "WEBP")
    loaded = load_input_images([path, str(path), _png(48, 32), Image.new("RGBA", (5, 7)), webp.getvalue()])
    assert [i.mime for i in loaded] == ["image/jpeg", "image/jpeg", "image/png", "image/png", "image/webp"]
    assert [(i.width, i.height) for i in loaded] == [(20, 10), (20, 10), (48, 32), (5, 7), (8, 8)]
    assert loaded[0].source == "path:ref.jpg"
    assert base64.b64decode(loaded[2].part()["inlineData"]["data"]) == _png(48, 32)
    assert load_input_images(None) == ()


@pytest.mark.parametrize(
    ("images", "needle"),
    [
        ([b"GIF89a" + b"\0" * 40], "image/gif"),
        ([b"not an image at all"], "not an image"),
        ([_png()] * (MAX_INPUT_IMAGES + 1), "at most 14"),
        ("ref.png", "list of paths"),
        ([3.5], "unsupported type"),
        ([b"\x89PNG\r\n\x1a\n" + b"\0" * 30], "does not decode"),
    ],
)
def test_inputs_refuse_bad_images_naming_the_argument(images: object, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_input_images(images)
    assert "images" in str(err.value) and needle in str(err.value)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"images\[0\]=.*cannot be read"):
        load_input_images([tmp_path / "missing.png"])


def test_inline_cap_advises_the_files_api() -> None:
    [img] = load_input_images([_png()])
    big = img.__class__(
        data=img.data + b"\0" * (INLINE_REQUEST_LIMIT_BYTES * 3 // 4),
        mime=img.mime,
        width=img.width,
        height=img.height,
        source="bytes",
    )
    with pytest.raises(ConfigError, match="Files API") as err:
        check_inline_size("a prompt", [big])
    assert "20 MB" in str(err.value) and "images=" in str(err.value)
    assert check_inline_size("a prompt", [img]) < 10_000


def test_sniff_mime_knows_heic() -> None:
    assert sniff_mime(b"\0\0\0\x18ftypheic\0\0\0\0") == "image/heic"


# --------------------------------------------------------------------------- emulator: usage, checks
def _post(emu: object, contents: list[dict[str, object]]) -> httpx.Response:
    body = {
        "contents": contents,
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"imageSize": "1K"}},
    }
    return httpx.post(
        f"{emu.base_url}/v1beta/models/{MODEL}:generateContent",
        json=body,  # type: ignore[attr-defined]
        headers={"x-goog-api-key": emu.api_key},
        timeout=60,
    )  # type: ignore[attr-defined]


def _image_part(data: bytes, mime: str = "image/png") -> dict[str, object]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def test_emulator_bills_560_tokens_per_input_image(emulator: object) -> None:
    resp = _post(
        emulator,
        [{"role": "user", "parts": [{"text": "put these on a table"}, _image_part(_png()), _image_part(_png(16, 16))]}],
    )
    assert resp.status_code == 200, resp.text
    usage = resp.json()["usageMetadata"]
    details = {d["modality"]: d["tokenCount"] for d in usage["promptTokensDetails"]}
    assert details["IMAGE"] == 2 * TOKENS_PER_INPUT_IMAGE
    assert usage["promptTokenCount"] == details["TEXT"] + details["IMAGE"]


@pytest.mark.parametrize(
    ("part", "needle"),
    [
        (_image_part(b"GIF89a....", "image/gif"), "Unsupported MIME type: image/gif"),
        ({"inlineData": {"mimeType": "image/png", "data": "!!not base64!!"}}, "Base64 decoding failed"),
    ],
)
def test_emulator_rejects_bad_inline_images(emulator: object, part: dict[str, object], needle: str) -> None:
    resp = _post(emulator, [{"role": "user", "parts": [{"text": "edit"}, part]}])
    assert resp.status_code == 400
    assert needle in resp.json()["error"]["message"]
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_emulator_rejects_more_than_14_reference_images(emulator: object) -> None:
    parts = [{"text": "collage"}, *[_image_part(_png(8, 8)) for _ in range(15)]]
    resp = _post(emulator, [{"role": "user", "parts": parts}])
    assert resp.status_code == 400 and "Too many images" in resp.json()["error"]["message"]


def test_emulator_rejects_a_body_over_20_mb(emulator: object) -> None:
    part = {"inlineData": {"mimeType": "image/png", "data": "A" * (21 * 1024 * 1024)}}
    resp = _post(emulator, [{"role": "user", "parts": [{"text": "edit"}, part]}])
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "Request payload size exceeds the limit: 20971520 bytes."


def test_signatures_are_bound_to_the_emulator_key() -> None:
    sig = sign(b"k" * 32, "resp-1")
    assert signature_ok(b"k" * 32, sig)
    assert signature_ok(b"k" * 32, base64.urlsafe_b64encode(base64.b64decode(sig)).decode())
    assert not signature_ok(b"other" * 8, sig)
    assert not signature_ok(b"k" * 32, "Z" + sig[1:])
    assert not signature_ok(b"k" * 32, None)


def _first_turn(emu: object) -> tuple[dict[str, object], dict[str, object]]:
    user = {"role": "user", "parts": [{"text": "a red bicycle"}, _image_part(_png())]}
    resp = _post(emu, [user])
    assert resp.status_code == 200, resp.text
    return user, resp.json()["candidates"][0]["content"]


def test_emulator_missing_signature_gets_the_real_400(emulator: object) -> None:
    user, model = _first_turn(emulator)
    assert model["parts"][0]["thoughtSignature"]
    ok = _post(emulator, [user, model, {"role": "user", "parts": [{"text": "make it blue"}]}])
    assert ok.status_code == 200, ok.text
    dropped = {
        "role": "model",
        "parts": [{k: v for k, v in p.items() if k != "thoughtSignature"} for p in model["parts"]],
    }
    resp = _post(emulator, [user, dropped, {"role": "user", "parts": [{"text": "make it blue"}]}])
    assert resp.status_code == 400
    assert resp.json() == {"error": {"code": 400, "message": MISSING_SIGNATURE, "status": "INVALID_ARGUMENT"}}


def test_missing_signature_body_matches_the_recorded_real_one(emulator: object) -> None:
    fixtures = _real_fixtures()
    if fixtures is None:
        pytest.skip("../shared/real_fixtures is absent (recordings of the real service are not part of the project)")
    real = json.loads((fixtures / "bodies" / "thought_signature_missing_400.json").read_text())
    user, model = _first_turn(emulator)
    dropped = {
        "role": "model",
        "parts": [{k: v for k, v in p.items() if k != "thoughtSignature"} for p in model["parts"]],
    }
    resp = _post(emulator, [user, dropped, {"role": "user", "parts": [{"text": "again"}]}])
    assert resp.status_code == 400
    assert resp.json() == real


def test_emulator_altered_signature_is_corrupted(emulator: object) -> None:
    user, model = _first_turn(emulator)
    part = dict(model["parts"][0])
    raw = bytearray(base64.b64decode(part["thoughtSignature"]))
    raw[3] ^= 0xFF
    part["thoughtSignature"] = base64.b64encode(bytes(raw)).decode()
    resp = _post(emulator, [user, {"role": "model", "parts": [part]}, {"role": "user", "parts": [{"text": "x"}]}])
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "Corrupted thought signature."


# --------------------------------------------------------------------------- the kit's client and sessions
def test_generate_with_references_records_inputs(emulator: object, tmp_path: Path) -> None:
    refs = [_png(64, 64), Image.new("RGB", (32, 16))]
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        gen = client.generate("put the product in the scene", ImageSpec(resolution="1K"), images=refs)
    a = gen.attempts[-1]
    assert gen.ok and a.input_images == 2
    assert a.input_pixels == 64 * 64 + 32 * 16
    assert a.input_bytes == len(refs[0]) + len(load_input_images([refs[1]])[0].data)
    assert a.bytes_up is not None and a.bytes_up > a.input_bytes * 4 // 3
    assert a.prompt_tokens is not None and a.prompt_tokens > 2 * TOKENS_PER_INPUT_IMAGE
    assert a.session_id is None and a.turn is None


def test_relay_refuses_reference_images(emulator: object, tmp_path: Path) -> None:
    before = emulator.stats()["requests"]  # type: ignore[attr-defined]
    with Client.for_emulator(emulator, provider="relay", output_dir=tmp_path) as client:
        with pytest.raises(ConfigError, match="provider='gemini'"):
            client.generate("x", images=[_png()])
    assert emulator.stats()["requests"] == before  # type: ignore[attr-defined]


def test_edit_session_three_turns_keeps_signatures_and_links_attempts(emulator: object, tmp_path: Path) -> None:
    store = RunStore.memory()
    with Client.for_emulator(emulator, output_dir=tmp_path, sink=store) as client:
        session = EditSession(client, ImageSpec(resolution="1K"))
        gens = [session.send("a red bicycle", images=[_png()]), session.send("make it blue"), session.send("add a dog")]
    assert all(g.ok for g in gens)
    assert [a.turn for g in gens for a in g.attempts] == [1, 2, 3]
    assert {a.session_id for g in gens for a in g.attempts} == {session.session_id}
    history = session.history
    assert [c["role"] for c in history] == ["user", "model"] * 3
    for gen, model in zip(gens, history[1::2]):
        returned = [p for p in gen.model_parts if "inlineData" in p]
        replayed = [p for p in model["parts"] if "inlineData" in p]
        assert [p["thoughtSignature"] for p in replayed] == [p["thoughtSignature"] for p in returned]
        assert base64.b64decode(replayed[0]["inlineData"]["data"]) == gen.image
    assert gens[2].attempts[-1].bytes_up > gens[1].attempts[-1].bytes_up  # history grows
    frame = store.attempts()
    assert sorted(frame["turn"].tolist()) == [1, 2, 3]
    assert set(frame["session_id"]) == {session.session_id}
    assert frame.loc[frame["turn"] == 1, "input_images"].tolist() == [1]


def test_edit_session_with_an_altered_history_fails_with_the_real_400(emulator: object, tmp_path: Path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        session = EditSession(client, ImageSpec(resolution="1K"))
        assert session.send("a lighthouse", images=[_png()]).ok
        history = session.history
        for part in history[1]["parts"]:
            part.pop("thoughtSignature", None)
        with pytest.raises(RequestFailed) as err:
            client.generate("brighter", ImageSpec(resolution="1K"), history=history)
    assert err.value.status_code == 400 and "missing a thought_signature" in str(err.value)
    assert err.value.kind == "invalid_request"


def test_edit_session_refuses_what_it_sets(emulator: object, tmp_path: Path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        session = EditSession(client)
        with pytest.raises(ConfigError, match="turn"):
            session.send("x", turn=5)
        with pytest.raises(ConfigError, match="client"):
            EditSession("not a client")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- google-genai chats
def _genai(emu: object):  # type: ignore[no-untyped-def]
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=emu.api_key,  # type: ignore[attr-defined]
        http_options=types.HttpOptions(base_url=emu.base_url, api_version="v1beta"),
    )  # type: ignore[attr-defined]
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"], image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K")
    )
    return client, config


def test_google_genai_chat_with_images_over_three_turns(emulator: object) -> None:
    from google.genai import types

    client, config = _genai(emulator)
    chat = client.chats.create(model=MODEL, config=config)
    first = chat.send_message(
        ["put this product on a beach", types.Part.from_bytes(data=_png(), mime_type="image/png")]
    )
    images = {d.modality.value: d.token_count for d in first.usage_metadata.prompt_tokens_details}
    assert images["IMAGE"] == TOKENS_PER_INPUT_IMAGE
    for prompt in ("make it blue", "add a dog"):
        reply = chat.send_message(prompt)
        assert any(p.inline_data is not None for p in reply.candidates[0].content.parts)
    history = chat.get_history()
    assert [c.role for c in history] == ["user", "model"] * 3
    assert all(p.thought_signature for c in history if c.role == "model" for p in c.parts if p.inline_data)


@pytest.mark.parametrize("change", ["drop", "alter"])
def test_google_genai_chat_with_a_broken_signature_gets_the_400(emulator: object, change: str) -> None:
    from google.genai import errors

    client, config = _genai(emulator)
    chat = client.chats.create(model=MODEL, config=config)
    chat.send_message("a red bicycle")
    history = [c.model_copy(deep=True) for c in chat.get_history()]
    for part in history[1].parts:
        if part.inline_data is not None:
            part.thought_signature = None if change == "drop" else b"\x00" + part.thought_signature[1:]
    broken = client.chats.create(model=MODEL, config=config, history=history)
    with pytest.raises(errors.ClientError) as err:
        broken.send_message("make it blue")
    assert err.value.code == 400
    if change == "drop":
        assert err.value.message.startswith("Image part is missing a thought_signature in content position 2")
    else:
        assert err.value.message == "Corrupted thought signature."


def test_edit_session_over_a_streaming_client(emulator: object, tmp_path: Path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path, stream=True) as client:
        session = EditSession(client, ImageSpec(resolution="1K", include_thoughts=True))
        gens = [session.send("a kite", images=[_png()]), session.send("make it green")]
    assert all(g.ok for g in gens) and [g.attempts[-1].transport for g in gens] == ["stream", "stream"]
    model = session.history[1]["parts"]
    assert not any(p.get("thought") for p in model)  # thoughts are not replayed
    assert [p["thoughtSignature"] for p in model if "inlineData" in p] == [
        p["thoughtSignature"] for p in gens[0].model_parts if "inlineData" in p
    ]

"""The demo's web app: one static page, and a router of JSON endpoints per tab (lm, mnist, xor).

Every error answers {"detail": "<one line>"}, which the page shows next to the form that caused it.
The one exception is a request addressed to a Host name the demo does not answer to, which comes
from no page of the demo's: Starlette's TrustedHostMiddleware refuses it first, with 400 and the
text "Invalid host header".
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dlclassics.lm.config import MAX_TEXT, Sampling
from dlclassics.lm.generate import generate, next_words, sentence_probability
from dlclassics.lm.words import words
from dlclassics.mnist.data import normalize
from dlclassics.serve.models import LanguageModelSlot, Loaded, load_lm, load_mnist
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS

STATIC = Path(__file__).parent / "static"
SIDE = 28  # the classifier's input is one 28x28 grayscale image
# Bytes: the largest valid request (784 pixels written with 17 digits each) is about 15 KiB.
MAX_BODY = 64 * 1024
# The names the demo answers by default. A DNS-rebinding page reaches it under the page's own
# name, which these never are.
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


class Text(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


class NextRequest(Text):
    k: int = Field(default=5, ge=1, le=50)


class GenerateRequest(Text):
    length: int = Field(default=Sampling.length, ge=1, le=100)  # words, as `lm generate`
    temperature: float = Field(default=Sampling.temperature, ge=0, le=10)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stop_at_eos: bool = False  # as `lm generate --stop-at-eos`: may end before `length`


class DigitRequest(BaseModel):
    # Row-major ink intensities in [0, 1]: 1 is full ink, as MNIST's white strokes on black.
    pixels: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        min_length=SIDE * SIDE, max_length=SIDE * SIDE
    )


def _one_line(e: RequestValidationError) -> str:
    first = e.errors()[0]
    field = ".".join(str(part) for part in first["loc"] if part not in ("body", "query"))
    return f"{field}: {first['msg']}" if field else first["msg"]


def _require(slot: Loaded) -> None:
    if slot.model is None:
        raise HTTPException(503, slot.message)


def _status(slot: Loaded) -> dict:
    return {
        "ready": slot.model is not None,
        "source": str(slot.source) if slot.source else None,
        "message": slot.message,
    }


class BodyLimit:
    """An ASGI middleware refusing a request body over `limit` bytes with 413 before it is read
    and parsed: at once from its Content-Length, or as soon as a chunked body passes the limit
    (the app then sees the client gone, and what it answers is dropped)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await self._refuse(send)
        seen, refused = 0, False

        async def counted() -> dict:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:
                refused = True
                await self._refuse(send)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: dict) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, send: Any) -> None:
        await JSONResponse({"detail": f"request body over {self.limit} bytes"}, 413)(
            {"type": "http"}, None, send
        )


def create_app(
    lm_path: Path | None, mnist_path: Path | None, hosts: Sequence[str] = LOOPBACK
) -> FastAPI:
    """The demo for the language model at `lm_path` and the classifier at `mnist_path`, answering
    requests whose Host header names one of `hosts`.

    Either model may be None or hold no loadable model: its tab then shows why.
    """
    lm, mnist = load_lm(lm_path), load_mnist(mnist_path)
    app = FastAPI(title="dlclassics demo")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(page_router(lm, mnist))
    app.include_router(lm_router(lm))
    app.include_router(mnist_router(mnist))
    app.include_router(xor_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    return app


async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _one_line(e)}, status_code=422)


def page_router(lm: LanguageModelSlot, mnist: Loaded) -> APIRouter:
    """The page, and what each tab has to work with."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @router.get("/api/status")
    def status() -> dict:
        lm_status = _status(lm)
        if lm.model is not None:
            lm_status["direction"] = lm.model.config.direction
        return {"lm": lm_status, "mnist": _status(mnist), "xor": _xor_networks()}

    return router


def lm_router(lm: LanguageModelSlot) -> APIRouter:
    """Next words, generation and sentence probability from the language model."""
    router = APIRouter(prefix="/api/lm")

    @router.post("/next")
    def next_(request: NextRequest) -> dict:
        given = _lm_words(lm, request.text)
        found = next_words(lm.model, lm.vocab, given, request.k)
        return {
            "words": [{"word": w, "probability": p} for w, p in found],
            "unknown": lm.vocab.unknown(given),
        }

    @router.post("/generate")
    def generate_(request: GenerateRequest) -> dict:
        given = _lm_words(lm, request.text)
        if len(given) > request.length:
            raise HTTPException(400, f"the seed has {len(given)} words, more than length")
        generator = None if request.seed is None else torch.Generator().manual_seed(request.seed)
        sentence = generate(
            lm.model,
            lm.vocab,
            given,
            request.length,
            request.temperature,
            generator,
            stop_at_eos=request.stop_at_eos,
        )
        return {"sentence": " ".join(sentence), "unknown": lm.vocab.unknown(given)}

    @router.post("/prob")
    def prob(request: Text) -> dict:
        p = sentence_probability(lm.model, lm.vocab, _lm_words(lm, request.text))
        return {
            "sentence": p.sentence,
            "log_probability": p.log_probability,
            "probability": p.probability,
            "log_probability_with_eos": p.log_probability_with_eos,
            "probability_with_eos": p.probability_with_eos,
            "unknown": p.unknown,
        }

    return router


def mnist_router(mnist: Loaded) -> APIRouter:
    """The draw-a-digit canvas's prediction."""
    router = APIRouter(prefix="/api/mnist")

    @router.post("/predict")
    def predict(request: DigitRequest) -> dict:
        _require(mnist)
        ink = torch.tensor(request.pixels).reshape(1, SIDE, SIDE)
        # A few faint anti-aliased pixels are not a drawing.
        if ink.max() < 0.1:
            raise HTTPException(400, "the canvas is blank: draw a digit first")
        # Through uint8, so the network sees exactly what training fed it.
        image = normalize(ink.mul(255).round().to(torch.uint8))
        with torch.no_grad():
            probs = torch.softmax(mnist.model(image).float(), dim=1)[0]
        return {"classes": list(mnist.model.classes), "probabilities": probs.tolist()}

    return router


def xor_router() -> APIRouter:
    """The hand-set XOR networks' decision surfaces."""
    router = APIRouter(prefix="/api/xor")

    @router.get("/surface")
    def surface(
        k: Annotated[int, Query(ge=1)],
        bypass: bool,
        temperature: Annotated[float, Query(gt=0, le=10)] = 0.001,
        size: Annotated[int, Query(ge=2, le=201)] = 41,
    ) -> dict:
        net = _hand_set_network(k, bypass, temperature)
        axis = torch.linspace(0, 1, size)
        x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
        with torch.no_grad():
            out = net(torch.stack((x1.flatten(), x2.flatten()), dim=1)).reshape(size, size)
        # grid[i][j] is the output at x1 = axis[j], x2 = axis[i].
        return {"axis": axis.tolist(), "grid": out.tolist()}

    return router


def _lm_words(lm: LanguageModelSlot, text: str) -> list[str]:
    """The typed words, once the language model is known to be there."""
    _require(lm)
    given = words(text)
    if not given:
        raise HTTPException(400, "type at least one word")
    return given


def _hand_set_network(k: int, bypass: bool, temperature: float) -> XorNet:
    weights = next((w for w in HAND_WEIGHTS if (w["k"], w["bypass"]) == (k, bypass)), None)
    if weights is None:
        raise HTTPException(400, f"no hand-set network with k={k}, bypass={bypass}")
    return XorNet.from_spec(weights, temperature)


def _xor_networks() -> list[dict]:
    return [{"k": w["k"], "bypass": w["bypass"]} for w in HAND_WEIGHTS]

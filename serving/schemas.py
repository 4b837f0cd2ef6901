"""The HTTP API's bodies: what a request may send and what every route answers (the OpenAPI schemas).

Request bodies take loradock's shape and vLLM/SGLang's (`model` + `input`); responses are typed,
and every error is the one envelope, ErrorResponse.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Inputs = str | list[str]
# Union tags pydantic puts in error locations; dropped when naming the field.
OURS_TAG, VLLM_TAG = "loradock-body", "vllm-body"


# -- request bodies ---------------------------------------------------------------


class ClassifyRequest(BaseModel):
    """loradock's own body."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(description="A served domain, e.g. medical.")
    inputs: Inputs = Field(description="One text or a list of texts.")
    top_k: int | None = Field(None, ge=1, description="Labels per input (default: all, best first).")
    version: str | None = Field(None, description="A version number or alias of the domain; default: the served one.")


class ModelClassifyRequest(BaseModel):
    """The body vLLM and SGLang accept: `model` is DOMAIN, DOMAIN@N or DOMAIN@ALIAS."""

    model_config = ConfigDict(extra="ignore")  # their clients send fields we have no use for (user, priority)

    model: str = Field(description="DOMAIN (the served version), DOMAIN@N or DOMAIN@ALIAS.")
    input: Inputs = Field(description="One text or a list of texts.")
    top_k: int | None = Field(None, ge=1, description="Labels per input (default: all, best first).")


def which_body(value: Any) -> str:
    return VLLM_TAG if isinstance(value, dict) and ("model" in value or "input" in value) else OURS_TAG


AnyClassifyRequest = Annotated[
    Annotated[ClassifyRequest, Tag(OURS_TAG)] | Annotated[ModelClassifyRequest, Tag(VLLM_TAG)],
    Discriminator(which_body),
]


class HFParameters(BaseModel):
    top_k: int | None = Field(None, ge=1)
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None


class HFRequest(BaseModel):
    inputs: Inputs
    parameters: HFParameters | None = None


# -- response bodies --------------------------------------------------------------


class FieldError(BaseModel):
    field: str
    msg: str | None = None


class ErrorResponse(BaseModel):
    """The one error envelope."""

    error: str = Field(description="What went wrong and what to do next.")
    field: str | None = Field(None, description="The request field at fault (422).")
    detail: list[FieldError] | None = Field(None, description="Every invalid field (422).")
    served: list[str] | None = Field(None, description="The domains served here (404 for a domain).")


class LabelScore(BaseModel):
    label: str
    score: float


class ClassData(BaseModel):
    """vLLM's classification item: the top label and every label's probability in label order."""

    index: int
    label: str
    probs: list[float]
    num_classes: int


class ClassifyResponse(BaseModel):
    domain: str
    version: str = Field(description="The exact version that answered, e.g. medical@3.")
    sha256: str = Field(description="Content hash of that version's files.")
    results: list[list[LabelScore]] = Field(description="Per input, labels best first.")
    object: Literal["list"] = "list"
    model: str = Field(description="The domain (vLLM-style clients read `model` and `data`).")
    data: list[ClassData]


class ServedDomainInfo(BaseModel):
    model_config = ConfigDict(extra="allow")  # backends add their own fields (backend, precision)

    domain: str
    follows: str
    version: str
    number: int
    sha256: str
    labels: list[str]
    tier: str
    pinned: bool
    requests: int
    errors: int
    load_ms: float
    last_error: str | None = None


class DomainsResponse(BaseModel):
    base_model: str
    base_fingerprint: str
    device: str
    domains: list[ServedDomainInfo]


class ModelCard(BaseModel):
    """One served domain in OpenAI's model-list shape, with its lineage."""

    id: str = Field(description="The domain: pass it as `model`.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "loradock"
    root: str = Field(description="The version serving it, e.g. medical@3.")
    parent: str = Field(description="The base model it runs on (vLLM's LoRA convention).")
    version: str
    sha256: str
    base_model: str
    base_fingerprint: str | None
    parent_version: str | None = Field(description="The version it was trained from, when recorded.")
    follows: str = Field(description="The ref this server follows, e.g. medical@production.")
    labels: list[str]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Swap(BaseModel):
    domain: str
    old: str | None = None
    new: str | None = None
    sha256: str | None = None
    error: str | None = None


class ReloadResponse(BaseModel):
    swaps: list[Swap]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    queue_depth: int
    domains: list[str] | None = Field(None, description="Served domains; only to token holders under --api-key-env.")


ERROR_TEXT = {
    401: "Missing or wrong bearer token",
    404: "Unknown domain or version",
    409: "Version cannot be served",
    413: "Body, inputs or texts over the limits",
    422: "Invalid request",
    503: "Busy: retry after Retry-After",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_docs(*codes: int, plain_route: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route answers, all in the one envelope (always JSON).

    `model` registers ErrorResponse in the components; a text/plain route leaves it out, or FastAPI
    would also list its errors as text/plain.
    """
    typed: dict[str, Any] = {} if plain_route else {"model": ErrorResponse}
    return {
        code: {**typed, "description": ERROR_TEXT[code], "content": {"application/json": {"schema": ERROR_REF}}}
        for code in codes
    }


PREDICT_ERRORS = error_docs(401, 404, 409, 413, 422, 503)

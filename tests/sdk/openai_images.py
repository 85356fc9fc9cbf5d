#!/usr/bin/env python3
"""The official OpenAI Python SDK (pinned in tests/sdk/requirements.txt) against an
OpenAI Images API server such as `iat2i serve`.

    openai_images.py --base-url http://127.0.0.1:PORT/v1 --api-key KEY \
        --model iat2i/gpt-image-1 --image input.png --out DIR

Three calls, in order:
  1. images.generate(model=MODEL, prompt="A Graphorn at dusk", n=1, size="1024x1024",
     response_format="b64_json"): data[0].b64_json decoded into DIR/generate.png;
  2. images.edit(model=MODEL, image=open(IMAGE, "rb"), prompt="Put a Graphorn beside it"):
     DIR/edit.png;
  3. images.generate(model="no-such-model", ...): the SDK's exception, caught.

Prints one JSON object to stdout and exits 0:

    {"sdk": {"openai": "3.63.0", "python": "3.11.7"},
     "generate": {"bytes": N, "png": true, "created": 1, "usage": {...} or null,
                  "iat2i": {...} or null, "request_id": "..." or null},
     "edit": {... the same keys ...},
     "unknown_model": {"class": "NotFoundError", "status": 404, "code": "model_not_found",
                       "type": "invalid_request_error", "param": "model",
                       "message": "Error code: 404 - ...", "body": {...}}}

`iat2i` is the response's extra top-level field: the SDK's models keep unknown fields
(pydantic extra="allow"), read here from `response.model_extra`. `body` is the SDK's
`e.body`, which is the response's `error` object, not the whole JSON body.

Anything unexpected (a connection error, a non-PNG image, the unknown model accepted)
prints a traceback to stderr and exits 1. The SDK retries 408, 409, 429, 5xx and
connection errors twice by default; --max-retries changes that (0: never).
"""

import argparse
import base64
import json
import os
import platform
import sys
import traceback

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Drive an OpenAI Images API server with the official OpenAI Python SDK."
    )
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--api-key", required=True, help="sent as Authorization: Bearer KEY")
    p.add_argument("--model", required=True, help="a model the server lists, e.g. iat2i/gpt-image-1")
    p.add_argument("--image", required=True, help="the image to edit (PNG, JPEG or WebP)")
    p.add_argument("--out", required=True, help="folder for generate.png and edit.png (made if missing)")
    p.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help="the SDK's max_retries (default: the SDK's own, 2)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per request (default: the SDK's own, 600)",
    )
    return p.parse_args(argv)


def described(response, out_path):
    """What a test checks of an ImagesResponse; writes its first image to out_path."""
    data = response.data or []
    if not data or not data[0].b64_json:
        raise AssertionError(f"no data[0].b64_json in the response: {response.to_json()}")
    image = base64.b64decode(data[0].b64_json, validate=True)
    if not image.startswith(PNG_SIGNATURE):
        raise AssertionError(f"data[0].b64_json is not a PNG (starts {image[:8]!r})")
    with open(out_path, "wb") as f:
        f.write(image)
    raw = response.to_dict(mode="json")  # as received (unset fields left out)
    extra = response.model_extra or {}
    return {
        "bytes": len(image),
        "png": True,
        "images": len(data),
        "created": response.created,
        "usage": raw.get("usage"),
        "iat2i": extra.get("iat2i"),
        "request_id": response._request_id,  # the x-request-id header; public despite the _
    }


def run(args):
    import openai

    kwargs = {"base_url": args.base_url, "api_key": args.api_key}
    if args.max_retries is not None:
        kwargs["max_retries"] = args.max_retries
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    client = openai.OpenAI(**kwargs)
    os.makedirs(args.out, exist_ok=True)

    generated = client.images.generate(
        model=args.model,
        prompt="A Graphorn at dusk",
        n=1,
        size="1024x1024",
        response_format="b64_json",
    )
    result = {
        "sdk": {"openai": openai.__version__, "python": platform.python_version()},
        "generate": described(generated, os.path.join(args.out, "generate.png")),
    }

    with open(args.image, "rb") as image:
        edited = client.images.edit(
            model=args.model,
            image=image,
            prompt="Put a Graphorn beside it",
        )
    result["edit"] = described(edited, os.path.join(args.out, "edit.png"))

    try:
        accepted = client.images.generate(
            model="no-such-model",
            prompt="A Graphorn at dusk",
            n=1,
            size="1024x1024",
            response_format="b64_json",
        )
    except openai.APIStatusError as e:
        result["unknown_model"] = {
            "class": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
            "type": e.type,
            "param": e.param,
            "message": e.message,
            "body": e.body,
            "request_id": e.request_id,
        }
    else:
        raise AssertionError(
            f"model no-such-model was accepted: {accepted.to_json(indent=None)}"
        )
    return result


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except Exception:
        traceback.print_exc(file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

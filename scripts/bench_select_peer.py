#!/usr/bin/env python3
"""Selection at the speed of the model: iat2i's `select` against its reference points, in one run.

Measures, on the same images (../shared/bench/peer/serve_images.py: N generated JPEG and PNG
images, 300-1600 px, 50-300 ms latency each) and the same CLIP model files:

  * the limit: ONNX Runtime alone embedding N already-decoded images at the selector's batch
    size (../shared/bench/peer/bench_ort.py), plus the slowest single download;
  * `select --urls` (release build, memory off so every run is cold, no per-host rate limit
    since one local server stands in for many hosts) as a whole process: wall time and peak
    RSS (getrusage of the child); and with `--load-first` for the selection's own stage
    times (`--json`; fetch = download + decode + image embedding, rank = the rest);
  * the same with 1 candidate: the model load and what a process holds before any image;
  * the concurrent Python script (../shared/bench/peer/peer_select.py --mode concurrent),
    when numpy, pillow, onnxruntime, requests, tokenizers and qdrant-client import;
  * extra lines: `select --low-memory` (no pre-packed weights), and the same model quantised
    to int8 (onnxruntime.quantization, written once next to the fp32 model) with the overlap
    of its top 5 with the fp32 top 5 on the same images;

and prints every ratio of issue 11 against its target. Medians of --runs.

    python3 scripts/bench_select_peer.py --iat2i target/release/iat2i \\
        --models fixtures/models/full --runs 5
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(ROOT, "..", "shared", "bench", "peer")
TOKENIZER = os.path.join(ROOT, "..", "shared", "models", "clip-vit-b32-tokenizer")
QUERY = "a red circle on a green background"


def run_measured(cmd, env=None, cwd=None):
    """Run `cmd`; return (wall seconds, peak RSS MiB, stdout, stderr, exit code)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    out_chunks, err_chunks = [], []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(p.stdout.read())),
        threading.Thread(target=lambda: err_chunks.append(p.stderr.read())),
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    for r in readers:
        r.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    return (wall, usage.ru_maxrss / 1024.0, b"".join(out_chunks).decode(errors="replace"),
            b"".join(err_chunks).decode(errors="replace"), p.returncode)


def start_server(n, urls_path, python):
    if os.path.exists(urls_path):
        os.remove(urls_path)
    server = subprocess.Popen(
        [python, os.path.join(PEER, "serve_images.py"), "--n", str(n), "--latency-ms", "50", "300",
         "--duration", "3600", "--urls", urls_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(urls_path):
            return server
        if server.poll() is not None:
            sys.exit("serve_images.py exited; does this python have numpy and pillow?")
        time.sleep(0.1)
    server.kill()
    sys.exit("serve_images.py did not write its URL list")


def slowest_download(urls):
    def one(u):
        t = time.perf_counter()
        with urllib.request.urlopen(u, timeout=30) as r:
            r.read()
        return time.perf_counter() - t
    with ThreadPoolExecutor(16) as pool:
        return max(pool.map(one, urls))


def ort_limit(python, models, n, batch):
    out = subprocess.run(
        [python, os.path.join(PEER, "bench_ort.py"), "--models", models, "--n", str(n),
         "--batch-sizes", str(batch), "--threads", "--repeats", "3", "--text-runs", "3"],
        capture_output=True, text=True)
    m = re.search(r"batch\s+%d:\s+([\d.]+) images/s" % batch, out.stdout)
    if out.returncode != 0 or not m:
        return None, out.stderr.strip().splitlines()[-1:] or ["no output"]
    return n / float(m.group(1)), None


def quantized(python, models):
    """The int8 (dynamic, per-tensor) copy of `models`, made once next to it; None if impossible."""
    out = models.rstrip("/") + "-int8"
    if all(os.path.exists(os.path.join(out, t, "model.onnx")) for t in ("vision", "text")):
        return out, None
    script = (
        "import sys, os\n"
        "from onnxruntime.quantization import quantize_dynamic, QuantType\n"
        "src, dst = sys.argv[1], sys.argv[2]\n"
        "for t in ('vision', 'text'):\n"
        "    os.makedirs(os.path.join(dst, t), exist_ok=True)\n"
        "    quantize_dynamic(os.path.join(src, t, 'model.onnx'), os.path.join(dst, t, 'model.onnx'),\n"
        "                     weight_type=QuantType.QInt8)\n")
    r = subprocess.run([python, "-c", script, models, out], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["no output"])[-1]
    return out, None


def top_urls(selection, k=5):
    """The first `k` of the selection's ranking (by relevance, before diversity)."""
    return [r["candidate"]["image_url"] for r in selection.get("ranked", [])[:k]]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iat2i", default=os.path.join(ROOT, "target", "release", "iat2i"))
    ap.add_argument("--models", default=os.path.join(ROOT, "fixtures", "models", "full"))
    ap.add_argument("--python", default=sys.executable, help="the Python with the peer's packages")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16, help="the selector's embedding batch (default 16)")
    args = ap.parse_args()

    for need in (args.iat2i, os.path.join(args.models, "vision", "model.onnx")):
        if not os.path.exists(need):
            sys.exit(f"missing {need} (make bench-select builds and generates them)")
    work = tempfile.mkdtemp(prefix="bench-select-")
    urls = os.path.join(work, "urls.txt")
    server = start_server(args.n, urls, args.python)
    try:
        with open(urls) as f:
            url_list = [l.strip() for l in f if l.strip()]
        one_url = os.path.join(work, "one.txt")
        with open(one_url, "w") as f:
            f.write(url_list[0] + "\n")
        slow = slowest_download(url_list)
        ort_s, ort_err = ort_limit(args.python, args.models, args.n, args.batch)

        env = dict(os.environ)
        def select(url_file, models=args.models, extra=()):
            cache = tempfile.mkdtemp(dir=work)
            return run_measured(
                [args.iat2i, "select", QUERY, "--urls", url_file, "--model-dir", models,
                 "--tokenizer-dir", TOKENIZER, "--cache-dir", cache, "--no-memory", "--json",
                 # One local server stands in for a hundred web hosts: no per-host politeness
                 # limit (the default 10 requests/s would make the downloads the bottleneck).
                 "--per-host-rate", "0",
                 "--top-k", "5", "--allow-host", "127.0.0.1", "--out", os.path.join(cache, "ref"),
                 *extra], env=env)

        ours, stages, load_rss, top_fp32 = [], [], [], None
        lean, lean_load = [], []
        for _ in range(args.runs):
            # The whole process as a user runs it: the model loads alongside the downloads.
            wall, rss, out, err, code = select(urls)
            if code != 0:
                sys.exit(f"select failed ({code}):\n{err[-2000:]}")
            top_fp32 = top_urls(json.loads(out))
            ours.append((wall, rss))
            # The selection alone (model loaded first), for its stage times.
            _, _, out, err, code = select(urls, extra=("--load-first",))
            if code != 0:
                sys.exit(f"select --load-first failed ({code}):\n{err[-2000:]}")
            stages.append({s["stage"]: s["elapsed_ms"] / 1000.0 for s in json.loads(out)["stages"]})
            w1, r1, _, err1, code1 = select(one_url)
            if code1 == 0:
                load_rss.append((w1, r1))
            wall, rss, _, err, code = select(urls, extra=("--low-memory",))
            if code == 0:
                lean.append((wall, rss))
            w1, r1, _, _, code1 = select(one_url, extra=("--low-memory",))
            if code1 == 0:
                lean_load.append((w1, r1))

        int8_dir, int8_err = quantized(args.python, args.models)
        int8, agreement = [], None
        if int8_dir:
            for _ in range(args.runs):
                wall, rss, out, err, code = select(urls, models=int8_dir)
                if code != 0:
                    int8_err = (err.strip().splitlines() or ["no output"])[-1]
                    break
                int8.append((wall, rss))
                top = top_urls(json.loads(out))
                agreement = len(set(top) & set(top_fp32 or [])) / max(len(top_fp32 or []), 1)

        peer = []
        peer_err = None
        for _ in range(args.runs):
            wall, rss, out, err, code = run_measured(
                [args.python, os.path.join(PEER, "peer_select.py"), "--urls", urls, "--query", QUERY,
                 "--models", args.models, "--mode", "concurrent",
                 "--tokenizer", os.path.join(TOKENIZER, "tokenizer.json")])
            if code != 0:
                peer_err = (err.strip().splitlines() or ["no output"])[-1]
                break
            peer.append((wall, rss))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    names = ["prefilter", "fetch", "dedup", "rank", "diversity"]
    st_med = {k: median([s.get(k, 0.0) for s in stages]) for k in names}
    selection = sum(st_med.values())
    our_wall, our_rss = median([w for w, _ in ours]), median([r for _, r in ours])
    load_wall = median([w for w, _ in load_rss])
    load_peak = median([r for _, r in load_rss])

    print(f"\nselection of {args.n} candidates, 50-300 ms each, models {args.models}, medians of {args.runs}")
    print("\n| measure | value |\n|---|---|")
    if ort_s is not None:
        print(f"| ONNX Runtime alone, {args.n} decoded images, batch {args.batch} | {ort_s:.2f} s |")
    else:
        print(f"| ONNX Runtime alone | skipped: {ort_err[0]} |")
    print(f"| slowest single download | {slow:.2f} s |")
    for k in names:
        print(f"| select --load-first stage {k} | {st_med[k]:.2f} s |")
    print(f"| select --load-first: selection (prefilter to diversity, model loaded) | {selection:.2f} s |")
    print(f"| select process, {args.n} candidates | {our_wall:.2f} s, peak {our_rss:.0f} MiB |")
    print(f"| select process, 1 candidate (load) | {load_wall:.2f} s, peak {load_peak:.0f} MiB |")
    if lean:
        lean_wall, lean_rss = median([w for w, _ in lean]), median([r for _, r in lean])
        print(f"| select --low-memory, {args.n} candidates | {lean_wall:.2f} s, peak {lean_rss:.0f} MiB |")
    if lean_load:
        print(f"| select --low-memory, 1 candidate (load) | {median([w for w, _ in lean_load]):.2f} s, "
              f"peak {median([r for _, r in lean_load]):.0f} MiB |")
    if int8:
        int8_wall, int8_rss = median([w for w, _ in int8]), median([r for _, r in int8])
        print(f"| select, int8-quantised model (extra) | {int8_wall:.2f} s, peak {int8_rss:.0f} MiB, "
              f"top-5 overlap with fp32 {agreement:.0%} |")
    else:
        print(f"| select, int8-quantised model | skipped: {int8_err} |")
    if peer:
        peer_wall, peer_rss = median([w for w, _ in peer]), median([r for _, r in peer])
        print(f"| Python peer process (concurrent) | {peer_wall:.2f} s, peak {peer_rss:.0f} MiB |")
    else:
        print(f"| Python peer | skipped: {peer_err or 'no run'} |")

    print("\n| target | measured | goal | met |\n|---|---|---|---|")
    def row(name, value, goal, ok):
        print(f"| {name} | {value} | {goal} | {'yes' if ok else 'NO'} |")
    if ort_s is not None:
        limit = ort_s + slow
        r = selection / limit
        row("selection / (ORT alone + slowest download)", f"{r:.2f}", "<= 1.15", r <= 1.15)
    if peer:
        r = peer_wall / our_wall
        row("Python peer wall / select wall", f"{r:.2f}x", ">= 2x", r >= 2.0)
        r = our_rss / peer_rss
        row("select peak / peer peak", f"{r:.2f}", "<= 0.70", r <= 0.70)
        if lean:
            r = peer_wall / lean_wall
            row("Python peer wall / select --low-memory wall", f"{r:.2f}x", ">= 2x", r >= 2.0)
            r = lean_rss / peer_rss
            row("select --low-memory peak / peer peak", f"{r:.2f}", "<= 0.70", r <= 0.70)
        if int8:
            r = peer_wall / int8_wall
            row("(extra) Python peer wall / select int8 wall", f"{r:.2f}x", ">= 2x", r >= 2.0)
            r = int8_rss / peer_rss
            row("(extra) select int8 peak / peer peak", f"{r:.2f}", "<= 0.70", r <= 0.70)
    growth = our_rss - load_peak
    row(f"peak growth from 1 to {args.n} candidates", f"{growth:.0f} MiB", "flat (< 10 %)",
        growth <= 0.1 * load_peak)
    r = st_med["rank"] / selection if selection else float("nan")
    row("rank stage / selection", f"{r:.1%}", "<= 5 %", r <= 0.05)


if __name__ == "__main__":
    main()

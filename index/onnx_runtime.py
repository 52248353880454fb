"""Run a sentence-transformers model through ONNX Runtime with dynamic int8 quantisation.

The ONNX file is exported *locally* from the model's own weights (the bundled model, or a hub
model already in the local cache) into a cache directory, once; nothing is downloaded. The export
is a direct ``torch.onnx.export`` of the transformer plus ``onnxruntime.quantization.
quantize_dynamic`` (per-channel int8 weights on the MatMuls only: the embedding Gather and
per-tensor scales cost several points of cosine against fp32, per-channel MatMul-only keeps
~0.99). It does not go through ``optimum``, whose releases lag behind ``transformers``.

Pooling and normalisation are done here in numpy from the model's ``1_Pooling/config.json``; a
model with other modules (a Dense head, say) is refused with a clear error, and the embedder then
uses torch.

Cache: ``$ARTICLEBOT_ONNX_CACHE``, else ``$XDG_CACHE_HOME/articlebot/onnx``, else
``~/.cache/articlebot/onnx``; one folder per model and export recipe, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import ModelNotInstalled

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: old cache entries are then ignored.
RECIPE = "torch-onnx17-dynamic-int8-perchannel-matmul-v1"
ONNX_FILE = "model_int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Texts per ONNX Runtime call, at most (the configured batch size is for torch): smaller batches
# measured faster with int8 on 2 cores — 560 sentences/s at 8 against 387 at 32, 121 passages/s
# against 105 (bench/embed_speed.py) — activations stay in cache and pad less.
MAX_BATCH = 8
SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
    "sentence_transformers.base.modules.transformer.Transformer",
}


class UnsupportedModel(ValueError):
    """The model has modules this runtime does not reproduce (use runtime = "torch")."""


def cache_root() -> Path:
    env = os.environ.get("ARTICLEBOT_ONNX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "articlebot" / "onnx"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_local(name: str) -> Path:
    """A local directory for a path or a hub name that is already in the local cache (never fetched)."""
    path = Path(name)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - the hub library raises several kinds here
        raise ModelNotInstalled(
            f"[embedding] model {name!r} is not installed: neither a directory nor in the local Hugging Face cache "
            "(fix the name, or download the model once where the network is allowed)"
        ) from exc


def _modules(path: Path) -> list[dict]:
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return [{"type": "sentence_transformers.models.Transformer", "path": ""}]
    return json.loads(modules_file.read_text())


def _fingerprint(path: Path, model_id: str) -> str:
    """Changes when the weights, the config or the recipe change (sizes and names, not contents)."""
    digest = hashlib.sha256(f"{RECIPE}\n{model_id}\n".encode())
    for name in sorted(os.listdir(path)):
        item = path / name
        if item.is_file():
            digest.update(f"{name}:{item.stat().st_size}\n".encode())
    for name in ("config.json", "tokenizer_config.json", "modules.json"):
        if (path / name).exists():
            digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]


def export_quantized(path: Path, target: Path) -> None:
    """Export the transformer at ``path`` to ONNX and quantise it into ``target/ONNX_FILE``."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
    sample = tokenizer(["ein Beispiel", "a longer example sentence here"], padding=True, return_tensors="pt")
    names = [n for n in INPUT_NAMES if n in sample]

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "tokens"}
    target.mkdir(parents=True, exist_ok=True)
    fp32 = target / "model_fp32.onnx"
    # The tracer warns about Python-side shape checks that are constant for this export.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapped(model),
            tuple(sample[n] for n in names),
            str(fp32),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    root = logging.getLogger()
    quiet = _DropPreprocessHint()
    root.addFilter(quiet)  # onnxruntime logs a hint about pre-processing on the root logger
    try:
        quantize_dynamic(
            str(fp32),
            str(target / ONNX_FILE),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        root.removeFilter(quiet)
    fp32.unlink()
    (target / "inputs.json").write_text(json.dumps(names))


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class QuantizedOnnxModel:
    """The part of ``SentenceTransformer`` the embedder uses: encode, tokenizer, lengths, dimension."""

    def __init__(self, path: Path, onnx_dir: Path, threads: int = 0):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.input_names = json.loads((onnx_dir / "inputs.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: on a small machine shared with the bot's
        # other work, spinning threads measured 20-30% slower (bench/embed_speed.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        pooling, self.normalize, self.max_seq_length, self.lower_case = _read_st_config(path, self.tokenizer)
        self.pooling = pooling
        config = json.loads((path / "config.json").read_text())
        self.dim = int(config["hidden_size"])
        self.position_limit = config.get("max_position_embeddings")

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        **_ignored,
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [t.lower() for t in texts] if self.lower_case else list(texts)
        # Sorted by length, so a batch pads to its own longest text, not the corpus's.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batch_size = max(1, min(batch_size, MAX_BATCH))
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feed = {n: np.asarray(encoded[n], dtype=np.int64) for n in self.input_names}
            (hidden,) = self.session.run(None, feed)
            out[index] = _pool(hidden, feed["attention_mask"], self.pooling)
        if normalize_embeddings or self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _read_st_config(path: Path, tokenizer) -> tuple[str, bool, int, bool]:
    modules = _modules(path)
    unsupported = [m["type"] for m in modules if m["type"] not in SUPPORTED_MODULES]
    if unsupported:
        raise UnsupportedModel(f"runtime onnx-int8 does not reproduce {', '.join(unsupported)}")
    pooling = "mean"
    for module in modules:
        if module["type"].endswith("Pooling"):
            config = json.loads((path / module["path"] / "config.json").read_text())
            for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens"):
                if config.get(f"pooling_mode_{mode}"):
                    pooling = mode
                    break
    normalize = any(m["type"].endswith("Normalize") for m in modules)
    st_config = path / "sentence_bert_config.json"
    settings = json.loads(st_config.read_text()) if st_config.exists() else {}
    limit = settings.get("max_seq_length") or min(int(tokenizer.model_max_length), 512)
    return pooling, normalize, int(limit), bool(settings.get("do_lower_case", False))


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls_token":
        return hidden[:, 0]
    weights = mask[..., None].astype(np.float32)
    if mode == "max_tokens":
        return np.where(weights > 0, hidden, -1e9).max(axis=1)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    return summed / (np.sqrt(counts) if mode == "mean_sqrt_len_tokens" else counts)


def load_quantized(name: str, model_id: str, threads: int = 0) -> QuantizedOnnxModel:
    """The model at ``name`` as int8 ONNX, exported into the cache on first use (a few seconds)."""
    path = resolve_local(name)
    _read_st_config(path, _NoTokenizer())  # refuse unsupported models before exporting anything
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)[-80:]
    onnx_dir = cache_root() / f"{slug}-{_fingerprint(path, model_id)}"
    if not (onnx_dir / ONNX_FILE).exists():
        log.info("exporting %s to int8 ONNX in %s (once)", model_id, onnx_dir)
        onnx_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=onnx_dir.parent))
        try:
            export_quantized(path, tmp)
            try:
                os.replace(tmp, onnx_dir)
            except OSError:  # another process exported it meanwhile
                if not (onnx_dir / ONNX_FILE).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return QuantizedOnnxModel(path, onnx_dir, threads)


class _NoTokenizer:
    model_max_length = 512

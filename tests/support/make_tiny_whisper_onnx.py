"""Build a tiny, randomly initialised multilingual Whisper exported to ONNX (onnx-community's layout) offline.

A 64-wide, 2+2-layer ``WhisperForConditionalGeneration`` (transformers + torch, seeded) with the real
51,865-token vocabulary, written as onnx-community/whisper-* publish it (seconds, ~30 MB):

    config.json generation_config.json preprocessor_config.json tokenizer.json vocab.json merges.txt
    added_tokens.json special_tokens_map.json
    onnx/encoder_model.onnx          input_features [B, 80, 3000] -> last_hidden_state [B, 1500, d]
    onnx/decoder_model_merged.onnx   input_ids, encoder_hidden_states, past_key_values.N.{decoder,encoder}.
                                     {key,value}, use_cache_branch -> logits, present.N.* (an If over the
                                     first step and the cached steps, as optimum merges them)
    hf/                              the transformers checkpoint (for CTranslate2's converter in the bench)

The decoder step is written out here (embeddings, self- and cross-attention with a KV cache, MLP) over the
model's own weights, so the export needs neither optimum nor the dynamo exporter; it is checked against
transformers' logits. Its words are random: tests assert structure.

    python -m tests.support.make_tiny_whisper_onnx OUT_DIR --tokenizer-json PATH
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from tests.support.make_tiny_whisper import (
    BEGIN_SUPPRESS,
    EOT,
    LANGS,
    N_MELS,
    NO_TIMESTAMPS,
    PREPROCESSOR_CONFIG,
    SOT,
    SUPPRESS,
    VOCAB_SIZE,
    full_vocabulary,
)

PARAMS_NAME = ".tiny_whisper_onnx_params.json"
OPSET = 17


def _config(d_model: int, layers: int, heads: int) -> Any:
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=VOCAB_SIZE,
        num_mel_bins=N_MELS,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=EOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        decoder_start_token_id=SOT,
        suppress_tokens=SUPPRESS,
        begin_suppress_tokens=BEGIN_SUPPRESS,
    )


def _generation_config(layers: int, heads: int) -> dict[str, Any]:
    return {
        "alignment_heads": [[layer, h] for layer in range(layers // 2, layers) for h in range(heads)],
        "begin_suppress_tokens": BEGIN_SUPPRESS,
        "bos_token_id": EOT,
        "decoder_start_token_id": SOT,
        "eos_token_id": EOT,
        "is_multilingual": True,
        "lang_to_id": {f"<|{lang}|>": SOT + 1 + i for i, lang in enumerate(LANGS)},
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "no_timestamps_token_id": NO_TIMESTAMPS,
        "pad_token_id": EOT,
        "prev_sot_token_id": NO_TIMESTAMPS - 2,
        "return_timestamps": False,
        "suppress_tokens": SUPPRESS,
        "task_to_id": {"transcribe": NO_TIMESTAMPS - 4, "translate": NO_TIMESTAMPS - 5},
    }


def _decoder_step(model: Any, with_past: bool) -> Any:
    """One decoder call in the merged export's terms: without a cache (the prompt; cross-attention keys and
    values computed from the encoder) or with one (one token; every key and value comes from the cache)."""
    import torch

    decoder, proj_out = model.model.decoder, model.proj_out
    layers = list(decoder.layers)
    heads = model.config.decoder_attention_heads
    head_dim = model.config.d_model // heads

    def split(x: Any) -> Any:  # [B, T, d] -> [B, H, T, D]
        return x.view(x.shape[0], x.shape[1], heads, head_dim).transpose(1, 2)

    def attend(q: Any, k: Any, v: Any, mask: Any | None) -> Any:
        scores = torch.matmul(q, k.transpose(-1, -2)) * head_dim**-0.5
        if mask is not None:
            scores = scores + mask
        out = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)
        return out.reshape(out.shape[0], out.shape[1], heads * head_dim)

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder, self.proj_out = decoder, proj_out  # registered: their weights become initializers

        def forward(self, input_ids: Any, *rest: Any) -> Any:
            if with_past:
                encoder_states, past = None, rest
                past_len = past[0].shape[2]
            else:
                encoder_states, past = rest[0], None
                past_len = 0
            steps = input_ids.shape[1]
            positions = torch.arange(steps) + past_len
            x = decoder.embed_tokens(input_ids) + decoder.embed_positions.weight[positions]
            mask = None
            if not with_past:
                i = torch.arange(steps)
                mask = (i[None, :] > i[:, None]).float() * -1e9
            presents = []
            for n, layer in enumerate(layers):
                attn = layer.self_attn
                h = layer.self_attn_layer_norm(x)
                k, v = split(attn.k_proj(h)), split(attn.v_proj(h))
                if past is not None:
                    k = torch.cat([past[4 * n], k], dim=2)
                    v = torch.cat([past[4 * n + 1], v], dim=2)
                x = x + attn.out_proj(attend(split(attn.q_proj(h)), k, v, mask))
                cross = layer.encoder_attn
                h = layer.encoder_attn_layer_norm(x)
                if past is not None:
                    ck, cv = past[4 * n + 2], past[4 * n + 3]
                    new_ck, new_cv = ck[:0], cv[:0]  # optimum's cached branch: empty encoder presents
                else:
                    ck, cv = split(cross.k_proj(encoder_states)), split(cross.v_proj(encoder_states))
                    new_ck, new_cv = ck, cv
                x = x + cross.out_proj(attend(split(cross.q_proj(h)), ck, cv, None))
                h = layer.final_layer_norm(x)
                x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
                presents += [k, v, new_ck, new_cv]
            return (proj_out(decoder.layer_norm(x)), *presents)

    return Step().eval()


def _kv_names(layers: int, prefix: str) -> list[str]:
    return [
        f"{prefix}.{n}.{part}.{kv}"
        for n in range(layers)
        for part in ("decoder", "encoder")
        for kv in ("key", "value")
    ]


def _export(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
) -> None:
    import torch

    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
    )


def _merge(no_past: Any, with_past: Any, layers: int) -> Any:
    """optimum's merged decoder: an ``If`` on ``use_cache_branch`` whose branches are the two exports."""
    import onnx
    from onnx import TensorProto, helper

    outer_inputs: dict[str, Any] = {}
    initializers = []
    shared: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    alias: dict[str, str] = {}
    branches = []
    for tag, model in (("first", no_past), ("cached", with_past)):  # inputs typed by the first step's
        graph = model.graph
        keep = {i.name for i in graph.input}
        for value in graph.input:
            outer_inputs.setdefault(value.name, value)

        def rename(name: str, tag: str = tag, keep: set[str] = keep) -> str:
            return name if not name or name in keep else f"{tag}/{name}"

        for init in graph.initializer:
            init.name = rename(init.name)
            key = (init.data_type, tuple(init.dims), init.raw_data)
            if init.raw_data and key in shared:  # a weight both branches hold is stored once
                alias[init.name] = shared[key]
                continue
            shared.setdefault(key, init.name)
            initializers.append(init)
        for node in graph.node:
            node.name = rename(node.name or node.output[0])
            node.input[:] = [rename(n) for n in node.input]
            node.output[:] = [rename(n) for n in node.output]
        outputs = []
        for value in graph.output:
            value.name = rename(value.name)
            outputs.append(value)
        branches.append(helper.make_graph(list(graph.node), f"{tag}_branch", [], outputs))
    for branch in branches:
        for node in branch.node:
            node.input[:] = [alias.get(n, n) for n in node.input]
    flag = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    names = ["input_ids", "encoder_hidden_states", *_kv_names(layers, "past_key_values")]
    inputs = [outer_inputs[n] for n in names] + [flag]
    out_names = ["logits", *_kv_names(layers, "present")]
    if_node = helper.make_node(
        "If",
        ["use_cache_branch"],
        out_names,
        name="optimum::if",
        then_branch=branches[1],
        else_branch=branches[0],
    )
    outputs = []
    for name, value in zip(out_names, branches[0].output, strict=True):
        typed = onnx.ValueInfoProto()
        typed.CopyFrom(value)
        typed.name = name
        outputs.append(typed)
    graph = helper.make_graph([if_node], "merged_decoder", inputs, outputs, initializer=initializers)
    merged = helper.make_model(graph, opset_imports=no_past.opset_import, ir_version=no_past.ir_version)
    onnx.checker.check_model(merged)
    return merged


def _export_all(model: Any, out: Path, layers: int) -> None:
    import onnx
    import torch

    d, heads = model.config.d_model, model.config.decoder_attention_heads
    head_dim = d // heads
    onnx_dir = out / "onnx"
    onnx_dir.mkdir()
    features = torch.zeros(1, N_MELS, 3000)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.model.encoder

        def forward(self, input_features: Any) -> Any:
            return self.encoder(input_features).last_hidden_state

    _export(
        Encoder().eval(),
        (features,),
        onnx_dir / "encoder_model.onnx",
        ["input_features"],
        ["last_hidden_state"],
        {"input_features": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}},
    )
    states = torch.randn(1, 1500, d)
    prompt = torch.tensor([[SOT, SOT + 1, NO_TIMESTAMPS - 4]])
    kv_axes = {0: "batch_size", 2: "past_sequence_length"}
    present = _kv_names(layers, "present")
    past = _kv_names(layers, "past_key_values")
    with tempfile.TemporaryDirectory() as tmp:
        first_path, cached_path = Path(tmp) / "first.onnx", Path(tmp) / "cached.onnx"
        _export(
            _decoder_step(model, with_past=False),
            (prompt, states),
            first_path,
            ["input_ids", "encoder_hidden_states"],
            ["logits", *present],
            {
                "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                "encoder_hidden_states": {0: "batch_size"},
            }
            | {"logits": {0: "batch_size", 1: "decoder_sequence_length"}}
            | {name: kv_axes for name in present},
        )
        cache = []
        for _ in range(layers):
            cache += [torch.randn(1, heads, 3, head_dim)] * 2 + [torch.randn(1, heads, 1500, head_dim)] * 2
        _export(
            _decoder_step(model, with_past=True),
            (prompt[:, -1:], *cache),
            cached_path,
            ["input_ids", *past],
            ["logits", *present],
            {"input_ids": {0: "batch_size"}, "logits": {0: "batch_size"}}
            | {name: {0: "batch_size", 2: "past_sequence_length"} for name in [*past, *present]},
        )
        merged = _merge(onnx.load(str(first_path)), onnx.load(str(cached_path)), layers)
    onnx.save(merged, str(onnx_dir / "decoder_model_merged.onnx"))


def _check(model: Any, out: Path) -> None:
    """The export's logits for a prompt and one cached step match transformers' (the step is hand-written)."""
    import numpy as np
    import onnxruntime
    import torch

    rng = np.random.default_rng(1)
    features = rng.standard_normal((1, N_MELS, 3000)).astype(np.float32)
    encoder = onnxruntime.InferenceSession(str(out / "onnx" / "encoder_model.onnx"))
    decoder = onnxruntime.InferenceSession(str(out / "onnx" / "decoder_model_merged.onnx"))
    (states,) = encoder.run(None, {"input_features": features})
    prompt = np.array([[SOT, SOT + 1, NO_TIMESTAMPS - 4, NO_TIMESTAMPS + 1]], dtype=np.int64)
    empty = {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
        for i in decoder.get_inputs()
        if i.name.startswith("past_key_values.")
    }
    names = [o.name for o in decoder.get_outputs()]
    first = dict(
        zip(
            names,
            decoder.run(
                None,
                {
                    "input_ids": prompt[:, :-1],
                    "encoder_hidden_states": states,
                    "use_cache_branch": np.array([False]),
                }
                | empty,
            ),
            strict=True,
        )
    )
    cache = {k: first[k.replace("past_key_values", "present")] for k in empty}
    step = decoder.run(
        ["logits"],
        {"input_ids": prompt[:, -1:], "encoder_hidden_states": states, "use_cache_branch": np.array([True])}
        | cache,
    )[0]
    with torch.no_grad():
        expected = model(
            input_features=torch.from_numpy(features), decoder_input_ids=torch.from_numpy(prompt)
        ).logits.numpy()
    np.testing.assert_allclose(first["logits"][0], expected[0, :-1], atol=2e-4)
    np.testing.assert_allclose(step[0, -1], expected[0, -1], atol=2e-4)


def _tokenizer_files(out: Path, tokenizer: dict[str, Any]) -> None:
    vocab = tokenizer["model"]["vocab"]
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = tokenizer["model"]["merges"]
    lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
    tokens = full_vocabulary(tokenizer)
    added = {t: i for i, t in enumerate(tokens) if i >= EOT}
    (out / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False, indent=2), encoding="utf-8")
    special = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")


def build_tiny_whisper_onnx(
    out_dir: Path, *, tokenizer_json: Path, d_model: int = 64, layers: int = 2, heads: int = 4, seed: int = 0
) -> Path:
    """Writes the export to ``out_dir`` (atomically); reuses it if built with the same parameters."""
    params = {"d_model": d_model, "layers": layers, "heads": heads, "seed": seed}
    stamp = out_dir / PARAMS_NAME
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return out_dir
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(_config(d_model, layers, heads)).eval().requires_grad_(False)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny_whisper_onnx_", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp / "hf")
        tokenizer = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        _tokenizer_files(tmp, tokenizer)
        for name in (
            "tokenizer.json",
            "vocab.json",
            "merges.txt",
            "added_tokens.json",
            "special_tokens_map.json",
        ):
            shutil.copy(tmp / name, tmp / "hf" / name)
        (tmp / "config.json").write_text(model.config.to_json_string(), encoding="utf-8")
        (tmp / "generation_config.json").write_text(json.dumps(_generation_config(layers, heads), indent=2))
        (tmp / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
        shutil.copy(tmp / "preprocessor_config.json", tmp / "hf" / "preprocessor_config.json")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            _export_all(model, tmp, layers)
        _check(model, tmp)
        stamp_tmp = tmp / PARAMS_NAME
        stamp_tmp.write_text(json.dumps(params))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--tokenizer-json", type=Path, required=True, help="a multilingual Whisper tokenizer.json"
    )
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    out = build_tiny_whisper_onnx(
        a.out, tokenizer_json=a.tokenizer_json, d_model=a.d_model, layers=a.layers, heads=a.heads, seed=a.seed
    )
    print(out)


if __name__ == "__main__":
    main()

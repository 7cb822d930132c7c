#!/usr/bin/env python3
"""Build a tiny, randomly initialised Parakeet-TDT-style NeMo model fully offline.

The project's copy of ../shared/recipes/make_tiny_parakeet.py, plus ``--onnx DIR``: export it with the
project's own exporter (``asrpro_rpc.engines.parakeet.export``, which replaced the recipe's export script), in
the same process so NeMo is imported once.

Usage:  python -m tests.support.make_tiny_parakeet OUT.nemo [--wav PATH] [--seed N] [--onnx DIR]

- trains a tiny SentencePiece BPE tokenizer on a few built-in sentences (no downloads)
- builds nemo.collections.asr.models.EncDecRNNTBPEModel with a FastConformer encoder
  (dw_striding x8 subsampling, rel_pos attention) + RNNT decoder + joint with
  5 extra TDT duration outputs, TDT loss and TDT greedy_batch decoding, durations [0,1,2,3,4]
  -- the same structure as nvidia/parakeet-tdt-0.6b/1.1b, only with tiny dims.
- save_to(OUT) ; restore_from(OUT) ; transcribe(wav, timestamps=True) if --wav is given
Idempotent: OUT is overwritten; temp files live in a TemporaryDirectory.
Prints timings. Output text is garbage (random weights) but the code path is exercised.
"""

import argparse
import os
import sys
import tempfile
import time

T0 = time.perf_counter()


def _t(label, start):
    print(f"[timing] {label}: {time.perf_counter() - start:.2f}s", flush=True)


SENTENCES = [
    "hello world this is a test of the speech sidecar",
    "the quick brown fox jumps over the lazy dog",
    "parakeet is a speech recognition model from nvidia",
    "we transcribe audio files into text with timestamps",
    "one two three four five six seven eight nine ten",
    "local speech to text runs without a network connection",
    "she sells sea shells by the sea shore",
    "a tiny random model produces garbage but exercises the code",
]


def train_tokenizer(tok_dir, vocab_size=64):
    import sentencepiece as spm

    os.makedirs(tok_dir, exist_ok=True)
    corpus = os.path.join(tok_dir, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(20):
            f.write("\n".join(SENTENCES) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=os.path.join(tok_dir, "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        pad_id=-1,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    # NeMo's process_asr_text_tokenizer.py also writes vocab.txt (one piece per line)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tok_dir, "tokenizer.model"))
    with open(os.path.join(tok_dir, "vocab.txt"), "w") as f:
        for i in range(sp.get_piece_size()):
            f.write(sp.id_to_piece(i) + "\n")
    return sp.get_piece_size()


def make_cfg(tok_dir, d_model=64, n_layers=2, n_heads=4, features=80, pred_hidden=64, joint_hidden=64):
    from omegaconf import OmegaConf

    durations = [0, 1, 2, 3, 4]
    cfg = {
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "log_prediction": False,
        "rnnt_reduction": "mean_volume",
        "skip_nan_grad": False,
        "model_defaults": {
            "enc_hidden": d_model,
            "pred_hidden": pred_hidden,
            "joint_hidden": joint_hidden,
            "tdt_durations": durations,
            "num_tdt_durations": len(durations),
        },
        "tokenizer": {"dir": tok_dir, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": features,  # 80 for parakeet-tdt-1.1b / 0.6b-v1, 128 for 0.6b-v2/v3
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 0.0,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": None,
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": features,
            "feat_out": -1,
            "n_layers": n_layers,
            "d_model": d_model,
            "subsampling": "dw_striding",  # FastConformer
            "subsampling_factor": 8,
            "subsampling_conv_channels": 32,
            "causal_downsampling": False,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "n_heads": n_heads,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.0,
            "dropout_pre_encoder": 0.0,
            "dropout_emb": 0.0,
            "dropout_att": 0.0,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": pred_hidden, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {"joint_hidden": joint_hidden, "activation": "relu", "dropout": 0.0},
            "num_extra_outputs": len(durations),  # TDT duration head
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt",
            "durations": durations,
            "greedy": {"max_symbols": 10},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0,
                "clamp": -1.0,
                "durations": durations,
                "sigma": 0.02,
                "omega": 0.1,
            },
        },
        # transcribe() reads cfg.validation_ds.use_start_end_token; real parakeet configs carry
        # train_ds/validation_ds/test_ds. No manifest -> no dataloader is built.
        "validation_ds": {
            "manifest_filepath": None,
            "sample_rate": 16000,
            "batch_size": 1,
            "shuffle": False,
            "use_start_end_token": False,
        },
        "optim": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 1e-3},
    }
    return OmegaConf.create({"model": cfg}).model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", help="output .nemo path (overwritten)")
    ap.add_argument("--wav", default=None, help="16 kHz mono wav to transcribe after restore")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--features", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--onnx", default=None, help="also export to this directory (onnx-asr layout)")
    a = ap.parse_args()

    t = time.perf_counter()
    import logging

    import torch

    torch.manual_seed(a.seed)
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(logging.ERROR)
    import nemo
    from nemo.collections.asr.models import ASRModel, EncDecRNNTBPEModel

    _t(f"import nemo {nemo.__version__} / torch {torch.__version__}", t)

    out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        t = time.perf_counter()
        tok_dir = os.path.join(td, "tok")
        vs = train_tokenizer(tok_dir)
        _t(f"train tokenizer (vocab={vs})", t)

        t = time.perf_counter()
        cfg = make_cfg(tok_dir, d_model=a.d_model, n_layers=a.layers, features=a.features)
        model = EncDecRNNTBPEModel(cfg=cfg, trainer=None)
        model.eval()
        n = sum(p.numel() for p in model.parameters())
        _t(f"build model ({n} params)", t)

        t = time.perf_counter()
        tmp_out = out + ".tmp"
        model.save_to(tmp_out)
        os.replace(tmp_out, out)
        _t(f"save_to {out} ({os.path.getsize(out)} bytes)", t)

    t = time.perf_counter()
    restored = ASRModel.restore_from(out, map_location="cpu")
    restored.eval()
    _t(f"restore_from -> {type(restored).__name__}", t)
    dec = restored.cfg.decoding
    print(
        f"decoding: strategy={dec.strategy} model_type={dec.get('model_type')} "
        f"durations={list(dec.get('durations'))}"
    )
    print(f"loss: {restored.cfg.loss.loss_name}  joint.num_extra_outputs={restored.joint.num_extra_outputs}")

    if a.wav:
        t = time.perf_counter()
        hyps = restored.transcribe([a.wav], batch_size=1, timestamps=True, verbose=False)
        _t("transcribe(timestamps=True)", t)
        h = hyps[0]
        if isinstance(h, list):  # older NeMo returned (best, all) tuples/lists
            h = h[0]
        print("type:", type(h).__name__)
        print("text:", repr(getattr(h, "text", h)))
        ts = getattr(h, "timestamp", None)
        if isinstance(ts, dict):
            print("timestamp keys:", list(ts.keys()))
            for k in ("word", "segment"):
                if ts.get(k):
                    print(f"  {k}[0]:", ts[k][0])
        t = time.perf_counter()
        hyps2 = restored.transcribe([a.wav], batch_size=1, verbose=False)
        _t("transcribe (2nd call, no timestamps)", t)
        print("text2:", repr(getattr(hyps2[0], "text", hyps2[0])))
    if a.onnx:
        from pathlib import Path

        from asrpro_rpc.engines.parakeet.export import export_onnx

        t = time.perf_counter()
        export_onnx(Path(out), Path(a.onnx).resolve())
        _t(f"export_onnx -> {a.onnx}", t)
    _t("total", T0)


if __name__ == "__main__":
    sys.exit(main())
